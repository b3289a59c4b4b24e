package httpcall

import (
	"errors"
	"fmt"
	"net"
	"net/url"
)

var (
	// ErrNotSent marks a failure where the request surely did not reach the
	// outside system: the dial failed, or Authorize (a token fetch) did.
	// Such a failure is safe to try again even for a POST that creates.
	ErrNotSent = errors.New("request not sent")
	// ErrOutsideBase: a request's URL is not under the base URL the Client
	// was built with, so it was not sent, and no credential was added to
	// it. It is a bug in the client that built the URL, never retried.
	ErrOutsideBase = errors.New("URL outside the configured base URL")
)

// ReplyError is a failure of a call that got an HTTP answer and could not
// use it: a redirect, a reply larger than the limit, a body that is not
// the shape the client expects, or a success that says "nothing there". It
// matches the kind the client chose (its ErrInvalidResponse, or its
// ErrNotFound for an empty lookup) with errors.Is, and tells the status
// through StatusCode. Its message holds the reason, never a body or a URL.
type ReplyError struct {
	Call   string // "q2 Enrollment", "qbd GET /products/{id}"
	Status int    // the HTTP status of the reply
	Kind   error  // the client's sentinel
	Reason string // what was wrong with the reply, in our words
	Err    error  // the cause, when there is one (an error reading the body)
}

func (e *ReplyError) Error() string {
	msg := fmt.Sprintf("%s: HTTP %d: %v: %s", e.Call, e.Status, e.Kind, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the kind and the cause.
func (e *ReplyError) Unwrap() []error {
	errs := []error{e.Kind}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// StatusCode is the HTTP status of the reply.
func (e *ReplyError) StatusCode() int { return e.Status }

// notSent marks err with ErrNotSent and leaves its message as it is.
type notSent struct{ error }

func (e notSent) Unwrap() []error { return []error{e.error, ErrNotSent} }

// TransportError wraps a failure to exchange with the outside system
// (dial, reset, timeout): it matches the client's transient kind and keeps
// its cause, so that a context error stays matchable. The URL is dropped:
// the call's name says enough, and a query could hold what a log must not.
// A failed dial surely sent nothing, and is marked so.
func TransportError(call string, transient, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("%s: %w, %w: %w", call, transient, ErrNotSent, err)
	}
	return fmt.Errorf("%s: %w: %w", call, transient, err)
}
