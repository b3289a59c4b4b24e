package console

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

// t0 is the fake clock's start: every record is dated from it.
var t0 = time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)

// clock is a settable clock for sessions and relative times.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// personal is the personal data the marketplace's events carry about a
// subscription (its creator, company, address): the records the fake
// stands for hold it beside the ids, and no page may show any of it.
type personal struct {
	Name, Email, Company, Address, Phone string
}

// fake is a Reader and Actions over records in memory.
type fake struct {
	mu         sync.Mutex
	overview   Overview
	subs       map[string]Subscription
	deliveries map[string]Delivery
	people     map[string]personal // by subscription id: never shown
	err        error               // answered by every read when set
	settleErr  error
	settleRes  *SettleResult // nil: SettleNow settles the subscription
	settled    []string      // the settle passes SettleNow ran (none on a settled subscription)
	subReads   int           // Subscription's calls
	settleHook func()        // called by SettleNow before it answers, outside the lock; nil: none
	searches   []string      // Search's calls
	pageSize   int
}

func newFake() *fake {
	return &fake{subs: map[string]Subscription{}, deliveries: map[string]Delivery{}, people: map[string]personal{}, pageSize: 20}
}

func (f *fake) Overview(context.Context) (Overview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Overview{}, f.err
	}
	ov := f.overview
	rows := f.unsettledLocked()
	ov.Unsettled = len(rows)
	if len(rows) > 0 {
		ov.Oldest = rows[0]
	}
	ov.RecentFailures, _ = f.failuresLocked(t0.Add(-24*time.Hour), "", 0)
	return ov, nil
}

func (f *fake) Subscription(_ context.Context, id string) (Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subReads++
	if f.err != nil {
		return Subscription{}, f.err
	}
	s, ok := f.subs[id]
	if !ok {
		return Subscription{}, events.ErrNotFound
	}
	for _, d := range f.deliveries {
		if d.Subscription == id {
			s.Deliveries = append(s.Deliveries, d)
		}
	}
	slices.SortFunc(s.Deliveries, func(a, b Delivery) int { return b.First.Compare(a.First) })
	return s, nil
}

func (f *fake) Delivery(_ context.Context, key string) (Delivery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return Delivery{}, f.err
	}
	d, ok := f.deliveries[key]
	if !ok {
		return Delivery{}, events.ErrNotFound
	}
	return d, nil
}

func (f *fake) Search(_ context.Context, q string) ([]Hit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.searches = append(f.searches, q)
	if f.err != nil {
		return nil, f.err
	}
	var hits []Hit
	for _, s := range f.subs {
		field := ""
		switch {
		case s.ID == q:
			field = "subscription id"
		case s.AccountIdentifier == q:
			field = "account identifier"
		case s.UserID != 0 && strconv.FormatInt(s.UserID, 10) == q:
			field = "Q2 user id"
		}
		if field != "" {
			hits = append(hits, Hit{Kind: HitSubscription, ID: s.ID, Field: field, Subscription: s.ID, State: s.Status, At: s.Updated})
		}
	}
	for _, d := range f.deliveries {
		field := ""
		switch {
		case d.Key == q:
			field = "delivery key"
		case d.WebhookID != "" && d.WebhookID == q:
			field = "webhook-id"
		case d.EventToken != "" && d.EventToken == q:
			field = "event token"
		}
		if field != "" {
			hits = append(hits, Hit{Kind: HitDelivery, ID: d.Key, Field: field, Subscription: d.Subscription, EventType: d.EventType, State: d.Outcome, At: d.Last})
		}
	}
	slices.SortFunc(hits, func(a, b Hit) int { return cmp.Compare(a.ID, b.ID) })
	return hits, nil
}

func (f *fake) Failures(_ context.Context, since time.Time, cursor string) ([]DeliveryRow, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, "", f.err
	}
	from, _ := strconv.Atoi(cursor)
	rows, next := f.failuresLocked(since, cursor, from)
	return rows, next, nil
}

