package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// marketplace is AppDirect in memory: its events by URL, the results
// posted (by token, and by the marketplace they were posted to and
// token), and failures on demand.
type marketplace struct {
	mu        sync.Mutex
	events    map[string]string
	fetches   int
	posts     map[string][]string
	postsTo   map[string][]string // marketplace + " " + token → results
	failFetch []error
	failPost  []error
}

func (m *marketplace) FetchEvent(_ context.Context, url string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches++
	if len(m.failFetch) > 0 {
		err := m.failFetch[0]
		m.failFetch = m.failFetch[1:]
		return nil, err
	}
	ev, ok := m.events[url]
	if !ok {
		return nil, status(404)
	}
	return []byte(ev), nil
}

func (m *marketplace) PostResult(_ context.Context, mk, token string, result []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.failPost) > 0 {
		err := m.failPost[0]
		m.failPost = m.failPost[1:]
		return err
	}
	m.posts[token] = append(m.posts[token], string(result))
	if m.postsTo == nil {
		m.postsTo = map[string][]string{}
	}
	m.postsTo[mk+" "+token] = append(m.postsTo[mk+" "+token], string(result))
	return nil
}

type status int

func (s status) Error() string   { return fmt.Sprintf("HTTP %d", int(s)) }
func (s status) StatusCode() int { return int(s) }

// Is makes a status match the inbox's kinds, as the wiring's adapter of
// the AppDirect client does.
func (s status) Is(target error) bool {
	switch {
	case s == 401 || s == 403:
		return target == inbox.ErrCredentialsRefused
	case s >= 400 && s < 500 && s != 408 && s != 429:
		return target == inbox.ErrEventRefused
	}
	return false
}

const orderEvent = `{"type":"SUBSCRIPTION_ORDER","marketplace":{"baseUrl":"https://market.example","partner":"X"},
"creator":{"firstName":"Ann","lastName":"Lee"},"payload":{"order":{"editionCode":"BASIC","items":[{"unit":"USER","quantity":"3"}]}}}`

func appdirectInbox(t *testing.T, p inbox.Processor) (*inbox.Inbox, *marketplace) {
	t.Helper()
	db, _ := newStore(t)
	m := &marketplace{events: map[string]string{}, posts: map[string][]string{}}
	in := newInbox(db, p).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db})
	return in, m
}

func notification(token string) inbox.Notification {
	return inbox.Notification{EventURL: "https://market.example/api/integration/v1/events/" + token, Token: token,
		Marketplace: "https://market.example", Product: "p"}
}

// A notification is fetched and received as a delivery keyed by its
// token: processed once, redeliveries answered from the stored outcome.
func TestNotifyIsADelivery(t *testing.T) {
	t.Parallel()
	p := &processor{}
	in, m := appdirectInbox(t, p)
	n := notification("tok-1")
	m.events[n.EventURL] = orderEvent
	for i := range 3 {
		r, info, err := in.Notify(context.Background(), n)
		if err != nil || r.Kind != events.Final || !strings.Contains(string(r.Body), `"success":true`) {
			t.Fatalf("notification %d: %+v %s, %v", i, r, r.Body, err)
		}
		if info.Key != "appdirect:tok-1@market.example" || !strings.HasPrefix(info.Subscription, "ad-") {
			t.Errorf("delivery %+v", info)
		}
	}
	if p.calls.Load() != 1 {
		t.Errorf("processed %d times, want 1", p.calls.Load())
	}
}

func TestNotifyFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(m *marketplace, n inbox.Notification)
		kind  events.Kind
		code  string
	}{
		{"marketplace down", func(m *marketplace, n inbox.Notification) {
			m.events[n.EventURL] = orderEvent
			m.failFetch = []error{errors.New("connection refused")}
		}, events.Transient, "TRANSPORT_ERROR"},
		{"no such event", func(*marketplace, inbox.Notification) {}, events.NotStored, "CONFIGURATION_ERROR"},
		{"our credentials refused", func(m *marketplace, n inbox.Notification) {
			m.events[n.EventURL] = orderEvent
			m.failFetch = []error{status(401)}
		}, events.Transient, "TRANSPORT_ERROR"},
		{"a reply that is no event", func(m *marketplace, n inbox.Notification) {
			m.failFetch = []error{fmt.Errorf("%w: XML", inbox.ErrEventUnreadable)}
		}, events.NotStored, "INVALID_RESPONSE"},
		{"not an event", func(m *marketplace, n inbox.Notification) { m.events[n.EventURL] = `{"marketplace":{}}` }, events.NotStored, "INVALID_RESPONSE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &processor{}
			in, m := appdirectInbox(t, p)
			n := notification("tok-f")
			tc.setup(m, n)
			r, _, err := in.Notify(context.Background(), n)
			if err != nil || r.Kind != tc.kind || r.Code != tc.code || p.calls.Load() != 0 {
				t.Fatalf("reply %+v %s, %v; processed %d; want %v %s", r, r.Body, err, p.calls.Load(), tc.kind, tc.code)
			}
		})
	}
}

