package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
)

// This file holds what each event type asks: how it changes the intent,
// and what it is answered once the settle loop has run. Every answer
// rests on a saved record (finish), and a 200 answer is a promise the
// service keeps by itself (see the package comment).

// order: provision the subscription. A subscription ordered before is
// answered as before; a cancelled or refused one is never provisioned
// again.
func (s *Service) order(ctx context.Context, w *work) events.Outcome {
	if w.fresh {
		w.orderIntent()
	}
	in := w.acct.Intent
	switch {
	case in.State == events.IntentCancelled:
		return w.answer(ctx, w.settle(ctx), because(ctx, "order: subscription cancelled", forbidden(w)))
	case in.State == events.IntentRefused:
		return w.answerPromising(ctx, w.settle(ctx), because(ctx, "order: refused before ("+string(in.Code)+")", events.Refusal(in.Code, in.Message)))
	case in.Promised || w.acct.Prior != nil:
		// Provisioned and answered before (a CHANGE may be under way).
		return w.answer(ctx, nil, events.Provisioned(w.acct.AccountIdentifier))
	}
	// An ORDER not answered with success yet: this copy carries it on.
	w.acct.Intent.LastCopy = s.now().UTC()
	w.dirty = true
	st := w.settle(ctx)
	switch in := w.acct.Intent; {
	case in.State == events.IntentRefused:
		return w.answerPromising(ctx, st, events.Refusal(in.Code, in.Message))
	case in.State == events.IntentCancelled:
		return w.answer(ctx, st, because(ctx, "order: subscription cancelled", forbidden(w)))
	case st == nil:
		return w.answerPromising(ctx, st, events.Provisioned(w.acct.AccountIdentifier))
	}
	return w.answer(ctx, st, w.notNow(st))
}

// orderIntent is the intent of a subscription's first ORDER.
func (w *work) orderIntent() {
	w.newIntent(events.IntentActive, events.SubscriptionOrder)
	applyOrder(&w.acct.Intent, w.ev)
	w.acct.UserID = w.ev.UserID
}

func forbidden(w *work) events.Outcome {
	return events.Refusal(events.Forbidden, "subscription "+w.acct.SubscriptionID+" was cancelled; it is not provisioned again")
}

// change: apply a new edition and quantities. A CHANGE older than the
// one applied (by the events' own time) is answered, not applied.
func (s *Service) change(ctx context.Context, w *work) events.Outcome {
	if w.fresh {
		if out, ok := w.rebuild(ctx); !ok {
			return out
		}
	}
	in := w.acct.Intent
	switch {
	case w.fresh || in.State.Undo():
		return w.answer(ctx, nil, because(ctx, "change: no active account", events.Refusal(events.AccountNotFound, "no active account for subscription "+w.acct.SubscriptionID)))
	case !in.Promised && w.acct.Prior == nil:
		// Its ORDER is under way: the CHANGE waits for it rather than being
		// refused for good.
		events.Decided(ctx, "change: order under way")
		return events.InProgress("the order of subscription "+w.acct.SubscriptionID+" is still being provisioned; send the change again shortly", 5*time.Second)
	}
	at := eventTime(w.ev)
	if at != nil && in.EventTime != nil && at.Before(*in.EventTime) {
		w.log(ctx).Info("a change older than the one applied is not applied")
		return w.answer(ctx, nil, events.Provisioned(w.acct.AccountIdentifier))
	}
	want := in
	applyOrder(&want, w.ev)
	if want.EventTime == nil {
		want.EventTime = in.EventTime
	}
	if in.Promised && sameOrder(in, want) && w.acct.Settled() {
		return w.answer(ctx, nil, events.Provisioned(w.acct.AccountIdentifier)) // nothing to change
	}
	w.newIntent(events.IntentActive, events.SubscriptionChange)
	w.acct.Intent.Edition, w.acct.Intent.PricingDuration, w.acct.Intent.Items, w.acct.Intent.EventTime =
		want.Edition, want.PricingDuration, want.Items, want.EventTime
	st := w.settle(ctx)
	switch {
	case w.refusal != nil:
		return w.answer(ctx, st, events.Refusal(w.refusal.Code, w.refusal.Message))
	case w.acct.Intent.State == events.IntentCancelled: // found cancelled outside the service
		events.Decided(ctx, "change: found cancelled")
		return w.answer(ctx, st, events.Refusal(events.AccountNotFound, "subscription "+w.acct.SubscriptionID+" was cancelled"))
	case st == nil:
		return w.answerPromising(ctx, st, events.Provisioned(w.acct.AccountIdentifier))
	}
	return w.answer(ctx, st, w.notNow(st))
}

