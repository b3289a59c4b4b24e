package provisioning_test

// Review of issue 20 (the settle redesign): each test here shows a way a
// 200 reply stops being true, or an intent that is never settled, with
// the plain fakes of plan_test.go. They fail on the code they were
// written against; the fix makes them pass.

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/testevents"
	"github.com/banking-marketplace/webhook/internal/testplan"
)

// settleAsTheSettlerWould runs the settle passes the settle queue asks
// for, as the settler would, until nothing is due within horizon from now
// (or 500 passes): the clock jumps to each due time.
func settleAsTheSettlerWould(t *testing.T, svc *provisioning.Service, accounts *memAccounts, clk *clock, sub string, horizon time.Duration) {
	t.Helper()
	end := clk.Now().Add(horizon)
	for range 500 {
		due := accounts.get(sub).Settle.Due
		if due.IsZero() || due.After(end) {
			return
		}
		if due.After(clk.Now()) {
			clk.add(due.Sub(clk.Now()))
		}
		settle(t, svc, sub)
	}
}

// An intent answered only with 503 is given up after ABANDON_AFTER when
// no copy comes (an ORDER undone and refused, a CHANGE rolled back), "a
// 503 promises nothing". Here the settler finishes the steps before that
// (the outage passed), so the account is settled, but the intent is still
// not answered: the marketplace, which stopped sending copies, believes
// the ORDER failed (or the CHANGE did not happen). Settled, the account
// leaves the settle queue and is never looked at again: the ORDER's steps
// stay live for ever, the CHANGE is never rolled back.
func TestSettledButUnansweredIntentIsStillAbandoned(t *testing.T) {
	t.Parallel()
	t.Run("ORDER", func(t *testing.T) {
		t.Parallel()
		a, b := newFake("a"), newFake("b")
		svc, accounts, clk := plan(t, a, b)
		b.failNext("Provision", outage)
		testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "ab1"), events.Transient, events.TransportError)
		// No copy ever comes; the settler works the queue for two days.
		settleAsTheSettlerWould(t, svc, accounts, clk, "ab1", 48*time.Hour)
		clk.add(48 * time.Hour)
		settleAsTheSettlerWould(t, svc, accounts, clk, "ab1", 0)
		if a.isLive("ab1") || b.isLive("ab1") {
			acct := accounts.get("ab1")
			t.Fatalf("an ORDER answered only 503, no copy for 48h: a live %v, b live %v; account %s promised %v, settle %+v",
				a.isLive("ab1"), b.isLive("ab1"), acct.Status, acct.Intent.Promised, acct.Settle)
		}
	})
	t.Run("CHANGE", func(t *testing.T) {
		t.Parallel()
		a, b := newFake("a"), newFake("b")
		svc, accounts, clk := plan(t, a, b)
		testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "ab2"), events.Final, "")
		b.failNext("Change", outage)
		testevents.WantOutcome(t, svc.Process(context.Background(), change("ab2", "PREMIUM"), "two"), events.Transient, events.TransportError)
		settleAsTheSettlerWould(t, svc, accounts, clk, "ab2", 48*time.Hour)
		clk.add(48 * time.Hour)
		settleAsTheSettlerWould(t, svc, accounts, clk, "ab2", 0)
		if a.level["ab2"] == "PREMIUM" || b.level["ab2"] == "PREMIUM" {
			acct := accounts.get("ab2")
			t.Fatalf("a CHANGE answered only 503, no copy for 48h: levels a %q, b %q; intent %q promised %v, settle %+v",
				a.level["ab2"], b.level["ab2"], acct.Intent.Edition, acct.Intent.Promised, acct.Settle)
		}
	})
}

