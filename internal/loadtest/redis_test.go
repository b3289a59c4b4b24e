package loadtest

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeRedis answers every command on 127.0.0.1 with reply and records the
// first line of the request it got.
func fakeRedis(t *testing.T, reply string) (addr string, got <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		var req strings.Builder
		for range 3 { // *1, $N, the command name
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			req.WriteString(line)
		}
		ch <- req.String()
		_, _ = conn.Write([]byte(reply))
	}()
	return ln.Addr().String(), ch
}

func TestRedisCommand(t *testing.T) {
	tests := []struct {
		reply   string
		want    string
		wantErr bool
		typed   bool // a *RedisError
	}{
		{"+OK\r\n", "OK", false, false},
		{":42\r\n", "42", false, false},
		{"-ERR unknown command\r\n", "", true, true},
		{"$3\r\nabc\r\n", "abc", false, false},
		{"$-1\r\n", "", false, false},
		{"$x\r\n", "", true, false},
		{"*1\r\n", "", true, false},
		{"\r\n", "", true, false},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.reply), func(t *testing.T) {
			addr, got := fakeRedis(t, tt.reply)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			v, err := redisCommand(ctx, addr, "FLUSHALL")
			if req := <-got; req != "*1\r\n$8\r\nFLUSHALL\r\n" {
				t.Fatalf("sent %q", req)
			}
			var re *RedisError
			switch {
			case (err != nil) != tt.wantErr:
				t.Fatalf("err = %v; want error %t", err, tt.wantErr)
			case errors.As(err, &re) != tt.typed:
				t.Fatalf("err = %v; want a *RedisError: %t", err, tt.typed)
			case v != tt.want:
				t.Fatalf("value %q; want %q", v, tt.want)
			}
		})
	}
}

func TestRedisCommandUnreachable(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := redisCommand(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "PING"); err == nil {
		t.Fatal("PING to a closed port succeeded")
	}
}

func TestParseCommandStats(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_get:calls=12,usec=30,usec_per_call=2.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_evalsha:calls=3,usec=300\r\ncmdstat_config|resetstat:calls=1,usec=9\r\ncmdstat_hset:calls=6,usec=9\r\n"
	got, err := parseCommandStats(info)
	if err != nil {
		t.Fatal(err)
	}
	if got["get"] != 12 || got["evalsha"] != 3 || got["config|resetstat"] != 1 || len(got) != 4 {
		t.Fatalf("got %v", got)
	}
	if u := useOf(got); u != (redisUse{Commands: 21, Scripts: 3}) {
		t.Fatalf("use %+v; want 21 commands (resetstat is ours) and 3 scripts", u)
	}
	if _, err := parseCommandStats("cmdstat_get:usec=3\r\n"); err == nil {
		t.Fatal("a line without calls= was accepted")
	}
}

func TestParseMonitorLine(t *testing.T) {
	tests := []struct {
		line, client, cmd string
		ok                bool
	}{
		{`1700000000.123456 [0 127.0.0.1:5000] "GET" "webhook:account:{s}"`, "127.0.0.1:5000", "get", true},
		{`1700000000.123456 [0 lua] "hset" "k" "f" "v"`, "lua", "hset", true},
		{`1700000000.123456 [0 unix:/tmp/r.sock] "multi"`, "unix:/tmp/r.sock", "multi", true},
		{`OK`, "", "", false},
	}
	for _, tt := range tests {
		client, cmd, ok := parseMonitorLine(tt.line)
		if client != tt.client || cmd != tt.cmd || ok != tt.ok {
			t.Errorf("%q: got %q %q %t; want %q %q %t", tt.line, client, cmd, ok, tt.client, tt.cmd, tt.ok)
		}
	}
}

