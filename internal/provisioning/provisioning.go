// Package provisioning is the use case "carry out one subscription event":
// an ORDER provisions the subscription in every target of its product's
// plan, step by step, each step recorded before the next; a CHANGE applies
// the new edition and quantities; a CANCEL deprovisions every step in
// reverse. Each event runs under its subscription's lock, and every account
// write is fenced by that lock.
//
// The rules that make it exactly once, whatever the timing:
//   - a step is recorded right after it is done; a crash before the record
//     is repaired by the target's Find, which recognises its own work, so
//     no step is ever done twice;
//   - a transient failure at step k answers "try again" and the next copy
//     resumes at step k; a final failure at step k undoes steps k-1…1 in
//     reverse and answers the failure;
//   - a CANCEL with nothing recorded asks every target for the
//     subscription's own work, undoes what is live, and records the
//     subscription cancelled either way, so a late ORDER is refused;
//   - a target that finds its own work undone (Gone) means the
//     subscription was cancelled and its record lost: refused, nothing
//     provisioned again.
//
// It declares what it needs (Accounts, Target) in its own terms; adapters
// satisfy them and the wiring binds them.
package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/logctx"
)

// Accounts records provisioned subscriptions and serialises the events of
// one subscription. Lock's token fences SaveAccount: a holder whose lease
// ran out gets events.ErrLeaseLost instead of overwriting the next
// holder's write.
type Accounts interface {
	Account(ctx context.Context, subscriptionID string) (events.Account, error)
	AccountByIdentifier(ctx context.Context, accountIdentifier string) (events.Account, error)
	SaveAccount(ctx context.Context, lockToken string, a events.Account) error
	Lock(ctx context.Context, subscriptionID string, lease, wait time.Duration) (token string, unlock func(), err error)
}

// Plan is what a product provisions: its targets, in order.
type Plan struct {
	Product string
	Targets []Target
}

// Config tunes the service. Zero values take the defaults.
type Config struct {
	LockLease time.Duration // how long a subscription lock holds; longer than PROCESS_TIMEOUT
	LockWait  time.Duration // how long an event waits for another event of its subscription
	// OnUndone, when set, is told of every step undone after a later step
	// of an ORDER failed for good: for metrics.
	OnUndone func(target string)
}

// Service processes subscription events.
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
	s := &Service{accounts: accounts, plans: make(map[string]Plan, len(plans)), cfg: cfg, log: log, now: time.Now}
	for _, p := range plans {
		if len(p.Targets) == 0 {
			return nil, fmt.Errorf("product %q has no targets", p.Product)
		}
		if _, dup := s.plans[p.Product]; dup {
			return nil, fmt.Errorf("product %q is planned twice", p.Product)
		}
		s.plans[p.Product] = p
	}
	return s, nil
}

// Process carries out ev for product. It never returns a final success
// that is not recorded.
func (s *Service) Process(ctx context.Context, ev *events.SubscriptionEvent, product string) events.Outcome {
	if ev.Stateless() {
		return events.Provisioned(ev.AccountIdentifier())
	}
	plan, ok := s.plans[product]
	if !ok {
		return events.Unsettling(events.ConfigurationError, fmt.Sprintf("product %q is not configured", product))
	}
	return s.locked(ctx, &work{ev: ev, plan: plan})
}

// work is one event being carried out under its subscription's lock.
type work struct {
	ev           *events.SubscriptionEvent
	plan         Plan
	subscription string // the subscription the event is about (see target)
	token        string // the lock's fencing token, for SaveAccount
}

// locked runs the event under its subscription's lock. The dispatch lists
// every event type it handles; any other is refused before anything is
// touched.
func (s *Service) locked(ctx context.Context, w *work) events.Outcome {
	var handle func(context.Context, *work) events.Outcome
	switch w.ev.EventType {
	case events.SubscriptionOrder:
		handle = s.order
	case events.SubscriptionChange:
		handle = s.change
	case events.SubscriptionCancel:
		handle = s.cancel
	default:
		return events.Refused(events.ConfigurationError, fmt.Sprintf(
			"event_type %q is not supported; this extension handles SUBSCRIPTION_ORDER, SUBSCRIPTION_CHANGE and SUBSCRIPTION_CANCEL", w.ev.EventType))
	}
	subscription, err := s.target(ctx, w.ev)
	if err != nil {
		return s.storeDown(ctx, err)
	}
	token, unlock, err := s.accounts.Lock(ctx, subscription, s.cfg.LockLease, s.cfg.LockWait)
	switch {
	case errors.Is(err, events.ErrBusy):
		return events.InProgress("another event of this subscription is being processed; send this one again shortly", time.Second)
	case err != nil:
		return s.storeDown(ctx, err)
	}
	defer unlock()
	w.subscription, w.token = subscription, token
	return handle(ctx, w)
}

