package httpcall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// The sentinels of a client built on the core, as a test sees them.
var (
	errTransient = errors.New("transient failure")
	errInvalid   = errors.New("invalid response")
)

// statusError is a test client's error for an answered failure.
type statusError struct {
	status     int
	retryAfter time.Duration
	kind       error
}

func (e *statusError) Error() string   { return fmt.Sprintf("test: HTTP %d: %v", e.status, e.kind) }
func (e *statusError) Unwrap() error   { return e.kind }
func (e *statusError) StatusCode() int { return e.status }

// read is a test client's read function: 2xx is a success; 408, 429 and
// 5xx are transient; the reply's X-Request-Id is its request id.
func read(resp *Response) error {
	resp.RequestID = resp.Header.Get("X-Request-Id")
	if resp.OK() {
		return nil
	}
	e := &statusError{status: resp.Status, retryAfter: resp.RetryAfter}
	if resp.Status == 408 || resp.Status == 429 || resp.Status >= 500 {
		e.kind = errTransient
	}
	return e
}

// recorder keeps what a test core did: the waits it asked for (none is
// slept), and the attempts it reported.
type recorder struct {
	mu       sync.Mutex
	waits    []time.Duration
	attempts []Attempt
}

func (r *recorder) Waits() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.waits)
}

func (r *recorder) Attempts() []Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.attempts)
}

const testMaxBody = 1 << 10

// newCore returns a core for base with 3 attempts, waits up to 1s that
// are recorded rather than slept, and a transport of its own (so that a
// parallel test's server closing cannot cut its connections).
func newCore(t *testing.T, base string, edit func(*Config)) (*Client, *recorder) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	cfg := Config{
		System: "test_system", Name: "test", BaseURL: u,
		HTTPClient: &http.Client{Transport: &http.Transport{}}, Logger: zap.NewNop(), UserAgent: "httpcall-test",
		Retry:   Retry{Attempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Second},
		MaxBody: testMaxBody, MaxErrorBody: testMaxBody / 2, Transient: errTransient, Invalid: errInvalid,
		Observer: func(_ context.Context, a Attempt) {
			rec.mu.Lock()
			rec.attempts = append(rec.attempts, a)
			rec.mu.Unlock()
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		rec.mu.Lock()
		rec.waits = append(rec.waits, d)
		rec.mu.Unlock()
		return ctx.Err()
	}
	return c, rec
}

