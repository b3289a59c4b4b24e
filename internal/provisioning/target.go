package provisioning

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

// Target is one outside system a product provisions a subscription in
// (Q2, QBD Connect, Helix). Each names what it creates deterministically
// from the subscription, so that it can find its own earlier work after a
// lost reply, a crash or a Redis that forgot.
//
// A target classifies its own errors as a *Failure (its rows of the one
// failure table); what it does not classify is transient, and a 5xx, 429
// or 408 answer, a timeout or a transport error is transient whatever the
// target says (see Classify).
type Target interface {
	// Name is the target's name in the products file ("q2", ...).
	Name() string
	// Find looks for the subscription's own work: Absent (never done, or
	// gone without a trace), Live (done and in place), Gone (done and
	// undone: the subscription was cancelled) or Unknown (the outside
	// system cannot be asked; Provision and Deprovision are idempotent).
	Find(ctx context.Context, j *Job) (events.Step, Presence, error)
	// Prepare returns the step as it is known before any call: the ids the
	// target derives from the job (Helix names its entitlement by them), so
	// that the step recorded as calling can be undone even if the call's
	// answer never comes. ErrNeedsEvent when the job has no event and the
	// target needs it (personal data that is never stored); a *Failure that
	// refuses the order when the event lacks what the target needs.
	Prepare(ctx context.Context, j *Job) (events.Step, error)
	// Provision does the target's part of an ORDER and returns the step to
	// record, starting from the prepared one (j.Current).
	Provision(ctx context.Context, j *Job) (events.Step, error)
	// Change brings a live step to the job's intent (edition, items); it
	// returns the step to record, changed or not.
	Change(ctx context.Context, j *Job, s events.Step) (events.Step, error)
	// Deprovision undoes a step. "Already gone" counts as done.
	Deprovision(ctx context.Context, j *Job, s events.Step) error
}

// ErrNeedsEvent is Prepare's answer when the step can only be created
// from the marketplace's event (it carries personal data that the service
// never stores): the settler leaves it for the event's next copy.
var ErrNeedsEvent = errors.New("needs the marketplace's event")

// ErrGone is Provision's answer when it meets the subscription's own work
// undone (a deleted user whose logon stays taken, a canceled
// subscription): the subscription was cancelled, and its record lost.
// Provision returns the step it met with it, ids included.
var ErrGone = errors.New("the subscription's own work was undone: it was cancelled")

// Presence is what Find found of a subscription's earlier work.
type Presence int

// What Find can find.
const (
	Absent  Presence = iota + 1 // nothing: never done, or the outside system forgot
	Live                        // done and in place
	Gone                        // done, then undone: the subscription was cancelled
	Unknown                     // the outside system cannot tell; its calls are idempotent
)

// Job is what a target needs to know of one subscription.
type Job struct {
	// Event is the marketplace's event being processed; nil when the
	// settler works on the subscription without one.
	Event        *events.SubscriptionEvent
	Product      string
	Subscription string
	// Intent is what the subscription should be (edition, items).
	Intent events.Intent
	// Steps are the plan's steps as recorded, in plan order.
	Steps []events.Step
	// Current is the step being worked on (Provision: as Prepare returned
	// it, or as recorded before).
	Current events.Step
	// Member, when not empty, is the user assigned to the subscription
	// (its marketplace user id) whose step this is: a target that enrolls
	// users (Users) acts on that user's work instead of the
	// subscription's own.
	Member string
	// MemberGen is the member's generation (events.Member.Gen): a target
	// derives a new name for each, as an outside system may keep a deleted
	// user's name taken.
	MemberGen int
}

// Users is a Target that also enrolls the users assigned to a subscription
// beyond the one its ORDER enrolled (AppDirect's USER_ASSIGNMENT): with
// Job.Member set, its Find, Prepare, Provision and Deprovision act on that
// user. The first such target of a plan enrolls them; a plan without one
// refuses assignments.
type Users interface {
	Target
	EnrollsUsers()
}

// DataCustomerID is the key of a step's Data under which a target records
// the bank customer it created (Q2's CustomerID): a later step that acts
// for that customer (Helix) reads it with CustomerID.
const DataCustomerID = "customer_id"

// CustomerID is the bank customer an earlier live step of the plan
// created, if any.
func (j *Job) CustomerID() (int64, bool) {
	for _, s := range j.Steps {
		if s.State != events.StepLive || s.Target == j.Current.Target {
			continue
		}
		if id, err := strconv.ParseInt(s.Data[DataCustomerID], 10, 64); err == nil && id > 0 {
			return id, true
		}
	}
	return 0, false
}

// Kind is what a failed outside call means for the subscription: the
// one classification every target contributes its rows to.
type Kind int

// The kinds of failure.
const (
	// Transient: nothing was decided; the call may or may not have had its
	// effect. Tried again later (by a copy or the settler).
	Transient Kind = iota + 1
	// Refused: the outside system refused the request for a reason of the
	// subscription itself (an invalid account, a locked customer): final,
	// the call had no effect.
	Refused
	// Misconfigured: the outside system refused the service's own setup
	// (credentials, program approval, the configured ids or level): not
	// the marketplace's business; answered 503 and alerted until fixed.
	Misconfigured
)

var kindNames = [...]string{Transient: "transient", Refused: "refused", Misconfigured: "misconfigured"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Failure is a classified failure of a target.
type Failure struct {
	Kind       Kind
	Code       events.ErrorCode
	Message    string // for the marketplace: names the failed field or reason, nothing personal
	RetryAfter time.Duration
	Err        error // the cause, for the log
}

func (f *Failure) Error() string {
	msg := fmt.Sprintf("%s %s: %s", f.Kind, f.Code, f.Message)
	if f.Err != nil {
		msg += ": " + f.Err.Error()
	}
	return msg
}

func (f *Failure) Unwrap() error { return f.Err }

// Refusal is a final failure: the subscription cannot be provisioned (or
// changed) as the event asks.
func Refusal(code events.ErrorCode, message string, cause error) *Failure {
	return &Failure{Kind: Refused, Code: code, Message: message, Err: cause}
}

// Outage is a transient failure.
func Outage(message string, retryAfter time.Duration, cause error) *Failure {
	return &Failure{Kind: Transient, Code: events.TransportError, Message: message, RetryAfter: retryAfter, Err: cause}
}

// Misconfiguration is a refusal of the service's own setup.
func Misconfiguration(code events.ErrorCode, message string, cause error) *Failure {
	return &Failure{Kind: Misconfigured, Code: code, Message: message, Err: cause}
}

// statusCoder is an outside call's error that carries the HTTP status the
// outside system answered (the clients' APIErrors).
type statusCoder interface{ StatusCode() int }

// Classify returns err as a *Failure: the target's own classification,
// except that an answer no outside system means for good is transient
// whatever the target's table or the answer's text says (a 5xx, 429 or
// 408 status, a deadline), and anything unclassified is transient.
func Classify(target string, err error) *Failure {
	var f *Failure
	if errors.As(err, &f) && (f.Kind == Transient || !transientAnswer(err)) {
		return f
	}
	retry := time.Duration(0)
	if f != nil {
		retry = f.RetryAfter
	}
	return Outage(target+" is unavailable; nothing final was recorded, send the event again", retry, err)
}

func transientAnswer(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var sc statusCoder
	if errors.As(err, &sc) {
		s := sc.StatusCode()
		return s >= 500 || s == 429 || s == 408
	}
	return false
}
