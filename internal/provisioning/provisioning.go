// Package provisioning is the use case "keep a subscription where the
// marketplace asked for it": every event records the subscription's intent
// (active with an edition and items, cancelled, or refused), then one settle
// loop moves each step of the product's plan toward it, recording every
// transition, and the reply says only what the outside systems cannot
// contradict once settled. What is not settled when the reply goes out
// stays on the settle queue, and the settler (any replica) finishes it.
//
// The rules (docs/invariants.md names the test of each):
//   - the intent is recorded, fenced by the subscription's lock, before any
//     call that changes an outside system; a step is recorded "calling"
//     before the call that creates it, so after a timeout or a crash the
//     service knows which outside effects may exist;
//   - a 200 reply is a promise: success to an ORDER or CHANGE means every
//     step live as asked, a refusal of an ORDER or a success to a CANCEL
//     means nothing live, DO_NOT_CANCEL means the subscription live as
//     before; a 409 or 503 promises nothing;
//   - an undo once begun is finished, never rolled forward;
//   - a missing record is rebuilt from the targets' Find, for every event;
//   - an event never touches a subscription other than its own.
//
// It declares what it needs (Accounts, Target, Observer) in its own
// terms; adapters satisfy them and the wiring binds them.
package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/logctx"
)

// Accounts records subscriptions and serialises the work on each. Lock's
// token fences every write: a holder whose lease ran out gets
// events.ErrLeaseLost instead of overwriting the next holder's write.
type Accounts interface {
	Account(ctx context.Context, subscriptionID string) (events.Account, error)
	AccountByIdentifier(ctx context.Context, accountIdentifier string) (events.Account, error)
	// SaveAccount writes the account with its indexes and its place on the
	// settle queue (a.Settle.Due; zero: settled, off the queue).
	SaveAccount(ctx context.Context, lockToken string, a events.Account) error
	// SaveFinal is SaveAccount for the last save of a pass, the one its
	// answer rests on. The store may write it with the delivery's outcome,
	// in one round trip (the inbox then answers 503 if that fails); the
	// saves before outside calls are SaveAccount, written at once.
	SaveFinal(ctx context.Context, lockToken string, a events.Account) error
	// Confirm makes an account that is answered as it was read as durable
	// as a write: where writes wait for replicas, it writes it again and
	// waits, so that no reply rests on a write a failover can lose.
	Confirm(ctx context.Context, lockToken string, a events.Account) error
	// ClaimIdentifier points an accountIdentifier at a subscription,
	// atomically, when it names none, that one, or displace; it returns the
	// subscription it names afterwards (another one: not claimed).
	ClaimIdentifier(ctx context.Context, accountIdentifier, subscriptionID, displace string) (owner string, err error)
	// Unqueue takes a subscription that has no account off the settle
	// queue; called under the subscription's lock, so that no account is
	// saved meanwhile.
	Unqueue(ctx context.Context, subscriptionID string) error
	Lock(ctx context.Context, subscriptionID string, lease, wait time.Duration) (token string, unlock func(), err error)
}

// Observer is told what settling does, for metrics. Every method may be
// called from several goroutines.
type Observer interface {
	// SettleAttempt: one call to move a step (provision, change, undo,
	// find), by target and result: done, transient, refused, misconfigured.
	SettleAttempt(target, result string)
	StepUndone(target string)
	// Misconfigured: an outside system refused the service's own setup.
	Misconfigured(target string)
	// Abandoned: an intent that was never answered with success, whose
	// copies stopped coming, was given up (by the event type that set it).
	Abandoned(eventType string)
}

type nobody struct{}

func (nobody) SettleAttempt(string, string) {}
func (nobody) StepUndone(string)            {}
func (nobody) Misconfigured(string)         {}
func (nobody) Abandoned(string)             {}

// Plan is what a product provisions: its targets, in order.
type Plan struct {
	Product string
	Targets []Target
}

// Config tunes the service. Zero values take the defaults.
type Config struct {
	LockLease time.Duration // how long a subscription lock holds; longer than PROCESS_TIMEOUT
	LockWait  time.Duration // how long an event waits for another event of its subscription
	// AbandonAfter is ABANDON_AFTER: how long an intent that was answered
	// 503 (an ORDER or CHANGE not carried out yet) waits for its next copy
	// before it is given up: an ORDER undone and refused, a CHANGE rolled
	// back to what was promised before. 24h when zero.
	AbandonAfter time.Duration
	Observer     Observer // nil: nobody
}

