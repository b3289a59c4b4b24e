package q2api

import (
	"context"
	"encoding/json"
	"time"

	"golang.org/x/oauth2"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

// token gets a token from ts, giving up when ctx is done.
func token(ctx context.Context, ts oauth2.TokenSource) (*oauth2.Token, error) {
	tok, err := httpcall.Token(ctx, ts)
	if err != nil {
		return nil, tokenErrors.Map(ctx, err)
	}
	return tok, nil
}

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
