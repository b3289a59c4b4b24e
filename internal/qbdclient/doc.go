// Package qbdclient is a small typed client for the QBD Connect System API:
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
// ErrUnauthorized, ErrConflict, ErrTransient and ErrInvalidResponse.
//
// Retries: GET, PUT and DELETE are idempotent by HTTP's definition and the
// seed gives them no other meaning, so they are retried on transient
// failures (408, 429, 5xx, network errors, timeouts), with bounded
// exponential backoff and full jitter, honouring Retry-After and never
// waiting past the caller's deadline. POST creates, and PATCH has no
// documented body or semantics in the seed (so nothing says that applying
// it twice is harmless): both are retried only when the request surely did
// not reach the server (the connection was refused). A lost reply to a
// create is resolved by the caller looking the object up again (customers
// by gatewayCustomerId, subscriptions by their Stripe id).
//
// Nothing secret (the token, request or response bodies) is logged; each
// attempt is logged at debug level with its method, route, status and
// duration.
package qbdclient
