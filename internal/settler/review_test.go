package settler_test

// Review of issue 20: the settle queue's entries against the accounts
// they stand for.

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/settler"
	"github.com/banking-marketplace/webhook/internal/store"
)

const (
	dueKey   = store.DefaultPrefix + "{settle}:due"
	sinceKey = store.DefaultPrefix + "{settle}:since"
)

// On Cluster, SaveAccount writes the queue in one pipeline before the
// account and takes a settled account off it in one after: a crash (or a
// failed last pipeline, or a stalled holder whose fenced write is
// refused after its first pipeline ran) leaves an entry whose account
// says settled. The docs call that harmless ("an entry the settler finds
// settled"), but a pass on a settled account writes nothing (schedule
// finds nothing changed, Confirm is a no-op without WAIT), so the entry
// stays for ever: TakeDue pushes it a lease ahead on every tick, and the
// unsettled list (the read API's ?state=unsettled, the unsettled gauge and
// the age of the oldest, which alert) keeps it.
func TestSettledAccountLeftOnTheQueueIsDropped(t *testing.T) {
	t.Parallel()
	mini := miniredis.RunT(t)
	target := &slow{busy: map[string]int{}, created: map[string]int{}}
	db, svc, worker := replica(t, mini.Addr(), target)
	if out := svc.Process(context.Background(), order("q1"), "p"); out.Kind != events.Final {
		t.Fatalf("ORDER = %+v", out)
	}
	if q, _ := db.Queued(context.Background(), 10); len(q) != 0 {
		t.Fatalf("setup: a settled account is queued: %v", q)
	}
	// What the Cluster save leaves when its last pipeline does not run.
	past := float64(time.Now().Add(-time.Minute).UnixMilli())
	if _, err := mini.ZAdd(dueKey, past, "q1"); err != nil {
		t.Fatal(err)
	}
	if _, err := mini.ZAdd(sinceKey, past, "q1"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := worker.Once(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
	}
	q, _ := db.Queued(context.Background(), 10)
	n, _, _ := db.SettleStats(context.Background())
	if len(q) != 0 || n != 0 {
		t.Fatalf("after two passes on a settled account: queued %v, %d unsettled", q, n)
	}
}

// interleave is the service's Settle, and then, before the worker acts on
// a report of a missing account, an ORDER of that subscription processed
// on another replica (the subscription's lock is free again by then).
type interleave struct {
	svc *provisioning.Service
}

func (i interleave) Settle(ctx context.Context, sub string) (provisioning.Report, error) {
	rep, err := i.svc.Settle(ctx, sub)
	if err == nil && rep.Missing {
		i.svc.Process(ctx, order(sub), "p")
	}
	return rep, err
}

// A queue entry whose account is missing is dropped (Unqueue) after the
// settle pass released the subscription's lock, without looking again: an
// event that saved the account meanwhile, unsettled (its reply a 503, or
// a 200 refusal whose undo is left to the settler), loses its entry, and
// no settler ever comes back to it.
func TestDroppingAStaleEntryKeepsAnAccountSavedMeanwhile(t *testing.T) {
	t.Parallel()
	mini := miniredis.RunT(t)
	target := &slow{down: true, busy: map[string]int{}, created: map[string]int{}}
	db, svc, _ := replica(t, mini.Addr(), target)
	// An entry with no account: a Cluster save that crashed between its
	// first pipeline and the account, for a subscription seen first.
	if _, err := mini.ZAdd(dueKey, float64(time.Now().Add(-time.Minute).UnixMilli()), "q2"); err != nil {
		t.Fatal(err)
	}
	worker := settler.New(db, interleave{svc: svc}, settler.Config{Pass: 2 * time.Second}, zap.NewNop(), nil)
	if _, err := worker.Once(context.Background(), "q2"); err != nil {
		t.Fatal(err)
	}
	acct, err := db.Account(context.Background(), "q2")
	if err != nil {
		t.Fatalf("setup: the ORDER did not record the account: %v", err)
	}
	if acct.Settled() {
		t.Fatal("setup: the ORDER settled; it should be waiting for the settler")
	}
	if q, _ := db.Queued(context.Background(), 10); !slices.Contains(q, "q2") {
		t.Fatalf("an unsettled account (%s, settle %+v) is off the settle queue: %v", acct.Status, acct.Settle, q)
	}
}
