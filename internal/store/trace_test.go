package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// With Trace, each command under a traced context is a client span, child
// of the context's, named by the command and carrying none of its
// arguments (here a subscription id, in a key); a command without a span
// in its context makes none. Without Trace there is no hook at all.
func TestRedisSpans(t *testing.T) {
	t.Parallel()
	for _, traced := range []bool{true, false} {
		mr := miniredis.RunT(t)
		r := openTest(t, Options{URL: "redis://" + mr.Addr(), Trace: traced})
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		ctx, parent := tp.Tracer("test").Start(context.Background(), "delivery")
		const sub = "sub-jane-doe-4711"
		_, unlock, err := r.Lock(ctx, sub, time.Second, 0)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
		if err := r.Ping(context.Background()); err != nil { // no span: no trace of its own
			t.Fatal(err)
		}
		parent.End()

		var cmds []tracetest.SpanStub
		for _, s := range exp.GetSpans() {
			if s.Name != "delivery" {
				cmds = append(cmds, s)
			}
		}
		if !traced {
			if len(cmds) != 0 {
				t.Errorf("Trace off: %d command spans", len(cmds))
			}
			continue
		}
		if len(cmds) == 0 {
			t.Fatal("Trace on: no command span")
		}
		for _, s := range cmds {
			if s.Parent.SpanID() != parent.SpanContext().SpanID() || s.SpanKind != trace.SpanKindClient {
				t.Errorf("span %q: parent %v kind %v, want a client child of the delivery", s.Name, s.Parent.SpanID(), s.SpanKind)
			}
			if s.Name == "ping" {
				t.Error("a command without a span in its context made one")
			}
			for _, kv := range s.Attributes {
				if kv.Key == "db.statement" || strings.Contains(kv.Value.String(), sub) {
					t.Errorf("span %q: %s = %q carries a command's arguments", s.Name, kv.Key, kv.Value.String())
				}
			}
		}
	}
}
