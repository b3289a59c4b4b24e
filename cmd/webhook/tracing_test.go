package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/banking-marketplace/webhook/internal/appdirect/appdirectsandbox"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testplan"
)

// keepSpans is the in-memory exporter, keeping its spans through the
// provider's shutdown at the drain (tracetest's forgets them there), for
// the test to read after.
type keepSpans struct{ *tracetest.InMemoryExporter }

func (keepSpans) Shutdown(context.Context) error { return nil }

// sent is a request that reached the sandbox, with its traceparent.
type sent struct{ path, traceparent string }

// sentLog is what the traced sandbox received.
type sentLog struct {
	mu   sync.Mutex
	reqs []sent
}

func (l *sentLog) all() []sent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

// startTracedSandbox is startSandbox behind a server that records the
// traceparent of every call from the service (not the test's own calls
// to /_sandbox/...).
func startTracedSandbox(t *testing.T) (testplan.Sandbox, string, *sentLog) {
	t.Helper()
	sb, err := newSandbox(sandboxConfig{q2: q2sandbox.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	log := &sentLog{}
	h := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/_sandbox/") {
			log.mu.Lock()
			log.reqs = append(log.reqs, sent{r.URL.Path, r.Header.Get("traceparent")})
			log.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return testplan.Sandbox{Sandbox: sb}, srv.URL, log
}

// The marketplace's trace, sampled: the first delivery's parent.
const (
	senderTrace       = "4bf92f3577b34da6a3ce929d0e0e4736"
	senderSpan        = "00f067aa0ba902b7"
	senderTraceparent = "00-" + senderTrace + "-" + senderSpan + "-01"
)

// The whole service traced, through every door and every outside system,
// with personal data in every event: a Q2 ORDER (from a marketplace that
// sends its traceparent), CHANGE and CANCEL (its DeleteUser failing, so
// the settle command finishes it later), the QBD Connect and Business
// Access stories replayed, and an AppDirect ORDER answered later. Each
// delivery is one trace whose tree holds its Redis steps, plan steps and
// outside calls; the background work has root traces of its own; every
// outside call sent its own span as traceparent; the log lines carry the
// trace ids; and no span says anything personal.
func TestTracedStories(t *testing.T) {
	t.Parallel()
	exp := keepSpans{tracetest.NewInMemoryExporter()}
	ctx := withSpanExporter(context.Background(), exp)
	sb, sbURL, sentReqs := startTracedSandbox(t)
	env := q2Env(sbURL, miniRedisURL(t))
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	env["LOG_FORMAT"] = "json"
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:4318" // on; the spans go to exp
	env["APPDIRECT_MARKETPLACES"] = sbURL
	env["APPDIRECT_CONSUMER_KEY"] = appdirectsandbox.DefaultConsumerKey
	env["APPDIRECT_CONSUMER_SECRET"] = appdirectsandbox.DefaultConsumerSecret
	env["APPDIRECT_ASYNC"] = "true"
	env["APPDIRECT_PRODUCT"] = "Online Banking Plus"
	svc := startServiceCtx(t, ctx, env)

	// The Q2 story, with personal data of its own.
	const (
		email  = "trace.leak@example.org"
		first  = "Xanthippe"
		last   = "Wolstenholme"
		street = "1600 Tracing Avenue"
		phone  = "5550109876"
	)
	personal := []string{email, first, last, street, phone}
	q2Event := func(name, account string) []byte {
		var m map[string]any
		_ = json.Unmarshal(withSubscription(t, name, "sub-traced", account), &m)
		c := m["event"].(map[string]any)["creator"].(map[string]any)
		c["email"], c["firstName"], c["lastName"] = email, first, last
		a := c["address"].(map[string]any)
		a["street1"], a["phone"], a["firstName"], a["lastName"], a["fullName"] = street, phone, first, last, first+" "+last
		b, _ := json.Marshal(m)
		return b
	}
	q2URL := svc.url + "/marketplace/my-product-name"
	id := wantReply(t, post(t, q2URL, q2Event("subscription-order.json", ""),
		http.Header{"Webhook-Id": {"msg_traced_1"}, "Traceparent": {senderTraceparent}}), 200, "").AccountIdentifier
	wantReply(t, post(t, q2URL, q2Event("subscription-change.json", id), http.Header{"Webhook-Id": {"msg_traced_2"}}), 200, "")
	_ = sb.SetFault(sandbox.Fault{Route: "DeleteUser", Status: 503, Times: 10})
	wantReply(t, post(t, q2URL, q2Event("subscription-cancel.json", id), http.Header{"Webhook-Id": {"msg_traced_3"}}), 200, events.DoNotCancel)
	_ = sb.SetFault(sandbox.Fault{Route: "DeleteUser", Times: 0})

	// QBD Connect's story, replayed.
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"replay", "--url", svc.url, "../../fixtures/qbd-story"},
		func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("replay: %v\n%s%s", err, out.String(), errOut.String())
	}
	// Business Access (Q2, then Helix): its cancel undoes Helix, then
	// Q2's DeleteUser fails; the undo has begun, so the cancel succeeds and
	// the settle command finishes it later.
	const business = "../../../fixtures/business-access" // readFixture reads under testdata/
	wantReply(t, post(t, svc.url+"/marketplace/business-access", readFixture(t, business+"/01-order.json"), nil), 200, "")
	wantReply(t, post(t, svc.url+"/marketplace/business-access", readFixture(t, business+"/02-change.json"), nil), 200, "")
	_ = sb.SetFault(sandbox.Fault{Route: "DeleteUser", Status: 503, Times: 10})
	wantReply(t, post(t, svc.url+"/marketplace/business-access", readFixture(t, business+"/03-cancel.json"), nil), 200, "")
	_ = sb.SetFault(sandbox.Fault{Route: "DeleteUser", Times: 0})
	for _, dir := range []string{"../../fixtures/qbd-story", "../../fixtures/business-access"} {
		personal = append(personal, personalValues(t, dir)...)
	}

	// AppDirect's ORDER, answered 202 and its result posted later.
	adEvent := readJSON(t, "../../fixtures/appdirect-story/01-order.json")
	creator := adEvent["creator"].(map[string]any)
	creator["email"], creator["firstName"], creator["lastName"] = "ad.leak@example.org", "Eudokia", "Makrembolitissa"
	personal = append(personal, "ad.leak@example.org", "Eudokia", "Makrembolitissa")
	var added struct{ Token string }
	sandboxCall(t, sbURL+"/_sandbox/events", adEvent, &added)
	var notified struct{ Status int }
	sandboxCall(t, sbURL+"/_sandbox/notify", map[string]string{"url": svc.url + "/appdirect/events", "token": added.Token}, &notified)
	if notified.Status != http.StatusAccepted {
		t.Fatalf("the notification was answered %d, want 202 (APPDIRECT_ASYNC)", notified.Status)
	}
	eventually(t, 20*time.Second, "the AppDirect result posted", func() bool {
		resp, err := sandboxClient.Get(sbURL + "/_sandbox/results/" + added.Token)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err := svc.stop(t); err != nil { // the drain exports the last spans
		t.Fatal(err)
	}

	// The settle command finishes the cancel, as a trace of its own.
	out.Reset()
	errOut.Reset()
	if err := run(ctx, []string{"settle"}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("settle: %v\n%s%s", err, out.String(), errOut.String())
	}

	spans := exp.GetSpans()
	tr := indexSpans(spans)
	tr.checkTrees(t)

	// One trace per delivery, rooted at its server span.
	servers := tr.named("POST /marketplace/{extension}")
	if len(servers) != 3+4+3 { // the Q2 story, QBD Connect's and Business Access's
		t.Errorf("%d marketplace delivery spans, want 10", len(servers))
	}
	traces := map[trace.TraceID]bool{}
	for _, s := range append(servers, tr.named("GET /appdirect/events")...) {
		if traces[s.SpanContext.TraceID()] {
			t.Errorf("two deliveries in trace %s", s.SpanContext.TraceID())
		}
		traces[s.SpanContext.TraceID()] = true
	}
	order := tr.server(t, "webhook.id", "msg_traced_1")
	if order.Parent.TraceID().String() != senderTrace || order.Parent.SpanID().String() != senderSpan || !order.Parent.IsRemote() {
		t.Errorf("the ORDER's parent %v; want the sender's span from its traceparent", order.Parent)
	}
	tr.wantIn(t, order, "step q2 create", "q2 Enrollment")
	if !slices.ContainsFunc(tr.byTrace[order.SpanContext.TraceID()], func(s tracetest.SpanStub) bool { return attr(s, "db.system") == "redis" }) {
		t.Error("the ORDER's trace has no Redis span")
	}
	cancel := tr.server(t, "webhook.id", "msg_traced_3")
	undo := tr.wantIn(t, cancel, "step q2 undo", "q2 DeleteUser")
	if undo[0].Status.Code != codes.Error || attr(undo[1], "http.response.status_code") != "503" {
		t.Errorf("the failed undo: step status %+v, call status %q", undo[0].Status, attr(undo[1], "http.response.status_code"))
	}
	for _, system := range []string{"q2", "qbd_connect", "helix", "appdirect"} {
		if !slices.ContainsFunc(spans, func(s tracetest.SpanStub) bool { return attr(s, "outside.system") == system }) {
			t.Errorf("no span of a call to %s", system)
		}
	}

	// AppDirect: the notification's trace fetches the event; the result
	// posted later is a trace of its own.
	notice := tr.server(t, "webhook.event_token", added.Token)
	tr.wantIn(t, notice, "appdirect GET /events/{token}")
	result := tr.root(t, "appdirect result", "webhook.event_token", added.Token)
	tr.wantIn(t, result, "appdirect POST /events/{token}/result")
	settle := tr.root(t, "settle", "webhook.subscription", "b1a2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d")
	tr.wantIn(t, settle, "step q2 undo", "q2 DeleteUser")

	// Every outside call sent its own span as traceparent.
	calls := map[string]bool{}
	for _, s := range spans {
		if s.SpanKind == trace.SpanKindClient && attr(s, "outside.system") != "" {
			calls[fmt.Sprintf("00-%s-%s-01", s.SpanContext.TraceID(), s.SpanContext.SpanID())] = attr(s, "http.response.status_code") != ""
		}
	}
	got := map[string]bool{}
	for _, r := range sentReqs.all() {
		if r.traceparent == "" {
			continue // a token fetch, a start-up check: no trace
		}
		got[r.traceparent] = true
		if _, ok := calls[r.traceparent]; !ok {
			t.Errorf("%s got traceparent %s, which is no call span", r.path, r.traceparent)
		}
	}
	for tp, answered := range calls {
		if answered && !got[tp] {
			t.Errorf("the call span %s was answered, but its traceparent never reached the sandbox", tp)
		}
	}

	// The log lines of each delivery carry its trace.
	checkTraceLogs(t, svc.stdout.String(), tr)

	// Nothing personal in any span: names, attributes, statuses, events.
	for _, s := range spans {
		text := spanText(s)
		for _, p := range personal {
			if strings.Contains(text, p) {
				t.Errorf("span %q carries %q: %s", s.Name, p, text)
			}
		}
		if strings.Contains(text, "eventUrl") || queryValue.MatchString(text) {
			t.Errorf("span %q carries a query: %s", s.Name, text)
		}
	}
}

// queryValue is a URL query with a value: "?username=jdoe". An action's
// name may show a query's shape, "GET /instances?customerId=".
var queryValue = regexp.MustCompile(`[?&][A-Za-z_]+=[^\s&]`)

// checkTraceLogs: every delivery line has the trace_id of its delivery's
// span, and every line written for a delivery (it has its request_id) has
// a trace_id.
func checkTraceLogs(t *testing.T, logs string, tr *spanIndex) {
	t.Helper()
	var deliveries int
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var f map[string]any
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		traceID, _ := f["trace_id"].(string)
		switch {
		case f["msg"] == "delivery":
			deliveries++
			key := fmt.Sprint(f["key"])
			if s := tr.server(t, "webhook.key", key); traceID != s.SpanContext.TraceID().String() {
				t.Errorf("delivery line of %s: trace_id %q, its span's %s", key, traceID, s.SpanContext.TraceID())
			}
		case f["msg"] != "request" && f["request_id"] != nil && traceID == "":
			t.Errorf("a delivery's line has no trace_id: %s", line)
		}
	}
	if deliveries != 11 {
		t.Errorf("%d delivery lines, want 11", deliveries)
	}
}

// Tracing off (no endpoint): no span is made, no traceparent sent to any
// outside system, no trace_id logged, whatever the marketplace sent; and
// with OTEL_SDK_DISABLED, an endpoint set is never dialled.
func TestTracingOff(t *testing.T) {
	t.Parallel()
	var dials int
	var mu sync.Mutex
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		dials++
		mu.Unlock()
	}))
	t.Cleanup(collector.Close)
	for name, otel := range map[string]map[string]string{
		"no endpoint":   {"OTEL_SERVICE_NAME": "webhook-test", "OTEL_TRACES_SAMPLER": "always_on"},
		"SDK disabled":  {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL},
		"exporter none": {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			exp := keepSpans{tracetest.NewInMemoryExporter()}
			sb, sbURL, sentReqs := startTracedSandbox(t)
			env := q2Env(sbURL, miniRedisURL(t))
			env["LOG_FORMAT"] = "json"
			for k, v := range otel {
				env[k] = v
			}
			svc := startServiceCtx(t, withSpanExporter(context.Background(), exp), env)
			wantReply(t, post(t, svc.url+"/marketplace/p", withSubscription(t, "subscription-order.json", "sub-untraced", ""),
				http.Header{"Webhook-Id": {"msg_untraced"}, "Traceparent": {senderTraceparent}}), 200, "")
			if err := svc.stop(t); err != nil {
				t.Fatal(err)
			}
			if n := len(exp.GetSpans()); n != 0 {
				t.Errorf("%d spans made", n)
			}
			if sb.Stats().Calls["Enrollment"] != 1 {
				t.Fatal("no enrollment: the test would prove nothing")
			}
			for _, r := range sentReqs.all() {
				if r.traceparent != "" {
					t.Errorf("%s got traceparent %s", r.path, r.traceparent)
				}
			}
			if logs := svc.stdout.String(); strings.Contains(logs, "trace_id") || strings.Contains(logs, "tracing on") {
				t.Errorf("tracing off, yet the logs speak of it:\n%s", logs)
			}
		})
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if dials != 0 {
			t.Errorf("the collector was dialled %d times with tracing off", dials)
		}
	})
}