// serve starts a server that answers the n-th request (from 0) with
// answer(n, w), and counts them.
func serve(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(int(n.Add(1))-1, w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// statuses answers the given statuses in turn; the last repeats.
func statuses(list ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(list[min(n, len(list)-1)])
	}
}

func newRequest(t *testing.T, c *Client, method, rawURL string) *Request {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.NewRequest(method, method+" /things", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// roundTripper fails every request with err, counting them.
type roundTripper struct {
	n   atomic.Int32
	err error
}

func (rt *roundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	rt.n.Add(1)
	return nil, rt.err
}

func TestNew(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("https://api.example.com/v1")
	good := func() Config {
		return Config{System: "s", BaseURL: base, HTTPClient: &http.Client{}, Logger: zap.NewNop(), Retry: DefaultRetry,
			MaxBody: 1, MaxErrorBody: 1, Transient: errTransient, Invalid: errInvalid}
	}
	if _, err := New(good()); err != nil {
		t.Fatalf("New(a good config) = %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no system", func(c *Config) { c.System = "" }, "System"},
		{"no transient kind", func(c *Config) { c.Transient = nil }, "Transient"},
		{"relative base", func(c *Config) { c.BaseURL = &url.URL{Path: "/v1"} }, "BaseURL"},
		{"no body limit", func(c *Config) { c.MaxBody = 0 }, "MaxBody"},
		{"nil http client", func(c *Config) { c.HTTPClient = nil }, "WithHTTPClient"},
		{"nil logger", func(c *Config) { c.Logger = nil }, "WithLogger"},
		{"no attempt", func(c *Config) { c.Retry.Attempts = 0 }, "WithRetry"},
		{"base over max", func(c *Config) { c.Retry.BaseDelay = time.Hour }, "WithRetry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestRetries: only transient failures of requests safe to send again are
// tried again, within the budget.
func TestRetries(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name       string
		method     string
		idempotent bool  // set on a POST
		answers    []int // statuses in turn, the last repeats; nil: the transport fails with cause
		cause      error
		calls      int32
		want       error // nil: success
	}{
		{"GET 503 503 200", "GET", false, []int{503, 503, 200}, nil, 3, nil},
		{"GET 503 always: gives up after 3", "GET", false, []int{503}, nil, 3, errTransient},
		{"GET 429 then ok", "GET", false, []int{429, 200}, nil, 2, nil},
		{"PUT 500 then ok", "PUT", false, []int{500, 200}, nil, 2, nil},
		{"DELETE 408 then ok", "DELETE", false, []int{408, 200}, nil, 2, nil},
		{"GET 404 not retried", "GET", false, []int{404}, nil, 1, nil},
		{"blind POST 503 not retried", "POST", false, []int{503}, nil, 1, errTransient},
		{"blind PATCH 502 not retried", "PATCH", false, []int{502}, nil, 1, errTransient},
		{"POST that only reads 503 then ok", "POST", true, []int{503, 200}, nil, 2, nil},
		{"blind POST retried when the dial failed", "POST", false, nil, refused, 3, errTransient},
		{"blind POST not retried after a reset", "POST", false, nil, io.ErrUnexpectedEOF, 1, errTransient},
		{"GET retried after a reset", "GET", false, nil, io.ErrUnexpectedEOF, 3, errTransient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls func() int32
			base := "http://api.test/v1"
			var rt *roundTripper
			if tc.answers != nil {
				srv, n := serve(t, statuses(tc.answers...))
				base, calls = srv.URL+"/v1", n.Load
			}
			c, rec := newCore(t, base, func(cfg *Config) {
				if tc.answers == nil {
					rt = &roundTripper{err: tc.cause}
					cfg.HTTPClient = &http.Client{Transport: rt}
					calls = rt.n.Load
				}
			})
			r := newRequest(t, c, tc.method, base+"/things")
			r.Idempotent = r.Idempotent || tc.idempotent
			_, err := c.Do(context.Background(), r, read)
			if tc.want != nil && !errors.Is(err, tc.want) || tc.want == nil && errors.Is(err, errTransient) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("err = %v, want it to keep its cause %v", err, tc.cause)
			}
			if got := calls(); got != tc.calls {
				t.Errorf("calls = %d, want %d", got, tc.calls)
			}
			if n := len(rec.Attempts()); n != int(tc.calls) {
				t.Errorf("%d attempts observed, want %d", n, tc.calls)
			}
			if w := rec.Waits(); len(w) != int(tc.calls)-1 || slices.ContainsFunc(w, func(d time.Duration) bool { return d < 0 || d > time.Second }) {
				t.Errorf("waits %v, want %d within [0, 1s]", w, tc.calls-1)
			}
		})
	}
}

// TestAuthorizeFailureIsNotSent: a failed Authorize (a token fetch) sent
// nothing, so even a blind POST is tried again, and its error is returned
// as the client made it.
func TestAuthorizeFailureIsNotSent(t *testing.T) {
	t.Parallel()
	srv, n := serve(t, statuses(200))
	tokenDown := &statusError{status: 503, kind: errTransient}
	var authorized atomic.Int32
	c, _ := newCore(t, srv.URL, func(cfg *Config) {
		cfg.Authorize = func(context.Context, *http.Request) error { authorized.Add(1); return tokenDown }
	})
	_, err := c.Do(context.Background(), newRequest(t, c, "POST", srv.URL+"/things"), read)
	if !errors.Is(err, ErrNotSent) || !errors.Is(err, errTransient) || err.Error() != tokenDown.Error() {
		t.Errorf("err = %v, want the token's error, marked not sent", err)
	}
	var se *statusError
	if !errors.As(err, &se) || se != tokenDown {
		t.Errorf("err = %#v, want the client's own error inside", err)
	}
	if authorized.Load() != 3 || n.Load() != 0 {
		t.Errorf("authorize ran %d times and the server saw %d requests, want 3 and 0", authorized.Load(), n.Load())
	}
}

// TestRetryAfterRule: one rule for every client. A wait up to MaxDelay
// (1s here) is waited and the call tried again; a longer one ends the
// attempts, and the error carries it, capped at MaxRetryAfter.
func TestRetryAfterRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, header string
		method       string
		calls        int32
		waits        []time.Duration // nil: one backoff wait, within [0, 1s]
		carried      time.Duration   // the first error's RetryAfter
	}{
		{"seconds within the in-call maximum: waited exactly", "1", "GET", 2, []time.Duration{time.Second}, time.Second},
		{"zero: tried again at once", "0", "GET", 2, []time.Duration{0}, 0},
		{"over the in-call maximum: returned", "2", "GET", 1, []time.Duration{}, 2 * time.Second},
		{"a day: returned, capped", "86400", "GET", 1, []time.Duration{}, MaxRetryAfter},
		{"a date eleven years out: returned, capped", time.Now().AddDate(11, 0, 0).UTC().Format(http.TimeFormat), "GET", 1, []time.Duration{}, MaxRetryAfter},
		{"a date in the past: tried again at once", "Thu, 02 Jan 2020 03:04:35 GMT", "GET", 2, []time.Duration{0}, 0},
		{"negative: ignored, ordinary backoff", "-5", "GET", 2, nil, 0},
		{"garbage: ignored, ordinary backoff", "soon", "GET", 2, nil, 0},
		{"a blind POST is not tried again, the wait is carried", "1", "POST", 1, []time.Duration{}, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var first atomic.Pointer[statusError]
			srv, n := serve(t, func(i int, w http.ResponseWriter, _ *http.Request) {
				if i == 0 {
					w.Header().Set("Retry-After", tc.header)
					w.WriteHeader(503)
					return
				}
				w.WriteHeader(200)
			})
			c, rec := newCore(t, srv.URL, nil)
			_, err := c.Do(context.Background(), newRequest(t, c, tc.method, srv.URL+"/things"), func(resp *Response) error {
				err := read(resp)
				var se *statusError
				if errors.As(err, &se) {
					first.CompareAndSwap(nil, se)
				}
				return err
			})
			if n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d (err %v)", n.Load(), tc.calls, err)
			}
			w := rec.Waits()
			switch {
			case tc.waits == nil && (len(w) != 1 || w[0] < 0 || w[0] > time.Second):
				t.Errorf("waits %v, want one backoff wait within [0, 1s]", w)
			case tc.waits != nil && !slices.Equal(w, tc.waits):
				t.Errorf("waits %v, want %v", w, tc.waits)
			}
			if se := first.Load(); se == nil || se.retryAfter != tc.carried {
				t.Errorf("the first error = %+v, want RetryAfter %v", se, tc.carried)
			}
			if tc.calls == 1 {
				var se *statusError
				if !errors.As(err, &se) || se.retryAfter != tc.carried {
					t.Errorf("err = %v, want the 503 carrying %v", err, tc.carried)
				}
			}
		})
	}
}