func sameOrder(a, b events.Intent) bool {
	return a.Edition == b.Edition && a.PricingDuration == b.PricingDuration && slices.Equal(a.Items, b.Items)
}

// cancel: undo every step. Once the undo has begun it is finished (by
// this copy, a later one or the settler) and answered success; when it
// could not begin (the first undo was refused, or answered an error that
// did nothing) the subscription stays as it was: DO_NOT_CANCEL.
func (s *Service) cancel(ctx context.Context, w *work) events.Outcome {
	if w.fresh {
		if out, ok := w.rebuild(ctx); !ok {
			return out
		}
	}
	switch in := w.acct.Intent; {
	case w.fresh:
		// Nothing of it anywhere: the ORDER has not arrived (or never
		// will). Recorded cancelled, so that a late ORDER is refused; a
		// step no target can tell about (Helix) is undone all the same.
		w.newIntent(events.IntentCancelled, events.SubscriptionCancel)
		w.fresh = false
		return w.answerPromising(ctx, w.settle(ctx), cancelled(ctx, w))
	case in.State == events.IntentCancelled:
		return w.answerPromising(ctx, w.settle(ctx), cancelled(ctx, w))
	case in.State == events.IntentRefused:
		w.newIntent(events.IntentCancelled, events.SubscriptionCancel)
		events.Decided(ctx, "cancel: order was refused")
		return w.answerPromising(ctx, w.settle(ctx), events.Refusal(events.AccountNotFound,
			"the order of subscription "+w.acct.SubscriptionID+" was refused; nothing of it exists"))
	}
	before, prior, cancelledAt := w.acct.Intent, w.acct.Prior, w.acct.CancelledAt
	w.newIntent(events.IntentCancelled, events.SubscriptionCancel)
	st := w.settle(ctx)
	if st != nil && st.store == nil && w.moved == 0 && w.acct.Intent.State == events.IntentCancelled && noEffect(st.failure) {
		// Nothing was undone: the subscription stays as it was.
		w.acct.Intent, w.acct.Prior, w.acct.CancelledAt = before, prior, cancelledAt
		w.dirty = true
		if st.failure.Kind == Misconfigured {
			return w.answer(ctx, st, w.notNow(st))
		}
		return w.answer(ctx, st, events.NotCancelled(st.target+" could not undo the subscription now ("+
			string(st.failure.Code)+"); it is kept as it was, send the cancel again"))
	}
	return w.answerPromising(ctx, st, cancelled(ctx, w))
}

// cancelled answers a CANCEL: success with the identifier, or
// ACCOUNT_NOT_FOUND when nothing of the subscription ever existed.
func cancelled(ctx context.Context, w *work) events.Outcome {
	if !existed(w.acct) {
		return because(ctx, "cancel: nothing of it exists", events.Refusal(events.AccountNotFound, "nothing of subscription "+w.acct.SubscriptionID+
			" exists; it is recorded as cancelled, so a later order is refused"))
	}
	return events.Provisioned(w.acct.AccountIdentifier)
}

// noEffect reports whether a failed call surely changed nothing: a
// refusal, or an error status the outside system itself answered (a 4xx,
// or 503 "not now"). Not a timeout or a broken connection, not an
// unreadable reply (whatever its status), not a 500, 502 or 504, after
// which the work may have been done.
func noEffect(f *Failure) bool {
	if f == nil {
		return false
	}
	if f.Kind != Transient {
		return true
	}
	var sc statusCoder
	if !errors.As(f.Err, &sc) {
		return false
	}
	s := sc.StatusCode()
	return s >= 400 && s < 500 || s == 503
}

// notNow answers an event whose intent could not be settled now and
// promises nothing: 503, sent again after Retry-After. The intent stays
// recorded, and the settler works on it meanwhile.
func (w *work) notNow(st *stop) events.Outcome {
	retry := 5 * time.Second
	if st.failure != nil {
		retry = max(st.failure.RetryAfter, time.Second)
		return events.Outage(st.target+": "+st.failure.Message+"; nothing is answered for good yet, send the event again", retry)
	}
	return events.Outage("the subscription could not be settled now; send the event again", retry)
}

