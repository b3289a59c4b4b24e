package store

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// redisServer is a redis-server process the test owns.
type redisServer struct {
	cmd  *exec.Cmd
	port string
}

// startRedisServer starts redis-server on port (a free one when empty),
// without persistence, with args appended (for example "--replicaof", host,
// port), and waits until it accepts connections. The test skips where
// redis-server is not installed (fails under CI=true).
func startRedisServer(t *testing.T, port string, args ...string) *redisServer {
	t.Helper()
	if port == "" {
		_, port, _ = net.SplitHostPort(freeAddr(t))
	}
	// --dir: a replica's initial sync writes dump.rdb there even without
	// persistence; keep it out of the source tree.
	base := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}
	return startRedisProcess(t, port, append(base, args...))
}

// startRedisProcess runs redis-server with args, kills it at the end of the
// test, and waits until port accepts connections. It skips the test where
// redis-server is not installed, and fails it then under CI=true
// (testredis.Binary).
func startRedisProcess(t *testing.T, port string, args []string) *redisServer {
	t.Helper()
	cmd := exec.Command(testredis.Binary(t), args...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	s := &redisServer{cmd: cmd, port: port}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %s did not come up: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the process (as a crash would) and reaps it; safe to repeat.
func (s *redisServer) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

func TestOutage(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t, "")
	r := openTest(t, Options{URL: "redis://127.0.0.1:" + srv.port + "/0"})
	req := inbox.ClaimRequest{Key: "id:outage", Fingerprint: fpA, Lease: 5 * time.Second, TTL: time.Hour}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Ping", r.Ping},
		{"Claim", func(ctx context.Context) error { _, err := r.Claim(ctx, req); return err }},
		{"Account", func(ctx context.Context) error { _, err := r.Account(ctx, "sub-1"); return err }},
		{"Lock", func(ctx context.Context) error {
			_, unlock, err := r.Lock(ctx, "sub-1", time.Second, 0)
			if err == nil {
				unlock()
			}
			return err
		}},
	}
	ctx := ctxT(t)
	for _, c := range calls {
		if err := c.call(ctx); err != nil && !errors.Is(err, events.ErrNotFound) {
			t.Fatalf("%s before the outage: %v", c.name, err)
		}
	}

	srv.stop()
	for _, c := range calls {
		// The caller's budget is PROCESS_TIMEOUT, 4s; an outage must be
		// reported well inside it even when the ctx allows more.
		start := time.Now()
		err := c.call(ctx)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v to fail, want well under 4s", c.name, d)
		}
		if !errors.Is(err, events.ErrUnavailable) {
			t.Errorf("%s during the outage: %v, want ErrUnavailable", c.name, err)
		}
	}

	// Same port, same *Redis: the client reconnects by itself.
	startRedisServer(t, srv.port)
	deadline := time.Now().Add(5 * time.Second)
	for r.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no reconnection 5s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range calls {
		if err := c.call(ctx); err != nil && !errors.Is(err, events.ErrNotFound) {
			t.Errorf("%s after Redis came back: %v", c.name, err)
		}
	}
}
