package events

import (
	"encoding/json"
	"time"
)

// Account is the record of one subscription: what the marketplace asked
// for it last (its intent), and where each step of its product's plan
// stands in its outside system. The service moves the steps toward the
// intent (settles) and records every transition, so that after a timeout,
// a crash or a lost reply it knows which outside effects may exist. It
// holds ids, states, codes and times, never personal data.
type Account struct {
	SubscriptionID string `json:"subscriptionId"`
	Product        string `json:"product,omitempty"` // the product's name
	// AccountIdentifier is the first step's id (the Q2 UserID for a q2
	// step), answered to the marketplace. It names this subscription only.
	AccountIdentifier string `json:"accountIdentifier"`
	// UserID is the marketplace's user_id of the ORDER (the Q2 user the
	// bank's extension asks about).
	UserID int64 `json:"userId,omitempty"`

	Intent Intent `json:"intent"`
	// Prior is the last intent a 200 reply promised, kept while Intent is
	// not promised yet: an unanswered CHANGE or ORDER that is abandoned
	// falls back to it (nil: nothing was promised, an ORDER falls back to
	// "refused").
	Prior *Intent `json:"prior,omitempty"`
	// Steps are the plan's steps, one per target, in plan order.
	Steps []Step `json:"steps,omitempty"`
	// Members are the users assigned to the subscription beyond the one
	// its ORDER enrolled (AppDirect's USER_ASSIGNMENT), each with its step
	// in the plan's target that enrolls users.
	Members []Member `json:"members,omitempty"`

	// Status is the account as the read API shows it, derived from the
	// intent and the steps by Derive on every save.
	Status AccountStatus `json:"status"`

	// Settle is where settling stands: zero when settled.
	Settle Settle `json:"settle,omitzero"`

	CreatedAt   time.Time  `json:"createdAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	CancelledAt *time.Time `json:"cancelledAt,omitempty"`

	// Primed is never stored: the store sets it on the account it returns
	// when that account was written, as the processing's Prime built it,
	// by this delivery's own claim (see inbox.ClaimRequest.Primed): its
	// first step is recorded "calling" by this very delivery, so the call
	// goes out without first asking whether an earlier one landed.
	Primed bool `json:"-"`
}

// IntentState is what the marketplace asked for a subscription last.
type IntentState string

// The intents.
const (
	// IntentActive: every step live, as the intent's edition and items say.
	IntentActive IntentState = "active"
	// IntentCancelled: nothing of the subscription live anywhere; a later
	// ORDER is refused.
	IntentCancelled IntentState = "cancelled"
	// IntentRefused: an ORDER refused for good (Code, Message): nothing
	// live anywhere, and every later copy of the ORDER gets that refusal.
	IntentRefused IntentState = "refused"
)

// Undo reports whether the intent is that nothing of the subscription be
// live.
func (s IntentState) Undo() bool { return s == IntentCancelled || s == IntentRefused }

// Intent is what the marketplace asked for a subscription, as the last
// accepted event said.
type Intent struct {
	State IntentState `json:"state"`
	// Rev counts the intents the subscription has had; a live step brought
	// to the current intent carries the same Rev.
	Rev int `json:"rev"`
	// By is the event type that set the intent.
	By              EventType  `json:"by,omitempty"`
	Edition         string     `json:"edition,omitempty"`
	PricingDuration string     `json:"pricingDuration,omitempty"`
	Items           []Item     `json:"items,omitempty"`
	EventTime       *time.Time `json:"eventTime,omitempty"` // the event's own `created`, when it had one
	// Code and Message are the refusal of a refused intent.
	Code    ErrorCode `json:"code,omitempty"`
	Message string    `json:"message,omitempty"`
	// Suspended: provisioned, not to be used now (AppDirect's DEACTIVATED
	// notice; REACTIVATED clears it). The outside systems keep their
	// steps: none of them can suspend.
	Suspended bool `json:"suspended,omitempty"`
	// Promised: a 200 reply was sent (or is being sent) for this intent;
	// the service keeps it true by itself, whatever the marketplace does
	// next.
	Promised bool      `json:"promised,omitempty"`
	At       time.Time `json:"at"`
	// LastCopy is when a copy of the event that set the intent was last
	// processed: an intent that is not promised is abandoned when no copy
	// came for ABANDON_AFTER.
	LastCopy time.Time `json:"lastCopy"`
}

// StepState is where one step of a plan stands in its outside system.
type StepState string

// The step states.
const (
	// StepPending: nothing done, no call went out that may have done it.
	StepPending StepState = "pending"
	// StepCalling: recorded right before a call that creates the step; a
	// holder that finds it was cut short (a crash, a lost lease), so the
	// step may exist.
	StepCalling StepState = "calling"
	// StepLive: done, with the ids to change or undo it.
	StepLive StepState = "live"
	// StepUndone: undone (or never done and now known absent).
	StepUndone StepState = "undone"
	// StepUnknown: a call that creates the step ended without a readable
	// answer (a timeout, a 5xx, a garbled reply): the step may exist.
	StepUnknown StepState = "unknown"
)

// MayExist reports whether the step may exist in its outside system.
func (s StepState) MayExist() bool {
	return s == StepLive || s == StepCalling || s == StepUnknown
}

// Step is what one target of a product's plan did for a subscription.
type Step struct {
	Target string            `json:"target"`         // "q2", "qbd_connect", "helix"
	State  StepState         `json:"state"`          // see StepState
	ID     string            `json:"id,omitempty"`   // the target's main id (Q2 UserID, QBD customer id, ...)
	Data   map[string]string `json:"data,omitempty"` // other ids the target keeps (CustomerID, subscription id, ...)
	// Rev is the intent revision the step was created or last changed for.
	Rev int `json:"rev,omitempty"`
	// Attempts counts the calls that failed since the step last moved;
	// LastError is the last one's code and reason (no personal data).
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"lastError,omitempty"`
	// Uncertain is when the latest call that may create the step went out
	// without a readable answer: such a call can still land later, so an
	// undone step is checked again on a schedule until well after it.
	Uncertain *time.Time `json:"uncertain,omitempty"`
	// Recheck is when an undone step whose Uncertain call may still land
	// is checked again; nil: never.
	Recheck *time.Time `json:"recheck,omitempty"`
}

