package provisioning

import (
	"context"
	"errors"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

// DefaultRetry is how long a transient failure asks the marketplace to
// wait when the outside system said nothing (no Retry-After).
const DefaultRetry = 5 * time.Second

// MayPass reports whether err, a failed outside call, may pass by itself:
// the client's transient error (the system down, a 5xx, 429 or 408, a
// timeout, a refused connection) or the call's context ending (the
// event's deadline). Sent again later, the call may succeed.
func MayPass(err, transient error) bool {
	return errors.Is(err, transient) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// Row is one row of an outside system's failure table: a failed call
// whose error matches Err (errors.Is) is a failure of Kind, answered with
// Code and Message.
type Row struct {
	Err     error
	Kind    Kind
	Code    events.ErrorCode
	Message string
}

// Table classifies the failed calls of one outside system whose client
// tells its failures apart by sentinel errors, in the frame every such
// target shares:
//
//  1. a failure that may pass by itself (MayPass) is an Outage, with the
//     wait the system asked for, else DefaultRetry;
//  2. else the first row whose Err matches decides;
//  3. else the call is a Refusal with UNKNOWN_ERROR, its detail left to
//     the log.
//
// E is the client's error type, which carries the wait the system asked
// for.
type Table[E error] struct {
	System     string                // as the messages name it: "Q2", "QBD Connect"
	Transient  error                 // the client's error for a failure that may pass (see MayPass)
	RetryAfter func(E) time.Duration // the wait the system asked for; 0 when it said none
	Rows       []Row                 // first match wins
	// Explain, when set, writes a matched row's message for the call (what
	// was being done, the system's own words); else the row's Message
	// stands.
	Explain func(r Row, doing string, err error) string
}

// Classify says what err, a call that failed while doing something, means.
func (t *Table[E]) Classify(doing string, err error) *Failure {
	if MayPass(err, t.Transient) {
		retry := DefaultRetry
		if e, ok := errors.AsType[E](err); ok && t.RetryAfter != nil {
			if d := t.RetryAfter(e); d > 0 {
				retry = d
			}
		}
		return Outage(t.System+" is unavailable ("+doing+"); nothing final was recorded, send the event again", retry, err)
	}
	for _, r := range t.Rows {
		if errors.Is(err, r.Err) {
			msg := r.Message
			if t.Explain != nil {
				msg = t.Explain(r, doing, err)
			}
			return &Failure{Kind: r.Kind, Code: r.Code, Message: msg, Err: err}
		}
	}
	return Refusal(events.UnknownError, t.System+" refused the call while "+doing+"; the detail is in the service's log", err)
}
