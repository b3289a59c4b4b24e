package handlers

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/logctx"
)

// Error is a request refused by the HTTP door before it reaches processing
// (bad input, bad signature, a body too large). Only this door makes one,
// so it carries the HTTP status; the domain's outcomes carry a kind, turned
// into a status by one table (statusOf). Its Message is for the sender;
// Cause carries detail for the log only.
type Error struct {
	Status     int
	Code       events.ErrorCode
	Message    string
	RetryAfter time.Duration
	Cause      error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return string(e.Code) + ": " + e.Message + ": " + e.Cause.Error()
	}
	return string(e.Code) + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// errorHandler turns every error into a contract document: an *Error as
// it says, echo's routing errors as the matching status, anything else as a
// generic 500 whose detail goes to the log only (the request's line, see
// requestLogger).
func errorHandler(log *zap.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		e := asError(err, c)
		setRetryAfter(c.Response().Header(), e.RetryAfter)
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(e.Status)
			return
		}
		if err := c.JSON(e.Status, events.Failure(e.Code, e.Message)); err != nil {
			log.Debug("writing error reply", zap.Error(err))
		}
	}
}

func asError(err error, c echo.Context) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return &Error{Status: he.Code, Code: events.ConfigurationError,
				Message: "no such route: " + logctx.Cut(c.Request().Method+" "+c.Request().URL.Path)}
		case http.StatusMethodNotAllowed:
			return &Error{Status: he.Code, Code: events.ConfigurationError,
				Message: "method " + logctx.Cut(c.Request().Method) + " is not allowed here"}
		case http.StatusRequestEntityTooLarge:
			return &Error{Status: he.Code, Code: events.InvalidResponse, Message: "the body is larger than 1 MiB"}
		}
		if he.Code < http.StatusInternalServerError {
			return &Error{Status: he.Code, Code: events.InvalidResponse, Message: http.StatusText(he.Code)}
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: events.UnknownError,
		Message: "internal error; it has been logged", Cause: err}
}

// busy is the answer past a cap: in-flight deliveries, body readers, body
// memory.
func busy(msg string) error {
	return &Error{Status: http.StatusServiceUnavailable, Code: events.TransportError, Message: msg, RetryAfter: time.Second}
}
