package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/testevents"
)

// memAccounts is an in-memory Accounts with a fenced lock, as the use case
// needs it: the plan machinery is tested without Redis.
type memAccounts struct {
	mu       sync.Mutex
	accounts map[string]events.Account
	locks    map[string]string
	next     int
	failSave int // the next failSave saves fail (a crash or an outage between steps)
}

func newMemAccounts() *memAccounts {
	return &memAccounts{accounts: map[string]events.Account{}, locks: map[string]string{}}
}

func (m *memAccounts) Account(_ context.Context, sub string) (events.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[sub]
	if !ok {
		return a, events.ErrNotFound
	}
	return a, nil
}

func (m *memAccounts) AccountByIdentifier(_ context.Context, id string) (events.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.accounts {
		if a.AccountIdentifier == id {
			return a, nil
		}
	}
	return events.Account{}, events.ErrNotFound
}

func (m *memAccounts) SaveAccount(_ context.Context, token string, a events.Account) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[a.SubscriptionID] != token {
		return events.ErrLeaseLost
	}
	if m.failSave > 0 {
		m.failSave--
		return fmt.Errorf("save: %w", events.ErrUnavailable)
	}
	a.Steps = append([]events.Step(nil), a.Steps...)
	m.accounts[a.SubscriptionID] = a
	return nil
}

func (m *memAccounts) Lock(_ context.Context, sub string, _, _ time.Duration) (string, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[sub] != "" {
		return "", nil, events.ErrBusy
	}
	m.next++
	token := fmt.Sprint(m.next)
	m.locks[sub] = token
	return token, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.locks[sub] == token {
			delete(m.locks, sub)
		}
	}, nil
}

// fakeTarget is an outside system that keeps what it provisioned per
// subscription, counts its calls, and fails as told.
type fakeTarget struct {
	name string

	mu         sync.Mutex
	live, gone map[string]bool
	calls      map[string]int
	fail       map[string][]error // per method, the errors of its next calls
}

func newFake(name string) *fakeTarget {
	return &fakeTarget{name: name, live: map[string]bool{}, gone: map[string]bool{}, calls: map[string]int{}, fail: map[string][]error{}}
}

// failNext makes the next calls of method fail with errs, in order.
func (f *fakeTarget) failNext(method string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = append(f.fail[method], errs...)
}

func (f *fakeTarget) call(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
	if errs := f.fail[method]; len(errs) > 0 {
		f.fail[method] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *fakeTarget) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeTarget) isLive(sub string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live[sub]
}

func (f *fakeTarget) Name() string { return f.name }

func (f *fakeTarget) step(sub string) events.Step {
	return events.Step{Target: f.name, ID: f.name + "-" + sub}
}

func (f *fakeTarget) Find(_ context.Context, j *provisioning.Job) (events.Step, provisioning.Presence, error) {
	if err := f.call("Find"); err != nil {
		return events.Step{}, 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.live[j.Subscription]:
		return f.step(j.Subscription), provisioning.Live, nil
	case f.gone[j.Subscription]:
		return f.step(j.Subscription), provisioning.Gone, nil
	}
	return events.Step{}, provisioning.Absent, nil
}

