package helixclient

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
	maxBody      = 1 << 20  // largest successful reply read
	maxErrorBody = 64 << 10 // largest error reply read
	userAgent    = "banking-marketplace-webhook/helixclient"
)

// Client calls Helix. It is safe for concurrent use.
type Client struct {
	base        *url.URL
	http        *http.Client
	key, secret string
	basic       bool
	retries     int
	baseDelay   time.Duration
	maxDelay    time.Duration
	timeout     time.Duration // per attempt
	log         *zap.Logger
	observe     func(context.Context, Attempt)
}

// Attempt is one HTTP attempt at a Helix call, as an observer sees it.
type Attempt struct {
	Route     string // "addEntitlement", "editEntitlement", "removeEntitlement"
	Status    int    // HTTP status; 0 when no response arrived
	Err       error  // nil on success
	Duration  time.Duration
	RequestID string // Helix's requestId, when the reply had one
}

// WithObserver calls observe after every attempt (retries included), with
// the caller's ctx: for metrics, the delivery's call count, and logging
// Helix's request ids.
func WithObserver(observe func(ctx context.Context, a Attempt)) Option {
	return func(c *Client) { c.observe = observe }
}

// Option configures a Client.
type Option func(*Client)

// WithCredentials sends HTTP Basic credentials on every call: the Helix API
// key as user and the API secret as password (HELIX_API_KEY,
// HELIX_API_SECRET). Both must be non-empty.
func WithCredentials(apiKey, apiSecret string) Option {
	return func(c *Client) { c.key, c.secret, c.basic = apiKey, apiSecret, true }
}

// WithHTTPClient sets the underlying HTTP client (default: a new
// http.Client on http.DefaultTransport).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithLogger logs each attempt at debug level and calls that fail after
// retries at warn level (default: no logging).
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.log = l } }

// WithRetries sets how many times a transient failure is retried after the
// first attempt (default 2; 0 disables retries).
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithBackoff sets the backoff between retries: full jitter over
// base·2^n, at most max. A Retry-After or throttle longer than max is not
// waited for: the call fails, and the caller may pass the wait on
// (defaults 100ms and 2s).
func WithBackoff(base, max time.Duration) Option {
	return func(c *Client) { c.baseDelay, c.maxDelay = base, max }
}

// WithTimeout bounds each attempt (default 10s); the caller's context
// bounds the whole call.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client for Helix at baseURL (such as
// https://sandbox-api.helix.q2.com), an absolute http or https URL without
// credentials in it. Its errors name the argument, not a setting: the
// caller knows where the value came from.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("helixclient: the base URL must be an absolute http or https URL, such as https://sandbox-api.helix.q2.com")
	}
	if u.User != nil {
		return nil, errors.New("helixclient: the base URL must not hold credentials; give them with WithCredentials")
	}
	c := &Client{
		base:      u,
		http:      &http.Client{},
		retries:   2,
		baseDelay: 100 * time.Millisecond,
		maxDelay:  2 * time.Second,
		timeout:   10 * time.Second,
		log:       zap.NewNop(),
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.basic && (c.key == "" || c.secret == ""):
		return nil, errors.New("helixclient: the API key and the API secret must both be set")
	case c.http == nil:
		return nil, errors.New("helixclient: WithHTTPClient needs a non-nil client")
	case c.log == nil:
		return nil, errors.New("helixclient: WithLogger needs a non-nil logger")
	case c.retries < 0:
		return nil, errors.New("helixclient: WithRetries needs 0 or more")
	case c.baseDelay < 0 || c.maxDelay < c.baseDelay:
		return nil, errors.New("helixclient: WithBackoff needs 0 <= base <= max")
	case c.timeout <= 0:
		return nil, errors.New("helixclient: WithTimeout needs a positive duration")
	}
	return c, nil
}

