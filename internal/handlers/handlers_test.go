package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/canonjson"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/products"
)

// fakeReceiver answers every delivery with reply or err and remembers what
// it got.
type fakeReceiver struct {
	mu    sync.Mutex
	got   []inbox.Delivery
	reply inbox.Answer
	err   error
	hook  func()

	copies   map[string]inbox.Copy // answered copies by copy key
	copyKeys []string              // the copy keys asked for
}

// Copy answers a copy key the fake was given in copies, as the inbox
// answers a byte-identical copy of an answered delivery.
func (f *fakeReceiver) Copy(_ context.Context, copyKey string) (inbox.Answer, inbox.Copy, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.copyKeys = append(f.copyKeys, copyKey)
	c, ok := f.copies[copyKey]
	if !ok {
		return inbox.Answer{}, c, false
	}
	return inbox.Answer{Kind: events.Final, Body: []byte(c.Body), Code: "REPLAYED", Replayed: true}, c, true
}

func (f *fakeReceiver) Receive(_ context.Context, d inbox.Delivery) (inbox.Answer, error) {
	f.mu.Lock()
	f.got = append(f.got, d)
	f.mu.Unlock()
	if f.hook != nil {
		f.hook()
	}
	return f.reply, f.err
}

type fakeAuth struct{ err error }

func (a fakeAuth) Authenticate(*http.Request, []byte) error { return a.err }

func orderFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/subscription-order.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withEventKeys puts members at the start of body's event object.
func withEventKeys(t testing.TB, body []byte, members string) []byte {
	t.Helper()
	out := bytes.Replace(body, []byte(`"event": {`), []byte(`"event": {`+members+`,`), 1)
	if bytes.Equal(out, body) {
		t.Fatal("the fixture has no event object")
	}
	return out
}

func do(t *testing.T, h http.Handler, method, path string, body []byte, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// failure decodes a failure document, failing the test if the reply is not
// exactly one.
func failure(t *testing.T, rec *httptest.ResponseRecorder) events.Reply {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("reply is not JSON: %q", rec.Body)
	}
	if len(doc) != 3 || doc["success"] != false || doc["errorCode"] == nil || doc["message"] == nil {
		t.Fatalf("reply is not a failure document: %s", rec.Body)
	}
	var r events.Reply
	_ = json.Unmarshal(rec.Body.Bytes(), &r)
	return r
}

