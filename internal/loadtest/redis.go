package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// RedisError is an error reply of Redis (a "-ERR ..." line).
type RedisError struct{ Msg string }

func (e *RedisError) Error() string { return "redis: " + e.Msg }

// redisCommand sends one command on a new connection and returns the
// status or integer reply (PING, FLUSHALL, DBSIZE). The tool needs no more
// of Redis than this, so it does not take a client library for it.
func redisCommand(ctx context.Context, addr string, args ...string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("redis at %s: %w", addr, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return "", fmt.Errorf("redis at %s: %w", addr, err)
	}
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return "", fmt.Errorf("redis at %s: sending %s: %w", addr, args[0], err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("redis at %s: reading the reply to %s: %w", addr, args[0], err)
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case line == "":
		return "", fmt.Errorf("redis at %s: an empty reply to %s", addr, args[0])
	case line[0] == '-':
		return "", &RedisError{Msg: line[1:]}
	case line[0] == '+' || line[0] == ':':
		return line[1:], nil
	}
	return "", fmt.Errorf("redis at %s: unexpected reply %q to %s", addr, line, args[0])
}
