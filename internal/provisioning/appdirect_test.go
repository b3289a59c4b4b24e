package provisioning_test

import (
	"fmt"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/testevents"
)

// The event types AppDirect sends when it calls the service directly,
// over the Q2 sandbox: notices, and users assigned and unassigned.

func notice(t *testing.T, sub, id, kind string) *events.SubscriptionEvent {
	t.Helper()
	ev := testevents.Cancel(t, sub, id)
	ev.EventType, ev.Event.Type = events.SubscriptionNotice, events.SubscriptionNotice
	ev.Event.Payload.Notice = &events.Notice{Type: kind}
	return ev
}

func assignment(t *testing.T, typ events.EventType, sub, id, user string) *events.SubscriptionEvent {
	t.Helper()
	ev := testevents.Cancel(t, sub, id)
	ev.EventType, ev.Event.Type = typ, typ
	ev.Event.Payload.User = &events.Person{UUID: user, FirstName: "Assigned", LastName: "User", Email: "assigned@example.com"}
	return ev
}

func TestNotices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	const sub = "sub-notice"
	id := e.Process(testevents.Order(t, sub)).Reply.AccountIdentifier
	steps := []struct {
		notice string
		code   events.ErrorCode
		status events.AccountStatus
	}{
		{events.NoticeDeactivated, "", events.AccountSuspended},
		{events.NoticeDeactivated, "", events.AccountSuspended},
		{events.NoticeUpcomingInvoice, "", events.AccountSuspended},
		{events.NoticeReactivated, "", events.AccountActive},
		{"SOMETHING_ELSE", events.ConfigurationError, events.AccountActive},
		{events.NoticeClosed, "", events.AccountCancelled},
		{events.NoticeReactivated, events.AccountNotFound, events.AccountCancelled},
	}
	for _, st := range steps {
		wantOutcome(t, e.Process(notice(t, sub, id, st.notice)), 200, st.code, true)
		if a := e.Account(sub); a.Status != st.status {
			t.Fatalf("after %s: status %s, want %s", st.notice, a.Status, st.status)
		}
	}
	if e.liveUsers() != 0 || e.calls("Enrollment") != 1 {
		t.Errorf("after CLOSED: %d live users, %d enrollments; want 0 and 1", e.liveUsers(), e.calls("Enrollment"))
	}
	wantOutcome(t, e.Process(notice(t, "sub-unknown", "", events.NoticeDeactivated)), 200, events.AccountNotFound, true)
}

func TestUserAssignment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	const sub = "sub-users"
	order := testevents.Order(t, sub)
	order.Event.Payload.Order.Items = []events.Item{{Unit: "USER", Quantity: 3}}
	id := e.Process(order).Reply.AccountIdentifier

	wantOutcome(t, e.Process(assignment(t, events.UserAssignment, sub, id, "u-1")), 200, "", true)
	if e.liveUsers() != 2 {
		t.Fatalf("%d live users after one assignment, want 2", e.liveUsers())
	}
	// Processed again (its stored reply lost): the same user, not another.
	wantOutcome(t, e.Process(assignment(t, events.UserAssignment, sub, id, "u-1")), 200, events.UserAlreadyExists, true)
	wantOutcome(t, e.Process(assignment(t, events.UserAssignment, sub, id, "u-2")), 200, "", true)
	wantOutcome(t, e.Process(assignment(t, events.UserAssignment, sub, id, "u-3")), 200, events.MaxUsersReached, true)
	if e.liveUsers() != 3 || e.calls("Enrollment") != 3 {
		t.Fatalf("%d live users, %d enrollments; want 3 and 3", e.liveUsers(), e.calls("Enrollment"))
	}
	wantOutcome(t, e.Process(assignment(t, events.UserUnassignment, sub, id, "u-1")), 200, "", true)
	wantOutcome(t, e.Process(assignment(t, events.UserUnassignment, sub, id, "u-1")), 200, events.UserNotFound, true)
	wantOutcome(t, e.Process(assignment(t, events.UserUnassignment, sub, id, "nobody")), 200, events.UserNotFound, true)
	if e.liveUsers() != 2 {
		t.Fatalf("%d live users after an unassignment, want 2", e.liveUsers())
	}
	// Now there is room again; and a CANCEL removes every user.
	wantOutcome(t, e.Process(assignment(t, events.UserAssignment, sub, id, "u-3")), 200, "", true)
	wantOutcome(t, e.Process(testevents.Cancel(t, sub, id)), 200, "", true)
	if e.liveUsers() != 0 {
		t.Fatalf("%d live users after the CANCEL, want 0", e.liveUsers())
	}
	if a := e.Account(sub); !a.Settled() {
		t.Errorf("account not settled after the CANCEL: %+v", a.Members)
	}
	wantOutcome(t, e.Process(assignment(t, events.UserAssignment, sub, id, "u-9")), 200, events.AccountNotFound, true)
	noUser := assignment(t, events.UserAssignment, sub, id, "")
	wantOutcome(t, e.Process(noUser), 200, events.UserNotFound, true)
}