func TestMarketplaceStatuses(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	jsonCT := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name       string
		method     string
		path       string
		body       []byte
		header     http.Header
		auth       Authenticator
		receiver   *fakeReceiver
		wantStatus int
		wantCode   events.ErrorCode // "" for a success reply
		wantMsg    string
		wantRetry  string
	}{
		{name: "success", body: order, header: jsonCT, receiver: &fakeReceiver{reply: okReply}, wantStatus: 200},
		{name: "no content type", body: order, receiver: &fakeReceiver{reply: okReply}, wantStatus: 200},
		{name: "json with charset", body: order, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, receiver: &fakeReceiver{reply: okReply}, wantStatus: 200},
		{name: "not JSON", body: []byte("hello"), wantStatus: 400, wantCode: events.InvalidResponse, wantMsg: "body is not valid JSON"},
		{name: "validation names the field", body: []byte(`{"event":{},"event_type":"SUBSCRIPTION_ORDER","user_id":"x"}`), wantStatus: 400, wantCode: events.InvalidResponse, wantMsg: "user_id must be an integer; subscription_id is required"},
		{name: "too large", body: bytes.Repeat([]byte(" "), MaxBody+1), wantStatus: 413, wantCode: events.InvalidResponse, wantMsg: "larger than 1 MiB"},
		{name: "wrong content type", body: order, header: http.Header{"Content-Type": {"text/xml"}}, wantStatus: 415, wantCode: events.InvalidResponse, wantMsg: "Content-Type"},
		{name: "bad signature", body: order, auth: fakeAuth{errors.New("no matching signature")}, wantStatus: 401, wantCode: events.Unauthorized},
		{name: "good signature", body: order, auth: fakeAuth{}, receiver: &fakeReceiver{reply: okReply}, wantStatus: 200},
		{name: "keys read as one (issue 10 item 5)", body: withEventKeys(t, order, `"Flag":"STATELESS","flag":""`), wantStatus: 400, wantCode: events.InvalidResponse, wantMsg: `"event.Flag" and "event.flag" differ only in case`},
		{name: "keys read as one, reversed", body: withEventKeys(t, order, `"flag":"","Flag":"STATELESS"`), wantStatus: 400, wantCode: events.InvalidResponse, wantMsg: `"event.flag" and "event.Flag" differ only in case`},
		{name: "a key twice", body: withEventKeys(t, order, `"flag":"","flag":""`), wantStatus: 400, wantCode: events.InvalidResponse, wantMsg: `"event.flag" is sent twice`},
		{name: "bad webhook-id", body: order, header: http.Header{"Webhook-Id": {"has space"}}, wantStatus: 400, wantCode: events.InvalidResponse, wantMsg: "webhook-id"},
		{name: "GET not allowed", method: http.MethodGet, wantStatus: 405, wantCode: events.ConfigurationError},
		{name: "PUT not allowed", method: http.MethodPut, body: order, wantStatus: 405, wantCode: events.ConfigurationError},
		{name: "unknown route", path: "/nope", wantStatus: 404, wantCode: events.ConfigurationError},
		{name: "pending", body: order, receiver: &fakeReceiver{err: &Error{Status: 409, Code: events.Pending, Message: "later", RetryAfter: 3 * time.Second}}, wantStatus: 409, wantCode: events.Pending, wantRetry: "3"},
		{name: "reused id", body: order, receiver: &fakeReceiver{err: &Error{Status: 422, Code: events.InvalidResponse, Message: "different body"}}, wantStatus: 422, wantCode: events.InvalidResponse},
		{name: "store down", body: order, receiver: &fakeReceiver{err: &Error{Status: 503, Code: events.TransportError, Message: "down", RetryAfter: 5 * time.Second}}, wantStatus: 503, wantCode: events.TransportError, wantRetry: "5"},
		{name: "unexpected error is a generic 500", body: order, receiver: &fakeReceiver{err: errors.New("secret detail")}, wantStatus: 500, wantCode: events.UnknownError, wantMsg: "internal error"},
		{name: "panic is a generic 500", body: order, receiver: &fakeReceiver{hook: func() { panic("boom") }}, wantStatus: 500, wantCode: events.UnknownError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			recv := tt.receiver
			if recv == nil {
				recv = &fakeReceiver{reply: okReply}
			}
			h := New(Config{Receiver: recv, Auth: tt.auth})
			method, path := tt.method, tt.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/marketplace/my-product-name"
			}
			rec := do(t, h, method, path, tt.body, tt.header)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantCode == "" {
				if rec.Body.String() != string(okReply.Body) {
					t.Errorf("body = %s, want the receiver's bytes", rec.Body)
				}
				return
			}
			r := failure(t, rec)
			if r.ErrorCode != tt.wantCode || !strings.Contains(r.Message, tt.wantMsg) {
				t.Errorf("reply = %+v, want %s containing %q", r, tt.wantCode, tt.wantMsg)
			}
			if strings.Contains(rec.Body.String(), "secret detail") {
				t.Error("an internal error's detail reached the client")
			}
			if got := rec.Header().Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetry)
			}
			if (tt.wantStatus == 400 || tt.wantStatus == 401 || tt.wantStatus == 413 || tt.wantStatus == 415) && len(recv.got) != 0 {
				t.Error("a refused request reached the receiver")
			}
		})
	}
}