// Asynchronous results: 202 at once (a redelivered notification too), the
// event processed and its result posted in the background, retried by
// AnswerLater (the settler) until the marketplace accepts it, and never
// posted again once accepted.
func TestAnswerLater(t *testing.T) {
	t.Parallel()
	p := &processor{}
	in, m := appdirectInbox(t, p)
	n := notification("tok-a")
	n.Async = true
	m.events[n.EventURL] = orderEvent
	m.failPost = []error{status(503), errors.New("reset")}
	for range 2 {
		r, _, err := in.Notify(context.Background(), n)
		if err != nil || r.Kind != events.Accepted || string(r.Body) != `{"success":true}` {
			t.Fatalf("async notification: %+v %s, %v", r, r.Body, err)
		}
	}
	in.Wait() // the background pass: processed, its post refused (503)
	m.mu.Lock()
	posts, left := len(m.posts["tok-a"]), len(m.failPost)
	m.mu.Unlock()
	if p.calls.Load() != 1 || posts != 0 || left != 1 {
		t.Fatalf("after the 202s: %d processings, %d posts, %d post failures left; want 1, 0, 1", p.calls.Load(), posts, left)
	}
	for i := range 2 { // "reset", then accepted
		if err := in.AnswerLater(context.Background(), "tok-a@market.example", time.Hour); err != nil {
			t.Fatalf("AnswerLater %d: %v", i, err)
		}
	}
	if len(m.posts["tok-a"]) != 1 || !strings.Contains(m.posts["tok-a"][0], `"success":true`) {
		t.Fatalf("posts %v, want one success", m.posts["tok-a"])
	}
	if err := in.AnswerLater(context.Background(), "tok-a@market.example", time.Hour); err != nil || len(m.posts["tok-a"]) != 1 || p.calls.Load() != 1 {
		t.Errorf("after the post: %v, %d posts, %d processings; want one each", err, len(m.posts["tok-a"]), p.calls.Load())
	}
}

// A queued result whose event cannot be fetched again (the marketplace
// down, the event gone, not JSON) is worked like any other outcome that
// is not final: the job stays pending, tried again later, and the worker
// goes on. It used to read the missing event for its log line and panic,
// killing the replica; the job, still due, then killed every replica's
// settler in turn.
func TestAnswerLaterEventNotFetched(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fetch error
		event string
		state string
	}{
		{"marketplace down", errors.New("connection refused"), orderEvent, inbox.JobPending},
		{"event gone", nil, "", inbox.JobAnswered},
		{"not an event", nil, `{"marketplace":{}}`, inbox.JobAnswered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &processor{}
			db, _ := newStore(t)
			m := &marketplace{events: map[string]string{}, posts: map[string][]string{}}
			in := newInbox(db, p).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db})
			n := notification("tok-gone")
			if tc.event != "" {
				m.events[n.EventURL] = tc.event
			}
			if tc.fetch != nil {
				m.failFetch = []error{tc.fetch}
			}
			enqueueTokenOnlyJob(t, db, n, time.Now().UTC())
			m.failPost = []error{status(503)} // the post is refused once: the job shows its state
			if err := in.AnswerLater(context.Background(), n.Token, time.Hour); err != nil {
				t.Fatalf("AnswerLater: %v", err)
			}
			j, err := db.Result(context.Background(), n.Token)
			if err != nil {
				t.Fatal(err)
			}
			if j.State != tc.state || j.Attempts != 1 || p.calls.Load() != 0 {
				t.Errorf("job %s after %d attempts, %d processings; want %s, 1, 0", j.State, j.Attempts, p.calls.Load(), tc.state)
			}
		})
	}
}

// owners is an account index in memory.
type owners map[string]events.Account

func (o owners) AccountByIdentifier(_ context.Context, id string) (events.Account, error) {
	if a, ok := o[id]; ok {
		return a, nil
	}
	return events.Account{}, events.ErrNotFound
}