// The purchased USER quantity caps the users (the ORDER's own and the
// assigned ones); a quantity of 0, like no USER item, is no cap: AppDirect
// sends 0 (or leaves it out) for an edition that is not sold per user.
func TestUserLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		items []events.Item
		want  []events.ErrorCode // the answers to assigning u-1, u-2, u-3
	}{
		{"no items", nil, []events.ErrorCode{"", "", ""}},
		{"another unit", []events.Item{{Unit: "GIGABYTE", Quantity: 1}}, []events.ErrorCode{"", "", ""}},
		{"USER 0: not per user", []events.Item{{Unit: "USER", Quantity: 0}}, []events.ErrorCode{"", "", ""}},
		{"user 0, in lower case", []events.Item{{Unit: "user", Quantity: 0}}, []events.ErrorCode{"", "", ""}},
		{"USER 1: the ORDER's own", []events.Item{{Unit: "USER", Quantity: 1}}, []events.ErrorCode{events.MaxUsersReached, events.MaxUsersReached, events.MaxUsersReached}},
		{"USER 2", []events.Item{{Unit: "GIGABYTE", Quantity: 9}, {Unit: "USER", Quantity: 2}}, []events.ErrorCode{"", events.MaxUsersReached, events.MaxUsersReached}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			const sub = "sub-limit"
			order := testevents.Order(t, sub)
			order.Event.Payload.Order.Items = tc.items
			id := e.Process(order).Reply.AccountIdentifier
			for i, want := range tc.want {
				user := fmt.Sprintf("u-%d", i+1)
				wantOutcome(t, e.Process(assignment(t, events.UserAssignment, sub, id, user)), 200, want, true)
			}
		})
	}
}

// A STATELESS event (AppDirect's ping) is answered success with no side
// effect. An AppDirect ORDER's success carries the identifier AppDirect
// keeps as the account's: never empty (an empty one could be taken as the
// account id), never another subscription's (even one its payload names);
// it is the ping's own subscription id, derived from its own event token,
// under which nothing exists. Other events, and the Q2 door's, answer the
// event's own accountIdentifier, as before.
func TestStatelessAccountIdentifier(t *testing.T) {
	t.Parallel()
	const own = "ad-00112233445566778899aabbccddeeff"
	for _, tc := range []struct {
		name      string
		typ       events.EventType
		appdirect bool   // AppDirect's own door (AccountIsSubscription)
		named     string // payload.account.accountIdentifier
		want      string
	}{
		{"AppDirect ORDER", events.SubscriptionOrder, true, "", own},
		{"AppDirect ORDER naming an account", events.SubscriptionOrder, true, "ad-ffeeddccbbaa99887766554433221100", own},
		{"AppDirect CHANGE", events.SubscriptionChange, true, "ad-ffeeddccbbaa99887766554433221100", "ad-ffeeddccbbaa99887766554433221100"},
		{"Q2 door ORDER", events.SubscriptionOrder, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			ev := testevents.Order(t, own)
			ev.EventType, ev.Event.Type = tc.typ, tc.typ
			ev.Event.Flag = events.FlagStateless
			ev.AccountIsSubscription = tc.appdirect
			if tc.named != "" {
				ev.Event.Payload.Account = &events.AccountRef{AccountIdentifier: tc.named}
			}
			out := e.Process(ev)
			wantOutcome(t, out, 200, "", true)
			if got := out.Reply.AccountIdentifier; got != tc.want {
				t.Errorf("accountIdentifier %q, want %q", got, tc.want)
			}
			if out.Calls != 0 || len(e.Mini.Keys()) != 0 {
				t.Errorf("STATELESS had side effects: %d calls, keys %v", out.Calls, e.Mini.Keys())
			}
		})
	}
}