// TestNoRedirect: a 3xx is never followed, so the credentials and the body
// never reach its target; it is an invalid response naming the target's
// host only, with its status, and is not tried again.
func TestNoRedirect(t *testing.T) {
	t.Parallel()
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			var elsewhere atomic.Int32
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				elsewhere.Add(1)
				if r.Header.Get("Authorization") != "" {
					t.Errorf("the redirect target received credentials")
				}
			}))
			t.Cleanup(target.Close)
			srv, n := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/collect?token=leak-me", status)
			})
			c, rec := newCore(t, srv.URL, func(cfg *Config) {
				cfg.Authorize = func(_ context.Context, req *http.Request) error {
					req.Header.Set("Authorization", "Bearer s3cr3t")
					return nil
				}
			})
			r := newRequest(t, c, "PUT", srv.URL+"/things")
			r.Body = []byte(`{"password":"initial"}`)
			_, err := c.Do(context.Background(), r, read)
			if !errors.Is(err, errInvalid) || errors.Is(err, errTransient) {
				t.Fatalf("err = %v, want an invalid response", err)
			}
			var sc interface{ StatusCode() int }
			if !errors.As(err, &sc) || sc.StatusCode() != status {
				t.Errorf("err = %v, want its status %d through StatusCode", err, status)
			}
			host := strings.TrimPrefix(target.URL, "http://")
			if msg := err.Error(); !strings.Contains(msg, host) || strings.Contains(msg, "collect") || strings.Contains(msg, "leak-me") {
				t.Errorf("err = %q, want the target's host %s and nothing more of its URL", msg, host)
			}
			if elsewhere.Load() != 0 || n.Load() != 1 {
				t.Errorf("the target saw %d requests, the server %d; want 0 and 1", elsewhere.Load(), n.Load())
			}
			if a := rec.Attempts(); len(a) != 1 || a[0].Status != status || !errors.Is(a[0].Err, errInvalid) {
				t.Errorf("attempts %+v, want one with status %d", a, status)
			}
		})
	}
	t.Run("relative Location names the same host", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusFound)
		})
		c, _ := newCore(t, srv.URL, nil)
		_, err := c.Do(context.Background(), newRequest(t, c, "GET", srv.URL+"/things"), read)
		if !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "http://")) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no Location", func(t *testing.T) {
		t.Parallel()
		srv, _ := serve(t, statuses(http.StatusNotModified))
		c, _ := newCore(t, srv.URL, nil)
		_, err := c.Do(context.Background(), newRequest(t, c, "GET", srv.URL+"/things"), read)
		if !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), "no usable Location") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestOutsideBase: a request to anywhere but under the base URL is refused