// target is the subscription an event is about: the one of the account its
// accountIdentifier names, when that is a known account, else its
// subscription_id. An ORDER is always about its subscription_id. Only "not
// found" falls back: any other store error is returned, so that a Redis
// blip is a transient outcome, never a stored ACCOUNT_NOT_FOUND.
func (s *Service) target(ctx context.Context, ev *events.SubscriptionEvent) (string, error) {
	id := ev.AccountIdentifier()
	if ev.EventType == events.SubscriptionOrder || id == "" {
		return ev.SubscriptionID, nil
	}
	a, err := s.accounts.AccountByIdentifier(ctx, id)
	switch {
	case err == nil:
		return a.SubscriptionID, nil
	case errors.Is(err, events.ErrNotFound):
		return ev.SubscriptionID, nil
	}
	return "", err
}

func (s *Service) order(ctx context.Context, w *work) events.Outcome {
	ev := w.ev
	acct, err := s.accounts.Account(ctx, w.subscription)
	switch {
	case errors.Is(err, events.ErrNotFound):
		now := s.now().UTC()
		acct = events.Account{SubscriptionID: w.subscription, Product: w.plan.Product, UserID: ev.UserID,
			Status: events.AccountProvisioning, CreatedAt: now, UpdatedAt: now}
	case err != nil:
		return s.storeDown(ctx, err)
	case acct.Product != "" && acct.Product != w.plan.Product:
		return events.Refused(events.ConfigurationError, fmt.Sprintf(
			"subscription %s was ordered as product %q, not %q", w.subscription, acct.Product, w.plan.Product))
	case acct.Status == events.AccountCancelled:
		// Never provisioned again. A CANCEL that overtook a lost reply may
		// have found nothing while an outside system was still creating
		// it: make sure nothing of ours is live.
		if out, ok := s.sweep(ctx, w, &acct); !ok {
			return out
		}
		return forbidden(w)
	case acct.Status == events.AccountFailed:
		// Refused for good and undone before: the same answer, even when
		// the first answer was not stored (a target's undone work must not
		// read as "cancelled").
		return events.Refused(acct.FailureCode, acct.FailureMessage)
	case acct.Status != events.AccountProvisioning:
		return events.Provisioned(acct.AccountIdentifier) // provisioned before: the same answer
	}

	j := w.job(acct.Steps)
	for i, t := range w.plan.Targets {
		if _, done := j.Step(t.Name()); done {
			continue // recorded by an earlier copy: never done twice
		}
		step, presence, err := t.Find(ctx, j)
		if err != nil {
			return s.failed(ctx, w, &acct, t, "looking for earlier work", err)
		}
		switch presence {
		case Gone:
			// Our own work, undone: the subscription was cancelled and its
			// record lost. Record that again and refuse.
			logctx.Logger(ctx, s.log).Warn("a target holds this subscription's work undone: it was cancelled",
				zap.String("subscription", w.subscription), zap.String("target", t.Name()))
			step.Target, step.Undone = t.Name(), true
			acct.Steps = append(acct.Steps, step)
			if acct.AccountIdentifier == "" {
				acct.AccountIdentifier = step.ID
			}
			return s.cancelledMeanwhile(ctx, w, &acct)
		case Live:
		default:
			if step, err = t.Provision(ctx, j); err != nil {
				return s.failed(ctx, w, &acct, t, "provisioning", err)
			}
		}
		step.Target = t.Name()
		acct.Steps = append(acct.Steps, step)
		j.Steps = acct.Steps
		if acct.AccountIdentifier == "" {
			acct.AccountIdentifier = step.ID
		}
		if i == len(w.plan.Targets)-1 {
			activate(&acct, ev) // the last step's record is the account's: one write less
		}
		if err := s.save(ctx, w, &acct); err != nil {
			return s.storeDown(ctx, err)
		}
	}
	if acct.Status != events.AccountActive { // every step was recorded by earlier copies
		activate(&acct, ev)
		if err := s.save(ctx, w, &acct); err != nil {
			return s.storeDown(ctx, err)
		}
	}
	return events.Provisioned(acct.AccountIdentifier)
}

// activate records an ORDER whose every step is done.
func activate(acct *events.Account, ev *events.SubscriptionEvent) {
	acct.Status = events.AccountActive
	acct.EventTime = eventTime(ev)
	applyOrder(acct, ev.Event.Payload.Order)
}

