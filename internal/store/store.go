// Package store is the Redis side of the service: delivery records (dedupe,
// leases and the redelivery rules), the account records and their indexes,
// the settle queue, and per-subscription locks. Of the service's packages
// it is the only one that imports go-redis (the load benchmark's floor
// server and the test support, internal/testredis, import it too). The key
// layout lives in keys.go. On a single node or Sentinel a delivery's claim
// also takes its subscription's lock and reads its account, and its
// outcome carries the processing's last save (unit.go): a new ORDER is
// three round trips (the copy lookup, the claim with its intent, the
// outcome).
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
)

// DefaultPrefix namespaces every key when Options.Prefix is empty.
const DefaultPrefix = "webhook:"

// Client options chosen so that an outage fails fast, well inside the
// caller's PROCESS_TIMEOUT (4s by default), instead of hanging: the caller's
// ctx bounds every call (ContextTimeoutEnabled), and these bound what the
// ctx does not.
const (
	dialTimeout     = 2 * time.Second
	readTimeout     = time.Second
	writeTimeout    = time.Second
	poolTimeout     = 2 * time.Second
	maxRetries      = 2
	dialerRetries   = 2
	dialerRetryWait = 50 * time.Millisecond

	connBuffer     = 8 << 10  // each way, per pooled connection
	pipelineBuffer = 32 << 10 // each way, per connection of the pipeline pool
)

// Options configure Open. The package takes values: where they come from
// (the service's REDIS_* settings) is the caller's business, and the
// caller names them in its messages (see OptionError).
type Options struct {
	// URL is redis:// or rediss://, optionally with several
	// comma-separated hosts (see parseURL). Empty starts an embedded
	// miniredis, which keeps nothing across a restart: the caller says so.
	URL string
	// MasterName, when set, makes the URL's host(s) Sentinels and the
	// client follows the master they name.
	MasterName string
	// Cluster makes the URL's host(s) cluster seed nodes. Several hosts
	// without MasterName also mean Cluster (that is how go-redis's
	// UniversalClient reads a list of addresses).
	Cluster bool
	// Prefix namespaces every key; DefaultPrefix when empty. Tests use a
	// unique prefix each so that they never collide.
	Prefix string
	// Logger receives unlock failures; a nop logger when nil.
	Logger *zap.Logger
	// WaitReplicas: after each account write, wait (Redis WAIT) until that
	// many replicas have it, for up to WaitTimeout, before the write counts
	// as done. Set to the number of replicas (all of them), it keeps an
	// acknowledged account through a Sentinel failover; fewer does not,
	// because a replica still attached to the old master acknowledges
	// writes that the failover then drops (see
	// TestSentinelFailoverKeepsAcknowledgedAccounts). 0 (the default) does
	// not wait.
	WaitReplicas int
	// WaitTimeout is the longest WAIT; 500ms when zero.
	WaitTimeout time.Duration
	// OnError, when set, is told of every Redis command that failed
	// (connection, timeout, server error; not "no such key"), by command
	// name: for metrics.
	OnError func(command string)
	// Trace makes each command run under a traced context a span of its
	// own, child of the context's (see instrument); false (tracing off):
	// no hook at all.
	Trace bool
}

// OptionError is an Options field that Open refuses. Option is the
// field's name (URL, MasterName, Cluster, WaitReplicas) and Problem says
// what is wrong and the fix, without naming where the value came from: the
// caller knows that and prefixes its own name for it.
type OptionError struct {
	Option  string
	Problem string
}

func (e *OptionError) Error() string { return "redis " + e.Option + ": " + e.Problem }