// before Authorize adds a credential, and never sent.
func TestOutsideBase(t *testing.T) {
	t.Parallel()
	srv, n := serve(t, statuses(200))
	var authorized atomic.Int32
	c, _ := newCore(t, srv.URL+"/api/", func(cfg *Config) {
		cfg.Authorize = func(context.Context, *http.Request) error { authorized.Add(1); return nil }
	})
	other := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for _, raw := range []string{
		other + "/api/things", // another host
		strings.Replace(srv.URL, "http:", "https:", 1) + "/api/x",  // another scheme
		srv.URL + "/apix/things",                                   // a sibling of the base path
		srv.URL + "/other",                                         // outside the base path
		srv.URL + "/api/../other",                                  // out by dot-dot
		srv.URL + "/api/%2E%2E/other",                              // out by an escaped dot-dot
		strings.Replace(srv.URL, "//", "//user:pw@", 1) + "/api/x", // credentials in the URL
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.NewRequest("GET", "GET /things", u, nil); !errors.Is(err, ErrOutsideBase) {
			t.Errorf("NewRequest(%s) = %v, want ErrOutsideBase", raw, err)
		}
		// A request whose URL is changed after NewRequest is refused by Do.
		r := newRequest(t, c, "GET", srv.URL+"/api/things")
		r.URL = u
		if _, err := c.Do(context.Background(), r, read); !errors.Is(err, ErrOutsideBase) || strings.Contains(err.Error(), "pw") {
			t.Errorf("Do(%s) = %v, want ErrOutsideBase", raw, err)
		}
	}
	if n.Load() != 0 || authorized.Load() != 0 {
		t.Errorf("%d requests sent, %d authorized; want none", n.Load(), authorized.Load())
	}
	if _, err := c.Do(context.Background(), newRequest(t, c, "GET", srv.URL+"/api/things"), read); err != nil || authorized.Load() != 1 {
		t.Errorf("a request under the base: %v, %d authorized", err, authorized.Load())
	}
	// An id holding an escaped slash and dots stays one segment, under the base.
	if _, err := c.NewRequest("GET", "GET /things/{id}", &url.URL{Scheme: "http", Host: strings.TrimPrefix(srv.URL, "http://"),
		Path: "/api/things/a/../b", RawPath: "/api/things/a%2F..%2Fb"}, nil); err != nil {
		t.Errorf("an escaped id: %v", err)
	}
	// A base without a path: url.JoinPath leaves the joined path relative.
	bare, _ := newCore(t, srv.URL, nil)
	base, _ := url.Parse(srv.URL)
	if _, err := bare.NewRequest("GET", "GET /things", base.JoinPath("v2", "things"), nil); err != nil {
		t.Errorf("a joined path under a bare base: %v", err)
	}
}

