package appdirect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

type oauth2Creds struct {
	id, secret string
	scopes     []string
}

// token gets a token from ts, giving up when ctx is done.
func token(ctx context.Context, ts oauth2.TokenSource) (*oauth2.Token, error) {
	tok, err := httpcall.Token(ctx, ts)
	switch {
	case err == nil:
		return tok, nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil, httpcall.TransportError("appdirect token", ErrTransient, err)
	}
	return nil, tokenError(err)
}

// tokenError maps a failed token request. The core marks it as not sent
// when it ends an attempt: the event or result route was not called.
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
			return &httpcall.ReplyError{Call: "appdirect token", Status: code, Kind: ErrInvalidResponse, Reason: reason}
		}
		e := &APIError{Action: httpcall.TokenAction, Status: code, kinds: classify(code)}
		e.RetryAfter, _ = httpcall.ParseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
		if re.ErrorCode == "invalid_client" || code == http.StatusBadRequest && re.ErrorCode == "unauthorized_client" {
			e.kinds = []error{ErrRefused, ErrUnauthorized}
		}
		return e
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return httpcall.TransportError("appdirect token", ErrTransient, err)
	}
	return fmt.Errorf("appdirect token: %w: no usable token in the reply", ErrInvalidResponse)
}