// Validate reports every field of o that Open would refuse, each an
// *OptionError, joined (errors.Join); nil when o is good. It connects to
// nothing, so a configuration can be checked whole before anything starts.
func (o Options) Validate() error {
	var errs []error
	bad := func(option, format string, args ...any) {
		errs = append(errs, &OptionError{Option: option, Problem: fmt.Sprintf(format, args...)})
	}
	if o.WaitReplicas < 0 {
		bad("WaitReplicas", "is %d: use 0 (do not wait) or the number of replicas to wait for", o.WaitReplicas)
	}
	if o.Cluster && o.MasterName != "" {
		bad("Cluster", "cannot be combined with a Sentinel master name: set one of them")
	}
	if o.URL == "" {
		if o.MasterName != "" || o.Cluster {
			bad("URL", "is empty, but Sentinel or Cluster is asked for: set the Sentinels' or the cluster nodes' addresses")
		}
		if o.WaitReplicas > 0 {
			bad("WaitReplicas", "the embedded Redis (no URL) has no replicas: set the URL of a Redis with replicas, or wait for 0")
		}
		return errors.Join(errs...)
	}
	uo, err := parseURL(o.URL)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if (o.Cluster || (len(uo.Addrs) > 1 && o.MasterName == "")) && uo.DB != 0 {
		bad("URL", "selects database %d, but Redis Cluster has only database 0: drop the /%d path", uo.DB, uo.DB)
	}
	return errors.Join(errs...)
}

// errorHook tells onError of failed commands.
type errorHook struct{ onError func(string) }

func (h errorHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h errorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) && !isRefusedIntrospection(cmd, err) {
			h.onError(cmd.Name())
		}
		return err
	}
}

func (h errorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
			h.onError("pipeline")
		}
		return err
	}
}

// isNoScript is the EVALSHA miss that go-redis answers with EVAL: not a
// failure.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// isRefusedIntrospection is a managed Redis refusing CONFIG or INFO (see
// MaxmemoryPolicy): its answer, not a failure of Redis, so it does not
// count in the metric of Redis errors that an alert watches.
func isRefusedIntrospection(cmd redis.Cmder, err error) bool {
	var rerr redis.Error
	name := cmd.Name()
	return (name == "config" || name == "info") && errors.As(err, &rerr)
}

// ErrNotReplicated means a write reached the master but not WaitReplicas
// replicas within WaitTimeout: a failover now could lose it, so the caller
// treats it as not done (a transient failure; the retry is idempotent).
var ErrNotReplicated = errors.New("not replicated")

// Redis is the store. It is safe for concurrent use; the go-redis client
// reconnects by itself after an outage, so it is opened once per process.
type Redis struct {
	client redis.UniversalClient
	keys   keys
	log    *zap.Logger
	mini   *miniredis.Miniredis // non-nil in embedded mode
	// stopClock stops the embedded miniredis's clock (embedded mode only).
	stopClock func()
	// waitReplicas and waitTimeout: see Options.WaitReplicas.
	waitReplicas int
	waitTimeout  time.Duration
}

// Open connects to Redis and pings it once, so that a wrong address is a
// startup error rather than a 503 on the first delivery. An empty URL
// starts an embedded miniredis on 127.0.0.1:0. Options that Validate
// refuses are its error; Redis refusing the URL's credentials is an
// *AuthError; Redis not answering is events.ErrUnavailable.
func Open(ctx context.Context, o Options) (*Redis, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	r := &Redis{keys: keys{prefix: prefix}, log: log, waitReplicas: o.WaitReplicas, waitTimeout: o.WaitTimeout}
	if r.waitTimeout <= 0 {
		r.waitTimeout = 500 * time.Millisecond
	}

	var uo *redis.UniversalOptions
	if o.URL == "" {
		mini := miniredis.NewMiniRedis()
		// miniredis expires keys only when its clock is advanced. Its
		// ClockTTL does that on every command by walking every key, which
		// makes each command O(keys): a clock advanced on a ticker costs one
		// walk per tick instead, and leases still run out within a tick.
		if err := mini.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("starting embedded redis: %w", err)
		}
		r.mini = mini
		r.stopClock = advanceClock(mini, embeddedTick)
		uo = &redis.UniversalOptions{Addrs: []string{mini.Addr()}}
	} else {
		var err error
		if uo, err = parseURL(o.URL); err != nil {
			return nil, err // Validate has said so; kept for safety
		}
		uo.MasterName = o.MasterName
		uo.IsClusterMode = o.Cluster
	}
	uo.DialTimeout = dialTimeout
	uo.ReadTimeout = readTimeout
	uo.WriteTimeout = writeTimeout
	uo.PoolTimeout = poolTimeout
	uo.MaxRetries = maxRetries
	uo.DialerRetries = dialerRetries
	uo.DialerRetryTimeout = dialerRetryWait
	uo.ContextTimeoutEnabled = true
	// Buffers sized for what the service sends and reads: scripts with a
	// few KiB of arguments and short replies (a longer bulk reply is read
	// past the buffer). go-redis's defaults (32 KiB each way, 128 KiB for
	// the pipeline pool) cost 64–256 KiB per pooled connection.
	uo.ReadBufferSize, uo.WriteBufferSize = connBuffer, connBuffer
	uo.PipelineReadBufferSize, uo.PipelineWriteBufferSize = pipelineBuffer, pipelineBuffer
	// No CLIENT SETINFO on each new connection: one round trip less, and no
	// failed command on servers that lack it (the embedded one).
	uo.DisableIdentity = true
	// The maintenance-notification handshake only matters on Redis
	// Enterprise / Cloud; on others it costs a failing command per
	// connection and a log line.
	uo.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	r.client = redis.NewUniversalClient(uo)
	if o.OnError != nil {
		r.client.AddHook(errorHook{o.OnError})
	}
	if o.Trace {
		if err := instrument(r.client); err != nil {
			_ = r.Close()
			return nil, err
		}
	}

	if err := r.client.Ping(ctx).Err(); err != nil {
		_ = r.Close()
		if problem := authProblem(err); problem != "" {
			return nil, &AuthError{Problem: problem, err: err}
		}
		return nil, fmt.Errorf("connecting to redis: %w", unavailable("ping", err))
	}
	return r, nil
}

