package inbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// A notification sent again after the upgrade, for an event
// queued (async) before it under the token-only key, finds that job: it
// is not a second job under token@marketplace, processed and posted
// again.
func TestRedeliveryOfAJobKeyedByTokenIsOneJob(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	m := &marketplace{events: map[string]string{}, posts: map[string][]string{}}
	p := &processor{}
	in := newInbox(db, p).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db,
		Answer: func(context.Context, string) error { return nil }}) // the test runs the passes
	n := notification("tok-old2")
	m.events[n.EventURL] = orderEvent
	now := time.Now().UTC()
	// Queued by the previous release: no id, its token is its key.
	if _, err := db.EnqueueResult(context.Background(), inbox.ResultJob{Token: n.Token, EventURL: n.EventURL,
		Marketplace: n.Marketplace, Product: n.Product, State: inbox.JobPending, Created: now, Updated: now, Due: now}); err != nil {
		t.Fatal(err)
	}
	// AppDirect sends the notification again (after the upgrade).
	n.Async = true
	if r, _, err := in.Notify(context.Background(), n); err != nil || r.Kind != events.Accepted {
		t.Fatalf("%+v, %v", r, err)
	}
	due, err := db.TakeDueResults(context.Background(), time.Now().Add(time.Hour), 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range due {
		if err := in.AnswerLater(context.Background(), id, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if len(due) != 1 || p.calls.Load() != 1 || len(m.posts[n.Token]) != 1 {
		t.Errorf("jobs %v, processed %d times, posted %d times; want one job, processed and posted once", due, p.calls.Load(), len(m.posts[n.Token]))
	}
}
