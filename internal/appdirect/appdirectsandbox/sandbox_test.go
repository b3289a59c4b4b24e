package appdirectsandbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/appdirect"
)

const orderEvent = `{"type":"SUBSCRIPTION_ORDER","marketplace":{"baseUrl":"https://elsewhere.example","partner":"ACME"},` +
	`"creator":{"uuid":"u-1","email":"a@b.example"},"payload":{"order":{"editionCode":"BASIC","items":[{"unit":"USER","quantity":"3"},{"unit":"GIGABYTE","quantity":10}]},"configuration":{}},"extra":null}`

// harness serves a Marketplace on a plain ServeMux, with a wrap that
// counts calls per route and plays one-shot fault statuses, as the frame
// does.
type harness struct {
	*Marketplace
	srv *httptest.Server

	mu      sync.Mutex
	wrapped []string
	calls   map[string]int
	faults  map[string]int // route → status of its next call
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{Marketplace: m, calls: map[string]int{}, faults: map[string]int{}}
	mux := http.NewServeMux()
	m.Register(mux, func(route string, next http.HandlerFunc) http.HandlerFunc {
		h.wrapped = append(h.wrapped, route)
		return func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			h.calls[route]++
			status := h.faults[route]
			delete(h.faults, route)
			h.mu.Unlock()
			if status != 0 {
				m.Fail(w, status, 0)
				return
			}
			next(w, r)
		}
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) count(route string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[route]
}

func (h *harness) fault(route string, status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults[route] = status
}

// do sends a request to the harness and returns the status, the body and
// the reply's headers.
func (h *harness) do(t *testing.T, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (h *harness) post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	status, b, _ := h.do(t, req)
	return status, b
}

func (h *harness) addEvent(t *testing.T, doc string) (token, eventURL string) {
	t.Helper()
	status, body := h.post(t, "/_sandbox/events", doc)
	var out struct{ Token, EventURL string }
	if err := json.Unmarshal([]byte(body), &out); status != 200 || err != nil || out.Token == "" {
		t.Fatalf("POST /_sandbox/events = %d %s", status, body)
	}
	return out.Token, out.EventURL
}

func (h *harness) client(t *testing.T, opts ...appdirect.Option) *appdirect.Client {
	t.Helper()
	if len(opts) == 0 {
		opts = []appdirect.Option{appdirect.WithOAuth1(DefaultConsumerKey, DefaultConsumerSecret)}
	}
	c, err := appdirect.NewClient([]string{h.srv.URL}, append(opts, appdirect.WithRetry(2, 0, 0))...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPart: the routes it declares are the ones it wraps, and they sit
// beside the frame's own patterns (copied from internal/sandbox, Q2's and
// Helix's) without a conflict.
func TestPart(t *testing.T) {
	t.Parallel()
	m, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range []string{
		"POST /{v}/oauth2/token", "POST /{v}/Enrollment", "DELETE /{v}/DeleteUser/{id}", "DELETE /{v}/DeleteCustomer/{id}",
		"POST /{v}/LookupUser", "POST /{v}/LookupCustomer", "POST /{v}/AddExternalAccount", "GET /{v}/GetAccountList",
		"GET /_sandbox/stats", "POST /_sandbox/faults", "POST /_sandbox/reset", "POST /account/addEntitlement",
		"GET /qbdconnect-api/{version}/customers/{id}", "POST /qbdconnect-api/{version}/customers",
	} {
		mux.HandleFunc(p, http.NotFound)
	}
	var wrapped []string
	m.Register(mux, func(route string, h http.HandlerFunc) http.HandlerFunc {
		wrapped = append(wrapped, route)
		return h
	})
	want := []string{RouteFetch, RouteResult, RouteToken}
	if !reflect.DeepEqual(m.Routes(), want) || !reflect.DeepEqual(wrapped, want) || m.Name() != "appdirect" {
		t.Errorf("Routes %v, wrapped %v, name %s", m.Routes(), wrapped, m.Name())
	}
}

func TestEndToEndOAuth1(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	token, eventURL := h.addEvent(t, orderEvent)
	if eventURL != h.srv.URL+appdirect.EventsPath+token || !appdirect.ValidToken(token) {
		t.Fatalf("eventUrl %s, token %s", eventURL, token)
	}
	ctx := context.Background()
	c := h.client(t)

	// Signed: the event, with the marketplace's own base URL.
	doc, err := c.FetchEvent(ctx, eventURL)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatal(err)
	}
	if mp := got["marketplace"].(map[string]any); mp["baseUrl"] != h.srv.URL || mp["partner"] != "ACME" || got["extra"] != nil || got["type"] != "SUBSCRIPTION_ORDER" {
		t.Errorf("event %s", doc)
	}
	if !strings.Contains(string(doc), `"quantity":"3"`) || !strings.Contains(string(doc), `"quantity":10`) {
		t.Errorf("the raw shapes were not kept: %s", doc)
	}

	// Unsigned, or signed with another secret: 401.
	req, _ := http.NewRequest(http.MethodGet, eventURL, nil)
	req.Header.Set("Accept", "application/json")
	if status, body, hdr := h.do(t, req); status != 401 || !strings.Contains(body, "UNAUTHORIZED") || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("unsigned fetch: %d %s", status, body)
	}
	bad := h.client(t, appdirect.WithOAuth1(DefaultConsumerKey, "guess"))
	if _, err := bad.FetchEvent(ctx, eventURL); !errors.Is(err, appdirect.ErrUnauthorized) {
		t.Errorf("wrong secret: %v", err)
	}

	// Without Accept: application/json, XML.
	req, _ = http.NewRequest(http.MethodGet, eventURL, nil)
	if err := appdirect.Sign(req, DefaultConsumerKey, DefaultConsumerSecret, time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	status, body, hdr := h.do(t, req)
	if status != 200 || hdr.Get("Content-Type") != "application/xml" || !strings.HasPrefix(body, "<?xml") ||
		!strings.Contains(body, "<type>SUBSCRIPTION_ORDER</type>") || !strings.Contains(body, "<items><unit>USER</unit><quantity>3</quantity></items>") {
		t.Errorf("fetch without Accept: %d %s %s", status, hdr.Get("Content-Type"), body)
	}

	// Unknown token: 404, which the client reads as NOT_FOUND.
	if _, err := c.FetchEvent(ctx, h.srv.URL+appdirect.EventsPath+"nosuchtoken"); !errors.Is(err, appdirect.ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}
	if n := h.count(RouteFetch); n != 5 {
		t.Errorf("appdirect.fetch counted %d, want 5", n)
	}

	// No result yet; then two posts, both recorded, the last one shown.
	if status, _ := h.get(t, "/_sandbox/results/"+token); status != 404 {
		t.Errorf("result before any: %d", status)
	}
	first := `{"success":true,"accountIdentifier":"acc-1"}`
	second := `{"success":false,"errorCode":"UNKNOWN_ERROR"}`
	for _, res := range []string{first, second} {
		if err := c.PostResult(ctx, h.srv.URL, token, []byte(res)); err != nil {
			t.Fatalf("PostResult: %v", err)
		}
	}
	req, _ = http.NewRequest(http.MethodGet, h.srv.URL+"/_sandbox/results/"+token, nil)
	status, body, hdr = h.do(t, req)
	if status != 200 || body != second || hdr.Get("X-Sandbox-Result-Posts") != "2" {
		t.Errorf("GET result = %d %s (posts %s)", status, body, hdr.Get("X-Sandbox-Result-Posts"))
	}
	if res := h.Results(token); len(res) != 2 || string(res[0]) != first {
		t.Errorf("Results = %q", res)
	}
	if st := h.Stats().(Stats); st != (Stats{Events: 1, Results: 2}) {
		t.Errorf("stats %+v", st)
	}
	if n := h.count(RouteResult); n != 2 {
		t.Errorf("appdirect.result counted %d, want 2", n)
	}

	h.Reset()
	if st := h.Stats().(Stats); st != (Stats{}) {
		t.Errorf("stats after Reset %+v", st)
	}
	if _, err := c.FetchEvent(ctx, eventURL); !errors.Is(err, appdirect.ErrNotFound) {
		t.Errorf("after Reset: %v", err)
	}
}

func (h *harness) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
	status, body, _ := h.do(t, req)
	return status, body
}

func TestResultRoute(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	token, _ := h.addEvent(t, `{"type":"SUBSCRIPTION_CANCEL"}`)
	signedPost := func(path, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if err := appdirect.Sign(req, DefaultConsumerKey, DefaultConsumerSecret, time.Now(), ""); err != nil {
			t.Fatal(err)
		}
		status, b, _ := h.do(t, req)
		return status, b
	}
	for _, tt := range []struct {
		path, body string
		want       int
	}{
		{"/api/integration/v1/events/" + token + "/result", `{"success":"true"}`, 400},
		{"/api/integration/v1/events/" + token + "/result", `not json`, 400},
		{"/api/integration/v1/events/" + token + "/result", `{}`, 400},
		{"/api/integration/v1/events/unknown/result", `{"success":true}`, 404},
		{"/api/integration/v1/events/" + token + "/result", `{"success":true}`, 204},
	} {
		if status, body := signedPost(tt.path, tt.body); status != tt.want {
			t.Errorf("POST %s %s = %d %s, want %d", tt.path, tt.body, status, body, tt.want)
		}
	}
	// Unsigned: refused and not recorded.
	if status, _ := h.post(t, "/api/integration/v1/events/"+token+"/result", `{"success":false}`); status != 401 {
		t.Errorf("unsigned result: %d", status)
	}
	if res := h.Results(token); len(res) != 1 {
		t.Errorf("results %q", res)
	}
	for _, body := range []string{`[]`, `nope`, `null`} {
		if status, _ := h.post(t, "/_sandbox/events", body); status != 400 {
			t.Errorf("event %s: %d", body, status)
		}
	}
}

// TestFaults: the frame's faults on appdirect.fetch and appdirect.result
// reach the client as the transient failures they are.
func TestFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{})
	token, eventURL := h.addEvent(t, orderEvent)
	c := h.client(t)
	ctx := context.Background()
	h.fault(RouteFetch, 503)
	if _, err := c.FetchEvent(ctx, eventURL); err != nil { // the second attempt gets it
		t.Errorf("fetch after one 503: %v", err)
	}
	h.fault(RouteResult, 503)
	err := c.PostResult(ctx, h.srv.URL, token, []byte(`{"success":true}`))
	var sc interface{ StatusCode() int }
	if !errors.Is(err, appdirect.ErrTransient) || !errors.As(err, &sc) || sc.StatusCode() != 503 {
		t.Errorf("result post with a 503 fault: %v", err)
	}
	if len(h.Results(token)) != 0 || h.count(RouteResult) != 1 {
		t.Errorf("the failed post was recorded or retried: %d results, %d calls", len(h.Results(token)), h.count(RouteResult))
	}
	rec := httptest.NewRecorder()
	h.Fail(rec, 429, 7)
	if rec.Code != 429 || !strings.Contains(rec.Body.String(), `"code":"TOO_MANY_REQUESTS"`) {
		t.Errorf("Fail: %d %s", rec.Code, rec.Body)
	}
}

