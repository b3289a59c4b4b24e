package httpcall

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// TokenAction is the Action of an OAuth2 token fetch. A fetched token
// serves many calls, so an observer does not count it as a call of the
// delivery that happened to trigger it.
const TokenAction = "token"

// Attempt is one try at an outside call, as an Observer sees it: every
// attempt is reported, retries included, answered or not.
type Attempt struct {
	System    string        // the outside system: "q2", "qbd_connect", "helix"
	Action    string        // the call, bounded (a metric label): "Enrollment", "POST /customers", "addEntitlement", TokenAction
	Method    string        // the HTTP method
	Status    int           // the HTTP status; 0 when no reply arrived (or the request was not sent)
	Duration  time.Duration // of this attempt, reading the reply included
	RequestID string        // the system's id of the request, when its reply had one: quote it to its support
	Attempt   int           // 1 for the first try of the call
	Err       error         // nil on success
}

// Observer is told of every Attempt, with the caller's ctx (a background
// one for a token fetch, which serves many callers). It must not block.
type Observer func(ctx context.Context, a Attempt)

// LogFields is the one shape of an attempt's log line: never a body, a
// credential or a URL (see ErrorField for the error).
func (a Attempt) LogFields() []zap.Field {
	f := []zap.Field{
		zap.String("system", a.System), zap.String("action", a.Action), zap.String("method", a.Method),
		zap.Int("status", a.Status), zap.Duration("duration", a.Duration), zap.Int("attempt", a.Attempt),
		zap.String("requestid", a.RequestID),
	}
	if a.Err != nil {
		f = append(f, ErrorField(a.Err))
	}
	return f
}

// ErrorField is how a log line shows the error of an outside call: whole
// when no text of the outside system can be in it (a transport failure, a
// reply this service could not read, a refusal before sending), else only
// its status, since an outside system's own message may quote personal
// data. The status and the system's request id lead to the rest.
func ErrorField(err error) zap.Field { return zap.String("error", errorText(err)) }

// errorText is the error as ErrorField shows it, for a log line or a span.
func errorText(err error) string {
	var re *ReplyError
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) && !errors.As(err, &re) {
		return fmt.Sprintf("HTTP %d answered (the system's message is not logged)", sc.StatusCode())
	}
	return err.Error()
}
