package qbdclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/backoff"
)

var (
	getProduct = func(c *Client) error { _, err := c.GetProduct(context.Background(), "p"); return err }
	putSub     = func(c *Client) error {
		_, err := c.UpdateSubscription(context.Background(), "s", Subscription{})
		return err
	}
	deleteInst = func(c *Client) error { return c.DeleteInstance(context.Background(), "i", "") }
	patchInst  = func(c *Client) error { return c.PatchInstance(context.Background(), "i", InstancePatch{}) }
	createCust = func(c *Client) error { _, err := c.CreateCustomer(context.Background(), Customer{}); return err }
	createInst = func(c *Client) error { _, err := c.CreateInstance(context.Background(), Instance{}); return err }
	createSub  = func(c *Client) error {
		_, err := c.CreateSubscription(context.Background(), Subscription{})
		return err
	}
	okBodyFor   = map[string]string{"GET": `{"id":"p"}`, "PUT": `{"subscriptionId":"s"}`, "POST": `{}`}
	noBodyCalls = map[string]bool{"DELETE": true, "PATCH": true}
)

func TestRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		statuses []int // answered in turn; the last repeats
		call     func(*Client) error
		calls    int32
		wantErr  error
	}{
		{"GET 503 then ok", []int{503, 200}, getProduct, 2, nil},
		{"GET 500 502 504: gives up after 2 retries", []int{500, 502, 504}, getProduct, 3, ErrTransient},
		{"GET 429 then ok", []int{429, 200}, getProduct, 2, nil},
		{"GET 408 then ok", []int{408, 200}, getProduct, 2, nil},
		{"GET 404 not retried", []int{404}, getProduct, 1, ErrNotFound},
		{"GET 400 not retried", []int{400}, getProduct, 1, ErrBadRequest},
		{"GET 401 not retried", []int{401}, getProduct, 1, ErrUnauthorized},
		{"PUT 502 then ok", []int{502, 200}, putSub, 2, nil},
		{"DELETE 503 503 then ok", []int{503, 503, 200}, deleteInst, 3, nil},
		{"POST customer 503 not retried", []int{503}, createCust, 1, ErrTransient},
		{"POST instance 429 not retried", []int{429}, createInst, 1, ErrTransient},
		{"POST subscription 500 not retried", []int{500}, createSub, 1, ErrTransient},
		{"PATCH 503 not retried", []int{503}, patchInst, 1, ErrTransient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			url := setup(t, func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				st := tc.statuses[min(i, len(tc.statuses)-1)]
				if st == 200 && noBodyCalls[r.Method] {
					st = 204
				}
				reply(w, st, okBodyFor[r.Method])
			})
			c, waits := newClient(t, url)
			err := tc.call(c)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d", n.Load(), tc.calls)
			}
			if w := waits(); len(w) != int(tc.calls)-1 || slices.ContainsFunc(w, func(d time.Duration) bool { return d < 0 || d > 5*time.Millisecond }) {
				t.Errorf("waits %v, want %d within [0, 5ms]", w, tc.calls-1)
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

func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name  string
		err   error
		call  func(*Client) error
		calls int32
	}{
		{"POST retried when the dial failed", refused, createCust, 3},
		{"PATCH retried when the dial failed", refused, patchInst, 3},
		{"POST not retried after a reset", io.ErrUnexpectedEOF, createSub, 1},
		{"GET retried after a reset", io.ErrUnexpectedEOF, getProduct, 3},
		{"DELETE retried after a timeout", context.DeadlineExceeded, deleteInst, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := &roundTripper{err: tc.err}
			c, _ := newClient(t, "http://qbd.test", WithHTTPClient(&http.Client{Transport: rt}))
			err := tc.call(c)
			if !errors.Is(err, ErrTransient) || !errors.Is(err, tc.err) {
				t.Errorf("err = %v, want ErrTransient wrapping %v", err, tc.err)
			}
			if strings.Contains(err.Error(), "qbd.test") {
				t.Errorf("err %q shows the URL", err)
			}
			if rt.n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d", rt.n.Load(), tc.calls)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, header string
		calls        int32
		waits        []time.Duration
	}{
		{"seconds, within the cap, waited exactly", "2", 2, []time.Duration{2 * time.Second}},
		{"longer than the cap: not waited, not retried", "30", 1, nil},
		{"malformed: ordinary backoff", "soon", 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			url := setup(t, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", tc.header)
					reply(w, 503, `{"message":"busy"}`)
					return
				}
				reply(w, 200, `{"id":"p"}`)
			})
			c, waits := newClient(t, url, WithBackoff(time.Millisecond, 10*time.Second))
			err := getProduct(c)
			if n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d (err %v)", n.Load(), tc.calls, err)
			}
			if tc.waits != nil && !slices.Equal(waits(), tc.waits) {
				t.Errorf("waits %v, want %v", waits(), tc.waits)
			}
			if tc.calls == 1 {
				var ae *APIError
				if !errors.As(err, &ae) || ae.RetryAfter != 30*time.Second {
					t.Errorf("err = %v, want an APIError with RetryAfter 30s", err)
				}
			}
		})
	}
}

