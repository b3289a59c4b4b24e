package qbdclient

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

	"github.com/banking-marketplace/webhook/internal/backoff"
)

const (
	maxBody      = 4 << 20 // largest successful reply read
	maxErrorBody = 8 << 10 // largest error reply kept in APIError.Body
	userAgent    = "banking-marketplace-webhook/qbdclient"
	apiPrefix    = "qbdconnect-api"
)

// Client calls the QBD Connect API. It is safe for concurrent use.
type Client struct {
	base      *url.URL // up to, not including, /qbdconnect-api/
	version   string
	token     string
	http      *http.Client
	retries   int
	baseDelay time.Duration
	maxDelay  time.Duration
	log       *zap.Logger
	sleep     func(context.Context, time.Duration) error // replaced in tests to observe waits
	observe   func(context.Context, Attempt)
}

// Attempt is one HTTP attempt at a QBD Connect call, as an observer sees it.
type Attempt struct {
	Action   string // "POST /customers", "GET /subscriptions/{id}", ...
	Status   int    // HTTP status; 0 when no response arrived
	Err      error  // nil on success
	Duration time.Duration
}

// WithObserver calls observe after every attempt (retries included), with
// the caller's ctx: for metrics and the delivery's call count.
func WithObserver(observe func(ctx context.Context, a Attempt)) Option {
	return func(c *Client) { c.observe = observe }
}

// Option configures a Client.
type Option func(*Client)

// WithAPIVersion sets the {version} path segment (default "v1", the
// QBD_API_VERSION setting).
func WithAPIVersion(v string) Option { return func(c *Client) { c.version = v } }

// WithToken sends "Authorization: Bearer t" on every call (QBD_TOKEN);
// empty sends none.
func WithToken(t string) Option { return func(c *Client) { c.token = t } }

// WithHTTPClient sets the underlying HTTP client (default: one with a 10s
// timeout per attempt on http.DefaultTransport).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithLogger logs each attempt at debug level (default: no logging).
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.log = l } }

// WithRetries sets how many times a failed call that is safe to repeat is
// tried again (default 2; 0 disables retries).
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithBackoff sets the wait before retry n: full jitter over base·2^(n-1),
// at most max (defaults 100ms and 2s). A Retry-After longer than max is not
// waited for: the call fails with the APIError, whose RetryAfter says when
// to come back.
func WithBackoff(base, max time.Duration) Option {
	return func(c *Client) { c.baseDelay, c.maxDelay = base, max }
}

// New returns a client for the QBD Connect API at baseURL (the part before
// /qbdconnect-api/), an absolute http or https URL. Its errors name the
// argument, not a setting: the caller knows where the value came from.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("qbdclient: the base URL must be an absolute http or https URL, such as https://qbd.example.com")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("qbdclient: the base URL must have no query or fragment")
	}
	if strings.Contains(u.Path, "/"+apiPrefix) {
		return nil, fmt.Errorf("qbdclient: the base URL is the part before /%s/; drop /%s and what follows", apiPrefix, apiPrefix)
	}
	c := &Client{
		base:      u,
		version:   "v1",
		http:      &http.Client{Timeout: 10 * time.Second},
		retries:   2,
		baseDelay: 100 * time.Millisecond,
		maxDelay:  2 * time.Second,
		log:       zap.NewNop(),
		sleep:     backoff.Sleep,
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.version == "" || strings.ContainsAny(c.version, "/?#%"):
		return nil, fmt.Errorf("qbdclient: the API version %q must be one path segment, such as v1", c.version)
	case strings.ContainsAny(c.token, "\r\n"):
		return nil, errors.New("qbdclient: the token must be one line")
	case c.http == nil:
		return nil, errors.New("qbdclient: WithHTTPClient needs a non-nil client")
	case c.log == nil:
		return nil, errors.New("qbdclient: WithLogger needs a non-nil logger")
	case c.retries < 0:
		return nil, errors.New("qbdclient: WithRetries needs n >= 0")
	case c.baseDelay < 0 || c.maxDelay < c.baseDelay:
		return nil, errors.New("qbdclient: WithBackoff needs 0 <= base <= max")
	}
	return c, nil
}

// call is one API call, the same for every attempt.
type call struct {
	method string
	route  string // the route's pattern, for logs: "/customers/{id}"
	path   string // the escaped path under /qbdconnect-api/{version}: "/customers/c%2F1"
	query  url.Values
	body   []byte // JSON, nil for none
}

