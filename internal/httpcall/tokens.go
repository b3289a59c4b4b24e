package httpcall

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TokenConfig is an OAuth 2.0 client-credentials token endpoint and the
// credentials it takes.
type TokenConfig struct {
	URL                    string
	ClientID, ClientSecret string
	Scopes                 []string
	// AuthStyle says where the credentials go: oauth2.AuthStyleInHeader
	// (HTTP Basic, RFC 6749 §2.3.1) or oauth2.AuthStyleInParams (the form).
	AuthStyle oauth2.AuthStyle
}

// Tokens caches an OAuth 2.0 client-credentials token for the calls of one
// client. oauth2.ReuseTokenSource keeps a token until shortly before it
// expires and lets one caller fetch at a time; Drop replaces it when the
// API refuses it. golang.org/x/oauth2 does the token protocol; this type
// adds what every client of ours needs around it: the core's redirect rule
// and attempt bound, the observer, dropping a refused token, and a caller's
// deadline.
type Tokens struct {
	fetch oauth2.TokenSource // uncached: one token request per call

	mu  sync.Mutex
	cur oauth2.TokenSource
}

// NewTokens returns c's token cache for cfg. Tokens are fetched through
// c's HTTP client (it follows no redirect, so the client secret goes only
// to cfg.URL), each fetch bounded like one of c's attempts and reported
// to c's observer as a TokenAction attempt.
func (c *Client) NewTokens(cfg TokenConfig) *Tokens {
	cc := &clientcredentials.Config{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.URL, Scopes: cfg.Scopes,
		AuthStyle: cfg.AuthStyle,
	}
	// A token request outlives the caller that started it (others may be
	// waiting for it), so it runs on its own context, bounded like an
	// attempt.
	hc := *c.http
	if hc.Timeout == 0 || hc.Timeout > c.timeout {
		hc.Timeout = c.timeout
	}
	f := fetcher{cfg: cc, ctx: context.WithValue(context.Background(), oauth2.HTTPClient, &hc), core: c}
	return &Tokens{fetch: f, cur: oauth2.ReuseTokenSource(nil, f)}
}

// fetcher fetches a fresh token on every call, and reports it.
type fetcher struct {
	cfg  *clientcredentials.Config
	ctx  context.Context
	core *Client
}

func (f fetcher) Token() (*oauth2.Token, error) {
	start := time.Now()
	tok, err := f.cfg.Token(f.ctx)
	// A token serves many calls: its attempt has no caller's ctx.
	f.core.Observe(context.Background(), tokenAttempt(err, time.Since(start)))
	return tok, err
}

// tokenAttempt is a token fetch as an observer sees it.
func tokenAttempt(err error, d time.Duration) Attempt {
	a := Attempt{Action: TokenAction, Method: http.MethodPost, Status: http.StatusOK, Duration: d, Attempt: 1, Err: err}
	if err != nil {
		a.Status = 0
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil {
			a.Status = re.Response.StatusCode
		}
	}
	return a
}

// Current is the token source calls use now; pass it to Drop when the API
// refuses its token.
func (t *Tokens) Current() oauth2.TokenSource {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

// Drop forgets the cached token, unless another caller already did since
// used was current.
func (t *Tokens) Drop(used oauth2.TokenSource) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == used {
		t.cur = oauth2.ReuseTokenSource(nil, t.fetch)
	}
}

// Refresh fetches a new token now and makes it the one later calls use,
// so that a check of the credentials costs no extra token request after.
// Its errors are Token's.
func (t *Tokens) Refresh(ctx context.Context) error {
	tok, err := Token(ctx, t.fetch)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur = oauth2.ReuseTokenSource(tok, t.fetch)
	return nil
}

// Token gets a token from ts, giving up when ctx is done (the fetch goes
// on for whoever waits for it next). Its error is ctx's, or the token
// request's as golang.org/x/oauth2 gives it (an *oauth2.RetrieveError for
// a reply, a *url.Error for none), for the client to map.
func Token(ctx context.Context, ts oauth2.TokenSource) (*oauth2.Token, error) {
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
		return r.tok, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TokenErrors is how one client names the failures of its token
// requests, so that every client maps them the same way.
type TokenErrors struct {
	Call               string // "q2 token": what the errors say was called
	Transient, Invalid error  // the client's kinds for "try again" and "an unusable reply"
	// Status is the client's own error for the token endpoint's error
	// reply (not a redirect), with its Retry-After (0 when none).
	Status func(re *oauth2.RetrieveError, retryAfter time.Duration) error
}

// Token is Token(ctx, ts) with its error mapped to the client's (Map).
func (e TokenErrors) Token(ctx context.Context, ts oauth2.TokenSource) (*oauth2.Token, error) {
	tok, err := Token(ctx, ts)
	if err != nil {
		return nil, e.Map(ctx, err)
	}
	return tok, nil
}

// Map turns an error of Token or Tokens.Refresh under ctx into the
// client's: ctx's end and a reply that never came are transient; a
// redirect (the core's client follows none) and a reply without a usable
// token are invalid; an error reply is Status's. The core marks it as not
// sent when it ends an attempt: the route itself was not called.
func (e TokenErrors) Map(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return TransportError(e.Call, e.Transient, err)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.Response.StatusCode
		if code >= 300 && code < 400 {
			var from *url.URL
			if re.Response.Request != nil {
				from = re.Response.Request.URL
			}
			return &ReplyError{Call: e.Call, Status: code, Kind: e.Invalid, Reason: RedirectReason(from, re.Response.Header.Get("Location"))}
		}
		retryAfter, _ := ParseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now())
		return e.Status(re, retryAfter)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return TransportError(e.Call, e.Transient, err)
	}
	return fmt.Errorf("%s: %w: no usable token in the reply", e.Call, e.Invalid)
}
