package loadtest

import (
	"crypto/sha256"
	"testing"

	"github.com/banking-marketplace/webhook/internal/canonjson"
	"github.com/banking-marketplace/webhook/internal/events"
)

// BenchmarkCopyBeforeStore is the work each copy of a delivery costs the
// service before it asks Redis for the stored reply (decode and validate,
// canonical fingerprint), beside the floor's (a SHA-256 of the raw body), on
// the benchmark's own ORDER. The load benchmark's profile of the service
// shows this as the largest CPU cost of a copy (BENCHMARKS.md):
//
//	go test -run '^$' -bench CopyBeforeStore -benchmem ./internal/loadtest
func BenchmarkCopyBeforeStore(b *testing.B) {
	tmpl, err := loadTemplate("")
	if err != nil {
		b.Fatal(err)
	}
	body := tmpl.order()
	b.Run("service-decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := events.Decode(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("service-fingerprint", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := canonjson.Fingerprint(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor-sha256", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_ = sha256.Sum256(body)
		}
	})
}
