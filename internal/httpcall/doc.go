// Package httpcall is the request core the outside API clients (Q2, QBD
// Connect, Helix) stand on, in the manner of go-github's NewRequest, Do and
// CheckResponse: a client builds a Request, the core sends it and reads the
// reply, and the client's read function says what the reply means. The
// rules every outside call follows live here, once:
//
//   - Attempts: at most Retry.Attempts, with full-jitter backoff between
//     them (internal/backoff), never once the caller's context is done, and
//     never a wait that would pass its deadline. A failure is tried again
//     only when it is transient (it matches the client's ErrTransient) and
//     the request is safe to send again: Request.Idempotent (GET, PUT,
//     DELETE, or a POST that only reads), or the request surely did not
//     leave (ErrNotSent: the dial failed, or Authorize, such as a token
//     fetch, failed). A POST that creates something is never sent twice by
//     the core: its caller resolves a lost reply by looking the object up.
//   - Retry-After: one reader (ParseRetryAfter: delta-seconds or an HTTP
//     date, RFC 9110 §10.2.3) and one rule. A wait up to Retry.MaxDelay
//     (1 s by default) is waited and the call tried again, when that is
//     safe; a longer one ends the attempts, and the client's error carries
//     it, capped at MaxRetryAfter, for the caller to pass on.
//   - Redirects are never followed: the core's http.Client stops at the
//     first reply, and a 3xx is a failure of the client's
//     ErrInvalidResponse kind (the outside system may or may not have done
//     the work) whose message names the Location's host, never its URL.
//   - Credentials stay home: the core refuses a request whose URL is not
//     under the base URL it was built with, before Authorize adds any
//     credential to it.
//   - Bodies are read through a limit: a successful reply larger than
//     MaxBody is an invalid response; an error reply is cut at
//     MaxErrorBody.
//   - Every attempt, answered or not, is reported once to the Observer as
//     an Attempt: the one shape the service's logs and metrics read.
//   - Traces: when the caller's context carries a span (a delivery's, a
//     settle pass's), every attempt is a client span under it, named by
//     the system and the action ("q2 Enrollment"), with the method, the
//     server, the status, the resend count and the system's request id,
//     never the URL (a query may hold a login name), a header or a body;
//     and the request carries the W3C traceparent of that span, so that
//     the outside system's traces join ours. Without a span, neither: no
//     cost when tracing is off, and no trace for a token fetch that serves
//     many calls. The spans are made here rather than by a wrapped
//     transport (otelhttp), whose span would record the full URL.
//
// Extension points, so that a fourth client is a few lines: a per-request
// hook (Config.Authorize: a bearer token, HTTP Basic, an OAuth 1.0a
// signature), and the http.Client the core is given.
package httpcall
