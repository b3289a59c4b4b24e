package helix_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2"
	"github.com/banking-marketplace/webhook/internal/testevents"
	"github.com/banking-marketplace/webhook/internal/testplan"
)

// The product of the plan tests: the README's "Business Access", plan
// [q2, helix].
const businessAccess = "business-access"

// planEnv is the provisioning service with plan [q2, helix] on miniredis,
// the Q2 sandbox and the Helix part behind real HTTP.
type planEnv struct {
	*testplan.Env
	t     *testing.T
	helix *fakeHelix
}

func newPlanEnv(t *testing.T) *planEnv {
	t.Helper()
	h := startHelix(t)
	return &planEnv{t: t, helix: h, Env: testplan.New(t, testplan.Config{Product: businessAccess,
		Q2: &q2.Settings{}, Targets: []provisioning.Target{newTarget(t, h.client(t), product)}})}
}

// customer is the Q2 CustomerID the subscription's q2 step recorded.
func (e *planEnv) customer(sub string) int64 {
	e.t.Helper()
	a := e.Account(sub)
	s, ok := a.Step(q2.Name)
	if !ok {
		e.t.Fatalf("no q2 step recorded: %+v", a)
	}
	id, ok := q2.CustomerID(*s)
	if !ok {
		e.t.Fatalf("q2 step without a customer: %+v", s)
	}
	return id
}

func (e *planEnv) users() int       { return e.Q2.Sandbox.Stats().Users }
func (e *planEnv) enrollments() int { return e.Q2.Sandbox.Stats().Calls["Enrollment"] }
func (e *planEnv) entitlements() int {
	return e.helix.part.Stats().(helixsandbox.Stats).Entitlements
}

// event is testdata/name.json for subscription sub and, when acct is not
// empty, that accountIdentifier.
func event(t *testing.T, name, sub, acct string) *events.SubscriptionEvent {
	t.Helper()
	return testevents.Fixture(t, filepath.Join("testdata", name+".json"), sub, acct)
}

// The fixture's configuration: business account 4001, requester 5001.
const account, requester = 4001, 5001

// TestPlanStory: ORDER entitles the Q2 customer the q2 step enrolled,
// CHANGE to PREMIUM edits it to FULL, CANCEL removes it and deletes the
// user.
func TestPlanStory(t *testing.T) {
	t.Parallel()
	e := newPlanEnv(t)
	sub := "sub-story"

	out := e.Process(event(t, "order", sub, ""))
	testevents.WantOutcome(t, out, events.Final, "")
	id := out.Reply.AccountIdentifier
	cust := e.customer(sub)
	a := e.Account(sub)
	if !a.Active() || len(a.Steps) != 2 || a.Steps[0].ID != id || a.Steps[1].Target != "helix" {
		t.Fatalf("account after ORDER = %+v", a)
	}
	hs := a.Steps[1]
	if want := "4001:" + strconv.FormatInt(cust, 10); hs.ID != want || hs.Data["requesting_customer_id"] != "5001" || hs.Data["entitlement"] != "RDONLY" {
		t.Fatalf("helix step = %+v, want id %s, requester 5001, RDONLY", hs, want)
	}
	if got := e.helix.level(account, cust); got != "RDONLY" {
		t.Fatalf("Helix holds %q for the Q2 customer %d, want RDONLY", got, cust)
	}

	testevents.WantOutcome(t, e.Process(event(t, "change", sub, id)), events.Final, "")
	if got := e.helix.level(account, cust); got != "FULL" || e.Account(sub).Steps[1].Data["entitlement"] != "FULL" {
		t.Fatalf("after CHANGE to PREMIUM: Helix %q, step %+v; want FULL", got, e.Account(sub).Steps[1])
	}

	testevents.WantOutcome(t, e.Process(event(t, "cancel", sub, id)), events.Final, "")
	if _, held := e.helix.part.Entitlement(account, cust); held || e.users() != 0 {
		t.Fatalf("after CANCEL: entitlement held %v, users %d", held, e.users())
	}
	if a := e.Account(sub); a.Status != events.AccountCancelled || a.Steps[0].State != events.StepUndone || a.Steps[1].State != events.StepUndone {
		t.Fatalf("account after CANCEL = %+v", a)
	}
	if e.helix.count(routeAdd) != 1 || e.helix.count(routeEdit) != 1 || e.helix.count(routeRemove) != 1 || e.enrollments() != 1 {
		t.Errorf("calls: add %d, edit %d, remove %d, enrollments %d; want one each",
			e.helix.count(routeAdd), e.helix.count(routeEdit), e.helix.count(routeRemove), e.enrollments())
	}
}

