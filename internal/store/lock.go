package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Backoff between lock attempts: short, doubling, jittered, so that waiters
// neither poll Redis every millisecond nor sleep long past the release.
const (
	lockBackoffMin = 10 * time.Millisecond
	lockBackoffMax = 100 * time.Millisecond
	unlockTimeout  = time.Second
)

// unlockScript deletes the lock only if it still holds our token: after
// our lease ran out, the lock may be someone else's.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Lock takes the lock name (SET NX PX lease with a random token), trying
// again with a short jittered backoff for up to wait (0: one try). It
// returns ErrBusy when the lock stayed held for the whole wait,
// ErrUnavailable on Redis errors, and the ctx error if ctx ends first.
//
// The lease bounds how long a crashed holder blocks others; a holder that
// works longer than the lease loses the lock silently, so pick a lease
// above the work's own deadline.
//
// unlock releases the lock only if it is still ours, and may be called more
// than once. It uses a context that is not cancelled (the request's ctx is
// often done by then) with a short timeout; a failure is logged, and the
// lease frees the lock anyway.
func (r *Redis) Lock(ctx context.Context, name string, lease, wait time.Duration) (unlock func(), err error) {
	if name == "" || lease <= 0 {
		return nil, errors.New("store: lock: need a name and a positive lease")
	}
	key := r.keys.lock(name)
	token := newToken()
	deadline := time.Now().Add(wait)
	backoff := lockBackoffMin
	for {
		ok, err := r.client.SetArgs(ctx, key, token, redis.SetArgs{Mode: "NX", TTL: lease}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, unavailable("lock", err)
		}
		if ok == "OK" {
			break
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("lock %q: %w", name, ErrBusy)
		}
		// Full jitter in [backoff/2, backoff), never past the deadline.
		d := min(backoff/2+rand.N(backoff/2), left)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
		backoff = min(backoff*2, lockBackoffMax)
	}

	var once sync.Once
	base := context.WithoutCancel(ctx)
	return func() { once.Do(func() { r.unlock(base, name, key, token) }) }, nil
}

func (r *Redis) unlock(base context.Context, name, key, token string) {
	ctx, cancel := context.WithTimeout(base, unlockTimeout)
	defer cancel()
	if err := unlockScript.Run(ctx, r.client, []string{key}, token).Err(); err != nil {
		r.log.Warn("releasing lock failed; its lease will free it", zap.String("lock", name), zap.Error(err))
	}
}
