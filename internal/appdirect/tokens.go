package appdirect

import (
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

type oauth2Creds struct {
	id, secret string
	scopes     []string
}

// tokenErrors maps a failed token request (httpcall.TokenErrors): an
// error reply is an APIError of the token action, invalid_client (and a
// 400 unauthorized_client) refused credentials.
var tokenErrors = httpcall.TokenErrors{Call: "appdirect token", Transient: ErrTransient, Invalid: ErrInvalidResponse,
	Status: func(re *oauth2.RetrieveError, retryAfter time.Duration) error {
		code := re.Response.StatusCode
		e := &APIError{Action: httpcall.TokenAction, Status: code, RetryAfter: retryAfter, kinds: classify(code)}
		if re.ErrorCode == "invalid_client" || code == http.StatusBadRequest && re.ErrorCode == "unauthorized_client" {
			e.kinds = []error{ErrRefused, ErrUnauthorized}
		}
		return e
	}}