// Service processes subscription events and settles subscriptions.
type Service struct {
	accounts Accounts
	plans    map[string]Plan
	cfg      Config
	log      *zap.Logger
	now      func() time.Time
}

// New returns a Service for the given plans (one per product).
func New(accounts Accounts, plans []Plan, cfg Config, log *zap.Logger) (*Service, error) {
	if cfg.LockLease <= 0 {
		cfg.LockLease = 6 * time.Second
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = 1500 * time.Millisecond
	}
	if cfg.AbandonAfter <= 0 {
		cfg.AbandonAfter = 24 * time.Hour
	}
	if cfg.Observer == nil {
		cfg.Observer = nobody{}
	}
	s := &Service{accounts: accounts, plans: make(map[string]Plan, len(plans)), cfg: cfg, log: log, now: time.Now}
	for _, p := range plans {
		if len(p.Targets) == 0 {
			return nil, fmt.Errorf("product %q has no targets", p.Product)
		}
		if _, dup := s.plans[p.Product]; dup {
			return nil, fmt.Errorf("product %q is planned twice", p.Product)
		}
		for i, t := range p.Targets {
			if p.index(t.Name()) != i {
				return nil, fmt.Errorf("product %q names target %q twice", p.Product, t.Name())
			}
		}
		s.plans[p.Product] = p
	}
	return s, nil
}

// SetClock replaces the service's clock, for tests of timed rules
// (abandoning, rechecks).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// Process carries out ev for product and answers it. It never answers a
// success that is not recorded.
func (s *Service) Process(ctx context.Context, ev *events.SubscriptionEvent, product string) events.Outcome {
	if ev.Stateless() {
		return events.Provisioned(statelessIdentifier(ev))
	}
	plan, ok := s.plans[product]
	if !ok {
		return because(ctx, "product: not configured", events.Outage(fmt.Sprintf("product %q is not configured", product), 5*time.Second))
	}
	var decide func(context.Context, *work) events.Outcome
	switch ev.EventType {
	case events.SubscriptionOrder:
		decide = s.order
	case events.SubscriptionChange:
		decide = s.change
	case events.SubscriptionCancel:
		decide = s.cancel
	case events.SubscriptionNotice:
		decide = s.notice
	case events.UserAssignment:
		decide = s.assign
	case events.UserUnassignment:
		decide = s.unassign
	default:
		return because(ctx, "event: type not supported", events.Refusal(events.ConfigurationError, fmt.Sprintf(
			"event_type %q is not supported; the service handles SUBSCRIPTION_ORDER, SUBSCRIPTION_CHANGE, SUBSCRIPTION_CANCEL, SUBSCRIPTION_NOTICE, USER_ASSIGNMENT and USER_UNASSIGNMENT", ev.EventType)))
	}
	if out, ok := s.ownSubscription(ctx, ev); !ok {
		return out
	}
	token, unlock, err := s.accounts.Lock(ctx, ev.SubscriptionID, s.cfg.LockLease, s.cfg.LockWait)
	switch {
	case errors.Is(err, events.ErrBusy):
		return because(ctx, "lock: busy", events.InProgress("another event of this subscription is being processed; send this one again shortly", time.Second))
	case err != nil:
		return s.storeDown(ctx, err)
	}
	defer unlock()
	w := &work{s: s, ev: ev, plan: plan, token: token}
	if err := s.load(ctx, w); err != nil {
		return s.storeDown(ctx, err)
	}
	if !w.usePlanOfAccount() {
		events.Decided(ctx, "product: not configured")
		return events.Outage("product "+w.acct.Product+" of subscription "+ev.SubscriptionID+
			" is no longer configured; fix PRODUCTS_FILE and send the event again", 5*time.Second)
	}
	return decide(ctx, w)
}

