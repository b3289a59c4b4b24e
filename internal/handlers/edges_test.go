package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/logctx"
	"github.com/banking-marketplace/webhook/internal/products"
	"github.com/banking-marketplace/webhook/internal/signature"
)

// onePlusProduct is a catalog with one extension, "plus".
func onePlusProduct(t *testing.T) *products.Catalog {
	t.Helper()
	catalog, err := products.Parse([]byte(`{"products": [
	  {"name": "Plus", "product_id": "obp", "extension_list": ["plus"], "targets": ["q2"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return catalog
}

// Issue 21: an unknown extension answered 404 before authentication, so
// anyone could list the configured extension names. Authentication comes
// first: unauthenticated, a known and an unknown extension get the same
// 401, byte for byte; authenticated, an unknown extension is 404.
func TestAuthenticationBeforeRouting(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	sign, signed := newSigner(t)
	other, _ := newSigner(t)
	headers := func(s *signer, id string) http.Header {
		h, err := signature.Headers(s.secret, id, time.Now(), order)
		if err != nil {
			t.Fatal(err)
		}
		h.Set("Content-Type", "application/json")
		return h
	}
	basic := Basic("market", "place")
	basicHeader := func(user, pass string) http.Header {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.SetBasicAuth(user, pass)
		return r.Header
	}
	type call struct {
		name       string
		header     http.Header
		wantStatus int
		wantCode   events.ErrorCode // "" for success
	}
	tests := []struct {
		name  string
		auth  Authenticator
		calls []call // each to "plus" and to "nobody"
		known int    // the status of the known extension when authenticated
	}{
		{name: "signature", auth: signed, calls: []call{
			{"unsigned", http.Header{"Content-Type": {"application/json"}}, 401, events.Unauthorized},
			{"another secret", headers(other, "msg_x"), 401, events.Unauthorized},
			{"signed", headers(sign, "msg_y"), 0, ""},
		}},
		{name: "basic", auth: basic, calls: []call{
			{"no credentials", nil, 401, events.Unauthorized},
			{"wrong password", basicHeader("market", "nope"), 401, events.Unauthorized},
			{"right credentials", basicHeader("market", "place"), 0, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range tt.calls {
				recv := &fakeReceiver{reply: okReply}
				h := New(Config{Receiver: recv, Auth: tt.auth, Products: onePlusProduct(t)})
				known := do(t, h, http.MethodPost, "/marketplace/plus", order, c.header)
				unknown := do(t, h, http.MethodPost, "/marketplace/nobody", order, c.header)
				if c.wantStatus == 0 { // authenticated
					if known.Code != 200 || len(recv.got) != 1 {
						t.Errorf("%s to a known extension: %d %s, want 200 and processed", c.name, known.Code, known.Body)
					}
					if unknown.Code != 404 || failure(t, unknown).ErrorCode != events.ConfigurationError {
						t.Errorf("%s to an unknown extension: %d %s, want 404 CONFIGURATION_ERROR", c.name, unknown.Code, unknown.Body)
					}
					if !strings.Contains(unknown.Body.String(), `\"nobody\"`) {
						t.Errorf("the 404 %s does not name the extension", unknown.Body)
					}
					continue
				}
				for name, rec := range map[string]*httptest.ResponseRecorder{"known": known, "unknown": unknown} {
					if rec.Code != c.wantStatus || failure(t, rec).ErrorCode != c.wantCode {
						t.Errorf("%s to the %s extension: %d %s, want %d %s", c.name, name, rec.Code, rec.Body, c.wantStatus, c.wantCode)
					}
				}
				if !bytes.Equal(known.Body.Bytes(), unknown.Body.Bytes()) || !sameHeaders(known.Header(), unknown.Header()) {
					t.Errorf("%s: the 401 tells a known extension from an unknown one:\n%v %s\n%v %s",
						c.name, known.Header(), known.Body, unknown.Header(), unknown.Body)
				}
				if len(recv.got) != 0 {
					t.Errorf("%s: an unauthenticated request reached the receiver", c.name)
				}
			}
		})
	}
}

// sameHeaders compares two replies' headers but for the request id.
func sameHeaders(a, b http.Header) bool {
	a, b = a.Clone(), b.Clone()
	a.Del("X-Request-Id")
	b.Del("X-Request-Id")
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\n") != strings.Join(b[k], "\n") {
			return false
		}
	}
	return true
}

