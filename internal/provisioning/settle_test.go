package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/testevents"
)

// The cases of issue 20 at the level of the loop, with plain fakes; the
// real binary against real Redis and the sandbox holds 1, 2 and 4 too
// (cmd/webhook/settle_test.go).

// Case 1: a refusal of the service's own setup at step 2 is a 503 that
// alerts, not a 200: step 1 stays for the next copy, a CHANGE waits, and
// a copy after the fix succeeds.
func TestMisconfigurationIsNotAnAnswer(t *testing.T) {
	t.Parallel()
	a, b := newFake("a"), newFake("b")
	svc, accounts, _ := plan(t, a, b)
	b.failNext("Provision", badKey)
	out := run(svc, events.SubscriptionOrder, "m1")
	testevents.WantOutcome(t, out, events.Transient, events.TransportError)
	if acct := accounts.get("m1"); acct.Status != events.AccountProvisioning || !a.isLive("m1") || acct.Settle.Since.IsZero() {
		t.Fatalf("after the misconfiguration: %+v", acct)
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionChange, "m1"), events.Busy, events.Pending)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "m1"), events.Final, "") // fixed
	if !b.isLive("m1") || a.count("Provision") != 1 {
		t.Fatalf("b live %v, a provisioned %d times", b.isLive("m1"), a.count("Provision"))
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionChange, "m1"), events.Final, "")
}

// Case 1, the other ending: no copy comes. After ABANDON_AFTER the
// settler undoes step 1 and records the ORDER refused; a late copy gets
// that refusal, a CHANGE gets ACCOUNT_NOT_FOUND.
func TestAbandonedOrderIsUndone(t *testing.T) {
	t.Parallel()
	a, b := newFake("a"), newFake("b")
	b.needsEvent = true // the settler cannot create it: only a copy can
	svc, accounts, clk := plan(t, a, b)
	b.failNext("Provision", badKey)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "m2"), events.Transient, events.TransportError)
	clk.add(time.Minute)
	if rep := settle(t, svc, "m2"); rep.Settled || rep.Abandoned || !a.isLive("m2") {
		t.Fatalf("before ABANDON_AFTER the settler gave up: %+v", rep)
	}
	if due := accounts.get("m2").Settle.Due; !due.Equal(clk.Now().Add(-time.Minute).Add(24 * time.Hour)) {
		t.Errorf("an ORDER waiting for its copy is due at %v, want its last copy + ABANDON_AFTER", due)
	}
	clk.add(24 * time.Hour)
	rep := settle(t, svc, "m2")
	if !rep.Abandoned || !rep.Settled || a.isLive("m2") || accounts.get("m2").Status != events.AccountFailed {
		t.Fatalf("after ABANDON_AFTER: %+v; a live %v", rep, a.isLive("m2"))
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "m2"), events.Final, events.OperationCancelled)
	testevents.WantOutcome(t, run(svc, events.SubscriptionChange, "m2"), events.Final, events.AccountNotFound)
}

// Case 2: work an abandoned call makes land after a CANCEL is undone by
// the settler's rechecks, for a target that cannot look it up.
func TestLateWorkAfterACancelIsUndone(t *testing.T) {
	t.Parallel()
	a, b := newFake("a"), newFake("b")
	b.noLookup = true
	svc, accounts, clk := plan(t, a, b)
	b.failNext("Provision", timeout) // slow: it lands later
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "l1"), events.Transient, events.TransportError)
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "l1"), events.Final, "")
	if a.isLive("l1") || b.isLive("l1") {
		t.Fatal("the cancel left something live")
	}
	b.land("l1")
	acct := accounts.get("l1")
	if acct.Settle.Due.IsZero() || acct.Settle.Due.Sub(clk.Now()) > 15*time.Second {
		t.Fatalf("the first recheck is due at %v, want within seconds", acct.Settle.Due)
	}
	clk.add(acct.Settle.Due.Sub(clk.Now()))
	settle(t, svc, "l1")
	if b.isLive("l1") {
		t.Fatal("the late entitlement stayed after the recheck")
	}
	// The rechecks stretch out to an hour, then stop.
	for range 20 {
		due := accounts.get("l1").Settle.Due
		if due.IsZero() {
			break
		}
		clk.add(due.Sub(clk.Now()))
		settle(t, svc, "l1")
	}
	if due := accounts.get("l1").Settle.Due; !due.IsZero() || b.count("Deprovision") < 5 {
		t.Fatalf("rechecks: still due %v after %d removes", due, b.count("Deprovision"))
	}
	if elapsed := clk.Now().Sub(acct.UpdatedAt); elapsed < time.Hour || elapsed > 2*time.Hour {
		t.Errorf("the rechecks lasted %v, want about an hour", elapsed)
	}
}

