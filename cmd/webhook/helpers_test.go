package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/logctx/logtest"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/testplan"
)

// syncBuffer collects a service's log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// service is one run() of the receiver on loopback ports.
type service struct {
	url    string // WEBHOOK_ADDR: every route, or the marketplace's only with OPS_ADDR
	opsURL string // OPS_ADDR's routes; url without OPS_ADDR
	logs   *syncBuffer
	stdout *syncBuffer // the log lines alone, without stderr
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startService runs `webhook serve` in-process with env as its whole
// environment (WEBHOOK_ADDR defaults to 127.0.0.1:0, LOG_LEVEL to debug, so
// that every line a delivery can write is written) and waits until it
// listens. When the test ends, every line it logged must be a JSON object
// with no key twice (logtest.CheckLine).
func startService(t *testing.T, env map[string]string, args ...string) *service {
	t.Helper()
	return startServiceCtx(t, context.Background(), env, args...)
}

// startServiceCtx is startService with the values of ctx (a test's span
// exporter, withSpanExporter).
func startServiceCtx(t *testing.T, ctx context.Context, env map[string]string, args ...string) *service {
	t.Helper()
	listening := make(chan Listening, 1)
	ctx, cancel := context.WithCancel(withOnListening(ctx, func(l Listening) { listening <- l }))
	s := &service{logs: &syncBuffer{}, stdout: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	getenv := func(k string) string {
		switch {
		case (k == "WEBHOOK_ADDR" || k == "SANDBOX_ADDR") && env[k] == "":
			return "127.0.0.1:0"
		case k == "LOG_LEVEL" && env[k] == "":
			return "debug"
		}
		return env[k]
	}
	stdout := io.MultiWriter(s.logs, s.stdout)
	go func() { s.done <- run(ctx, append([]string{"serve"}, args...), getenv, stdout, s.logs) }()
	t.Cleanup(func() {
		s.stop(t)
		logtest.CheckLines(t, s.stdout.String())
	})
	select {
	case l := <-listening:
		s.url = "http://" + l.Public.String()
		s.opsURL = s.url
		if l.Ops != nil {
			s.opsURL = "http://" + l.Ops.String()
		}
		return s
	case err := <-s.done:
		t.Fatalf("the service stopped at start: %v\n%s", err, s.logs)
	case <-time.After(15 * time.Second):
		t.Fatalf("the service did not start listening:\n%s", s.logs)
	}
	return nil
}

// stop sends the "signal" and returns run's result.
func (s *service) stop(t *testing.T) error {
	t.Helper()
	s.once.Do(func() {
		s.cancel()
		select {
		case s.err = <-s.done:
		case <-time.After(30 * time.Second):
			t.Errorf("the service did not stop")
		}
	})
	return s.err
}

// startSandbox runs the sandbox of every outside API (Q2, QBD Connect,
// Helix and AppDirect with their default credentials), outliving the
// services a test starts.
func startSandbox(t *testing.T, cfg q2sandbox.Config) (testplan.Sandbox, string) {
	t.Helper()
	sb, err := newSandbox(sandboxConfig{q2: cfg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return testplan.Sandbox{Sandbox: sb}, srv.URL
}

// q2Env is a whole production environment: every outside API at the
// sandbox at url (startSandbox), Redis at redisURL, no authentication.
// A test that wants demo mode sets none of it.
func q2Env(url, redisURL string) map[string]string {
	return map[string]string{
		"Q2_BASE_URL":      url,
		"Q2_CLIENT_ID":     q2sandbox.DefaultClientID,
		"Q2_CLIENT_SECRET": q2sandbox.DefaultClientSecret,
		"QBD_BASE_URL":     url,
		"HELIX_BASE_URL":   url,
		"HELIX_API_KEY":    helixsandbox.DefaultKey,
		"HELIX_API_SECRET": helixsandbox.DefaultSecret,
		"WEBHOOK_AUTH":     "none",
		"REDIS_URL":        redisURL,
	}
}

// miniRedisURL is a Redis of the test's own, in the process, for a
// production service whose test proves nothing about Redis. It hides its
// maxmemory-policy as a managed Redis may: the service warns and goes on.
func miniRedisURL(t *testing.T) string {
	t.Helper()
	return "redis://" + miniredis.RunT(t).Addr()
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) reply(t *testing.T) events.Reply {
	t.Helper()
	var rep events.Reply
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatalf("reply is not JSON: %q", r.body)
	}
	return rep
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func post(t *testing.T, url string, body []byte, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withSubscription returns a fixture with another subscription_id and,
// when account is not empty, that accountIdentifier.
func withSubscription(t *testing.T, name, sub, account string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	m["subscription_id"] = sub
	if acct, ok := m["event"].(map[string]any)["payload"].(map[string]any)["account"].(map[string]any); ok && account != "" {
		acct["accountIdentifier"] = account
	}
	b, _ := json.Marshal(m)
	return b
}

func wantReply(t *testing.T, r response, status int, code events.ErrorCode) events.Reply {
	t.Helper()
	rep := r.reply(t)
	if r.status != status || (code == "" && !rep.Success) || (code != "" && rep.ErrorCode != code) {
		t.Fatalf("reply %d %s; want %d %q", r.status, r.body, status, code)
	}
	return rep
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