// newCall builds a call; segments after the route's first are ids, each
// escaped as one path segment.
func newCall(method, route string, body any, query url.Values, resource string, ids ...string) (*call, error) {
	p := "/" + resource
	for _, id := range ids {
		if id == "" || id == "." || id == ".." {
			return nil, badArgument(method, route, fmt.Sprintf("the id must not be empty, \".\" or \"..\" (got %q)", id))
		}
		p += "/" + url.PathEscape(id)
	}
	r := &call{method: method, route: route, path: p, query: query}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("qbd %s %s: encoding the request: %w", method, route, err)
		}
		r.body = b
	}
	return r, nil
}

func (c *Client) url(r *call) string {
	u := *c.base
	prefix := strings.TrimSuffix(u.EscapedPath(), "/") + "/" + apiPrefix + "/" + url.PathEscape(c.version)
	raw := prefix + r.path
	u.Path, _ = url.PathUnescape(raw) // cannot fail: every part was escaped above
	u.RawPath = raw
	u.RawQuery = r.query.Encode()
	return u.String()
}

// idempotent: the methods whose repetition HTTP defines as harmless and the
// seed gives no other meaning. POST and PATCH are not.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// do runs r with retries and decodes a successful reply into out (when out
// is not nil).
func (c *Client) do(ctx context.Context, r *call, out any) error {
	for attempt := 1; ; attempt++ {
		err := c.send(ctx, r, attempt, out)
		if err == nil {
			return nil
		}
		if attempt > c.retries || ctx.Err() != nil || !retryable(err, r.method) {
			if attempt > 1 {
				c.log.Debug("qbd call failed after retries", zap.String("method", r.method), zap.String("route", r.route), zap.Int("attempts", attempt))
			}
			return err
		}
		wait, ok := c.backoff(attempt, err)
		if !ok {
			return err
		}
		if deadline, has := ctx.Deadline(); has && time.Now().Add(wait).After(deadline) {
			return err
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (%w while waiting to retry)", err, serr)
		}
	}
}

// retryable: transient failures of idempotent calls, and failures of any
// call that surely did not reach the server.
func retryable(err error, method string) bool {
	return errors.Is(err, ErrTransient) && (idempotent(method) || errors.Is(err, errNotSent))
}

// backoff is full jitter over baseDelay·2^(attempt-1), capped at maxDelay;
// a Retry-After is waited for exactly, unless it exceeds maxDelay (then
// ok is false: the caller should come back later).
func (c *Client) backoff(attempt int, err error) (wait time.Duration, ok bool) {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, ae.RetryAfter <= c.maxDelay
	}
	return backoff.Full(attempt, c.baseDelay, c.maxDelay), true
}

// send makes one attempt and logs it.
func (c *Client) send(ctx context.Context, r *call, attempt int, out any) error {
	start := time.Now()
	status, err := c.exchange(ctx, r, out)
	fields := []zap.Field{
		zap.String("method", r.method), zap.String("route", r.route), zap.Int("status", status),
		zap.Duration("duration", time.Since(start)), zap.Int("attempt", attempt),
	}
	var ae *APIError
	if err != nil && !errors.As(err, &ae) {
		fields = append(fields, zap.Error(err)) // transport and decoding errors carry no body
	}
	c.log.Debug("qbd call", fields...)
	if c.observe != nil {
		c.observe(ctx, Attempt{Action: r.method + " " + r.route, Status: status, Err: err, Duration: time.Since(start)})
	}
	return err
}

// exchange sends r once and returns the HTTP status (0 when none came).
func (c *Client) exchange(ctx context.Context, r *call, out any) (int, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.url(r), body)
	if err != nil {
		return 0, fmt.Errorf("qbd %s %s: %w", r.method, r.route, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, transportError(r.method, r.route, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return resp.StatusCode, transportError(r.method, r.route, err)
		}
		return resp.StatusCode, &APIError{
			Method: r.method, Path: r.path, Status: resp.StatusCode, Body: string(b),
			RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()), kind: classify(resp.StatusCode),
		}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)) // lets the connection be reused
		return resp.StatusCode, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return resp.StatusCode, transportError(r.method, r.route, err)
	}
	if len(b) > maxBody {
		return resp.StatusCode, invalidResponse(r.method, r.route, fmt.Sprintf("reply larger than %d bytes", maxBody))
	}
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return resp.StatusCode, invalidResponse(r.method, r.route, "reply is null")
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, invalidResponse(r.method, r.route, "reply is not the expected JSON: "+err.Error())
	}
	return resp.StatusCode, nil
}

// retryAfter reads Retry-After as seconds or an HTTP date; 0 when absent,
// malformed or past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(min(max(s, 0), 366*24*3600)) * time.Second // no overflow
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