func (f *fake) failuresLocked(since time.Time, _ string, from int) ([]DeliveryRow, string) {
	var rows []DeliveryRow
	for _, d := range f.deliveries {
		if !failed(d.Outcome) || d.Last.Before(since) {
			continue
		}
		r := DeliveryRow{Key: d.Key, EventType: d.EventType, Subscription: d.Subscription, State: d.State,
			Outcome: d.Outcome, Status: d.Status, Attempts: len(d.Attempts) + d.Dropped, Last: d.Last}
		if n := len(d.Attempts); n > 0 {
			r.Reason = d.Attempts[n-1].Reason
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b DeliveryRow) int { return cmp.Or(b.Last.Compare(a.Last), cmp.Compare(a.Key, b.Key)) })
	if from > len(rows) {
		from = len(rows)
	}
	rows = rows[from:]
	if len(rows) > f.pageSize {
		return rows[:f.pageSize], strconv.Itoa(from + f.pageSize)
	}
	return rows, ""
}

func (f *fake) Unsettled(context.Context) ([]SubscriptionRow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.unsettledLocked(), nil
}

func (f *fake) unsettledLocked() []SubscriptionRow {
	var rows []SubscriptionRow
	for _, s := range f.subs {
		if !s.Settle.Since.IsZero() {
			rows = append(rows, SubscriptionRow{ID: s.ID, Product: s.Product, Intent: s.Intent, Status: s.Status, Steps: s.Steps, Settle: s.Settle})
		}
	}
	slices.SortFunc(rows, func(a, b SubscriptionRow) int { return a.Settle.Since.Compare(b.Settle.Since) })
	return rows
}

func (f *fake) SettleNow(_ context.Context, id string) (SettleResult, error) {
	if f.settleHook != nil {
		f.settleHook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.subs[id]
	if ok && s.Settle.Since.IsZero() {
		return SettleResult{}, ErrSettled // as the wiring's: read first, nothing run
	}
	f.settled = append(f.settled, id)
	if f.settleErr != nil {
		return SettleResult{}, f.settleErr
	}
	if f.settleRes != nil {
		return *f.settleRes, nil
	}
	if !ok {
		return SettleResult{}, events.ErrNotFound
	}
	steps := slices.Clone(s.Steps)
	for i := range steps {
		steps[i].State, steps[i].Attempts, steps[i].LastError = StepLive, 0, ""
		if steps[i].ID == "" {
			steps[i].ID = strings.ToUpper(steps[i].System) + "-" + id
		}
	}
	s.Steps, s.Settle, s.Status, s.Promised = steps, Settle{}, "active", true
	f.subs[id] = s
	return SettleResult{Settled: true}, nil
}

func (f *fake) subscriptionReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subReads
}

func (f *fake) settleCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.settled)
}

// The personal data the full fake holds, and that no page may show.
var people = []personal{
	{Name: "Jane Doe", Email: "jane.doe@example.com", Company: "Doe Plumbing LLC", Address: "42 Harbour Street", Phone: "+1 555 0100"},
	{Name: "Rahul Mehta", Email: "rahul.mehta@example.org", Company: "Mehta Bakery Inc", Address: "7 Mill Lane", Phone: "+1 555 0199"},
}

// Ids of the full fake.
const (
	subOrdered   = "sub-7f3a1c"      // an ORDER that failed three times at Q2's enrollment, then worked
	subStuck     = "sub-b2e94d"      // a Business Access ORDER stuck at Helix (credentials refused), unsettled
	subCancel    = "sub-0c55aa"      // a cancel waiting for QBD Connect, unsettled
	keyOrdered   = "id:msg_2Nf8kQ1"  // subOrdered's ORDER
	keyStuck     = "id:msg_9Xy4TzP"  // subStuck's ORDER
	keyCancel    = "sha256:9c1e5b7f" // subCancel's CANCEL, keyed by its body
	keyAppToken  = "ad:5d0f6a2e-8c1b-4f7e-9a3d-2b6c8e1f0a4d"
	appToken     = "5d0f6a2e-8c1b-4f7e-9a3d-2b6c8e1f0a4d"
	userOrdered  = 880112
	accountStuck = "Q2U-4471"
	traceOrdered = "4bf92f3577b34da6a3ce929d0e0e4736"
)

