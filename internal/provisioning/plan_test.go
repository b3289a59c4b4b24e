package provisioning_test

import (
	"context"
	"encoding/json"
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
	index    map[string]string // accountIdentifier → subscription, as the store keeps it
	locks    map[string]string
	next     int
	saves    int
	failSave map[int]bool // the saves (counted from 1) that fail: an outage, or a crash before the record
	confirms int
}

func newMemAccounts() *memAccounts {
	return &memAccounts{accounts: map[string]events.Account{}, index: map[string]string{}, locks: map[string]string{}, failSave: map[int]bool{}}
}

func (m *memAccounts) Account(_ context.Context, sub string) (events.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[sub]
	if !ok {
		return a, events.ErrNotFound
	}
	return clone(a), nil
}

func (m *memAccounts) get(sub string) events.Account {
	m.mu.Lock()
	defer m.mu.Unlock()
	return clone(m.accounts[sub])
}

// forget empties the store, as a Redis that lost its data.
func (m *memAccounts) forget() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.accounts, m.index = map[string]events.Account{}, map[string]string{}
}

func (m *memAccounts) AccountByIdentifier(_ context.Context, id string) (events.Account, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.accounts[m.index[id]]; ok && a.AccountIdentifier == id {
		return clone(a), nil
	}
	return events.Account{}, events.ErrNotFound
}

func (m *memAccounts) ClaimIdentifier(_ context.Context, id, sub, displace string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if owner, ok := m.index[id]; !ok || owner == sub || (displace != "" && owner == displace) {
		m.index[id] = sub
	}
	return m.index[id], nil
}

func (m *memAccounts) Unqueue(context.Context, string) error { return nil }

func (m *memAccounts) SaveAccount(_ context.Context, token string, a events.Account) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[a.SubscriptionID] != token {
		return events.ErrLeaseLost
	}
	m.saves++
	if m.failSave[m.saves] {
		return fmt.Errorf("save: %w", events.ErrUnavailable)
	}
	m.accounts[a.SubscriptionID] = clone(a)
	if _, taken := m.index[a.AccountIdentifier]; a.AccountIdentifier != "" && !taken {
		m.index[a.AccountIdentifier] = a.SubscriptionID
	}
	return nil
}

func (m *memAccounts) SaveFinal(ctx context.Context, token string, a events.Account) error {
	return m.SaveAccount(ctx, token, a)
}

func (m *memAccounts) Confirm(_ context.Context, token string, a events.Account) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks[a.SubscriptionID] != token {
		return events.ErrLeaseLost
	}
	m.confirms++
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

// clone deep-copies what the service might change in place.
func clone(a events.Account) events.Account {
	b, err := json.Marshal(a)
	if err != nil {
		panic(err)
	}
	var c events.Account
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return c
}

// stateOf is the state of the step of target in sub's record.
func (m *memAccounts) stateOf(sub, target string) events.StepState {
	a := m.get(sub)
	if st, ok := a.Step(target); ok {
		return st.State
	}
	return ""
}

// fakeTarget is an outside system that keeps what it provisioned per
// subscription, counts its calls, and fails as told.
type fakeTarget struct {
	name string
	// needsEvent: like Q2, it creates from the event only (Prepare says
	// ErrNeedsEvent to the settler). noLookup: like Helix, Find cannot
	// tell (Unknown).
	needsEvent, noLookup bool

	mu         sync.Mutex
	live, gone map[string]bool
	level      map[string]string // the edition each live subscription has
	calls      map[string]int
	fail       map[string][]error // per method, the errors of its next calls
	after      map[string][]error // per method, errors returned after doing the work (a lost reply)
}

func newFake(name string) *fakeTarget {
	return &fakeTarget{name: name, live: map[string]bool{}, gone: map[string]bool{}, level: map[string]string{},
		calls: map[string]int{}, fail: map[string][]error{}, after: map[string][]error{}}
}

// failNext makes the next calls of method fail with errs, in order.
func (f *fakeTarget) failNext(method string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[method] = append(f.fail[method], errs...)
}

