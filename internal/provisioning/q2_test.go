package provisioning_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/store"
	"github.com/banking-marketplace/webhook/internal/testevents"
	"github.com/banking-marketplace/webhook/internal/testplan"
)

// env is the service of one product, "default", provisioning Q2, on
// miniredis and a Q2 sandbox behind real HTTP.
type env struct {
	*testplan.Env
	t *testing.T
}

// envConfig tunes an env: the product's Q2 settings and the lock's wait.
type envConfig struct {
	cancelDeletes q2.CancelDeletes
	lockWait      time.Duration
}

// newService is the service of "default" provisioning Q2 through api, with
// its accounts in accounts: a test hands it a failing one of either.
func newService(t *testing.T, accounts provisioning.Accounts, api q2.API, cfg envConfig) *provisioning.Service {
	t.Helper()
	target, err := q2.New(api, q2.Settings{CancelDeletes: cfg.cancelDeletes})
	if err != nil {
		t.Fatal(err)
	}
	return testplan.NewService(t, accounts, "default", cfg.lockWait, target)
}

func newEnv(t *testing.T, cfg envConfig) *env {
	t.Helper()
	return &env{t: t, Env: testplan.New(t, testplan.Config{Product: "default",
		Q2: &q2.Settings{CancelDeletes: cfg.cancelDeletes}, LockWait: cfg.lockWait})}
}

func (e *env) calls(route string) int { return e.Q2.Sandbox.Stats().Calls[route] }

func (e *env) fault(f sandbox.Fault) {
	e.t.Helper()
	if err := e.Q2.Sandbox.SetFault(f); err != nil {
		e.t.Fatal(err)
	}
}

// wantOutcome checks an outcome by the HTTP status it is answered with
// (200 final or not, 503, 409) and its code ("" for a success).
func wantOutcome(t *testing.T, got events.Outcome, status int, code events.ErrorCode, final bool) {
	t.Helper()
	kind := map[int]events.Kind{200: events.NotStored, 503: events.Transient, 409: events.Busy}[status]
	if status == 200 && final {
		kind = events.Final
	}
	testevents.WantOutcome(t, got, kind, code)
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	sub := "sub-lifecycle"

	out := e.Process(testevents.Order(t, sub))
	wantOutcome(t, out, 200, "", true)
	id := out.Reply.AccountIdentifier
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		t.Fatalf("accountIdentifier %q is not a decimal Q2 UserID", id)
	}
	a := e.Account(sub)
	if a.AccountIdentifier != id || a.Intent.Edition != "BASIC" || a.Intent.Items[0].Quantity != 5 || !a.Active() || len(a.Steps) != 1 || a.Steps[0].Target != "q2" || a.Steps[0].ID != id {
		t.Fatalf("account after ORDER = %+v", a)
	}
	users, err := e.Q2.Client.LookupUser(context.Background(), q2api.UserQuery{LoginName: q2.LogonName(sub)})
	if err != nil || len(users) != 1 || strconv.FormatInt(users[0].UserID, 10) != id {
		t.Fatalf("Q2 user for the logon = %+v, %v", users, err)
	}

	// A second ORDER for the provisioned subscription answers the same id.
	out = e.Process(testevents.Order(t, sub))
	wantOutcome(t, out, 200, "", true)
	if out.Reply.AccountIdentifier != id || e.calls("Enrollment") != 1 {
		t.Fatalf("second ORDER = %+v with %d enrollments", out.Reply, e.calls("Enrollment"))
	}

	// CHANGE by accountIdentifier records the new edition and quantities.
	wantOutcome(t, e.Process(testevents.Change(t, sub, id)), 200, "", true)
	if a := e.Account(sub); a.Intent.Edition != "PREMIUM" || a.Intent.PricingDuration != "YEARLY" || a.Intent.Items[0].Quantity != 10 {
		t.Fatalf("account after CHANGE = %+v", a)
	}

	// CANCEL deletes the Q2 user and marks the account cancelled.
	wantOutcome(t, e.Process(testevents.Cancel(t, sub, id)), 200, "", true)
	if st := e.Q2.Sandbox.Stats(); st.Users != 0 || st.Calls["DeleteUser"] != 1 {
		t.Fatalf("after CANCEL: %+v", st)
	}
	if a := e.Account(sub); a.Status != events.AccountCancelled || a.CancelledAt == nil {
		t.Fatalf("account after CANCEL = %+v", a)
	}

	// Cancelling again changes nothing and deletes nothing.
	wantOutcome(t, e.Process(testevents.Cancel(t, sub, id)), 200, "", true)
	if e.calls("DeleteUser") != 1 {
		t.Fatal("a second CANCEL called Q2")
	}
	// A CHANGE of the cancelled account, and a late ORDER, are refused.
	wantOutcome(t, e.Process(testevents.Change(t, sub, id)), 200, events.AccountNotFound, true)
	wantOutcome(t, e.Process(testevents.Order(t, sub)), 200, events.Forbidden, true)
	if e.calls("Enrollment") != 1 || e.Q2.Sandbox.Stats().Users != 0 {
		t.Fatal("a late ORDER enrolled again")
	}
}

