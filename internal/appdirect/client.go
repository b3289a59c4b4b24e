package appdirect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

const (
	// DefaultMaxEvent is the largest event document FetchEvent reads.
	DefaultMaxEvent = 1 << 20
	maxErrorBody    = 8 << 10 // error replies are cut here
	userAgent       = "banking-marketplace-webhook/appdirect"
	// DefaultScope is the scope of the OAuth 2.0 token AppDirect's
	// documentation asks for in the separate-credentials mode.
	DefaultScope = "ROLE_APPLICATION"
)

// The actions of the client's calls, as an httpcall.Observer sees them
// (bounded: a metric label).
const (
	ActionFetch  = "GET /events/{token}"
	ActionResult = "POST /events/{token}/result"
)

// Kinds of failure of FetchEvent and PostResult, matched with errors.Is.
var (
	// ErrTransient: worth trying again later: status 408, 429 or 5xx, a
	// network failure or a timeout (the caller's deadline included), or a
	// token endpoint that could not be reached.
	ErrTransient = errors.New("transient failure")
	// ErrRefused: AppDirect answered a 4xx other than 408 and 429: sending
	// the same request again fails the same way. ErrUnauthorized and
	// ErrNotFound say more.
	ErrRefused = errors.New("refused")
	// ErrUnauthorized (matches ErrRefused too): status 401 or 403, or the
	// token endpoint refused the request (the client credentials, the
	// scope, its URL); check the consumer key and secret, or the client id
	// and secret.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound (matches ErrRefused too): status 404, no such event; the
	// SDK answers NOT_FOUND for it.
	ErrNotFound = errors.New("not found")
	// ErrInvalidResponse: a reply that cannot be used, so AppDirect may or
	// may not have done the work: a redirect (never followed), an event
	// larger than the limit or not a JSON object (XML, when the Accept
	// header was dropped on the way).
	ErrInvalidResponse = errors.New("invalid response")
	// ErrBadArgument: a call this package refused before sending anything:
	// an eventUrl or marketplace that is not configured, a token that is
	// not one, a result that is not a JSON object with a boolean
	// "success". Sending it again fails the same way. An eventUrl refused
	// matches ErrEventURL too.
	ErrBadArgument = errors.New("bad argument")
)

// APIError is a reply of AppDirect with an error status. Its message
// names the call, the status and the kind, never the body (kept in Body,
// cut at 8 KiB) or the URL.
type APIError struct {
	Action string // ActionFetch or ActionResult
	Status int
	Body   string
	// RetryAfter is the wait AppDirect asked for (Retry-After), capped at
	// httpcall.MaxRetryAfter; 0 when it did not.
	RetryAfter time.Duration

	kinds []error
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("appdirect %s: HTTP %d", e.Action, e.Status)
	for _, k := range e.kinds {
		msg += ": " + k.Error()
	}
	return msg
}

// Unwrap returns the kinds: ErrTransient; or ErrRefused with
// ErrUnauthorized or ErrNotFound when they apply; none for a 1xx or 2xx
// that is not success.
func (e *APIError) Unwrap() []error { return e.kinds }

// StatusCode is the HTTP status AppDirect answered.
func (e *APIError) StatusCode() int { return e.Status }

func classify(status int) []error {
	switch {
	case status == 408 || status == 429 || status >= 500:
		return []error{ErrTransient}
	case status == 401 || status == 403:
		return []error{ErrRefused, ErrUnauthorized}
	case status == 404:
		return []error{ErrRefused, ErrNotFound}
	case status >= 400:
		return []error{ErrRefused}
	}
	return nil
}

// Option configures a Client.
type Option func(*Client)

// WithOAuth1 signs every call with OAuth 1.0a, two-legged, with this
// consumer key and secret (the shared-credentials mode). More secrets are
// for a rotation: a call AppDirect refuses with 401 is made again with
// each of the others, and the one it takes signs the calls after.
func WithOAuth1(key, secret string, more ...string) Option {
	return func(c *Client) {
		c.oauth1 = &Consumer{key, secret}
		c.secrets = append([]string{secret}, more...)
	}
}