// subscriptions is a processor that remembers which subscription each
// event was processed as.
type subscriptions struct {
	mu  sync.Mutex
	got []string
}

func (s *subscriptions) Process(_ context.Context, ev *events.SubscriptionEvent, _ string) events.Outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, ev.SubscriptionID)
	return events.Provisioned(ev.AccountIdentifier())
}

// An AppDirect event finds its subscription by accountIdentifier, but
// only among the subscriptions AppDirect's own ORDERs made: one naming
// the identifier of a subscription that came through the Q2 door (small
// integers, Q2 UserIDs, easily guessed) gets a subscription of its own,
// under which nothing exists, and provisioning's owner check refuses it.
func TestNotifyFindsOnlyAppDirectSubscriptions(t *testing.T) {
	t.Parallel()
	const cancel = `{"type":"SUBSCRIPTION_CANCEL","payload":{"account":{"accountIdentifier":%q}}}`
	accounts := owners{
		"7":  {SubscriptionID: "65d945e7-7911-47f8-b7c1-8def1a776464", AccountIdentifier: "7"}, // the Q2 door's
		"12": {SubscriptionID: "ad-0123456789abcdef0123456789abcdef", AccountIdentifier: "12"},
	}
	for _, tc := range []struct {
		account, want string
	}{
		{"12", "ad-0123456789abcdef0123456789abcdef"},
		{"7", ""}, // not the Q2 door's
		{"99", ""},
	} {
		t.Run(tc.account, func(t *testing.T) {
			t.Parallel()
			db, _ := newStore(t)
			p := &subscriptions{}
			m := &marketplace{events: map[string]string{}, posts: map[string][]string{}}
			in := newInbox(db, p).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: accounts, Jobs: db})
			n := notification("tok-cancel")
			m.events[n.EventURL] = fmt.Sprintf(cancel, tc.account)
			if _, _, err := in.Notify(context.Background(), n); err != nil {
				t.Fatal(err)
			}
			if len(p.got) != 1 {
				t.Fatalf("processed %d times, want 1", len(p.got))
			}
			got := p.got[0]
			switch {
			case tc.want != "" && got != tc.want:
				t.Errorf("processed as %q, want %q", got, tc.want)
			case tc.want == "" && (!strings.HasPrefix(got, "ad-") || got == accounts["12"].SubscriptionID):
				t.Errorf("processed as %q, want a subscription of its own", got)
			}
		})
	}
}

// deadlines is a marketplace that reports whether each fetch had a
// deadline within PROCESS_TIMEOUT.
type deadlines struct {
	marketplace
	limit   time.Duration
	unbound []string
}

func (d *deadlines) FetchEvent(ctx context.Context, url string) ([]byte, error) {
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d.limit {
		d.mu.Lock()
		d.unbound = append(d.unbound, url)
		d.mu.Unlock()
	}
	return d.marketplace.FetchEvent(ctx, url)
}

// The fetch of a notification is bounded by PROCESS_TIMEOUT, as the rest
// of its handling: AppDirect waits about 5 s for a synchronous reply, and
// a marketplace that stalls must not hold the notification (and a
// processing slot) through every attempt of the fetch (3 × 10 s, past the
// server's write timeout, so that no reply at all went out).
func TestNotifyFetchIsBounded(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	m := &deadlines{marketplace: marketplace{events: map[string]string{}, posts: map[string][]string{}}, limit: 2 * time.Second}
	in := newInbox(db, &processor{}).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db})
	n := notification("tok-bound")
	m.events[n.EventURL] = orderEvent
	if r, _, err := in.Notify(context.Background(), n); err != nil || r.Kind != events.Final {
		t.Fatalf("Notify: %+v, %v", r, err)
	}
	if len(m.unbound) != 0 {
		t.Errorf("fetched %v without a deadline within PROCESS_TIMEOUT (2s)", m.unbound)
	}
}

// lastMoment is a marketplace whose post is accepted just as the caller's
// deadline passes: the pass's context is done when PostResult returns.
type lastMoment struct {
	marketplace
	cancel context.CancelFunc
}

func (l *lastMoment) PostResult(ctx context.Context, mk, token string, result []byte) error {
	err := l.marketplace.PostResult(ctx, mk, token, result)
	l.cancel()
	return err
}