// statelessIdentifier is the accountIdentifier a STATELESS event's
// success carries (nothing is done for it). AppDirect keeps an ORDER's as
// the account's id: an AppDirect ORDER answers its own subscription id,
// as a real ORDER does, derived from its own event token, so it is never
// empty and never another subscription's (not even one its payload
// names), and nothing exists under it. Any other event, and the Q2 door's
// (whose ids are the targets'), answers the event's own accountIdentifier.
func statelessIdentifier(ev *events.SubscriptionEvent) string {
	if ev.AccountIsSubscription && ev.EventType == events.SubscriptionOrder {
		return ev.SubscriptionID
	}
	return ev.AccountIdentifier()
}

// ownSubscription refuses an event whose accountIdentifier names an
// account of another subscription: an event never touches a subscription
// other than its own. An identifier that names no account is no
// objection (the subscription_id decides); a store error is transient.
func (s *Service) ownSubscription(ctx context.Context, ev *events.SubscriptionEvent) (events.Outcome, bool) {
	id := ev.AccountIdentifier()
	if id == "" || ev.EventType == events.SubscriptionOrder {
		return events.Outcome{}, true
	}
	a, err := s.accounts.AccountByIdentifier(ctx, id)
	switch {
	case errors.Is(err, events.ErrNotFound):
		return events.Outcome{}, true
	case err != nil:
		return s.storeDown(ctx, err), false
	case a.SubscriptionID != ev.SubscriptionID:
		events.Decided(ctx, "event: accountIdentifier of another subscription")
		return events.Refusal(events.Forbidden, "accountIdentifier "+id+" belongs to another subscription than "+
			ev.SubscriptionID+"; nothing was changed"), false
	}
	return events.Outcome{}, true
}

// work is one subscription being worked on under its lock.
type work struct {
	s     *Service
	ev    *events.SubscriptionEvent // nil for the settler
	plan  Plan
	token string
	acct  events.Account
	fresh bool // no record and nothing found: a subscription seen for the first time
	// primed: the record was written by this delivery's claim, as Prime
	// built it (its first step "calling", no call made yet).
	primed bool
	dirty  bool // acct has transitions not saved yet
	// moved counts the transitions of this pass that changed an outside
	// system (a step created, changed or undone).
	moved int
	// refusal is the refusal that replaced the intent in this pass (an
	// ORDER refused, a CHANGE rolled back): what the event is answered.
	refusal *Failure
	// finishing: the pass is over and schedule set the settle queue entry;
	// before that, every save keeps the account queued in case the process
	// dies before the pass ends.
	finishing bool
}

// load reads the subscription's account, or rebuilds it from the
// targets' Find when Redis has none: after a lost reply, a crash or a
// Redis that forgot, what the outside systems hold is the truth.
func (s *Service) load(ctx context.Context, w *work) error {
	sub := w.subscription()
	a, err := s.accounts.Account(ctx, sub)
	switch {
	case err == nil:
		w.acct, w.primed = a, a.Primed
		w.alignSteps()
		return nil
	case !errors.Is(err, events.ErrNotFound):
		return err
	}
	w.newAccount()
	return nil
}

// newAccount starts the record of a subscription seen for the first time.
func (w *work) newAccount() {
	now := w.s.now().UTC()
	sub := w.subscription()
	w.acct = events.Account{SubscriptionID: sub, Product: w.plan.Product, CreatedAt: now, UpdatedAt: now}
	if w.ev != nil {
		w.acct.UserID = w.ev.UserID
		if w.ev.AccountIsSubscription {
			w.acct.AccountIdentifier = sub
		}
	}
	w.alignSteps()
	w.fresh = true
}

// Prime builds, before the delivery is claimed, what the processing of an
// ORDER of a subscription without a record writes before its first
// outside call: the account with the ORDER's intent and the plan's first
// step recorded "calling". The delivery's claim writes it in its own round
// trip when the subscription has no record (inbox.ClaimRequest.Primed),
// and the store hands it back marked Primed; the processing then goes on
// from it as from its own write. ok is false for any other event, and
// when the first step needs the store before its call (an identifier to
// claim) or its Prepare refuses: the processing then does it all itself.
func (s *Service) Prime(ctx context.Context, ev *events.SubscriptionEvent, product string) (events.Account, bool) {
	plan, ok := s.plans[product]
	if !ok || ev.EventType != events.SubscriptionOrder || ev.Stateless() {
		return events.Account{}, false
	}
	w := &work{s: s, ev: ev, plan: plan}
	w.newAccount()
	w.orderIntent()
	first := w.planSlot(0)
	prep, err := first.t.Prepare(ctx, w.jobOf(first))
	if err != nil || prep.ID != "" {
		return events.Account{}, false
	}
	w.calling(first, prep)
	w.stamp()
	return w.acct, true
}