// With an endpoint and no test exporter, the spans reach an OTLP
// collector, over HTTP at OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces or over
// gRPC, by the drain at the latest.
func TestTracingExportsOTLP(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{protocolHTTP, protocolGRPC} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			col := &collector{}
			endpoint := col.startHTTP(t)
			if protocol == protocolGRPC {
				endpoint = col.startGRPC(t)
			}
			_, sbURL := startSandbox(t, q2sandbox.Config{})
			env := q2Env(sbURL, miniRedisURL(t))
			env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
			env["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
			svc := startService(t, env)
			wantReply(t, post(t, svc.url+"/marketplace/p", withSubscription(t, "subscription-order.json", "sub-exported", ""),
				http.Header{"Webhook-Id": {"msg_exported"}}), 200, "")
			if err := svc.stop(t); err != nil {
				t.Fatal(err)
			}
			names, attrs := col.seen()
			for _, want := range []string{"POST /marketplace/{extension}", "q2 Enrollment", "step q2 create"} {
				if !names[want] {
					t.Errorf("the collector got no %q span (got %v)", want, names)
				}
			}
			for _, want := range []string{"webhook.id=msg_exported", "service.name=webhook"} {
				if !attrs[want] {
					t.Errorf("the collector got no %s", want)
				}
			}
			if !strings.Contains(svc.logs.String(), `"msg":"tracing on","protocol":"`+protocol+`"`) {
				t.Error("the start does not say that tracing is on, and how")
			}
		})
	}
}