// Case 4: a CHANGE after Redis forgot rebuilds the record from the
// targets and applies the change.
func TestChangeAfterRedisForgot(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "f1"), events.Final, "")
	accounts.forget()
	out := svc.Process(context.Background(), change("f1", "PREMIUM"), "two")
	testevents.WantOutcome(t, out, events.Final, "")
	if out.Reply.AccountIdentifier != "a-f1" {
		t.Errorf("accountIdentifier %q", out.Reply.AccountIdentifier)
	}
	if acct := accounts.get("f1"); !acct.Active() || acct.Intent.Edition != "PREMIUM" || !acct.Settled() {
		t.Fatalf("rebuilt account %+v", acct)
	}
	if a.level["f1"] != "PREMIUM" || b.level["f1"] != "PREMIUM" {
		t.Errorf("levels a %q, b %q, want PREMIUM", a.level["f1"], b.level["f1"])
	}
}

// Case 5: an undo once begun is finished, never rolled forward: after a
// refusal at the last step, an undo whose reply was lost and a copy of
// the ORDER, the copy gets the same refusal and nothing is live.
func TestInterruptedUndoIsFinished(t *testing.T) {
	t.Parallel()
	t.Run("two steps", func(t *testing.T) {
		t.Parallel()
		svc, accounts, a, b := twoSteps(t)
		b.failNext("Provision", refusal)
		a.loseReply("Deprovision", timeout)
		testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "u1"), events.Final, events.Forbidden)
		out := run(svc, events.SubscriptionOrder, "u1")
		testevents.WantOutcome(t, out, events.Final, events.Forbidden)
		if out.Reply.Message != refusal.Message || a.isLive("u1") || b.isLive("u1") || accounts.get("u1").Status != events.AccountFailed {
			t.Fatalf("copy answered %+v; a live %v, b live %v", out.Reply, a.isLive("u1"), b.isLive("u1"))
		}
		if b.count("Provision") != 1 {
			t.Errorf("the copy provisioned b again (%d)", b.count("Provision"))
		}
	})
	t.Run("three steps, a partial undo", func(t *testing.T) {
		t.Parallel()
		a, b, c := newFake("a"), newFake("b"), newFake("c")
		svc, accounts, _ := plan(t, a, b, c)
		c.failNext("Provision", refusal)
		a.failNext("Deprovision", outage) // b is undone, a is not yet
		testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "u2"), events.Final, events.Forbidden)
		out := run(svc, events.SubscriptionOrder, "u2")
		if out.Reply.ErrorCode != events.Forbidden || out.Reply.Message != refusal.Message {
			t.Fatalf("the copy answered %+v, want the same refusal", out.Reply)
		}
		if a.isLive("u2") || b.isLive("u2") || accounts.get("u2").Status != events.AccountFailed {
			t.Fatalf("a live %v, b live %v, account %+v", a.isLive("u2"), b.isLive("u2"), accounts.get("u2"))
		}
	})
}

// Case 6: one subscription's event never touches another's: an
// accountIdentifier of another subscription is refused with nothing done.
func TestEventNeverTouchesAnotherSubscription(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "o1"), events.Final, "")
	cancel := event(events.SubscriptionCancel, "o2")
	cancel.Event.Payload.Account = &events.AccountRef{AccountIdentifier: "a-o1"}
	out := svc.Process(context.Background(), cancel, "two")
	testevents.WantOutcome(t, out, events.Final, events.Forbidden)
	if !a.isLive("o1") || !b.isLive("o1") || a.count("Deprovision")+b.count("Deprovision") != 0 || !accounts.get("o1").Active() {
		t.Fatalf("another subscription's CANCEL touched o1: %+v", out.Reply)
	}
	if _, err := accounts.Account(context.Background(), "o2"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("the refused event recorded o2: %v", err)
	}
}

// Case 6, helix-first: an identifier known before the call (an
// entitlement's name) names one subscription; a second ORDER of the same
// entitlement is refused before any call, and may take it once the first
// is cancelled.
func TestSharedIdentifierIsRefused(t *testing.T) {
	t.Parallel()
	h := newFake("h")
	h.noLookup = true
	shared := &sharedName{fakeTarget: h, id: "4001:77"}
	svc, accounts, _ := plan(t, shared)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "h1"), events.Final, "")
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "h2"), events.Final, events.UserAlreadyExists)
	if h.count("Provision") != 1 {
		t.Fatalf("the second subscription's ORDER called the target (%d provisions)", h.count("Provision"))
	}
	if acct := accounts.get("h2"); acct.AccountIdentifier != "" || acct.Status != events.AccountFailed {
		t.Errorf("refused h2 recorded %+v", acct)
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "h1"), events.Final, "")
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "h3"), events.Final, "")
}

