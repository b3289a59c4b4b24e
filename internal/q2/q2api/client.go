package q2api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

const (
	maxBody      = 4 << 20                                // largest successful reply read
	maxErrorBody = 64 << 10                               // largest error reply read
	userAgent    = "banking-marketplace-webhook/q2client" // the package's former name, kept: the outside system may know us by it
)

// Client calls the Q2 API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	version string
	core    *httpcall.Client
	log     *zap.Logger
	auth    *httpcall.Tokens // nil without credentials

	cfg   httpcall.Config // the core's settings, which the options change; read once by New
	creds *credentials
}

// WithObserver reports every attempt (retries included) with the caller's
// ctx, and every token fetch (Action httpcall.TokenAction) with a
// background ctx: for metrics, the delivery's call count, and logging Q2's
// request ids.
func WithObserver(observe httpcall.Observer) Option {
	return func(c *Client) { c.cfg.Observer = observe }
}

type credentials struct {
	id, secret string
	scopes     []string
}

// Option configures a Client.
type Option func(*Client)

// WithAPIVersion sets the path prefix of every call (default "v2").
func WithAPIVersion(v string) Option { return func(c *Client) { c.version = v } }

// WithCredentials makes the client fetch OAuth2 client-credentials tokens
// from {base}/{version}/oauth2/token and send them as Bearer tokens.
func WithCredentials(clientID, clientSecret string, scopes ...string) Option {
	return func(c *Client) { c.creds = &credentials{clientID, clientSecret, scopes} }
}

// WithHTTPClient sets the underlying HTTP client (default: a new
// http.Client on http.DefaultTransport). Its redirect policy is replaced:
// no redirect is followed.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.cfg.HTTPClient = h } }

// WithRetry sets how often a failure is tried (maxAttempts in all, at
// least 1) and the waits between tries: full jitter over baseDelay·2^n, at
// most maxDelay, which is also the longest Retry-After waited inside a
// call (default httpcall.DefaultRetry: 3 attempts, 100ms, 1s).
func WithRetry(maxAttempts int, baseDelay, maxDelay time.Duration) Option {
	return func(c *Client) {
		c.cfg.Retry = httpcall.Retry{Attempts: maxAttempts, BaseDelay: baseDelay, MaxDelay: maxDelay}
	}
}

// WithLogger logs retries and token refreshes (default: no logging).
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.cfg.Logger = l } }

// New returns a client for the Q2 API at baseURL, an absolute http or https
// URL. Its errors name the argument, not a setting: the caller knows where
// the value came from.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("q2api: the base URL must be an absolute http or https URL, such as https://q2.example.com")
	}
	c := &Client{base: u, version: "v2", cfg: httpcall.Config{
		System: "q2", BaseURL: u, UserAgent: userAgent, MaxBody: maxBody, MaxErrorBody: maxErrorBody,
		Transient: ErrTransient, Invalid: ErrInvalidResponse,
		HTTPClient: &http.Client{}, Logger: zap.NewNop(), Retry: httpcall.DefaultRetry,
	}}
	c.cfg.Authorize = c.authorize
	for _, o := range opts {
		o(c)
	}
	if c.version == "" || strings.Contains(c.version, "/") {
		return nil, fmt.Errorf("q2api: API version %q must be one path segment, such as v2", c.version)
	}
	if c.creds != nil && (c.creds.id == "" || c.creds.secret == "") {
		return nil, errors.New("q2api: the client id and the client secret must both be set")
	}
	if c.core, err = httpcall.New(c.cfg); err != nil {
		return nil, fmt.Errorf("q2api: %w", err)
	}
	c.log = c.cfg.Logger
	if c.creds != nil {
		c.auth = c.core.NewTokens(httpcall.TokenConfig{URL: c.url("oauth2", "token").String(),
			ClientID: c.creds.id, ClientSecret: c.creds.secret, Scopes: c.creds.scopes, AuthStyle: oauth2.AuthStyleInParams})
	}
	return c, nil
}