// collector is an OTLP trace collector that keeps what it is sent.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// startHTTP serves OTLP/HTTP (protobuf) at /v1/traces; its base URL.
func (c *collector) startHTTP(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		_, _ = c.Export(r.Context(), req)
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// startGRPC serves OTLP/gRPC; its URL.
func (c *collector) startGRPC(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return "http://" + ln.Addr().String()
}

// seen is the names of the spans received, and their attributes and
// their resources' as key=value.
func (c *collector) seen() (names, attrs map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names, attrs = map[string]bool{}, map[string]bool{}
	for _, req := range c.reqs {
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.Resource.GetAttributes() {
				attrs[kv.Key+"="+kv.Value.GetStringValue()] = true
			}
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					names[sp.Name] = true
					for _, kv := range sp.Attributes {
						attrs[kv.Key+"="+kv.Value.GetStringValue()] = true
					}
				}
			}
		}
	}
	return names, attrs
}

// The variables that turn tracing on, and their mistakes, one line each
// naming the variable.
func TestReadTracing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		want     tracingConfig
		problems []string // a part of each line
	}{
		{"nothing set", nil, tracingConfig{}, nil},
		{"base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
			tracingConfig{Endpoint: "http://collector:4318/v1/traces", Protocol: protocolHTTP}, nil},
		{"traces endpoint as it is", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b/otlp"},
			tracingConfig{Endpoint: "https://b/otlp", Protocol: protocolHTTP}, nil},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			tracingConfig{Endpoint: "http://collector:4317", Protocol: protocolGRPC}, nil},
		{"disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "TRUE"}, tracingConfig{}, nil},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, tracingConfig{}, nil},
		{"sampler alone", map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, tracingConfig{}, nil},
		{"zipkin", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, tracingConfig{}, []string{"OTEL_TRACES_EXPORTER: \"zipkin\" is not supported"}},
		{"json", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
			tracingConfig{Endpoint: "http://c:4318/v1/traces", Protocol: protocolHTTP}, []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: \"http/json\" is not supported"}},
		{"no scheme", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"},
			tracingConfig{Endpoint: "collector:4318", Protocol: protocolHTTP}, []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must be an http:// or https:// URL"}},
		{"credentials", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:secret@collector"},
			tracingConfig{Endpoint: "https://user:secret@collector/v1/traces", Protocol: protocolHTTP}, []string{"OTEL_EXPORTER_OTLP_ENDPOINT: must be"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, problems := readTracing(func(k string) string { return tt.env[k] })
			got.from = ""
			if got != tt.want {
				t.Errorf("config %+v, want %+v", got, tt.want)
			}
			if len(problems) != len(tt.problems) {
				t.Fatalf("problems %q, want %d", problems, len(tt.problems))
			}
			for i, p := range problems {
				if !strings.Contains(p, tt.problems[i]) || strings.Contains(p, "secret") {
					t.Errorf("problem %q, want one with %q and no credential", p, tt.problems[i])
				}
			}
		})
	}
}