func TestDeliveryKeyAndReplay(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	recv := &fakeReceiver{reply: inbox.Answer{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"1"}`), Replayed: true}}
	h := New(Config{Receiver: recv})

	rec := do(t, h, http.MethodPost, "/marketplace/x", order, http.Header{"Webhook-Id": {"msg_1"}})
	if rec.Header().Get("Idempotent-Replayed") != "true" {
		t.Error("a replayed reply lacks Idempotent-Replayed: true")
	}
	// Without webhook-id the key is the canonical body's hash: whitespace and
	// key order do not change it.
	var m map[string]any
	_ = json.Unmarshal(order, &m)
	compact, _ := json.Marshal(m)
	do(t, h, http.MethodPost, "/marketplace/x", order, nil)
	do(t, h, http.MethodPost, "/marketplace/x", compact, nil)

	if len(recv.got) != 3 {
		t.Fatalf("receiver got %d deliveries, want 3", len(recv.got))
	}
	if recv.got[0].Key != "id:msg_1" {
		t.Errorf("key with webhook-id = %q", recv.got[0].Key)
	}
	fp, _ := canonjson.Fingerprint(order)
	if recv.got[1].Key != "sha256:"+fp || recv.got[2].Key != recv.got[1].Key {
		t.Errorf("body keys = %q, %q, want both sha256:%s", recv.got[1].Key, recv.got[2].Key, fp)
	}
	if recv.got[0].Fingerprint != fp {
		t.Error("a keyed delivery lacks its body fingerprint")
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	var readyErr error
	var mu sync.Mutex
	h := New(Config{Receiver: &fakeReceiver{}, Ready: func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return readyErr
	}})
	if rec := do(t, h, http.MethodGet, "/healthz", nil, nil); rec.Code != 200 {
		t.Errorf("/healthz = %d", rec.Code)
	}
	if rec := do(t, h, http.MethodGet, "/readyz", nil, nil); rec.Code != 200 {
		t.Errorf("/readyz = %d, want 200", rec.Code)
	}
	mu.Lock()
	readyErr = errors.New("redis down")
	mu.Unlock()
	if rec := do(t, h, http.MethodGet, "/readyz", nil, nil); rec.Code != 503 {
		t.Errorf("/readyz with Redis down = %d, want 503", rec.Code)
	}
}

// headerAuth authenticates requests that carry X-Signed.
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request, _ []byte) error {
	if r.Header.Get("X-Signed") == "" {
		return errors.New("unsigned")
	}
	return nil
}

// The processing slots are taken only after authentication: with every
// slot busy, an unsigned request is still told 401, a signed one 503.
func TestInFlightCap(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	recv := &fakeReceiver{reply: inbox.Answer{Kind: events.Final, Body: []byte(`{}`)}, hook: func() {
		entered <- struct{}{}
		<-release
	}}
	h := New(Config{Receiver: recv, MaxInFlight: 1, Auth: headerAuth{}})
	order := orderFixture(t)
	signed := http.Header{"X-Signed": {"1"}}
	done := make(chan int)
	go func() { done <- do(t, h, http.MethodPost, "/marketplace/x", order, signed).Code }()
	<-entered
	if rec := do(t, h, http.MethodPost, "/marketplace/x", order, nil); rec.Code != 401 {
		t.Errorf("unsigned, every slot busy: %d, want 401 (authentication comes before the slot)", rec.Code)
	}
	rec := do(t, h, http.MethodPost, "/marketplace/x", order, signed)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("past the cap: status %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	failure(t, rec)
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("the delivery in flight got %d", code)
	}
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	a := Basic("market", "s3cret")
	tests := []struct {
		user, pass string
		set, ok    bool
	}{
		{"market", "s3cret", true, true},
		{"market", "wrong", true, false},
		{"other", "s3cret", true, false},
		{"market", "s3cret2", true, false},
		{"", "", false, false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		if tt.set {
			req.SetBasicAuth(tt.user, tt.pass)
		}
		if err := a.Authenticate(req, nil); (err == nil) != tt.ok {
			t.Errorf("Authenticate(%q, %q) = %v, want ok=%v", tt.user, tt.pass, err, tt.ok)
		}
	}
}

// Routing: an extension of no product is 404; an event whose
// product_identifier is another product's is answered CONFIGURATION_ERROR
// and not processed; the delivery carries its product.
func TestRoutingByExtension(t *testing.T) {
	t.Parallel()
	catalog, err := products.Parse([]byte(`{"products": [
	  {"name": "Plus", "product_id": "obp", "extension_list": ["plus"], "targets": ["q2"]},
	  {"name": "Desk", "product_id": "desk", "extension_list": ["desk"], "targets": ["q2"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	order := orderFixture(t) // product_identifier is empty
	withID := func(id string) []byte {
		var m map[string]any
		_ = json.Unmarshal(order, &m)
		m["product_identifier"] = id
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name, ext   string
		body        []byte
		wantStatus  int
		wantCode    events.ErrorCode
		wantProduct string
	}{
		{"known extension", "plus", order, 200, "", "Plus"},
		{"matching product_identifier", "desk", withID("desk"), 200, "", "Desk"},
		{"unknown extension", "nobody", order, 404, events.ConfigurationError, ""},
		{"another product's identifier", "plus", withID("desk"), 200, events.ConfigurationError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			recv := &fakeReceiver{reply: inbox.Answer{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"1"}`)}}
			h := New(Config{Receiver: recv, Products: catalog})
			rec := do(t, h, http.MethodPost, "/marketplace/"+tt.ext, tt.body, nil)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantCode != "" {
				if got := failure(t, rec); got.ErrorCode != tt.wantCode {
					t.Fatalf("code %s, want %s", got.ErrorCode, tt.wantCode)
				}
				if tt.wantStatus == 200 && !strings.Contains(rec.Body.String(), `\"desk\"`) || len(recv.got) != 0 {
					t.Fatalf("reply %s names neither product, or the event was processed (%d)", rec.Body, len(recv.got))
				}
				return
			}
			if len(recv.got) != 1 || recv.got[0].Product != tt.wantProduct {
				t.Fatalf("deliveries %+v, want one for product %q", recv.got, tt.wantProduct)
			}
		})
	}
}

// A byte-identical copy of an answered delivery is answered from its copy
// key before any JSON work and without a processing slot: it is not shed
// when every slot is taken. A copy with other bytes takes the whole path.
func TestCopiesAreAnsweredBeforeDecoding(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	stored := inbox.Copy{Key: "id:msg_1", EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-1", Body: `{"success":true,"accountIdentifier":"7"}`}
	release, entered := make(chan struct{}), make(chan struct{}, 1)
	recv := &fakeReceiver{
		reply:  inbox.Answer{Kind: events.Final, Body: []byte(`{}`)},
		copies: map[string]inbox.Copy{copyKeyOf(products.DefaultName, "msg_1", order): stored},
		hook:   func() { entered <- struct{}{}; <-release },
	}
	h := New(Config{Receiver: recv, MaxInFlight: 1})
	// Hold the only processing slot with another delivery.
	done := make(chan int)
	go func() {
		done <- do(t, h, http.MethodPost, "/marketplace/x", order, http.Header{"Webhook-Id": {"msg_other"}}).Code
	}()
	<-entered

	rec := do(t, h, http.MethodPost, "/marketplace/x", order, http.Header{"Webhook-Id": {"msg_1"}})
	if rec.Code != 200 || rec.Body.String() != stored.Body || rec.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the copy got %d %s (replayed %q), want the stored bytes", rec.Code, rec.Body, rec.Header().Get("Idempotent-Replayed"))
	}
	// Same id, other bytes: not the stored copy; the whole path (here, at
	// capacity) decides.
	other := bytes.Replace(order, []byte(`"BASIC"`), []byte(`"PREMIUM"`), 1)
	if rec := do(t, h, http.MethodPost, "/marketplace/x", other, http.Header{"Webhook-Id": {"msg_1"}}); rec.Code != 503 {
		t.Errorf("a copy with other bytes: %d, want the whole path (503 at capacity)", rec.Code)
	}
	// The same bytes sent to another product's extension are not its copy.
	if copyKeyOf("Desk", "msg_1", order) == copyKeyOf(products.DefaultName, "msg_1", order) {
		t.Error("the copy key ignores the product")
	}
	close(release)
	<-done
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.got) != 1 {
		t.Errorf("Receive was called %d times, want once (the slot holder)", len(recv.got))
	}
}

// BenchmarkCopyKey is the only work a byte-identical copy costs before its
// one Redis round trip: a SHA-256 of the webhook-id and the raw body, in hex.
//
//	go test -run '^$' -bench CopyKey -benchmem ./internal/handlers
func BenchmarkCopyKey(b *testing.B) {
	body, err := os.ReadFile("../events/testdata/subscription-order.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if k := copyKeyOf("Online Banking Plus", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", body); len(k) != 64 {
			b.Fatalf("copy key %q is not 64 hex digits", k)
		}
	}
}