// TestPlanOrderCopyAfterRedisForgot: the q2 target finds its user, Helix
// answers 195110 for the entitlement: success with the same
// accountIdentifier, nothing new anywhere.
func TestPlanOrderCopyAfterRedisForgot(t *testing.T) {
	t.Parallel()
	e := newPlanEnv(t)
	sub := "sub-forgot"
	id := e.Process(event(t, "order", sub, "")).Reply.AccountIdentifier
	cust := e.customer(sub)
	e.Mini.FlushAll()

	out := e.Process(event(t, "order", sub, ""))
	testevents.WantOutcome(t, out, events.Final, "")
	if out.Reply.AccountIdentifier != id {
		t.Errorf("accountIdentifier = %s, want the first ORDER's %s", out.Reply.AccountIdentifier, id)
	}
	// The copy's Enrollment is refused (the logon is taken) and the lookup
	// after it finds the user ours; Helix's add answers "already entitled".
	if e.enrollments() != 2 || e.users() != 1 || e.entitlements() != 1 || e.helix.count(routeAdd) != 2 {
		t.Errorf("enrollment calls %d, users %d, entitlements %d, adds %d; want 2, 1, 1, 2",
			e.enrollments(), e.users(), e.entitlements(), e.helix.count(routeAdd))
	}
	if a := e.Account(sub); !a.Active() || len(a.Steps) != 2 || e.customer(sub) != cust {
		t.Errorf("account rebuilt = %+v", a)
	}
}

// TestPlanCancelAfterRedisForgot: a CANCEL with nothing recorded finds the
// Q2 user, names the entitlement from its configuration and that user's
// customer, and removes both.
func TestPlanCancelAfterRedisForgot(t *testing.T) {
	t.Parallel()
	e := newPlanEnv(t)
	sub := "sub-cancel-forgot"
	id := e.Process(event(t, "order", sub, "")).Reply.AccountIdentifier
	cust := e.customer(sub)
	e.Mini.FlushAll()

	testevents.WantOutcome(t, e.Process(event(t, "cancel", sub, id)), events.Final, "")
	if _, held := e.helix.part.Entitlement(account, cust); held || e.users() != 0 || e.helix.count(routeRemove) != 1 {
		t.Fatalf("entitlement held %v, users %d, removes %d", held, e.users(), e.helix.count(routeRemove))
	}
	testevents.WantOutcome(t, e.Process(event(t, "order", sub, "")), events.Final, events.Forbidden)
	if e.entitlements() != 0 || e.helix.count(routeAdd) != 1 {
		t.Error("a late ORDER entitled again")
	}
}

