// Package q2client is a small typed client for the Q2 platform REST API:
// Enrollment, LookupUser, LookupCustomer, DeleteUser, DeleteCustomer,
// AddExternalAccount and GetAccountList, each under /{version}/ of a base URL.
//
// It fetches OAuth2 client-credentials tokens (cached until shortly before
// they expire, one token request at a time, refreshed once when Q2 answers
// 401), decides on the envelope's "success" rather than on the HTTP status
// alone, and turns failures into *APIError values that match sentinel kinds
// with errors.Is (ErrNotFound, ErrAlreadyExists, ErrTransient, ...).
//
// Calls that are safe to repeat (lookups, deletes, GET) are retried on 429,
// 502, 503, 504 and network errors, with bounded exponential backoff and full
// jitter, honouring Retry-After and never waiting past the caller's deadline.
// Enrollment is retried only when the request surely did not reach Q2 (no
// token yet, connection refused): a lost reply is resolved by the caller
// looking the logon name up with LookupUser.
//
// Nothing secret (tokens, passwords, SSN, tax ids, request or response
// bodies) is written to the log or to error strings built by this package;
// an APIError shows Q2's own error messages.
package q2client
