package subscriptions

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2client"
)

// q2Codes is the one table from Q2 failures to reply codes, first match wins.
// final marks a business outcome about the subscription itself, stored and
// replayed; the others (credentials, permissions, Q2 answering nonsense) are
// answered but not stored, so a copy sent after the cause is fixed succeeds.
var q2Codes = []struct {
	err     error
	code    events.ErrorCode
	final   bool
	message string
}{
	{errForeignLogon, events.UserAlreadyExists, true, "Q2 already has this subscription's logon name for another user"},
	{q2client.ErrAlreadyExists, events.UserAlreadyExists, true, "Q2 already has this user"},
	{q2client.ErrNotFound, events.UserNotFound, false, "Q2 does not have the user"},
	{q2client.ErrUnauthorized, events.Unauthorized, false, "Q2 refused the service's credentials"},
	{q2client.ErrForbidden, events.Forbidden, false, "Q2 does not allow the service to do this"},
	{q2client.ErrInvalidResponse, events.InvalidResponse, false, "Q2 answered something the service cannot read"},
}

// transient reports whether err may pass by itself: Q2 down, 5xx, 429, a
// timeout, a refused connection, or the event's deadline.
func transient(err error) bool {
	return errors.Is(err, q2client.ErrTransient) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// q2Failed answers an event whose Q2 call failed while doing something.
// A CANCEL that could not delete is always DO_NOT_CANCEL, so that the
// marketplace keeps the subscription while Q2 keeps the user. An ORDER or
// CHANGE that met a transient failure is 503, not stored.
func (s *Service) q2Failed(t events.EventType, doing string, err error) events.Outcome {
	s.log.Warn("Q2 call failed", zap.String("doing", doing), zap.Bool("transient", transient(err)), zap.Error(err))
	if t == events.SubscriptionCancel {
		return events.NotCancelled("Q2 failed while " + doing + "; the subscription is kept, send the cancel again")
	}
	if transient(err) {
		return events.Unavailable("Q2 is unavailable ("+doing+"); nothing final was recorded, send the event again", 5*time.Second)
	}
	for _, c := range q2Codes {
		if errors.Is(err, c.err) {
			return events.Outcome{Status: http.StatusOK, Reply: events.Failure(c.code, c.message), Final: c.final}
		}
	}
	return events.Outcome{Status: http.StatusOK, Reply: events.Failure(events.UnknownError, "Q2 failed while "+doing+"; the detail is in the service's log")}
}
