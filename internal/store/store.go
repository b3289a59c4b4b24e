// Package store is the Redis side of the service: delivery records (dedupe,
// leases and the redelivery rules), the account records, and per-subscription
// locks. It is the only package that imports go-redis. The key layout lives
// in keys.go.
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

// Errors, matched with errors.Is: the domain's (internal/events), so that
// callers name them without importing this package.
var (
	ErrUnavailable = events.ErrUnavailable
	ErrNotFound    = events.ErrNotFound
	ErrLeaseLost   = events.ErrLeaseLost
	ErrBusy        = events.ErrBusy
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
)

// Options configure Open. They come from the environment (see the comment
// on each field); the flags of `webhook serve` override them.
type Options struct {
	// URL is REDIS_URL: redis:// or rediss://, optionally with several
	// comma-separated hosts (see parseURL). Empty starts an embedded
	// miniredis, which keeps nothing across a restart.
	URL string
	// MasterName is REDIS_SENTINEL_MASTER: when set, the URL's host(s) are
	// Sentinels and the client follows the master they name.
	MasterName string
	// Cluster is REDIS_CLUSTER=true: the URL's host(s) are cluster seed
	// nodes. Several hosts without MasterName also mean Cluster (that is
	// how go-redis's UniversalClient reads a list of addresses).
	Cluster bool
	// Prefix namespaces every key; DefaultPrefix when empty. Tests use a
	// unique prefix each so that they never collide.
	Prefix string
	// Logger receives the embedded-mode warning and unlock failures; a nop
	// logger when nil.
	Logger *zap.Logger
	// WaitReplicas is REDIS_WAIT_REPLICAS: after each account write, wait
	// (Redis WAIT) until that many replicas have it, for up to WaitTimeout,
	// before the write counts as done. Set to the number of replicas (all
	// of them), it keeps an acknowledged account through a Sentinel
	// failover; fewer does not, because a replica still attached to the
	// old master acknowledges writes that the failover then drops (see
	// TestSentinelFailoverKeepsAcknowledgedAccounts). 0 (the default) does
	// not wait.
	WaitReplicas int
	// WaitTimeout is REDIS_WAIT_TIMEOUT, the longest WAIT; 500ms when zero.
	WaitTimeout time.Duration
	// OnError, when set, is told of every Redis command that failed
	// (connection, timeout, server error; not "no such key"), by command
	// name: for metrics.
	OnError func(command string)
}

// errorHook tells onError of failed commands.
type errorHook struct{ onError func(string) }

func (h errorHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h errorHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
			h.onError(cmd.Name())
		}
		return err
	}
}

func (h errorHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil && !errors.Is(err, redis.Nil) {
			h.onError("pipeline")
		}
		return err
	}
}

// isNoScript is the EVALSHA miss that go-redis answers with EVAL: not a
// failure.
func isNoScript(err error) bool {
	return strings.HasPrefix(err.Error(), "NOSCRIPT")
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
// starts an embedded miniredis on 127.0.0.1:0 and logs a warning that
// nothing survives a restart. A bad URL is an error that names REDIS_URL
// and the fix.
func Open(ctx context.Context, o Options) (*Redis, error) {
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
	if o.WaitReplicas < 0 {
		return nil, fmt.Errorf("REDIS_WAIT_REPLICAS is %d: use 0 (do not wait) or the number of replicas to wait for", o.WaitReplicas)
	}

	var uo *redis.UniversalOptions
	if o.URL == "" {
		if o.MasterName != "" || o.Cluster {
			return nil, errors.New("REDIS_URL is empty but REDIS_SENTINEL_MASTER or REDIS_CLUSTER is set: set REDIS_URL to the Sentinel or cluster node addresses, or unset them for the embedded Redis")
		}
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
		log.Warn("REDIS_URL is not set: using an embedded in-process Redis; delivery records and accounts do not survive a restart",
			zap.String("addr", mini.Addr()))
	} else {
		var err error
		uo, err = parseURL(o.URL)
		if err != nil {
			return nil, err
		}
		uo.MasterName = o.MasterName
		uo.IsClusterMode = o.Cluster
		if o.Cluster && o.MasterName != "" {
			return nil, errors.New("REDIS_CLUSTER=true and REDIS_SENTINEL_MASTER are both set: set only one of them")
		}
		if (o.Cluster || (len(uo.Addrs) > 1 && o.MasterName == "")) && uo.DB != 0 {
			return nil, fmt.Errorf("REDIS_URL selects database %d, but Redis Cluster has only database 0: drop the /%d path", uo.DB, uo.DB)
		}
	}
	uo.DialTimeout = dialTimeout
	uo.ReadTimeout = readTimeout
	uo.WriteTimeout = writeTimeout
	uo.PoolTimeout = poolTimeout
	uo.MaxRetries = maxRetries
	uo.DialerRetries = dialerRetries
	uo.DialerRetryTimeout = dialerRetryWait
	uo.ContextTimeoutEnabled = true
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

	if err := r.Ping(ctx); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("connecting to redis at REDIS_URL (check the address and that Redis is up): %w", err)
	}
	return r, nil
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

// unavailable wraps a go-redis error in ErrUnavailable, keeping the cause
// for errors.Is (context.DeadlineExceeded, net errors) and for the log.
func unavailable(op string, err error) error {
	return fmt.Errorf("redis %s: %w: %w", op, ErrUnavailable, err)
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
