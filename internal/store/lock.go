package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/backoff"
	"github.com/banking-marketplace/webhook/internal/events"
)

// Backoff between lock attempts: short, doubling, jittered, so that waiters
// neither poll Redis every millisecond nor sleep long past the release.
const (
	lockBackoffMin = 10 * time.Millisecond
	lockBackoffMax = 100 * time.Millisecond
	unlockTimeout  = time.Second
)

// luaTakeLock is taking a lock, the one way every script does it: set to
// token for px ms if it is free; true when it is token's, also when it was
// already: go-redis sends a command again after a lost reply, and a plain
// SET NX would then find its own token and report "busy", holding the key
// for a whole lease.
const luaTakeLock = `
local function take_lock(key, token, px)
  local cur = redis.call('GET', key)
  if not cur then
    redis.call('SET', key, token, 'PX', px)
    return true
  end
  return cur == token
end
`

// lockScript takes a lock (take_lock): 1 when it is ours. KEYS: lock.
// ARGV: token, lease ms.
var lockScript = redis.NewScript(luaTakeLock + `
if take_lock(KEYS[1], ARGV[1], ARGV[2]) then return 1 end
return 0
`)

// unlockScript deletes the lock only if it still holds our token: after
// our lease ran out, the lock may be someone else's.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Lock takes the lock of a subscription, trying again with a short jittered
// backoff for up to wait (0: one try). It returns events.ErrBusy when the lock
// stayed held for the whole wait, events.ErrUnavailable on Redis errors, and the
// ctx error if ctx ends first.
//
// token fences the holder's account writes (SaveAccount): the lock and the
// account share a hash tag, so one script checks the one and writes the
// other. The lease bounds how long a crashed holder blocks others; a holder
// that stalls past it loses the lock, and its later writes are refused with
// events.ErrLeaseLost instead of overwriting the new holder's.
//
// unlock releases the lock only if it is still ours, and may be called more
// than once. It uses a context that is not cancelled (the request's ctx is
// often done by then) with a short timeout; a failure is logged, and the
// lease frees the lock anyway.
func (r *Redis) Lock(ctx context.Context, subscription string, lease, wait time.Duration) (token string, unlock func(), err error) {
	if subscription == "" || lease <= 0 {
		return "", nil, errors.New("store: lock: need a subscription and a positive lease")
	}
	if u := unitOf(ctx, subscription); u != nil {
		// Taken by the delivery's claim: the Complete or Release script
		// drops it, with the last save (unit.go).
		return u.lock, func() {}, nil
	}
	key := r.keys.lock(subscription)
	token = newToken()
	deadline := time.Now().Add(wait)
	pause := lockBackoffMin
	for {
		ok, err := r.acquire(ctx, key, token, lease)
		if err != nil {
			// The script may have run before the reply was lost: free the
			// lock if it is ours, so the subscription is not held for a
			// whole lease by nobody.
			r.unlock(context.WithoutCancel(ctx), subscription, key, token)
			return "", nil, err
		}
		if ok {
			break
		}
		left := time.Until(deadline)
		if left <= 0 {
			return "", nil, fmt.Errorf("lock %q: %w", subscription, events.ErrBusy)
		}
		// Jittered in [pause/2, pause], never past the deadline.
		if err := backoff.Sleep(ctx, min(backoff.Half(pause), left)); err != nil {
			return "", nil, fmt.Errorf("waiting for lock %q: %w", subscription, err)
		}
		pause = min(pause*2, lockBackoffMax)
	}

	var once sync.Once
	base := context.WithoutCancel(ctx)
	return token, func() { once.Do(func() { r.unlock(base, subscription, key, token) }) }, nil
}

// acquire runs one attempt at the lock; it is idempotent for one token.
func (r *Redis) acquire(ctx context.Context, key, token string, lease time.Duration) (bool, error) {
	n, err := lockScript.Run(ctx, r.client, []string{key}, token, millis(lease)).Int()
	if err != nil {
		return false, unavailable("lock", err)
	}
	return n == 1, nil
}

func (r *Redis) unlock(base context.Context, subscription, key, token string) {
	ctx, cancel := context.WithTimeout(base, unlockTimeout)
	defer cancel()
	if err := unlockScript.Run(ctx, r.client, []string{key}, token).Err(); err != nil {
		r.log.Warn("releasing lock failed; its lease will free it", zap.String("subscription", subscription), zap.Error(err))
	}
}
