package q2

import (
	"context"
	"errors"
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
var codes = []struct {
	err     error
	code    events.ErrorCode
	kind    provisioning.Kind
	message string
}{
	{errForeignLogon, events.UserAlreadyExists, provisioning.Refused, "Q2 already has this subscription's logon name for another user"},
	{q2api.ErrAlreadyExists, events.UserAlreadyExists, provisioning.Refused, "Q2 already has this user"},
	{q2api.ErrNotFound, events.UserNotFound, provisioning.Refused, "Q2 does not have the user"},
	{q2api.ErrUnauthorized, events.Unauthorized, provisioning.Misconfigured, "Q2 refused the service's credentials (Q2_CLIENT_ID, Q2_CLIENT_SECRET)"},
	{q2api.ErrForbidden, events.Forbidden, provisioning.Misconfigured, "Q2 does not allow the service's client to do this; check its permissions"},
	{q2api.ErrInvalidResponse, events.TransportError, provisioning.Transient, "Q2 answered something the service cannot read; the call may have done its work, it is tried again"},
}

// transient reports whether err may pass by itself: Q2 down, 5xx, 429, a
// timeout, a refused connection, or the event's deadline.
func transient(err error) bool {
	return errors.Is(err, q2api.ErrTransient) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// failure classifies a failed Q2 call made while doing something.
func failure(doing string, err error) *provisioning.Failure {
	if transient(err) {
		var retry time.Duration = 5 * time.Second
		var apiErr *q2api.APIError
		if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
			retry = apiErr.RetryAfter
		}
		return provisioning.Outage("Q2 is unavailable ("+doing+"); nothing final was recorded, send the event again", retry, err)
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return &provisioning.Failure{Kind: c.kind, Code: c.code, Message: c.message, Err: err}
		}
	}
	return provisioning.Refusal(events.UnknownError, "Q2 refused the call while "+doing+"; the detail is in the service's log", err)
}
