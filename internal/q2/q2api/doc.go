// Package q2api is a small typed client for the Q2 platform REST API:
// Enrollment, LookupUser, LookupCustomer, DeleteUser, DeleteCustomer,
// AddExternalAccount and GetAccountList, each under /{version}/ of a base URL.
//
// It fetches OAuth2 client-credentials tokens (cached until shortly before
// they expire, one token request at a time, refreshed once when Q2 answers
// 401), decides on the envelope's "success" rather than on the HTTP status
// alone, and turns failures into *APIError values that match sentinel kinds
// with errors.Is (ErrNotFound, ErrAlreadyExists, ErrTransient, ...). The
// status decides before Q2's wording: a 503 saying "not found" is
// ErrTransient. Every error for a call Q2 answered tells its status through
// a StatusCode() int method (errors.As).
//
// The calls go through internal/httpcall, which holds the rules every
// outside call follows (attempts, Retry-After, no redirects, credentials
// only to the base URL, observed attempts). Calls that are safe to repeat
// (lookups, deletes, GET) are tried again on transient failures (408, 429,
// 5xx, network errors), with bounded backoff and full jitter; a Retry-After
// up to the backoff cap is waited, a longer one ends the call and is on the
// APIError (at most httpcall.MaxRetryAfter). Enrollment and
// AddExternalAccount are tried again only when the request surely did not
// reach Q2 (no token yet, connection refused): a lost reply is resolved by
// the caller looking the logon name up with LookupUser. A redirect is
// never followed: it is an ErrInvalidResponse, since Q2 may or may not have
// done the work.
//
// Nothing secret (tokens, passwords, SSN, tax ids, request or response
// bodies) is written to the log or to error strings built by this package;
// an APIError shows Q2's own error messages.
package q2api