// Late work after a CANCEL: a recheck that finds the late work live and
// whose undo then fails once (a 503) must try again. The step found live
// is recorded with the undone step's state and without its recheck time,
// so the next pass skips it as undone: the work stays live behind a
// success to the CANCEL, and the account reads settled.
func TestLateWorkFoundLiveIsUndoneAfterAFailedUndo(t *testing.T) {
	t.Parallel()
	a, b := newFake("a"), newFake("b")
	svc, accounts, clk := plan(t, a, b)
	b.failNext("Provision", timeout) // the call went out; its work lands later
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "lw1"), events.Transient, events.TransportError)
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "lw1"), events.Final, "")
	if a.isLive("lw1") || b.isLive("lw1") {
		t.Fatal("setup: the cancel left something live")
	}
	b.land("lw1")
	b.failNext("Deprovision", outage) // the first undo of the late work fails
	settleAsTheSettlerWould(t, svc, accounts, clk, "lw1", 2*time.Hour)
	if b.isLive("lw1") {
		acct := accounts.get("lw1")
		st, _ := acct.Step("b")
		t.Fatalf("late work stays live after a success to the CANCEL: b recorded %+v, settle %+v (Deprovision called %d times)",
			*st, acct.Settle, b.count("Deprovision"))
	}
}

// entitlements is a target whose work is named by an id every
// subscription of one account and customer shares, as a Helix
// entitlement (<accountId>:<targetCustomerId>): it keeps what is live by
// that id, not by subscription. It cannot be looked up.
type entitlements struct {
	id string

	mu         sync.Mutex
	live       map[string]bool
	deprovFail []error
	provisions int
}

func newEntitlements(id string) *entitlements {
	return &entitlements{id: id, live: map[string]bool{}}
}

func (e *entitlements) Name() string { return "h" }

func (e *entitlements) isLive() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.live[e.id]
}

func (e *entitlements) Find(context.Context, *provisioning.Job) (events.Step, provisioning.Presence, error) {
	return events.Step{ID: e.id}, provisioning.Unknown, nil
}

func (e *entitlements) Prepare(context.Context, *provisioning.Job) (events.Step, error) {
	return events.Step{ID: e.id}, nil
}

func (e *entitlements) Provision(_ context.Context, j *provisioning.Job) (events.Step, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.provisions++
	e.live[j.Current.ID] = true
	return events.Step{ID: j.Current.ID}, nil
}

func (e *entitlements) Change(_ context.Context, _ *provisioning.Job, s events.Step) (events.Step, error) {
	return s, nil
}

func (e *entitlements) Deprovision(_ context.Context, _ *provisioning.Job, s events.Step) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.deprovFail) > 0 {
		err := e.deprovFail[0]
		e.deprovFail = e.deprovFail[1:]
		return err
	}
	delete(e.live, s.ID)
	return nil
}

// An identifier names one subscription: claimIdentifier lets a second
// subscription take an entitlement's name once the first one's intent is
// cancelled, but the first one's undo is not finished then (or it is
// checked again for late work for an hour): the first subscription's
// settler then removes the entitlement the second one was answered
// success for.
func TestTakenOverIdentifierIsNotUndoneByTheFormerSubscription(t *testing.T) {
	t.Parallel()
	t.Run("undo still pending", func(t *testing.T) {
		t.Parallel()
		h := newEntitlements("4001:77")
		svc, accounts, clk := plan(t, h)
		testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "t1"), events.Final, "")
		// The remove times out: the CANCEL has begun, it is answered
		// success and left to the settler.
		h.deprovFail = []error{timeout}
		testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "t1"), events.Final, "")
		// Another subscription of the same account and customer.
		out := run(svc, events.SubscriptionOrder, "t2")
		if out.Kind != events.Final || !out.Reply.Success {
			return // refused while t1's undo is not finished: nothing to break
		}
		clk.add(time.Minute)
		settleAsTheSettlerWould(t, svc, accounts, clk, "t1", 2*time.Hour)
		if !h.isLive() {
			t.Fatalf("t2 was answered success, then t1's settler removed the entitlement they share (t2 %+v)", accounts.get("t2").Status)
		}
	})
	t.Run("recheck for late work", func(t *testing.T) {
		t.Parallel()
		// t1's first add has no answer (its work landed), the copy's add
		// succeeds: the step is live with an uncertain call on record.
		h := newEntitlements("4001:77")
		hf := &timesOut{entitlements: h, timeouts: 1}
		svc2, accounts2, clk2 := plan(t, hf)
		testevents.WantOutcome(t, run(svc2, events.SubscriptionOrder, "t1"), events.Transient, events.TransportError)
		testevents.WantOutcome(t, run(svc2, events.SubscriptionOrder, "t1"), events.Final, "")
		testevents.WantOutcome(t, run(svc2, events.SubscriptionCancel, "t1"), events.Final, "")
		if h.isLive() {
			t.Fatal("setup: the CANCEL left the entitlement live")
		}
		if out := run(svc2, events.SubscriptionOrder, "t2"); out.Kind != events.Final || !out.Reply.Success {
			return // refused while t1 may still be checked: nothing to break
		}
		settleAsTheSettlerWould(t, svc2, accounts2, clk2, "t1", 2*time.Hour)
		if !h.isLive() {
			t.Fatalf("t2 was answered success, then t1's rechecks for late work removed the entitlement they share (t2 %+v)", accounts2.get("t2").Status)
		}
	})
}