// failed answers an ORDER whose target failed. A final failure undoes the
// steps done so far, in reverse, and answers the failure; anything else
// answers as it is and leaves the recorded steps for the next copy.
func (s *Service) failed(ctx context.Context, w *work, acct *events.Account, t Target, doing string, err error) events.Outcome {
	f := classify(t.Name(), err)
	logctx.Logger(ctx, s.log).Warn("a target failed", zap.String("subscription", w.subscription), zap.String("target", t.Name()),
		zap.String("doing", doing), zap.Stringer("kind", f.Kind), zap.String("code", string(f.Code)), zap.Error(f.Err))
	if f.Kind != events.Final {
		return outcomeOf(f)
	}
	if out, ok := s.undo(ctx, w, acct); !ok {
		return out
	}
	acct.Status, acct.FailureCode, acct.FailureMessage = events.AccountFailed, f.Code, f.Message
	if err := s.save(ctx, w, acct); err != nil {
		return s.storeDown(ctx, err)
	}
	return events.Refused(f.Code, f.Message)
}

// undo deprovisions the recorded steps of an ORDER that failed, in reverse,
// removing each from the record once undone. ok is false when a step could
// not be undone now; out then asks for the ORDER again, which resumes.
func (s *Service) undo(ctx context.Context, w *work, acct *events.Account) (out events.Outcome, ok bool) {
	for i := len(acct.Steps) - 1; i >= 0; i-- {
		step := acct.Steps[i]
		if step.Undone {
			continue
		}
		t := w.plan.byName(step.Target)
		if t == nil {
			return events.Unsettling(events.ConfigurationError, "step "+step.Target+" of subscription "+w.subscription+
				" cannot be undone: its target is no longer in the product's plan"), false
		}
		if err := t.Deprovision(ctx, w.job(acct.Steps[:i]), step); err != nil {
			f := classify(t.Name(), err)
			logctx.Logger(ctx, s.log).Warn("undoing a step failed", zap.String("subscription", w.subscription), zap.String("target", t.Name()), zap.Error(f.Err))
			return events.Unavailable("the order failed and undoing its earlier steps is not finished; send it again", max(f.RetryAfter, time.Second)), false
		}
		acct.Steps = acct.Steps[:i]
		if acct.AccountIdentifier != "" && i == 0 {
			acct.AccountIdentifier = ""
		}
		if err := s.save(ctx, w, acct); err != nil {
			return s.storeDown(ctx, err), false
		}
		logctx.Logger(ctx, s.log).Info("step undone", zap.String("subscription", w.subscription), zap.String("target", t.Name()))
		if s.cfg.OnUndone != nil {
			s.cfg.OnUndone(t.Name())
		}
	}
	return out, true
}

// cancelledMeanwhile records a subscription found cancelled while ordering
// (a target held its work undone): the live steps are undone, the account
// cancelled, and the ORDER refused.
func (s *Service) cancelledMeanwhile(ctx context.Context, w *work, acct *events.Account) events.Outcome {
	if out, ok := s.deprovisionAll(ctx, w, acct, events.SubscriptionOrder); !ok {
		return out
	}
	return forbidden(w)
}

func forbidden(w *work) events.Outcome {
	return events.Refused(events.Forbidden, "subscription "+w.subscription+" was cancelled; it is not provisioned again")
}

func (s *Service) change(ctx context.Context, w *work) events.Outcome {
	ev := w.ev
	acct, err := s.accounts.Account(ctx, w.subscription)
	switch {
	case err == nil && acct.Status == events.AccountProvisioning:
		// Its ORDER is under way (a step met a transient failure): the
		// CHANGE waits for it rather than being refused for good.
		return events.InProgress("the order of subscription "+ev.SubscriptionID+" is still being provisioned; send the change again shortly", 5*time.Second)
	case errors.Is(err, events.ErrNotFound) || (err == nil && acct.Status != events.AccountActive && acct.Status != events.AccountSuspended):
		return events.Refused(events.AccountNotFound, "no active account for subscription "+ev.SubscriptionID)
	case err != nil:
		return s.storeDown(ctx, err)
	case !s.usePlanOf(w, &acct):
		return events.Unsettling(events.ConfigurationError, "product "+strconv.Quote(acct.Product)+" of subscription "+ev.SubscriptionID+" is no longer configured")
	}
	at := eventTime(ev)
	if at != nil && acct.EventTime != nil && at.Before(*acct.EventTime) {
		// A late CHANGE: a newer ORDER or CHANGE is applied already.
		logctx.Logger(ctx, s.log).Info("a change older than the one applied is not applied",
			zap.String("subscription", w.subscription), zap.Time("event_time", *at), zap.Time("applied", *acct.EventTime))
		return events.Provisioned(acct.AccountIdentifier)
	}
	j := w.job(acct.Steps)
	for i, step := range acct.Steps {
		t := w.plan.byName(step.Target)
		if t == nil || step.Undone {
			continue
		}
		changed, err := t.Change(ctx, j, step)
		if err != nil {
			f := classify(t.Name(), err)
			logctx.Logger(ctx, s.log).Warn("a target failed to apply a change", zap.String("subscription", w.subscription),
				zap.String("target", t.Name()), zap.Stringer("kind", f.Kind), zap.Error(f.Err))
			return outcomeOf(f)
		}
		changed.Target = step.Target
		acct.Steps[i] = changed
	}
	applyOrder(&acct, ev.Event.Payload.Order)
	if at != nil {
		acct.EventTime = at
	}
	if err := s.save(ctx, w, &acct); err != nil {
		return s.storeDown(ctx, err)
	}
	return events.Provisioned(acct.AccountIdentifier)
}

