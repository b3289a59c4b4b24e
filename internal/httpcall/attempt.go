package httpcall

import (
	"context"
	"errors"
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
// credential or a URL. The error is shown only when no reply text can be in
// it (a transport failure, or a reply this service could not read); an
// outside system's own message may quote personal data.
func (a Attempt) LogFields() []zap.Field {
	f := []zap.Field{
		zap.String("system", a.System), zap.String("action", a.Action), zap.String("method", a.Method),
		zap.Int("status", a.Status), zap.Duration("duration", a.Duration), zap.Int("attempt", a.Attempt),
		zap.String("requestid", a.RequestID),
	}
	var re *ReplyError
	if a.Err != nil && (a.Status == 0 || errors.As(a.Err, &re)) {
		f = append(f, zap.Error(a.Err))
	}
	return f
}

type callKey struct{}

type callInfo struct{ system, action string }

// ActionOf tells a transport wrapper which call an outgoing request
// belongs to, from the request's context: for span or metric names, as in
//
//	otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
//		system, action, _ := httpcall.ActionOf(r.Context())
//		return system + " " + action
//	})
func ActionOf(ctx context.Context) (system, action string, ok bool) {
	c, ok := ctx.Value(callKey{}).(callInfo)
	return c.system, c.action, ok
}