// AuthError is Redis refusing the credentials of the URL at Open: the
// password (or user) is missing or wrong.
// A retry will not help; the URL must change. Neither Problem nor the
// cause quote the password.
type AuthError struct {
	Problem string // what Redis said, in a few words
	err     error
}

func (e *AuthError) Error() string {
	return "redis refused the credentials: " + e.Problem + " (" + e.err.Error() + ")"
}
func (e *AuthError) Unwrap() error { return e.err }

// authProblem says which credentials problem err is, or "" when it is
// none. Redis answers NOAUTH when it wants a password it did not get, and
// WRONGPASS (Redis 6+) or "invalid password" (older) for a wrong one. (A
// password given to a Redis 6+ without one is accepted.)
func authProblem(err error) string {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return ""
	}
	msg := rerr.Error()
	switch {
	case strings.HasPrefix(msg, "NOAUTH"):
		return "Redis requires a password and none was given"
	case strings.HasPrefix(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
		return "the user or password is wrong"
	}
	return ""
}

// Embedded reports whether the store is the in-process miniredis, which
// keeps nothing across a restart.
func (r *Redis) Embedded() bool { return r.mini != nil }

// Close closes the client and, in embedded mode, stops the miniredis.
func (r *Redis) Close() error {
	err := r.client.Close()
	if r.mini != nil {
		r.stopClock()
		r.mini.Close()
	}
	return err
}

// Ping checks that Redis answers, for readiness.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// unavailable wraps a go-redis error in events.ErrUnavailable, keeping the cause
// for errors.Is (context.DeadlineExceeded, net errors) and for the log.
func unavailable(op string, err error) error {
	return fmt.Errorf("redis %s: %w: %w", op, events.ErrUnavailable, err)
}

// SetClientLogger sends go-redis's own log lines (failed dials during an
// outage, pool trouble) to log, at warn level, instead of the standard
// logger on stderr. go-redis has one logger per process, so this is
// process-wide: call it once at start, before Open. The lines name
// addresses, never credentials.
func SetClientLogger(log *zap.Logger) {
	redis.SetLogger(clientLogger{log.Sugar().With(zap.String("component", "go-redis"))})
}

type clientLogger struct{ log *zap.SugaredLogger }

func (l clientLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warnf(format, v...)
}

// embeddedTick is how often the embedded Redis's clock moves: the
// precision of its leases and TTLs.
const embeddedTick = 100 * time.Millisecond

// advanceClock moves mini's clock forward with the wall clock, every tick,
// until stop is called.
func advanceClock(mini *miniredis.Miniredis, tick time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mini.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

// pipelined sends fn's commands in one round trip. Its error is the first
// command's error other than redis.Nil (a key that is not there): go-redis's
// own is the first failed command's, and a missing key early in the
// pipeline would hide a node that did not answer behind it.
func pipelined(ctx context.Context, c redis.Cmdable, fn func(redis.Pipeliner) error) error {
	cmds, err := c.Pipelined(ctx, fn)
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	if len(cmds) == 0 && err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	return nil
}
