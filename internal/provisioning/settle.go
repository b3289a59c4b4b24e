package provisioning

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/backoff"
	"github.com/banking-marketplace/webhook/internal/events"
)

// stop is why a settle pass ended before the account was settled.
type stop struct {
	target  string
	failure *Failure // nil when waitCopy
	// waitCopy: a step can only be created from the marketplace's event
	// (personal data the service never stores): the next copy carries on.
	waitCopy bool
	store    error // the account store failed: nothing more can be recorded
}

func (st *stop) reason() string {
	switch {
	case st == nil:
		return ""
	case st.store != nil:
		return "the account store is unavailable"
	case st.waitCopy:
		return st.target + ": waiting for the next copy of the event"
	}
	return st.target + ": " + string(st.failure.Code) + ": " + st.failure.Message
}

// settle moves every step toward the intent, recording each transition:
// in plan order toward "active", in reverse toward "cancelled" or
// "refused". It is the one loop behind every event and the settler. The
// intent may change on the way (an ORDER refused for good is undone, a
// refused CHANGE rolls back to what was promised, work found undone means
// the subscription was cancelled); the loop then goes on toward the new
// one. nil: settled.
func (w *work) settle(ctx context.Context) *stop {
	for range 4 { // each intent change is final or a roll-back: a few at most
		rev := w.acct.Intent.Rev
		var st *stop
		if w.acct.Intent.State.Undo() {
			st = w.undoAll(ctx)
		} else {
			st = w.doAll(ctx)
		}
		if w.acct.Intent.Rev == rev || st != nil && st.store != nil {
			return st
		}
	}
	return &stop{failure: Outage("the subscription's intent kept changing; it is settled later", 0, nil)}
}

// slot is one step the loop moves: a step of the product's plan, or the
// step of a user assigned to the subscription (member) in the plan's
// target that enrolls users.
type slot struct {
	t      Target
	st     *events.Step
	member *events.Member // nil for a plan step
	first  bool           // the plan's first step: its id is the account's identifier
}

func (w *work) planSlot(i int) slot {
	return slot{t: w.plan.Targets[i], st: &w.acct.Steps[i], first: i == 0}
}

// memberSlots are the slots of the assigned users, in the target that
// enrolls them; none when no target of the plan does.
func (w *work) memberSlots() []slot {
	t := w.plan.memberTarget()
	if t == nil {
		return nil
	}
	out := make([]slot, len(w.acct.Members))
	for i := range w.acct.Members {
		m := &w.acct.Members[i]
		if m.Step.Target == "" {
			m.Step = events.Step{Target: t.Name(), State: events.StepPending}
		}
		out[i] = slot{t: t, st: &m.Step, member: m}
	}
	return out
}

// jobOf is what the target of s needs to know.
func (w *work) jobOf(s slot) *Job {
	j := w.job(-1)
	j.Current = *s.st
	if s.member != nil {
		j.Member, j.MemberGen = s.member.User, s.member.Gen
		// Only the assignment of this user carries what its step is
		// made of; any other event is none of its business.
		if ev := w.ev; ev == nil || ev.EventType != events.UserAssignment || ev.Event.Payload.User == nil || ev.Event.Payload.User.UUID != j.Member {
			j.Event = nil
		}
	}
	return j
}

// doAll brings every step, in plan order, live as the intent asks, then
// the assigned users' steps (and undoes the unassigned ones).
func (w *work) doAll(ctx context.Context) *stop {
	for i := range w.plan.Targets {
		if st := w.do(ctx, w.planSlot(i)); st != nil {
			return st
		}
		if w.acct.Intent.State != events.IntentActive {
			return nil // the intent changed: settle goes on toward it
		}
	}
	for _, s := range w.memberSlots() {
		var st *stop
		if s.member.Assigned {
			st = w.do(ctx, s)
		} else {
			st = w.undo(ctx, s)
		}
		if st != nil {
			return st
		}
	}
	w.dropUnassigned()
	return nil
}

