// Package helixapi is a small typed client for the three Helix (Q2)
// entitlement routes: POST /account/addEntitlement, /account/editEntitlement
// and /account/removeEntitlement, authenticated with HTTP Basic (API key as
// user, API secret as password).
//
// Requests are validated before anything is sent (ids ≥ 1, a known
// entitlement level), so a bad configuration never costs a Helix call; such
// errors match ErrInvalidRequest and name the field.
//
// Every reply is Helix's envelope {data, errors: [{code, message}],
// requestId, status, throttle}. A non-2xx status or a non-empty errors list
// is an *APIError carrying Helix's numeric codes, which are stable (the
// messages are not: match on codes, with APIError.Has). An APIError matches
// ErrUnauthorized (HTTP 401 or 403, codes 50401 and 50403) or ErrTransient
// (HTTP 408, 429 and 5xx, codes 50429 and 50500–50505) with errors.Is;
// transport failures and timeouts match ErrTransient too.
//
// Every error for a call Helix answered tells its status through a
// StatusCode() int method (errors.As). A redirect is never followed: it is
// an ErrInvalidResponse, since Helix may or may not have done the work.
//
// The calls go through internal/httpcall, which holds the rules every
// outside call follows. Edit and remove are tried again on transient
// failures, with bounded backoff and full jitter, never after the caller's
// context is done and never past its deadline: repeating them is safe (an
// edit sets the same level again, a remove whose reply was lost answers
// 195119, no entitlement, the second time). Add is a blind create: it is
// tried again only when the request surely did not leave (the dial
// failed); after a lost reply the caller sends the event again, and meets
// 195110 (already entitled) if the first add landed.
//
// Rate limits: on HTTP 429 or code 50429 the wait is the Retry-After header
// (seconds, or an HTTP date), else the envelope's "throttle", else
// DefaultRetryAfter. Helix's documentation does not give the shape of
// "throttle"; this package assumes and accepts either a number of seconds
// (a JSON number or numeric string), or an object whose field named like
// "retry…" (preferred) or "reset…" holds seconds, milliseconds when the name
// ends in "ms", or a Unix time when the value is past 10^9. A wait longer
// than the backoff cap is not slept: the call fails with the APIError, whose
// RetryAfter (at most httpcall.MaxRetryAfter) the caller can pass on.
//
// Each attempt is reported to the observer (WithObserver) with the route,
// HTTP status, duration and Helix's requestId; never a body or a
// credential.
package helixapi
