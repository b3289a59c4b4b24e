package q2client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/banking-marketplace/webhook/internal/backoff"
)

const (
	maxBody      = 4 << 20  // largest successful reply read
	maxErrorBody = 64 << 10 // largest error reply read
	userAgent    = "banking-marketplace-webhook/q2client"
)

// Client calls the Q2 API. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	version   string
	http      *http.Client
	timeout   time.Duration // per attempt
	attempts  int
	baseDelay time.Duration
	maxDelay  time.Duration
	log       *zap.Logger
	creds     *credentials
	auth      *tokens // nil without credentials
	observe   func(context.Context, Attempt)
}

// Attempt is one HTTP attempt at a Q2 call, as an observer sees it.
type Attempt struct {
	Endpoint  string        // the Q2 action ("Enrollment", "LookupUser", ...)
	Status    int           // HTTP status; 0 when no response arrived
	Err       error         // nil on success
	Duration  time.Duration // of this attempt
	RequestID string        // Q2's requestid, when the reply had one
	LogRefID  string        // Q2's log_ref_id, when the reply had one
}

// WithObserver calls observe after every attempt (retries included) with
// the caller's ctx, and after every token fetch (Endpoint "token") with a
// background ctx: for metrics, the delivery's
// call count, and logging Q2's request ids.
func WithObserver(observe func(ctx context.Context, a Attempt)) Option {
	return func(c *Client) { c.observe = observe }
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
// http.Client on http.DefaultTransport).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithTimeout bounds each attempt, token fetch included (default 10s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetry sets how often calls that are safe to repeat are tried
// (maxAttempts, at least 1) and the backoff: full jitter over
// baseDelay·2^n, at most maxDelay, which also caps Retry-After
// (defaults: 3 attempts, 100ms, 1s).
func WithRetry(maxAttempts int, baseDelay, maxDelay time.Duration) Option {
	return func(c *Client) { c.attempts, c.baseDelay, c.maxDelay = maxAttempts, baseDelay, maxDelay }
}

// WithLogger logs retries and token refreshes (default: no logging).
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.log = l } }

// New returns a client for the Q2 API at baseURL, an absolute http or https
// URL. Its errors name the argument, not a setting: the caller knows where
// the value came from.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("q2client: the base URL must be an absolute http or https URL, such as https://q2.example.com")
	}
	c := &Client{
		base:      u,
		version:   "v2",
		http:      &http.Client{},
		timeout:   10 * time.Second,
		attempts:  3,
		baseDelay: 100 * time.Millisecond,
		maxDelay:  time.Second,
		log:       zap.NewNop(),
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.version == "" || strings.Contains(c.version, "/"):
		return nil, fmt.Errorf("q2client: API version %q must be one path segment, such as v2", c.version)
	case c.http == nil:
		return nil, errors.New("q2client: WithHTTPClient needs a non-nil client")
	case c.log == nil:
		return nil, errors.New("q2client: WithLogger needs a non-nil logger")
	case c.timeout <= 0:
		return nil, errors.New("q2client: WithTimeout needs a positive duration")
	case c.attempts < 1 || c.baseDelay < 0 || c.maxDelay < c.baseDelay:
		return nil, errors.New("q2client: WithRetry needs maxAttempts >= 1 and 0 <= baseDelay <= maxDelay")
	}
	if c.creds != nil {
		if c.creds.id == "" || c.creds.secret == "" {
			return nil, errors.New("q2client: the client id and the client secret must both be set")
		}
		c.auth = newTokens(c.url("oauth2", "token").String(), c.creds, c.http, c.timeout, func(err error, d time.Duration) {
			if c.observe != nil { // a token fetch serves many calls: it has no caller's ctx
				c.observe(context.Background(), attemptOf("token", err, d))
			}
		})
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
	return c.auth.refresh(ctx)
}

func (c *Client) url(segments ...string) *url.URL {
	return c.base.JoinPath(append([]string{c.version}, segments...)...)
}

// request is one Q2 call, the same for every attempt.
type request struct {
	endpoint   string // action name, for errors and logs
	method     string
	url        string
	body       []byte // JSON, nil for none
	idempotent bool   // safe to repeat after a reply was lost
}