// TestContext: no attempt once the caller is gone, no wait past its
// deadline, and a cancel during the wait ends the call with both errors.
func TestContext(t *testing.T) {
	t.Parallel()
	t.Run("cancelled mid-backoff", func(t *testing.T) {
		t.Parallel()
		srv, n := serve(t, statuses(503))
		c, _ := newCore(t, srv.URL, func(cfg *Config) { cfg.Retry = Retry{Attempts: 5, BaseDelay: time.Hour, MaxDelay: time.Hour} })
		ctx, cancel := context.WithCancel(context.Background())
		var slept atomic.Int32
		c.sleep = func(sctx context.Context, d time.Duration) error {
			slept.Add(1)
			go cancel() // the caller gives up while the core waits an hour
			<-sctx.Done()
			return sctx.Err()
		}
		_, err := c.Do(ctx, newRequest(t, c, "GET", srv.URL+"/things"), read)
		if !errors.Is(err, errTransient) || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want the 503's transient failure and context.Canceled", err)
		}
		if n.Load() != 1 || slept.Load() != 1 {
			t.Errorf("calls = %d, waits = %d; want 1 and 1", n.Load(), slept.Load())
		}
	})
	t.Run("a wait past the deadline is not begun", func(t *testing.T) {
		t.Parallel()
		srv, n := serve(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(503)
		})
		c, rec := newCore(t, srv.URL, func(cfg *Config) { cfg.Retry.MaxDelay = time.Minute })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Do(ctx, newRequest(t, c, "GET", srv.URL+"/things"), read)
		if !errors.Is(err, errTransient) || n.Load() != 1 || len(rec.Waits()) != 0 {
			t.Errorf("err = %v, calls = %d, waits %v; want the 503 after 1 call, no wait", err, n.Load(), rec.Waits())
		}
	})
	t.Run("done before the call", func(t *testing.T) {
		t.Parallel()
		srv, n := serve(t, statuses(200))
		c, rec := newCore(t, srv.URL, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Do(ctx, newRequest(t, c, "GET", srv.URL+"/things"), read)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errTransient) || n.Load() != 0 || len(rec.Attempts()) != 0 {
			t.Errorf("err = %v, calls = %d, attempts %d; want context.Canceled, none, none", err, n.Load(), len(rec.Attempts()))
		}
	})
	t.Run("cancelled during the call", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		srv, n := serve(t, func(_ int, w http.ResponseWriter, _ *http.Request) { cancel(); w.WriteHeader(503) })
		c, rec := newCore(t, srv.URL, nil)
		_, _ = c.Do(ctx, newRequest(t, c, "GET", srv.URL+"/things"), read)
		if n.Load() != 1 || len(rec.Waits()) != 0 {
			t.Errorf("calls = %d, waits %v; want 1 call and no wait", n.Load(), rec.Waits())
		}
	})
}

// TestBodyLimits: a success larger than MaxBody is an invalid response
// (with its status); an error reply is cut at MaxErrorBody.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		status  int
		size    int
		invalid bool
		got     int // the body read passes on
	}{
		{"success at the limit", 200, testMaxBody, false, testMaxBody},
		{"success over the limit", 200, testMaxBody + 1, true, 0},
		{"error reply cut", 400, 3 * testMaxBody, false, testMaxBody / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, n := serve(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, strings.Repeat("x", tc.size))
			})
			c, _ := newCore(t, srv.URL, nil)
			var got int
			_, err := c.Do(context.Background(), newRequest(t, c, "GET", srv.URL+"/things"), func(resp *Response) error {
				got = len(resp.Body)
				return read(resp)
			})
			if tc.invalid {
				var sc interface{ StatusCode() int }
				if !errors.Is(err, errInvalid) || !errors.As(err, &sc) || sc.StatusCode() != tc.status || !strings.Contains(err.Error(), "larger than") {
					t.Errorf("err = %v, want an invalid response with status %d", err, tc.status)
				}
				if n.Load() != 1 {
					t.Errorf("calls = %d, want 1: an unreadable reply is not tried again", n.Load())
				}
			}
			if got != tc.got {
				t.Errorf("read got %d bytes, want %d", got, tc.got)
			}
		})
	}
}