// WithOAuth2 sends on every call a bearer token from the marketplace's
// {base}/oauth2/token, fetched with the OAuth 2.0 client-credentials
// grant (client id and secret as HTTP Basic), scope DefaultScope unless
// scopes are given. A token AppDirect refuses with 401 is dropped and the
// call made once more with a new one.
func WithOAuth2(clientID, clientSecret string, scopes ...string) Option {
	return func(c *Client) { c.oauth2 = &oauth2Creds{clientID, clientSecret, scopes} }
}

// WithHTTPClient sets the underlying HTTP client (default: a new
// http.Client on http.DefaultTransport). Its redirect policy is replaced:
// no redirect is followed.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.cfg.HTTPClient = h } }

// WithLogger logs retries and token refreshes (default: no logging).
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.cfg.Logger = l } }

// WithObserver reports every attempt (Action ActionFetch, ActionResult,
// or httpcall.TokenAction for a token fetch, System "appdirect").
func WithObserver(o httpcall.Observer) Option { return func(c *Client) { c.cfg.Observer = o } }

// WithRetry sets the attempt budget of FetchEvent (default
// httpcall.DefaultRetry). PostResult is tried again inside the call only
// when the request surely did not leave.
func WithRetry(maxAttempts int, baseDelay, maxDelay time.Duration) Option {
	return func(c *Client) {
		c.cfg.Retry = httpcall.Retry{Attempts: maxAttempts, BaseDelay: baseDelay, MaxDelay: maxDelay}
	}
}

// WithTimeout bounds each attempt, reading the reply included (default
// httpcall.DefaultTimeout); the caller's ctx bounds the whole call.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.cfg.Timeout = d } }

// WithMaxEvent sets the largest event document read (default
// DefaultMaxEvent); a larger one is ErrInvalidResponse.
func WithMaxEvent(n int64) Option { return func(c *Client) { c.cfg.MaxBody = n } }

// Client fetches AppDirect events and posts their results, to the
// configured marketplaces only. It is safe for concurrent use.
type Client struct {
	markets []*market
	ms      []marketplace // markets' marketplaces, in order: parsed once, by NewClient
	oauth1  *Consumer
	secrets []string     // oauth1's secrets, the first as given
	secret  atomic.Int32 // the index in secrets of the one that signs
	oauth2  *oauth2Creds
	log     *zap.Logger
	now     func() time.Time

	cfg httpcall.Config // the core's settings, which the options change; read once by NewClient
}

// market is one configured marketplace: its request core (which sends
// only under its base URL) and, with OAuth 2.0, its token source.
type market struct {
	m      marketplace
	core   *httpcall.Client
	tokens *httpcall.Tokens // nil with OAuth 1.0a
}

// NewClient returns a client of the given marketplaces (base URLs, as
// ParseMarketplace reads them), authenticated by exactly one of
// WithOAuth1 or WithOAuth2. Its errors name the argument.
func NewClient(marketplaces []string, opts ...Option) (*Client, error) {
	c := &Client{now: time.Now, cfg: httpcall.Config{
		System: "appdirect", UserAgent: userAgent, MaxBody: DefaultMaxEvent, MaxErrorBody: maxErrorBody,
		Transient: ErrTransient, Invalid: ErrInvalidResponse,
		HTTPClient: &http.Client{}, Logger: zap.NewNop(), Retry: httpcall.DefaultRetry,
	}}
	for _, o := range opts {
		o(c)
	}
	switch {
	case len(marketplaces) == 0:
		return nil, errors.New("appdirect: NewClient needs at least one marketplace base URL")
	case (c.oauth1 == nil) == (c.oauth2 == nil):
		return nil, errors.New("appdirect: NewClient needs exactly one of WithOAuth1 (consumer key and secret) and WithOAuth2 (client id and secret)")
	case c.oauth1 != nil && (c.oauth1.Key == "" || slices.Contains(c.secrets, "")):
		return nil, errors.New("appdirect: WithOAuth1 needs both the consumer key and the consumer secret")
	case c.oauth2 != nil && (c.oauth2.id == "" || c.oauth2.secret == ""):
		return nil, errors.New("appdirect: WithOAuth2 needs both the client id and the client secret")
	}
	if c.oauth2 != nil && len(c.oauth2.scopes) == 0 {
		c.oauth2.scopes = []string{DefaultScope}
	}
	c.log = c.cfg.Logger
	seen := map[marketplace]bool{}
	for i, raw := range marketplaces {
		m, err := parseMarketplace(raw)
		if err != nil {
			return nil, fmt.Errorf("appdirect: marketplace %d (%q): %w", i+1, raw, err)
		}
		if seen[m] {
			continue
		}
		seen[m] = true
		mk := &market{m: m}
		cfg := c.cfg
		cfg.BaseURL = m.URL()
		cfg.Authorize = func(ctx context.Context, req *http.Request) error { return c.authorize(ctx, mk, req) }
		if mk.core, err = httpcall.New(cfg); err != nil {
			return nil, fmt.Errorf("appdirect: %w", err)
		}
		if c.oauth2 != nil { // the credentials as HTTP Basic (RFC 6749 §2.3.1), which every token endpoint must take
			mk.tokens = mk.core.NewTokens(httpcall.TokenConfig{URL: m.URL().JoinPath("oauth2", "token").String(),
				ClientID: c.oauth2.id, ClientSecret: c.oauth2.secret, Scopes: c.oauth2.scopes, AuthStyle: oauth2.AuthStyleInHeader})
		}
		c.markets = append(c.markets, mk)
		c.ms = append(c.ms, m)
	}
	return c, nil
}

