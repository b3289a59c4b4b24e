package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func mustLock(t *testing.T, b *backend, name string, lease, wait time.Duration) func() {
	t.Helper()
	unlock, err := b.r.Lock(ctxT(t), name, lease, wait)
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
			if _, err := b.r.Lock(ctxT(t), "sub-excl", time.Minute, 0); !errors.Is(err, ErrBusy) {
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
			_, err := b.r.Lock(ctxT(t), "sub-wait", time.Minute, wait)
			elapsed := time.Since(start)
			if !errors.Is(err, ErrBusy) {
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
			_, err := b.r.Lock(ctx, "sub-ctx", time.Minute, time.Minute)
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
			if _, err := b.r.Lock(ctxT(t), "sub-lease", time.Minute, 0); !errors.Is(err, ErrBusy) {
				t.Errorf("after the stale unlock: %v, want ErrBusy (still held by the new holder)", err)
			}
			fresh()
			mustLock(t, b, "sub-lease", time.Minute, 0)()
		})

		t.Run("unlock after the request ctx is done", func(t *testing.T) {
			ctx, cancel := context.WithCancel(ctxT(t))
			unlock, err := b.r.Lock(ctx, "sub-cancel", time.Minute, 0)
			if err != nil {
				t.Fatal(err)
			}
			cancel()
			unlock()
			mustLock(t, b, "sub-cancel", time.Minute, 0)()
		})
	})
}
