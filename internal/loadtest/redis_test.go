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
		{"$3\r\nabc\r\n", "", true, false},
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
