package helixapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

const (
	testKey    = "api-key-1"
	testSecret = "s3cr3t-helix"
)

var sample = Entitlement{AccountID: 11, RequestingCustomerID: 22, TargetCustomerID: 33, Level: LevelReadOnly}

// setup starts a fake Helix answering every request with h.
func setup(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithCredentials(testKey, testSecret), WithRetry(3, time.Millisecond, 20*time.Millisecond)}, opts...)
	c, err := New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func write(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

type call func(*Client, context.Context, Entitlement) (Result, error)

var (
	add    call = (*Client).AddEntitlement
	edit   call = (*Client).EditEntitlement
	remove call = (*Client).RemoveEntitlement
)

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		opts []Option
		want string
	}{
		{"", nil, "base URL"},
		{"sandbox-api.helix.q2.com", nil, "base URL"},
		{"ftp://helix.example.com", nil, "base URL"},
		{"https://", nil, "base URL"},
		{"https://key:pw@helix.example.com", nil, "must not hold credentials"},
		{"https://helix.example.com", []Option{WithCredentials("key", "")}, "API secret"},
		{"https://helix.example.com", []Option{WithCredentials("", "pw")}, "API key"},
		{"https://helix.example.com", []Option{WithHTTPClient(nil)}, "WithHTTPClient"},
		{"https://helix.example.com", []Option{WithLogger(nil)}, "WithLogger"},
		{"https://helix.example.com", []Option{WithRetry(0, 0, 0)}, "WithRetry"},
		{"https://helix.example.com", []Option{WithRetry(3, time.Second, time.Millisecond)}, "WithRetry"},
	} {
		t.Run(tc.url+"/"+tc.want, func(t *testing.T) {
			_, err := New(tc.url, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || envName.MatchString(err.Error()) || strings.Contains(err.Error(), "pw") {
				t.Errorf("New(%q) = %v, want an error naming %s and no secret", tc.url, err, tc.want)
			}
		})
	}
	if _, err := New("https://helix.example.com/api", WithCredentials("k", "s"), WithRetry(1, 0, 0)); err != nil {
		t.Errorf("New: %v", err)
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Level
		ok   bool
	}{
		{"FULL", LevelFull, true}, {"RDONLY", LevelReadOnly, true}, {"RDDB", LevelReadDebit, true},
		{"RDCR", LevelReadCredit, true}, {"DBONLY", LevelDebitOnly, true}, {"CRONLY", LevelCreditOnly, true},
		{" rdonly ", LevelReadOnly, true},
		{"", "", false}, {"READONLY", "", false}, {"FULL,RDONLY", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLevel(tc.in)
			if got != tc.want || (err == nil) != tc.ok {
				t.Errorf("ParseLevel(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
			if err != nil && (!errors.Is(err, ErrInvalidLevel) || !strings.Contains(err.Error(), "CRONLY")) {
				t.Errorf("error %q should match ErrInvalidLevel and list the levels", err)
			}
		})
	}
}

// TestRoutes checks each route's request (method, path under the base
// URL's path, Basic credentials, headers, exact body) and its Result.
func TestRoutes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path, wantBody string
		call                 call
		in                   Entitlement
	}{
		{"add", "/base/account/addEntitlement", `{"accountId":11,"requestingCustomerId":22,"targetCustomerId":33,"entitlement":"RDONLY"}`, add, sample},
		{"edit", "/base/account/editEntitlement", `{"accountId":11,"requestingCustomerId":22,"targetCustomerId":33,"entitlement":"FULL"}`, edit, Entitlement{11, 22, 33, LevelFull}},
		{"remove", "/base/account/removeEntitlement", `{"accountId":11,"requestingCustomerId":22,"targetCustomerId":33}`, remove, sample},
		{"remove without level", "/base/account/removeEntitlement", `{"accountId":1,"requestingCustomerId":2,"targetCustomerId":3}`, remove, Entitlement{AccountID: 1, RequestingCustomerID: 2, TargetCustomerID: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := setup(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				user, pass, ok := r.BasicAuth()
				switch {
				case r.Method != http.MethodPost || r.URL.Path != tc.path:
					t.Errorf("request = %s %s, want POST %s", r.Method, r.URL.Path, tc.path)
				case !ok || user != testKey || pass != testSecret:
					t.Errorf("basic auth = %q, %q, %v", user, pass, ok)
				case r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Accept") != "application/json":
					t.Errorf("headers = %v", r.Header)
				case string(body) != tc.wantBody:
					t.Errorf("body = %s, want %s", body, tc.wantBody)
				}
				write(w, http.StatusOK, `{"data":{"ok":true},"errors":[],"requestId":"req-1","status":"OK","throttle":{"remaining":99}}`)
			})
			res, err := tc.call(newClient(t, srv.URL+"/base"), context.Background(), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if res.RequestID != "req-1" || string(res.Data) != `{"ok":true}` {
				t.Errorf("result = %+v", res)
			}
		})
	}
}