// TestAttempts: each attempt reaches the observer in the one shape, and the
// transport sees the request as the core built it.
func TestAttempts(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, func(i int, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", fmt.Sprint("req-", i))
		w.WriteHeader([]int{502, 201}[i])
	})
	var seen atomic.Value
	c, rec := newCore(t, srv.URL, func(cfg *Config) {
		cfg.HTTPClient = &http.Client{Transport: transportFunc(func(r *http.Request) (*http.Response, error) {
			seen.Store(r.Header.Get("User-Agent"))
			return http.DefaultTransport.RoundTrip(r)
		})}
	})
	if _, err := c.Do(context.Background(), newRequest(t, c, "PUT", srv.URL+"/things"), read); err != nil {
		t.Fatal(err)
	}
	a := rec.Attempts()
	if len(a) != 2 {
		t.Fatalf("attempts %+v, want 2", a)
	}
	for i, want := range []struct {
		status int
		id     string
		failed bool
	}{{502, "req-0", true}, {201, "req-1", false}} {
		got := a[i]
		if got.System != "test_system" || got.Action != "PUT /things" || got.Method != "PUT" || got.Status != want.status ||
			got.RequestID != want.id || got.Attempt != i+1 || (got.Err != nil) != want.failed || got.Duration <= 0 {
			t.Errorf("attempt %d = %+v", i, got)
		}
	}
	if s := seen.Load(); s != "httpcall-test" {
		t.Errorf("the transport saw %v", s)
	}
}

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestLogging: a retried call logs its retry and its giving up, with the
// error (no body, no credential).
func TestLogging(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(503)
		_, _ = io.WriteString(w, "reply-body-secret")
	})
	core, logs := observer.New(zap.DebugLevel)
	c, _ := newCore(t, srv.URL, func(cfg *Config) {
		cfg.Logger = zap.New(core)
		cfg.Authorize = func(_ context.Context, r *http.Request) error { r.SetBasicAuth("key", "s3cr3t"); return nil }
	})
	r := newRequest(t, c, "GET", srv.URL+"/things")
	if _, err := c.Do(context.Background(), r, read); !errors.Is(err, errTransient) {
		t.Fatalf("err = %v", err)
	}
	if n := logs.FilterMessage("retrying test call").Len(); n != 2 {
		t.Errorf("%d retry lines, want 2", n)
	}
	gaveUp := logs.FilterMessage("test call failed after retries").All()
	if len(gaveUp) != 1 || gaveUp[0].Level != zap.WarnLevel || gaveUp[0].ContextMap()["attempts"] != int64(3) {
		t.Errorf("give-up lines %+v", gaveUp)
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		if strings.Contains(line, "s3cr3t") || strings.Contains(line, "reply-body-secret") {
			t.Errorf("log line shows a secret: %s", line)
		}
	}
}

// TestBackoffBounds: between attempts, full jitter within the cap.
func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	c, _ := newCore(t, "http://api.test", func(cfg *Config) {
		cfg.Retry = Retry{Attempts: 100, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}
	})
	r := newRequest(t, c, "GET", "http://api.test/things")
	for attempt := 1; attempt <= 40; attempt++ {
		limit := min(10*time.Millisecond<<min(attempt-1, 10), 50*time.Millisecond)
		for range 20 {
			d, ok := c.again(context.Background(), r, attempt, nil, errTransient)
			if !ok || d < 0 || d > limit {
				t.Fatalf("again(%d) = %v, %v; want a wait within [0, %v]", attempt, d, ok, limit)
			}
		}
	}
}

// TestErrorField: a log line shows an outside call's error whole when no
// text of the outside system can be in it, else only its status.
func TestErrorField(t *testing.T) {
	t.Parallel()
	answered := &statusError{status: 409, kind: fmt.Errorf("conflict: logon ann.lee@example.com taken")}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"answered: status only", fmt.Errorf("wrapped: %w", answered), "HTTP 409 answered"},
		{"unreadable reply: whole", &ReplyError{Call: "test GET /x", Status: 200, Kind: errInvalid, Reason: "reply is not JSON"}, "reply is not JSON"},
		{"transport: whole", TransportError("test GET /x", errTransient, io.ErrUnexpectedEOF), "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			zap.New(core).Info("x", ErrorField(tc.err))
			got := fmt.Sprint(logs.All()[0].ContextMap()["error"])
			if !strings.Contains(got, tc.want) || strings.Contains(got, "ann.lee") {
				t.Errorf("error field %q, want it to say %q and no outside text", got, tc.want)
			}
		})
	}
}