// sharedName names its step the same for every subscription, as a Helix
// entitlement of one account and customer.
type sharedName struct {
	*fakeTarget
	id string
}

func (s *sharedName) Prepare(ctx context.Context, j *provisioning.Job) (events.Step, error) {
	return events.Step{ID: s.id}, nil
}

func (s *sharedName) Provision(ctx context.Context, j *provisioning.Job) (events.Step, error) {
	if _, err := s.fakeTarget.Provision(ctx, j); err != nil {
		return events.Step{}, err
	}
	return events.Step{ID: s.id}, nil
}

// Case 3 (the class): a 5xx, 429, 408 or a deadline is never final,
// whatever a target's table or the answer's text says.
func TestClassifyNeverFinalOnATransientAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want provisioning.Kind
	}{
		{"a refusal answered 503", provisioning.Refusal(events.UserNotFound, "not found", answered(503)), provisioning.Transient},
		{"a refusal answered 429", provisioning.Refusal(events.Forbidden, "x", answered(429)), provisioning.Transient},
		{"a misconfiguration answered 502", provisioning.Misconfiguration(events.Unauthorized, "x", answered(502)), provisioning.Transient},
		{"a refusal cut by the deadline", provisioning.Refusal(events.Forbidden, "x", fmt.Errorf("x: %w", context.DeadlineExceeded)), provisioning.Transient},
		{"a refusal answered 400", provisioning.Refusal(events.Forbidden, "x", answered(400)), provisioning.Refused},
		{"a misconfiguration answered 401", provisioning.Misconfiguration(events.Unauthorized, "x", answered(401)), provisioning.Misconfigured},
		{"unclassified", errors.New("boom"), provisioning.Transient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := provisioning.Classify("t", tc.err); got.Kind != tc.want {
				t.Errorf("Classify = %v, want %v", got.Kind, tc.want)
			}
		})
	}
}

// Case 7: a reply answered from the record, not written now, rests on a
// confirmed record (the store writes it again and WAITs when it must).
func TestAnswerFromTheRecordIsConfirmed(t *testing.T) {
	t.Parallel()
	svc, accounts, _, _ := twoSteps(t)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "w1"), events.Final, "")
	before := accounts.confirms
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "w1"), events.Final, "")
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "w1"), events.Final, "")
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "w1"), events.Final, "")
	if accounts.confirms-before != 2 {
		t.Errorf("%d confirms for the two copies answered from the record, want 2", accounts.confirms-before)
	}
}

// Case 8: a CHANGE sequence that returns to an earlier edition applies,
// when each CHANGE carries its own time (created): the third is a new
// event, not a copy of the first.
func TestChangeBackToAnEarlierEdition(t *testing.T) {
	t.Parallel()
	svc, accounts, a, _ := twoSteps(t)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "c1"), events.Final, "")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, edition := range []string{"PREMIUM", "BASIC", "PREMIUM"} {
		ev := change("c1", edition)
		ts := events.Timestamp{Time: at.Add(time.Duration(i) * time.Minute)}
		ev.Created = &ts
		testevents.WantOutcome(t, svc.Process(context.Background(), ev, "two"), events.Final, "")
	}
	if acct := accounts.get("c1"); acct.Intent.Edition != "PREMIUM" || a.level["c1"] != "PREMIUM" {
		t.Fatalf("after PREMIUM, BASIC, PREMIUM: account %q, a %q", acct.Intent.Edition, a.level["c1"])
	}
}

// A refused CHANGE rolls back what it changed: the subscription goes back
// to the edition promised before, and the refusal is the answer.
func TestRefusedChangeRollsBack(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "r1"), events.Final, "")
	testevents.WantOutcome(t, svc.Process(context.Background(), change("r1", "BASIC"), "two"), events.Final, "")
	b.failNext("Change", refusal)
	testevents.WantOutcome(t, svc.Process(context.Background(), change("r1", "PREMIUM"), "two"), events.Final, events.Forbidden)
	if acct := accounts.get("r1"); acct.Intent.Edition != "BASIC" || a.level["r1"] != "BASIC" || !acct.Settled() {
		t.Fatalf("after the refused CHANGE: account %q (settled %v), a %q", acct.Intent.Edition, acct.Settled(), a.level["r1"])
	}
}
