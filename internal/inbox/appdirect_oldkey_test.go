package inbox_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/store"
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
	enqueueTokenOnlyJob(t, db, n, time.Now().UTC()) // queued by the previous release
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

// enqueueTokenOnlyJob queues n's job as a version before jobs had an id
// did: pending, due at now, under its token alone.
func enqueueTokenOnlyJob(t *testing.T, db *store.Redis, n inbox.Notification, now time.Time) {
	t.Helper()
	if _, err := db.EnqueueResult(context.Background(), inbox.ResultJob{Token: n.Token, EventURL: n.EventURL,
		Marketplace: n.Marketplace, Product: n.Product, State: inbox.JobPending, Created: now, Updated: now, Due: now}); err != nil {
		t.Fatal(err)
	}
}

// A job queued before jobs were keyed by marketplace (its token alone,
// no id) is still worked from the queue: processed under its old
// delivery key, posted once, and marked posted where it is.
func TestAnswerLaterOfAJobKeyedByToken(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	m := &marketplace{events: map[string]string{}, posts: map[string][]string{}}
	in := newInbox(db, &processor{}).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db})
	n := notification("tok-old")
	m.events[n.EventURL] = orderEvent
	now := time.Now().UTC()
	enqueueTokenOnlyJob(t, db, n, now)
	due, err := db.TakeDueResults(context.Background(), now, 10, time.Minute)
	if err != nil || !slices.Equal(due, []string{n.Token}) {
		t.Fatalf("due %v, %v; want [%s]", due, err, n.Token)
	}
	if err := in.AnswerLater(context.Background(), due[0], time.Hour); err != nil {
		t.Fatal(err)
	}
	j, err := db.Result(context.Background(), n.Token)
	if err != nil || j.State != inbox.JobPosted || len(m.posts[n.Token]) != 1 {
		t.Fatalf("job %+v, %v, %d posts; want posted once", j, err, len(m.posts[n.Token]))
	}
	if pending, err := db.ResultsPending(context.Background(), 10); err != nil || len(pending) != 0 {
		t.Errorf("still queued: %+v, %v", pending, err)
	}
	// Processed under the delivery key it had when it was queued.
	if _, err := db.DeliveryByKey(context.Background(), "appdirect:"+n.Token); err != nil {
		t.Errorf("the delivery under its old key: %v", err)
	}
}

// An event token's keys: one per marketplace, and the token's alone (a
// delivery recorded before keys named the marketplace). A "token" holding
// "@" has none: "x@acme.appdirect.com" alone is token x's key under that
// marketplace, and a search by it would find x's delivery.
func TestAppDirectKeys(t *testing.T) {
	t.Parallel()
	markets := []string{"https://acme.appdirect.com", "http://b.example:8080"}
	if got, want := inbox.AppDirectKeys(markets, "tok"), []string{"appdirect:tok@acme.appdirect.com", "appdirect:tok@http://b.example:8080", "appdirect:tok"}; !slices.Equal(got, want) {
		t.Errorf("AppDirectKeys = %q, want %q", got, want)
	}
	if got := inbox.AppDirectKeys(markets, "x@acme.appdirect.com"); got != nil {
		t.Errorf("keys of a token holding @: %q, want none", got)
	}
}
