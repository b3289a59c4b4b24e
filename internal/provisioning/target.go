package provisioning

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

// Target is one outside system a product provisions a subscription in
// (Q2, QBD Connect, Helix). Each names what it creates deterministically
// from the subscription, so that it can find its own earlier work after a
// lost reply, a crash or a Redis that forgot.
//
// Errors are classified by the target itself, as a *Failure (its own error
// table); any other error counts as transient.
type Target interface {
	// Name is the target's name in the products file ("q2", ...).
	Name() string
	// Find looks for the subscription's own earlier work, when none is
	// recorded: Absent (never done), Live (done, recorded now), Gone (done
	// and undone: the subscription was cancelled) or Unknown (the outside
	// system cannot be asked; Provision and Deprovision are idempotent).
	Find(ctx context.Context, j *Job) (events.Step, Presence, error)
	// Provision does the target's part of an ORDER and returns the step to
	// record. It is called only after Find answered Absent or Unknown.
	Provision(ctx context.Context, j *Job) (events.Step, error)
	// Change applies a CHANGE to the recorded step; it returns the step to
	// record (changed or not).
	Change(ctx context.Context, j *Job, s events.Step) (events.Step, error)
	// Deprovision undoes a step (a CANCEL, or undoing an ORDER that failed
	// at a later step). "Already gone" counts as done.
	Deprovision(ctx context.Context, j *Job, s events.Step) error
}

// Presence is what Find found of a subscription's earlier work.
type Presence int

// What Find can find.
const (
	Absent  Presence = iota + 1 // nothing: never done, or the outside system forgot
	Live                        // done and in place
	Gone                        // done, then undone: the subscription was cancelled
	Unknown                     // the outside system cannot tell; its calls are idempotent
)

// Job is one event being carried out for one product: what targets need to
// know, including the steps earlier targets of the plan recorded (Helix
// takes the Q2 CustomerID of a q2 step).
type Job struct {
	Event        *events.SubscriptionEvent
	Product      string
	Subscription string
	// Steps are the plan's steps recorded (or found) so far, in plan order.
	Steps []events.Step
}

// Step returns the recorded step of target, if any.
func (j *Job) Step(target string) (events.Step, bool) {
	for _, s := range j.Steps {
		if s.Target == target && !s.Undone {
			return s, true
		}
	}
	return events.Step{}, false
}

// Failure is a target's failure, classified by the target. Kind is Final
// (a business refusal: stored and replayed), Unsettled (answered, not
// stored: the service's own credentials or configuration refused) or
// Transient (try again later).
type Failure struct {
	Kind       events.Kind
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

// Refusal is a final failure of a target: the order cannot be provisioned
// as it is (a missing field, a refusal of the outside system).
func Refusal(code events.ErrorCode, message string, cause error) *Failure {
	return &Failure{Kind: events.Final, Code: code, Message: message, Err: cause}
}

// Outage is a transient failure of a target.
func Outage(message string, retryAfter time.Duration, cause error) *Failure {
	return &Failure{Kind: events.Transient, Code: events.TransportError, Message: message, RetryAfter: retryAfter, Err: cause}
}

// classify returns err as a *Failure: a target's own, or a transient one
// for anything it did not classify (a deadline, a bug).
func classify(target string, err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return Outage(target+" is unavailable; nothing final was recorded, send the event again", 5*time.Second, err)
}
