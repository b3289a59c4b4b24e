package qbdconnect

import (
	"context"
	"errors"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
)

var (
	// errForeignSubscription: the derived subscription id belongs to
	// another customer, so it is not ours to take or touch.
	errForeignSubscription = errors.New("the subscription id belongs to another QBD Connect customer")
)

// codes is the qbd_connect target's rows of the one failure table
// (provisioning.Kind), first match wins: refusals about the order itself
// are final; a refused token is a misconfiguration (503, alerted); a reply
// the service cannot read is transient, because the call may have done its
// work. ErrNotFound is decided by each call (a lookup's "none", a delete's
// "done") before it gets here.
var codes = []struct {
	err     error
	code    events.ErrorCode
	kind    provisioning.Kind
	message string
}{
	{errForeignSubscription, events.UserAlreadyExists, provisioning.Refused, "QBD Connect has this subscription's id for another customer"},
	// A 400 or 422: what the order gives is wrong for QBD Connect, and sent
	// again it fails again. QBD Connect's message names the field.
	{qbdapi.ErrBadRequest, events.InvalidResponse, provisioning.Refused, "QBD Connect refused the order's data"},
	{qbdapi.ErrUnauthorized, events.Unauthorized, provisioning.Misconfigured, "QBD Connect refused the service's token (QBD_TOKEN)"},
	{qbdapi.ErrInvalidResponse, events.TransportError, provisioning.Transient, "QBD Connect answered something the service cannot read; the call may have done its work, it is tried again"},
}

// defaultRetry is how long a transient failure asks to wait when QBD
// Connect said nothing (no Retry-After).
const defaultRetry = 5 * time.Second

// transient reports whether err may pass by itself: QBD Connect down, 5xx,
// 429, 408, a timeout, a refused connection, or the event's deadline.
func transient(err error) bool {
	return errors.Is(err, qbdapi.ErrTransient) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// failure classifies a failed QBD Connect call made while doing something.
func failure(doing string, err error) *provisioning.Failure {
	if transient(err) {
		retry := defaultRetry
		if apiErr, ok := errors.AsType[*qbdapi.APIError](err); ok && apiErr.RetryAfter > 0 {
			retry = apiErr.RetryAfter
		}
		return provisioning.Outage("QBD Connect is unavailable ("+doing+"); nothing final was recorded, send the event again", retry, err)
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			msg := c.message + " (" + doing + ")"
			if apiErr, ok := errors.AsType[*qbdapi.APIError](err); ok && c.err == qbdapi.ErrBadRequest && apiErr.Message() != "" {
				msg += ": " + clip(apiErr.Message())
			}
			return &provisioning.Failure{Kind: c.kind, Code: c.code, Message: msg, Err: err}
		}
	}
	return provisioning.Refusal(events.UnknownError, "QBD Connect refused the call while "+doing+"; the detail is in the service's log", err)
}

// maxRelayed bounds how much of QBD Connect's message a reply carries.
const maxRelayed = 200

func clip(s string) string {
	if r := []rune(s); len(r) > maxRelayed {
		return string(r[:maxRelayed]) + "…"
	}
	return s
}