// rebuild asks every target for the subscription's own work, in plan
// order (later targets see earlier ones' ids). It returns false with the
// outcome when a target could not be asked.
func (w *work) rebuild(ctx context.Context) (events.Outcome, bool) {
	var live, gone bool
	for i, t := range w.plan.Targets {
		step, presence, err := t.Find(ctx, w.job(i))
		if err != nil {
			// Nothing is recorded of a subscription whose work could not
			// be looked for: the event is answered as not carried out now.
			st := w.failed(ctx, w.planSlot(i), "looking for the subscription's earlier work", err)
			w.dirty = false
			if w.ev.EventType == events.SubscriptionCancel && st.failure.Kind != Misconfigured {
				return events.NotCancelled(t.Name() + " could not be asked for the subscription's work now; it is kept as it is, send the cancel again"), false
			}
			return w.notNow(st), false
		}
		st := &w.acct.Steps[i]
		switch presence {
		case Live:
			*st = found(t, step, events.StepLive)
			live = true
		case Gone:
			*st = found(t, step, events.StepUndone)
			gone = true
		case Unknown:
			*st = found(t, step, events.StepUnknown)
		}
		if i == 0 && (presence == Live || presence == Gone) {
			w.setIdentifier(step.ID)
		}
	}
	now := w.s.now().UTC()
	switch {
	case gone:
		// Our own work, undone: the subscription was cancelled, and that
		// was answered. It stays cancelled; anything still live goes.
		w.acct.Intent = events.Intent{State: events.IntentCancelled, Rev: 1, By: events.SubscriptionCancel, Promised: true, At: now}
		w.fresh = false
	case live:
		// Provisioned before, as some earlier intent asked: which edition
		// is not known (Rev 0 makes the next intent be applied to it).
		w.acct.Intent = events.Intent{State: events.IntentActive, By: events.SubscriptionOrder, Promised: true, At: now}
		w.fresh = false
	}
	w.dirty = !w.fresh
	return events.Outcome{}, true
}

func found(t Target, s events.Step, state events.StepState) events.Step {
	s.Target, s.State, s.Rev = t.Name(), state, 0
	return s
}

// alignSteps gives the account one step per target of its plan, in plan
// order, keeping what is recorded.
func (w *work) alignSteps() {
	steps := make([]events.Step, len(w.plan.Targets))
	for i, t := range w.plan.Targets {
		steps[i] = events.Step{Target: t.Name(), State: events.StepPending}
		if st, ok := w.acct.Step(t.Name()); ok {
			steps[i] = *st
		}
	}
	// Steps of targets no longer in the plan are kept after them when they
	// may still exist, so that nothing live is forgotten (usePlanOfAccount
	// refuses to work on such an account); the others are dropped.
	for _, st := range w.acct.Steps {
		if w.plan.index(st.Target) == len(w.plan.Targets) && st.State.MayExist() {
			steps = append(steps, st)
		}
	}
	w.acct.Steps = steps
}

// usePlanOfAccount makes the account's own product govern its steps: an
// event that reached it through another product's extension (without a
// product_identifier to refuse it) works on what the account's product
// provisioned. false when that product is no longer configured.
func (w *work) usePlanOfAccount() bool {
	if w.acct.Product == "" || w.acct.Product == w.plan.Product {
		w.acct.Product = w.plan.Product
		return len(w.acct.Steps) == len(w.plan.Targets) || !w.extraMayExist()
	}
	p, ok := w.s.plans[w.acct.Product]
	if !ok {
		return false
	}
	w.plan = p
	w.alignSteps()
	return len(w.acct.Steps) == len(w.plan.Targets) || !w.extraMayExist()
}

