package handlers

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/logctx"
)

// deliveryLog is what a request to the extension URL adds to its log line,
// as far as it got.
type deliveryLog struct {
	webhookID, key, eventType, subscription, extension, product, outcome string
	eventToken                                                           string // an AppDirect notification's
	reason                                                               string // which step or check decided a processed outcome
	replayed                                                             bool
	calls                                                                int // outside API calls, every attempt
}

// deliveryOf is the delivery log of a request to the extension URL, made
// on first use from what the request says (its extension and webhook-id),
// so that a request refused before the handler ran (431) has them too;
// nil for other routes. requestLogger, every route's first middleware,
// wraps each request's context.
func deliveryOf(c echo.Context) *deliveryLog {
	l, ok := c.(*requestLine)
	if !ok {
		return nil
	}
	if l.isDelivery {
		return &l.delivery
	}
	if !isDeliveryRoute(c.Path()) {
		return nil
	}
	l.delivery = deliveryLog{extension: c.Param("extension"), webhookID: c.Request().Header.Get(headerWebhookID)}
	l.isDelivery = true
	return &l.delivery
}

func isDeliveryRoute(path string) bool { return path == marketplaceRoute || path == appdirectRoute }

const (
	// headerWebhookID is webhook-id as net/http keys it: Get with the
	// canonical form does not canonicalise (and allocate) on every copy.
	headerWebhookID = "Webhook-Id"
	headerReplayed  = "Idempotent-Replayed"
)

// replayedTrue is the value of Idempotent-Replayed: one slice shared by
// every reply instead of one made per copy (net/http only reads it).
var replayedTrue = []string{"true"}

// setReplayed marks a reply as the stored outcome of an earlier delivery.
func setReplayed(h http.Header) { h[headerReplayed] = replayedTrue }

// setReason gives the request's log line a private reason for a reply that
// is not an error (a /readyz 503).
func setReason(c echo.Context, err error) {
	if l, ok := c.(*requestLine); ok {
		l.reason = err.Error()
	}
}

// requestLine is one request while its log line is gathered: its
// echo.Context, which every handler after requestLogger gets, with what
// they add to the line. It replaces echo's Set/Get store, which makes a
// map per request, and is pooled, as the line's fields are (held only
// while the line is written, not while the request waits): a copy
// answered from its copy key allocates nothing for its log line.
type requestLine struct {
	echo.Context
	delivery   deliveryLog
	isDelivery bool
	reason     string
}

var (
	requestLines = sync.Pool{New: func() any { return new(requestLine) }}
	lineFields   = sync.Pool{New: func() any { f := make([]zap.Field, 0, 24); return &f }}
)

// requestLogger is the first middleware of every route: it gives the
// request its id (X-Request-Id as sent, else a new one, in the reply's
// header), turns a panic into the request's error, has errorHandler write
// the reply of an error, and then writes one line per request, so the
// line has the status really sent: method, route, status, duration,
// request id; for a refusal its error code and a private reason (the
// cause, never a secret or the body); for a delivery its key, webhook-id
// or AppDirect event token (the id a marketplace's ticket quotes), type,
// subscription, extension, outcome and outside calls, each value from the
// request cut to logctx.MaxValue, and its trace_id and span_id when it is
// traced. It never logs bodies or other headers. 2xx is info, other
// statuses warn, and a 5xx that is the service's own fault (UNKNOWN_ERROR)
// is an error; a probe answered 2xx is debug. With a TracerProvider, a
// delivery is a trace (trace.go): its span is started before the handler
// runs, so the line has its trace_id, and ended after the line, with the
// status sent.
func requestLogger(log *zap.Logger, obs Observer, tp trace.TracerProvider) echo.MiddlewareFunc {
	var tracer trace.Tracer
	if tp != nil {
		tracer = tp.Tracer(tracerName)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			id := c.Request().Header.Get(echo.HeaderXRequestID)
			if !sentRequestID(id) {
				id = newRequestID()
			}
			c.Response().Header()[echo.HeaderXRequestID] = []string{id}
			var span trace.Span
			if tracer != nil {
				span = startSpan(tracer, c)
			}
			l := requestLines.Get().(*requestLine)
			l.Context = c
			err := recovering(next, l)
			aborted := err == errAborted
			if err != nil && !aborted {
				c.Error(err) // errorHandler: the status is then what was sent
			}
			l.write(log, obs, err, time.Since(start), id)
			if span != nil {
				endSpan(span, sentStatus(c.Response(), err), deliveryOf(l))
			}
			*l = requestLine{}
			requestLines.Put(l)
			if aborted {
				panic(http.ErrAbortHandler) // net/http drops the connection, as the handler asked
			}
			return nil
		}
	}
}

// recovering runs next, a panic in it becoming its error (a *panicked,
// with the stack, for the log line), as echo's Recover middleware with
// DisableErrorHandler would; a panic with http.ErrAbortHandler is
// errAborted, which requestLogger logs, ends the span of, and then panics
// with again for net/http to see.
func recovering(next echo.HandlerFunc, c echo.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				err = errAborted
				return
			}
			p := &panicked{stack: debug.Stack()}
			if p.err, _ = r.(error); p.err == nil {
				p.err = fmt.Errorf("%v", r)
			}
			err = p
		}
	}()
	return next(c)
}

