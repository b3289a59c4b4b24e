// Package qbdapi is a small typed client for the QBD Connect System API:
// customers, instances, subscriptions and products under
// {base}/qbdconnect-api/{version}/, the part of the API that provisioning
// and operators need (invoices, payments, payouts and users are left out).
//
// Every object the API documents with additional properties keeps the
// properties this package does not name in an Extra map, so that a
// read-modify-write (GET, change one field, PUT) never drops what the
// server or another tool stored.
//
// Failures are *APIError values (the server answered) or transport errors,
// matched with errors.Is against ErrNotFound, ErrBadRequest,
// ErrUnauthorized, ErrConflict, ErrTransient and ErrInvalidResponse. Every
// error for a call the server answered tells its status through a
// StatusCode() int method (errors.As); a redirect is never followed, and is
// an ErrInvalidResponse.
//
// The calls go through internal/httpcall, which holds the rules every
// outside call follows. Retries: GET, PUT and DELETE are idempotent by
// HTTP's definition and the seed gives them no other meaning, so they are
// tried again on transient failures (408, 429, 5xx, network errors,
// timeouts), with bounded backoff and full jitter, never waiting past the
// caller's deadline; a Retry-After up to the backoff cap is waited, a
// longer one ends the call and is on the APIError (at most
// httpcall.MaxRetryAfter). POST creates, and PATCH has no
// documented body or semantics in the seed (so nothing says that applying
// it twice is harmless): both are retried only when the request surely did
// not reach the server (the connection was refused). A lost reply to a
// create is resolved by the caller looking the object up again (customers
// by gatewayCustomerId, subscriptions by their Stripe id).
//
// Nothing secret (the token, request or response bodies) is logged; each
// attempt is reported to the observer (WithObserver) with its method,
// route, status and duration.
package qbdapi
