package appdirect

import (
	"errors"
	"time"

	"golang.org/x/oauth2"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

type oauth2Creds struct {
	id, secret string
	scopes     []string
}

// tokenErrors maps a failed token request (httpcall.TokenErrors): an
// error reply is an APIError of the token action. Any refusal there (a
// 4xx but 408 and 429: invalid_client, invalid_scope, a wrong token URL)
// is of the service's own setup, never of the call it was for, so it is
// ErrUnauthorized: the caller retries until the setup is fixed, instead
// of taking it for AppDirect refusing a result or an event.
var tokenErrors = httpcall.TokenErrors{Call: "appdirect token", Transient: ErrTransient, Invalid: ErrInvalidResponse,
	Status: func(re *oauth2.RetrieveError, retryAfter time.Duration) error {
		code := re.Response.StatusCode
		e := &APIError{Action: httpcall.TokenAction, Status: code, RetryAfter: retryAfter, kinds: classify(code)}
		if errors.Is(e, ErrRefused) {
			e.kinds = []error{ErrRefused, ErrUnauthorized}
		}
		return e
	}}
