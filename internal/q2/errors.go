package q2

import (
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
)

// codes is the q2 target's rows of the one failure table
// (provisioning.Kind), first match wins: refusals about the subscription
// itself are final; refusals of the service's own credentials or
// permissions are misconfigurations (503, alerted); a reply the service
// cannot read is transient, because the call may have done its work.
var codes = []provisioning.Row{
	{Err: errForeignLogon, Kind: provisioning.Refused, Code: events.UserAlreadyExists, Message: "Q2 already has this subscription's logon name for another user"},
	{Err: q2api.ErrAlreadyExists, Kind: provisioning.Refused, Code: events.UserAlreadyExists, Message: "Q2 already has this user"},
	{Err: q2api.ErrNotFound, Kind: provisioning.Refused, Code: events.UserNotFound, Message: "Q2 does not have the user"},
	{Err: q2api.ErrUnauthorized, Kind: provisioning.Misconfigured, Code: events.Unauthorized, Message: "Q2 refused the service's credentials (Q2_CLIENT_ID, Q2_CLIENT_SECRET)"},
	{Err: q2api.ErrForbidden, Kind: provisioning.Misconfigured, Code: events.Forbidden, Message: "Q2 does not allow the service's client to do this; check its permissions"},
	{Err: q2api.ErrInvalidResponse, Kind: provisioning.Transient, Code: events.TransportError, Message: "Q2 answered something the service cannot read; the call may have done its work, it is tried again"},
}

// failures classifies Q2's failed calls: Q2 down, a 5xx, 429, a timeout, a
// refused connection or the event's deadline (q2api.ErrTransient) is an
// outage with Q2's Retry-After, before any row of codes.
var failures = provisioning.Table[*q2api.APIError]{
	System:     "Q2",
	Transient:  q2api.ErrTransient,
	RetryAfter: func(e *q2api.APIError) time.Duration { return e.RetryAfter },
	Rows:       codes,
}

// failure classifies a failed Q2 call made while doing something.
func failure(doing string, err error) *provisioning.Failure {
	return failures.Classify(doing, err)
}
