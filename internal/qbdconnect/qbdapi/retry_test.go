package qbdapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/httpcall"
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
		{"GET 500 502 504: gives up after 3 attempts", []int{500, 502, 504}, getProduct, 3, ErrTransient},
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
			err := tc.call(newClient(t, url))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
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
			c := newClient(t, "http://qbd.test", WithHTTPClient(&http.Client{Transport: rt}))
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

// TestRetryAfter: a Retry-After up to the backoff cap is waited; a longer
// one ends the call, and the APIError carries it, capped at
// httpcall.MaxRetryAfter.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, header string
		calls        int32
		carried      time.Duration // the APIError's RetryAfter when not retried
	}{
		{"zero: tried again at once", "0", 2, 0},
		{"longer than the cap: not waited, not retried", "30", 1, 30 * time.Second},
		{"a day: not retried, capped", "86400", 1, httpcall.MaxRetryAfter},
		{"a date eleven years out: not retried, capped", time.Now().AddDate(11, 0, 0).UTC().Format(http.TimeFormat), 1, httpcall.MaxRetryAfter},
		{"malformed: ordinary backoff", "soon", 2, 0},
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
			err := getProduct(newClient(t, url, WithRetry(3, time.Millisecond, 10*time.Second)))
			if n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d (err %v)", n.Load(), tc.calls, err)
			}
			if tc.calls == 1 {
				var ae *APIError
				if !errors.As(err, &ae) || ae.RetryAfter != tc.carried {
					t.Errorf("err = %v, want an APIError with RetryAfter %v", err, tc.carried)
				}
			}
		})
	}
}

// TestContextDone: a done context stops the retries, and the error says
// both what failed and why it stopped.
func TestContextDone(t *testing.T) {
	t.Parallel()
	t.Run("canceled while waiting to retry", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		url := setup(t, func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Retry-After", "60") // within the cap below: waited
			reply(w, 503, "")
			time.AfterFunc(20*time.Millisecond, cancel) // the caller gives up during the wait
		})
		_, err := newClient(t, url, WithRetry(3, time.Hour, time.Hour)).GetProduct(ctx, "p")
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
		_ = getProduct2(ctx, newClient(t, url))
		if n.Load() != 1 {
			t.Errorf("calls = %d, want 1", n.Load())
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
		c := newClient(t, url, WithRetry(3, time.Millisecond, time.Minute))
		// Retry-After 5s fits under the cap but the deadline is sooner.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := getProduct2(ctx, c)
		if !errors.Is(err, ErrTransient) || errors.Is(err, context.DeadlineExceeded) || n.Load() != 1 {
			t.Errorf("err = %v, calls = %d; want the 503 after 1 call, without waiting for the deadline", err, n.Load())
		}
	})
	t.Run("done before the call", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		url := setup(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1) })
		c := newClient(t, url)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := getProduct2(ctx, c)
		if !errors.Is(err, context.Canceled) || n.Load() != 0 {
			t.Errorf("err = %v, calls = %d; want context.Canceled and no call", err, n.Load())
		}
	})
}

func getProduct2(ctx context.Context, c *Client) error { _, err := c.GetProduct(ctx, "p"); return err }

// TestObserved: each attempt reaches the observer with its method, route
// and status, and neither the attempts' log fields nor the client's log
// hold the token or any body.
func TestObserved(t *testing.T) {
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
	log := zap.New(core)
	var mu sync.Mutex
	var attempts []httpcall.Attempt
	c := newClient(t, url, WithToken(secret), WithLogger(log), WithObserver(func(_ context.Context, a httpcall.Attempt) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, a)
		log.Debug("qbd_connect call", a.LogFields()...)
	}))
	if _, err := c.UpdateSubscription(context.Background(), "s", Subscription{Email: "request-body-secret"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 {
		t.Fatalf("%d attempts observed, want 2", len(attempts))
	}
	for i, status := range []int{503, 200} {
		if a := attempts[i]; a.System != "qbd_connect" || a.Action != "PUT /subscriptions/{id}" || a.Method != "PUT" || a.Status != status || a.Attempt != i+1 {
			t.Errorf("attempt %d = %+v", i, a)
		}
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, s := range []string{secret, "reply-body-secret", "request-body-secret"} {
			if strings.Contains(line, s) {
				t.Errorf("log line shows %q: %s", s, line)
			}
		}
	}
}