// do brings the step of s live at the intent's revision.
func (w *work) do(ctx context.Context, s slot) *stop {
	t, st := s.t, s.st
	rev := w.acct.Intent.Rev
	if st.State == events.StepLive {
		if st.Rev >= rev || s.member != nil { // a user's step has nothing to change
			return nil
		}
		ctx, span := stepSpan(ctx, s, "change")
		defer span.End()
		if err := w.flush(ctx); err != nil {
			return &stop{target: t.Name(), store: err}
		}
		changed, err := t.Change(ctx, w.jobOf(s), *st)
		if err != nil {
			return w.failed(ctx, s, "changing", err)
		}
		w.record(s, changed, events.StepLive, rev)
		return nil
	}
	ctx, span := stepSpan(ctx, s, "create")
	defer span.End()
	if w.primed && s.first && st.State == events.StepCalling {
		// Recorded "calling" by this delivery's claim, as Prime built it
		// from a subscription without a record: no earlier call exists.
		w.primed = false
		return w.provision(ctx, s, events.StepPending, nil)
	}
	if st.State != events.StepPending {
		// calling, unknown (a call may have created it) or undone (to be
		// provisioned again): ask before creating.
		step, presence, err := t.Find(ctx, w.jobOf(s))
		if err != nil {
			return w.failed(ctx, s, "looking for earlier work", err)
		}
		switch presence {
		case Live:
			created := st.Rev // the intent the call that created it was for
			if st.State == events.StepUndone {
				created = 0
			}
			step.Uncertain = st.Uncertain
			w.record(s, step, events.StepLive, created)
			w.identify(s)
			return w.do(ctx, s) // changed since? Change it.
		case Gone:
			return w.goneOutside(ctx, s, step)
		}
	}
	prep, err := t.Prepare(ctx, w.jobOf(s))
	switch {
	case errors.Is(err, ErrNeedsEvent):
		return &stop{target: t.Name(), waitCopy: true}
	case err != nil:
		return w.failed(ctx, s, "preparing", err)
	}
	if s.first && prep.ID != "" {
		if st := w.claimIdentifier(ctx, s, prep.ID); st != nil {
			return st
		}
	}
	before, uncertain := st.State, st.Uncertain
	w.calling(s, prep)
	if err := w.flush(ctx); err != nil { // "calling" is recorded before the call goes out
		return &stop{target: t.Name(), store: err}
	}
	return w.provision(ctx, s, before, uncertain)
}

// calling records the step of s "calling", as Prepare made it, before the
// call that creates it.
func (w *work) calling(s slot, prep events.Step) {
	now := w.s.now().UTC()
	prep.Attempts, prep.LastError, prep.Uncertain = s.st.Attempts, s.st.LastError, &now
	w.record(s, prep, events.StepCalling, w.acct.Intent.Rev)
}

// provision makes the call that creates the step of s, recorded
// "calling"; before and uncertain are the step's state and its last
// unanswered call before that record, restored when the call is refused.
func (w *work) provision(ctx context.Context, s slot, before events.StepState, uncertain *time.Time) *stop {
	t, st, rev := s.t, s.st, w.acct.Intent.Rev
	step, err := t.Provision(ctx, w.jobOf(s))
	switch {
	case errors.Is(err, ErrGone):
		st.Uncertain = uncertain // it answered: nothing of this call is in flight
		return w.goneOutside(ctx, s, step)
	case err != nil:
		stp := w.failed(ctx, s, "provisioning", err)
		if stp.failure.Kind != Transient { // refused: nothing was created
			st.State, st.Uncertain = before, uncertain
		}
		return stp
	}
	step.Uncertain = uncertain // an earlier call without an answer may still land
	w.record(s, step, events.StepLive, rev)
	w.identify(s)
	return nil
}