// authorize signs req (OAuth 1.0a) or adds the marketplace's bearer token.
func (c *Client) authorize(ctx context.Context, mk *market, req *http.Request) error {
	if c.oauth1 != nil {
		i, ok := ctx.Value(secretKey{}).(int)
		if !ok {
			i = int(c.secret.Load())
		}
		return Sign(req, c.oauth1.Key, c.secrets[i], c.now(), "")
	}
	tok, err := tokenErrors.Token(ctx, mk.tokens.Current())
	if err != nil {
		return err
	}
	tok.SetAuthHeader(req)
	return nil
}

// EventURL checks a notification's eventUrl against the client's
// marketplaces, parsed once by NewClient (matchEventURL's rules): it
// returns the event token and the base URL of the marketplace it is in,
// in its canonical form (what PostResult takes), or an error wrapping
// ErrEventURL (nothing is to be fetched from it).
func (c *Client) EventURL(raw string) (token, marketplace string, err error) {
	m, token, err := matchEventURL(raw, c.ms)
	if err != nil {
		return "", "", err
	}
	return token, m.String(), nil
}

// Marketplaces is the client's marketplace base URLs, in their canonical
// form (as EventURL returns them), each once.
func (c *Client) Marketplaces() []string {
	out := make([]string, len(c.ms))
	for i, m := range c.ms {
		out[i] = m.String()
	}
	return out
}

func (c *Client) market(m marketplace) *market {
	for _, mk := range c.markets {
		if mk.m == m {
			return mk
		}
	}
	return nil
}

// FetchEvent GETs the event at eventURL (the notification's eventUrl)
// with "Accept: application/json", authenticated, and returns the event
// document as it came: a JSON object, at most the WithMaxEvent limit. The
// URL is checked first, as EventURL does, against the client's
// marketplaces: one that does not pass gets no request (ErrBadArgument and
// ErrEventURL). A GET has no effect, so transient failures are tried again
// within the attempt budget; no redirect is followed.
func (c *Client) FetchEvent(ctx context.Context, eventURL string) ([]byte, error) {
	m, token, err := matchEventURL(eventURL, c.ms)
	if err != nil {
		return nil, fmt.Errorf("appdirect %s: %w: %w", ActionFetch, ErrBadArgument, err)
	}
	mk := c.market(m)
	req, err := mk.core.NewRequest(http.MethodGet, ActionFetch, m.eventURL(token), nil)
	if err != nil {
		return nil, err
	}
	var event []byte
	err = c.do(ctx, mk, req, func(resp *httpcall.Response) error {
		if err := replyError(ActionFetch, resp); err != nil {
			return err
		}
		body := bytes.TrimSpace(resp.Body)
		if len(body) == 0 || body[0] != '{' || !json.Valid(body) {
			return resp.Invalid("the event is not a JSON object (AppDirect answers XML without Accept: application/json)")
		}
		event = resp.Body
		return nil
	})
	return event, err
}

