package handlers

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
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
// nil for other routes.
func deliveryOf(c echo.Context) *deliveryLog {
	if d, ok := c.Get(deliveryLogKey).(*deliveryLog); ok {
		return d
	}
	if c.Path() != marketplaceRoute && c.Path() != appdirectRoute {
		return nil
	}
	d := &deliveryLog{extension: c.Param("extension"), webhookID: c.Request().Header.Get("webhook-id")}
	c.Set(deliveryLogKey, d)
	return d
}

const (
	deliveryLogKey = "delivery"
	reasonKey      = "reason"
)

// setReason gives the request's log line a private reason for a reply that
// is not an error (a /readyz 503).
func setReason(c echo.Context, err error) { c.Set(reasonKey, err.Error()) }

// requestLogger writes one line per request, after the error handler has
// written the reply, so the line has the status really sent: method, route,
// status, duration, request id; for a refusal its error code and a private
// reason (the cause, never a secret or the body); for a delivery its key,
// webhook-id or AppDirect event token (the id a marketplace's ticket
// quotes), type, subscription,
// extension, outcome and outside calls, each value from the request cut to
// logctx.MaxValue, and its trace_id and span_id when it is traced. It never logs bodies or other headers. 2xx is info, other statuses warn, and a 5xx that is the
// service's own fault (UNKNOWN_ERROR) is an error; a probe answered 2xx is
// debug.
func requestLogger(log *zap.Logger, obs Observer) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		HandleError:  true, // run errorHandler first: v.Status is then what was sent
		LogError:     true,
		LogMethod:    true,
		LogRoutePath: true,
		LogStatus:    true,
		LogLatency:   true,
		LogRequestID: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			fields := []zap.Field{
				zap.String("method", v.Method),
				zap.String("route", v.RoutePath),
				zap.Int("status", v.Status),
				zap.Duration("duration", v.Latency),
				zap.String("request_id", v.RequestID),
			}
			var code events.ErrorCode
			d := deliveryOf(c)
			if v.Error != nil {
				e := asError(v.Error, c)
				code = e.Code
				fields = append(fields, zap.String("code", string(code)), zap.String("reason", reason(e)))
			} else if r, ok := c.Get(reasonKey).(string); ok {
				fields = append(fields, zap.String("reason", r))
			} else if d != nil && d.reason != "" {
				// A refusal or a failure decided in processing (FORBIDDEN,
				// a step's 503): which step or check decided it.
				fields = append(fields, zap.String("reason", d.reason))
			}
			msg := "request"
			if d != nil {
				msg = "delivery"
				if d.outcome == "" { // refused before the use case: the code says why (the span reads it too)
					d.outcome = string(code)
				}
				outcome := d.outcome
				id := logctx.String("webhook_id", d.webhookID)
				if d.eventToken != "" {
					id = logctx.String("event_token", d.eventToken)
				}
				fields = append(fields, id,
					logctx.String("key", d.key),
					zap.String("event_type", d.eventType),
					logctx.String("subscription", d.subscription),
					logctx.String("extension", d.extension),
					zap.String("product", d.product),
					zap.String("outcome", outcome),
					zap.Bool("replayed", d.replayed),
					zap.Int("calls", d.calls),
				)
				obs.Delivered(d.eventType, outcome, d.replayed, v.Latency)
			}
			// Under the delivery's span (tracing on), the line has its trace_id.
			logctx.Logger(c.Request().Context(), log).Log(quietProbe(v.RoutePath, level(v.Status, code)), msg, fields...)
			return nil
		},
	})
}

// level is the log level of a request answered status with code.
func level(status int, code events.ErrorCode) zapcore.Level {
	switch {
	case status >= http.StatusInternalServerError && code == events.UnknownError:
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
