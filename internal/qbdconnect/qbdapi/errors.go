package qbdapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kinds of failure, matched with errors.Is. An *APIError unwraps to at most
// one of them.
var (
	// ErrNotFound: status 404, no such customer, instance, subscription or
	// product. A DELETE retried after a lost reply also ends here: treat it
	// as done.
	ErrNotFound = errors.New("not found")
	// ErrBadRequest: status 400 or 422, or an argument this package refused
	// before sending (an empty id). Sending the same request again fails the
	// same way; the message names the field.
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized: status 401 or 403; check QBD_TOKEN.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrConflict: status 409, the object exists already (for example a
	// subscription id that is taken), or a lookup that matched several
	// customers.
	ErrConflict = errors.New("conflict")
	// ErrTransient: worth trying again later: status 408, 429 or 5xx,
	// network errors and timeouts (the caller's own deadline included).
	ErrTransient = errors.New("transient failure")
	// ErrInvalidResponse: a reply this package cannot read, so the server
	// may or may not have done the work: a successful status whose body is
	// not the JSON this package expects, one too large, or a redirect
	// (never followed).
	ErrInvalidResponse = errors.New("invalid response")
)

// maxMessage bounds the server message shown in Error().
const maxMessage = 200

// APIError is a failure answered by QBD Connect with an error status.
type APIError struct {
	Method     string        // HTTP method
	Path       string        // path under /qbdconnect-api/{version}, without the query: "/customers/42"
	Status     int           // HTTP status
	Body       string        // the reply body, at most maxErrorBody bytes
	RetryAfter time.Duration // from the Retry-After header, at most httpcall.MaxRetryAfter; 0 when absent

	kind error
}

// Error names the call, the status, the kind and the server's message (the
// "message" or "error" string of a JSON body), never anything sent.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "qbd %s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.kind != nil {
		b.WriteString(": " + e.kind.Error())
	}
	if m := e.Message(); m != "" {
		if len(m) > maxMessage {
			m = m[:maxMessage] + "…"
		}
		b.WriteString(": " + m)
	}
	return b.String()
}

// Unwrap returns the sentinel kind (nil for an unclassified status such as
// 405).
func (e *APIError) Unwrap() error { return e.kind }

// StatusCode is the HTTP status the server answered.
func (e *APIError) StatusCode() int { return e.Status }

// Message is the server's explanation: the "message" (else "error") string
// of a JSON object body, else the body itself when it is short plain text.
func (e *APIError) Message() string {
	var doc struct {
		Message json.RawMessage `json:"message"`
		Error   json.RawMessage `json:"error"`
	}
	if json.Unmarshal([]byte(e.Body), &doc) == nil {
		for _, raw := range []json.RawMessage{doc.Message, doc.Error} {
			var s string
			if json.Unmarshal(raw, &s) == nil && s != "" {
				return s
			}
		}
		return ""
	}
	if s := strings.TrimSpace(e.Body); len(s) <= maxMessage && !strings.ContainsAny(s, "<{") {
		return s
	}
	return ""
}

// classify maps the status to a sentinel kind.
func classify(status int) error {
	switch {
	case status == 404:
		return ErrNotFound
	case status == 400 || status == 422:
		return ErrBadRequest
	case status == 401 || status == 403:
		return ErrUnauthorized
	case status == 409:
		return ErrConflict
	case status == 408 || status == 429 || status >= 500:
		return ErrTransient
	}
	return nil
}

func badArgument(method, route, reason string) error {
	return fmt.Errorf("qbd %s %s: %w: %s", method, route, ErrBadRequest, reason)
}