func (s *Service) cancel(ctx context.Context, w *work) events.Outcome {
	acct, err := s.accounts.Account(ctx, w.subscription)
	switch {
	case errors.Is(err, events.ErrNotFound):
		// Nothing recorded: the ORDER has not arrived, its reply was lost
		// after a target did its work, or Redis forgot. Ask the targets.
		now := s.now().UTC()
		acct = events.Account{SubscriptionID: w.subscription, Product: w.plan.Product, UserID: w.ev.UserID,
			Status: events.AccountProvisioning, CreatedAt: now, UpdatedAt: now}
	case err != nil:
		return s.storeDown(ctx, err)
	case !s.usePlanOf(w, &acct):
		return events.NotCancelled("product " + strconv.Quote(acct.Product) + " of subscription " + w.ev.SubscriptionID +
			" is no longer configured, so its steps cannot be undone; fix PRODUCTS_FILE and send the cancel again")
	case acct.Status == events.AccountCancelled:
		// Cancelled before: cancelling again changes nothing, but work
		// that landed after the first cancel must not stay behind.
		if out, ok := s.sweep(ctx, w, &acct); !ok {
			return out
		}
		return cancelledReply(w, &acct)
	}
	if out, ok := s.deprovisionAll(ctx, w, &acct, events.SubscriptionCancel); !ok {
		return out
	}
	return cancelledReply(w, &acct)
}

func cancelledReply(w *work, acct *events.Account) events.Outcome {
	if acct.AccountIdentifier == "" {
		return events.Refused(events.AccountNotFound, "nothing of subscription "+w.ev.SubscriptionID+
			" exists; it is recorded as cancelled, so a later order is refused")
	}
	return events.Provisioned(acct.AccountIdentifier)
}

// deprovisionAll undoes every step of the subscription, in reverse: the
// recorded ones, and those the targets find of their own (a crash before a
// step was recorded, a lost reply, a Redis that forgot). Each undone step
// is recorded as undone, and at the end the account as cancelled. ok is
// false when a step could not be undone now (the progress is recorded, the
// next copy resumes); out is then the outcome: DO_NOT_CANCEL for a CANCEL,
// transient for an ORDER.
func (s *Service) deprovisionAll(ctx context.Context, w *work, acct *events.Account, for_ events.EventType) (out events.Outcome, ok bool) {
	fail := func(t Target, doing string, err error) (events.Outcome, bool) {
		f := classify(t.Name(), err)
		logctx.Logger(ctx, s.log).Warn("a target failed while cancelling", zap.String("subscription", w.subscription),
			zap.String("target", t.Name()), zap.String("doing", doing), zap.Error(f.Err))
		if for_ == events.SubscriptionCancel {
			return events.NotCancelled(t.Name() + " failed while " + doing + "; the subscription is kept, send the cancel again"), false
		}
		return events.Unavailable(t.Name()+" failed while "+doing+"; send the event again", max(f.RetryAfter, time.Second)), false
	}
	// First find what is not recorded, in plan order, so that later
	// targets see earlier targets' ids (Helix takes Q2's CustomerID).
	j := w.job(acct.Steps)
	for _, t := range w.plan.Targets {
		if _, recorded := acct.Step(t.Name()); recorded {
			continue
		}
		step, presence, err := t.Find(ctx, j)
		if err != nil {
			return fail(t, "looking for the subscription's work", err)
		}
		if presence == Absent {
			continue
		}
		step.Target, step.Undone = t.Name(), presence == Gone
		acct.Steps = append(acct.Steps, step)
		j.Steps = acct.Steps
		if acct.AccountIdentifier == "" && presence != Unknown {
			acct.AccountIdentifier = step.ID
		}
	}
	slices.SortStableFunc(acct.Steps, func(a, b events.Step) int { return w.plan.index(a.Target) - w.plan.index(b.Target) })
	for i := len(acct.Steps) - 1; i >= 0; i-- {
		step := acct.Steps[i]
		if step.Undone {
			continue
		}
		t := w.plan.byName(step.Target)
		if t == nil { // never recorded cancelled with a step left live
			return events.NotCancelled("step " + step.Target + " cannot be undone: its target is no longer in the product's plan; fix PRODUCTS_FILE and send the cancel again"), false
		}
		if err := t.Deprovision(ctx, w.job(acct.Steps), step); err != nil {
			if err := s.save(ctx, w, acct); err != nil {
				logctx.Logger(ctx, s.log).Warn("recording a cancel's progress failed", zap.Error(err))
			}
			return fail(t, "deprovisioning", err)
		}
		acct.Steps[i].Undone = true
	}
	now := s.now().UTC()
	acct.Status, acct.CancelledAt = events.AccountCancelled, &now
	if err := s.save(ctx, w, acct); err != nil {
		return s.storeDown(ctx, err), false
	}
	return out, true
}