// PostResult POSTs result, an APIResult document ({"success": bool,
// "errorCode", "message", "accountIdentifier", "userIdentifier"}), to
// {marketplace}/api/integration/v1/events/{token}/result, authenticated.
// marketplace must be one of the client's (ErrBadArgument otherwise: no
// result goes to a URL taken from an event). It is sent once: tried again
// inside the call only when the request surely did not leave (the dial or
// the token fetch failed), and, with OAuth 2.0, once more with a new token
// after a 401. The caller's durable queue decides the rest from the kind:
// ErrTransient (try later), ErrRefused (AppDirect will not take it), or
// ErrInvalidResponse (a redirect: it may or may not have been taken). Any
// 2xx is success.
func (c *Client) PostResult(ctx context.Context, marketplaceBaseURL, token string, result []byte) error {
	m, err := parseMarketplace(marketplaceBaseURL)
	if err != nil {
		return fmt.Errorf("appdirect %s: %w: marketplace base URL: %w", ActionResult, ErrBadArgument, err)
	}
	mk := c.market(m)
	switch {
	case mk == nil:
		return fmt.Errorf("appdirect %s: %w: marketplace %s is not configured", ActionResult, ErrBadArgument, m)
	case !ValidToken(token):
		return fmt.Errorf("appdirect %s: %w: the event token must be 1 to %d characters of A-Z a-z 0-9 - . _ ~", ActionResult, ErrBadArgument, MaxToken)
	}
	var doc struct {
		Success *bool `json:"success"`
	}
	if err := json.Unmarshal(result, &doc); err != nil || doc.Success == nil {
		return fmt.Errorf("appdirect %s: %w: the result must be a JSON object with a boolean \"success\"", ActionResult, ErrBadArgument)
	}
	req, err := mk.core.NewRequest(http.MethodPost, ActionResult, m.resultURL(token), nil)
	if err != nil {
		return err
	}
	req.Body = result
	req.Idempotent = false
	return c.do(ctx, mk, req, func(resp *httpcall.Response) error { return replyError(ActionResult, resp) })
}

// refusedCredentials reports whether AppDirect answered r with 401.
func refusedCredentials(err error, r *httpcall.Request) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Action == r.Action && ae.Status == http.StatusUnauthorized
}

// replyError is the APIError of a reply that is not a success.
func replyError(action string, resp *httpcall.Response) error {
	if resp.OK() {
		return nil
	}
	return &APIError{Action: action, Status: resp.Status, Body: string(resp.Body), RetryAfter: resp.RetryAfter, kinds: classify(resp.Status)}
}

// secretKey carries, in a call's context, the index of the OAuth 1.0a
// secret to sign it with.
type secretKey struct{}

// do runs r through the core, and again when AppDirect refuses its
// credentials with 401: with a new token, or with each other consumer
// secret (a rotation), the one it takes signing the calls after. A call
// refused with 401 did nothing: sending it again is safe.
func (c *Client) do(ctx context.Context, mk *market, r *httpcall.Request, read func(*httpcall.Response) error) error {
	if mk.tokens == nil {
		_, err := mk.core.Do(ctx, r, read)
		if !refusedCredentials(err, r) || len(c.secrets) < 2 {
			return err
		}
		cur := int(c.secret.Load())
		for i := range c.secrets {
			if i == cur {
				continue
			}
			if _, err = mk.core.Do(context.WithValue(ctx, secretKey{}, i), r, read); !refusedCredentials(err, r) {
				if err == nil {
					c.secret.Store(int32(i))
					c.log.Info("appdirect took another consumer secret; it signs from now on", zap.Int("secret", i+1))
				}
				return err
			}
		}
		return err
	}
	used := mk.tokens.Current()
	_, err := mk.core.Do(ctx, r, read)
	if refusedCredentials(err, r) {
		mk.tokens.Drop(used)
		c.log.Debug("appdirect refused the token, fetching a new one", zap.String("action", r.Action))
		_, err = mk.core.Do(ctx, r, read)
	}
	return err
}