// A result AppDirect accepted is recorded posted though the pass's time
// ran out with the post: else the job stays due, and the next pass posts
// the same result again, a duplicate our own records could have avoided.
func TestAnswerLaterRecordsAPostAtTheDeadline(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	m := &lastMoment{marketplace: marketplace{events: map[string]string{}, posts: map[string][]string{}}}
	in := newInbox(db, &processor{}).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db})
	n := notification("tok-last")
	m.events[n.EventURL] = orderEvent
	enqueueTokenOnlyJob(t, db, n, time.Now().UTC())
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	_ = in.AnswerLater(ctx, n.Token, time.Hour)
	j, err := db.Result(context.Background(), n.Token)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.posts[n.Token]) != 1 || j.State != inbox.JobPosted {
		t.Fatalf("%d posts, job %s; want 1 post recorded %s", len(m.posts[n.Token]), j.State, inbox.JobPosted)
	}
}

// slowPost is a marketplace whose first post waits for release: a pass
// still posting when another could start.
type slowPost struct {
	*marketplace
	posting chan struct{} // closed when the first post begins
	release chan struct{}
	once    sync.Once
}

func (s *slowPost) PostResult(ctx context.Context, mk, token string, result []byte) error {
	first := false
	s.once.Do(func() { first = true; close(s.posting) })
	if first {
		<-s.release
	}
	return s.marketplace.PostResult(ctx, mk, token, result)
}

// A pass of AnswerLater holds its job for as long as its budgets let it
// run (fetch, delivery, post: three PROCESS_TIMEOUTs): a second pass
// (another replica's settler) that comes while the first is still posting
// finds the job busy, and the result is posted once.
func TestAnswerLaterPassIsNeverOverlapped(t *testing.T) {
	t.Parallel()
	db, mini := newStore(t)
	m := &slowPost{marketplace: &marketplace{events: map[string]string{}, posts: map[string][]string{}},
		posting: make(chan struct{}), release: make(chan struct{})}
	in := newInbox(db, &processor{}).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db,
		Answer: func(context.Context, string) error { return nil }}) // no pass at once: the test runs them
	n := notification("tok-slow")
	n.Async = true
	m.events[n.EventURL] = orderEvent
	if r, _, err := in.Notify(context.Background(), n); err != nil || r.Kind != events.Accepted {
		t.Fatalf("notification: %+v, %v", r, err)
	}
	first := make(chan error, 1)
	go func() { first <- in.AnswerLater(context.Background(), "tok-slow@market.example", time.Hour) }()
	<-m.posting
	mini.FastForward(3 * 2 * time.Second) // newInbox's PROCESS_TIMEOUT, three times: the pass is still within its budgets
	if err := in.AnswerLater(context.Background(), "tok-slow@market.example", time.Hour); !errors.Is(err, events.ErrBusy) {
		t.Errorf("a second pass while the first posts: %v, want busy", err)
	}
	close(m.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if got := len(m.posts["tok-slow"]); got != 1 {
		t.Errorf("posted %d times, want 1", got)
	}
}

// A result AppDirect will not take (a 4xx, a marketplace no longer
// configured) ends refused: off the queue, never posted again, instead of
// being retried every hour for ever. Our own credentials refused (401) are
// not that: retried until fixed.
func TestAnswerLaterRefusedResultEnds(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	m := &marketplace{events: map[string]string{}, posts: map[string][]string{}}
	in := newInbox(db, &processor{}).WithAppDirect(inbox.AppDirect{Marketplace: m, Owners: db, Jobs: db,
		Answer: func(context.Context, string) error { return nil }})
	n := notification("tok-refused")
	n.Async = true
	m.events[n.EventURL] = orderEvent
	m.failPost = []error{status(401), fmt.Errorf("%w: HTTP 400", inbox.ErrResultRefused)}
	if r, _, err := in.Notify(context.Background(), n); err != nil || r.Kind != events.Accepted {
		t.Fatalf("notification: %+v, %v", r, err)
	}
	for range 3 { // 401: pending still; 400: refused; then nothing more
		if err := in.AnswerLater(context.Background(), "tok-refused@market.example", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	j, err := db.Result(context.Background(), "tok-refused@market.example")
	if err != nil || j.State != inbox.JobRefused || j.Attempts != 2 || !strings.Contains(j.LastError, "HTTP 400") {
		t.Fatalf("job %+v, %v: want refused after two attempts, its error kept", j, err)
	}
	if pending, err := db.ResultsPending(context.Background(), 10); err != nil || len(pending) != 0 {
		t.Errorf("still queued: %+v, %v", pending, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.posts["tok-refused"]) != 0 || len(m.failPost) != 0 {
		t.Errorf("posts %v, failures left %d: want none posted, both tried", m.posts, len(m.failPost))
	}
}