// Member is a user assigned to a subscription (by its marketplace user
// id, an opaque uuid: nothing personal), and where its step stands.
type Member struct {
	User string `json:"user"`
	// Gen counts the times the user was assigned again after its
	// unassignment was settled: each time it gets a new user in the
	// outside system (Job.MemberGen).
	Gen int `json:"gen,omitempty"`
	// Assigned is the intent: assigned (its step live) or unassigned (its
	// step undone). Promised: a 200 answered that intent.
	Assigned bool      `json:"assigned"`
	Promised bool      `json:"promised,omitempty"`
	LastCopy time.Time `json:"lastCopy"`
	Step     Step      `json:"step"`
}

// Member returns the member of user, if any.
func (a *Account) Member(user string) (*Member, bool) {
	for i := range a.Members {
		if a.Members[i].User == user {
			return &a.Members[i], true
		}
	}
	return nil, false
}

// Settle is where settling an account stands.
type Settle struct {
	// Since is when the account last became unsettled.
	Since time.Time `json:"since,omitzero"`
	// Due is when the settler next works on it.
	Due time.Time `json:"due,omitzero"`
	// Attempts counts settle passes that made no progress, for backoff.
	Attempts int `json:"attempts,omitempty"`
	// Waiting says why it is not settled, for operators.
	Waiting string `json:"waiting,omitempty"`
}

// Step returns the step of target, if any.
func (a *Account) Step(target string) (*Step, bool) {
	for i := range a.Steps {
		if a.Steps[i].Target == target {
			return &a.Steps[i], true
		}
	}
	return nil, false
}

