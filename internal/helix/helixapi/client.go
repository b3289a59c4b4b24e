package helixapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

const (
	maxBody      = 1 << 20                                   // largest successful reply read
	maxErrorBody = 64 << 10                                  // largest error reply read
	userAgent    = "banking-marketplace-webhook/helixclient" // the package's former name, kept: the outside system may know us by it
)

// Client calls Helix. It is safe for concurrent use.
type Client struct {
	base        *url.URL
	key, secret string
	basic       bool
	core        *httpcall.Client

	cfg httpcall.Config // the core's settings, which the options change; read once by New
}

// WithObserver reports every attempt (retries included) with the caller's
// ctx: for metrics, the delivery's call count, and logging Helix's request
// ids. The Action is the route: "addEntitlement", "editEntitlement",
// "removeEntitlement".
func WithObserver(observe httpcall.Observer) Option {
	return func(c *Client) { c.cfg.Observer = observe }
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
// http.Client on http.DefaultTransport; each attempt is bounded by
// httpcall.DefaultTimeout). Its redirect policy is replaced: no redirect is
// followed.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.cfg.HTTPClient = h } }

// WithLogger logs retries, and calls that fail after them (default: no
// logging).
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.cfg.Logger = l } }

// WithRetry sets how often a failure is tried (maxAttempts in all, at
// least 1) and the waits between tries: full jitter over baseDelay·2^n, at
// most maxDelay. A Retry-After or throttle longer than maxDelay is not
// waited for: the call fails, and the caller may pass the wait on (default
// httpcall.DefaultRetry: 3 attempts, 100ms, 1s).
func WithRetry(maxAttempts int, baseDelay, maxDelay time.Duration) Option {
	return func(c *Client) {
		c.cfg.Retry = httpcall.Retry{Attempts: maxAttempts, BaseDelay: baseDelay, MaxDelay: maxDelay}
	}
}

// New returns a client for Helix at baseURL (such as
// https://sandbox-api.helix.q2.com), an absolute http or https URL without
// credentials in it. Its errors name the argument, not a setting: the
// caller knows where the value came from.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("helixapi: the base URL must be an absolute http or https URL, such as https://sandbox-api.helix.q2.com")
	}
	if u.User != nil {
		return nil, errors.New("helixapi: the base URL must not hold credentials; give them with WithCredentials")
	}
	c := &Client{base: u, cfg: httpcall.Config{
		System: "helix", BaseURL: u, UserAgent: userAgent, MaxBody: maxBody, MaxErrorBody: maxErrorBody,
		Transient: ErrTransient, Invalid: ErrInvalidResponse,
		HTTPClient: &http.Client{}, Logger: zap.NewNop(), Retry: httpcall.DefaultRetry,
	}}
	c.cfg.Authorize = c.authorize
	for _, o := range opts {
		o(c)
	}
	if c.basic && (c.key == "" || c.secret == "") {
		return nil, errors.New("helixapi: the API key and the API secret must both be set")
	}
	if c.core, err = httpcall.New(c.cfg); err != nil {
		return nil, fmt.Errorf("helixapi: %w", err)
	}
	return c, nil
}

// authorize adds the Basic credentials, when there are some.
func (c *Client) authorize(_ context.Context, req *http.Request) error {
	if c.basic {
		req.SetBasicAuth(c.key, c.secret)
	}
	return nil
}

// call sends body to /account/{route}. idempotent says that sending it
// again after a lost reply is harmless (edit sets the same level again,
// remove answers 195119); add is not: it is never sent twice.
func (c *Client) call(ctx context.Context, route string, body any, idempotent bool) (Result, error) {
	r, err := c.core.NewRequest(http.MethodPost, route, c.base.JoinPath("account", route), body)
	if err != nil {
		return Result{}, err
	}
	r.Idempotent = idempotent
	var res Result
	_, err = c.core.Do(ctx, r, func(resp *httpcall.Response) (err error) {
		res, err = readReply(route, resp, time.Now())
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
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

// readReply says what an answered attempt means: a 2xx whose errors list
// is empty is a success; anything else is an *APIError, whose wait for a
// rate limit comes from Retry-After, else throttle, else DefaultRetryAfter.
func readReply(route string, resp *httpcall.Response, now time.Time) (Result, error) {
	var env envelope
	decodeErr := json.Unmarshal(resp.Body, &env)
	if env.RequestID == "" {
		env.RequestID = resp.Header.Get("X-Request-Id")
	}
	resp.RequestID = env.RequestID
	codes, msgs, errsOK := decodeErrors(env.Errors)
	if resp.OK() {
		switch {
		case len(bytes.TrimSpace(resp.Body)) == 0 && resp.Status == http.StatusNoContent:
			return Result{RequestID: env.RequestID}, nil
		case decodeErr != nil:
			return Result{}, resp.Invalid("reply is not a JSON envelope")
		case !errsOK:
			return Result{}, resp.Invalid(`"errors" is not a list of {code, message}`)
		case len(codes) == 0:
			return Result{RequestID: env.RequestID, Data: env.Data}, nil
		}
	}
	e := &APIError{Route: route, HTTPStatus: resp.Status, Codes: codes, Messages: msgs, RequestID: env.RequestID}
	if !resp.HasRetryAfter() && e.rateLimited() {
		d := throttleWait(env.Throttle, now)
		if d == 0 {
			d = DefaultRetryAfter
		}
		resp.SetRetryAfter(d)
	}
	e.RetryAfter = resp.RetryAfter
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