func (f *fakeTarget) Provision(_ context.Context, j *provisioning.Job) (events.Step, error) {
	if err := f.call("Provision"); err != nil {
		return events.Step{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[j.Subscription] = true
	return f.step(j.Subscription), nil
}

func (f *fakeTarget) Change(_ context.Context, _ *provisioning.Job, s events.Step) (events.Step, error) {
	return s, f.call("Change")
}

func (f *fakeTarget) Deprovision(_ context.Context, j *provisioning.Job, _ events.Step) error {
	if err := f.call("Deprovision"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.live[j.Subscription] {
		f.live[j.Subscription], f.gone[j.Subscription] = false, true
	}
	return nil
}

var (
	outage  = provisioning.Outage("down", time.Second, errors.New("503"))
	refusal = provisioning.Refusal(events.Forbidden, "the account is locked", nil)
)

// twoSteps is a service whose one product provisions a then b.
func twoSteps(t *testing.T) (*provisioning.Service, *memAccounts, *fakeTarget, *fakeTarget) {
	t.Helper()
	accounts, a, b := newMemAccounts(), newFake("a"), newFake("b")
	svc, err := provisioning.New(accounts, []provisioning.Plan{{Product: "two", Targets: []provisioning.Target{a, b}}}, provisioning.Config{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return svc, accounts, a, b
}

func event(typ events.EventType, sub string) *events.SubscriptionEvent {
	return &events.SubscriptionEvent{EventType: typ, SubscriptionID: sub,
		Event: events.Event{Type: typ, Creator: &events.Person{FirstName: "Ann"}}}
}

func run(svc *provisioning.Service, typ events.EventType, sub string) events.Outcome {
	return svc.Process(context.Background(), event(typ, sub), "two")
}

// Rule: a transient failure at step 2 answers "try again"; the next copy
// resumes at step 2 and never repeats step 1.
func TestPlanResumesAfterATransientFailure(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	b.failNext("Provision", outage)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s1"), events.Transient, events.TransportError)
	if acct := accounts.accounts["s1"]; acct.Status != events.AccountProvisioning || len(acct.Steps) != 1 || acct.Steps[0].Target != "a" {
		t.Fatalf("after the failure the record is %+v; want step a recorded", acct)
	}
	out := run(svc, events.SubscriptionOrder, "s1")
	testevents.WantOutcome(t, out, events.Final, "")
	if out.Reply.AccountIdentifier != "a-s1" {
		t.Errorf("accountIdentifier %q, want the first step's id", out.Reply.AccountIdentifier)
	}
	if a.count("Provision") != 1 || a.count("Find") != 1 || b.count("Provision") != 2 {
		t.Fatalf("a provisioned %d times (found %d), b %d; want 1, 1, 2", a.count("Provision"), a.count("Find"), b.count("Provision"))
	}
	if acct := accounts.accounts["s1"]; !acct.Active() || len(acct.Steps) != 2 {
		t.Fatalf("account %+v", acct)
	}
}

// Rule: a final failure at step 2 undoes step 1 and answers the failure;
// nothing is left behind.
func TestPlanUndoesAfterAFinalFailure(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	b.failNext("Provision", refusal)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s2"), events.Final, events.Forbidden)
	if a.isLive("s2") || b.isLive("s2") || a.count("Deprovision") != 1 || b.count("Deprovision") != 0 {
		t.Fatalf("left behind: a live %v, b live %v; a undone %d times", a.isLive("s2"), b.isLive("s2"), a.count("Deprovision"))
	}
	if acct := accounts.accounts["s2"]; len(acct.Steps) != 0 || acct.Active() {
		t.Fatalf("record after the undo: %+v", acct)
	}
}

// Rule: when undoing fails, the order answers "try again" and the next
// copy finishes the undo before answering the failure.
func TestPlanUndoThatFailsIsFinishedByTheNextCopy(t *testing.T) {
	t.Parallel()
	svc, _, a, b := twoSteps(t)
	b.failNext("Provision", refusal, refusal)
	a.failNext("Deprovision", outage)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s3"), events.Transient, events.TransportError)
	if !a.isLive("s3") {
		t.Fatal("setup: a should still be live after its undo failed")
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s3"), events.Final, events.Forbidden)
	if a.isLive("s3") || a.count("Provision") != 1 {
		t.Fatalf("a live %v after %d provisions", a.isLive("s3"), a.count("Provision"))
	}
}

// Rule: a crash between a step and its record (here: the record fails)
// does not do the step twice: the next copy finds it.
func TestPlanFindsAStepItDidNotRecord(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	accounts.failSave = 1 // step a is done, its record is lost
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s4"), events.Transient, events.TransportError)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s4"), events.Final, "")
	if a.count("Provision") != 1 || b.count("Provision") != 1 {
		t.Fatalf("provisions: a %d, b %d; want 1 each", a.count("Provision"), b.count("Provision"))
	}
}

// Rule: a CANCEL undoes every step in reverse; a transient failure on the
// first undo answers DO_NOT_CANCEL and the next copy completes it.
func TestCancelOfTwoStepsResumes(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s5"), events.Final, "")
	b.failNext("Deprovision", outage)
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "s5"), events.Unsettled, events.DoNotCancel)
	if !a.isLive("s5") || !b.isLive("s5") || !accounts.accounts["s5"].Active() {
		t.Fatal("a DO_NOT_CANCEL changed something")
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "s5"), events.Final, "")
	if a.isLive("s5") || b.isLive("s5") || accounts.accounts["s5"].Status != events.AccountCancelled {
		t.Fatalf("after the cancel: a %v, b %v, account %+v", a.isLive("s5"), b.isLive("s5"), accounts.accounts["s5"])
	}
	if a.count("Deprovision") != 1 || b.count("Deprovision") != 2 {
		t.Errorf("undone: a %d, b %d; want 1 and 2", a.count("Deprovision"), b.count("Deprovision"))
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s5"), events.Final, events.Forbidden)
}

// Rule: a CANCEL with nothing recorded asks every target; with nothing
// anywhere it answers ACCOUNT_NOT_FOUND and records the cancel, so the
// ORDER that follows provisions nothing.
func TestCancelWithNothingRecorded(t *testing.T) {
	t.Parallel()
	svc, _, a, b := twoSteps(t)
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "s6"), events.Final, events.AccountNotFound)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s6"), events.Final, events.Forbidden)
	if a.count("Provision")+b.count("Provision") != 0 {
		t.Fatal("the ORDER after the CANCEL provisioned")
	}
}

