package testredis

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// errNoMain reports SharedURL (or a skip) in a package whose TestMain does
// not call Main: nothing would stop the redis-server it starts, or say how
// many tests skipped.
var errNoMain = errors.New("testredis: the package's TestMain must call testredis.Main(m), which stops the redis-server that SharedURL starts and says how many real-Redis tests skipped")

// shared is the real Redis that the tests of this test binary share.
var shared = &pool{getenv: os.Getenv, lookPath: exec.LookPath, out: os.Stderr}

// Main runs the package's tests, stops the redis-server (and Cluster)
// that SharedURL (SharedClusterURL) started for them, if any, and says in
// one line how many real-Redis tests were skipped and why, if any were
// (go test shows it with -v, on failure, or through .ci/testsummary). Call
// it from TestMain:
//
//	func TestMain(m *testing.M) { testredis.Main(m) }
func Main(m *testing.M) { os.Exit(shared.main(m)) }

// SharedURL returns the URL of the real Redis that the package's tests
// share: REDIS_URL when it is set, else a redis-server that the first call
// starts on a free loopback port, without persistence, and that Main stops
// when the tests end. It skips t when REDIS_URL is unset and redis-server
// is not on PATH (fails it under CI=true), and fails it when redis-server
// does not start. The
// choice is printed once to stderr (go test shows it with -v or on
// failure). Tests sharing the server must keep to their own keys: it is
// never flushed.
func SharedURL(t testing.TB) string {
	t.Helper()
	url, skip, err := shared.get()
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		missing(t, skip)
	}
	return url
}

// SharedAvailable reports whether SharedURL would give a real Redis rather
// than skip, without starting one: for benchmarks that fall back to
// miniredis.
func SharedAvailable() bool { return shared.available() }

// pool decides, once per test binary, where the real-Redis tests run.
type pool struct {
	getenv   func(string) string
	lookPath func(string) (string, error)
	out      io.Writer // where the choice is said

	mu      sync.Mutex
	inMain  bool
	decided bool
	url     string // the real Redis; empty with skip or err
	skip    string // why the real-Redis tests skip
	err     error  // why they fail
	proc    *process
	dir     string

	cluster clusterChoice // the shared Cluster, decided on first use
	skips   skips         // tests skipped for want of a real Redis
}

// main runs m with p ready to start a redis-server, stops it after, and
// says how many tests skipped.
func (p *pool) main(m interface{ Run() int }) int {
	p.mu.Lock()
	p.inMain = true
	p.mu.Unlock()
	defer p.skips.report(p.out)
	defer p.stop()
	return m.Run()
}

// running reports whether the tests run under main.
func (p *pool) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inMain
}

// available reports whether get would give a URL, without starting a server.
func (p *pool) available() bool {
	if p.getenv("REDIS_URL") != "" {
		return true
	}
	_, err := p.lookPath("redis-server")
	return err == nil
}

// get returns the real Redis's URL, or why there is none: skip when the
// environment has no real Redis, err when it should have one and it failed.
// The first call decides (and starts the server); later ones repeat it.
func (p *pool) get() (url, skip string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.decided {
		p.decided = true
		if note := p.decide(); note != "" {
			fmt.Fprintln(p.out, note)
		}
	}
	return p.url, p.skip, p.err
}

// decide sets url, skip or err and returns the line that says so.
func (p *pool) decide() string {
	if !p.inMain {
		p.err = errNoMain
		return ""
	}
	if p.getenv("REDIS_URL") != "" {
		p.url = p.getenv("REDIS_URL")
		return "testredis: real-Redis tests run on REDIS_URL"
	}
	bin, err := p.lookPath("redis-server")
	if err != nil {
		p.skip = noRedisServer // and REDIS_URL is not set
		return ""              // main says how many tests this skipped
	}
	if p.dir, err = os.MkdirTemp("", "testredis-"); err != nil {
		p.err = fmt.Errorf("testredis: a directory for redis-server: %w", err)
		return ""
	}
	proc, port, err := startOnFreePort(bin, p.dir)
	if err != nil {
		p.err = fmt.Errorf("testredis: REDIS_URL not set and redis-server did not start: %w", err)
		return ""
	}
	p.proc, p.url = proc, "redis://127.0.0.1:"+port+"/0"
	return fmt.Sprintf("testredis: REDIS_URL not set: real-Redis tests run on %s, started at %s and stopped when they end", bin, proc.addr)
}

// stop ends the server that get started, if any, and removes its files.
func (p *pool) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.proc.stop()
		p.proc = nil
	}
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
		p.dir = ""
	}
	p.cluster.stop()
	p.inMain = false
}
