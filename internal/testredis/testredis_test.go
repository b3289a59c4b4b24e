package testredis

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// runner stands in for *testing.M: Run runs fn as the package's tests.
type runner func() int

func (r runner) Run() int { return r() }

func TestMain(m *testing.M) { Main(m) }

// needRedisServer returns redis-server's path, or skips t (fails it under
// CI=true).
func needRedisServer(t *testing.T) string {
	t.Helper()
	return Binary(t)
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func notFound(string) (string, error) { return "", exec.ErrNotFound }

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("URL %q: %v", rawURL, err)
	}
	return u.Host
}

// TestSharedStartsOneServerAndStopsIt: without REDIS_URL, the first of
// many concurrent callers starts one redis-server, every caller gets its
// URL, the choice is said once, and the server is gone after main.
func TestSharedStartsOneServerAndStopsIt(t *testing.T) {
	needRedisServer(t)
	var out bytes.Buffer
	p := &pool{getenv: env(nil), lookPath: exec.LookPath, out: &out}
	var addr, dir string
	code := p.main(runner(func() int {
		urls := make([]string, 8)
		var wg sync.WaitGroup
		for i := range urls {
			wg.Go(func() {
				u, skip, err := p.get()
				if err != nil || skip != "" {
					t.Errorf("get = %q, skip %q, %v; want a URL", u, skip, err)
				}
				urls[i] = u
			})
		}
		wg.Wait()
		for _, u := range urls[1:] {
			if u != urls[0] {
				t.Fatalf("callers got different servers: %q", urls)
			}
		}
		addr, dir = hostPort(t, urls[0]), p.dir
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		if err := c.Set(context.Background(), "k", "v", 0).Err(); err != nil {
			t.Errorf("SET on the shared server: %v", err)
		}
		return 7
	}))
	if code != 7 {
		t.Errorf("main = %d, want the tests' exit code 7", code)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 || !strings.Contains(out.String(), "REDIS_URL not set") {
		t.Errorf("said %d lines, want 1 saying REDIS_URL is not set:\n%s", n, out.String())
	}
	if _, err := serverPID(addr); err == nil {
		t.Errorf("a server still answers on %s after main", addr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the server's directory %s is still there (%v)", dir, err)
	}
}

// TestSharedChoice covers the choices that start nothing.
func TestSharedChoice(t *testing.T) {
	const given = "redis://:secret@10.0.0.1:6379/0"
	tests := []struct {
		name      string
		vars      map[string]string
		lookPath  func(string) (string, error)
		noMain    bool
		wantURL   string
		wantSkip  bool
		wantErr   error
		wantNote  string // "" for none
		available bool
	}{
		{name: "REDIS_URL wins", vars: map[string]string{"REDIS_URL": given}, lookPath: exec.LookPath,
			wantURL: given, wantNote: "run on REDIS_URL", available: true},
		{name: "REDIS_URL without redis-server", vars: map[string]string{"REDIS_URL": given}, lookPath: notFound,
			wantURL: given, wantNote: "run on REDIS_URL", available: true},
		{name: "neither: skip, and main says how many", lookPath: notFound,
			wantSkip: true, available: false},
		{name: "without Main", vars: map[string]string{"REDIS_URL": given}, lookPath: exec.LookPath, noMain: true,
			wantErr: errNoMain, available: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := &pool{getenv: env(tt.vars), lookPath: tt.lookPath, out: &out}
			var gets [2]struct {
				url, skip string
				err       error
			}
			run := func() int {
				for i := range gets {
					gets[i].url, gets[i].skip, gets[i].err = p.get()
				}
				return 0
			}
			if tt.noMain {
				run()
			} else {
				p.main(runner(run))
			}
			for i, g := range gets {
				if g.url != tt.wantURL || (g.skip != "") != tt.wantSkip || !errors.Is(g.err, tt.wantErr) {
					t.Errorf("get #%d = %q, skip %q, %v; want %q, skip %v, %v", i+1, g.url, g.skip, g.err, tt.wantURL, tt.wantSkip, tt.wantErr)
				}
			}
			if p.proc != nil {
				t.Errorf("a redis-server was started")
			}
			note := out.String()
			switch {
			case tt.wantNote == "" && note != "":
				t.Errorf("said %q, want nothing", note)
			case tt.wantNote != "" && (strings.Count(note, "\n") != 1 || !strings.Contains(note, tt.wantNote)):
				t.Errorf("said %q, want one line with %q", note, tt.wantNote)
			}
			if strings.Contains(note, "secret") {
				t.Errorf("said %q, which shows REDIS_URL's password", note)
			}
			if got := p.available(); got != tt.available {
				t.Errorf("available = %v, want %v", got, tt.available)
			}
		})
	}
}

// TestSharedStartFailureFails: a redis-server that does not start fails
// the real-Redis tests rather than skipping them.
func TestSharedStartFailureFails(t *testing.T) {
	broken, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false program to stand in for a broken redis-server")
	}
	var out bytes.Buffer
	p := &pool{getenv: env(nil), lookPath: func(string) (string, error) { return broken, nil }, out: &out}
	p.main(runner(func() int {
		u, skip, err := p.get()
		if err == nil || u != "" || skip != "" || !strings.Contains(err.Error(), "exited before answering") {
			t.Errorf("get = %q, skip %q, %v; want an error saying it exited before answering", u, skip, err)
		}
		return 0
	}))
}