// undoAll undoes every step that may exist: the assigned users' first,
// then the plan's in reverse order; and checks undone steps again for
// late work when their recheck is due.
func (w *work) undoAll(ctx context.Context) *stop {
	for _, s := range w.memberSlots() {
		if st := w.undo(ctx, s); st != nil {
			return st
		}
	}
	for i := len(w.plan.Targets) - 1; i >= 0; i-- {
		if st := w.undo(ctx, w.planSlot(i)); st != nil {
			return st
		}
	}
	return nil
}

// undo undoes the step of s if it may exist, or if a recheck for late
// work is due.
func (w *work) undo(ctx context.Context, s slot) *stop {
	t, st := s.t, s.st
	// A recheck for late work is due on its schedule, and at once when an
	// event of the subscription comes in.
	recheck := !st.State.MayExist() && st.Recheck != nil && (w.ev != nil || !w.s.now().Before(*st.Recheck))
	if !st.State.MayExist() && !recheck {
		return nil
	}
	ctx, span := stepSpan(ctx, s, "undo")
	defer span.End()
	if st.State != events.StepLive {
		// calling or unknown (a call may have created it), or a recheck
		// for late work: ask first when the target can tell.
		step, presence, err := t.Find(ctx, w.jobOf(s))
		if err != nil {
			return w.failed(ctx, s, "looking for the subscription's work", err)
		}
		switch presence {
		case Absent, Gone:
			st.State, st.Recheck = events.StepUndone, w.nextRecheck(st.Uncertain)
			w.dirty = true
			return nil
		case Live:
			// Live, whatever the record said (late work found by a
			// recheck): recorded so, until its undo is done.
			step.Uncertain, step.Recheck, step.Rev = st.Uncertain, st.Recheck, st.Rev
			step.Attempts, step.LastError = st.Attempts, st.LastError
			step.Target, step.State = t.Name(), events.StepLive
			*st = step
			w.dirty = true
			w.identify(s)
		}
	}
	if err := w.flush(ctx); err != nil { // the intent is recorded before the call
		return &stop{target: t.Name(), store: err}
	}
	if err := t.Deprovision(ctx, w.jobOf(s), *st); err != nil {
		return w.failed(ctx, s, "undoing", err)
	}
	wasLive := st.State.MayExist()
	st.State, st.Attempts, st.LastError = events.StepUndone, 0, ""
	st.Recheck = w.nextRecheck(st.Uncertain)
	w.dirty = true
	w.moved++
	w.s.cfg.Observer.SettleAttempt(t.Name(), "done")
	if wasLive {
		w.s.cfg.Observer.StepUndone(t.Name())
		w.log(ctx).Info("step undone", zap.String("target", t.Name()), zap.Bool("user", s.member != nil))
	} else {
		w.log(ctx).Warn("late work found undone again", zap.String("target", t.Name()))
	}
	return nil
}

// dropUnassigned forgets the users unassigned and undone for good (no
// recheck left): a record of every user ever assigned would only grow.
func (w *work) dropUnassigned() {
	kept := w.acct.Members[:0]
	for _, m := range w.acct.Members {
		if m.Assigned || m.Step.State.MayExist() || m.Step.Recheck != nil || !m.Promised {
			kept = append(kept, m)
		}
	}
	if len(kept) != len(w.acct.Members) {
		w.dirty = true
	}
	w.acct.Members = kept
}

// rechecks are when an undone step is checked again for work that a call
// without an answer makes land late, counted from that call: soon first,
// then less often, for an hour.
var rechecks = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 3 * time.Minute,
	10 * time.Minute, 30 * time.Minute, time.Hour}

// nextRecheck is the next recheck after now of a step whose latest
// uncertain call went out at uncertain; nil when there is none left.
func (w *work) nextRecheck(uncertain *time.Time) *time.Time {
	if uncertain == nil {
		return nil
	}
	now := w.s.now()
	for _, d := range rechecks {
		if at := uncertain.Add(d); at.After(now) {
			return &at
		}
	}
	return nil
}

