package appdirect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

const event = `{"type":"SUBSCRIPTION_ORDER","marketplace":{"baseUrl":"https://market.example","partner":"ACME"}}`

// market is a fake AppDirect marketplace: it checks the OAuth 1.0a
// signature with a Verifier and answers with the handler's reply.
type fakeMarket struct {
	srv    *httptest.Server
	verify *Verifier

	mu       sync.Mutex
	calls    []string // "GET /api/…", in order
	bodies   []string
	accepts  []string
	problems []string // what a request did wrong
	reply    func(n int, w http.ResponseWriter, r *http.Request)
}

func newFakeMarket(t *testing.T, reply func(n int, w http.ResponseWriter, r *http.Request)) *fakeMarket {
	t.Helper()
	m := &fakeMarket{reply: reply}
	m.verify, _ = NewVerifier(VerifierConfig{Consumers: []Consumer{{"ck", "cs"}}, Nonces: &MemoryNonces{}})
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		n := len(m.calls)
		m.calls = append(m.calls, r.Method+" "+r.URL.Path)
		m.bodies = append(m.bodies, string(body))
		m.accepts = append(m.accepts, r.Header.Get("Accept"))
		m.mu.Unlock()
		if strings.HasPrefix(r.Header.Get("Authorization"), "OAuth") {
			if _, err := m.verify.Verify(r.Context(), r); err != nil {
				m.mu.Lock()
				m.problems = append(m.problems, err.Error())
				m.mu.Unlock()
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		m.reply(n, w, r)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMarket) seen() (calls, bodies, accepts, problems []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...), append([]string(nil), m.bodies...), append([]string(nil), m.accepts...), append([]string(nil), m.problems...)
}

func okEvent(_ int, w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, event)
}