// fullFake is a fake with every kind of record, personal data beside them,
// and email addresses slipped into the free texts.
func fullFake() *fake {
	f := newFake()
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	f.overview = Overview{
		Hour: []OutcomeCount{{"SUCCESS", 41}, {"TRANSPORT_ERROR", 3}, {"UNAUTHORIZED", 2}},
		Day:  []OutcomeCount{{"SUCCESS", 512}, {"TRANSPORT_ERROR", 19}, {"UNAUTHORIZED", 7}, {"ACCOUNT_NOT_FOUND", 2}, {"PENDING", 4}},
		Systems: []System{
			{Name: "q2", State: SystemOK, Since: at(-300)},
			{Name: "qbd_connect", State: SystemUnreachable, Since: at(-25), Code: "HTTP 503"},
			{Name: "helix", State: SystemRefused, Since: at(-42), Code: "UNAUTHORIZED (ops " + people[0].Email + ")"},
		},
	}
	f.subs[subOrdered] = Subscription{
		ID: subOrdered, Product: "Online Banking", Edition: "STANDARD", Status: "active", AccountIdentifier: "Q2U-90210",
		UserID: userOrdered, Created: at(-50), Updated: at(-38),
		Intent: IntentActive, IntentBy: "SUBSCRIPTION_ORDER", IntentAt: at(-50), Promised: true,
		Steps: []Step{{System: "q2", State: StepLive, ID: "Q2U-90210"}},
	}
	f.people[subOrdered] = people[0]
	f.deliveries[keyOrdered] = Delivery{
		Key: keyOrdered, WebhookID: "msg_2Nf8kQ1", EventType: "SUBSCRIPTION_ORDER", Subscription: subOrdered,
		State: "done", Outcome: "SUCCESS", Status: 200, Copies: 1, First: at(-50), Last: at(-38),
		Attempts: []Attempt{
			enrollFailed(at(-50), "q2-req-a1"),
			enrollFailed(at(-48), "q2-req-a2"),
			enrollFailed(at(-44), "q2-req-a3"),
			{At: at(-38), Duration: 840 * time.Millisecond, Status: 200, Outcome: "SUCCESS", Kind: "final", Reason: "settled", TraceID: traceOrdered,
				Calls: []Call{
					{System: "q2", Action: "token", Status: 200, Duration: 35 * time.Millisecond, RequestID: "q2-req-a4t"},
					{System: "q2", Action: "enroll", Status: 201, Duration: 610 * time.Millisecond, RequestID: "q2-req-a4"},
				}},
		},
	}
	f.subs[subStuck] = Subscription{
		ID: subStuck, Product: "Business Access", Edition: "PREMIUM", Status: "provisioning", AccountIdentifier: accountStuck,
		UserID: 880113, Created: at(-20), Updated: at(-6),
		Intent: IntentActive, IntentBy: "SUBSCRIPTION_ORDER", IntentAt: at(-20),
		Steps: []Step{
			{System: "q2", State: StepLive, ID: accountStuck},
			{System: "qbd_connect", State: StepLive, ID: "QBD-C-1029"},
			{System: "helix", State: StepPending, Attempts: 3,
				LastError: "UNAUTHORIZED: helix answered 401 to addEntitlement; check HELIX_API_KEY (last tried for " + people[1].Email + ")"},
		},
		Settle: Settle{Since: at(-20), Waiting: "helix: UNAUTHORIZED: helix answered 401 to addEntitlement", Next: at(4), Attempts: 3},
	}
	f.people[subStuck] = people[1]
	f.deliveries[keyStuck] = Delivery{
		Key: keyStuck, WebhookID: "msg_9Xy4TzP", EventType: "SUBSCRIPTION_ORDER", Subscription: subStuck,
		State: "released", Outcome: "UNAUTHORIZED", Status: 200, First: at(-20), Last: at(-6),
		Attempts: []Attempt{
			{At: at(-20), Duration: 1200 * time.Millisecond, Status: 200, Outcome: "UNAUTHORIZED", Kind: "unsettled", Reason: "helix.addEntitlement: HTTP 401",
				TraceID: "0af7651916cd43dd8448eb211c80319c",
				Calls: []Call{
					{System: "q2", Action: "enroll", Status: 201, Duration: 420 * time.Millisecond, RequestID: "q2-req-b1"},
					{System: "qbd_connect", Action: "createCustomer", Status: 201, Duration: 380 * time.Millisecond, RequestID: "qbd-7781"},
					{System: "helix", Action: "addEntitlement", Status: 401, Duration: 95 * time.Millisecond, RequestID: "hx-19a"},
				}},
			{At: at(-6), Duration: 130 * time.Millisecond, Status: 200, Outcome: "UNAUTHORIZED", Kind: "unsettled", Reason: "helix.addEntitlement: HTTP 401",
				Calls: []Call{{System: "helix", Action: "addEntitlement", Status: 401, Duration: 88 * time.Millisecond, RequestID: "hx-19f"}}},
		},
	}
	f.subs[subCancel] = Subscription{
		ID: subCancel, Product: "Business Access", Status: "cancelled", AccountIdentifier: "Q2U-3301", Created: at(-3000), Updated: at(-30),
		Intent: IntentCancelled, IntentBy: "SUBSCRIPTION_CANCEL", IntentAt: at(-31), Promised: true,
		Steps: []Step{
			{System: "q2", State: StepLive, ID: "Q2U-3301"},
			{System: "qbd_connect", State: StepUnknown, ID: "QBD-C-0977", Attempts: 5, LastError: "TRANSPORT_ERROR: qbd_connect did not answer deleteCustomer (timeout)"},
		},
		Settle: Settle{Since: at(-31), Waiting: "qbd_connect: TRANSPORT_ERROR: no answer to deleteCustomer", Next: at(2), Attempts: 5},
	}
	f.deliveries[keyCancel] = Delivery{
		Key: keyCancel, EventType: "SUBSCRIPTION_CANCEL", Subscription: subCancel,
		State: "released", Outcome: "DO_NOT_CANCEL", Status: 200, First: at(-31), Last: at(-31), Dropped: 2,
		Attempts: []Attempt{{At: at(-31), Duration: 10 * time.Second, Status: 200, Outcome: "DO_NOT_CANCEL", Kind: "unsettled", Reason: "qbd_connect.deleteCustomer: timeout",
			Calls: []Call{{System: "qbd_connect", Action: "deleteCustomer", Error: "timeout", Duration: 10 * time.Second}}}},
	}
	f.deliveries[keyAppToken] = Delivery{
		Key: keyAppToken, EventToken: appToken, EventType: "SUBSCRIPTION_CHANGE", Subscription: subOrdered,
		State: "done", Outcome: "SUCCESS", Status: 200, First: at(-10), Last: at(-10),
		Attempts: []Attempt{{At: at(-10), Duration: 300 * time.Millisecond, Status: 202, Outcome: "SUCCESS", Kind: "final", Reason: "settled",
			Calls: []Call{{System: "appdirect", Action: "fetchEvent", Status: 200, Duration: 120 * time.Millisecond, RequestID: "ad-3391"}}}},
	}
	return f
}

func enrollFailed(at time.Time, reqID string) Attempt {
	return Attempt{At: at, Duration: 2100 * time.Millisecond, Status: 503, Outcome: "TRANSPORT_ERROR", Kind: "transient",
		Reason: "q2.enroll: HTTP 503", Calls: []Call{
			{System: "q2", Action: "token", Status: 200, Duration: 40 * time.Millisecond},
			{System: "q2", Action: "enroll", Status: 503, Duration: 2 * time.Second, RequestID: reqID},
		}}
}