// record puts step as the step of s, in state at revision rev.
func (w *work) record(s slot, step events.Step, state events.StepState, rev int) {
	cur := *s.st
	step.Target, step.State, step.Rev = cur.Target, state, rev
	if state == events.StepLive {
		step.Attempts, step.LastError = 0, ""
		if cur.State != events.StepLive || cur.Rev != rev {
			w.moved++
			w.s.cfg.Observer.SettleAttempt(cur.Target, "done")
		}
	}
	*s.st = step
	w.dirty = true
}

// identify makes the first step's id the account's identifier.
func (w *work) identify(s slot) {
	if s.first && w.acct.AccountIdentifier == "" && s.st.ID != "" {
		w.setIdentifier(s.st.ID)
	}
}

// setIdentifier makes id the account's identifier, unless the account is
// identified by its own subscription id (events.SubscriptionEvent's
// AccountIsSubscription), which nothing replaces.
func (w *work) setIdentifier(id string) {
	if w.acct.AccountIdentifier == w.acct.SubscriptionID || w.acct.AccountIdentifier == id {
		return
	}
	w.acct.AccountIdentifier = id
	w.dirty = true
}

// existed reports whether anything of the subscription ever existed in
// an outside system, as far as its record knows.
func existed(a events.Account) bool {
	if a.AccountIdentifier != "" && a.AccountIdentifier != a.SubscriptionID {
		return true
	}
	for _, st := range a.Steps {
		if st.ID != "" {
			return true
		}
	}
	return false
}

// claimIdentifier makes an identifier known before the first call (a
// Helix entitlement's name, for a product whose first target is helix)
// this subscription's, atomically: an accountIdentifier names exactly one
// subscription, and two subscriptions of one entitlement would cancel
// each other's. It may be taken over from a former subscription only once
// that one is cancelled and settled, with no recheck for late work left:
// before, its settler may still remove what the name stands for.
func (w *work) claimIdentifier(ctx context.Context, s slot, id string) *stop {
	t := s.t
	if w.acct.AccountIdentifier == id {
		return nil
	}
	sub := w.acct.SubscriptionID
	owner, err := w.s.accounts.ClaimIdentifier(ctx, id, sub, "")
	if err != nil {
		return &stop{target: t.Name(), store: err}
	}
	if owner != sub {
		other, err := w.s.accounts.Account(ctx, owner)
		switch {
		case err != nil && !errors.Is(err, events.ErrNotFound):
			return &stop{target: t.Name(), store: err}
		case err == nil && !gone(other):
			return w.failed(ctx, s, "claiming the account identifier", Refusal(events.UserAlreadyExists,
				t.Name()+" already provisions this for subscription "+owner+"; one account cannot serve two subscriptions", nil))
		}
		if owner, err = w.s.accounts.ClaimIdentifier(ctx, id, sub, owner); err != nil {
			return &stop{target: t.Name(), store: err}
		}
		if owner != sub { // another subscription took it meanwhile
			return w.failed(ctx, s, "claiming the account identifier", Refusal(events.UserAlreadyExists,
				t.Name()+" already provisions this for subscription "+owner+"; one account cannot serve two subscriptions", nil))
		}
	}
	w.setIdentifier(id)
	return nil
}

// gone reports whether an account is cancelled (or refused) and settled,
// with no recheck for late work left: nothing of it will be touched again.
func gone(a events.Account) bool {
	if !a.Intent.State.Undo() || !a.Settled() {
		return false
	}
	for _, s := range a.Steps {
		if s.Recheck != nil {
			return false
		}
	}
	return true
}