// extraMayExist reports whether a step of a target that left the plan may
// still exist.
func (w *work) extraMayExist() bool {
	return slices.ContainsFunc(w.acct.Steps[len(w.plan.Targets):], func(s events.Step) bool { return s.State.MayExist() })
}

func (w *work) subscription() string {
	if w.ev != nil {
		return w.ev.SubscriptionID
	}
	return w.acct.SubscriptionID
}

// job is what target i needs to know.
func (w *work) job(i int) *Job {
	j := &Job{Event: w.ev, Product: w.plan.Product, Subscription: w.subscription(), Intent: w.acct.Intent, Steps: w.acct.Steps}
	if i >= 0 && i < len(w.acct.Steps) {
		j.Current = w.acct.Steps[i]
	}
	return j
}

func (w *work) log(ctx context.Context) *zap.Logger {
	return logctx.Logger(ctx, w.s.log)
}

// flush saves the account if it has unsaved transitions: before any call
// that changes an outside system, and at the end.
func (w *work) flush(ctx context.Context) error {
	if !w.dirty {
		return nil
	}
	w.stamp()
	save := w.s.accounts.SaveAccount
	if w.finishing {
		save = w.s.accounts.SaveFinal // nothing goes out after it
	}
	if err := save(ctx, w.token, w.acct); err != nil {
		return err
	}
	w.dirty = false
	return nil
}

// stamp readies the account for a save: its time, its status, and until
// the pass is over its place on the settle queue.
func (w *work) stamp() {
	now := w.s.now().UTC()
	w.acct.UpdatedAt = now
	w.acct.Derive()
	if !w.finishing && !w.acct.Settled() {
		// If this holder dies before the pass ends, the settler finds the
		// account once the lock's lease is over.
		if w.acct.Settle.Since.IsZero() {
			w.acct.Settle.Since = now
		}
		w.acct.Settle.Due = now.Add(w.s.cfg.LockLease)
	}
}

// newIntent replaces the account's intent by one of event type by, with
// the next revision. prior is kept as the last promised intent.
func (w *work) newIntent(state events.IntentState, by events.EventType) {
	now := w.s.now().UTC()
	if w.acct.Intent.Promised {
		p := w.acct.Intent
		w.acct.Prior = &p
	}
	cur := w.acct.Intent // what was bought stays, until the event says otherwise
	w.acct.Intent = events.Intent{State: state, Rev: cur.Rev + 1, By: by, Edition: cur.Edition, PricingDuration: cur.PricingDuration,
		Items: cur.Items, EventTime: cur.EventTime, At: now, LastCopy: now}
	if state == events.IntentCancelled {
		w.acct.CancelledAt = &now
	}
	w.dirty = true
}

// promise marks the current intent as answered with a 200.
func (w *work) promise() {
	if w.acct.Intent.State != "" && !w.acct.Intent.Promised {
		w.acct.Intent.Promised, w.acct.Prior = true, nil
		w.dirty = true
	}
}

// memberTarget is the plan's first target that enrolls assigned users.
func (p Plan) memberTarget() Target {
	for _, t := range p.Targets {
		if _, ok := t.(Users); ok {
			return t
		}
	}
	return nil
}

func (p Plan) index(name string) int {
	for i, t := range p.Targets {
		if t.Name() == name {
			return i
		}
	}
	return len(p.Targets)
}

// applyOrder records what an order asks for in the intent.
func applyOrder(in *events.Intent, ev *events.SubscriptionEvent) {
	if o := ev.Event.Payload.Order; o != nil {
		in.Edition, in.PricingDuration = o.EditionCode, o.PricingDuration
		in.Items = append([]events.Item(nil), o.Items...)
	}
	in.EventTime = eventTime(ev)
}

// eventTime is the marketplace's own time of an event, when it carries one.
func eventTime(ev *events.SubscriptionEvent) *time.Time {
	if ev.Created == nil || ev.Created.IsZero() {
		return nil
	}
	t := ev.Created.UTC()
	return &t
}

func (s *Service) storeDown(ctx context.Context, err error) events.Outcome {
	logctx.Logger(ctx, s.log).Warn("account store unavailable", zap.Error(err))
	events.Decided(ctx, "store: unavailable")
	return events.Outage("the account store is unavailable; nothing final was recorded, send the event again", 5*time.Second)
}
