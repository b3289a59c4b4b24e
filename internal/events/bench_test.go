package events

import (
	"testing"

	"github.com/banking-marketplace/webhook/internal/canonjson"
)

// BenchmarkDecode is what a delivery that is not a byte-identical copy
// costs before Redis: decoding and validating the event, then its canonical
// fingerprint (the delivery key of a delivery without webhook-id, and the
// check that a copy under one key has the same content). BENCHMARKS.md
// quotes it:
//
//	go test -run '^$' -bench . -benchmem ./internal/events
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"subscription-order.json", "subscription-change.json", "subscription-cancel.json"} {
		body := readFixture(b, name)
		b.Run("decode+validate/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := Decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("fingerprint/"+name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := canonjson.Fingerprint(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