func TestAccountFoundBySubscriptionOrIdentifier(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	id := e.Process(testevents.Order(t, "sub-a")).Reply.AccountIdentifier

	tests := []struct {
		name     string
		ev       *events.SubscriptionEvent
		wantCode events.ErrorCode
	}{
		{"by subscription, identifier unknown", testevents.Change(t, "sub-a", "ACCOUNT-ID-FROM-ORDER"), ""},
		{"by subscription, no identifier", testevents.Change(t, "sub-a", ""), ""},
		// An event never touches a subscription other than its own.
		{"by identifier, other subscription id", testevents.Change(t, "sub-other", id), events.Forbidden},
		{"unknown change", testevents.Change(t, "sub-unknown", "nope"), events.AccountNotFound},
		{"unknown cancel", testevents.Cancel(t, "sub-unknown", ""), events.AccountNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantOutcome(t, e.Process(tt.ev), 200, tt.wantCode, true)
		})
	}
}

func TestOrderRecognisesItsOwnEnrollment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before func(e *env, sub string) // what happened before the ORDER copy arrives
	}{
		{"reply lost after Q2 enrolled", func(e *env, sub string) {
			// Enroll exactly as the service would, but record nothing.
			if err := e.Q2.Client.Enroll(context.Background(), q2api.Enrollment{
				LogonName: q2.LogonName(sub), FirstName: "John", LastName: "Doe", UserInfo: q2.Marker(sub),
			}); err != nil {
				e.t.Fatal(err)
			}
		}},
		{"redis lost everything after an answered ORDER", func(e *env, sub string) {
			wantOutcome(e.t, e.Process(testevents.Order(e.t, sub)), 200, "", true)
			e.Mini.FlushAll()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			sub := "sub-own"
			tt.before(e, sub)
			users, _ := e.Q2.Client.LookupUser(context.Background(), q2api.UserQuery{LoginName: q2.LogonName(sub)})
			out := e.Process(testevents.Order(t, sub))
			wantOutcome(t, out, 200, "", true)
			if want := strconv.FormatInt(users[0].UserID, 10); out.Reply.AccountIdentifier != want {
				t.Errorf("accountIdentifier = %s, want the existing user's %s", out.Reply.AccountIdentifier, want)
			}
			// The copy's Enrollment is refused (the logon is taken), and the
			// lookup after it finds the user ours: still one user.
			if st := e.Q2.Sandbox.Stats(); st.Users != 1 || st.Customers != 1 {
				t.Errorf("users %d, customers %d; want 1 and 1", st.Users, st.Customers)
			}
		})
	}
}

func TestOrderRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})

	// Q2 holds the derived logon for somebody else.
	taken := "sub-taken"
	if err := e.Q2.Client.Enroll(context.Background(), q2api.Enrollment{LogonName: q2.LogonName(taken), FirstName: "Someone", LastName: "Else", UserInfo: "not ours"}); err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, e.Process(testevents.Order(t, taken)), 200, events.UserAlreadyExists, true)
	if a, err := e.DB.Account(context.Background(), taken); err != nil || a.Status != events.AccountFailed || a.Steps[0].State != events.StepPending || a.Intent.Code != events.UserAlreadyExists {
		t.Errorf("a refused ORDER recorded %+v, %v; want a FAILED account with its refusal and nothing live", a, err)
	}
	// A later ORDER of it (a copy whose stored reply was lost) gets the same refusal.
	wantOutcome(t, e.Process(testevents.Order(t, taken)), 200, events.UserAlreadyExists, true)

	// No creator and no company: nobody to enroll.
	nobody := testevents.Order(t, "sub-nobody")
	nobody.Event.Creator, nobody.Event.Payload.Company = nil, nil
	wantOutcome(t, e.Process(nobody), 200, events.UserNotFound, true)

	// No creator but a company: the company is enrolled.
	company := testevents.Order(t, "sub-company")
	company.Event.Creator = nil
	wantOutcome(t, e.Process(company), 200, "", true)
}

