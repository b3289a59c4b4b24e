package handlers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/logctx"
	"github.com/banking-marketplace/webhook/internal/signature"
)

// spanSeer is a Receiver and a Notifier that keeps the span context each
// delivery was handed, and logs one line under it as the use cases do.
type spanSeer struct {
	log  *zap.Logger
	mu   sync.Mutex
	seen []trace.SpanContext
}

func (s *spanSeer) see(ctx context.Context) {
	s.mu.Lock()
	s.seen = append(s.seen, trace.SpanContextFromContext(ctx))
	s.mu.Unlock()
	logctx.Logger(ctx, s.log).Info("inside")
}

func (s *spanSeer) Receive(ctx context.Context, d inbox.Delivery) (inbox.Answer, error) {
	s.see(ctx)
	return okReply, nil
}

func (s *spanSeer) Copy(context.Context, string) (inbox.Answer, inbox.Copy, bool) {
	return inbox.Answer{}, inbox.Copy{}, false
}

func (s *spanSeer) Notify(ctx context.Context, n inbox.Notification) (inbox.Answer, inbox.Copy, error) {
	s.see(ctx)
	return okReply, inbox.Copy{Key: "ad:" + n.Token, EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-ad"}, nil
}

type anyone struct{}

func (anyone) Verify(context.Context, *http.Request) (string, error) { return "anyone", nil }

// The marketplace's trace: 4bf92f3577b34da6a3ce929d0e0e4736, its span
// 00f067aa0ba902b7, sampled.
const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// Each delivery is one server span named by the route's template, the
// child of the sender's span when it sends a traceparent; the use case
// runs under it, and the request's line and the use case's carry its
// trace_id and span_id. Its attributes are ids and codes: nothing of the
// body (the fixture's names and email) or of AppDirect's eventUrl query.
func TestDeliverySpans(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	sign, auth := newSigner(t)
	eventURL := "https://market.example/api/integration/v1/events/tok-123"
	adPath := "/appdirect/events?eventUrl=" + url.QueryEscape(eventURL)
	tests := []struct {
		name, method, path string
		body               []byte
		header             http.Header
		traced             bool
		wantName           string
		wantStatus         int
		wantAttrs          map[string]string
	}{
		{name: "order", method: "POST", path: "/marketplace/my-product", body: order, header: signedAs(t, sign, "msg_traced", order),
			traced: true, wantName: "POST /marketplace/{extension}", wantStatus: 200, wantAttrs: map[string]string{
				"http.route": "/marketplace/{extension}", "http.request.method": "POST", "http.response.status_code": "200",
				"webhook.id": "msg_traced", "webhook.key": "id:msg_traced", "webhook.event_type": "SUBSCRIPTION_ORDER",
				"webhook.subscription": "a3c9c831-e550-428f-b89c-43c5e7b338b9", "webhook.extension": "my-product", "webhook.outcome": "SUCCESS",
			}},
		{name: "order with the marketplace's traceparent", method: "POST", path: "/marketplace/my-product", body: order,
			header: with(signedAs(t, sign, "msg_parent", order), "traceparent", incoming), traced: true,
			wantName: "POST /marketplace/{extension}", wantStatus: 200, wantAttrs: map[string]string{"webhook.id": "msg_parent"}},
		{name: "refused", method: "POST", path: "/marketplace/my-product", body: order, header: http.Header{"Webhook-Id": {"msg_unsigned"}},
			wantName: "POST /marketplace/{extension}", wantStatus: 401, wantAttrs: map[string]string{
				"http.response.status_code": "401", "webhook.id": "msg_unsigned", "webhook.outcome": string(events.Unauthorized)}},
		{name: "a made-up method", method: "BREW", path: "/marketplace/my-product", header: http.Header{"Webhook-Id": {"msg_brew"}},
			wantName: "HTTP /marketplace/{extension}", wantStatus: 405, wantAttrs: map[string]string{
				"http.request.method": "_OTHER", "http.response.status_code": "405"}},
		{name: "appdirect", method: "GET", path: adPath, header: http.Header{"Traceparent": {incoming}}, traced: true,
			wantName: "GET /appdirect/events", wantStatus: 200, wantAttrs: map[string]string{
				"http.route": "/appdirect/events", "webhook.event_token": "tok-123", "webhook.key": "ad:tok-123",
				"webhook.subscription": "sub-ad", "webhook.outcome": "SUCCESS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			core, logs := observer.New(zapcore.DebugLevel)
			seer := &spanSeer{log: zap.New(core)}
			h := New(Config{Receiver: seer, Auth: auth, Logger: zap.New(core), TracerProvider: tp, AppDirect: &AppDirect{
				Notifier: seer, Auth: anyone{}, Product: "p",
				Check: func(raw string) (string, string, error) {
					if raw != eventURL {
						return "", "", errors.New("not a configured marketplace")
					}
					return "tok-123", "https://market.example", nil
				},
			}})
			rec := do(t, h, tt.method, tt.path, tt.body, tt.header)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want one", len(spans))
			}
			s := spans[0]
			if s.Name != tt.wantName || s.SpanKind != trace.SpanKindServer {
				t.Errorf("span %q kind %v, want %q server", s.Name, s.SpanKind, tt.wantName)
			}
			if tt.header.Get("traceparent") != "" {
				if !s.Parent.IsRemote() || s.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent.SpanID().String() != "00f067aa0ba902b7" {
					t.Errorf("parent %v: want the sender's span", s.Parent)
				}
			} else if s.Parent.IsValid() {
				t.Errorf("parent %v without a traceparent", s.Parent)
			}
			attrs := attrValues(s.Attributes)
			for k, v := range tt.wantAttrs {
				if attrs[k] != v {
					t.Errorf("%s = %q, want %q", k, attrs[k], v)
				}
			}
			for k, v := range attrs {
				for _, bad := range []string{"jdoe", "John", "Doe", "market.example", "eventUrl", "?"} {
					if strings.Contains(v, bad) {
						t.Errorf("attribute %s = %q carries %q", k, v, bad)
					}
				}
			}
			if tt.traced && (len(seer.seen) != 1 || seer.seen[0].SpanID() != s.SpanContext.SpanID()) {
				t.Errorf("the use case ran under %v, want the delivery's span %v", seer.seen, s.SpanContext.SpanID())
			}
			for _, line := range logs.All() {
				f := line.ContextMap()
				if f["trace_id"] != s.SpanContext.TraceID().String() || f["span_id"] != s.SpanContext.SpanID().String() {
					t.Errorf("line %q: trace_id %v span_id %v, want the delivery's %v", line.Message, f["trace_id"], f["span_id"], s.SpanContext)
				}
			}
			if n := logs.FilterMessage("delivery").Len(); n != 1 {
				t.Errorf("%d delivery lines", n)
			}
		})
	}
}