// TestPlanFinalFailureUndoesQ2: a final refusal at the helix step undoes
// the Q2 enrollment and answers the refusal.
func TestPlanFinalFailureUndoesQ2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(e *planEnv, ev *events.SubscriptionEvent)
		code  events.ErrorCode
		says  string
		adds  int
	}{
		{"Helix: invalid account (195109)", func(e *planEnv, _ *events.SubscriptionEvent) {
			e.helix.failNext(routeAdd, 1, fault{code: 195109})
		}, events.AccountNotFound, "195109", 1},
		{"Helix: customer unrelated to the business (195117)", func(e *planEnv, _ *events.SubscriptionEvent) {
			e.helix.failNext(routeAdd, 1, fault{code: 195117})
		}, events.Forbidden, "195117", 1},
		{"no accountId in the configuration", func(_ *planEnv, ev *events.SubscriptionEvent) {
			delete(ev.Event.Payload.Configuration, "accountId")
		}, events.ConfigurationError, "payload.configuration.accountId is missing", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newPlanEnv(t)
			ev := event(t, "order", "sub-final", "")
			tc.setup(e, ev)
			out := e.Process(ev)
			testevents.WantOutcome(t, out, events.Final, tc.code)
			if !strings.Contains(out.Reply.Message, tc.says) {
				t.Errorf("message %q does not say %q", out.Reply.Message, tc.says)
			}
			if e.users() != 0 || e.enrollments() != 1 || e.Q2.Sandbox.Stats().Calls["DeleteUser"] != 1 {
				t.Errorf("the Q2 enrollment was not undone: %+v", e.Q2.Sandbox.Stats())
			}
			if e.entitlements() != 0 || e.helix.count(routeAdd) != tc.adds {
				t.Errorf("entitlements %d, adds %d; want 0 and %d", e.entitlements(), e.helix.count(routeAdd), tc.adds)
			}
		})
	}
}

// TestPlanLockedAccountUndoesQ2: 195104 (the account is locked) on an
// ORDER is final: the Q2 enrollment of step 1 is undone and FORBIDDEN is
// answered and stored, so no Q2 user stays behind an order the marketplace
// takes as failed.
func TestPlanLockedAccountUndoesQ2(t *testing.T) {
	t.Parallel()
	e := newPlanEnv(t)
	sub := "sub-locked"
	e.helix.failNext(routeAdd, 1, fault{code: 195104})
	out := e.Process(event(t, "order", sub, ""))
	testevents.WantOutcome(t, out, events.Final, events.Forbidden)
	if e.users() != 0 || e.enrollments() != 1 || e.entitlements() != 0 {
		t.Fatalf("after the refusal: users %d, enrollments %d, entitlements %d; want 0, 1, 0", e.users(), e.enrollments(), e.entitlements())
	}
}

// TestPlanRateLimited: a 429 whose Retry-After is longer than the client
// waits answers transient with Helix's wait; a later copy succeeds without
// a second enrollment.
func TestPlanRateLimited(t *testing.T) {
	t.Parallel()
	e := newPlanEnv(t)
	sub := "sub-429"
	e.helix.failNext(routeAdd, 1, fault{status: 429, retryAfter: "30"})
	out := e.Process(event(t, "order", sub, ""))
	testevents.WantOutcome(t, out, events.Transient, events.TransportError)
	if out.RetryAfter != 30*time.Second {
		t.Errorf("RetryAfter = %v, want Helix's 30s", out.RetryAfter)
	}
	out = e.Process(event(t, "order", sub, ""))
	testevents.WantOutcome(t, out, events.Final, "")
	if e.enrollments() != 1 || e.helix.count(routeAdd) != 2 || e.helix.level(account, e.customer(sub)) != "RDONLY" {
		t.Errorf("enrollments %d, adds %d, Helix %q", e.enrollments(), e.helix.count(routeAdd), e.helix.level(account, e.customer(sub)))
	}
}

// TestFixtureStory plays fixtures/business-access (the replay story) on
// the plan and checks each reply against its NAME.expect.json.
func TestFixtureStory(t *testing.T) {
	t.Parallel()
	const dir = "../../fixtures/business-access"
	e := newPlanEnv(t)
	sent := testevents.Story(t, dir, e.Process)
	for _, ev := range sent {
		if ev.ExtensionName != businessAccess {
			t.Errorf("%s: extension %q, want %q", ev.SubscriptionID, ev.ExtensionName, businessAccess)
		}
	}
	played := len(sent)
	if played != 3 || e.entitlements() != 0 || e.users() != 0 || e.helix.count(routeEdit) != 1 {
		t.Errorf("played %d, entitlements %d, users %d, edits %d; want 3 steps ending with nothing live and one edit",
			played, e.entitlements(), e.users(), e.helix.count(routeEdit))
	}
}
