package q2api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

// token gets a token from ts, giving up when ctx is done.
func token(ctx context.Context, ts oauth2.TokenSource) (*oauth2.Token, error) {
	tok, err := httpcall.Token(ctx, ts)
	switch {
	case err == nil:
		return tok, nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil, httpcall.TransportError("q2 token", ErrTransient, err)
	}
	return nil, tokenError(err)
}

// tokenError maps a failed token request. The core marks it as not sent
// when it ends an attempt: the Q2 route itself was not called.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.Response.StatusCode
		if code >= 300 && code < 400 { // the core's client followed no redirect
			var from *url.URL
			if re.Response.Request != nil {
				from = re.Response.Request.URL
			}
			reason := httpcall.RedirectReason(from, re.Response.Header.Get("Location"))
			return &httpcall.ReplyError{Call: "q2 token", Status: code, Kind: ErrInvalidResponse, Reason: reason}
		}
		e := &APIError{Endpoint: "token", Status: code}
		e.RetryAfter, _ = httpcall.ParseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
		if re.ErrorCode != "" {
			e.Errors, _ = json.Marshal([]string{re.ErrorCode})
		}
		e.kind = e.classify()
		if re.ErrorCode == "invalid_client" {
			e.kind = ErrUnauthorized
		}
		return e
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return httpcall.TransportError("q2 token", ErrTransient, err)
	}
	return fmt.Errorf("q2 token: %w: no usable token in the reply", ErrInvalidResponse)
}