func TestStatelessAndUnsupported(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ping := testevents.Order(t, "sub-ping")
	ping.Event.Flag = events.FlagStateless
	out := e.Process(ping)
	wantOutcome(t, out, 200, "", true)
	if out.Calls != 0 || len(e.Mini.Keys()) != 0 {
		t.Errorf("STATELESS had side effects: %d Q2 calls, keys %v", out.Calls, e.Mini.Keys())
	}
	// Every type the dispatch does not list is refused with no side
	// effect: nothing falls into a destructive default.
	for _, typ := range []events.EventType{"USER_UPDATED", "ACCOUNT_SYNC", "ADDON_ORDER", "subscription_cancel", ""} {
		ev := testevents.Order(t, "sub-notice")
		ev.EventType, ev.Event.Type = typ, typ
		out := e.Process(ev)
		wantOutcome(t, out, 200, events.ConfigurationError, true)
		if out.Calls != 0 || len(e.Mini.Keys()) != 0 {
			t.Errorf("%q had side effects: %d Q2 calls, keys %v", typ, out.Calls, e.Mini.Keys())
		}
	}
}

func TestTransientQ2Failures(t *testing.T) {
	t.Parallel()
	t.Run("order during an outage is 503, then succeeds once", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		e.fault(sandbox.Fault{Route: "LookupUser", Status: 503, Times: 10})
		wantOutcome(t, e.Process(testevents.Order(t, "sub-outage")), 503, events.TransportError, false)
		e.fault(sandbox.Fault{Route: "LookupUser", Times: 0})
		wantOutcome(t, e.Process(testevents.Order(t, "sub-outage")), 200, "", true)
		if e.Q2.Sandbox.Stats().Users != 1 {
			t.Errorf("users = %d, want 1", e.Q2.Sandbox.Stats().Users)
		}
	})
	t.Run("enrollment that fails is not retried blindly", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		e.fault(sandbox.Fault{Route: "Enrollment", Status: 502, Times: 1})
		wantOutcome(t, e.Process(testevents.Order(t, "sub-502")), 503, events.TransportError, false)
		if e.calls("Enrollment") != 1 {
			t.Errorf("Enrollment calls = %d, want 1", e.calls("Enrollment"))
		}
		wantOutcome(t, e.Process(testevents.Order(t, "sub-502")), 200, "", true)
	})
	t.Run("deadline during a slow enrollment is transient, the retry finds the user", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		e.fault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 300})
		ctx, cancelCtx := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancelCtx()
		out := e.Service.Process(ctx, testevents.Order(t, "sub-slow"), "default")
		wantOutcome(t, out, 503, events.TransportError, false)
		// The intent was recorded before the call, and the step as
		// "unknown": the call may have done its work.
		if a, err := e.DB.Account(context.Background(), "sub-slow"); err != nil || a.Status != events.AccountProvisioning || !a.Steps[0].State.MayExist() || a.Steps[0].State == events.StepLive {
			t.Fatalf("a timed-out ORDER recorded %+v, %v; want provisioning with the q2 step unknown", a, err)
		}
		time.Sleep(400 * time.Millisecond) // the sandbox completes the delayed enrollment
		wantOutcome(t, e.Process(testevents.Order(t, "sub-slow")), 200, "", true)
		if e.calls("Enrollment") != 1 || e.Q2.Sandbox.Stats().Users != 1 {
			t.Errorf("enrollments %d, users %d; want 1 and 1", e.calls("Enrollment"), e.Q2.Sandbox.Stats().Users)
		}
	})
	t.Run("cancel during an outage is DO_NOT_CANCEL, then succeeds", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		id := e.Process(testevents.Order(t, "sub-dnc")).Reply.AccountIdentifier
		e.fault(sandbox.Fault{Route: "DeleteUser", Status: 503, Times: 10})
		wantOutcome(t, e.Process(testevents.Cancel(t, "sub-dnc", id)), 200, events.DoNotCancel, false)
		if !e.Account("sub-dnc").Active() || e.Q2.Sandbox.Stats().Users != 1 {
			t.Fatal("a DO_NOT_CANCEL changed the account or the user")
		}
		e.fault(sandbox.Fault{Route: "DeleteUser", Times: 0})
		wantOutcome(t, e.Process(testevents.Cancel(t, "sub-dnc", id)), 200, "", true)
		if e.Q2.Sandbox.Stats().Users != 0 {
			t.Error("the user survived the cancel")
		}
	})
}

func TestCancelOfUserDeletedBehindOurBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	id := e.Process(testevents.Order(t, "sub-gone")).Reply.AccountIdentifier
	uid, _ := strconv.ParseInt(id, 10, 64)
	if err := e.Q2.Client.DeleteUser(context.Background(), uid); err != nil {
		t.Fatal(err)
	}
	wantOutcome(t, e.Process(testevents.Cancel(t, "sub-gone", id)), 200, "", true)
	if e.Account("sub-gone").Status != events.AccountCancelled {
		t.Error("account not cancelled")
	}
}

func TestCancelDeletesCustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{cancelDeletes: q2.DeleteCustomer})
	id := e.Process(testevents.Order(t, "sub-cust")).Reply.AccountIdentifier
	wantOutcome(t, e.Process(testevents.Cancel(t, "sub-cust", id)), 200, "", true)
	st := e.Q2.Sandbox.Stats()
	if st.Calls["DeleteCustomer"] != 1 || st.Calls["DeleteUser"] != 0 || st.Customers != 0 || st.Users != 0 {
		t.Errorf("stats after CANCEL_DELETES=customer: %+v", st)
	}
}

func TestQ2RefusesCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	srv := httptest.NewServer(e.Q2.Sandbox.Handler())
	defer srv.Close()
	bad, _ := q2api.New(srv.URL, q2api.WithCredentials("sandbox", "wrong"), q2api.WithRetry(1, time.Millisecond, time.Millisecond))
	svc := newService(t, e.DB, bad, envConfig{})
	out := svc.Process(context.Background(), testevents.Order(t, "sub-creds"), "default")
	// Our misconfiguration is not the subscription's fate: 503, so that
	// the marketplace sends it again once the credentials are fixed.
	wantOutcome(t, out, 503, events.TransportError, false)
	if !strings.Contains(out.Reply.Message, "credentials") {
		t.Errorf("the reply %q does not say what is wrong", out.Reply.Message)
	}
}

func TestLockedSubscriptionIsPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{lockWait: 50 * time.Millisecond})
	_, unlock, err := e.DB.Lock(context.Background(), "sub-busy", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := e.Process(testevents.Order(t, "sub-busy"))
	wantOutcome(t, out, http.StatusConflict, events.Pending, false)
	if out.RetryAfter <= 0 || e.calls("Enrollment") != 0 {
		t.Errorf("PENDING outcome %+v, %d enrollments", out, e.calls("Enrollment"))
	}
	unlock()
	wantOutcome(t, e.Process(testevents.Order(t, "sub-busy")), 200, "", true)
}

func TestStoreDownIsTransient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.Mini.Close()
	wantOutcome(t, e.Process(testevents.Order(t, "sub-down")), 503, events.TransportError, false)
	if e.calls("Enrollment") != 0 {
		t.Error("Q2 was called while Redis was down")
	}
}