// timesOut is entitlements whose next adds do their work and lose their
// answer.
type timesOut struct {
	*entitlements
	timeouts int
}

func (t *timesOut) Provision(ctx context.Context, j *provisioning.Job) (events.Step, error) {
	s, err := t.entitlements.Provision(ctx, j)
	if err == nil && t.timeouts > 0 {
		t.timeouts--
		return events.Step{}, timeout
	}
	return s, err
}

// claimBarrier is memAccounts whose identifier lookups wait for each
// other (up to a second): two events whose claims read the index before
// either saved.
type claimBarrier struct {
	*memAccounts
	arrived chan struct{}
}

func (c *claimBarrier) AccountByIdentifier(ctx context.Context, id string) (events.Account, error) {
	a, err := c.memAccounts.AccountByIdentifier(ctx, id)
	c.arrived <- struct{}{}
	deadline := time.After(time.Second)
	for len(c.arrived) < cap(c.arrived) {
		select {
		case <-deadline:
			return a, err
		case <-time.After(time.Millisecond):
		}
	}
	return a, err
}

// Two ORDERs of one entitlement (two subscriptions of one account and
// customer) at once, on two replicas: each claim reads the index before
// the other wrote it, both are answered success, and the entitlement now
// serves two subscriptions, so each one's CANCEL undoes the other's.
func TestConcurrentOrdersCannotBothClaimOneIdentifier(t *testing.T) {
	t.Parallel()
	h := newEntitlements("4001:77")
	mem := newMemAccounts()
	accounts := &claimBarrier{memAccounts: mem, arrived: make(chan struct{}, 2)}
	svc, err := provisioning.New(accounts, []provisioning.Plan{{Product: "two", Targets: []provisioning.Target{h}}},
		provisioning.Config{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var outs [2]events.Outcome
	for i, sub := range []string{"c1", "c2"} {
		wg.Go(func() { outs[i] = run(svc, events.SubscriptionOrder, sub) })
	}
	wg.Wait()
	if outs[0].Kind == events.Final && outs[0].Reply.Success && outs[1].Kind == events.Final && outs[1].Reply.Success {
		t.Fatalf("both subscriptions were answered success for one entitlement: %+v, %+v", outs[0].Reply, outs[1].Reply)
	}
}

// answer promises whatever intent is current when it answers with a
// final outcome, also when the event answered is not the one that set it:
// a copy of the ORDER (its reply lost) or a late CHANGE answered success
// "as before" marks an unanswered CHANGE as promised. That CHANGE was only
// ever answered 503, yet it is then never rolled back (ABANDON_AFTER
// skips promised intents), and a refusal of its own copy rolls back to
// itself: the subscription ends at the edition of a CHANGE that was
// answered with a refusal.
func TestAnswerToOneEventDoesNotPromiseAnother(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	timed := func(ev *events.SubscriptionEvent, edition string, minute int) *events.SubscriptionEvent {
		ev.Event.Payload.Order = &events.Order{EditionCode: edition}
		ts := events.Timestamp{Time: at.Add(time.Duration(minute) * time.Minute)}
		ev.Created = &ts
		return ev
	}
	t.Run("an ORDER copy while a CHANGE is unanswered", func(t *testing.T) {
		t.Parallel()
		a, b := newFake("a"), newFake("b")
		svc, accounts, clk := plan(t, a, b)
		order := timed(event(events.SubscriptionOrder, "pa1"), "BASIC", 0)
		testevents.WantOutcome(t, svc.Process(context.Background(), order, "two"), events.Final, "")
		for range 1000 {
			b.failNext("Change", outage) // b stays down for days
		}
		testevents.WantOutcome(t, svc.Process(context.Background(), timed(change("pa1", ""), "PREMIUM", 1), "two"), events.Transient, events.TransportError)
		testevents.WantOutcome(t, svc.Process(context.Background(), order, "two"), events.Final, "") // the ORDER's reply was lost
		if acct := accounts.get("pa1"); acct.Intent.Promised {
			t.Errorf("the ORDER copy's success promised the CHANGE answered 503: intent %q promised", acct.Intent.Edition)
		}
		// The CHANGE's copies stop; ABANDON_AFTER later it is rolled back.
		settleAsTheSettlerWould(t, svc, accounts, clk, "pa1", 48*time.Hour)
		if acct := accounts.get("pa1"); acct.Intent.Edition != "BASIC" || a.level["pa1"] != "BASIC" {
			t.Fatalf("a CHANGE only ever answered 503, no copy for 48h: intent %q (promised %v), a at %q",
				acct.Intent.Edition, acct.Intent.Promised, a.level["pa1"])
		}
	})
	t.Run("a late CHANGE while a newer CHANGE is unanswered", func(t *testing.T) {
		t.Parallel()
		svc, accounts, a, b := twoSteps(t)
		order := timed(event(events.SubscriptionOrder, "pa2"), "BASIC", 0)
		testevents.WantOutcome(t, svc.Process(context.Background(), order, "two"), events.Final, "")
		b.failNext("Change", outage)
		testevents.WantOutcome(t, svc.Process(context.Background(), timed(change("pa2", ""), "PREMIUM", 2), "two"), events.Transient, events.TransportError)
		// Delivered late: older than the CHANGE under way, answered success.
		testevents.WantOutcome(t, svc.Process(context.Background(), timed(change("pa2", ""), "GOLD", 1), "two"), events.Final, "")
		b.failNext("Change", refusal)
		testevents.WantOutcome(t, svc.Process(context.Background(), timed(change("pa2", ""), "PREMIUM", 2), "two"), events.Final, events.Forbidden)
		// The marketplace holds GOLD: the CHANGE to GOLD succeeded, the
		// newer one to PREMIUM was refused.
		if acct := accounts.get("pa2"); acct.Intent.Edition == "PREMIUM" || a.level["pa2"] == "PREMIUM" || b.level["pa2"] == "PREMIUM" {
			t.Fatalf("the CHANGE to PREMIUM was refused, yet: intent %q, a %q, b %q", acct.Intent.Edition, a.level["pa2"], b.level["pa2"])
		}
	})
}

// errUnreadable is an undo's answer the service could not read (a
// garbled, oversized or redirected reply): it carries the HTTP status of
// the reply, 200, and the call may well have done its work.
type errUnreadable struct{}

func (errUnreadable) Error() string   { return "HTTP 200: invalid response: garbled body" }
func (errUnreadable) StatusCode() int { return 200 }

// DO_NOT_CANCEL means the subscription fully live. noEffect reads any
// error that carries a status as "the outside system answered, nothing
// was done", so an undo whose reply was unreadable (status 200, the work
// done) reverts the CANCEL: DO_NOT_CANCEL is answered, the record says the
// step is live, and it is gone. The same for a 502/504 a gateway answers
// after the backend did the work.
func TestUnreadableUndoReplyIsNotDoNotCancel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"garbled 200", provisioning.Outage("unreadable", 0, errUnreadable{})},
		{"gateway timeout", provisioning.Outage("gateway", 0, answered(504))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc, accounts, a, b := twoSteps(t)
			testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "nc1"), events.Final, "")
			b.loseReply("Deprovision", tc.err)
			out := run(svc, events.SubscriptionCancel, "nc1")
			if out.Reply.ErrorCode == events.DoNotCancel && (!b.isLive("nc1") || !a.isLive("nc1")) {
				acct := accounts.get("nc1")
				st, _ := acct.Step("b")
				t.Fatalf("DO_NOT_CANCEL answered with b gone (a live %v, b live %v, b recorded %q)", a.isLive("nc1"), b.isLive("nc1"), st.State)
			}
		})
	}
}