func TestRetryAfterValue(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{" 7 ", 7 * time.Second},
		{"Thu, 02 Jan 2025 03:04:35 GMT", 30 * time.Second},
		{"Thu, 02 Jan 2025 03:04:00 GMT", 0},
		{"later", 0},
		{"99999999999", 366 * 24 * time.Hour},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	c, err := New("http://qbd.test", WithBackoff(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 40; attempt++ {
		for range 20 {
			d, ok := c.backoff(attempt, ErrTransient)
			limit := min(10*time.Millisecond<<(attempt-1), 50*time.Millisecond)
			if attempt > 30 {
				limit = 50 * time.Millisecond
			}
			if !ok || d < 0 || d > limit {
				t.Fatalf("backoff(%d) = %v, %v; want within [0, %v]", attempt, d, ok, limit)
			}
		}
	}
}

// TestContextDone: a done context stops the retries, and the error says
// both what failed and why it stopped.
func TestContextDone(t *testing.T) {
	t.Parallel()
	t.Run("canceled while waiting to retry", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		url := setup(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1); reply(w, 503, "") })
		c, err := New(url, WithBackoff(time.Hour, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		c.sleep = func(sctx context.Context, d time.Duration) error {
			cancel() // the caller gives up during the wait
			return backoff.Sleep(sctx, d)
		}
		_, err = c.GetProduct(ctx, "p")
		if !errors.Is(err, ErrTransient) || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want ErrTransient and context.Canceled", err)
		}
		if n.Load() != 1 {
			t.Errorf("calls = %d, want 1", n.Load())
		}
	})
	t.Run("canceled during the call", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		url := setup(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1); cancel(); reply(w, 503, "") })
		c, waits := newClient(t, url)
		_ = getProduct2(ctx, c)
		if n.Load() != 1 || len(waits()) != 0 {
			t.Errorf("calls = %d, waits %v; want 1 call and no wait", n.Load(), waits())
		}
	})
	t.Run("deadline before the wait ends", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		url := setup(t, func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Retry-After", "5")
			reply(w, 503, "")
		})
		c, waits := newClient(t, url, WithBackoff(time.Millisecond, time.Minute))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Retry-After 5s fits under the cap but the deadline is sooner.
		ctx2, cancel2 := context.WithDeadline(ctx, time.Now().Add(2*time.Second))
		defer cancel2()
		err := getProduct2(ctx2, c)
		if !errors.Is(err, ErrTransient) || n.Load() != 1 || len(waits()) != 0 {
			t.Errorf("err = %v, calls = %d, waits %v; want ErrTransient after 1 call, no wait", err, n.Load(), waits())
		}
	})
	t.Run("done before the call", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		url := setup(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1) })
		c, _ := newClient(t, url)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := getProduct2(ctx, c)
		if !errors.Is(err, context.Canceled) || n.Load() != 0 {
			t.Errorf("err = %v, calls = %d; want context.Canceled and no call", err, n.Load())
		}
	})
}

func getProduct2(ctx context.Context, c *Client) error { _, err := c.GetProduct(ctx, "p"); return err }

// TestLogging: one debug line per attempt with method, route, status and
// duration, and neither the token nor any body.
func TestLogging(t *testing.T) {
	t.Parallel()
	const secret = "tok-s3cr3t"
	var n atomic.Int32
	url := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			reply(w, 503, `{"message":"reply-body-secret"}`)
			return
		}
		reply(w, 200, `{"subscriptionId":"s","email":"reply-body-secret"}`)
	})
	core, logs := observer.New(zap.DebugLevel)
	c, _ := newClient(t, url, WithToken(secret), WithLogger(zap.New(core)))
	_, err := c.UpdateSubscription(context.Background(), "s", Subscription{Email: "request-body-secret"})
	if err != nil {
		t.Fatal(err)
	}
	var attempts int
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, s := range []string{secret, "reply-body-secret", "request-body-secret"} {
			if strings.Contains(line, s) {
				t.Errorf("log line shows %q: %s", s, line)
			}
		}
		if e.Message != "qbd call" {
			continue
		}
		attempts++
		m := e.ContextMap()
		if m["method"] != "PUT" || m["route"] != "/subscriptions/{id}" || m["status"] == nil || m["duration"] == nil || e.Level != zap.DebugLevel {
			t.Errorf("log line %v %v", e.Level, m)
		}
	}
	if attempts != 2 {
		t.Errorf("%d attempt lines, want 2", attempts)
	}
}