// A CHANGE and a CANCEL of one subscription at the same moment: whatever
// order they run in, the account ends cancelled with its user deleted, and
// no CHANGE succeeds after the CANCEL.
func TestConcurrentChangeAndCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{lockWait: 2 * time.Second})
	for i := range 20 {
		sub := fmt.Sprintf("sub-race-%d", i)
		id := e.Process(testevents.Order(t, sub)).Reply.AccountIdentifier
		var wg sync.WaitGroup
		var changed, cancelled events.Outcome
		wg.Add(2)
		go func() { defer wg.Done(); changed = e.Process(testevents.Change(t, sub, id)) }()
		go func() { defer wg.Done(); cancelled = e.Process(testevents.Cancel(t, sub, id)) }()
		wg.Wait()
		wantOutcome(t, cancelled, 200, "", true)
		a := e.Account(sub)
		if a.Status != events.AccountCancelled {
			t.Fatalf("%s: account ends %s", sub, a.Status)
		}
		switch {
		case changed.Reply.Success && a.Intent.Edition != "PREMIUM":
			t.Fatalf("%s: CHANGE succeeded but its edition was lost", sub)
		case !changed.Reply.Success && changed.Reply.ErrorCode != events.AccountNotFound:
			t.Fatalf("%s: CHANGE answered %+v", sub, changed.Reply)
		case !changed.Reply.Success && a.Intent.Edition != "BASIC":
			t.Fatalf("%s: a refused CHANGE altered the account", sub)
		}
	}
	if e.Q2.Sandbox.Stats().Users != 0 {
		t.Errorf("users left: %d", e.Q2.Sandbox.Stats().Users)
	}
}

func TestLogonNameAndPassword(t *testing.T) {
	t.Parallel()
	// A golden value: the logon must never change for a subscription, or
	// every retry after an upgrade would enroll a second user.
	if got, want := q2.LogonName("a"), "mpaad61e3d645200800410"; got != want {
		t.Errorf("LogonName(a) = %q, want %q", got, want)
	}
	if q2.LogonName("a") == q2.LogonName("b") {
		t.Error("two subscriptions share a logon")
	}
	if n := len(q2.LogonName("a3c9c831-e550-428f-b89c-43c5e7b338b9")); n != 22 {
		t.Errorf("logon length %d", n)
	}
}

func (e *env) liveUsers() int { return e.Q2.Sandbox.Stats().Users }

// Rule (issue 10.2): a CANCEL that overtakes its ORDER, or the lost reply of
// its Enrollment, never leaves a live user behind a cancelled subscription,
// and the late ORDER provisions nothing.
func TestCancelOvertakesOrder(t *testing.T) {
	t.Parallel()
	t.Run("cancel before any order", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		wantOutcome(t, e.Process(testevents.Cancel(t, "sub-first", "")), 200, events.AccountNotFound, true)
		if a := e.Account("sub-first"); a.Status != events.AccountCancelled {
			t.Fatalf("the cancel recorded %+v, want a cancelled account", a)
		}
		wantOutcome(t, e.Process(testevents.Order(t, "sub-first")), 200, events.Forbidden, true)
		if e.calls("Enrollment") != 0 || e.liveUsers() != 0 {
			t.Fatalf("the late ORDER enrolled: %+v", e.Q2.Sandbox.Stats())
		}
	})
	t.Run("cancel after the enrollment's reply was lost", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		e.fault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 300})
		ctx, cancelCtx := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancelCtx()
		wantOutcome(t, e.Service.Process(ctx, testevents.Order(t, "sub-lost"), "default"), 503, events.TransportError, false)
		time.Sleep(400 * time.Millisecond) // Q2 completes the enrollment whose reply was lost
		wantOutcome(t, e.Process(testevents.Cancel(t, "sub-lost", "")), 200, "", true)
		if e.liveUsers() != 0 || e.calls("DeleteUser") != 1 {
			t.Fatalf("after the CANCEL: %+v", e.Q2.Sandbox.Stats())
		}
		wantOutcome(t, e.Process(testevents.Order(t, "sub-lost")), 200, events.Forbidden, true)
		if e.calls("Enrollment") != 1 || e.liveUsers() != 0 {
			t.Fatalf("the ORDER's next copy provisioned again: %+v", e.Q2.Sandbox.Stats())
		}
	})
	t.Run("cancel while Q2 is still enrolling", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		e.fault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 500})
		ctx, cancelCtx := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancelCtx()
		wantOutcome(t, e.Service.Process(ctx, testevents.Order(t, "sub-race"), "default"), 503, events.TransportError, false)
		// Q2 has not created the user yet: the CANCEL finds nothing.
		wantOutcome(t, e.Process(testevents.Cancel(t, "sub-race", "")), 200, events.AccountNotFound, true)
		time.Sleep(600 * time.Millisecond) // now Q2 has the user
		if e.liveUsers() != 1 {
			t.Fatalf("setup: live users %d, want the late enrollment's 1", e.liveUsers())
		}
		wantOutcome(t, e.Process(testevents.Order(t, "sub-race")), 200, events.Forbidden, true)
		if e.liveUsers() != 0 || e.calls("Enrollment") != 1 {
			t.Fatalf("a live user stayed behind the cancelled subscription: %+v", e.Q2.Sandbox.Stats())
		}
	})
}