// TestValidation: a bad request fails naming each bad field, matches
// ErrInvalidRequest, and is never sent.
func TestValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		call call
		in   Entitlement
		want []string
	}{
		{"add no account", add, Entitlement{0, 2, 3, LevelFull}, []string{"accountId must be 1 or more, got 0"}},
		{"add negative requester", add, Entitlement{1, -2, 3, LevelFull}, []string{"requestingCustomerId must be 1 or more, got -2"}},
		{"edit no target", edit, Entitlement{1, 2, 0, LevelFull}, []string{"targetCustomerId"}},
		{"add lower-case level", add, Entitlement{1, 2, 3, "rdonly"}, []string{`entitlement "rdonly" must be one of FULL, RDONLY`}},
		{"edit no level", edit, Entitlement{1, 2, 3, ""}, []string{`entitlement ""`}},
		{"remove zero", remove, Entitlement{}, []string{"accountId", "requestingCustomerId", "targetCustomerId"}},
		{"add all bad", add, Entitlement{Level: "X"}, []string{"accountId", "requestingCustomerId", "targetCustomerId", `entitlement "X"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := setup(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1) })
			_, err := tc.call(newClient(t, srv.URL), context.Background(), tc.in)
			if !errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrTransient) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q does not say %q", err, w)
				}
			}
			if n.Load() != 0 {
				t.Errorf("%d requests sent, want none", n.Load())
			}
		})
	}
}

// TestReplies decodes the envelope: successes, business errors with one or
// several codes, and the statuses that classify as a kind.
func TestReplies(t *testing.T) {
	t.Parallel()
	kinds := []error{ErrUnauthorized, ErrTransient, ErrInvalidResponse, ErrInvalidRequest}
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		body   string
		want   *APIError // nil: a success, or a non-APIError of kind
		kind   error
		data   string
	}{
		{name: "ok", status: 200, body: `{"data":{"id":5},"errors":[],"requestId":"r0","status":200}`, data: `{"id":5}`},
		{name: "ok null errors", status: 200, body: `{"data":null,"errors":null,"requestId":"r0"}`, data: `null`},
		{name: "no content", status: 204},
		{name: "already entitled", status: 400,
			body: `{"data":null,"errors":[{"code":195110,"message":"targetCustomerId 33 already has an entitlement for accountId 11"}],"requestId":"r1","status":400}`,
			want: &APIError{HTTPStatus: 400, Codes: []int{195110}, Messages: []string{"targetCustomerId 33 already has an entitlement for accountId 11"}, RequestID: "r1"}},
		{name: "several codes on 200", status: 200,
			body: `{"data":{},"errors":[{"code":195105,"message":"requestingCustomerId is required"},{"code":"195107","message":"targetCustomerId is required"}],"requestId":"r2"}`,
			want: &APIError{HTTPStatus: 200, Codes: []int{195105, 195107}, Messages: []string{"requestingCustomerId is required", "targetCustomerId is required"}, RequestID: "r2"}},
		{name: "code without message", status: 404, body: `{"errors":[{"code":195109}],"requestId":"r3"}`,
			want: &APIError{HTTPStatus: 404, Codes: []int{195109}, Messages: []string{""}, RequestID: "r3"}},
		{name: "401", status: 401, body: `{"errors":[{"code":50401,"message":"Unauthorized"}],"requestId":"r4"}`, kind: ErrUnauthorized,
			want: &APIError{HTTPStatus: 401, Codes: []int{50401}, Messages: []string{"Unauthorized"}, RequestID: "r4"}},
		{name: "ip not trusted on 400", status: 400, body: `{"errors":[{"code":50403,"message":"IP not trusted"}]}`, kind: ErrUnauthorized,
			want: &APIError{HTTPStatus: 400, Codes: []int{50403}, Messages: []string{"IP not trusted"}}},
		{name: "server code on 400", status: 400, body: `{"errors":[{"code":50502,"message":"down"}]}`, kind: ErrTransient,
			want: &APIError{HTTPStatus: 400, Codes: []int{50502}, Messages: []string{"down"}}},
		{name: "500 html", status: 500, header: map[string]string{"X-Request-Id": "hdr-1"}, body: `<html>oops</html>`, kind: ErrTransient,
			want: &APIError{HTTPStatus: 500, RequestID: "hdr-1"}},
		{name: "503 retry-after, capped", status: 503, header: map[string]string{"Retry-After": "120"}, body: `{}`, kind: ErrTransient,
			want: &APIError{HTTPStatus: 503, RetryAfter: httpcall.MaxRetryAfter}},
		{name: "405 empty", status: 405, want: &APIError{HTTPStatus: 405}},
		{name: "200 not json", status: 200, body: `<html></html>`, kind: ErrInvalidResponse},
		{name: "200 empty", status: 200, kind: ErrInvalidResponse},
		{name: "200 errors not a list", status: 200, body: `{"errors":"boom"}`, kind: ErrInvalidResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := setup(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				write(w, tc.status, tc.body)
			})
			res, err := newClient(t, srv.URL, WithRetry(1, 0, 0)).AddEntitlement(context.Background(), sample)
			var sc interface{ StatusCode() int }
			if err != nil && (!errors.As(err, &sc) || sc.StatusCode() != tc.status) {
				t.Errorf("err = %v, want its HTTP status %d through StatusCode", err, tc.status)
			}
			for _, k := range kinds {
				if errors.Is(err, k) != (k == tc.kind) {
					t.Errorf("errors.Is(%v, %v) = %v", err, k, !(k == tc.kind))
				}
			}
			if tc.want == nil {
				if tc.kind == nil && (err != nil || string(res.Data) != tc.data) {
					t.Errorf("= %+v, %v; want data %s", res, err, tc.data)
				}
				return
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an *APIError", err)
			}
			tc.want.Route = "addEntitlement"
			if !reflect.DeepEqual(ae, tc.want) {
				t.Errorf("err = %#v\nwant  %#v", ae, tc.want)
			}
			for i, c := range tc.want.Codes {
				if !ae.Has(c) || !strings.Contains(err.Error(), fmt.Sprint(c)) || !strings.Contains(err.Error(), tc.want.Messages[i]) {
					t.Errorf("Has(%d) = %v, or %q lacks it", c, ae.Has(c), err)
				}
			}
			if ae.Has(1) || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tc.status)) {
				t.Errorf("Has(1) or error text %q", err)
			}
		})
	}
}

// TestRateLimit: the wait of a 429 (or code 50429) comes from Retry-After,
// else throttle, else DefaultRetryAfter.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, tc := range []struct {
		name   string
		status int
		header string
		body   string
		want   time.Duration
	}{
		{"retry-after seconds", 429, "7", `{"errors":[{"code":50429,"message":"slow down"}]}`, 7 * time.Second},
		{"retry-after wins over throttle", 429, "3", `{"throttle":60}`, 3 * time.Second},
		{"retry-after http date, capped", 429, now.Add(time.Hour).UTC().Format(http.TimeFormat), `{}`, httpcall.MaxRetryAfter},
		{"retry-after http date", 429, now.Add(45 * time.Second).UTC().Format(http.TimeFormat), `{}`, 45 * time.Second},
		{"throttle number", 429, "", `{"throttle":12}`, 12 * time.Second},
		{"throttle string", 429, "", `{"throttle":"2.5"}`, 2500 * time.Millisecond},
		{"throttle retryAfter", 429, "", `{"throttle":{"limit":100,"remaining":0,"retryAfter":4}}`, 4 * time.Second},
		{"throttle retry preferred to reset", 429, "", `{"throttle":{"reset":50,"retry_after":"5"}}`, 5 * time.Second},
		{"throttle reset", 429, "", `{"throttle":{"limit":100,"reset":6}}`, 6 * time.Second},
		{"throttle resetMs", 429, "", `{"throttle":{"resetMs":1500}}`, 1500 * time.Millisecond},
		{"throttle reset unix, capped", 429, "", fmt.Sprintf(`{"throttle":{"reset":%d}}`, now.Add(time.Hour).Unix()), httpcall.MaxRetryAfter},
		{"throttle a day, capped", 429, "", `{"throttle":86400}`, httpcall.MaxRetryAfter},
		{"code 50429 on 400 with throttle", 400, "", `{"errors":[{"code":50429}],"throttle":8}`, 8 * time.Second},
		{"neither", 429, "", `{"errors":[{"code":50429,"message":"rate limit"}]}`, DefaultRetryAfter},
		{"throttle unusable", 429, "", `{"throttle":{"limit":100,"remaining":0}}`, DefaultRetryAfter},
		{"not json", 429, "", `Too Many Requests`, DefaultRetryAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := setup(t, func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				write(w, tc.status, tc.body)
			})
			// The backoff cap (20ms) is below every wait: no retry is made.
			_, err := newClient(t, srv.URL).RemoveEntitlement(context.Background(), sample)
			var ae *APIError
			if !errors.As(err, &ae) || !errors.Is(err, ErrTransient) {
				t.Fatalf("err = %v, want a transient *APIError", err)
			}
			// A date is counted from whenever the reply is read: allow a few
			// seconds on a busy machine.
			lo := tc.want
			if tc.want == 45*time.Second {
				lo = tc.want - 10*time.Second
			}
			if ae.RetryAfter > tc.want || ae.RetryAfter < lo {
				t.Errorf("RetryAfter = %v, want %v", ae.RetryAfter, tc.want)
			}
			if n.Load() != 1 {
				t.Errorf("calls = %d, want 1: a wait over the backoff cap is not slept", n.Load())
			}
		})
	}
}

// TestRetries: transient failures are retried, within the budget, on all
// three routes; business refusals and credentials are not.
func TestRetries(t *testing.T) {
	t.Parallel()
	const ok = `{"data":{},"errors":[],"requestId":"ok"}`
	type reply struct {
		status       int
		header, body string
	}
	r503 := reply{503, "", `{"errors":[{"code":50503,"message":"unavailable"}]}`}
	for _, tc := range []struct {
		name    string
		call    call
		replies []reply // answered in turn; the last repeats
		calls   int32
		kind    error // nil: success
		code    int   // an *APIError's code, when not a success
	}{
		{"add 503 not retried: a blind create", add, []reply{r503, {200, "", ok}}, 1, ErrTransient, 50503},
		{"edit 503 then ok", edit, []reply{r503, {200, "", ok}}, 2, nil, 0},
		{"edit 502 502 ok", edit, []reply{{502, "", "bad gateway"}, {502, "", ""}, {200, "", ok}}, 3, nil, 0},
		{"remove 429 short throttle then ok", remove, []reply{{429, "", `{"throttle":{"retryAfterMs":2}}`}, {200, "", ok}}, 2, nil, 0},
		{"edit 429 retry-after 0 then ok", edit, []reply{{429, "0", `{}`}, {200, "", ok}}, 2, nil, 0},
		{"edit 50500 on 400 then ok", edit, []reply{{400, "", `{"errors":[{"code":50500}]}`}, {200, "", ok}}, 2, nil, 0},
		{"remove 503 then no entitlement", remove, []reply{r503, {400, "", `{"errors":[{"code":195119}]}`}}, 2, nil, CodeNoEntitlement},
		{"remove 503 always", remove, []reply{r503}, 3, ErrTransient, 50503},
		{"add 400 not retried", add, []reply{{400, "", `{"errors":[{"code":195104}]}`}}, 1, nil, CodeAccountLocked},
		{"edit 401 not retried", edit, []reply{{401, "", `{"errors":[{"code":50401}]}`}}, 1, ErrUnauthorized, 50401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := setup(t, func(w http.ResponseWriter, r *http.Request) {
				rp := tc.replies[min(int(n.Add(1))-1, len(tc.replies)-1)]
				if rp.header != "" {
					w.Header().Set("Retry-After", rp.header)
				}
				write(w, rp.status, rp.body)
			})
			res, err := tc.call(newClient(t, srv.URL), context.Background(), sample)
			var ae *APIError
			switch {
			case tc.code == 0 && (err != nil || res.RequestID != "ok"):
				t.Errorf("= %+v, %v; want success", res, err)
			case tc.code != 0 && (!errors.As(err, &ae) || !ae.Has(tc.code) || (tc.kind != nil && !errors.Is(err, tc.kind))):
				t.Errorf("err = %v, want code %d of kind %v", err, tc.code, tc.kind)
			}
			if n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d", n.Load(), tc.calls)
			}
		})
	}
}

// roundTripper answers every request with err, counting them.
type roundTripper struct {
	n   atomic.Int32
	err error
}

func (rt *roundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	rt.n.Add(1)
	return nil, rt.err
}

func TestTransportErrors(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name  string
		call  call
		cause error
		calls int32
	}{
		{"edit after a reset", edit, io.ErrUnexpectedEOF, 4},
		{"remove after a timeout", remove, context.DeadlineExceeded, 4},
		{"add after a reset: not sent again", add, io.ErrUnexpectedEOF, 1},
		{"add when the dial failed: nothing was sent", add, refused, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := &roundTripper{err: tc.cause}
			c := newClient(t, "http://helix.test", WithHTTPClient(&http.Client{Transport: rt}), WithRetry(4, time.Millisecond, 20*time.Millisecond))
			_, err := tc.call(c, context.Background(), sample)
			if !errors.Is(err, ErrTransient) || !errors.Is(err, tc.cause) || strings.Contains(err.Error(), testSecret) {
				t.Errorf("err = %v, want ErrTransient wrapping %v", err, tc.cause)
			}
			if rt.n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d", rt.n.Load(), tc.calls)
			}
		})
	}
}

// TestContext: no retry once the caller's context is done, nor one whose
// wait would pass its deadline.
func TestContext(t *testing.T) {
	t.Parallel()
	t.Run("cancelled during the call", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		var n atomic.Int32
		srv := setup(t, func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			cancel()
			write(w, 503, `{}`)
		})
		_, err := newClient(t, srv.URL, WithRetry(6, time.Millisecond, 20*time.Millisecond)).EditEntitlement(ctx, sample)
		if !errors.Is(err, ErrTransient) || n.Load() != 1 {
			t.Errorf("err = %v after %d calls, want a transient error after 1", err, n.Load())
		}
	})
	t.Run("wait past the deadline", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var n atomic.Int32
		srv := setup(t, func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Retry-After", "3600")
			write(w, 429, `{}`)
		})
		// The cap (2h) would let the wait be slept, but the deadline is sooner.
		_, err := newClient(t, srv.URL, WithRetry(3, time.Millisecond, 2*time.Hour)).EditEntitlement(ctx, sample)
		var ae *APIError
		if !errors.As(err, &ae) || ae.RetryAfter != httpcall.MaxRetryAfter || n.Load() != 1 {
			t.Errorf("err = %v after %d calls, want the 429 after 1, its wait capped", err, n.Load())
		}
	})
}

// TestObserved: each attempt reaches the observer with the route, status
// and Helix's request id; neither the attempts' log fields nor the
// client's log hold the body or the credentials.
func TestObserved(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	var n atomic.Int32
	srv := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			write(w, 503, `{"errors":[{"code":50503,"message":"down"}],"requestId":"req-a"}`)
			return
		}
		write(w, 200, `{"data":{"secretish":"data-body"},"errors":[],"requestId":"req-b"}`)
	})
	var mu sync.Mutex
	var attempts []httpcall.Attempt
	c := newClient(t, srv.URL, WithLogger(log), WithObserver(func(_ context.Context, a httpcall.Attempt) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, a)
		log.Debug("helix call", a.LogFields()...)
	}))
	if _, err := c.EditEntitlement(context.Background(), sample); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 {
		t.Fatalf("%d attempts, want 2", len(attempts))
	}
	for i, want := range []struct {
		status int
		id     string
	}{{503, "req-a"}, {200, "req-b"}} {
		if a := attempts[i]; a.System != "helix" || a.Action != "editEntitlement" || a.Status != want.status || a.RequestID != want.id || a.Attempt != i+1 {
			t.Errorf("attempt %d = %+v", i, a)
		}
	}
	for _, e := range logs.All() {
		text := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{testKey, testSecret, "data-body", "RDONLY", "down"} {
			if strings.Contains(text, secret) {
				t.Errorf("log %q holds %q", text, secret)
			}
		}
	}
}

// TestNoRedirect: an add answered with a redirect is not followed (the API
// key and secret never reach its target) and is an ErrInvalidResponse with
// its status: Helix may or may not have granted the entitlement.
func TestNoRedirect(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(target.Close)
	for _, status := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			srv := setup(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/account/addEntitlement", status)
			})
			_, err := newClient(t, srv.URL).AddEntitlement(context.Background(), sample)
			var sc interface{ StatusCode() int }
			if !errors.Is(err, ErrInvalidResponse) || errors.Is(err, ErrTransient) || !errors.As(err, &sc) || sc.StatusCode() != status {
				t.Errorf("err = %v, want ErrInvalidResponse with status %d", err, status)
			}
			if !strings.Contains(err.Error(), strings.TrimPrefix(target.URL, "http://")) {
				t.Errorf("err %q does not name the redirect's host", err)
			}
		})
	}
	t.Cleanup(func() {
		if elsewhere.Load() != 0 {
			t.Errorf("the redirect target received %d requests", elsewhere.Load())
		}
	})
}

func TestThrottleWait(t *testing.T) {
	t.Parallel()
	now := time.Unix(2_000_000_000, 0)
	for _, tc := range []struct {
		raw  string
		want time.Duration
	}{
		{``, 0}, {`null`, 0}, {`0`, 0}, {`-3`, 0}, {`"soon"`, 0}, {`true`, 0}, {`[1]`, 0},
		{`3`, 3 * time.Second}, {`"4"`, 4 * time.Second},
		{`{"Retry-After":"9"}`, 9 * time.Second},
		{`{"retryAfterMs":"250"}`, 250 * time.Millisecond},
		{`{"resetAt":2000000010}`, 10 * time.Second},
		{`{"reset":1999999990}`, 0},
		{`{"retry":0,"reset":2}`, 2 * time.Second},
		{`{"remaining":0}`, 0},
	} {
		if got := throttleWait([]byte(tc.raw), now); got != tc.want {
			t.Errorf("throttleWait(%s) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

// envName is an environment variable's name: the library takes values,
// and the wiring that read them names the setting.
var envName = regexp.MustCompile(`\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b`)