// A tracing mistake is a configuration error, said with the table's.
func TestTracingConfigError(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	env := map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "MAX_IN_FLIGHT": "0"}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, &out, &errOut)
	if code := exitCode(err, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2: %v", code, err)
	}
	for _, want := range []string{"MAX_IN_FLIGHT:", "OTEL_EXPORTER_OTLP_PROTOCOL:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %s: %v", want, err)
		}
	}
}

// spanIndex finds exported spans by trace, id and name.
type spanIndex struct {
	all     tracetest.SpanStubs
	byTrace map[trace.TraceID][]tracetest.SpanStub
	byID    map[trace.SpanID]tracetest.SpanStub
}

func indexSpans(spans tracetest.SpanStubs) *spanIndex {
	ix := &spanIndex{all: spans, byTrace: map[trace.TraceID][]tracetest.SpanStub{}, byID: map[trace.SpanID]tracetest.SpanStub{}}
	for _, s := range spans {
		ix.byTrace[s.SpanContext.TraceID()] = append(ix.byTrace[s.SpanContext.TraceID()], s)
		ix.byID[s.SpanContext.SpanID()] = s
	}
	return ix
}

// checkTrees: every span's parent is exported in its trace (but a
// delivery's remote parent), and every root is a delivery, a settle pass
// or a result posted later: no Redis poll or token fetch is a trace.
func (ix *spanIndex) checkTrees(t *testing.T) {
	t.Helper()
	roots := []string{"POST /marketplace/{extension}", "GET /appdirect/events", "settle", "appdirect result"}
	for _, s := range ix.all {
		if !s.Parent.IsValid() || s.Parent.IsRemote() {
			if !slices.Contains(roots, s.Name) {
				t.Errorf("span %q is a root", s.Name)
			}
			continue
		}
		if p, ok := ix.byID[s.Parent.SpanID()]; !ok || p.SpanContext.TraceID() != s.SpanContext.TraceID() {
			t.Errorf("span %q: its parent is not exported in its trace", s.Name)
		}
	}
}

