package httpcall

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

func mustURL(tb testing.TB, raw string) *url.URL {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// tracedContext is a context under a recording span of a provider of the
// test's own, whose ended spans exp holds.
func tracedContext(t *testing.T) (context.Context, trace.Span, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, parent := tp.Tracer("test").Start(context.Background(), "delivery")
	return ctx, parent, exp
}

// headers records a header of every request a test server answers.
type headers struct {
	mu  sync.Mutex
	got []string
}

func (h *headers) add(v string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, v)
}

func (h *headers) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

// Each attempt is a client span under the caller's span, named by the
// system and the bounded action, with HTTP's attributes and the system's
// request id; the outside system gets the attempt's own span as the
// traceparent's parent. Nothing of the URL is recorded: its query here
// holds a login name, as Q2's GetAccountList does.
func TestAttemptSpans(t *testing.T) {
	t.Parallel()
	var seen headers
	srv, _ := serve(t, func(i int, w http.ResponseWriter, r *http.Request) {
		seen.add(r.Header.Get("traceparent"))
		w.Header().Set("X-Request-Id", fmt.Sprint("req-", i))
		w.WriteHeader([]int{502, 200}[i])
		fmt.Fprint(w, `{"name":"jane.doe@example.org"}`)
	})
	c, _ := newCore(t, srv.URL, nil)
	ctx, parent, exp := tracedContext(t)
	if _, err := c.Do(ctx, newRequest(t, c, "GET", srv.URL+"/things?username=jane.doe%40example.org"), read); err != nil {
		t.Fatal(err)
	}
	parent.End()

	var attempts []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name != "delivery" {
			attempts = append(attempts, s)
		}
	}
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2: %v", len(attempts), exp.GetSpans())
	}
	tp := seen.all()
	for i, s := range attempts {
		if s.Name != "test_system GET /things" || s.SpanKind != trace.SpanKindClient || s.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("attempt %d: span %q kind %v parent %v", i, s.Name, s.SpanKind, s.Parent.SpanID())
		}
		want := fmt.Sprintf("00-%s-%s-01", s.SpanContext.TraceID(), s.SpanContext.SpanID())
		if tp[i] != want {
			t.Errorf("attempt %d sent traceparent %q, want %q (its own span)", i, tp[i], want)
		}
		attrs := attrMap(s.Attributes)
		wantAttrs := map[string]string{
			"outside.system": "test_system", "outside.action": "GET /things", "http.request.method": "GET",
			"server.address": "127.0.0.1", "outside.request_id": fmt.Sprint("req-", i),
			"http.response.status_code": []string{"502", "200"}[i],
		}
		if i == 1 {
			wantAttrs["http.request.resend_count"] = "1"
		}
		for k, v := range wantAttrs {
			if attrs[k] != v {
				t.Errorf("attempt %d: %s = %q, want %q", i, k, attrs[k], v)
			}
		}
		for k, v := range attrs {
			if strings.Contains(v, "jane") || strings.Contains(v, "/things") && k != "outside.action" {
				t.Errorf("attempt %d: attribute %s = %q carries the URL or its query", i, k, v)
			}
		}
	}
	if got := attempts[0].Status; got.Code != codes.Error || got.Description != "HTTP 502 answered (the system's message is not logged)" {
		t.Errorf("the failed attempt's status = %+v", got)
	}
	if got := attempts[1].Status; got.Code == codes.Error {
		t.Errorf("the answered attempt's status = %+v", got)
	}
}

// Without a span in the context (tracing off, a token fetch, a start-up
// check) no span is made and no traceparent leaves.
func TestNoSpanWithoutParent(t *testing.T) {
	t.Parallel()
	var seen headers
	srv, _ := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		seen.add(r.Header.Get("traceparent") + r.Header.Get("tracestate"))
	})
	c, _ := newCore(t, srv.URL, nil)
	if _, err := c.Do(context.Background(), newRequest(t, c, "GET", srv.URL+"/things"), read); err != nil {
		t.Fatal(err)
	}
	if got := seen.all(); len(got) != 1 || got[0] != "" {
		t.Errorf("trace headers sent without a span: %q", got)
	}
}

// A transport failure's span says so without a status; the text is the
// core's own (no reply, so no system's words).
func TestAttemptSpanNoReply(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, statuses(200))
	c, _ := newCore(t, srv.URL, func(cfg *Config) { cfg.Retry.Attempts = 1 })
	srv.Close()
	ctx, parent, exp := tracedContext(t)
	_, err := c.Do(ctx, newRequest(t, c, "POST", srv.URL+"/things"), read)
	if err == nil {
		t.Fatal("a closed server answered")
	}
	parent.End()
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want the attempt and its parent", len(spans))
	}
	s := spans[0]
	attrs := attrMap(s.Attributes)
	if _, ok := attrs["http.response.status_code"]; ok || attrs["error.type"] != "no reply" || s.Status.Code != codes.Error || s.Status.Description != err.Error() {
		t.Errorf("span %q attrs %v status %+v; error %v", s.Name, attrs, s.Status, err)
	}
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// BenchmarkDoUntraced is a call with tracing off (no span in the
// context), against BenchmarkDoTraced: the cost of tracing off should be
// none that shows.
func BenchmarkDoUntraced(b *testing.B) { benchmarkDo(b, false) }

// BenchmarkDoTraced is the same call under a recording span.
func BenchmarkDoTraced(b *testing.B) { benchmarkDo(b, true) }

func benchmarkDo(b *testing.B, traced bool) {
	c, err := New(Config{
		System: "bench", BaseURL: mustURL(b, "http://bench.invalid"), Logger: zap.NewNop(),
		HTTPClient: &http.Client{Transport: transportFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		})},
		Retry: DefaultRetry, MaxBody: 1 << 10, MaxErrorBody: 1 << 10, Transient: errTransient, Invalid: errInvalid,
	})
	if err != nil {
		b.Fatal(err)
	}
	r, err := c.NewRequest("GET", "GET /things", mustURL(b, "http://bench.invalid/things"), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if traced {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(discard{}))
		var span trace.Span
		ctx, span = tp.Tracer("bench").Start(ctx, "delivery")
		defer span.End()
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Do(ctx, r, func(*Response) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// discard is a span processor that keeps nothing: the benchmark measures
// making spans, not exporting them.
type discard struct{}

func (discard) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (discard) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (discard) Shutdown(context.Context) error                  { return nil }
func (discard) ForceFlush(context.Context) error                { return nil }