// Every save of an account writes its identifier's index again: once a
// second subscription took over an entitlement's name (the first one
// cancelled, its undo left to the settler), the first one's next save
// points the index back at it, and from then on the second subscription's
// own CANCEL, which names the entitlement as its accountIdentifier, is
// refused as "another subscription's" (FORBIDDEN): it can never be
// cancelled, and the marketplace goes on billing it. Real store
// (miniredis), where the index is a key of its own.
func TestSecondSubscriptionOfAnIdentifierCanBeCancelled(t *testing.T) {
	t.Parallel()
	h := newEntitlements("4001:77")
	e := testplan.New(t, testplan.Config{Product: "two", Targets: []provisioning.Target{h}})
	testevents.WantOutcome(t, e.Process(event(events.SubscriptionOrder, "x1")), events.Final, "")
	h.deprovFail = []error{timeout}
	testevents.WantOutcome(t, e.Process(event(events.SubscriptionCancel, "x1")), events.Final, "")
	out := e.Process(event(events.SubscriptionOrder, "x2"))
	if out.Kind != events.Final || !out.Reply.Success {
		return // refused while x1's undo is not finished: nothing to break
	}
	if _, err := e.Service.Settle(context.Background(), "x1"); err != nil {
		t.Fatal(err)
	}
	cancel := event(events.SubscriptionCancel, "x2")
	cancel.Event.Payload.Account = &events.AccountRef{AccountIdentifier: out.Reply.AccountIdentifier}
	got := e.Process(cancel)
	if got.Kind != events.Final || !got.Reply.Success {
		t.Fatalf("x2 was ordered with success; its CANCEL naming its own accountIdentifier %q is answered %+v", out.Reply.AccountIdentifier, got.Reply)
	}
}

