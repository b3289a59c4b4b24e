package q2api

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Kinds of failure, matched with errors.Is. An *APIError unwraps to at most
// one of them; ErrRateLimited also matches ErrTransient.
var (
	// ErrNotFound: Q2 has no such user or customer (HTTP or envelope status
	// 404, a Q2 message saying "not found", or a lookup with empty data).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: status 409, or a Q2 message saying "already exists"
	// (for example a logon name held by another user).
	ErrAlreadyExists = errors.New("already exists")
	// ErrUnauthorized: status 401 after the one token refresh, or the token
	// endpoint refused the client credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: status 403.
	ErrForbidden = errors.New("forbidden")
	// ErrTransient: worth trying again later: status 408 or 5xx, 429,
	// network errors and timeouts, whatever Q2's message says.
	ErrTransient = errors.New("transient failure")
	// ErrRateLimited: status 429. It matches ErrTransient too.
	ErrRateLimited = fmt.Errorf("rate limited, a %w", ErrTransient)
	// ErrInvalidResponse: a reply this package cannot read, so Q2 may or
	// may not have done the work: a success that is not the expected JSON
	// envelope or data shape, one too large, or a redirect (never
	// followed).
	ErrInvalidResponse = errors.New("invalid response")
)

// APIError is a failure answered by Q2: an HTTP error status, or an envelope
// with success:false. Its Error string holds the endpoint, the statuses, Q2's
// messages and the request ids, never anything from the request.
type APIError struct {
	Endpoint       string          // Q2 action, e.g. "Enrollment", or "token"
	Status         int             // HTTP status
	EnvelopeStatus int             // the envelope's "status", 0 when absent
	Errors         json.RawMessage // the envelope's "errors", as sent
	RequestID      string          // the envelope's "requestid"
	LogRefID       string          // the envelope's "log_ref_id"
	RetryAfter     time.Duration   // from the Retry-After header (seconds or a date), at most httpcall.MaxRetryAfter; 0 when absent

	kind error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "q2 %s: HTTP %d", e.Endpoint, e.Status)
	if e.EnvelopeStatus != 0 && e.EnvelopeStatus != e.Status {
		fmt.Fprintf(&b, " (status %d)", e.EnvelopeStatus)
	}
	if e.kind != nil {
		b.WriteString(": " + e.kind.Error())
	}
	if msgs := e.Messages(); len(msgs) > 0 {
		b.WriteString(": " + strings.Join(msgs, "; "))
	}
	if e.RequestID != "" || e.LogRefID != "" {
		fmt.Fprintf(&b, " [requestid %q, log_ref_id %q]", e.RequestID, e.LogRefID)
	}
	return b.String()
}

// Unwrap returns the sentinel kind (nil for an unclassified failure such as
// a 400).
func (e *APIError) Unwrap() error { return e.kind }

// StatusCode is the HTTP status Q2 answered.
func (e *APIError) StatusCode() int { return e.Status }

// Messages renders Errors, which Q2 sends as an array of strings, an array
// of objects or an object, as one line per error. Object fields are shown as
// "key: value" in key order.
func (e *APIError) Messages() []string {
	var v any
	if json.Unmarshal(e.Errors, &v) != nil {
		return nil
	}
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	var out []string
	for _, it := range items {
		if s := render(it); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func render(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			if s := render(v[k]); s != "" {
				parts = append(parts, k+": "+s)
			}
		}
		return strings.Join(parts, ", ")
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// has reports whether the HTTP or the envelope status is one of codes.
func (e *APIError) has(codes ...int) bool {
	return slices.Contains(codes, e.Status) || slices.Contains(codes, e.EnvelopeStatus)
}

func (e *APIError) says(phrase string) bool {
	return slices.ContainsFunc(e.Messages(), func(m string) bool {
		return strings.Contains(strings.ToLower(m), phrase)
	})
}

// classify picks the sentinel kind. The status (HTTP or the envelope's)
// decides first: a 503 whose text says "not found" is an outage, not an
// absence. Q2's wording is read only for a status that says nothing more
// (a 400 or a 200 with success false).
func (e *APIError) classify() error {
	switch {
	case e.has(401):
		return ErrUnauthorized
	case e.has(403):
		return ErrForbidden
	case e.has(429):
		return ErrRateLimited
	case e.has(408) || e.Status >= 500 || e.EnvelopeStatus >= 500:
		return ErrTransient
	case e.has(409):
		return ErrAlreadyExists
	case e.has(404):
		return ErrNotFound
	case e.says("already exists"):
		return ErrAlreadyExists
	case e.says("not found"):
		return ErrNotFound
	}
	return nil
}