// TestOAuth2: the separate-credentials mode: the client takes a token from
// the marketplace's /oauth2/token, and fetches and posts with it; a token
// the marketplace forgot is refreshed.
func TestOAuth2(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{ClientID: "cid", ClientSecret: "csecret"})
	token, eventURL := h.addEvent(t, orderEvent)
	ctx := context.Background()
	c := h.client(t, appdirect.WithOAuth2("cid", "csecret"))
	if _, err := c.FetchEvent(ctx, eventURL); err != nil {
		t.Fatal(err)
	}
	if err := c.PostResult(ctx, h.srv.URL, token, []byte(`{"success":true}`)); err != nil {
		t.Fatal(err)
	}
	if n := h.count(RouteToken); n != 1 {
		t.Errorf("token route called %d times, want 1", n)
	}
	// Forget the tokens (and the event): the next call is refused once,
	// and works with a new token.
	h.Reset()
	_, eventURL = h.addEvent(t, orderEvent)
	if _, err := c.FetchEvent(ctx, eventURL); err != nil {
		t.Errorf("after the tokens were forgotten: %v", err)
	}
	if n := h.count(RouteToken); n != 2 {
		t.Errorf("token route called %d times, want 2", n)
	}
	wrong := h.client(t, appdirect.WithOAuth2("cid", "guess"))
	if _, err := wrong.FetchEvent(ctx, eventURL); !errors.Is(err, appdirect.ErrUnauthorized) {
		t.Errorf("wrong client secret: %v", err)
	}
	// A bearer token is not a way around the signature with a made-up value.
	req, _ := http.NewRequest(http.MethodGet, eventURL, nil)
	req.Header.Set("Authorization", "Bearer made-up")
	if status, _, _ := h.do(t, req); status != 401 {
		t.Errorf("made-up bearer: %d", status)
	}
	// Form credentials are taken too; a wrong grant is refused.
	status, body := h.postForm(t, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"csecret"}})
	if status != 200 || !strings.Contains(body, `"access_token"`) {
		t.Errorf("form credentials: %d %s", status, body)
	}
	if status, _ := h.postForm(t, "/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"cid"}, "client_secret": {"csecret"}}); status != 400 {
		t.Errorf("password grant: %d", status)
	}
}

