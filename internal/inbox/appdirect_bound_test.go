package inbox_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// heldPosts is a marketplace whose posts wait for release, counting the
// posts under way and the most at once.
type heldPosts struct {
	*marketplace
	entered chan string   // each post's token, as it begins
	release chan struct{} // closed: every post goes on
	mu      sync.Mutex
	now     int
	peak    int
}

func (h *heldPosts) PostResult(ctx context.Context, mk, token string, result []byte) error {
	h.mu.Lock()
	h.now++
	h.peak = max(h.peak, h.now)
	h.mu.Unlock()
	h.entered <- token
	<-h.release
	h.mu.Lock()
	h.now--
	h.mu.Unlock()
	return h.marketplace.PostResult(ctx, mk, token, result)
}

// The passes begun at once after a 202 are bounded (MAX_IN_FLIGHT, as
// the deliveries): past the bound a job is not worked in the background
// but left to the settler, due at once; the queue is the record, so every
// job is still answered, once.
func TestAnswerSoonIsBounded(t *testing.T) {
	t.Parallel()
	const bound, notifications = 2, 5
	db, _ := newStore(t)
	m := &heldPosts{marketplace: &marketplace{events: map[string]string{}, posts: map[string][]string{}},
		entered: make(chan string, notifications), release: make(chan struct{})}
	in := newInbox(db, &processor{}).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db, MaxAtOnce: bound})
	var ns []inbox.Notification
	for i := range notifications { // every event in place before a pass may fetch one
		n := notification(fmt.Sprintf("tok-flood-%d", i))
		n.Async = true
		m.events[n.EventURL] = orderEvent
		ns = append(ns, n)
	}
	var ids []string
	for i, n := range ns {
		if r, _, err := in.Notify(context.Background(), n); err != nil || r.Kind != events.Accepted {
			t.Fatalf("notification %d: %+v, %v", i, r, err)
		}
		ids = append(ids, inbox.JobID(n.Marketplace, n.Token))
	}
	var soon []string
	for range bound { // the passes begun at once, each held in its post
		soon = append(soon, inbox.JobID("https://market.example", <-m.entered))
	}
	// The others are the settler's, due now; the two under way are not.
	due, err := db.TakeDueResults(context.Background(), time.Now(), 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != notifications-bound || slices.ContainsFunc(due, func(id string) bool { return slices.Contains(soon, id) }) {
		t.Fatalf("due for the settler: %v (under way: %v); want the %d others", due, soon, notifications-bound)
	}
	close(m.release)
	in.Wait()
	for _, id := range due { // the settler's passes
		if err := in.AnswerLater(context.Background(), id, time.Hour); err != nil {
			t.Fatalf("AnswerLater(%s): %v", id, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.peak > bound {
		t.Errorf("%d posts at once, want at most %d", m.peak, bound)
	}
	for _, id := range ids {
		tok, _, _ := strings.Cut(id, "@")
		if got := len(m.posts[tok]); got != 1 {
			t.Errorf("%s: posted %d times, want 1", tok, got)
		}
	}
}

// Two marketplaces may give the same event token: each event is a
// delivery of its own, processed as its own subscription, and, answered
// later, a job of its own posted to its own marketplace. Keyed by the
// token alone, the second marketplace's event was taken for the first's
// (its delivery refused as the first's with another body; its job found
// queued already, so never processed nor answered).
func TestSameTokenOfTwoMarketplaces(t *testing.T) {
	t.Parallel()
	const token = "tok-same"
	at := func(market string) inbox.Notification {
		return inbox.Notification{EventURL: market + "/api/integration/v1/events/" + token, Token: token, Marketplace: market, Product: "p"}
	}
	a, b := at("https://a.example"), at("http://b.example:8080")
	event := func(market string) string { return strings.Replace(orderEvent, "https://market.example", market, 1) }
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			t.Parallel()
			db, _ := newStore(t)
			p := &subscriptions{}
			m := &marketplace{events: map[string]string{a.EventURL: event(a.Marketplace), b.EventURL: event(b.Marketplace)}, posts: map[string][]string{}}
			in := newInbox(db, p).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db,
				Answer: func(context.Context, string) error { return nil }}) // the test runs the passes
			var keys []string
			for _, n := range []inbox.Notification{a, b} {
				n.Async = async
				r, info, err := in.Notify(context.Background(), n)
				if err != nil || !strings.Contains(string(r.Body), `"success":true`) {
					t.Fatalf("%s: %+v %s, %v", n.Marketplace, r, r.Body, err)
				}
				keys = append(keys, info.Key)
				if async {
					if err := in.AnswerLater(context.Background(), inbox.JobID(n.Marketplace, n.Token), time.Hour); err != nil {
						t.Fatalf("%s: AnswerLater: %v", n.Marketplace, err)
					}
				}
			}
			if keys[0] == keys[1] || keys[0] != inbox.AppDirectKey(a.Marketplace, token) {
				t.Errorf("delivery keys %q, want one per marketplace", keys)
			}
			if len(p.got) != 2 || p.got[0] == p.got[1] {
				t.Fatalf("processed as %v, want two subscriptions", p.got)
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, n := range []inbox.Notification{a, b} {
				if got, want := len(m.postsTo[n.Marketplace+" "+token]), map[bool]int{false: 0, true: 1}[async]; got != want {
					t.Errorf("%s: %d results posted, want %d", n.Marketplace, got, want)
				}
			}
		})
	}
}