// Rule (issue 10.3): Q2 keeps a deleted user visible and its logon taken.
// After Redis lost its data, the subscription's own deleted user means "it
// was cancelled": a late ORDER answers FORBIDDEN and enrolls nothing.
func TestRedisForgotACancelledSubscription(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	id := e.Process(testevents.Order(t, "sub-forgot")).Reply.AccountIdentifier
	wantOutcome(t, e.Process(testevents.Cancel(t, "sub-forgot", id)), 200, "", true)
	e.Mini.FlushAll()

	// The ORDER's Enrollment is refused (the logon is taken by the
	// deleted user), and the lookup after it finds that user ours.
	wantOutcome(t, e.Process(testevents.Order(t, "sub-forgot")), 200, events.Forbidden, true)
	if e.Q2.Sandbox.Stats().Customers != 1 || e.liveUsers() != 0 {
		t.Fatalf("the late ORDER enrolled again: %+v", e.Q2.Sandbox.Stats())
	}
	if a := e.Account("sub-forgot"); a.Status != events.AccountCancelled || a.AccountIdentifier != id {
		t.Fatalf("the record rebuilt from Q2 = %+v, want cancelled with id %s", a, id)
	}
	// A copy of the CANCEL after the loss is a success, deleting nothing.
	e.Mini.FlushAll()
	wantOutcome(t, e.Process(testevents.Cancel(t, "sub-forgot", id)), 200, "", true)
	if e.calls("DeleteUser") != 1 {
		t.Fatalf("DeleteUser calls %d, want 1", e.calls("DeleteUser"))
	}
}

// failingIndex is a store whose accountIdentifier index is down.
type failingIndex struct{ *store.Redis }

func (failingIndex) AccountByIdentifier(context.Context, string) (events.Account, error) {
	return events.Account{}, fmt.Errorf("redis account index: %w", events.ErrUnavailable)
}

// Rule (issue 10.4): only "not found" falls back from the accountIdentifier
// to the subscription_id; a Redis error is a transient 503, never a stored
// ACCOUNT_NOT_FOUND.
func TestIndexLookupErrorIsTransient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	id := e.Process(testevents.Order(t, "sub-idx")).Reply.AccountIdentifier
	svc := newService(t, failingIndex{e.DB}, e.Q2.Client, envConfig{})
	for _, ev := range []*events.SubscriptionEvent{testevents.Cancel(t, "sub-other-id", id), testevents.Change(t, "sub-other-id", id)} {
		wantOutcome(t, svc.Process(context.Background(), ev, "default"), 503, events.TransportError, false)
	}
	if e.liveUsers() != 1 || !e.Account("sub-idx").Active() {
		t.Fatal("a failed index lookup changed something")
	}
}

// Rule (issue 10.6): a CHANGE older than the one applied (by the event's
// `created`) is answered success and not applied.
func TestLateChangeIsNotApplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	at := func(ev *events.SubscriptionEvent, s string) *events.SubscriptionEvent {
		ts, err := events.ParseTimestamp(s)
		if err != nil {
			t.Fatal(err)
		}
		ev.Created = &ts
		return ev
	}
	id := e.Process(at(testevents.Order(t, "sub-late"), "2026-01-01T10:00:00")).Reply.AccountIdentifier
	newer := at(testevents.Change(t, "sub-late", id), "2026-01-03T10:00:00") // PREMIUM, 10 users
	older := at(testevents.Change(t, "sub-late", id), "2026-01-02T10:00:00")
	older.Event.Payload.Order = &events.Order{EditionCode: "BASIC", Items: []events.Item{{Unit: "USER", Quantity: 2}}}
	wantOutcome(t, e.Process(newer), 200, "", true)
	wantOutcome(t, e.Process(older), 200, "", true)
	if a := e.Account("sub-late"); a.Intent.Edition != "PREMIUM" || a.Intent.Items[0].Quantity != 10 {
		t.Fatalf("a late CHANGE overwrote a newer one: %+v", a)
	}
	// Without a time, arrival order decides.
	older.Created = nil
	wantOutcome(t, e.Process(older), 200, "", true)
	if a := e.Account("sub-late"); a.Intent.Edition != "BASIC" {
		t.Fatalf("a CHANGE without a time was not applied: %+v", a)
	}
}

