package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// do sends one request and returns its status and body; the error is a
// transport failure (no reply).
func do(method, url string, body []byte, header http.Header) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// OPS_ADDR (issue 21): the public listener serves only the marketplace
// routes; /metrics, the probes and the read API are on the ops listener
// only.
func TestOpsListener(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{"WEBHOOK_AUTH": "none", "OPS_ADDR": "127.0.0.1:0", "API_TOKENS": apiToken})
	if svc.opsURL == svc.url {
		t.Fatalf("OPS_ADDR set, but one listener: %s", svc.url)
	}
	bearer := http.Header{"Authorization": {"Bearer " + apiToken}}
	order := withSubscription(t, "subscription-order.json", "sub-ops-listener", "")
	tests := []struct {
		method, path string
		body         []byte
		header       http.Header
		public       bool // else an ops route
		want         int  // its status where it is served
	}{
		{http.MethodPost, "/marketplace/p", order, nil, true, 200},
		{http.MethodGet, "/healthz", nil, nil, false, 200},
		{http.MethodGet, "/readyz", nil, nil, false, 200},
		{http.MethodGet, "/metrics", nil, nil, false, 200},
		{http.MethodGet, "/v1/subscriptions/sub-ops-listener", nil, bearer, false, 200},
		{http.MethodGet, "/v1/deliveries?subscription_id=sub-ops-listener", nil, bearer, false, 200},
	}
	for _, tt := range tests { // in order: the ORDER first
		on, off := svc.url, svc.opsURL
		if !tt.public {
			on, off = off, on
		}
		if status, body, err := do(tt.method, on+tt.path, tt.body, tt.header); err != nil || status != tt.want {
			t.Errorf("%s %s on its listener: %d %.200s %v, want %d", tt.method, tt.path, status, body, err, tt.want)
		}
		status, body, err := do(tt.method, off+tt.path, tt.body, tt.header)
		if err != nil || status != http.StatusNotFound || !strings.Contains(string(body), "no such route") {
			t.Errorf("%s %s on the other listener: %d %.200s %v, want 404 no such route", tt.method, tt.path, status, body, err)
		}
	}
}

// Without OPS_ADDR every route is on the one listener (go run, the demo).
func TestOneListenerByDefault(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{"WEBHOOK_AUTH": "none", "API_TOKENS": apiToken})
	if svc.opsURL != svc.url {
		t.Fatalf("no OPS_ADDR, but an ops listener at %s", svc.opsURL)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if got := get(t, svc.url+path); got != 200 {
			t.Errorf("GET %s: %d, want 200", path, got)
		}
	}
	wantReply(t, post(t, svc.url+"/marketplace/p", readFixture(t, "subscription-order.json"), nil), 200, "")
}

// SIGTERM with two listeners: /readyz on the ops listener turns 503 for
// SHUTDOWN_DELAY, the delivery in flight on the public one completes, and
// then both stop.
func TestGracefulDrainTwoListeners(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	sb, q2 := startSandbox(t, q2sandbox.Config{})
	env := q2Env(q2, redis.URL())
	env["SHUTDOWN_DELAY"] = "500ms"
	env["OPS_ADDR"] = "127.0.0.1:0"
	svc := startService(t, env)
	if err := sb.SetFault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 1000}); err != nil {
		t.Fatal(err)
	}
	replies := make(chan response, 1)
	go func() { replies <- post(t, svc.url+"/marketplace/p", readFixture(t, "subscription-order.json"), nil) }()
	eventually(t, 5*time.Second, "the enrollment to reach Q2", func() bool { return sb.Stats().Calls["Enrollment"] == 1 })

	stopped := make(chan error, 1)
	go func() { stopped <- svc.stop(t) }()
	eventually(t, 2*time.Second, "/readyz to turn 503", func() bool { return get(t, svc.opsURL+"/readyz") == 503 })

	wantReply(t, <-replies, 200, "")
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v", err)
	}
	for _, url := range []string{svc.url + "/marketplace/p", svc.opsURL + "/healthz"} {
		if _, _, err := do(http.MethodGet, url, nil, nil); err == nil {
			t.Errorf("%s still answers after the drain", url)
		}
	}
}