// A target removed from a product's plan (the products file changed):
// alignSteps keeps its step after the plan's, so that nothing recorded is
// forgotten, and Settled counts it. An active subscription whose removed
// step never existed (pending: its call was refused as misconfigured, the
// reason the operator removed the target) is answered success, and then
// stays unsettled for ever: on the settle queue and the unsettled list
// (alerting), no pass can move a step no plan holds.
func TestRemovedTargetDoesNotLeaveTheAccountUnsettled(t *testing.T) {
	t.Parallel()
	a, b := newFake("a"), newFake("b")
	accounts := newMemAccounts()
	clk := &clock{now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	service := func(targets ...provisioning.Target) *provisioning.Service {
		svc, err := provisioning.New(accounts, []provisioning.Plan{{Product: "two", Targets: targets}}, provisioning.Config{}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		svc.SetClock(clk.Now)
		return svc
	}
	before := service(a, b)
	b.failNext("Provision", badKey)
	testevents.WantOutcome(t, run(before, events.SubscriptionOrder, "rt1"), events.Transient, events.TransportError)
	if st := accounts.stateOf("rt1", "b"); st != events.StepPending {
		t.Fatalf("setup: b is %q, want pending (a refused call creates nothing)", st)
	}
	after := service(a) // b is taken out of the product
	testevents.WantOutcome(t, run(after, events.SubscriptionOrder, "rt1"), events.Final, "")
	settleAsTheSettlerWould(t, after, accounts, clk, "rt1", 48*time.Hour)
	if acct := accounts.get("rt1"); !acct.Settled() || !acct.Settle.Since.IsZero() {
		t.Fatalf("an ORDER answered success stays unsettled: steps %+v, settle %+v", acct.Steps, acct.Settle)
	}
}