// sweep makes sure a cancelled subscription has nothing live left in any
// target, undoing work that landed after the cancel looked.
func (s *Service) sweep(ctx context.Context, w *work, acct *events.Account) (out events.Outcome, ok bool) {
	j := w.job(nil)
	for _, t := range w.plan.Targets {
		step, presence, err := t.Find(ctx, j)
		if err != nil {
			f := classify(t.Name(), err)
			logctx.Logger(ctx, s.log).Warn("checking a cancelled subscription failed", zap.String("target", t.Name()), zap.Error(f.Err))
			if w.ev.EventType == events.SubscriptionCancel {
				return events.NotCancelled(t.Name() + " could not be checked; send the cancel again"), false
			}
			return outcomeOf(f), false
		}
		step.Target = t.Name()
		if presence != Live {
			if presence != Absent {
				j.Steps = append(j.Steps, step)
			}
			continue
		}
		logctx.Logger(ctx, s.log).Warn("a cancelled subscription had live work; undoing it", zap.String("subscription", w.subscription), zap.String("target", t.Name()))
		if err := t.Deprovision(ctx, j, step); err != nil {
			f := classify(t.Name(), err)
			if w.ev.EventType == events.SubscriptionCancel {
				return events.NotCancelled(t.Name() + " failed while undoing late work; send the cancel again"), false
			}
			return outcomeOf(f), false
		}
		step.Undone = true
		j.Steps = append(j.Steps, step)
	}
	return out, true
}

// usePlanOf makes the account's own product govern its steps: an event
// that reached it through another product's extension (without a
// product_identifier to refuse it) changes or undoes what the account's
// product provisioned, not what the extension's would. false when that
// product is no longer configured.
func (s *Service) usePlanOf(w *work, acct *events.Account) bool {
	if acct.Product == "" || acct.Product == w.plan.Product {
		return true
	}
	p, ok := s.plans[acct.Product]
	if ok {
		w.plan = p
	}
	return ok
}

// save records acct under the lock.
func (s *Service) save(ctx context.Context, w *work, acct *events.Account) error {
	acct.UpdatedAt = s.now().UTC()
	return s.accounts.SaveAccount(ctx, w.token, *acct)
}

func (w *work) job(steps []events.Step) *Job {
	return &Job{Event: w.ev, Product: w.plan.Product, Subscription: w.subscription, Steps: steps}
}

func (p Plan) byName(name string) Target {
	for _, t := range p.Targets {
		if t.Name() == name {
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

// outcomeOf answers a failure that undoes nothing.
func outcomeOf(f *Failure) events.Outcome {
	switch f.Kind {
	case events.Final:
		return events.Refused(f.Code, f.Message)
	case events.Unsettled:
		return events.Unsettling(f.Code, f.Message)
	}
	return events.Unavailable(f.Message, max(f.RetryAfter, time.Second))
}

// applyOrder records what an order bought.
func applyOrder(a *events.Account, o *events.Order) {
	if o == nil {
		return
	}
	a.Edition, a.PricingDuration = o.EditionCode, o.PricingDuration
	a.Items = append([]events.Item(nil), o.Items...)
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
	return events.Unavailable("the account store is unavailable; nothing final was recorded, send the event again", 5*time.Second)
}