// answer saves the account and returns out; when the save fails, the
// event is answered 503. It promises nothing of the current intent: an
// event answered "as before" (a copy of an ORDER, a late CHANGE) must not
// promise an intent another event set.
func (w *work) answer(ctx context.Context, st *stop, out events.Outcome) events.Outcome {
	if err := w.finish(ctx, st); err != nil {
		return w.s.storeDown(ctx, err)
	}
	return out
}

// answerPromising is answer for the event that set the current intent:
// a final out promises it, and the promise is saved before the reply.
func (w *work) answerPromising(ctx context.Context, st *stop, out events.Outcome) events.Outcome {
	if out.Kind == events.Final {
		w.promise()
	}
	return w.answer(ctx, st, out)
}

// known loads what an event of an existing subscription needs: the
// account, rebuilt from the targets when Redis forgot it. ok is false with
// the answer when there is nothing to act on.
func (w *work) known(ctx context.Context) (events.Outcome, bool) {
	if w.fresh {
		if out, ok := w.rebuild(ctx); !ok {
			return out, false
		}
	}
	in := w.acct.Intent
	switch {
	case w.fresh || in.State.Undo():
		return w.answer(ctx, nil, because(ctx, "event: no active account", events.Refusal(events.AccountNotFound, "no active account for subscription "+w.acct.SubscriptionID))), false
	case !in.Promised && w.acct.Prior == nil:
		// Its ORDER is under way: the event waits for it.
		events.Decided(ctx, "event: order under way")
		return events.InProgress("the order of subscription "+w.acct.SubscriptionID+" is still being provisioned; send the event again shortly", 5*time.Second), false
	}
	return events.Outcome{}, true
}

// notice: AppDirect's SUBSCRIPTION_NOTICE. DEACTIVATED suspends the
// subscription (the read API says "suspended"; the outside systems keep
// their steps, none of them can suspend), REACTIVATED makes it usable
// again, CLOSED cancels it as a CANCEL does, UPCOMING_INVOICE is
// acknowledged.
func (s *Service) notice(ctx context.Context, w *work) events.Outcome {
	kind := ""
	if n := w.ev.Event.Payload.Notice; n != nil {
		kind = n.Type
	}
	if kind == events.NoticeClosed {
		return s.cancel(ctx, w)
	}
	switch kind {
	case events.NoticeDeactivated, events.NoticeReactivated, events.NoticeUpcomingInvoice:
	default:
		events.Decided(ctx, "notice: type not handled")
		return events.Refusal(events.ConfigurationError, fmt.Sprintf(
			"SUBSCRIPTION_NOTICE %q is not handled; the service handles DEACTIVATED, REACTIVATED, CLOSED and UPCOMING_INVOICE", kind))
	}
	if out, ok := w.known(ctx); !ok {
		return out
	}
	if suspend := kind == events.NoticeDeactivated; kind != events.NoticeUpcomingInvoice && w.acct.Intent.Suspended != suspend {
		w.acct.Intent.Suspended = suspend
		w.dirty = true
		w.log(ctx).Info("subscription notice", zap.String("notice", kind))
	}
	return w.answer(ctx, nil, events.Provisioned(w.acct.AccountIdentifier))
}