func (ix *spanIndex) named(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range ix.all {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// server is the delivery span whose attribute key is value.
func (ix *spanIndex) server(t *testing.T, key, value string) tracetest.SpanStub {
	t.Helper()
	for _, s := range ix.all {
		if s.SpanKind == trace.SpanKindServer && attr(s, key) == value {
			return s
		}
	}
	t.Fatalf("no delivery span with %s=%s", key, value)
	return tracetest.SpanStub{}
}

// root is the root span name whose attribute key is value.
func (ix *spanIndex) root(t *testing.T, name, key, value string) tracetest.SpanStub {
	t.Helper()
	for _, s := range ix.named(name) {
		if attr(s, key) == value {
			if s.Parent.IsValid() {
				t.Errorf("%q has a parent", name)
			}
			return s
		}
	}
	t.Fatalf("no %q span with %s=%s", name, key, value)
	return tracetest.SpanStub{}
}

// wantIn returns the first span of each name in root's trace, each a
// descendant of root.
func (ix *spanIndex) wantIn(t *testing.T, root tracetest.SpanStub, names ...string) []tracetest.SpanStub {
	t.Helper()
	out := make([]tracetest.SpanStub, len(names))
	for i, name := range names {
		found := false
		for _, s := range ix.byTrace[root.SpanContext.TraceID()] {
			if s.Name == name && ix.under(s, root) {
				out[i], found = s, true
				break
			}
		}
		if !found {
			t.Errorf("no %q under %q", name, root.Name)
		}
	}
	return out
}

func (ix *spanIndex) under(s, root tracetest.SpanStub) bool {
	for s.Parent.IsValid() && !s.Parent.IsRemote() {
		if s.Parent.SpanID() == root.SpanContext.SpanID() {
			return true
		}
		s = ix.byID[s.Parent.SpanID()]
	}
	return false
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// spanText is everything a span says: its name, attributes, status and
// events.
func spanText(s tracetest.SpanStub) string {
	var b strings.Builder
	b.WriteString(s.Name + " " + s.Status.Description)
	for _, kv := range s.Attributes {
		fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.String())
	}
	for _, e := range s.Events {
		b.WriteString(" " + e.Name)
		for _, kv := range e.Attributes {
			fmt.Fprintf(&b, " %s=%s", kv.Key, kv.Value.String())
		}
	}
	return b.String()
}

// personalValues are the values of the personal fields of every event in
// dir: names, emails, addresses, phones, companies.
func personalValues(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"email", "firstName", "lastName", "fullName", "street1", "street2", "city", "zip", "phone", "phoneNumber", "companyName", "name"}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && slices.Contains(keys, k) && len(s) >= 3 {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, f := range files {
		if !strings.HasSuffix(f, ".expect.json") {
			walk(readJSON(t, f))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no personal values in %s: the test would prove nothing", dir)
	}
	return out
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// sandboxClient calls the sandbox's own routes, which docs/openapi.yaml
// does not describe (TestMain checks what client sends against it).
var sandboxClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}

// sandboxCall posts in to the sandbox's url and decodes its 200 reply
// into out.
func sandboxCall(t *testing.T, url string, in, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	resp, err := sandboxClient.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("%s: %v: %s", url, err, body)
	}
}
