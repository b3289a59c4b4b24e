package qbdconnect

import (
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
var codes = []provisioning.Row{
	{Err: errForeignSubscription, Kind: provisioning.Refused, Code: events.UserAlreadyExists, Message: "QBD Connect has this subscription's id for another customer"},
	// A 400 or 422: what the order gives is wrong for QBD Connect, and sent
	// again it fails again. QBD Connect's message names the field.
	{Err: qbdapi.ErrBadRequest, Kind: provisioning.Refused, Code: events.InvalidResponse, Message: "QBD Connect refused the order's data"},
	{Err: qbdapi.ErrUnauthorized, Kind: provisioning.Misconfigured, Code: events.Unauthorized, Message: "QBD Connect refused the service's token (QBD_TOKEN)"},
	{Err: qbdapi.ErrInvalidResponse, Kind: provisioning.Transient, Code: events.TransportError, Message: "QBD Connect answered something the service cannot read; the call may have done its work, it is tried again"},
}

// failures classifies QBD Connect's failed calls: QBD Connect down, a 5xx,
// 429, 408, a timeout, a refused connection or the event's deadline
// (qbdapi.ErrTransient) is an outage with its Retry-After, before any row
// of codes. A row's message names what was being done, and a refused
// order's carries QBD Connect's own words.
var failures = provisioning.Table[*qbdapi.APIError]{
	System:     "QBD Connect",
	Transient:  qbdapi.ErrTransient,
	RetryAfter: func(e *qbdapi.APIError) time.Duration { return e.RetryAfter },
	Rows:       codes,
	Explain: func(r provisioning.Row, doing string, err error) string {
		msg := r.Message + " (" + doing + ")"
		if apiErr, ok := errors.AsType[*qbdapi.APIError](err); ok && r.Err == qbdapi.ErrBadRequest && apiErr.Message() != "" {
			msg += ": " + clip(apiErr.Message())
		}
		return msg
	},
}

// failure classifies a failed QBD Connect call made while doing something.
func failure(doing string, err error) *provisioning.Failure {
	return failures.Classify(doing, err)
}

// maxRelayed bounds how much of QBD Connect's message a reply carries.
const maxRelayed = 200

func clip(s string) string {
	if r := []rune(s); len(r) > maxRelayed {
		return string(r[:maxRelayed]) + "…"
	}
	return s
}