// errAborted is a handler's panic with http.ErrAbortHandler: it asked
// net/http to drop the connection, so no reply is written for it.
var errAborted = &Error{Status: http.StatusInternalServerError, Code: events.UnknownError,
	Message: "the handler aborted the reply (http.ErrAbortHandler); the connection was dropped"}

// sentStatus is the status sent for a request that ended with err: the
// one written, or 0 when the handler aborted before anything was.
func sentStatus(res *echo.Response, err error) int {
	if err == errAborted && !res.Committed {
		return 0
	}
	return res.Status
}

// panicked is a handler's panic as its error: the value's message, and
// the stack the log line carries so that the bug can be found.
type panicked struct {
	err   error
	stack []byte
}

func (p *panicked) Error() string { return p.err.Error() }
func (p *panicked) Unwrap() error { return p.err }

// write logs the line of a request answered in d with err, and counts a
// delivery in the metrics.
func (l *requestLine) write(log *zap.Logger, obs Observer, err error, d time.Duration, id string) {
	req, res := l.Request(), l.Response()
	route := l.Path()
	var e *Error
	var code events.ErrorCode
	if err != nil {
		e = asError(err, l)
		code = e.Code
	}
	status := sentStatus(res, err)
	dl := deliveryOf(l)
	msg, outcome := "request", ""
	if dl != nil {
		if dl.outcome == "" { // refused before the use case: the code says why (the span reads it too)
			dl.outcome = string(code)
		}
		msg, outcome = "delivery", dl.outcome
		obs.Delivered(dl.eventType, outcome, dl.replayed, d)
	}
	if sc := trace.SpanContextFromContext(l.Request().Context()); sc.IsValid() {
		// Under the delivery's span (tracing on), the line has its trace_id.
		log = logctx.Logger(l.Request().Context(), log)
	}
	ce := log.Check(quietProbe(route, level(status, code)), msg)
	if ce == nil {
		return
	}
	fp := lineFields.Get().(*[]zap.Field)
	f := append((*fp)[:0],
		zap.String("method", req.Method),
		zap.String("route", route),
		zap.Int("status", status),
		zap.Duration("duration", d),
		zap.String("request_id", id),
	)
	if e != nil {
		f = append(f, zap.String("code", string(code)), zap.String("reason", reason(e)))
		if p := (*panicked)(nil); errors.As(err, &p) {
			f = append(f, zap.ByteString("stack", p.stack))
		}
	} else if l.reason != "" {
		f = append(f, zap.String("reason", l.reason))
	} else if dl != nil && dl.reason != "" {
		// A refusal or a failure decided in processing (FORBIDDEN, a
		// step's 503): which step or check decided it.
		f = append(f, zap.String("reason", dl.reason))
	}
	if dl != nil {
		idField := logctx.String("webhook_id", dl.webhookID)
		if dl.eventToken != "" {
			idField = logctx.String("event_token", dl.eventToken)
		}
		f = append(f, idField,
			logctx.String("key", dl.key),
			zap.String("event_type", dl.eventType),
			logctx.String("subscription", dl.subscription),
			logctx.String("extension", dl.extension),
			zap.String("product", dl.product),
			zap.String("outcome", outcome),
			zap.Bool("replayed", dl.replayed),
			zap.Int("calls", dl.calls),
		)
	}
	ce.Write(f...)
	clear(f) // the pooled fields keep no strings of this request
	*fp = f[:0]
	lineFields.Put(fp)
}

// maxRequestID bounds an X-Request-Id taken as sent: longer ones (or
// empty, or with other than printable ASCII) are replaced by one of ours,
// since the id is echoed in the reply and written on every log line.
const maxRequestID = 128

// sentRequestID reports whether the sender's X-Request-Id is kept.
func sentRequestID(id string) bool { return printableID(id, maxRequestID) }

// newRequestID is a request id: 32 random letters and digits, as echo's
// RequestID middleware makes, from math/rand/v2 (an id, not a secret).
func newRequestID() string {
	const charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [32]byte
	for i := 0; i < len(b); {
		r := rand.Uint64()
		for j := 0; j < 10 && i < len(b); j++ { // 6 bits at a time; 62 and 63 are skipped, so none is likelier
			if c := r & 63; c < uint64(len(charset)) {
				b[i] = charset[c]
				i++
			}
			r >>= 6
		}
	}
	return string(b[:])
}

// level is the log level of a request answered status with code.
func level(status int, code events.ErrorCode) zapcore.Level {
	switch {
	case (status >= http.StatusInternalServerError || status == 0) && code == events.UnknownError: // 0: aborted, nothing sent
		return zapcore.ErrorLevel
	case status >= http.StatusBadRequest:
		return zapcore.WarnLevel
	}
	return zapcore.InfoLevel
}

// reason is why a request was refused, for the log only: the cause chain
// when there is one ("no matching signature", "i/o timeout"), else the
// message the sender got.
func reason(e *Error) string {
	if e.Cause == nil {
		return e.Message
	}
	return e.Cause.Error()
}

// quietProbe lowers a probe's info line (/healthz, /readyz answered 2xx) to
// debug: orchestrators call them every few seconds, and those lines would
// bury the deliveries. A probe that fails keeps its warning.
func quietProbe(route string, l zapcore.Level) zapcore.Level {
	if l == zapcore.InfoLevel && (route == "/healthz" || route == "/readyz") {
		return zapcore.DebugLevel
	}
	return l
}
