// Package testredis gives tests a Redis of their own that they can take
// down, bring back and empty: a real redis-server process where the
// environment runs real-Redis tests (REDIS_URL set and redis-server
// installed, as in CI), else an in-process miniredis. Tests that need the
// real one call Real.
package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Server is a Redis owned by one test.
type Server struct {
	t    testing.TB
	port string
	bin  string // redis-server, or "" for miniredis
	dir  string
	cmd  *exec.Cmd
	mini *miniredis.Miniredis
}

// Start returns a running Redis, real where the environment allows it.
func Start(t testing.TB) *Server {
	t.Helper()
	if bin, ok := realAvailable(); ok {
		return startReal(t, bin)
	}
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true) // expire keys by the wall clock, as a real Redis does
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return &Server{t: t, mini: m}
}

// Real returns a real redis-server, or skips the test saying why.
func Real(t testing.TB) *Server {
	t.Helper()
	bin, ok := realAvailable()
	if !ok {
		t.Skip("REDIS_URL not set or redis-server not installed: skipping real-Redis test")
	}
	return startReal(t, bin)
}

func realAvailable() (string, bool) {
	if os.Getenv("REDIS_URL") == "" {
		return "", false
	}
	bin, err := exec.LookPath("redis-server")
	return bin, err == nil
}

func startReal(t testing.TB, bin string) *Server {
	t.Helper()
	s := &Server{t: t, bin: bin, dir: t.TempDir(), port: freePort(t)}
	s.Up()
	t.Cleanup(s.Down)
	return s
}

// Real reports whether s is a redis-server process.
func (s *Server) Real() bool { return s.bin != "" }

// URL is the redis:// URL of s.
func (s *Server) URL() string {
	if s.mini != nil {
		return "redis://" + s.mini.Addr()
	}
	return "redis://127.0.0.1:" + s.port + "/0"
}

// Down stops s, as an outage or a crash of Redis would.
func (s *Server) Down() {
	if s.mini != nil {
		s.mini.Close()
		return
	}
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Up starts s on its address again, empty (nothing is persisted).
func (s *Server) Up() {
	s.t.Helper()
	if s.mini != nil {
		s.mini.FlushAll()
		if err := s.mini.Restart(); err != nil {
			s.t.Fatal(err)
		}
		return
	}
	s.cmd = exec.Command(s.bin, "--bind", "127.0.0.1", "--port", s.port, "--save", "", "--appendonly", "no", "--dir", s.dir)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + s.port})
	defer c.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on port %s did not come up", s.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Flush empties s without stopping it.
func (s *Server) Flush() {
	s.t.Helper()
	if s.mini != nil {
		s.mini.FlushAll()
		return
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + s.port})
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		s.t.Fatal(err)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// String describes s for test logs.
func (s *Server) String() string {
	if s.mini != nil {
		return fmt.Sprintf("miniredis at %s", s.mini.Addr())
	}
	return "redis-server at 127.0.0.1:" + s.port
}
