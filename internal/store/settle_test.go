package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// Rule: an account's place on the settle queue is written with the
// account, in one step: unsettled, it is queued (due) and listed (since);
// settled, it is off both.
func TestSettleQueue(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		now := time.Now().Truncate(time.Millisecond)
		older, newer := testAccount("sub-q1", "1"), testAccount("sub-q2", "2")
		older.Settle = events.Settle{Since: now.Add(-time.Hour), Due: now.Add(-time.Second), Waiting: "helix: TRANSPORT_ERROR"}
		newer.Settle = events.Settle{Since: now.Add(-time.Minute), Due: now.Add(time.Hour)}
		for _, a := range []events.Account{older, newer} {
			if err := saveLocked(ctx, b.r, a); err != nil {
				t.Fatal(err)
			}
		}
		if n, oldest, err := b.r.SettleStats(ctx); err != nil || n != 2 || !oldest.Equal(older.Settle.Since) {
			t.Errorf("SettleStats = %d, %v, %v; want 2 since %v", n, oldest, err, older.Settle.Since)
		}
		if list, err := b.r.Unsettled(ctx, 10); err != nil || len(list) != 2 || list[0].SubscriptionID != "sub-q1" || list[0].Settle.Waiting == "" {
			t.Errorf("Unsettled = %+v, %v; want sub-q1 then sub-q2", list, err)
		}
		// Only what is due is taken, and a taken entry is left alone for
		// the lease.
		if got, err := b.r.TakeDue(ctx, now, 10, time.Minute); err != nil || len(got) != 1 || got[0] != "sub-q1" {
			t.Fatalf("TakeDue = %v, %v; want [sub-q1]", got, err)
		}
		if got, err := b.r.TakeDue(ctx, now, 10, time.Minute); err != nil || len(got) != 0 {
			t.Errorf("TakeDue again within the lease = %v, %v; want none", got, err)
		}
		if got, err := b.r.TakeDue(ctx, now.Add(2*time.Minute), 10, time.Minute); err != nil || len(got) != 1 {
			t.Errorf("TakeDue after the lease = %v, %v; want sub-q1 again", got, err)
		}
		if got, err := b.r.Queued(ctx, 10); err != nil || len(got) != 2 {
			t.Errorf("Queued = %v, %v; want both", got, err)
		}
		// Settled: off the queue and the list.
		older.Settle = events.Settle{}
		if err := saveLocked(ctx, b.r, older); err != nil {
			t.Fatal(err)
		}
		if n, _, err := b.r.SettleStats(ctx); err != nil || n != 1 {
			t.Errorf("after settling one: %d unsettled, %v", n, err)
		}
		if err := b.r.Unqueue(ctx, "sub-q2"); err != nil {
			t.Fatal(err)
		}
		if got, err := b.r.Queued(ctx, 10); err != nil || len(got) != 0 {
			t.Errorf("Queued after Unqueue = %v, %v", got, err)
		}
	})
}

// Rule: replicas that take due entries at the same moment never take one
// entry twice within its lease.
func TestTakeDueConcurrently(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		now := time.Now()
		for i := range 40 {
			a := testAccount("sub-c"+string(rune('a'+i%26))+string(rune('a'+i/26)), "")
			a.Settle = events.Settle{Since: now, Due: now}
			if err := saveLocked(ctx, b.r, a); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		taken := map[string]int{}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 5 {
					subs, err := b.r.TakeDue(ctx, now, 3, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, s := range subs {
						taken[s]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for s, n := range taken {
			if n != 1 {
				t.Errorf("%s taken %d times", s, n)
			}
		}
		if len(taken) != 40 {
			t.Errorf("%d of 40 taken", len(taken))
		}
	})
}

// Case 7 of issue 20: with REDIS_WAIT_REPLICAS, an account answered as it
// was read is written again and waited for, so a reply never rests on a
// write a failover can lose. Without replicas to wait for, Confirm fails
// (the reply is then a 503); without REDIS_WAIT_REPLICAS it does nothing.
func TestConfirmWaitsForReplicas(t *testing.T) {
	t.Parallel()
	url := testredis.SharedURL(t)
	ctx := ctxT(t)
	a := testAccount("sub-confirm", "77")
	plain := openTest(t, Options{URL: url})
	if err := saveLocked(ctx, plain, a); err != nil {
		t.Fatal(err)
	}
	token, unlock, err := plain.Lock(ctx, a.SubscriptionID, time.Minute, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := plain.Confirm(ctx, token, a); err != nil {
		t.Errorf("Confirm without REDIS_WAIT_REPLICAS = %v, want nil", err)
	}
	waiting := openTest(t, Options{URL: url, WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	waiting.keys = plain.keys // the same records
	if err := waiting.Confirm(ctx, token, a); !errors.Is(err, ErrNotReplicated) {
		t.Errorf("Confirm with a replica to wait for and none there = %v, want ErrNotReplicated", err)
	}
}

// The unsettled list costs two round trips however long it is: the list,
// then every account in one pipeline (it was one round trip per account).
func TestUnsettledRoundTrips(t *testing.T) {
	t.Parallel()
	b := newMiniBackend(t)
	ctx := ctxT(t)
	now := time.Now().Truncate(time.Millisecond)
	for i := range 20 {
		a := testAccount(fmt.Sprintf("sub-u%02d", i), fmt.Sprint(100+i))
		a.Settle = events.Settle{Since: now.Add(time.Duration(i) * time.Second), Due: now.Add(time.Hour)}
		if err := saveLocked(ctx, b.r, a); err != nil {
			t.Fatal(err)
		}
	}
	rt := countRoundTrips(b.r, "")
	list, err := b.r.Unsettled(ctx, 50)
	if err != nil || len(list) != 20 || list[0].SubscriptionID != "sub-u00" || list[19].SubscriptionID != "sub-u19" {
		t.Fatalf("Unsettled = %d accounts, %v; want the 20, oldest first", len(list), err)
	}
	if n := rt.n.Load(); n != 2 {
		t.Errorf("Unsettled of 20 took %d round trips, want 2", n)
	}
}