// Tracing off (no provider): no span reaches the use case, not even the
// sender's traceparent, and no line has a trace_id. Routes other than the
// deliveries' are never traced.
func TestUntraced(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	sign, auth := newSigner(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	for _, traced := range []bool{false, true} {
		core, logs := observer.New(zapcore.DebugLevel)
		seer := &spanSeer{log: zap.New(core)}
		cfg := Config{Receiver: seer, Auth: auth, Logger: zap.New(core)}
		if traced {
			cfg.TracerProvider = tp
		}
		h := New(cfg)
		if !traced {
			if rec := do(t, h, "POST", "/marketplace/p", order, with(signedAs(t, sign, "msg_off", order), "traceparent", incoming)); rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
			if len(seer.seen) != 1 || seer.seen[0].IsValid() {
				t.Errorf("tracing off: the use case ran under %v", seer.seen)
			}
		}
		if rec := do(t, h, "GET", "/healthz", nil, http.Header{"Traceparent": {incoming}}); rec.Code != 200 {
			t.Fatalf("/healthz: %d", rec.Code)
		}
		for _, line := range logs.All() {
			if _, ok := line.ContextMap()["trace_id"]; ok {
				t.Errorf("traced %v: line %q has a trace_id", traced, line.Message)
			}
		}
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans of routes that are not deliveries", n)
	}
}

func signedAs(t *testing.T, s *signer, id string, body []byte) http.Header {
	t.Helper()
	h, err := signature.Headers(s.secret, id, time.Now(), body)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func with(h http.Header, k, v string) http.Header {
	h = h.Clone()
	h.Set(k, v)
	return h
}

func attrValues(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// BenchmarkDelivery is one delivery through the handler and a use case
// that logs a line, tracing off (no provider: nothing installed) and on
// (spans made, none exported): the first must cost what it did before
// tracing existed.
func BenchmarkDelivery(b *testing.B) {
	order := orderFixture(b)
	for _, traced := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[traced], func(b *testing.B) {
			cfg := Config{Receiver: &spanSeer{log: zap.NewNop()}, Logger: zap.NewNop()}
			if traced {
				cfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter())))
			}
			h := New(cfg)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/marketplace/p", bytes.NewReader(order))
				req.Header.Set("Traceparent", incoming)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}

// A handler that panics with http.ErrAbortHandler (net/http then drops
// the connection) still ends the delivery's span, as an error with no
// status sent, and still writes the request's line; the panic goes on to
// net/http.
func TestAbortedDeliveryEndsItsSpan(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	sign, auth := newSigner(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	core, logs := observer.New(zapcore.DebugLevel)
	h := New(Config{Receiver: &fakeReceiver{hook: func() { panic(http.ErrAbortHandler) }}, Auth: auth, Logger: zap.New(core), TracerProvider: tp})
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		do(t, h, http.MethodPost, "/marketplace/my-product", order, signedAs(t, sign, "msg_abort", order))
	}()
	if recovered != http.ErrAbortHandler {
		t.Fatalf("net/http saw %v, want http.ErrAbortHandler", recovered)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want the delivery's", len(spans))
	}
	s := spans[0]
	attrs := attrValues(s.Attributes)
	if _, has := attrs["http.response.status_code"]; has || s.Status.Code != codes.Error || attrs["webhook.id"] != "msg_abort" {
		t.Errorf("span status %v, attributes %v; want an error with the delivery's ids and no status sent", s.Status, attrs)
	}
	lines := logs.FilterMessage("delivery").All()
	if len(lines) != 1 {
		t.Fatalf("%d delivery lines, want 1", len(lines))
	}
	f := lines[0].ContextMap()
	if lines[0].Level != zapcore.ErrorLevel || f["status"] != int64(0) || f["code"] != string(events.UnknownError) || f["trace_id"] != s.SpanContext.TraceID().String() {
		t.Errorf("line %v at %v; want an error with status 0, UNKNOWN_ERROR and the span's trace_id", f, lines[0].Level)
	}
}