// failed records a failed call of step i and decides what it does to the
// intent: a refusal of an intent not answered yet replaces it (an ORDER is
// refused and undone, a CHANGE rolls back to what was promised); anything
// else stops the pass, to be tried again.
func (w *work) failed(ctx context.Context, s slot, doing string, err error) *stop {
	t, st := s.t, s.st
	f := Classify(t.Name(), err)
	trace.SpanFromContext(ctx).SetStatus(codes.Error, f.Kind.String()+" "+string(f.Code)) // the step's span: a code, never the message
	st.Attempts++
	st.LastError = string(f.Code) + ": " + f.Message
	if doing == "provisioning" && f.Kind == Transient {
		now := w.s.now().UTC()
		st.State, st.Uncertain = events.StepUnknown, &now
	}
	w.dirty = true
	w.s.cfg.Observer.SettleAttempt(t.Name(), f.Kind.String())
	events.Decided(ctx, stepReason(ctx, t.Name(), doing, f))
	log := w.log(ctx).With(zap.String("target", t.Name()), zap.String("doing", doing), zap.Stringer("kind", f.Kind),
		zap.String("code", string(f.Code)), zap.Error(f.Err))
	if f.Kind == Misconfigured {
		w.s.cfg.Observer.Misconfigured(t.Name())
		log.Error("an outside system refused the service's own setup; fix it, the subscription is settled then")
	} else {
		log.Warn("a target failed")
	}
	stp := &stop{target: t.Name(), failure: f}
	switch {
	case f.Kind != Refused:
	case s.member != nil:
		if s.member.Assigned && !s.member.Promised && !st.State.MayExist() {
			// A user's assignment refused: it is not kept.
			s.member.Assigned, s.member.Promised = false, true
			w.refusal = f
		}
	case w.refuse(ctx, f):
		w.refusal = f
	}
	return stp
}

// refuse replaces an intent that no 200 answered yet by what a refusal
// leaves: an ORDER becomes refused (its steps are undone), a CHANGE rolls
// back to the intent promised before it. false: the intent was promised
// and stays (the failure is tried again, and alerts as unsettled).
func (w *work) refuse(ctx context.Context, f *Failure) bool {
	in := w.acct.Intent
	if in.State != events.IntentActive || in.Promised {
		return false
	}
	if w.acct.Prior == nil {
		w.newIntent(events.IntentRefused, in.By)
		w.acct.Intent.Code, w.acct.Intent.Message = f.Code, f.Message
		w.log(ctx).Info("the order is refused for good; what it provisioned is undone", zap.String("code", string(f.Code)))
		return true
	}
	w.rollBack()
	w.log(ctx).Info("the change is refused; the subscription goes back to what was promised before", zap.String("code", string(f.Code)))
	return true
}

// rollBack makes the last promised intent current again, with a new
// revision, so that steps changed since are brought back to it.
func (w *work) rollBack() {
	p := *w.acct.Prior
	p.Rev, p.Promised = w.acct.Intent.Rev+1, true
	w.acct.Intent, w.acct.Prior = p, nil
	w.dirty = true
}

// goneOutside records step i found undone by a target: the subscription
// was cancelled (its record lost, or a user deleted behind the service's
// back). The subscription stays cancelled; the rest is undone.
func (w *work) goneOutside(ctx context.Context, s slot, step events.Step) *stop {
	step.Uncertain = s.st.Uncertain
	w.record(s, step, events.StepUndone, s.st.Rev)
	if s.member != nil {
		// A user of the subscription deleted outside the service: it is
		// no longer assigned.
		w.log(ctx).Warn("an assigned user's work was undone outside the service", zap.String("target", s.t.Name()))
		s.member.Assigned, s.member.Promised = false, true
		return nil
	}
	w.log(ctx).Warn("a target holds this subscription's work undone: it was cancelled", zap.String("target", s.t.Name()))
	w.identify(s)
	w.newIntent(events.IntentCancelled, events.SubscriptionCancel)
	w.acct.Intent.Promised, w.acct.Prior = true, nil // cancelled before, and answered then
	return nil
}