// Issue 21: a 401 line had no webhook-id, so a marketplace's ticket could
// not be matched to it. Every line of a delivery has it, refusals included,
// and every value taken from the request is cut: an 8 KB extension name
// made a 16 KB line (the extension, and again in the reason).
func TestEveryDeliveryLineHasTheWebhookID(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	sign, auth := newSigner(t)
	long := strings.Repeat("e", 8<<10)
	signedHeader := func(id string, body []byte) http.Header {
		h, err := signature.Headers(sign.secret, id, time.Now(), body)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	with := func(h http.Header, k, v string) http.Header { h = h.Clone(); h.Set(k, v); return h }
	tests := []struct {
		name       string
		ext        string
		body       []byte
		header     http.Header
		wantStatus int
		wantID     string
	}{
		{name: "success", ext: "plus", body: order, header: signedHeader("msg_ok", order), wantStatus: 200, wantID: "msg_ok"},
		{name: "401", ext: "plus", body: order, header: http.Header{"Webhook-Id": {"msg_unsigned"}}, wantStatus: 401, wantID: "msg_unsigned"},
		{name: "401 to an unknown extension", ext: "nobody", body: order, header: http.Header{"Webhook-Id": {"msg_who"}}, wantStatus: 401, wantID: "msg_who"},
		{name: "400", ext: "plus", body: []byte("{"), header: signedHeader("msg_bad", []byte("{")), wantStatus: 400, wantID: "msg_bad"},
		{name: "413", ext: "plus", body: bytes.Repeat([]byte(" "), MaxBody+1), header: http.Header{"Webhook-Id": {"msg_big"}}, wantStatus: 413, wantID: "msg_big"},
		{name: "415", ext: "plus", body: order, header: http.Header{"Webhook-Id": {"msg_xml"}, "Content-Type": {"text/xml"}}, wantStatus: 415, wantID: "msg_xml"},
		{name: "404", ext: "nobody", body: order, header: signedHeader("msg_lost", order), wantStatus: 404, wantID: "msg_lost"},
		{name: "431", ext: "plus", body: order, header: with(signedHeader("msg_hdr", order), "X-Big", strings.Repeat("h", MaxHeaderBytes)), wantStatus: 431, wantID: "msg_hdr"},
		{name: "8 KB extension, authenticated", ext: long, body: order, header: signedHeader("msg_long", order), wantStatus: 404, wantID: "msg_long"},
		{name: "8 KB extension, unsigned", ext: long, body: order, header: http.Header{"Webhook-Id": {"msg_long2"}}, wantStatus: 401, wantID: "msg_long2"},
		{name: "8 KB webhook-id", ext: "plus", body: order, header: http.Header{"Webhook-Id": {long}}, wantStatus: 401, wantID: logctx.Cut(long)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			h := New(Config{Receiver: &fakeReceiver{reply: okReply}, Auth: auth, Products: onePlusProduct(t), Logger: zap.New(core)})
			rec := do(t, h, http.MethodPost, "/marketplace/"+tt.ext, tt.body, tt.header)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %.300s", rec.Code, tt.wantStatus, rec.Body)
			}
			if rec.Body.Len() > 2*logctx.MaxValue+200 {
				t.Errorf("a %d-byte reply: %.300s", rec.Body.Len(), rec.Body)
			}
			lines := logs.All()
			if len(lines) != 1 {
				t.Fatalf("%d lines, want one", len(lines))
			}
			f := lines[0].ContextMap()
			if lines[0].Message != "delivery" || f["webhook_id"] != tt.wantID {
				t.Errorf("line %q webhook_id %.80q, want a delivery line with %.80q", lines[0].Message, f["webhook_id"], tt.wantID)
			}
			var size int
			for _, v := range f {
				if s, ok := v.(string); ok {
					size += len(s)
					if len(s) > 2*logctx.MaxValue {
						t.Errorf("a %d-byte value on the line: %.80q", len(s), s)
					}
				}
			}
			if size > 4*logctx.MaxValue {
				t.Errorf("the line's values hold %d bytes", size)
			}
		})
	}
}

// A request to no route with an 8 KB path gets a reply and a log line of a
// sane size: the path is cut in both.
func TestLongPathIsCut(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	h := New(Config{Receiver: &fakeReceiver{}, Logger: zap.New(core)})
	rec := do(t, h, http.MethodGet, "/"+strings.Repeat("x", 8<<10), nil, nil)
	if rec.Code != 404 || rec.Body.Len() > 2*logctx.MaxValue {
		t.Errorf("%d, a %d-byte reply: %.200s", rec.Code, rec.Body.Len(), rec.Body)
	}
	for k, v := range logs.All()[0].ContextMap() {
		if s, ok := v.(string); ok && len(s) > 2*logctx.MaxValue {
			t.Errorf("%s: a %d-byte value", k, len(s))
		}
	}
}