// CheckToken fetches a new access token with the client credentials, so
// that a service finds out at start, rather than on its first delivery,
// that Q2 refuses them (an error matching ErrUnauthorized, or ErrNotFound
// when the token endpoint is not at the base URL and version) or cannot be
// reached (ErrTransient). It is not retried: the caller decides what an
// unreachable Q2 means. The token becomes the one later calls use. Without
// credentials there is nothing to check, and it returns nil.
func (c *Client) CheckToken(ctx context.Context) error {
	if c.auth == nil {
		return nil
	}
	if err := c.auth.Refresh(ctx); err != nil {
		return tokenErrors.Map(ctx, err)
	}
	return nil
}

func (c *Client) url(segments ...string) *url.URL {
	return c.base.JoinPath(append([]string{c.version}, segments...)...)
}

// newRequest builds a call of the Q2 action endpoint at
// /{version}/{endpoint}/{segments...}; idempotent says it is safe to send
// again after a lost reply (a POST that only looks up is).
func (c *Client) newRequest(endpoint, method string, body any, idempotent bool, query url.Values, segments ...string) (*httpcall.Request, error) {
	u := c.url(append([]string{endpoint}, segments...)...)
	u.RawQuery = query.Encode()
	r, err := c.core.NewRequest(method, endpoint, u, body)
	if err != nil {
		return nil, err
	}
	r.Idempotent = idempotent
	return r, nil
}

// authorize adds the Bearer token, fetching one when none is cached. A
// failed fetch ends the attempt as not sent: even Enrollment is tried
// again.
func (c *Client) authorize(ctx context.Context, req *http.Request) error {
	if c.auth == nil {
		return nil
	}
	tok, err := tokenErrors.Token(ctx, c.auth.Current())
	if err != nil {
		return err
	}
	tok.SetAuthHeader(req)
	return nil
}

// do runs r through the core, and once more with a new token when Q2
// refuses the cached one; it returns the envelope's data on success, and
// the last reply (nil when none came).
func (c *Client) do(ctx context.Context, r *httpcall.Request) (*httpcall.Response, json.RawMessage, error) {
	var data json.RawMessage
	read := func(resp *httpcall.Response) (err error) {
		data, err = readEnvelope(r.Action, resp)
		return err
	}
	var used oauth2.TokenSource
	if c.auth != nil {
		used = c.auth.Current()
	}
	resp, err := c.core.Do(ctx, r, read)
	if used != nil && errors.Is(err, ErrUnauthorized) && !errors.Is(err, httpcall.ErrNotSent) {
		c.auth.Drop(used)
		c.log.Debug("q2 refused the token, fetching a new one", zap.String("action", r.Action))
		resp, err = c.core.Do(ctx, r, read)
	}
	return resp, data, err
}

// envelope is the shape of every Q2 reply.
type envelope struct {
	Data      json.RawMessage `json:"data"`
	Success   *bool           `json:"success"`
	Errors    json.RawMessage `json:"errors"`
	RequestID string          `json:"requestid"`
	Status    int             `json:"status"`
	LogRefID  string          `json:"log_ref_id"`
}

// readEnvelope says what an answered attempt means: the envelope's
// "success" decides, rather than the HTTP status alone.
func readEnvelope(endpoint string, resp *httpcall.Response) (json.RawMessage, error) {
	var env envelope
	decodeErr := json.Unmarshal(resp.Body, &env)
	if decodeErr == nil {
		resp.RequestID = cmp.Or(env.RequestID, env.LogRefID)
	}
	if resp.OK() {
		switch {
		case decodeErr != nil:
			return nil, resp.Invalid("reply is not a JSON envelope")
		case env.Success == nil:
			return nil, resp.Invalid(`reply has no "success"`)
		case *env.Success:
			return env.Data, nil
		}
	}
	e := &APIError{Endpoint: endpoint, Status: resp.Status, RetryAfter: resp.RetryAfter}
	if decodeErr == nil {
		e.EnvelopeStatus, e.Errors, e.RequestID, e.LogRefID = env.Status, env.Errors, env.RequestID, env.LogRefID
	}
	e.kind = e.classify()
	return nil, e
}