// recordingQ2 is the Q2 API that writes down, in order, every call the
// target makes through it.
type recordingQ2 struct {
	q2.API
	mu    sync.Mutex
	calls []string
	// loseEnrollReply: the next Enrollment is made, and its reply lost
	// (a transient error, as a timeout after Q2 did the work).
	loseEnrollReply bool
}

func (r *recordingQ2) note(call string) {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.mu.Unlock()
}

// take returns the calls written down since the last take.
func (r *recordingQ2) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := strings.Join(r.calls, ", ")
	r.calls = nil
	return out
}

func (r *recordingQ2) Enroll(ctx context.Context, e q2api.Enrollment) error {
	r.note("Enrollment")
	err := r.API.Enroll(ctx, e)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && r.loseEnrollReply {
		r.loseEnrollReply = false
		return fmt.Errorf("the reply was lost: %w", q2api.ErrTransient)
	}
	return err
}

func (r *recordingQ2) LookupUser(ctx context.Context, q q2api.UserQuery) ([]q2api.User, error) {
	r.note("LookupUser")
	return r.API.LookupUser(ctx, q)
}

func (r *recordingQ2) DeleteUser(ctx context.Context, id int64) error {
	r.note("DeleteUser")
	return r.API.DeleteUser(ctx, id)
}

// TestQ2CallsOfAnOrder counts and orders the Q2 calls of an ORDER: a first
// attempt makes two (Enrollment, whose taken-logon refusal stands in for a
// lookup before it, then the LookupUser that reads the ids Enrollment does
// not answer); an attempt after one whose Enrollment reply was lost starts
// with Find, whether that Enrollment landed or not; a logon held by
// another's user is still refused.
func TestQ2CallsOfAnOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// before runs first; its calls are not counted.
		before func(t *testing.T, e *env, rec *recordingQ2, svc *provisioning.Service, sub string)
		calls  string
		code   events.ErrorCode
	}{
		{"first attempt", nil, "Enrollment, LookupUser", ""},
		{"after an Enrollment refused with 502 (nothing landed)", func(t *testing.T, e *env, _ *recordingQ2, svc *provisioning.Service, sub string) {
			e.fault(sandbox.Fault{Route: "Enrollment", Status: http.StatusBadGateway, Times: 1})
			wantOutcome(t, svc.Process(context.Background(), testevents.Order(t, sub), "default"), 503, events.TransportError, false)
		}, "LookupUser, Enrollment, LookupUser", ""},
		{"after an Enrollment whose reply was lost (it landed)", func(t *testing.T, _ *env, rec *recordingQ2, svc *provisioning.Service, sub string) {
			rec.loseEnrollReply = true
			wantOutcome(t, svc.Process(context.Background(), testevents.Order(t, sub), "default"), 503, events.TransportError, false)
		}, "LookupUser", ""},
		{"the logon held by another's user", func(t *testing.T, e *env, _ *recordingQ2, _ *provisioning.Service, sub string) {
			if err := e.Q2.Client.Enroll(context.Background(), q2api.Enrollment{LogonName: q2.LogonName(sub), FirstName: "Someone", LastName: "Else", UserInfo: "not ours"}); err != nil {
				t.Fatal(err)
			}
		}, "Enrollment, LookupUser", events.UserAlreadyExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{})
			rec := &recordingQ2{API: e.Q2.Client}
			svc := newService(t, e.DB, rec, envConfig{})
			sub := "sub-calls"
			if tt.before != nil {
				tt.before(t, e, rec, svc, sub)
			}
			rec.take()
			out := svc.Process(context.Background(), testevents.Order(t, sub), "default")
			wantOutcome(t, out, 200, tt.code, true)
			if got := rec.take(); got != tt.calls {
				t.Errorf("Q2 calls %q; want %q", got, tt.calls)
			}
			if st := e.Q2.Sandbox.Stats(); st.Users != 1 {
				t.Errorf("%d users in Q2; want 1", st.Users)
			}
		})
	}
}