func (h *harness) postForm(t *testing.T, path string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, body, _ := h.do(t, req)
	return status, body
}

// service is a fake of the service's AppDirect door: it records the
// notification and answers what reply says.
type service struct {
	srv *httptest.Server

	mu   sync.Mutex
	reqs []*http.Request
}

func newService(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) *service {
	t.Helper()
	s := &service{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Clone(context.Background()))
		s.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *service) received() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

func TestNotifyOAuth1(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{ConsumerKey: "ck", ConsumerSecret: "cs"})
	token, eventURL := h.addEvent(t, orderEvent)
	verify, _ := appdirect.NewVerifier(appdirect.VerifierConfig{Consumers: []appdirect.Consumer{{Key: "ck", Secret: "cs"}}, Nonces: &appdirect.MemoryNonces{}})
	svc := newService(t, func(w http.ResponseWriter, r *http.Request) {
		if _, err := verify.Verify(r.Context(), r); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"success":true}`)
	})
	status, body := h.post(t, "/_sandbox/notify", `{"url":"`+svc.srv.URL+`/appdirect/events?x=1","token":"`+token+`"}`)
	if status != 200 || body != `{"status":202,"body":{"success":true}}`+"\n" {
		t.Fatalf("notify = %d %s", status, body)
	}
	reqs := svc.received()
	if len(reqs) != 1 {
		t.Fatalf("the service received %d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodGet || r.URL.Path != "/appdirect/events" || r.URL.Query().Get("eventUrl") != eventURL || r.URL.Query().Get("x") != "1" ||
		!strings.HasPrefix(r.Header.Get("Authorization"), "OAuth ") {
		t.Errorf("notification %s %s, Authorization %s", r.Method, r.URL, r.Header.Get("Authorization"))
	}
	// The eventUrl it names passes the service's guard and can be fetched.
	c := h.client(t, appdirect.WithOAuth1("ck", "cs"))
	raw := r.URL.Query().Get("eventUrl")
	tok, market, err := c.EventURL(raw)
	if err != nil || tok != token {
		t.Fatalf("EventURL: %q, %q, %v", tok, market, err)
	}
	if _, err := c.FetchEvent(context.Background(), raw); err != nil {
		t.Errorf("fetching the notified event: %v", err)
	}
	if err := c.PostResult(context.Background(), market, tok, []byte(`{"success":true}`)); err != nil || len(h.Results(token)) != 1 {
		t.Errorf("posting its result: %v", err)
	}

	// A service that answers text: the body is a JSON string.
	text := newService(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "forbidden\n")
	})
	if status, body := h.post(t, "/_sandbox/notify", `{"url":"`+text.srv.URL+`","token":"`+token+`"}`); status != 200 || body != `{"status":403,"body":"forbidden\n"}`+"\n" {
		t.Errorf("text reply: %d %s", status, body)
	}
	for _, tt := range []struct {
		body string
		want int
	}{
		{`{"url":"` + svc.srv.URL + `","token":"nosuch"}`, 404},
		{`{"url":"/relative","token":"` + token + `"}`, 400},
		{`{"url":"` + svc.srv.URL + `","token":"` + token + `","extra":1}`, 400},
		{`{"url":"http://127.0.0.1:1/","token":"` + token + `"}`, 502},
	} {
		if status, body := h.post(t, "/_sandbox/notify", tt.body); status != tt.want {
			t.Errorf("notify %s = %d %s, want %d", tt.body, status, body, tt.want)
		}
	}
	if n := len(svc.received()); n != 1 {
		t.Errorf("the service received %d requests, want 1", n)
	}
}

func TestNotifyCredentials(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		cfg  Config
		want string // the user Verify names
	}{
		{"bearer", Config{NotifyToken: "notify-tok"}, "bearer"},
		{"basic", Config{NotifyBasic: "appdirect:pw:1"}, "appdirect"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, tt.cfg)
			token, _ := h.addEvent(t, orderEvent)
			verify, _ := appdirect.NewCredentialVerifier([]string{"notify-tok"}, []string{"appdirect:pw:1"})
			svc := newService(t, func(w http.ResponseWriter, r *http.Request) {
				who, err := verify.Verify(r.Context(), r)
				if err != nil || who != tt.want {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				io.WriteString(w, `{"success":true}`)
			})
			if status, body := h.post(t, "/_sandbox/notify", `{"url":"`+svc.srv.URL+`","token":"`+token+`"}`); status != 200 || !strings.Contains(body, `"status":200`) {
				t.Errorf("notify = %d %s", status, body)
			}
		})
	}
}

// TestBaseURL: a configured base URL is the start of each eventUrl and
// the URL the signatures are checked over, whatever Host a request has.
func TestBaseURL(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Config{BaseURL: "https://market.example/"})
	token, eventURL := h.addEvent(t, orderEvent)
	if eventURL != "https://market.example"+appdirect.EventsPath+token {
		t.Errorf("eventUrl %s", eventURL)
	}
	// Signed for the public URL, sent to the listener: accepted.
	req, _ := http.NewRequest(http.MethodGet, eventURL, nil)
	req.Header.Set("Accept", "application/json")
	if err := appdirect.Sign(req, DefaultConsumerKey, DefaultConsumerSecret, time.Now(), ""); err != nil {
		t.Fatal(err)
	}
	req.URL, _ = url.Parse(h.srv.URL + appdirect.EventsPath + token)
	req.Host = ""
	if status, body, _ := h.do(t, req); status != 200 || !strings.Contains(body, `"baseUrl":"https://market.example"`) {
		t.Errorf("fetch = %d %s", status, body)
	}
	for _, bad := range []Config{{BaseURL: "market.example"}, {BaseURL: "https://m.example/x"}, {NotifyToken: "a", NotifyBasic: "b:c"}, {NotifyBasic: "nocolon"}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) succeeded", bad)
		}
	}
}

func TestXMLName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"type": "type", "9lives": "_9lives", "a b": "a_b", "": "_", "x-1.y": "x-1.y", "é": "_"} {
		if got := xmlName(in); got != want {
			t.Errorf("xmlName(%q) = %q, want %q", in, got, want)
		}
	}
}
