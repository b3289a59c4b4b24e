package q2api

import (
	"encoding/json"
	"time"

	"golang.org/x/oauth2"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

// tokenErrors maps a failed token request (httpcall.TokenErrors): an
// error reply is an APIError of endpoint "token", invalid_client refused
// credentials.
var tokenErrors = httpcall.TokenErrors{Call: "q2 token", Transient: ErrTransient, Invalid: ErrInvalidResponse,
	Status: func(re *oauth2.RetrieveError, retryAfter time.Duration) error {
		e := &APIError{Endpoint: "token", Status: re.Response.StatusCode, RetryAfter: retryAfter}
		if re.ErrorCode != "" {
			e.Errors, _ = json.Marshal([]string{re.ErrorCode})
		}
		e.kind = e.classify()
		if re.ErrorCode == "invalid_client" {
			e.kind = ErrUnauthorized
		}
		return e
	}}