// Issue 21: with no API_TOKENS the read API answered "no such route". It
// says which setting turns it on.
func TestReadAPIOffSaysHowToTurnItOn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"one listener", Config{Receiver: &fakeReceiver{}}},
		{"tokens but no records", Config{Receiver: &fakeReceiver{}, APITokens: []string{"0123456789abcdef0123"}}},
	}
	for _, tt := range tests {
		for _, path := range []string{"/v1/subscriptions/sub-1", "/v1/deliveries?subscription_id=s", "/v1", "/v1/nothing/here"} {
			t.Run(tt.name+" "+path, func(t *testing.T) {
				t.Parallel()
				rec := do(t, New(tt.cfg), http.MethodGet, path, nil, nil)
				var doc struct{ Message string }
				if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 404 {
					t.Fatalf("%s: %d %s, want a JSON 404", path, rec.Code, rec.Body)
				}
				if !strings.Contains(doc.Message, "API_TOKENS") || strings.Contains(doc.Message, "no such route") {
					t.Errorf("%s: %q, want the message to name API_TOKENS", path, doc.Message)
				}
			})
		}
	}
}

// OPS_ADDR: Split serves the marketplace on the public handler only, and
// everything else (probes, metrics, /openapi.yaml, read API) on the ops
// handler only; New serves them all.
func TestSplitListeners(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("# metrics\n")) })
	cfg := Config{Receiver: &fakeReceiver{reply: okReply}, Metrics: metrics, Reader: fakeReader{},
		APITokens: []string{"0123456789abcdef0123"}}
	public, ops := Split(cfg)
	one := New(cfg)
	bearer := http.Header{"Authorization": {"Bearer 0123456789abcdef0123"}}
	tests := []struct {
		method, path string
		body         []byte
		header       http.Header
		public       bool // served by the public handler, else by the ops one
	}{
		{http.MethodPost, "/marketplace/plus", order, nil, true},
		{http.MethodGet, "/healthz", nil, nil, false},
		{http.MethodGet, "/readyz", nil, nil, false},
		{http.MethodGet, "/metrics", nil, nil, false},
		{http.MethodGet, "/v1/subscriptions/sub-1", nil, bearer, false},
		{http.MethodGet, "/openapi.yaml", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			on, off := public, ops
			if !tt.public {
				on, off = ops, public
			}
			for name, h := range map[string]http.Handler{"its listener": on, "one listener": one} {
				if rec := do(t, h, tt.method, tt.path, tt.body, tt.header); rec.Code != 200 {
					t.Errorf("%s %s on %s: %d %s, want 200", tt.method, tt.path, name, rec.Code, rec.Body)
				}
			}
			rec := do(t, off, tt.method, tt.path, tt.body, tt.header)
			if rec.Code != 404 {
				t.Errorf("%s %s on the other listener: %d %s, want 404", tt.method, tt.path, rec.Code, rec.Body)
			}
			if f := failure(t, rec); !strings.Contains(f.Message, "no such route") {
				t.Errorf("the other listener's 404 says %q", f.Message)
			}
		})
	}
}

// fakeReader knows one subscription, sub-1.
type fakeReader struct{}

func (fakeReader) Account(_ context.Context, sub string) (events.Account, error) {
	if sub != "sub-1" {
		return events.Account{}, events.ErrNotFound
	}
	return events.Account{SubscriptionID: sub, Status: events.AccountActive}, nil
}

func (fakeReader) AccountsOfUser(context.Context, int64) ([]events.Account, error) { return nil, nil }

func (fakeReader) Unsettled(context.Context, int) ([]events.Account, error) { return nil, nil }

func (fakeReader) ResultsPending(context.Context, int) ([]inbox.ResultJob, error) { return nil, nil }

func (fakeReader) Deliveries(context.Context, string) ([]inbox.DeliverySummary, error) {
	return nil, nil
}

func (fakeReader) AccountByIdentifier(context.Context, string) (events.Account, error) {
	return events.Account{}, events.ErrNotFound
}

func (fakeReader) DeliveryByKey(context.Context, string) (inbox.DeliverySummary, error) {
	return inbox.DeliverySummary{}, events.ErrNotFound
}

func (fakeReader) DeliveriesByKeys(context.Context, []string) ([]inbox.DeliverySummary, error) {
	return nil, nil
}

func (fakeReader) Failures(context.Context, time.Time, string, int) ([]inbox.DeliverySummary, string, error) {
	return nil, "", nil
}