// Settled reports whether every step is where the intent wants it. Rechecks
// of undone steps for late work (Step.Uncertain) do not count: the account
// is settled as far as anyone can know, and stays queued for them.
func (a Account) Settled() bool {
	for _, s := range a.Steps {
		switch {
		case a.Intent.State == IntentActive && (s.State != StepLive || s.Rev < a.Intent.Rev):
			return false
		case a.Intent.State.Undo() && s.State.MayExist():
			return false
		}
	}
	for _, m := range a.Members {
		live := a.Intent.State == IntentActive && m.Assigned
		if live != (m.Step.State == StepLive) || !live && m.Step.State.MayExist() {
			return false
		}
	}
	return true
}

// Derive sets Status from the intent and the steps.
func (a *Account) Derive() {
	switch a.Intent.State {
	case IntentCancelled:
		a.Status = AccountCancelled
	case IntentRefused:
		a.Status = AccountFailed
	default:
		a.Status = AccountActive
		switch {
		case !a.Intent.Promised && a.Intent.By == SubscriptionOrder:
			a.Status = AccountProvisioning // not answered with success yet: not to be used
		case a.Intent.Suspended:
			a.Status = AccountSuspended
		}
	}
}

// Active reports whether the account is provisioned and not cancelled.
func (a Account) Active() bool { return a.Status == AccountActive }

// AccountStatus is the state of a subscription as the read API shows it.
type AccountStatus string

// Account states.
const (
	// AccountProvisioning: an ORDER is under way and not answered with
	// success yet.
	AccountProvisioning AccountStatus = "PROVISIONING"
	AccountActive       AccountStatus = "ACTIVE"
	// AccountSuspended: provisioned, but not to be used now (AppDirect's
	// DEACTIVATED notice; REACTIVATED makes it active again).
	AccountSuspended AccountStatus = "SUSPENDED"
	AccountCancelled AccountStatus = "CANCELLED"
	// AccountFailed: an ORDER was refused for good; nothing of it stays.
	AccountFailed AccountStatus = "FAILED"
)

// UnmarshalJSON reads an account, including one written before accounts
// held an intent (status, edition and steps with an "undone" flag): it is
// read as the intent its status implies, promised, with live or undone
// steps, so that it cancels and changes as before.
func (a *Account) UnmarshalJSON(b []byte) error {
	type plain Account
	if err := json.Unmarshal(b, (*plain)(a)); err != nil {
		return err
	}
	if a.Intent.State != "" {
		return nil
	}
	var old struct { // before intents
		Edition         string     `json:"edition"`
		PricingDuration string     `json:"pricingDuration"`
		Items           []Item     `json:"items"`
		EventTime       *time.Time `json:"eventTime"`
		FailureCode     ErrorCode  `json:"failureCode"`
		FailureMessage  string     `json:"failureMessage"`
		Steps           []struct {
			Undone bool `json:"undone"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(b, &old); err != nil {
		return err
	}
	a.Intent = Intent{State: IntentActive, Rev: 1, By: SubscriptionOrder, Edition: old.Edition, PricingDuration: old.PricingDuration,
		Items: old.Items, EventTime: old.EventTime, Promised: true, At: a.UpdatedAt, LastCopy: a.UpdatedAt}
	switch a.Status {
	case AccountCancelled:
		a.Intent.State, a.Intent.By = IntentCancelled, SubscriptionCancel
	case AccountFailed:
		a.Intent.State, a.Intent.Code, a.Intent.Message = IntentRefused, old.FailureCode, old.FailureMessage
	case AccountProvisioning:
		a.Intent.Promised = false
	}
	for i := range a.Steps {
		a.Steps[i].State, a.Steps[i].Rev = StepLive, 1
		if i < len(old.Steps) && old.Steps[i].Undone {
			a.Steps[i].State = StepUndone
		}
	}
	return nil
}