func newTestClient(t *testing.T, markets []string, opts ...Option) *Client {
	t.Helper()
	c, err := NewClient(markets, append([]Option{WithRetry(3, 0, 0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFetchEventSigned(t *testing.T) {
	t.Parallel()
	m := newFakeMarket(t, okEvent)
	var attempts []httpcall.Attempt
	var mu sync.Mutex
	c := newTestClient(t, []string{m.srv.URL}, WithOAuth1("ck", "cs"), WithObserver(func(_ context.Context, a httpcall.Attempt) {
		mu.Lock()
		attempts = append(attempts, a)
		mu.Unlock()
	}))
	got, err := c.FetchEvent(context.Background(), m.srv.URL+"/api/integration/v1/events/tok-1")
	if err != nil || string(got) != event {
		t.Fatalf("FetchEvent = %s, %v", got, err)
	}
	calls, _, accepts, problems := m.seen()
	if len(calls) != 1 || calls[0] != "GET /api/integration/v1/events/tok-1" || accepts[0] != "application/json" || len(problems) != 0 {
		t.Errorf("calls %v, Accept %v, problems %v", calls, accepts, problems)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 1 || attempts[0].System != "appdirect" || attempts[0].Action != ActionFetch || attempts[0].Status != 200 {
		t.Errorf("attempts %+v", attempts)
	}
	// A wrong secret is refused by the marketplace: ErrUnauthorized, not retried.
	bad := newTestClient(t, []string{m.srv.URL}, WithOAuth1("ck", "wrong"))
	_, err = bad.FetchEvent(context.Background(), m.srv.URL+"/api/integration/v1/events/tok-1")
	var ae *APIError
	if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrRefused) || !errors.As(err, &ae) || ae.StatusCode() != 401 {
		t.Errorf("wrong secret: %v", err)
	}
	if calls, _, _, _ := m.seen(); len(calls) != 2 {
		t.Errorf("a refusal was retried: %v", calls)
	}
}

// A consumer secret in rotation: AppDirect (the fake, which knows only
// "cs") refuses the first secret given with 401; the call is made again
// with the next secret, and that one signs from then on. A call refused
// by every secret fails with ErrUnauthorized, each tried once.
func TestOAuth1SecretRotation(t *testing.T) {
	t.Parallel()
	m := newFakeMarket(t, okEvent)
	c := newTestClient(t, []string{m.srv.URL}, WithOAuth1("ck", "old", "cs"))
	url := m.srv.URL + "/api/integration/v1/events/tok-1"
	for i := range 2 {
		if got, err := c.FetchEvent(context.Background(), url); err != nil || string(got) != event {
			t.Fatalf("fetch %d: %s, %v", i, got, err)
		}
	}
	if _, _, _, problems := m.seen(); len(problems) != 1 {
		t.Errorf("%d refusals (%v), want 1: the old secret once, then the new one only", len(problems), problems)
	}
	none := newTestClient(t, []string{m.srv.URL}, WithOAuth1("ck", "old", "older"))
	if _, err := none.FetchEvent(context.Background(), url); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("no secret right: %v, want ErrUnauthorized", err)
	}
	if _, _, _, problems := m.seen(); len(problems) != 3 {
		t.Errorf("%d refusals in all, want 3 (each wrong secret once)", len(problems))
	}
}

// TestFetchEventGuard: an eventUrl outside the configured marketplaces is
// never requested.
func TestFetchEventGuard(t *testing.T) {
	t.Parallel()
	m := newFakeMarket(t, okEvent)
	evil := newFakeMarket(t, okEvent)
	c := newTestClient(t, []string{m.srv.URL}, WithOAuth1("ck", "cs"))
	for _, u := range []string{
		evil.srv.URL + "/api/integration/v1/events/t",
		m.srv.URL + "/api/integration/v1/events/../../x",
		strings.Replace(m.srv.URL, "http://", "http://x@", 1) + "/api/integration/v1/events/t",
		m.srv.URL + "/other",
	} {
		_, err := c.FetchEvent(context.Background(), u)
		if !errors.Is(err, ErrBadArgument) || !errors.Is(err, ErrEventURL) {
			t.Errorf("FetchEvent(%s): %v", u, err)
		}
	}
	calls1, _, _, _ := m.seen()
	calls2, _, _, _ := evil.seen()
	if len(calls1)+len(calls2) != 0 {
		t.Errorf("requests were sent: %v %v", calls1, calls2)
	}
}

func TestFetchEventReplies(t *testing.T) {
	t.Parallel()
	elsewhere := newFakeMarket(t, okEvent)
	tests := []struct {
		name      string
		reply     func(n int, w http.ResponseWriter, r *http.Request)
		opts      []Option
		wantErr   []error
		wantCalls int
	}{
		{"redirect not followed", func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.srv.URL+"/api/integration/v1/events/t", http.StatusFound)
		}, nil, []error{ErrInvalidResponse}, 1},
		{"body over the limit", func(_ int, w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, `{"pad":"%s"}`, strings.Repeat("x", DefaultMaxEvent))
		}, nil, []error{ErrInvalidResponse}, 1},
		{"body over a smaller limit", okEvent, []Option{WithMaxEvent(16)}, []error{ErrInvalidResponse}, 1},
		{"XML", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			io.WriteString(w, `<event><type>SUBSCRIPTION_ORDER</type></event>`)
		}, nil, []error{ErrInvalidResponse}, 1},
		{"JSON but not an object", func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `[1]`) }, nil, []error{ErrInvalidResponse}, 1},
		{"truncated JSON", func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"type":`) }, nil, []error{ErrInvalidResponse}, 1},
		{"503 then success", func(n int, w http.ResponseWriter, r *http.Request) {
			if n < 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			okEvent(n, w, r)
		}, nil, nil, 3},
		{"503 always", func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }, nil, []error{ErrTransient}, 3},
		{"429", func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }, []Option{WithRetry(1, 0, 0)}, []error{ErrTransient}, 1},
		{"404", func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }, nil, []error{ErrNotFound, ErrRefused}, 1},
		{"400", func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) }, nil, []error{ErrRefused}, 1},
		{"a slow reply, cut by the attempt's timeout", func(_ int, w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}, []Option{WithTimeout(50 * time.Millisecond), WithRetry(1, 0, 0)}, []error{ErrTransient}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newFakeMarket(t, tt.reply)
			c := newTestClient(t, []string{m.srv.URL}, append([]Option{WithOAuth1("ck", "cs")}, tt.opts...)...)
			got, err := c.FetchEvent(context.Background(), m.srv.URL+"/api/integration/v1/events/t")
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("error %v, want %v", err, want)
				}
			}
			if tt.wantErr == nil && (err != nil || string(got) != event) {
				t.Errorf("FetchEvent = %s, %v", got, err)
			}
			if tt.wantErr != nil && got != nil {
				t.Errorf("an event came with the error: %s", got)
			}
			if calls, _, _, _ := m.seen(); len(calls) != tt.wantCalls {
				t.Errorf("calls %v, want %d", calls, tt.wantCalls)
			}
		})
	}
	if calls, _, _, _ := elsewhere.seen(); len(calls) != 0 {
		t.Errorf("the redirect's target was called: %v", calls)
	}
}

// oauth2Market is a marketplace in the separate-credentials mode: a token
// endpoint, and routes that take its current token only.
type oauth2Market struct {
	srv          *httptest.Server
	tokens       atomic.Int32
	events       atomic.Int32
	refuseTokens atomic.Bool // the token endpoint answers invalid_client
	revoke       atomic.Bool // the event route refuses every token

	mu      sync.Mutex
	current string
	forms   []string
}

func newOAuth2Market(t *testing.T) *oauth2Market {
	t.Helper()
	m := &oauth2Market{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", func(w http.ResponseWriter, r *http.Request) {
		n := m.tokens.Add(1)
		id, secret, ok := r.BasicAuth()
		_ = r.ParseForm()
		m.mu.Lock()
		m.forms = append(m.forms, r.PostForm.Encode())
		m.mu.Unlock()
		if !ok || id != "cid" || secret != "csecret" || m.refuseTokens.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		tok := fmt.Sprintf("token-%d", n)
		m.mu.Lock()
		m.current = tok
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":3600}`, tok)
	})
	check := func(w http.ResponseWriter, r *http.Request) bool {
		m.mu.Lock()
		cur := m.current
		m.mu.Unlock()
		if m.revoke.Load() || cur == "" || r.Header.Get("Authorization") != "Bearer "+cur {
			w.WriteHeader(http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /api/integration/v1/events/{token}", func(w http.ResponseWriter, r *http.Request) {
		m.events.Add(1)
		if check(w, r) {
			okEvent(0, w, r)
		}
	})
	mux.HandleFunc("POST /api/integration/v1/events/{token}/result", func(w http.ResponseWriter, r *http.Request) {
		if check(w, r) {
			w.WriteHeader(http.StatusNoContent)
		}
	})
	m.srv = httptest.NewServer(mux)
	t.Cleanup(m.srv.Close)
	return m
}

