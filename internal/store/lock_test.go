package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

func mustLock(t *testing.T, b *backend, name string, lease, wait time.Duration) func() {
	t.Helper()
	_, unlock, err := b.r.Lock(ctxT(t), name, lease, wait)
	if err != nil {
		t.Fatalf("Lock(%q): %v", name, err)
	}
	return unlock
}

func TestLock(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		t.Run("exclusive", func(t *testing.T) {
			unlock := mustLock(t, b, "sub-excl", time.Minute, 0)
			if _, _, err := b.r.Lock(ctxT(t), "sub-excl", time.Minute, 0); !errors.Is(err, events.ErrBusy) {
				t.Errorf("second Lock: %v, want ErrBusy", err)
			}
			mustLock(t, b, "sub-other", time.Minute, 0)() // other names are independent
			unlock()
			unlock() // idempotent
			mustLock(t, b, "sub-excl", time.Minute, 0)()
		})

		t.Run("lease TTL", func(t *testing.T) {
			unlock := mustLock(t, b, "sub-ttl", 5*time.Second, 0)
			defer unlock()
			if d := b.pttl(t, b.r.keys.lock("sub-ttl")); d <= 0 || d > 5*time.Second {
				t.Errorf("lock PTTL %v, want in (0, 5s]", d)
			}
		})

		t.Run("waits, then busy", func(t *testing.T) {
			defer mustLock(t, b, "sub-wait", time.Minute, 0)()
			const wait = 80 * time.Millisecond
			tries := countRoundTrips(b.r, b.r.keys.lock("sub-wait"))
			start := time.Now()
			_, _, err := b.r.Lock(ctxT(t), "sub-wait", time.Minute, wait)
			elapsed := time.Since(start)
			if !errors.Is(err, events.ErrBusy) {
				t.Fatalf("Lock: %v, want ErrBusy", err)
			}
			if elapsed < wait || elapsed > wait+time.Second {
				t.Errorf("gave up after %v, want just over %v", elapsed, wait)
			}
			// Backoff, not busy polling: 10ms doubling to 100ms (jittered
			// down to half) is a handful of tries in 80ms, not 80.
			if n := tries.n.Load(); n < 2 || n > 10 {
				t.Errorf("%d tries in %v, want a few", n, wait)
			}
		})

		t.Run("waits, then gets it", func(t *testing.T) {
			unlock := mustLock(t, b, "sub-handover", time.Minute, 0)
			go func() {
				time.Sleep(30 * time.Millisecond)
				unlock()
			}()
			mustLock(t, b, "sub-handover", time.Minute, 5*time.Second)()
		})

		t.Run("ctx ends the wait", func(t *testing.T) {
			defer mustLock(t, b, "sub-ctx", time.Minute, 0)()
			ctx, cancel := context.WithTimeout(ctxT(t), 30*time.Millisecond)
			defer cancel()
			_, _, err := b.r.Lock(ctx, "sub-ctx", time.Minute, time.Minute)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Lock: %v, want the ctx error", err)
			}
		})

		t.Run("lease expiry frees it; unlock only own", func(t *testing.T) {
			const lease = 100 * time.Millisecond
			stale := mustLock(t, b, "sub-lease", lease, 0)
			b.advance(lease)
			fresh := mustLock(t, b, "sub-lease", time.Minute, 0)
			stale() // must not delete the new holder's lock
			if _, _, err := b.r.Lock(ctxT(t), "sub-lease", time.Minute, 0); !errors.Is(err, events.ErrBusy) {
				t.Errorf("after the stale unlock: %v, want ErrBusy (still held by the new holder)", err)
			}
			fresh()
			mustLock(t, b, "sub-lease", time.Minute, 0)()
		})

		t.Run("unlock after the request ctx is done", func(t *testing.T) {
			ctx, cancel := context.WithCancel(ctxT(t))
			_, unlock, err := b.r.Lock(ctx, "sub-cancel", time.Minute, 0)
			if err != nil {
				t.Fatal(err)
			}
			cancel()
			unlock()
			mustLock(t, b, "sub-cancel", time.Minute, 0)()
		})
	})
}

// Rule: taking the lock is idempotent for its holder. go-redis sends a
// command again after a lost reply; a plain SET NX then found its own token
// and answered "busy", holding the subscription for a whole lease.
func TestLockAcquireIsIdempotent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		key := b.r.keys.lock("sub-retried")
		for i := range 2 { // the first send, then go-redis's retry of it
			if ok, err := b.r.acquire(ctxT(t), key, "token-1", time.Minute); err != nil || !ok {
				t.Fatalf("attempt %d by the holder: %v, %v; want taken", i+1, ok, err)
			}
		}
		if ok, err := b.r.acquire(ctxT(t), key, "token-2", time.Minute); err != nil || ok {
			t.Fatalf("another holder: %v, %v; want busy", ok, err)
		}
	})
}

// saveLocked saves a under its subscription's lock, as the service does.
func saveLocked(ctx context.Context, r *Redis, a events.Account) error {
	token, unlock, err := r.Lock(ctx, a.SubscriptionID, time.Minute, time.Second)
	if err != nil {
		return err
	}
	defer unlock()
	return r.SaveAccount(ctx, token, a)
}

// Rule: account writes are fenced by the lock. A holder that stalled past
// its lease (GC pause, failover) cannot overwrite what the next holder
// wrote: a CHANGE cannot bring back "active" after a CANCEL.
func TestStalledLockHolderCannotWrite(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		if k, a := b.r.keys.lock("sub-s"), b.r.keys.account("sub-s"); k[strings.Index(k, "{"):] != a[strings.Index(a, "{"):] {
			t.Fatalf("lock %q and account %q must share a hash tag", k, a)
		}
		const lease = 100 * time.Millisecond
		stalled, _, err := b.r.Lock(ctx, "sub-s", lease, 0)
		if err != nil {
			t.Fatal(err)
		}
		b.advance(lease) // the stalled holder's lease runs out
		cancelled := testAccount("sub-s", "42")
		cancelled.Status = events.AccountCancelled
		if err := saveLocked(ctx, b.r, cancelled); err != nil {
			t.Fatal(err)
		}
		active := testAccount("sub-s", "42")
		if err := b.r.SaveAccount(ctx, stalled, active); !errors.Is(err, events.ErrLeaseLost) {
			t.Fatalf("the stalled holder's write: %v, want ErrLeaseLost", err)
		}
		if got, err := b.r.Account(ctx, "sub-s"); err != nil || got.Status != events.AccountCancelled {
			t.Fatalf("account after the stalled write: %+v %v; want it still cancelled", got, err)
		}
		if err := b.r.SaveAccount(ctx, "", active); err == nil {
			t.Error("SaveAccount without a token: want an error")
		}
	})
}
