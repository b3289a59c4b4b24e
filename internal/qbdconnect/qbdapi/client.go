package qbdapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

const (
	maxBody      = 4 << 20                                 // largest successful reply read
	maxErrorBody = 8 << 10                                 // largest error reply kept in APIError.Body
	userAgent    = "banking-marketplace-webhook/qbdclient" // the package's former name, kept: the outside system may know us by it
	apiPrefix    = "qbdconnect-api"
)

// Client calls the QBD Connect API. It is safe for concurrent use.
type Client struct {
	base    *url.URL // up to, not including, /qbdconnect-api/
	version string
	token   string
	core    *httpcall.Client

	cfg httpcall.Config // the core's settings, which the options change; read once by New
}

// WithObserver reports every attempt (retries included) with the caller's
// ctx: for metrics, logs and the delivery's call count. The Action is the
// method and the route's pattern: "POST /customers", "GET /subscriptions/{id}".
func WithObserver(observe httpcall.Observer) Option {
	return func(c *Client) { c.cfg.Observer = observe }
}

// Option configures a Client.
type Option func(*Client)

// WithAPIVersion sets the {version} path segment (default "v1", the
// QBD_API_VERSION setting).
func WithAPIVersion(v string) Option { return func(c *Client) { c.version = v } }

// WithToken sends "Authorization: Bearer t" on every call (QBD_TOKEN);
// empty sends none.
func WithToken(t string) Option { return func(c *Client) { c.token = t } }

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
// most maxDelay. A Retry-After longer than maxDelay is not waited for: the
// call fails with the APIError, whose RetryAfter says when to come back
// (default httpcall.DefaultRetry: 3 attempts, 100ms, 1s).
func WithRetry(maxAttempts int, baseDelay, maxDelay time.Duration) Option {
	return func(c *Client) {
		c.cfg.Retry = httpcall.Retry{Attempts: maxAttempts, BaseDelay: baseDelay, MaxDelay: maxDelay}
	}
}

// New returns a client for the QBD Connect API at baseURL (the part before
// /qbdconnect-api/), an absolute http or https URL. Its errors name the
// argument, not a setting: the caller knows where the value came from.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("qbdapi: the base URL must be an absolute http or https URL, such as https://qbd.example.com")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("qbdapi: the base URL must have no query or fragment")
	}
	if strings.Contains(u.Path, "/"+apiPrefix) {
		return nil, fmt.Errorf("qbdapi: the base URL is the part before /%s/; drop /%s and what follows", apiPrefix, apiPrefix)
	}
	c := &Client{base: u, version: "v1", cfg: httpcall.Config{
		System: "qbd_connect", Name: "qbd", BaseURL: u, UserAgent: userAgent, MaxBody: maxBody, MaxErrorBody: maxErrorBody,
		Transient: ErrTransient, Invalid: ErrInvalidResponse,
		HTTPClient: &http.Client{}, Logger: zap.NewNop(), Retry: httpcall.DefaultRetry,
	}}
	c.cfg.Authorize = c.authorize
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.version == "" || strings.ContainsAny(c.version, "/?#%"):
		return nil, fmt.Errorf("qbdapi: the API version %q must be one path segment, such as v1", c.version)
	case strings.ContainsAny(c.token, "\r\n"):
		return nil, errors.New("qbdapi: the token must be one line")
	}
	if c.core, err = httpcall.New(c.cfg); err != nil {
		return nil, fmt.Errorf("qbdapi: %w", err)
	}
	return c, nil
}

// authorize adds the bearer token, when there is one.
func (c *Client) authorize(_ context.Context, req *http.Request) error {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return nil
}

// call is one API call, the same for every attempt.
type call struct {
	req  *httpcall.Request
	path string // the escaped path under /qbdconnect-api/{version}, for APIError: "/customers/c%2F1"
}

// newCall builds a call of route (its pattern, for errors and logs:
// "/customers/{id}"); ids are escaped, each as one path segment after
// resource. POST and PATCH are not idempotent: PATCH has no documented
// body or semantics in the seed, so nothing says that applying it twice is
// harmless.
func (c *Client) newCall(method, route string, body any, query url.Values, resource string, ids ...string) (*call, error) {
	p := "/" + resource
	for _, id := range ids {
		if id == "" || id == "." || id == ".." {
			return nil, badArgument(method, route, fmt.Sprintf("the id must not be empty, \".\" or \"..\" (got %q)", id))
		}
		p += "/" + url.PathEscape(id)
	}
	req, err := c.core.NewRequest(method, method+" "+route, c.url(p, query), body)
	if err != nil {
		return nil, err
	}
	return &call{req: req, path: p}, nil
}

func (c *Client) url(path string, query url.Values) *url.URL {
	u := *c.base
	prefix := strings.TrimSuffix(u.EscapedPath(), "/") + "/" + apiPrefix + "/" + url.PathEscape(c.version)
	raw := prefix + path
	u.Path, _ = url.PathUnescape(raw) // cannot fail: every part was escaped above
	u.RawPath = raw
	u.RawQuery = query.Encode()
	return &u
}

// do runs r through the core and decodes a successful reply into out
// (when out is not nil); it returns the last reply (nil when none came).
func (c *Client) do(ctx context.Context, r *call, out any) (*httpcall.Response, error) {
	return c.core.Do(ctx, r.req, func(resp *httpcall.Response) error {
		if !resp.OK() {
			return &APIError{
				Method: r.req.Method, Path: r.path, Status: resp.Status, Body: string(resp.Body),
				RetryAfter: resp.RetryAfter, kind: classify(resp.Status),
			}
		}
		if out == nil {
			return nil
		}
		if bytes.Equal(bytes.TrimSpace(resp.Body), []byte("null")) {
			return resp.Invalid("reply is null")
		}
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return resp.Invalid("reply is not the expected JSON: " + err.Error())
		}
		return nil
	})
}
