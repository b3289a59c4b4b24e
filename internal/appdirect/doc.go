// Package appdirect is what the service needs to be the event URL of an
// AppDirect marketplace directly, without Q2 in between: the credentials
// of AppDirect's notification, the guard on the event URL it names, and
// the client that fetches the event and posts an asynchronous result. It
// imports no HTTP framework and no Redis; the door, the inbox and the
// settle queue wire these pieces.
//
// AppDirect notifies with GET {event URL}?eventUrl=URL, in one of two
// credential modes:
//
//   - shared credentials (the older mode, AppDirect's Java SDK's): the
//     notification is signed with OAuth 1.0a, HMAC-SHA1, two-legged (a
//     consumer key and secret, no token). Verifier checks it (RFC 5849),
//     stricter than the SDK: a timestamp window in both directions and
//     nonces remembered within it (Nonces, kept in Redis by the service).
//     The fetch and the result post are signed the same way (Sign).
//   - separate credentials (AppDirect's mode for new products): the
//     notification carries a bearer token or HTTP Basic credentials,
//     checked by CredentialVerifier; the fetch and the result post carry
//     an OAuth 2.0 client-credentials token from {marketplace}/oauth2/token.
//
// The event URL comes from the request, so it is checked before anything
// is sent to it (EventURL): it must be {a configured marketplace base
// URL}/api/integration/v1/events/{token}, compared after normalisation,
// or nothing is sent and the door answers 403. Client re-checks it, so
// that a URL that did not pass can never be fetched with the credentials.
//
// Client.FetchEvent returns the raw event document; decoding it is the
// domain's work (internal/events). Client.PostResult posts a result
// document once per call; the service's durable queue decides when to try
// again, from the error's kind (ErrTransient, ErrRefused,
// ErrInvalidResponse).
//
// The door, in order:
//
//	who, err := verifier.Verify(ctx, r)          // or credentials.Verify: 401 on error
//	raw := r.URL.Query().Get("eventUrl")
//	token, market, err := client.EventURL(raw)   // 403 FORBIDDEN on error (the marketplaces parsed once)
//	doc, err := client.FetchEvent(ctx, raw)      // ErrTransient: a transient outcome; ErrNotFound: NOT_FOUND
//	// … the inbox, keyed by marketplace and token; later, from the durable queue:
//	err = client.PostResult(ctx, market, token, result)
//
// The sandbox's marketplace is in the sub-package appdirectsandbox.
package appdirect
