package qbdconnect_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2"
	"github.com/banking-marketplace/webhook/internal/qbdconnect"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdsandbox"
	"github.com/banking-marketplace/webhook/internal/testevents"
	"github.com/banking-marketplace/webhook/internal/testplan"
)

// plan is the service of one product, "qbd", on miniredis: its targets
// are qbd_connect, after q2 when withQ2.
type plan struct {
	*qbd
	*testplan.Env
	t *testing.T
}

func newPlan(t *testing.T, withQ2 bool) *plan {
	t.Helper()
	p := &plan{qbd: newQBD(t), t: t}
	cfg := testplan.Config{Product: "qbd", Targets: []provisioning.Target{p.target}}
	if withQ2 {
		cfg.Q2 = &q2.Settings{}
	}
	p.Env = testplan.New(t, cfg)
	return p
}

// TestStory: ORDER creates the customer and its subscription once, CHANGE
// follows the quantity, CANCEL deletes the instances and leaves the
// subscription canceled with quantity 0.
func TestStory(t *testing.T) {
	t.Parallel()
	p := newPlan(t, false)
	const sub = "sub-story"

	out := p.Process(testevents.Order(t, sub))
	testevents.WantOutcome(t, out, events.Final, "")
	id := out.Reply.AccountIdentifier
	cu, err := p.client.FindCustomer(context.Background(), qbdconnect.GatewayCustomerID(sub))
	if err != nil || cu.ID != id {
		t.Fatalf("accountIdentifier %q; the customer is %+v, %v", id, cu, err)
	}
	a := p.Account(sub)
	if !a.Active() || a.AccountIdentifier != id || len(a.Steps) != 1 || a.Steps[0].Target != qbdconnect.Name || a.Steps[0].ID != id {
		t.Fatalf("account after ORDER = %+v", a)
	}
	sid := subscriptionOf(a.Steps[0])
	if st := p.stats(); st != (qbdsandbox.Stats{Customers: 1, Subscriptions: 1, Quantity: 2}) {
		t.Fatalf("after ORDER: %+v", st)
	}

	// A copy of the ORDER answers the same, and creates nothing.
	out = p.Process(testevents.Order(t, sub))
	testevents.WantOutcome(t, out, events.Final, "")
	if out.Reply.AccountIdentifier != id || p.count(routeCreateCustomer) != 1 || p.count(routeCreateSub) != 1 {
		t.Fatalf("second ORDER = %+v; %d customer and %d subscription creates", out.Reply, p.count(routeCreateCustomer), p.count(routeCreateSub))
	}

	testevents.WantOutcome(t, p.Process(testevents.Change(t, sub, id)), events.Final, "")
	if got := p.subscription(sid); got.Quantity != 4 || got.Status != qbdapi.StatusActive {
		t.Fatalf("subscription after CHANGE = %+v; want quantity 4", got)
	}

	p.addInstance(id)
	p.addInstance(id)
	out = p.Process(testevents.Cancel(t, sub, id))
	testevents.WantOutcome(t, out, events.Final, "")
	if got := p.subscription(sid); got.Status != qbdapi.StatusCanceled || got.Quantity != 0 {
		t.Errorf("subscription after CANCEL = %+v; want canceled, quantity 0", got)
	}
	if st := p.stats(); st != (qbdsandbox.Stats{Customers: 1}) {
		t.Errorf("after CANCEL: %+v; want no live subscription and no instance", st)
	}
	if a := p.Account(sub); a.Status != events.AccountCancelled || a.Steps[0].State != events.StepUndone {
		t.Errorf("account after CANCEL = %+v", a)
	}
	// Later events of the cancelled subscription are refused.
	testevents.WantOutcome(t, p.Process(testevents.Change(t, sub, id)), events.Final, events.AccountNotFound)
	testevents.WantOutcome(t, p.Process(testevents.Order(t, sub)), events.Final, events.Forbidden)
	if p.count(routeCreateCustomer) != 1 || p.count(routeCreateSub) != 1 {
		t.Error("a late ORDER created something")
	}
}