// Past SHUTDOWN_TIMEOUT the connections still open are closed: the sender
// of a delivery still in flight sees its connection cut (it sends again),
// not a reply, and run says the drain timed out. The cut delivery's
// handler runs on to its end, and Redis stays open until it has returned:
// run returns after the delivery's own log line, with its outcome stored
// (a copy sent afterwards is a replay) and no "redis: client is closed".
func TestShutdownTimeoutClosesConnections(t *testing.T) {
	t.Parallel()
	sb, q2 := startSandbox(t, q2sandbox.Config{})
	env := q2Env(q2, miniRedisURL(t))
	env["SHUTDOWN_TIMEOUT"] = "100ms"
	env["OPS_ADDR"] = "127.0.0.1:0"
	svc := startService(t, env)
	if err := sb.SetFault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 3000}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		status int
		err    error
	}
	results := make(chan result, 1)
	order := readFixture(t, "subscription-order.json")
	go func() {
		status, _, err := do(http.MethodPost, svc.url+"/marketplace/p", order, nil)
		results <- result{status, err}
	}()
	eventually(t, 5*time.Second, "the enrollment to reach Q2", func() bool { return sb.Stats().Calls["Enrollment"] == 1 })
	err := svc.stop(t)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "WEBHOOK_ADDR") {
		t.Errorf("run returned %v, want the drain of WEBHOOK_ADDR timed out", err)
	}
	if r := <-results; r.err == nil {
		t.Errorf("the delivery in flight got %d, want its connection closed", r.status)
	}
	logs := svc.logs.String()
	if !strings.Contains(logs, "shutdown timed out") {
		t.Errorf("no line says the shutdown timed out:\n%s", logs)
	}
	if !strings.Contains(logs, `"msg":"delivery"`) || strings.Contains(logs, "client is closed") {
		t.Errorf("run returned before the cut delivery's handler did, or Redis closed under it:\n%s", logs)
	}
	again := startService(t, env)
	if r := post(t, again.url+"/marketplace/p", order, nil); r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a copy after the restart got %d %s, want the outcome the cut handler stored, replayed", r.status, r.body)
	}
}

// An OPS_ADDR that cannot be bound stops the start (exit 2) naming it, and
// the public listener bound before it is closed again.
func TestOpsAddrTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var logs syncBuffer
	var listened atomic.Bool
	ctx, cancel := context.WithTimeout(withOnListening(context.Background(), func(Listening) { listened.Store(true) }), 30*time.Second)
	defer cancel()
	env := map[string]string{"WEBHOOK_AUTH": "none", "WEBHOOK_ADDR": "127.0.0.1:0", "SANDBOX_ADDR": "127.0.0.1:0", "OPS_ADDR": taken.Addr().String()}
	err = run(ctx, []string{"serve"}, func(k string) string { return env[k] }, &logs, &logs)
	var stderr bytes.Buffer
	if code := exitCode(err, &stderr); code != 2 || !strings.Contains(stderr.String(), "OPS_ADDR: cannot listen on") {
		t.Errorf("exit %d, %q; want 2 naming OPS_ADDR", code, stderr.String())
	}
	if listened.Load() {
		t.Error("the service said it listened")
	}
}

// The drain's count of running handlers: wait returns once the last one
// has, gives up past its limit naming how many are left, and no handler
// starts once it waits (a request read just before srv.Close).
func TestInFlightWait(t *testing.T) {
	t.Parallel()
	f := newInFlight()
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	h := f.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 { // the first request stays until released
			entered <- struct{}{}
			<-release
		}
	}))
	served := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		close(served)
	}()
	<-entered
	if err := f.wait(time.Millisecond); err == nil || !strings.Contains(err.Error(), "1 request(s) still running") {
		t.Errorf("wait with a handler stuck: %v, want it to give up naming 1 request", err)
	}
	late := httptest.NewRecorder()
	h.ServeHTTP(late, httptest.NewRequest(http.MethodGet, "/", nil))
	if late.Code != http.StatusServiceUnavailable || calls.Load() != 1 {
		t.Errorf("a request after the drain began got %d, %d handler calls; want 503 and the handler not called", late.Code, calls.Load())
	}
	close(release)
	<-served
	if err := f.wait(time.Minute); err != nil {
		t.Errorf("wait after the last handler returned: %v", err)
	}
}