// schedule sets where settling stands after a pass that ended with st,
// for the settle queue.
func (w *work) schedule(st *stop) {
	now := w.s.now().UTC()
	prev := w.acct.Settle
	next := events.Settle{Attempts: prev.Attempts + 1}
	if w.moved > 0 {
		next.Attempts = 1
	}
	abandonAt := w.abandonAt()
	unanswered := !abandonAt.IsZero()
	switch {
	case st == nil && w.acct.Settled() && unanswered:
		// Settled, but answered only with 503 so far: the marketplace may
		// believe it failed. Kept on the list, due when it is given up.
		next.Since, next.Attempts = prev.Since, 0
		if next.Since.IsZero() {
			next.Since = now
		}
		next.Due = abandonAt
		next.Waiting = "settled, but answered only with 503: waiting for the next copy of the event, or given up at " +
			next.Due.Format(time.RFC3339)
	case st == nil && w.acct.Settled():
		// Settled; rechecks for late work keep it queued, not unsettled.
		for _, s := range w.allSteps() {
			if s.Recheck != nil && (next.Due.IsZero() || s.Recheck.Before(next.Due)) {
				next.Due = *s.Recheck
			}
		}
		next.Attempts = 0
	default:
		next.Since, next.Waiting = prev.Since, st.reason()
		if next.Since.IsZero() {
			next.Since = now
		}
		next.Due = now.Add(retryIn(next.Attempts))
		if st != nil && st.waitCopy {
			next.Due = time.Time{}
		}
		if unanswered && (next.Due.IsZero() || abandonAt.Before(next.Due)) {
			next.Due = abandonAt
		}
		if next.Due.IsZero() { // a promised intent waiting for a copy that will not come: look again later
			next.Due = now.Add(time.Hour)
		}
	}
	if next != prev {
		w.acct.Settle = next
		w.dirty = true
	}
}