// rotate makes the marketplace forget the token it issued, as an expiry
// or a revocation would.
func (m *oauth2Market) rotate() {
	m.mu.Lock()
	m.current = "rotated-away"
	m.mu.Unlock()
}

func TestOAuth2(t *testing.T) {
	t.Parallel()
	m := newOAuth2Market(t)
	c := newTestClient(t, []string{m.srv.URL}, WithOAuth2("cid", "csecret"))
	ctx := context.Background()
	eventURL := m.srv.URL + "/api/integration/v1/events/t"
	for range 2 {
		if _, err := c.FetchEvent(ctx, eventURL); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.tokens.Load(); n != 1 {
		t.Errorf("%d token fetches for two calls, want 1 (cached)", n)
	}
	m.mu.Lock()
	form := m.forms[0]
	m.mu.Unlock()
	if form != "grant_type=client_credentials&scope=ROLE_APPLICATION" {
		t.Errorf("token form %q", form)
	}

	// The marketplace forgets the token: one 401, a new token, success.
	m.rotate()
	if _, err := c.FetchEvent(ctx, eventURL); err != nil {
		t.Fatalf("after the token was rotated away: %v", err)
	}
	if n, e := m.tokens.Load(), m.events.Load(); n != 2 || e != 4 {
		t.Errorf("tokens %d, events %d; want 2, 4", n, e)
	}
	if err := c.PostResult(ctx, m.srv.URL, "t", []byte(`{"success":true}`)); err != nil {
		t.Fatalf("PostResult: %v", err)
	}
	m.rotate()
	if err := c.PostResult(ctx, m.srv.URL, "t", []byte(`{"success":true}`)); err != nil {
		t.Fatalf("PostResult after rotation: %v", err)
	}

	// Refused with a fresh token too: refreshed once only, then the 401.
	m.revoke.Store(true)
	before, eventsBefore := m.tokens.Load(), m.events.Load()
	_, err := c.FetchEvent(ctx, eventURL)
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("revoked: %v", err)
	}
	if n, e := m.tokens.Load()-before, m.events.Load()-eventsBefore; n != 1 || e != 2 {
		t.Errorf("revoked: %d token fetches and %d event calls, want 1 and 2", n, e)
	}
}

func TestOAuth2TokenRefused(t *testing.T) {
	t.Parallel()
	m := newOAuth2Market(t)
	m.refuseTokens.Store(true)
	c := newTestClient(t, []string{m.srv.URL}, WithOAuth2("cid", "csecret"))
	_, err := c.FetchEvent(context.Background(), m.srv.URL+"/api/integration/v1/events/t")
	if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, httpcall.ErrNotSent) {
		t.Errorf("error %v, want ErrUnauthorized and not sent", err)
	}
	if n := m.events.Load(); n != 0 {
		t.Errorf("%d event calls without a token", n)
	}
	wrong := newTestClient(t, []string{m.srv.URL}, WithOAuth2("cid", "wrong"), WithRetry(1, 0, 0))
	m.refuseTokens.Store(false)
	if err := wrong.PostResult(context.Background(), m.srv.URL, "t", []byte(`{"success":true}`)); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong client secret: %v", err)
	}
}

