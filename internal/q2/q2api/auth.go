package q2api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

// tokens holds the cached token source. oauth2.ReuseTokenSource caches a
// token until shortly before it expires and lets one caller fetch at a time;
// drop replaces it when Q2 refuses its token.
type tokens struct {
	fetch oauth2.TokenSource // uncached: one token request per call

	mu  sync.Mutex
	cur oauth2.TokenSource
}

// fetcher fetches a fresh token on every call, and tells onFetch.
type fetcher struct {
	cfg     *clientcredentials.Config
	ctx     context.Context
	onFetch func(err error, d time.Duration)
}

func (f fetcher) Token() (*oauth2.Token, error) {
	start := time.Now()
	tok, err := f.cfg.Token(f.ctx)
	if f.onFetch != nil {
		f.onFetch(err, time.Since(start))
	}
	return tok, err
}

// newTokens fetches through hc, the core's client (it follows no
// redirect, so the client secret goes only to tokenURL), each fetch bounded
// like an attempt.
func newTokens(tokenURL string, cr *credentials, hc *http.Client, timeout time.Duration, onFetch func(error, time.Duration)) *tokens {
	cfg := &clientcredentials.Config{
		ClientID:     cr.id,
		ClientSecret: cr.secret,
		TokenURL:     tokenURL,
		Scopes:       cr.scopes,
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	// A token request outlives the caller that started it (others may be
	// waiting for it), so it runs on its own context, bounded like an attempt.
	th := *hc
	if th.Timeout == 0 || th.Timeout > timeout {
		th.Timeout = timeout
	}
	f := fetcher{cfg, context.WithValue(context.Background(), oauth2.HTTPClient, &th), onFetch}
	return &tokens{fetch: f, cur: oauth2.ReuseTokenSource(nil, f)}
}

func (t *tokens) current() oauth2.TokenSource {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

// drop forgets the cached token, unless another caller already did since
// used was current.
func (t *tokens) drop(used oauth2.TokenSource) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == used {
		t.cur = oauth2.ReuseTokenSource(nil, t.fetch)
	}
}

// refresh fetches a new token now and makes it the one later calls use, so
// that a check of the credentials costs no extra token request afterwards.
func (t *tokens) refresh(ctx context.Context) error {
	tok, err := token(ctx, t.fetch)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur = oauth2.ReuseTokenSource(tok, t.fetch)
	return nil
}

// token gets a token from ts, giving up when ctx is done.
func token(ctx context.Context, ts oauth2.TokenSource) (*oauth2.Token, error) {
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tok, err := ts.Token()
		ch <- result{tok, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, tokenError(r.err)
		}
		return r.tok, nil
	case <-ctx.Done():
		return nil, httpcall.TransportError("q2 token", ErrTransient, ctx.Err())
	}
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