// abandonAt is when what is answered only with 503 so far (the intent, or
// a user's assignment) is given up if no copy comes; zero when nothing is.
func (w *work) abandonAt() time.Time {
	var at time.Time
	earliest := func(t time.Time) {
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	if in := w.acct.Intent; in.State == events.IntentActive && !in.Promised {
		earliest(in.LastCopy.Add(w.s.cfg.AbandonAfter))
	}
	for _, m := range w.acct.Members {
		if !m.Promised {
			earliest(m.LastCopy.Add(w.s.cfg.AbandonAfter))
		}
	}
	return at
}

// allSteps are the plan's steps and the assigned users'.
func (w *work) allSteps() []events.Step {
	out := append([]events.Step(nil), w.acct.Steps...)
	for _, m := range w.acct.Members {
		out = append(out, m.Step)
	}
	return out
}

// retryIn is how long the settler waits before its pass number attempts
// (from 1) on an account that makes no progress: about 10 s, doubling, up
// to an hour, jittered so that replicas and subscriptions spread out.
func retryIn(attempts int) time.Duration {
	d := time.Hour
	if shift := attempts - 1; shift >= 0 && shift < 16 {
		d = min(10*time.Second<<shift, time.Hour)
	}
	return backoff.Half(d)
}

// finish schedules the account, saves it, and makes sure the reply rests
// on an acknowledged write (Confirm when nothing needed writing).
func (w *work) finish(ctx context.Context, st *stop) error {
	if st != nil && st.store != nil {
		return st.store
	}
	if w.acct.Intent.State == "" {
		return nil // a subscription nothing is known of, and nothing asked: no record
	}
	if ctx.Err() != nil {
		// The pass ran into its deadline (an outside call timed out): what
		// it learnt is still recorded, within a short budget of its own.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), finishBudget)
		defer cancel()
	}
	w.schedule(st)
	w.finishing = true
	if !w.dirty {
		return w.s.accounts.Confirm(ctx, w.token, w.acct)
	}
	return w.flush(ctx)
}

// finishBudget is how long the last save of a pass may take once the
// pass's own deadline is over.
const finishBudget = 2 * time.Second

// Report is what one settle pass did to a subscription, for the settle
// command and the log.
type Report struct {
	Subscription string
	Intent       events.IntentState
	Settled      bool
	Abandoned    bool
	Steps        []events.Step
	Waiting      string    // why it is not settled
	Due          time.Time // when the settler works on it next; zero: never
	Missing      bool      // no such account: its queue entry is stale
}

// Settle runs one settle pass on a subscription now, under its lock (not
// waiting for it: events.ErrBusy when another replica or event holds it).
// An intent that was never answered with success and whose copies stopped
// coming for ABANDON_AFTER is given up first.
func (s *Service) Settle(ctx context.Context, subscription string) (Report, error) {
	token, unlock, err := s.accounts.Lock(ctx, subscription, s.cfg.LockLease, 0)
	if err != nil {
		return Report{}, err
	}
	defer unlock()
	acct, err := s.accounts.Account(ctx, subscription)
	if errors.Is(err, events.ErrNotFound) {
		// A queue entry with no account (a save cut short on Cluster):
		// dropped under the lock, so no event can save it meanwhile.
		return Report{Subscription: subscription, Missing: true}, s.accounts.Unqueue(ctx, subscription)
	}
	if err != nil {
		return Report{}, err
	}
	plan, ok := s.plans[acct.Product]
	w := &work{s: s, plan: plan, token: token, acct: acct}
	if ok {
		w.alignSteps()
	}
	if !ok || !w.usePlanOfAccount() {
		// The products file lost what the account needs: nothing can be
		// moved until it is back. Tried again with backoff, and alerting.
		err := fmt.Errorf("subscription %s: product %q is not configured, or lost a target a step of which may still exist; fix PRODUCTS_FILE", subscription, acct.Product)
		w.acct.Settle.Attempts++
		w.acct.Settle.Waiting = err.Error()
		w.acct.Settle.Due = s.now().UTC().Add(retryIn(w.acct.Settle.Attempts))
		if w.acct.Settle.Since.IsZero() {
			w.acct.Settle.Since = s.now().UTC()
		}
		w.finishing, w.dirty = true, true
		if serr := w.flush(ctx); serr != nil {
			return Report{}, serr
		}
		return Report{}, err
	}
	rep := Report{Subscription: subscription}
	for i := range w.acct.Members {
		if m := &w.acct.Members[i]; !m.Promised && !s.now().Before(m.LastCopy.Add(s.cfg.AbandonAfter)) {
			// A user's assignment (or unassignment) answered only with 503,
			// no copy since: given up. Nothing of it stays.
			rep.Abandoned = true
			m.Assigned, m.Promised = false, true
			s.cfg.Observer.Abandoned(string(events.UserAssignment))
		}
	}
	if in := w.acct.Intent; in.State == events.IntentActive && !in.Promised && !s.now().Before(in.LastCopy.Add(s.cfg.AbandonAfter)) {
		rep.Abandoned = true
		s.cfg.Observer.Abandoned(string(in.By))
		if w.acct.Prior != nil {
			w.rollBack()
		} else {
			w.newIntent(events.IntentRefused, in.By)
			w.acct.Intent.Promised = true
			w.acct.Intent.Code, w.acct.Intent.Message = events.OperationCancelled, fmt.Sprintf(
				"the order was not completed and no copy of it came for %s; what it provisioned was undone", s.cfg.AbandonAfter)
		}
		w.log(ctx).Warn("an intent answered only with 503 was given up", zap.String("subscription", subscription), zap.String("event_type", string(in.By)))
	}
	st := w.settle(ctx)
	w.dirty = true // a pass always writes: its queue entry says what it found
	if err := w.finish(ctx, st); err != nil {
		return Report{}, err
	}
	rep.Intent, rep.Settled, rep.Steps = w.acct.Intent.State, w.acct.Settled(), w.acct.Steps
	rep.Waiting, rep.Due = w.acct.Settle.Waiting, w.acct.Settle.Due
	return rep, nil
}

// stepSpan is the span of one step of the plan ("step q2 create", "step
// q2 user undo"), a child of the delivery's or the settle pass's span;
// none when ctx carries none (tracing off).
func stepSpan(ctx context.Context, s slot, verb string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent
	}
	name := "step " + s.t.Name()
	if s.member != nil {
		name += " user"
	}
	return parent.TracerProvider().Tracer("github.com/banking-marketplace/webhook/internal/provisioning").Start(ctx, name+" "+verb)
}