// Rule: a target that finds its own work undone means the subscription was
// cancelled and its record lost: the ORDER undoes the rest and is refused.
func TestOrderFindingUndoneWorkIsRefused(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	a.live["s7"] = true
	b.gone["s7"] = true
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s7"), events.Final, events.Forbidden)
	if a.isLive("s7") || b.count("Provision") != 0 || accounts.accounts["s7"].Status != events.AccountCancelled {
		t.Fatalf("a live %v, b provisioned %d, account %+v", a.isLive("s7"), b.count("Provision"), accounts.accounts["s7"])
	}
}

func TestNewRefusesBadPlans(t *testing.T) {
	t.Parallel()
	for _, plans := range [][]provisioning.Plan{
		{{Product: "empty"}},
		{{Product: "p", Targets: []provisioning.Target{newFake("a")}}, {Product: "p", Targets: []provisioning.Target{newFake("a")}}},
	} {
		if _, err := provisioning.New(newMemAccounts(), plans, provisioning.Config{}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "product") {
			t.Errorf("New(%+v) = %v, want an error naming the product", plans, err)
		}
	}
}

// Review finding: an event that reaches an account through another
// product's extension (no product_identifier to refuse it) undoes the
// account's own product's steps, never records it cancelled with a step
// left live.
func TestCancelThroughAnotherProductUndoesTheAccountsPlan(t *testing.T) {
	t.Parallel()
	accounts, a, b := newMemAccounts(), newFake("a"), newFake("b")
	svc, err := provisioning.New(accounts, []provisioning.Plan{
		{Product: "two", Targets: []provisioning.Target{a, b}},
		{Product: "one", Targets: []provisioning.Target{a}},
	}, provisioning.Config{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	testevents.WantOutcome(t, svc.Process(context.Background(), event(events.SubscriptionOrder, "s8"), "two"), events.Final, "")
	testevents.WantOutcome(t, svc.Process(context.Background(), event(events.SubscriptionCancel, "s8"), "one"), events.Final, "")
	if a.isLive("s8") || b.isLive("s8") {
		t.Fatalf("after the cancel through product one: a live %v, b live %v", a.isLive("s8"), b.isLive("s8"))
	}
}

// Review finding: a CHANGE that arrives while its ORDER is still being
// provisioned waits (PENDING), it is not refused for good.
func TestChangeDuringProvisioningWaits(t *testing.T) {
	t.Parallel()
	svc, _, _, b := twoSteps(t)
	b.failNext("Provision", outage)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s9"), events.Transient, events.TransportError)
	testevents.WantOutcome(t, run(svc, events.SubscriptionChange, "s9"), events.Busy, events.Pending)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s9"), events.Final, "")
	testevents.WantOutcome(t, run(svc, events.SubscriptionChange, "s9"), events.Final, "")
}

// Review finding: after a final failure whose earlier steps were undone, a
// copy processed again (its stored reply lost) gets the same refusal, not
// FORBIDDEN because a target found its own undone work.
func TestRefusedOrderAnswersTheSameAgain(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	b.failNext("Provision", refusal)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s10"), events.Final, events.Forbidden)
	first := run(svc, events.SubscriptionOrder, "s10")
	if first.Reply.Message != refusal.Message || accounts.accounts["s10"].Status != events.AccountFailed {
		t.Fatalf("the second processing answered %+v (account %+v)", first.Reply, accounts.accounts["s10"])
	}
	if a.count("Provision") != 1 {
		t.Errorf("a provisioned %d times", a.count("Provision"))
	}
}