func TestPostResult(t *testing.T) {
	t.Parallel()
	const result = `{"success":false,"errorCode":"USER_NOT_FOUND","message":"no such user"}`
	tests := []struct {
		status  int
		wantErr []error
	}{
		{200, nil},
		{202, nil},
		{204, nil},
		{500, []error{ErrTransient}},
		{503, []error{ErrTransient}},
		{429, []error{ErrTransient}},
		{408, []error{ErrTransient}},
		{400, []error{ErrRefused}},
		{401, []error{ErrRefused, ErrUnauthorized}},
		{403, []error{ErrRefused, ErrUnauthorized}},
		{404, []error{ErrRefused, ErrNotFound}},
		{409, []error{ErrRefused}},
		{302, []error{ErrInvalidResponse}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			t.Parallel()
			m := newFakeMarket(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Content-Type") != "application/json" {
					w.WriteHeader(http.StatusUnsupportedMediaType)
					return
				}
				if tt.status == 302 {
					w.Header().Set("Location", "https://elsewhere.example/")
				}
				w.WriteHeader(tt.status)
			})
			c := newTestClient(t, []string{m.srv.URL + "/"}, WithOAuth1("ck", "cs"))
			err := c.PostResult(context.Background(), m.srv.URL, "tok-9", []byte(result))
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("error %v, want %v", err, want)
				}
			}
			if tt.wantErr == nil && err != nil {
				t.Errorf("error %v", err)
			}
			var sc interface{ StatusCode() int }
			if err != nil && (!errors.As(err, &sc) || sc.StatusCode() != tt.status) {
				t.Errorf("error %v has no StatusCode %d", err, tt.status)
			}
			calls, bodies, _, problems := m.seen()
			// Not retried inside the call, whatever the answer.
			if len(calls) != 1 || calls[0] != "POST /api/integration/v1/events/tok-9/result" || bodies[0] != result || len(problems) != 0 {
				t.Errorf("calls %v, bodies %v, problems %v", calls, bodies, problems)
			}
		})
	}
}

func TestPostResultArguments(t *testing.T) {
	t.Parallel()
	m := newFakeMarket(t, okEvent)
	c := newTestClient(t, []string{m.srv.URL}, WithOAuth1("ck", "cs"))
	ctx := context.Background()
	for _, tt := range []struct {
		base, token, result string
	}{
		{"https://elsewhere.example", "t", `{"success":true}`},
		{m.srv.URL + "/sub", "t", `{"success":true}`},
		{"not a url", "t", `{"success":true}`},
		{m.srv.URL, "../x", `{"success":true}`},
		{m.srv.URL, "", `{"success":true}`},
		{m.srv.URL, "t", `{"success":"true"}`},
		{m.srv.URL, "t", `{}`},
		{m.srv.URL, "t", `[]`},
		{m.srv.URL, "t", `{"success":true`},
	} {
		if err := c.PostResult(ctx, tt.base, tt.token, []byte(tt.result)); !errors.Is(err, ErrBadArgument) {
			t.Errorf("PostResult(%q, %q, %s) = %v, want ErrBadArgument", tt.base, tt.token, tt.result, err)
		}
	}
	if calls, _, _, _ := m.seen(); len(calls) != 0 {
		t.Errorf("requests sent: %v", calls)
	}
	// A normalised spelling of the configured marketplace is the same one.
	if err := c.PostResult(ctx, strings.ToUpper(m.srv.URL[:4])+m.srv.URL[4:]+"/", "t", []byte(`{"success":true}`)); err != nil {
		t.Errorf("normalised marketplace: %v", err)
	}
}

// TestPostResultNotSent: a marketplace that cannot be reached is
// transient; the request surely did not leave, so it may be tried again.
func TestPostResultNotSent(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := newTestClient(t, []string{url}, WithOAuth1("ck", "cs"))
	err := c.PostResult(context.Background(), url, "t", []byte(`{"success":true}`))
	if !errors.Is(err, ErrTransient) {
		t.Errorf("error %v, want ErrTransient", err)
	}
}

func TestNewClientErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		markets []string
		opts    []Option
		want    string
	}{
		{nil, []Option{WithOAuth1("k", "s")}, "at least one marketplace"},
		{[]string{"https://m.example"}, nil, "exactly one of WithOAuth1"},
		{[]string{"https://m.example"}, []Option{WithOAuth1("k", "s"), WithOAuth2("i", "s")}, "exactly one of WithOAuth1"},
		{[]string{"https://m.example"}, []Option{WithOAuth1("k", "")}, "consumer secret"},
		{[]string{"https://m.example"}, []Option{WithOAuth2("", "s")}, "client id"},
		{[]string{"https://m.example", "https://u@m.example"}, []Option{WithOAuth1("k", "s")}, "marketplace 2"},
		{[]string{"https://m.example"}, []Option{WithOAuth1("k", "s"), WithRetry(0, 0, 0)}, "WithRetry"},
	} {
		if _, err := NewClient(tt.markets, tt.opts...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewClient(%v) = %v, want %q", tt.markets, err, tt.want)
		}
	}
}