// TestServerDownUp: a test's own server goes down, comes back empty on the
// same address, and Flush empties it.
func TestServerDownUp(t *testing.T) {
	needRedisServer(t)
	s := Real(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: hostPort(t, s.URL()), MaxRetries: -1})
	defer c.Close()
	set := func() {
		t.Helper()
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
	}
	exists := func() int64 {
		t.Helper()
		n, err := c.Exists(ctx, "k").Result()
		if err != nil {
			t.Fatalf("EXISTS: %v", err)
		}
		return n
	}
	set()
	s.Down()
	if _, err := serverPID(hostPort(t, s.URL())); err == nil {
		t.Fatalf("%s answers after Down", s)
	}
	s.Up()
	if n := exists(); n != 0 {
		t.Errorf("after Down and Up the key exists; want an empty Redis")
	}
	set()
	s.Flush()
	if n := exists(); n != 0 {
		t.Errorf("after Flush the key exists")
	}
}

// TestStartRefusesTakenPort: a new server whose port is already served by
// another is an error, never mistaken for ready.
func TestStartRefusesTakenPort(t *testing.T) {
	bin := needRedisServer(t)
	holder := Real(t)
	p, err := startProcess(bin, holder.port, t.TempDir())
	if err == nil {
		p.stop()
		t.Fatalf("startProcess on %s's port succeeded", holder)
	}
	t.Logf("startProcess on a taken port: %v", err)
	if pid, err := serverPID(hostPort(t, holder.URL())); err != nil || pid != holder.proc.cmd.Process.Pid {
		t.Errorf("%s: pid %d, %v after the clash; want it still serving", holder, pid, err)
	}
}

// TestServerPID: the INFO reply is read as Redis writes it, and anything
// else is an error.
func TestServerPID(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\ntcp_port:6379\r\n"
	tests := []struct {
		name    string
		reply   string
		want    int
		wantErr string
	}{
		{"info", "$" + strconv.Itoa(len(info)) + "\r\n" + info + "\r\n", 4242, ""},
		{"loading", "-LOADING Redis is loading the dataset in memory\r\n", 0, "LOADING"},
		{"no pid", "$5\r\nabcde\r\n", 0, "no process_id"},
		{"cut short", "$100\r\nabc", 0, "EOF"},
		{"huge", "$999999999\r\n", 0, "answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.reply)
			pid, err := serverPID(addr)
			if tt.wantErr == "" {
				if err != nil || pid != tt.want {
					t.Errorf("serverPID = %d, %v; want %d", pid, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("serverPID = %d, %v; want an error with %q", pid, err, tt.wantErr)
			}
		})
	}
}

// fakeServer answers each connection on a loopback port with reply, after
// reading its request line, and closes it.
func fakeServer(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte(reply))
			c.Close()
		}
	})
	return ln.Addr().String()
}
