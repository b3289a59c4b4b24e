// Package testredis gives tests a real Redis where the machine has one,
// so that the rules that depend on Redis are proven on Redis itself and
// not only on miniredis:
//
//   - SharedURL: one Redis for all the real-Redis tests of a test binary,
//     REDIS_URL when it is set, else a redis-server started on a free
//     loopback port when one is on PATH, stopped by Main; tests skip when
//     there is neither.
//   - SharedClusterURL: one three-master Redis Cluster of redis-server
//     processes for the test binary, stopped by Main.
//   - Start: a Redis of the test's own that it can take down, bring back
//     and empty: a redis-server process when one is on PATH, else an
//     in-process miniredis.
//   - Real and Binary: a redis-server of the test's own, or its path.
//
// Tests never pass by skipping in CI: with CI=true, a test that needs
// redis-server fails when it is missing (and Start does not fall back to
// miniredis). Elsewhere they skip, and Main says in one line per package
// how many skipped and why.
//
// Servers run without persistence, bound to 127.0.0.1, and die with the
// test binary.
package testredis

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Server is a Redis owned by one test.
type Server struct {
	t    testing.TB
	port string
	bin  string // redis-server, or "" for miniredis
	dir  string
	proc *process // nil while down
	mini *miniredis.Miniredis
}

// startNote says once per test binary what Start runs on.
var startNote sync.Once

// Start returns a running Redis that t owns: a redis-server process when
// redis-server is on PATH, else miniredis (under CI=true, t fails instead).
// It is stopped when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, ok := realAvailable()
	if !ok && inCI(os.Getenv) {
		t.Fatalf("testredis: %s, and CI=true: tests that take Redis down must run on redis-server in CI, not miniredis; install redis-server (apt-get install redis-server)", noRedisServer)
	}
	startNote.Do(func() {
		if ok {
			fmt.Fprintf(os.Stderr, "testredis: tests that take Redis down run on their own %s\n", bin)
		} else {
			fmt.Fprintln(os.Stderr, "testredis: redis-server not on PATH: tests that take Redis down run on miniredis")
		}
	})
	if ok {
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

// Real returns a redis-server process that t owns, or skips t (fails it
// under CI=true) when there is no redis-server.
func Real(t testing.TB) *Server {
	t.Helper()
	return startReal(t, Binary(t))
}

func realAvailable() (string, bool) {
	bin, err := exec.LookPath("redis-server")
	return bin, err == nil
}

func startReal(t testing.TB, bin string) *Server {
	t.Helper()
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	p, port, err := startOnFreePort(bin, s.dir)
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	s.proc, s.port = p, port
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
	if s.proc != nil {
		s.proc.stop()
		s.proc = nil
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
	if s.proc != nil {
		s.t.Fatalf("testredis: Up on %s, which is already up", s)
	}
	p, err := startProcess(s.bin, s.port, s.dir)
	if err != nil {
		s.t.Fatalf("testredis: %v", err)
	}
	s.proc = p
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

// String describes s for test logs.
func (s *Server) String() string {
	if s.mini != nil {
		return fmt.Sprintf("miniredis at %s", s.mini.Addr())
	}
	return "redis-server at 127.0.0.1:" + s.port
}
