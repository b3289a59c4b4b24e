package helixapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kinds of failure, matched with errors.Is.
var (
	// ErrInvalidRequest: the request was refused before it was sent; the
	// message names each bad field.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrInvalidLevel: ParseLevel met a string that is not a level.
	ErrInvalidLevel = errors.New("invalid Helix entitlement level")
	// ErrUnauthorized: Helix refused the credentials or the caller (HTTP
	// 401 or 403, codes 50401 and 50403). Fixed by configuration, not by
	// waiting.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrTransient: worth trying again later: HTTP 408, 429 and 5xx, codes
	// 50429 and 50500–50505, transport failures and timeouts.
	ErrTransient = errors.New("transient failure")
	// ErrInvalidResponse: a reply this package cannot read, so Helix may or
	// may not have done the work: a 2xx that is not Helix's JSON envelope,
	// one too large, or a redirect (never followed).
	ErrInvalidResponse = errors.New("invalid response")
)

// DefaultRetryAfter is APIError.RetryAfter for a rate limit (HTTP 429 or
// code 50429) that says neither Retry-After nor throttle.
const DefaultRetryAfter = time.Second

// APIError is a failure answered by Helix: a non-2xx status, or an
// envelope whose errors list is not empty. Its Error string holds the
// route, the status, Helix's codes and messages and the request id, never
// anything of the request.
type APIError struct {
	Route      string        // "addEntitlement", "editEntitlement" or "removeEntitlement"
	HTTPStatus int           // the HTTP status
	Codes      []int         // the envelope's errors[].code, in Helix's order
	Messages   []string      // the envelope's errors[].message, same order
	RequestID  string        // the envelope's requestId
	RetryAfter time.Duration // when to try again: Retry-After, throttle or DefaultRetryAfter, at most httpcall.MaxRetryAfter; 0 when not said
}

// StatusCode is the HTTP status Helix answered.
func (e *APIError) StatusCode() int { return e.HTTPStatus }

// Has reports whether Helix answered code.
func (e *APIError) Has(code int) bool { return slices.Contains(e.Codes, code) }

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "helix %s: HTTP %d", e.Route, e.HTTPStatus)
	if k := e.Unwrap(); k != nil {
		b.WriteString(": " + k.Error())
	}
	for i, c := range e.Codes {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%d", sep, c)
		if i < len(e.Messages) && e.Messages[i] != "" {
			b.WriteString(" " + e.Messages[i])
		}
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [requestId %q]", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the kind, computed from the status and codes (so an
// APIError built by hand classifies the same way): ErrUnauthorized before
// ErrTransient, nil for a business refusal such as 195110.
func (e *APIError) Unwrap() error {
	switch {
	case e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden ||
		e.Has(CodeUnauthorized) || e.Has(CodeIPNotTrusted):
		return ErrUnauthorized
	case e.rateLimited() || e.HTTPStatus == http.StatusRequestTimeout || e.HTTPStatus >= 500 ||
		slices.ContainsFunc(e.Codes, isServerCode):
		return ErrTransient
	}
	return nil
}

func (e *APIError) rateLimited() bool {
	return e.HTTPStatus == http.StatusTooManyRequests || e.Has(CodeRateLimited)
}

func isServerCode(c int) bool { return c >= CodeServerErrorFirst && c <= CodeServerErrorLast }

// throttleWait reads the envelope's throttle leniently (see the package
// comment for the shapes assumed); 0 when it says nothing usable.
func throttleWait(raw json.RawMessage, now time.Time) time.Duration {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return 0
	}
	if obj, ok := v.(map[string]any); ok {
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, prefix := range []string{"retry", "reset"} {
			for _, k := range keys {
				lk := strings.ToLower(k)
				if !strings.HasPrefix(lk, prefix) {
					continue
				}
				if d := seconds(obj[k], strings.HasSuffix(lk, "ms"), now); d > 0 {
					return d
				}
			}
		}
		return 0
	}
	return seconds(v, false, now)
}

// seconds turns a JSON number or numeric string into a wait: seconds (or
// milliseconds), or a Unix time in seconds when past 10^9.
func seconds(v any, ms bool, now time.Time) time.Duration {
	var f float64
	switch v := v.(type) {
	case float64:
		f = v
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
			return 0
		}
	default:
		return 0
	}
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0) || f <= 0:
		return 0
	case ms:
		return time.Duration(min(f, 1e12) * float64(time.Millisecond))
	case f > 1e9:
		return max(time.Unix(int64(f), 0).Sub(now), 0)
	}
	return time.Duration(min(f, 1e9) * float64(time.Second))
}