func TestTraceOf(t *testing.T) {
	sub, h := "0b6f6a1e-3c1d-4e9a-9d7e-2b0f5c9a1e33", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	tests := []struct{ line, want string }{
		{`1.0 [0 127.0.0.1:1] "evalsha" "abc" "2" "webhook:lock:{` + sub + `}" "webhook:account:{` + sub + `}" "tok"`, "evalsha webhook:lock:{S}"},
		{`1.0 [0 127.0.0.1:1] "get" "webhook:copy:{` + h + `}"`, "get webhook:copy:{H}"},
		{`1.0 [0 127.0.0.1:1] "evalsha" "abc" "0"`, "evalsha"},
		{`1.0 [0 127.0.0.1:1] "set" "a\"b" "1"`, `set a"b`},
	}
	for _, tt := range tests {
		_, cmd, _ := parseMonitorLine(tt.line)
		if got := traceOf(tt.line, cmd); got != tt.want {
			t.Errorf("%q: got %q; want %q", tt.line, got, tt.want)
		}
	}
}

// fakeMonitor is a Redis that answers MONITOR with +OK and ECHO with its
// argument, and on each ECHO first streams the next request's lines to the
// monitor, then the ECHO's own line.
func fakeMonitor(t *testing.T, requests [][]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	mon := make(chan net.Conn, 1)
	go func() {
		var monitor net.Conn
		for i := 0; ; {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(conn)
			var args []string
			n := 0
			if line, err := r.ReadString('\n'); err == nil {
				n, _ = strconv.Atoi(strings.TrimSpace(line[1:]))
			}
			for range n {
				_, _ = r.ReadString('\n')
				a, _ := r.ReadString('\n')
				args = append(args, strings.TrimSpace(a))
			}
			switch {
			case len(args) == 1 && args[0] == "MONITOR":
				monitor = conn
				_, _ = conn.Write([]byte("+OK\r\n"))
				mon <- conn
			case len(args) == 2 && args[0] == "ECHO":
				if i < len(requests) {
					for _, l := range requests[i] {
						_, _ = monitor.Write([]byte(l + "\r\n"))
					}
				}
				i++
				_, _ = monitor.Write([]byte(`1.0 [0 127.0.0.1:9] "ECHO" "` + args[1] + "\"\r\n"))
				_, _ = conn.Write([]byte("$" + strconv.Itoa(len(args[1])) + "\r\n" + args[1] + "\r\n"))
				conn.Close()
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case c := <-mon:
			c.Close()
		default:
		}
	})
	return ln.Addr().String()
}

func TestMonitorCountsBetweenMarks(t *testing.T) {
	addr := fakeMonitor(t, [][]string{
		{
			`1.0 [0 127.0.0.1:5] "evalsha" "sha" "1" "webhook:copy:{9f86d081884c7d659a2feaa0c55ad015}"`,
			`1.0 [0 lua] "get" "webhook:copy:{x}"`,
			`1.0 [0 lua] "hmget" "webhook:delivery:{x}" "state"`,
			`1.0 [0 127.0.0.1:5] "get" "webhook:account:{0b6f6a1e-3c1d-4e9a-9d7e-2b0f5c9a1e33}"`,
			`1.0 [0 127.0.0.1:6] "multi"`,
			`1.0 [0 127.0.0.1:6] "zadd" "q" "1" "s"`,
			`1.0 [0 127.0.0.1:6] "zrem" "r" "s"`,
			`1.0 [0 127.0.0.1:6] "exec"`,
		},
		{`1.0 [0 127.0.0.1:5] "get" "floor:reply:9f86d081884c7d659a2feaa0c55ad015"`},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := startMonitor(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	first, err := m.next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantTrace := []string{"evalsha webhook:copy:{H}", "get webhook:account:{S}", "multi+zadd+zrem"}
	if first.RoundTrips != 3 || first.Commands != 8 || strings.Join(first.Trace, "; ") != strings.Join(wantTrace, "; ") {
		t.Fatalf("first request: %+v; want 3 round trips (a MULTI block once), 8 commands, trace %q", first, wantTrace)
	}
	second, err := m.next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.RoundTrips != 1 || second.Commands != 1 {
		t.Fatalf("second request: %+v; want 1 and 1", second)
	}
}