// call sends body to /account/{route}, retrying transient failures.
func (c *Client) call(ctx context.Context, route string, body any) (Result, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Result{}, fmt.Errorf("helix %s: encoding request: %w", route, err)
	}
	u := c.base.JoinPath("account", route).String()
	for attempt := 1; ; attempt++ {
		res, err := c.send(ctx, route, u, b, attempt)
		if err == nil {
			return res, nil
		}
		wait, retry := c.backoff(ctx, attempt, err)
		if !retry {
			if attempt > 1 {
				c.log.Warn("helix call failed after retries", zap.String("route", route), zap.Int("attempts", attempt), zap.Error(err))
			}
			return Result{}, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, fmt.Errorf("%w (%w while waiting to retry)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// backoff decides whether err is retried after attempt, and after how long:
// only transient failures, within the retry budget, while the context
// lives, and never past its deadline. Helix's own wait (Retry-After,
// throttle) is used as given, or not at all when longer than maxDelay.
func (c *Client) backoff(ctx context.Context, attempt int, err error) (time.Duration, bool) {
	if attempt > c.retries || ctx.Err() != nil || !errors.Is(err, ErrTransient) {
		return 0, false
	}
	var wait time.Duration
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		if ae.RetryAfter > c.maxDelay {
			return 0, false
		}
		wait = ae.RetryAfter
	} else {
		wait = backoff.Full(attempt, c.baseDelay, c.maxDelay)
	}
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
		return 0, false
	}
	return wait, true
}

// send makes one attempt under the per-attempt timeout and logs it.
func (c *Client) send(ctx context.Context, route, u string, body []byte, attempt int) (res Result, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("helix %s: %w", route, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if c.basic {
		req.SetBasicAuth(c.key, c.secret)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		err = transportError(route, err)
		c.log.Debug("helix call", zap.String("route", route), zap.Int("attempt", attempt),
			zap.Duration("duration", time.Since(start)), zap.Error(err))
		if c.observe != nil {
			c.observe(ctx, Attempt{Route: route, Err: err, Duration: time.Since(start)})
		}
		return Result{}, err
	}
	defer resp.Body.Close()
	res, err = readReply(route, resp, time.Now())
	requestID, codes := res.RequestID, []int(nil)
	var ae *APIError
	if errors.As(err, &ae) {
		requestID, codes = ae.RequestID, ae.Codes
	}
	c.log.Debug("helix call", zap.String("route", route), zap.Int("attempt", attempt),
		zap.Int("status", resp.StatusCode), zap.Duration("duration", time.Since(start)),
		zap.String("requestId", requestID), zap.Ints("codes", codes))
	if c.observe != nil {
		c.observe(ctx, Attempt{Route: route, Status: resp.StatusCode, Err: err, Duration: time.Since(start), RequestID: requestID})
	}
	return res, err
}

// envelope is the shape of every Helix reply.
type envelope struct {
	Data      json.RawMessage `json:"data"`
	Errors    json.RawMessage `json:"errors"`
	RequestID string          `json:"requestId"`
	Status    json.RawMessage `json:"status"` // not used: the HTTP status and errors decide
	Throttle  json.RawMessage `json:"throttle"`
}

// wireError is one entry of errors. Helix documents code as a number; a
// numeric string is accepted too.
type wireError struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
}

func readReply(route string, resp *http.Response, now time.Time) (Result, error) {
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	limit := int64(maxErrorBody)
	if ok {
		limit = maxBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Result{}, transportError(route, err)
	}
	if ok && int64(len(body)) > limit {
		return Result{}, invalidResponse(route, fmt.Sprintf("reply larger than %d bytes", limit))
	}
	var env envelope
	decodeErr := json.Unmarshal(body, &env)
	if env.RequestID == "" {
		env.RequestID = resp.Header.Get("X-Request-Id")
	}
	codes, msgs, errsOK := decodeErrors(env.Errors)
	if ok {
		switch {
		case len(bytes.TrimSpace(body)) == 0 && resp.StatusCode == http.StatusNoContent:
			return Result{RequestID: env.RequestID}, nil
		case decodeErr != nil:
			return Result{}, invalidResponse(route, "reply is not a JSON envelope")
		case !errsOK:
			return Result{}, invalidResponse(route, `"errors" is not a list of {code, message}`)
		case len(codes) == 0:
			return Result{RequestID: env.RequestID, Data: env.Data}, nil
		}
	}
	e := &APIError{Route: route, HTTPStatus: resp.StatusCode, Codes: codes, Messages: msgs, RequestID: env.RequestID}
	var said bool
	if e.RetryAfter, said = retryAfter(resp.Header, now); !said && e.rateLimited() {
		if e.RetryAfter = throttleWait(env.Throttle, now); e.RetryAfter == 0 {
			e.RetryAfter = DefaultRetryAfter
		}
	}
	return Result{}, e
}

// decodeErrors reads the envelope's errors: null, absent or a list of
// {code, message}. ok is false for anything else.
func decodeErrors(raw json.RawMessage) (codes []int, msgs []string, ok bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, true
	}
	var list []wireError
	if json.Unmarshal(raw, &list) != nil {
		return nil, nil, false
	}
	for _, we := range list {
		code := 0 // an entry without a code is a failure all the same
		if s := strings.Trim(string(we.Code), `"`); s != "" && s != "null" {
			var err error
			if code, err = strconv.Atoi(s); err != nil {
				return nil, nil, false
			}
		}
		codes = append(codes, code)
		msgs = append(msgs, we.Message)
	}
	return codes, msgs, true
}
