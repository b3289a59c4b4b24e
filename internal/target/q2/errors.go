package q2

import (
	"context"
	"errors"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2client"
)

// codes is the one table from Q2 failures to outcomes, first match wins.
// Final marks a business outcome about the subscription itself, stored and
// replayed; Unsettled ones (credentials, permissions, Q2 answering
// nonsense) are answered but not stored, so a copy sent after the cause is
// fixed succeeds.
var codes = []struct {
	err     error
	code    events.ErrorCode
	kind    events.Kind
	message string
}{
	{errForeignLogon, events.UserAlreadyExists, events.Final, "Q2 already has this subscription's logon name for another user"},
	{q2client.ErrAlreadyExists, events.UserAlreadyExists, events.Final, "Q2 already has this user"},
	{q2client.ErrNotFound, events.UserNotFound, events.Unsettled, "Q2 does not have the user"},
	{q2client.ErrUnauthorized, events.Unauthorized, events.Unsettled, "Q2 refused the service's credentials"},
	{q2client.ErrForbidden, events.Forbidden, events.Unsettled, "Q2 does not allow the service to do this"},
	{q2client.ErrInvalidResponse, events.InvalidResponse, events.Unsettled, "Q2 answered something the service cannot read"},
}

// transient reports whether err may pass by itself: Q2 down, 5xx, 429, a
// timeout, a refused connection, or the event's deadline.
func transient(err error) bool {
	return errors.Is(err, q2client.ErrTransient) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// failure classifies a failed Q2 call made while doing something.
func failure(doing string, err error) *provisioning.Failure {
	if transient(err) {
		var retry time.Duration = 5 * time.Second
		var apiErr *q2client.APIError
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
	return &provisioning.Failure{Kind: events.Unsettled, Code: events.UnknownError,
		Message: "Q2 failed while " + doing + "; the detail is in the service's log", Err: err}
}