// loseReply makes the next calls of method do their work, then fail
// with errs (the answer lost on the way back).
func (f *fakeTarget) loseReply(method string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.after[method] = append(f.after[method], errs...)
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

// done is the error of a call that did its work: nil, or a lost reply.
func (f *fakeTarget) done(method string) error {
	if errs := f.after[method]; len(errs) > 0 {
		f.after[method] = errs[1:]
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

// land makes work of sub appear, as a call abandoned long ago that
// lands late.
func (f *fakeTarget) land(sub string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[sub], f.gone[sub] = true, false
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
	case f.noLookup:
		return f.step(j.Subscription), provisioning.Unknown, nil
	case f.live[j.Subscription]:
		return f.step(j.Subscription), provisioning.Live, nil
	case f.gone[j.Subscription]:
		return f.step(j.Subscription), provisioning.Gone, nil
	}
	return events.Step{}, provisioning.Absent, nil
}

func (f *fakeTarget) Prepare(_ context.Context, j *provisioning.Job) (events.Step, error) {
	if f.needsEvent && j.Event == nil {
		return events.Step{}, provisioning.ErrNeedsEvent
	}
	if f.noLookup {
		return f.step(j.Subscription), nil // named before the call, as Helix's
	}
	return events.Step{}, nil
}

func (f *fakeTarget) Provision(_ context.Context, j *provisioning.Job) (events.Step, error) {
	if err := f.call("Provision"); err != nil {
		return events.Step{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone[j.Subscription] && !f.noLookup {
		return events.Step{}, provisioning.ErrGone
	}
	f.live[j.Subscription], f.gone[j.Subscription] = true, false
	f.level[j.Subscription] = j.Intent.Edition
	if err := f.done("Provision"); err != nil {
		return events.Step{}, err
	}
	return f.step(j.Subscription), nil
}

func (f *fakeTarget) Change(_ context.Context, j *provisioning.Job, s events.Step) (events.Step, error) {
	if err := f.call("Change"); err != nil {
		return s, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.level[j.Subscription] = j.Intent.Edition
	return s, f.done("Change")
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
	return f.done("Deprovision")
}

// answered is an error an outside system answered (it carries a status):
// the call surely did nothing.
type answered int

func (a answered) Error() string   { return fmt.Sprintf("HTTP %d", int(a)) }
func (a answered) StatusCode() int { return int(a) }

var (
	outage  = provisioning.Outage("down", time.Second, answered(503))
	timeout = provisioning.Outage("no answer", time.Second, context.DeadlineExceeded)
	refusal = provisioning.Refusal(events.Forbidden, "the account is locked", nil)
	badKey  = provisioning.Misconfiguration(events.Unauthorized, "the service's key is refused", nil)
)

// clock is a settable clock for the timed rules.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// plan is a service whose one product ("two") provisions targets in
// order, on a settable clock.
func plan(t *testing.T, targets ...provisioning.Target) (*provisioning.Service, *memAccounts, *clock) {
	t.Helper()
	accounts := newMemAccounts()
	svc, err := provisioning.New(accounts, []provisioning.Plan{{Product: "two", Targets: targets}},
		provisioning.Config{AbandonAfter: 24 * time.Hour}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	svc.SetClock(c.Now)
	return svc, accounts, c
}

// twoSteps is a service whose one product provisions a then b.
func twoSteps(t *testing.T) (*provisioning.Service, *memAccounts, *fakeTarget, *fakeTarget) {
	t.Helper()
	a, b := newFake("a"), newFake("b")
	svc, accounts, _ := plan(t, a, b)
	return svc, accounts, a, b
}

func event(typ events.EventType, sub string) *events.SubscriptionEvent {
	return &events.SubscriptionEvent{EventType: typ, SubscriptionID: sub,
		Event: events.Event{Type: typ, Creator: &events.Person{FirstName: "Ann"}}}
}

// change is a CHANGE of sub to edition.
func change(sub, edition string) *events.SubscriptionEvent {
	ev := event(events.SubscriptionChange, sub)
	ev.Event.Payload.Order = &events.Order{EditionCode: edition}
	return ev
}

func run(svc *provisioning.Service, typ events.EventType, sub string) events.Outcome {
	return svc.Process(context.Background(), event(typ, sub), "two")
}

func settle(t *testing.T, svc *provisioning.Service, sub string) provisioning.Report {
	t.Helper()
	rep, err := svc.Settle(context.Background(), sub)
	if err != nil {
		t.Fatalf("Settle(%s): %v", sub, err)
	}
	return rep
}

// Rule: a transient failure at step 2 answers "try again"; the next copy
// resumes at step 2 and never repeats step 1.
func TestPlanResumesAfterATransientFailure(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	b.failNext("Provision", outage)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s1"), events.Transient, events.TransportError)
	if acct := accounts.get("s1"); acct.Status != events.AccountProvisioning || acct.Steps[0].State != events.StepLive || acct.Steps[1].State != events.StepUnknown {
		t.Fatalf("after the failure the record is %+v; want a live, b unknown", acct)
	}
	out := run(svc, events.SubscriptionOrder, "s1")
	testevents.WantOutcome(t, out, events.Final, "")
	if out.Reply.AccountIdentifier != "a-s1" {
		t.Errorf("accountIdentifier %q, want the first step's id", out.Reply.AccountIdentifier)
	}
	if a.count("Provision") != 1 || b.count("Provision") != 2 {
		t.Fatalf("a provisioned %d times, b %d; want 1, 2", a.count("Provision"), b.count("Provision"))
	}
	if acct := accounts.get("s1"); !acct.Active() || !acct.Settled() || !acct.Intent.Promised {
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
	if acct := accounts.get("s2"); acct.Status != events.AccountFailed || !acct.Settled() {
		t.Fatalf("record after the undo: %+v", acct)
	}
}

// Settler: a refusal whose undo fails three times is answered at once,
// and settles without any copy: the settler finishes the undo.
func TestRefusalWhoseUndoFailsSettlesWithoutACopy(t *testing.T) {
	t.Parallel()
	a, b := newFake("a"), newFake("b")
	svc, accounts, clk := plan(t, a, b)
	b.failNext("Provision", refusal)
	a.failNext("Deprovision", outage, outage, outage)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s3"), events.Final, events.Forbidden)
	if !a.isLive("s3") || accounts.get("s3").Settled() {
		t.Fatal("setup: a should still be live after its undo failed")
	}
	for i := 0; i < 4 && a.isLive("s3"); i++ {
		due := accounts.get("s3").Settle.Due
		if due.IsZero() {
			t.Fatalf("pass %d: an unsettled account is not on the settle queue", i)
		}
		clk.add(due.Sub(clk.Now()))
		settle(t, svc, "s3")
	}
	if a.isLive("s3") || a.count("Deprovision") != 4 || !accounts.get("s3").Settled() {
		t.Fatalf("after the settler: a live %v, undone %d times, account %+v", a.isLive("s3"), a.count("Deprovision"), accounts.get("s3"))
	}
	if due := accounts.get("s3").Settle; !due.Due.IsZero() || !due.Since.IsZero() {
		t.Errorf("a settled account stays queued: %+v", due)
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s3"), events.Final, events.Forbidden)
	if a.count("Provision") != 1 {
		t.Errorf("a provisioned %d times", a.count("Provision"))
	}
}

// Rule: a step done whose record was lost (the save after the call
// failed; a crash there) is not done twice: it was recorded "calling"
// before the call, and the next copy asks the target first.
func TestPlanFindsAStepItDidNotRecord(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	accounts.failSave[2] = true // 1: intent and "a calling"; 2: "a live"
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s4"), events.Transient, events.TransportError)
	if st := accounts.stateOf("s4", "a"); st != events.StepCalling {
		t.Fatalf("step a is %q after the lost record, want calling", st)
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s4"), events.Final, "")
	if a.count("Provision") != 1 || b.count("Provision") != 1 || a.count("Find") != 1 {
		t.Fatalf("provisions: a %d (found %d), b %d; want 1 (1), 1", a.count("Provision"), a.count("Find"), b.count("Provision"))
	}
}

// Settler: a crash between "calling" and "live" is found and finished by
// the settler, with no copy, for a step it can create from the record.
func TestSettlerFinishesACrashedCall(t *testing.T) {
	t.Parallel()
	a, b := newFake("a"), newFake("b")
	b.noLookup = true
	svc, accounts, clk := plan(t, a, b)
	// The process dies right after b's call went out: its record says
	// "calling", and nothing more is written.
	accounts.failSave[3] = true // 1: intent, a calling; 2: a live, b calling; 3: b live
	b.loseReply("Provision", timeout)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s11"), events.Transient, events.TransportError)
	if st := accounts.stateOf("s11", "b"); st != events.StepCalling {
		t.Fatalf("b is %q, want calling", st)
	}
	clk.add(time.Minute)
	rep := settle(t, svc, "s11")
	if !rep.Settled || accounts.stateOf("s11", "b") != events.StepLive {
		t.Fatalf("settler report %+v; b %q", rep, accounts.stateOf("s11", "b"))
	}
	// Not answered with success yet: the next copy is, without a call.
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s11"), events.Final, "")
	if a.count("Provision") != 1 || b.count("Provision") != 2 {
		t.Errorf("provisions: a %d, b %d; want 1 and 2 (the lost one, and the settler's idempotent one)", a.count("Provision"), b.count("Provision"))
	}
}

// Rule: a CANCEL undoes every step in reverse; a failure that did nothing
// on the first undo answers DO_NOT_CANCEL, changes nothing, and the next
// copy completes it.
func TestCancelOfTwoStepsResumes(t *testing.T) {
	t.Parallel()
	svc, accounts, a, b := twoSteps(t)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s5"), events.Final, "")
	b.failNext("Deprovision", outage)
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "s5"), events.NotStored, events.DoNotCancel)
	if acct := accounts.get("s5"); !a.isLive("s5") || !b.isLive("s5") || !acct.Active() || acct.Intent.State != events.IntentActive {
		t.Fatalf("a DO_NOT_CANCEL changed something: %+v", acct)
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "s5"), events.Final, "")
	if a.isLive("s5") || b.isLive("s5") || accounts.get("s5").Status != events.AccountCancelled {
		t.Fatalf("after the cancel: a %v, b %v, account %+v", a.isLive("s5"), b.isLive("s5"), accounts.get("s5"))
	}
	if a.count("Deprovision") != 1 || b.count("Deprovision") != 2 {
		t.Errorf("undone: a %d, b %d; want 1 and 2", a.count("Deprovision"), b.count("Deprovision"))
	}
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s5"), events.Final, events.Forbidden)
}

// Rule: a CANCEL that has begun undoing is answered success, and the
// settler finishes it: an undo once begun is finished, never rolled back.
func TestCancelBegunIsFinishedByTheSettler(t *testing.T) {
	t.Parallel()
	a, b := newFake("a"), newFake("b")
	svc, accounts, clk := plan(t, a, b)
	testevents.WantOutcome(t, run(svc, events.SubscriptionOrder, "s12"), events.Final, "")
	a.failNext("Deprovision", outage)
	testevents.WantOutcome(t, run(svc, events.SubscriptionCancel, "s12"), events.Final, "")
	if b.isLive("s12") || !a.isLive("s12") || accounts.get("s12").Status != events.AccountCancelled {
		t.Fatalf("after the cancel: a %v, b %v", a.isLive("s12"), b.isLive("s12"))
	}
	clk.add(time.Minute)
	if rep := settle(t, svc, "s12"); !rep.Settled || a.isLive("s12") {
		t.Fatalf("settler: %+v, a live %v", rep, a.isLive("s12"))
	}
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
	if a.isLive("s7") || b.isLive("s7") || accounts.get("s7").Status != events.AccountCancelled {
		t.Fatalf("a live %v, b live %v, account %+v", a.isLive("s7"), b.isLive("s7"), accounts.get("s7"))
	}
}

func TestNewRefusesBadPlans(t *testing.T) {
	t.Parallel()
	for _, plans := range [][]provisioning.Plan{
		{{Product: "empty"}},
		{{Product: "p", Targets: []provisioning.Target{newFake("a")}}, {Product: "p", Targets: []provisioning.Target{newFake("a")}}},
		{{Product: "p", Targets: []provisioning.Target{newFake("a"), newFake("a")}}},
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
	if first.Reply.Message != refusal.Message || accounts.get("s10").Status != events.AccountFailed {
		t.Fatalf("the second processing answered %+v (account %+v)", first.Reply, accounts.get("s10"))
	}
	if a.count("Provision") != 1 {
		t.Errorf("a provisioned %d times", a.count("Provision"))
	}
}