// TestRedisForgot: with Redis emptied, QBD Connect alone tells what the
// subscription is: provisioned (the same answer, nothing new), cancelled
// (a late ORDER is refused), or provisioned and now cancelled.
func TestRedisForgot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before func(p *plan, sub string) // before the flush
		ev     func(t *testing.T, sub string) *events.SubscriptionEvent
		code   events.ErrorCode
		live   int // live subscriptions after
	}{
		{"a copy of the ORDER", func(p *plan, sub string) {}, func(t *testing.T, sub string) *events.SubscriptionEvent { return testevents.Order(t, sub) }, "", 1},
		{"a late ORDER after a CANCEL", func(p *plan, sub string) {
			testevents.WantOutcome(p.t, p.Process(testevents.Cancel(p.t, sub, "")), events.Final, "")
		}, func(t *testing.T, sub string) *events.SubscriptionEvent { return testevents.Order(t, sub) }, events.Forbidden, 0},
		{"a CANCEL", func(p *plan, sub string) {}, func(t *testing.T, sub string) *events.SubscriptionEvent { return testevents.Cancel(t, sub, "") }, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := newPlan(t, false)
			const sub = "sub-forgot"
			out := p.Process(testevents.Order(t, sub))
			testevents.WantOutcome(t, out, events.Final, "")
			id := out.Reply.AccountIdentifier
			tt.before(p, sub)
			p.Mini.FlushAll()

			out = p.Process(tt.ev(t, sub))
			testevents.WantOutcome(t, out, events.Final, tt.code)
			if tt.code == "" && out.Reply.AccountIdentifier != id {
				t.Errorf("accountIdentifier = %q, want the customer's %q", out.Reply.AccountIdentifier, id)
			}
			if st := p.stats(); st.Customers != 1 || st.Subscriptions != tt.live || p.count(routeCreateCustomer) != 1 || p.count(routeCreateSub) != 1 {
				t.Errorf("stats %+v, %d customer and %d subscription creates; want one each and %d live", st,
					p.count(routeCreateCustomer), p.count(routeCreateSub), tt.live)
			}
			a := p.Account(sub)
			if (tt.code == "" && a.AccountIdentifier != id) || (tt.live == 1) != a.Active() || (tt.live == 0) != (a.Status == events.AccountCancelled) {
				t.Errorf("account recorded again = %+v", a)
			}
		})
	}
}

// TestTransientCreateSubscription: a 503 on POST /subscriptions answers
// "try again"; the copy finds the customer and creates only the
// subscription.
func TestTransientCreateSubscription(t *testing.T) {
	t.Parallel()
	p := newPlan(t, false)
	const sub = "sub-transient"
	p.fail(routeCreateSub, fault{status: 503})

	out := p.Process(testevents.Order(t, sub))
	testevents.WantOutcome(t, out, events.Transient, events.TransportError)
	if st := p.stats(); st.Customers != 1 || st.Subscriptions != 0 {
		t.Fatalf("after the 503: %+v", st)
	}
	out = p.Process(testevents.Order(t, sub))
	testevents.WantOutcome(t, out, events.Final, "")
	if st := p.stats(); st.Customers != 1 || st.Subscriptions != 1 || p.count(routeCreateCustomer) != 1 {
		t.Errorf("after the copy: %+v, %d customer creates; want one customer and one subscription", st, p.count(routeCreateCustomer))
	}
	if out.Reply.AccountIdentifier != p.Account(sub).AccountIdentifier || out.Reply.AccountIdentifier == "" {
		t.Errorf("reply %+v", out.Reply)
	}
}

// TestRefusedOrderLeavesNothing: an order without an address is refused
// before anything is created in QBD Connect, and a Q2 user enrolled by an
// earlier step of the plan is deleted.
func TestRefusedOrderLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, withQ2 := range []bool{false, true} {
		name := "qbd_connect"
		if withQ2 {
			name = "q2, qbd_connect"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newPlan(t, withQ2)
			const sub = "sub-no-address"
			ev := testevents.Order(t, sub)
			ev.Event.Creator.Address = nil

			out := p.Process(ev)
			testevents.WantOutcome(t, out, events.Final, events.ConfigurationError)
			if !strings.Contains(out.Reply.Message, "event.creator.address") {
				t.Errorf("message %q does not name the field", out.Reply.Message)
			}
			if st := p.stats(); st.Customers != 0 || p.count(routeCreateCustomer) != 0 {
				t.Errorf("QBD Connect after the refusal: %+v, %d creates", st, p.count(routeCreateCustomer))
			}
			// No account, or (after the q2 step was recorded and undone) one
			// with no step left and nothing provisioned.
			if a, err := p.DB.Account(context.Background(), sub); !errors.Is(err, events.ErrNotFound) &&
				(err != nil || slices.ContainsFunc(a.Steps, func(s events.Step) bool { return s.State.MayExist() }) || a.Active()) {
				t.Errorf("account after the refusal: %+v, %v; want none provisioned", a, err)
			}
			if !withQ2 {
				return
			}
			if st := p.Q2.Sandbox.Stats(); st.Calls["Enrollment"] != 1 || st.Calls["DeleteUser"] != 1 || st.Users != 0 {
				t.Errorf("Q2 after the refusal: %+v; want the enrolled user deleted", st)
			}
		})
	}
}

// TestFixtureStory sends fixtures/qbd-story through the plan and checks
// each reply against its NAME.expect.json, as webhook replay would.
func TestFixtureStory(t *testing.T) {
	t.Parallel()
	p := newPlan(t, false)
	sent := len(testevents.Story(t, filepath.Join("..", "..", "fixtures", "qbd-story"), p.Process))
	if sent != 4 {
		t.Errorf("sent %d fixtures, want the story's 4", sent)
	}
	if st := p.stats(); st != (qbdsandbox.Stats{Customers: 1}) || p.count(routeCreateSub) != 1 {
		t.Errorf("after the story: %+v", st)
	}
	if cu, err := p.client.FindCustomer(context.Background(), qbdconnect.GatewayCustomerID("7b1e4c2a-5d3f-4e8a-9c61-2f0d8a4b3e17")); err != nil || cu.Address.State != "CO" {
		t.Errorf("the story's customer: %+v, %v; want state Colorado as CO", cu, err)
	}
}
