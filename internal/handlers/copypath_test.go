package handlers

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/metrics"
	"github.com/banking-marketplace/webhook/internal/products"
)

// copyOnly answers every copy key with one stored answer, allocating
// nothing itself: what a benchmark of the copy path measures is then the
// handler's own work.
type copyOnly struct {
	answer inbox.Answer
	cp     inbox.Copy
}

func (r *copyOnly) Copy(context.Context, string) (inbox.Answer, inbox.Copy, bool) {
	return r.answer, r.cp, true
}

func (r *copyOnly) Receive(context.Context, inbox.Delivery) (inbox.Answer, error) {
	panic("a copy took the whole path")
}

// copyHandler is the service's handler as `webhook serve` builds it (the
// products file, metrics, a JSON logger at info level, every middleware),
// with a receiver that answers every delivery as a stored copy.
func copyHandler(tb testing.TB, log io.Writer) http.Handler {
	tb.Helper()
	body := `{"success":true,"accountIdentifier":"123456"}`
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(log), zapcore.InfoLevel))
	return New(Config{
		Receiver: &copyOnly{
			answer: inbox.Answer{Kind: events.Final, Body: []byte(body), Code: "REPLAYED", Replayed: true},
			cp: inbox.Copy{Key: "id:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", EventType: "SUBSCRIPTION_ORDER",
				Subscription: "a3c9c831-e550-428f-b89c-43c5e7b338b9", Body: body},
		},
		Products: products.Default(""),
		Observer: metrics.New(),
		Logger:   logger,
	})
}

// BenchmarkCopyPath is a byte-identical copy through the whole handler
// (middleware, body, copy key, the stored answer, the reply and its log
// line), without the network and Redis: what the service itself spends on
// each copy, beside the one Redis round trip.
//
//	go test -run '^$' -bench CopyPath -benchmem ./internal/handlers
func BenchmarkCopyPath(b *testing.B) {
	body := orderFixture(b)
	h := copyHandler(b, io.Discard)
	w := &discardWriter{h: http.Header{}}
	req := httptest.NewRequest(http.MethodPost, "/marketplace/my-product-name", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
	rd := bytes.NewReader(body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		req.ContentLength = int64(len(body))
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

// discardWriter is a ResponseWriter that keeps only the status, so that
// the benchmark counts the handler's allocations, not a recorder's.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }

// SetReadDeadline is there as on net/http's writer (http.ResponseController).
func (w *discardWriter) SetReadDeadline(time.Time) error { return nil }
func (w *discardWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}

func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(p), nil
}

// TestCopyPathReply: the benchmark's handler answers a copy as the
// service does (200, the stored bytes, Idempotent-Replayed) and writes
// one info line naming the delivery.
func TestCopyPathReply(t *testing.T) {
	var log bytes.Buffer
	h := copyHandler(t, &log)
	req := httptest.NewRequest(http.MethodPost, "/marketplace/my-product-name", bytes.NewReader(orderFixture(t)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "msg_1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Body.String() != `{"success":true,"accountIdentifier":"123456"}` || rec.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("copy answered %d %s %v", rec.Code, rec.Body, rec.Header())
	}
	for _, want := range []string{`"msg":"delivery"`, `"outcome":"REPLAYED"`, `"replayed":true`, `"key":"id:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"`, `"webhook_id":"msg_1"`, `"status":200`} {
		if !bytes.Contains(log.Bytes(), []byte(want)) {
			t.Errorf("the log line lacks %s: %s", want, log.String())
		}
	}
}

// stackProbe answers every copy, as copyOnly does, and notes how deep the
// goroutine's stack is when the copy reaches the store.
type stackProbe struct {
	copyOnly
	at uintptr
}

//go:noinline
func (r *stackProbe) Copy(ctx context.Context, key string) (inbox.Answer, inbox.Copy, bool) {
	var here byte
	r.at = uintptr(unsafe.Pointer(&here))
	return r.copyOnly.Copy(ctx, key)
}

// growStack uses about depth KiB of stack and returns: the goroutine keeps
// the grown stack, so that nothing moves it while a test measures.
//
//go:noinline
func growStack(depth int) byte {
	var pad [1024]byte
	if depth > 0 {
		pad[0] = growStack(depth - 1)
	}
	return pad[0]
}

// TestCopyPathStack: the handler's own frames between the request and the
// store's copy lookup stay small. Under a thousand connections of copies
// each handler goroutine waits there for a Redis connection; net/http,
// the inbox, the store and go-redis add about 5.5 KiB to this, and a copy
// that fits in 8 KiB of stack costs half the memory of one that needs 16
// KiB (BENCHMARKS.md, "Where the bytes go"). receive keeps the rest of
// the path's locals out of its frame for that (admit, process). It was
// 2,391 bytes with them in it; the budget is today's 1,663 and a margin.
func TestCopyPathStack(t *testing.T) {
	const budget = 1792 // bytes, from echo's ServeHTTP down to Receiver.Copy
	if raceEnabled || testing.CoverMode() != "" {
		t.Skip("instrumented builds have other frames; this measures the deployed build")
	}
	probe := &stackProbe{copyOnly: copyOnly{answer: inbox.Answer{Kind: events.Final, Body: []byte(`{"success":true}`), Code: "REPLAYED", Replayed: true}}}
	h := New(Config{Receiver: probe, Products: products.Default(""), Logger: zap.NewNop()})
	req := httptest.NewRequest(http.MethodPost, "/marketplace/my-product-name", bytes.NewReader(orderFixture(t)))
	req.Header.Set("Content-Type", "application/json")
	w := &discardWriter{h: http.Header{}}
	var used uintptr
	done := make(chan struct{})
	go func() {
		defer close(done)
		growStack(64)
		var top byte
		start := uintptr(unsafe.Pointer(&top))
		h.ServeHTTP(w, req)
		used = start - probe.at
	}()
	<-done
	if w.status != http.StatusOK {
		t.Fatalf("status %d", w.status)
	}
	t.Logf("the handler's frames down to the copy lookup: %d bytes", used)
	if used > budget {
		t.Errorf("the handler uses %d bytes of stack down to the copy lookup; the budget is %d", used, budget)
	}
}
