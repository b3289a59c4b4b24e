package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RedisError is an error reply of Redis (a "-ERR ..." line).
type RedisError struct{ Msg string }

func (e *RedisError) Error() string { return "redis: " + e.Msg }

// maxBulk bounds a bulk reply this tool reads (INFO commandstats is a few KiB).
const maxBulk = 1 << 20

// redisCommand sends one command on a new connection and returns its
// status, integer or bulk string reply (PING, FLUSHALL, CONFIG RESETSTAT,
// INFO, ECHO). The tool needs no more of Redis than this, so it does not
// take a client library for it.
func redisCommand(ctx context.Context, addr string, args ...string) (string, error) {
	conn, err := dialRedis(ctx, addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := sendCommand(conn, args...); err != nil {
		return "", fmt.Errorf("redis at %s: sending %s: %w", addr, args[0], err)
	}
	v, err := readReply(bufio.NewReader(conn))
	var re *RedisError
	if err != nil && !errors.As(err, &re) {
		return "", fmt.Errorf("redis at %s: the reply to %s: %w", addr, args[0], err)
	}
	return v, err
}

func dialRedis(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("redis at %s: %w", addr, err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, fmt.Errorf("redis at %s: %w", addr, err)
	}
	return conn, nil
}

func sendCommand(w io.Writer, args ...string) error {
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	_, err := io.WriteString(w, req.String())
	return err
}

// readReply reads one status, error, integer or bulk string reply; an
// error reply is a *RedisError.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case line == "":
		return "", errors.New("an empty reply")
	case line[0] == '-':
		return "", &RedisError{Msg: line[1:]}
	case line[0] == '+' || line[0] == ':':
		return line[1:], nil
	case line[0] == '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 || n > maxBulk {
			return "", fmt.Errorf("a bulk reply of %q bytes", line[1:])
		}
		if n == -1 {
			return "", nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// commandStats reads INFO commandstats: calls per command ("get",
// "evalsha", "config|resetstat").
func commandStats(ctx context.Context, addr string) (map[string]int, error) {
	info, err := redisCommand(ctx, addr, "INFO", "commandstats")
	if err != nil {
		return nil, err
	}
	return parseCommandStats(info)
}

// usedMemory reads INFO memory's used_memory: the bytes Redis holds.
func usedMemory(ctx context.Context, addr string) (int64, error) {
	info, err := redisCommand(ctx, addr, "INFO", "memory")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO memory has no used_memory")
}

// parseCommandStats reads "cmdstat_get:calls=12,usec=..." lines.
func parseCommandStats(info string) (map[string]int, error) {
	out := map[string]int{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.Atoi(strings.TrimPrefix(calls, "calls="))
		if err != nil || !strings.HasPrefix(calls, "calls=") {
			return nil, fmt.Errorf("INFO commandstats: %q has no calls=N", line)
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out, nil
}

// ownCommands are the commands this tool sends around a phase; they are
// not the target's.
var ownCommands = map[string]bool{"config|resetstat": true, "info": true, "flushall": true, "echo": true, "ping": true}

// scriptCommands run a script: one round trip that runs others inside.
var scriptCommands = map[string]bool{"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true, "fcall": true, "fcall_ro": true}

// redisUse is what a target asked of Redis in a phase: every command,
// those run inside scripts included, and the scripts among them.
type redisUse struct{ Commands, Scripts int }

func useOf(stats map[string]int) redisUse {
	var u redisUse
	for cmd, n := range stats {
		if ownCommands[cmd] {
			continue
		}
		u.Commands += n
		if scriptCommands[cmd] {
			u.Scripts += n
		}
	}
	return u
}

// monitor is a MONITOR connection: it counts the commands Redis runs,
// between marks this tool sends (ECHO), so that each request's share is
// known without clocks.
type monitor struct {
	addr  string
	conn  net.Conn
	lines chan string
	done  chan struct{}
	err   error
	mark  int
	wg    sync.WaitGroup
}

// markPrefix starts the ECHO argument that splits the monitor's stream.
const markPrefix = "loadtest:mark:"

func startMonitor(ctx context.Context, addr string) (*monitor, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("redis at %s: %w", addr, err)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := sendCommand(conn, "MONITOR"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("redis at %s: MONITOR: %w", addr, err)
	}
	if _, err := readReply(r); err != nil {
		conn.Close()
		return nil, fmt.Errorf("redis at %s: MONITOR: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	m := &monitor{addr: addr, conn: conn, lines: make(chan string, 4096), done: make(chan struct{})}
	m.wg.Go(func() {
		defer close(m.lines)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				m.err = err
				return
			}
			select {
			case m.lines <- strings.TrimRight(line, "\r\n"):
			case <-m.done:
				return
			}
		}
	})
	return m, nil
}

func (m *monitor) close() {
	close(m.done)
	m.conn.Close()
	m.wg.Wait()
}

// traffic is what Redis ran for one request: round trips (commands sent
// by clients, a MULTI…EXEC block counted once) and commands (those and
// what scripts ran). Trace names each round trip: its command and first
// key, ids replaced by placeholders.
type traffic struct {
	RoundTrips, Commands int
	Trace                []string
}

// next sends a mark and returns what Redis ran since the previous one.
func (m *monitor) next(ctx context.Context) (traffic, error) {
	m.mark++
	want := markPrefix + strconv.Itoa(m.mark)
	if _, err := redisCommand(ctx, m.addr, "ECHO", want); err != nil {
		return traffic{}, err
	}
	var t traffic
	inMulti := map[string]bool{} // clients between MULTI and EXEC
	for {
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case line, ok := <-m.lines:
			if !ok {
				return t, fmt.Errorf("the MONITOR connection ended: %v", m.err)
			}
			client, cmd, ok := parseMonitorLine(line)
			switch {
			case !ok:
			case cmd == "echo" && strings.Contains(line, `"`+want+`"`):
				return t, nil
			case cmd == "echo" && strings.Contains(line, `"`+markPrefix):
				// an earlier mark (a request whose window was cut short)
			case client == "lua":
				t.Commands++
			default:
				t.Commands++
				switch {
				case cmd == "multi":
					inMulti[client] = true
					t.RoundTrips++
					t.Trace = append(t.Trace, "multi")
				case cmd == "exec" || cmd == "discard":
					delete(inMulti, client)
				case inMulti[client]:
					t.Trace[len(t.Trace)-1] += "+" + cmd
				default:
					t.RoundTrips++
					t.Trace = append(t.Trace, traceOf(line, cmd))
				}
			}
		}
	}
}

// parseMonitorLine reads `1700000000.123456 [0 127.0.0.1:5000] "get" "k"`:
// the client ("lua" for a script's command) and the command, lower case.
func parseMonitorLine(line string) (client, cmd string, ok bool) {
	_, rest, ok := strings.Cut(line, " [")
	if !ok {
		return "", "", false
	}
	who, rest, ok := strings.Cut(rest, "] ")
	if !ok {
		return "", "", false
	}
	_, client, _ = strings.Cut(who, " ")
	name, _, _ := strings.Cut(strings.TrimPrefix(rest, `"`), `"`)
	return client, strings.ToLower(name), name != ""
}

// traceOf names one command of a MONITOR line: "get webhook:account:{S}",
// "evalsha webhook:lock:{S}" (a script by its first key).
func traceOf(line, cmd string) string {
	args := quoted(line)
	key := ""
	switch {
	case (cmd == "evalsha" || cmd == "eval") && len(args) > 3 && args[2] != "0":
		key = args[3]
	case cmd != "evalsha" && cmd != "eval" && len(args) > 1:
		key = args[1]
	}
	if key == "" {
		return cmd
	}
	return cmd + " " + idPattern.ReplaceAllStringFunc(key, func(id string) string {
		if strings.Count(id, "-") == 4 {
			return "S" // a subscription (a UUID)
		}
		return "H" // a hash or a token
	})
}

// idPattern matches the ids in keys: UUIDs and long hex strings.
var idPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,}`)

// quoted returns the quoted arguments of a MONITOR line, unescaped only
// as far as a key needs (\" and \\).
func quoted(line string) []string {
	var out []string
	for {
		i := strings.IndexByte(line, '"')
		if i < 0 {
			return out
		}
		line = line[i+1:]
		var b strings.Builder
		for len(line) > 0 && line[0] != '"' {
			if line[0] == '\\' && len(line) > 1 {
				line = line[1:]
			}
			b.WriteByte(line[0])
			line = line[1:]
		}
		out = append(out, b.String())
		if len(line) > 0 {
			line = line[1:]
		}
	}
}
