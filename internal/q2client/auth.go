package q2client

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
	th.Timeout = timeout
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
		return nil, transportError("token", ctx.Err())
	}
}

// tokenError maps a failed token request. All of them are marked as not
// sent: the Q2 route itself was not called.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		e := &APIError{Endpoint: "token", Status: re.Response.StatusCode, RetryAfter: retryAfter(re.Response.Header)}
		if re.ErrorCode != "" {
			e.Errors, _ = json.Marshal([]string{re.ErrorCode})
		}
		e.kind = e.classify()
		if re.ErrorCode == "invalid_client" {
			e.kind = ErrUnauthorized
		}
		return fmt.Errorf("%w (%w)", e, errNotSent)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return transportError("token", err)
	}
	return fmt.Errorf("q2 token: %w, %w: no usable token in the reply", ErrInvalidResponse, errNotSent)
}