// assign: AppDirect's USER_ASSIGNMENT enrolls one more user on the
// subscription's account, exactly once (its own derived logon), within
// the purchased USER quantity.
func (s *Service) assign(ctx context.Context, w *work) events.Outcome {
	user, out, ok := w.eventUser(ctx)
	if !ok {
		return out
	}
	if out, ok := w.known(ctx); !ok {
		return out
	}
	if w.plan.memberTarget() == nil {
		events.Decided(ctx, "assign: no target enrolls users")
		return w.answer(ctx, nil, events.Refusal(events.ConfigurationError,
			"product "+w.plan.Product+" enrolls no users beyond the first (no target of its plan does)"))
	}
	m, found := w.acct.Member(user)
	switch {
	case found && m.Assigned && m.Promised:
		events.Decided(ctx, "assign: user already assigned")
		return w.answer(ctx, nil, events.Refusal(events.UserAlreadyExists, "the user is already assigned to subscription "+w.acct.SubscriptionID))
	case !found || !m.Assigned:
		if limit, ok := userLimit(w.acct.Intent.Items); ok && 1+assigned(w.acct)+1 > limit {
			events.Decided(ctx, "assign: users purchased all assigned")
			return w.answer(ctx, nil, events.Refusal(events.MaxUsersReached, fmt.Sprintf(
				"subscription %s has %d of %d users; buy more to assign another", w.acct.SubscriptionID, 1+assigned(w.acct), limit)))
		}
		if !found {
			w.acct.Members = append(w.acct.Members, events.Member{User: user})
			m, _ = w.acct.Member(user)
		}
		if m.Step.State == events.StepUndone && m.Step.Recheck != nil {
			// Its removal may still be overtaken by a late call: checked
			// first, then the user can be assigned again.
			return w.answer(ctx, nil, because(ctx, "assign: the user's removal is still being checked",
				events.Outage("the user's earlier removal is still being checked; send the assignment again later", time.Minute)))
		}
		if m.Step.State == events.StepUndone {
			// Assigned again after an unassignment that is settled: a new
			// user of its own, since the outside system may keep the
			// deleted one's name taken (Q2 does).
			m.Gen++
			m.Step = events.Step{Target: m.Step.Target, State: events.StepPending}
		}
		m.Assigned, m.Promised = true, false
	}
	m.LastCopy = s.now().UTC()
	w.dirty = true
	st := w.settle(ctx)
	m, _ = w.acct.Member(user)
	switch {
	case w.refusal != nil:
		return w.answer(ctx, st, events.Refusal(w.refusal.Code, w.refusal.Message))
	case m != nil && m.Step.State == events.StepLive:
		m.Promised = true
		return w.answer(ctx, st, events.Provisioned(w.acct.AccountIdentifier))
	case st == nil:
		events.Decided(ctx, "assign: subscription cancelled")
		return w.answer(ctx, st, events.Refusal(events.AccountNotFound, "subscription "+w.acct.SubscriptionID+" was cancelled"))
	}
	return w.answer(ctx, st, w.notNow(st))
}

// unassign: AppDirect's USER_UNASSIGNMENT deletes that user's work. Once
// its undo has begun it is finished, as a CANCEL's.
func (s *Service) unassign(ctx context.Context, w *work) events.Outcome {
	user, out, ok := w.eventUser(ctx)
	if !ok {
		return out
	}
	if out, ok := w.known(ctx); !ok {
		return out
	}
	m, found := w.acct.Member(user)
	if !found || !m.Assigned {
		events.Decided(ctx, "unassign: user not assigned")
		return w.answer(ctx, nil, events.Refusal(events.UserNotFound, "the user is not assigned to subscription "+w.acct.SubscriptionID))
	}
	m.Assigned, m.Promised, m.LastCopy = false, false, s.now().UTC()
	w.dirty = true
	st := w.settle(ctx)
	if st != nil && st.store == nil && w.moved == 0 && noEffect(st.failure) {
		if m, ok := w.acct.Member(user); ok {
			m.Assigned, m.Promised = true, true // nothing was undone: as it was
		}
		return w.answer(ctx, st, w.notNow(st))
	}
	if m, ok := w.acct.Member(user); ok {
		m.Promised = true
	}
	return w.answer(ctx, st, events.Provisioned(w.acct.AccountIdentifier))
}

// eventUser is the user an assignment event names (payload.user.uuid).
func (w *work) eventUser(ctx context.Context) (string, events.Outcome, bool) {
	if u := w.ev.Event.Payload.User; u != nil && u.UUID != "" {
		return u.UUID, events.Outcome{}, true
	}
	return "", because(ctx, "event: no user", events.Refusal(events.UserNotFound, "the event names no user: payload.user.uuid is missing")), false
}

// userLimit is the purchased quantity of unit USER, when the order names
// one of 1 or more: the users of the subscription, the ORDER's own
// included. A USER quantity of 0 (or left out, read as 0) is no cap, as no
// USER item is: AppDirect sends it for an edition that is not sold per
// user (unlimited users), and read as a cap it refused every assignment.
func userLimit(items []events.Item) (int, bool) {
	for _, it := range items {
		if strings.EqualFold(it.Unit, "USER") {
			return int(it.Quantity), it.Quantity > 0
		}
	}
	return 0, false
}

// assigned counts the users assigned beyond the ORDER's own.
func assigned(a events.Account) int {
	n := 0
	for _, m := range a.Members {
		if m.Assigned {
			n++
		}
	}
	return n
}