func (c *Client) newRequest(endpoint, method string, body any, idempotent bool, query url.Values, segments ...string) (*request, error) {
	u := c.url(append([]string{endpoint}, segments...)...)
	u.RawQuery = query.Encode()
	r := &request{endpoint: endpoint, method: method, url: u.String(), idempotent: idempotent}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("q2 %s: encoding request: %w", endpoint, err)
		}
		r.body = b
	}
	return r, nil
}

// do runs r with retries and the one token refresh, and returns the
// envelope's data on success.
func (c *Client) do(ctx context.Context, r *request) (json.RawMessage, error) {
	refreshed := false
	for attempt := 1; ; {
		ts := c.auth.current()
		start := time.Now()
		data, err := c.send(ctx, r, ts)
		if c.observe != nil {
			c.observe(ctx, attemptOf(r.endpoint, err, time.Since(start)))
		}
		if err == nil {
			return data, nil
		}
		if ts != nil && !refreshed && errors.Is(err, ErrUnauthorized) && !errors.Is(err, errNotSent) {
			refreshed = true
			c.auth.drop(ts)
			c.log.Debug("q2 refused the token, fetching a new one", zap.String("endpoint", r.endpoint))
			continue
		}
		if attempt >= c.attempts || ctx.Err() != nil || !retryable(err, r.idempotent) {
			if attempt > 1 {
				c.log.Warn("q2 call failed after retries", zap.String("endpoint", r.endpoint), zap.Int("attempts", attempt), zap.Error(err))
			}
			return nil, err
		}
		wait := c.backoff(attempt, err)
		if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
			return nil, err
		}
		c.log.Debug("retrying q2 call", zap.String("endpoint", r.endpoint), zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (%w while waiting to retry)", err, ctx.Err())
		case <-t.C:
		}
		attempt++
	}
}

func attemptOf(endpoint string, err error, d time.Duration) Attempt {
	a := Attempt{Endpoint: endpoint, Status: http.StatusOK, Err: err, Duration: d}
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		a.Status, a.RequestID, a.LogRefID = ae.Status, ae.RequestID, ae.LogRefID
	case err != nil:
		a.Status = 0
	}
	return a
}

// retryable: 429/502/503/504 and network errors for calls safe to repeat;
// only failures that surely did not reach the route for the others.
func retryable(err error, idempotent bool) bool {
	if !errors.Is(err, ErrTransient) || !(idempotent || errors.Is(err, errNotSent)) {
		return false
	}
	var ae *APIError
	return !errors.As(err, &ae) || ae.has(429, 502, 503, 504)
}

// backoff is full jitter over baseDelay·2^(attempt-1), capped at maxDelay;
// a Retry-After from Q2 is used instead, capped the same way.
func (c *Client) backoff(attempt int, err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return min(ae.RetryAfter, c.maxDelay)
	}
	return backoff.Full(attempt, c.baseDelay, c.maxDelay)
}

// send makes one attempt under the per-attempt timeout.
func (c *Client) send(ctx context.Context, r *request, ts oauth2.TokenSource) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, bytes.NewReader(r.body))
	if err != nil {
		return nil, fmt.Errorf("q2 %s: %w", r.endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ts != nil {
		tok, err := token(ctx, ts)
		if err != nil {
			return nil, err
		}
		tok.SetAuthHeader(req)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(r.endpoint, err)
	}
	defer resp.Body.Close()
	return readEnvelope(r.endpoint, resp)
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

func readEnvelope(endpoint string, resp *http.Response) (json.RawMessage, error) {
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	limit := int64(maxErrorBody)
	if ok {
		limit = maxBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, transportError(endpoint, err)
	}
	if ok && int64(len(body)) > limit {
		return nil, invalidResponse(endpoint, fmt.Sprintf("reply larger than %d bytes", limit))
	}
	var env envelope
	decodeErr := json.Unmarshal(body, &env)
	if ok {
		switch {
		case decodeErr != nil:
			return nil, invalidResponse(endpoint, "reply is not a JSON envelope")
		case env.Success == nil:
			return nil, invalidResponse(endpoint, `reply has no "success"`)
		case *env.Success:
			return env.Data, nil
		}
	}
	e := &APIError{Endpoint: endpoint, Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header)}
	if decodeErr == nil {
		e.EnvelopeStatus, e.Errors, e.RequestID, e.LogRefID = env.Status, env.Errors, env.RequestID, env.LogRefID
	}
	e.kind = e.classify()
	return nil, e
}

func retryAfter(h http.Header) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(s) * time.Second
}
