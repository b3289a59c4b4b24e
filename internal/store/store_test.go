package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/banking-marketplace/webhook/internal/testredis"
)

// backend is one Redis the suite runs against, with a store whose prefix
// is unique to the test.
type backend struct {
	r  *Redis
	mr *miniredis.Miniredis // nil on real Redis
}

// backends are the Redis deployments every store test runs on: miniredis,
// one real redis-server, and a real three-master Redis Cluster (where a
// script that touches keys of two slots fails with CROSSSLOT, which
// miniredis's one-node cluster never does). The real ones skip where
// redis-server is missing, and fail then under CI=true (testredis).
var backends = []struct {
	name string
	open func(t testing.TB) *backend
}{
	{"miniredis", newMiniBackend},
	{"redis", newRealBackend},
	{"cluster", newClusterBackend},
}

// forEachBackend runs fn on each of backends. Each run has its own key
// prefix, so tests and packages running in parallel never collide, and
// nothing is flushed.
func forEachBackend(t *testing.T, fn func(t *testing.T, b *backend)) {
	t.Helper()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			fn(t, be.open(t))
		})
	}
}

func newMiniBackend(t testing.TB) *backend {
	t.Helper()
	mr := miniredis.RunT(t)
	return &backend{r: openTest(t, Options{URL: "redis://" + mr.Addr() + "/0"}), mr: mr}
}

// newRealBackend opens a store on the real Redis that the package's tests
// share: REDIS_URL when it is set (with REDIS_CLUSTER and
// REDIS_SENTINEL_MASTER honoured as in the service), else a redis-server
// that testredis starts for this test binary. It skips t when there is
// neither.
func newRealBackend(t testing.TB) *backend {
	t.Helper()
	o := Options{URL: testredis.SharedURL(t)}
	if os.Getenv("REDIS_URL") != "" {
		o.MasterName = os.Getenv("REDIS_SENTINEL_MASTER")
		o.Cluster = os.Getenv("REDIS_CLUSTER") == "true"
	}
	r := openTest(t, o)
	t.Cleanup(func() { deletePrefix(t, r) })
	return &backend{r: r}
}

// newClusterBackend opens a store on the three-master Redis Cluster that
// the package's tests share (testredis.SharedClusterURL).
func newClusterBackend(t testing.TB) *backend {
	t.Helper()
	r := openTest(t, Options{URL: testredis.SharedClusterURL(t), Cluster: true})
	t.Cleanup(func() { deletePrefix(t, r) })
	return &backend{r: r}
}

// openTest opens a store with a random prefix and closes it at the end.
func openTest(t testing.TB, o Options) *Redis {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	o.Prefix = "test:" + hex.EncodeToString(b[:]) + ":"
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := Open(ctx, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// deletePrefix removes the test's own keys from a shared real Redis.
func deletePrefix(t testing.TB, r *Redis) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	del := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, r.keys.prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			if err := r.client.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	var err error
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return del(ctx, c) })
	} else {
		err = del(ctx, r.client)
	}
	if err != nil {
		t.Logf("cleaning up test keys: %v", err)
	}
}

// advance lets d pass for the keys' TTLs: FastForward on miniredis, a real
// wait (with a margin) on real Redis, where tests keep leases short.
func (b *backend) advance(d time.Duration) {
	if b.mr != nil {
		b.mr.FastForward(d)
		return
	}
	time.Sleep(d + 20*time.Millisecond)
}

// What pttl returns for a key without TTL and for a missing key: go-redis
// passes Redis's -1 and -2 through unscaled.
const (
	noTTL time.Duration = -1
	noKey time.Duration = -2
)

// pttl is the key's remaining time.
func (b *backend) pttl(t *testing.T, key string) time.Duration {
	t.Helper()
	d, err := b.r.client.PTTL(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestKeysShareHashTag(t *testing.T) {
	t.Parallel()
	k := keys{prefix: DefaultPrefix}
	rec, lease := k.delivery("id:msg_2Kx\x00{weird}")
	tag := func(s string) string {
		i := strings.Index(s, "{")
		j := strings.Index(s[i:], "}")
		return s[i : i+j+1]
	}
	if !strings.HasPrefix(rec, "webhook:delivery:{") || tag(rec) != tag(lease) || len(tag(rec)) != 66 {
		t.Errorf("record %q and lease %q must share a 64-hex hash tag", rec, lease)
	}
	if got := k.account("sub-1"); got != "webhook:account:{sub-1}" {
		t.Errorf("account key = %q", got)
	}
	if got := k.accountIndex("42"); got != "webhook:account-id:42" {
		t.Errorf("account index key = %q", got)
	}
	if got := k.lock("sub-1"); got != "webhook:lock:{sub-1}" {
		t.Errorf("lock key = %q", got)
	}
}

// roundTrips is a go-redis hook that counts commands sent (a pipeline
// counts once; a new connection's handshake not at all), optionally only
// those naming one key.
type roundTrips struct {
	key string // empty: count all
	n   atomic.Int64
}

func countRoundTrips(r *Redis, key string) *roundTrips {
	h := &roundTrips{key: key}
	r.client.AddHook(h)
	return h
}

func (h *roundTrips) matches(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client": // a new pooled connection's handshake, not the call's
		return false
	}
	if h.key == "" {
		return true
	}
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && s == h.key {
			return true
		}
	}
	return false
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.matches(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && h.matches(cmds[0]) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}
