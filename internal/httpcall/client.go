package httpcall

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/backoff"
	"github.com/banking-marketplace/webhook/internal/logctx"
)

// DefaultTimeout bounds each attempt, reading the reply included, when the
// Config names no other.
const DefaultTimeout = 10 * time.Second

// Retry is a call's attempt budget and the waits between attempts.
type Retry struct {
	Attempts  int           // tries in all, the first included; at least 1
	BaseDelay time.Duration // the backoff's scale: full jitter over BaseDelay·2^(n-1)
	MaxDelay  time.Duration // the longest wait inside one call, backoff and Retry-After alike
}

// DefaultRetry is three tries with waits from 100 ms up to 1 s. A system
// asking for a longer wait ends the call: someone (a delivery, the
// marketplace) is waiting for its outcome, and will try again.
var DefaultRetry = Retry{Attempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}

// Config is what a client tells the core about itself.
type Config struct {
	// System names the outside system on every Attempt (and so in the
	// metrics' target label): "q2", "qbd_connect", "helix".
	System string
	// Name begins the client's error messages: "q2", "qbd"; System when
	// empty.
	Name string
	// BaseURL is the configured base URL. Every request must be under it:
	// same scheme and host, its path a prefix of the request's.
	BaseURL *url.URL
	// HTTPClient sends the requests; the core uses a copy that follows no
	// redirect.
	HTTPClient *http.Client
	// Logger receives the core's retry and give-up lines.
	Logger *zap.Logger
	// UserAgent is sent on every request.
	UserAgent string
	// Timeout bounds each attempt (DefaultTimeout when 0); the caller's
	// context bounds the whole call.
	Timeout time.Duration
	// Retry is the attempt budget (see DefaultRetry).
	Retry Retry
	// MaxBody is the largest successful reply read; a larger one is an
	// invalid response. MaxErrorBody cuts error replies (not an error).
	MaxBody, MaxErrorBody int64
	// Transient is the client's ErrTransient: transport failures wrap it,
	// and only failures matching it are tried again.
	Transient error
	// Invalid is the client's ErrInvalidResponse: redirects and replies
	// over MaxBody wrap it.
	Invalid error
	// Authorize, when set, adds credentials to each attempt's request (a
	// bearer token, HTTP Basic, an OAuth 1.0a signature), after the core
	// has checked that the URL is under BaseURL. An error ends the attempt
	// as not sent (ErrNotSent) and is returned as it is.
	Authorize func(ctx context.Context, req *http.Request) error
	// Observer, when set, is told of every attempt.
	Observer Observer
}

// Client sends the requests of one outside API client. It is safe for
// concurrent use.
type Client struct {
	system, name          string
	base                  *url.URL
	http                  *http.Client
	log                   *zap.Logger
	userAgent             string
	timeout               time.Duration
	retry                 Retry
	maxBody, maxErrorBody int64
	transient, invalid    error
	authorize             func(context.Context, *http.Request) error
	observe               Observer
	sleep                 func(context.Context, time.Duration) error // backoff.Sleep; tests record the waits
}

// New returns the core for cfg. Its errors name the options every client
// built on it offers (WithHTTPClient, WithLogger, WithRetry).
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.System == "" || cfg.Transient == nil || cfg.Invalid == nil:
		return nil, errors.New("httpcall: Config needs System, Transient and Invalid")
	case cfg.BaseURL == nil || (cfg.BaseURL.Scheme != "http" && cfg.BaseURL.Scheme != "https") || cfg.BaseURL.Host == "":
		return nil, errors.New("httpcall: Config.BaseURL must be an absolute http or https URL")
	case cfg.MaxBody <= 0 || cfg.MaxErrorBody <= 0:
		return nil, errors.New("httpcall: Config needs positive MaxBody and MaxErrorBody")
	case cfg.HTTPClient == nil:
		return nil, errors.New("WithHTTPClient needs a non-nil client")
	case cfg.Logger == nil:
		return nil, errors.New("WithLogger needs a non-nil logger")
	case cfg.Retry.Attempts < 1 || cfg.Retry.BaseDelay < 0 || cfg.Retry.MaxDelay < cfg.Retry.BaseDelay:
		return nil, errors.New("WithRetry needs maxAttempts >= 1 and 0 <= baseDelay <= maxDelay")
	case cfg.Timeout < 0:
		return nil, errors.New("httpcall: Config.Timeout must not be negative")
	}
	hc := *cfg.HTTPClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	base := *cfg.BaseURL
	c := &Client{
		system: cfg.System, name: cmp.Or(cfg.Name, cfg.System), base: &base, http: &hc, log: cfg.Logger,
		userAgent: cfg.UserAgent, timeout: cmp.Or(cfg.Timeout, DefaultTimeout), retry: cfg.Retry,
		maxBody: cfg.MaxBody, maxErrorBody: cfg.MaxErrorBody, transient: cfg.Transient, invalid: cfg.Invalid,
		authorize: cfg.Authorize, observe: cfg.Observer, sleep: backoff.Sleep,
	}
	return c, nil
}

// HTTPClient is the copy of the configured http.Client the core sends
// with, which follows no redirect: for requests a client makes through a
// library, such as an OAuth2 token fetch.
func (c *Client) HTTPClient() *http.Client { return c.http }

// Timeout is the bound of each attempt.
func (c *Client) Timeout() time.Duration { return c.timeout }

// Request is one outside call, the same for every attempt.
type Request struct {
	Method string
	// Action names the call in errors, logs and metrics; it is bounded
	// (a route's pattern, never an id): "Enrollment", "GET /customers/{id}".
	Action string
	URL    *url.URL
	Body   []byte // sent as application/json; nil: no body
	// Idempotent says the request is safe to send again after its reply
	// was lost. NewRequest sets it from the method (GET, HEAD, PUT, DELETE,
	// OPTIONS); a client sets it for a POST that only reads, and for one
	// whose repetition the system defines as harmless.
	Idempotent bool
}

// NewRequest builds a request to u, which must be under the base URL, with
// body encoded as JSON (none when nil).
func (c *Client) NewRequest(method, action string, u *url.URL, body any) (*Request, error) {
	if err := c.within(u); err != nil {
		return nil, fmt.Errorf("%s %s: %w", c.name, action, err)
	}
	r := &Request{Method: method, Action: action, URL: u, Idempotent: idempotent(method)}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encoding the request: %w", c.name, action, err)
		}
		r.Body = b
	}
	return r, nil
}

// idempotent: the methods whose repetition HTTP defines as harmless.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// within checks that u is under the base URL: credentials go nowhere else.
// A path segment "." or ".." is refused too, as a server would resolve it
// out of the base path (an id with an escaped slash, such as "a%2F..", is
// one segment and is not).
func (c *Client) within(u *url.URL) error {
	if u == nil {
		return ErrOutsideBase
	}
	base := strings.TrimSuffix(c.base.EscapedPath(), "/")
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") { // url.JoinPath on a base without a path leaves it relative
		p = "/" + p
	}
	ok := u.Scheme == c.base.Scheme && strings.EqualFold(u.Host, c.base.Host) && u.User == nil &&
		(p == base || strings.HasPrefix(p, base+"/")) &&
		!slices.ContainsFunc(strings.Split(p, "/"), dotSegment)
	if !ok {
		return fmt.Errorf("%w (host %q, base host %q): not sent, so that no credential leaves", ErrOutsideBase, u.Host, c.base.Host)
	}
	return nil
}

// dotSegment reports a path segment that is "." or "..", escaped or not
// ("%2E%2E" too); an escaped slash inside a segment ("a%2F..") is not one.
func dotSegment(seg string) bool {
	s, err := url.PathUnescape(seg)
	return err != nil || s == "." || s == ".."
}

// Response is an answered attempt, its body read (through the limit) and
// closed.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// RetryAfter is the wait the system asked for, capped at
	// MaxRetryAfter: from the Retry-After header, or set by the read
	// function with SetRetryAfter. See HasRetryAfter.
	RetryAfter time.Duration
	// RequestID is the system's id of the request; the read function sets
	// it when the reply has one, and the Attempt reports it.
	RequestID string

	call          string
	invalid       error
	retryAfterSet bool
}

// OK reports a 2xx status.
func (r *Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// HasRetryAfter reports whether the system said when to come back (a wait
// of 0 included).
func (r *Response) HasRetryAfter() bool { return r.retryAfterSet }

// SetRetryAfter records a wait the client read from the body (Helix's
// throttle), capped at MaxRetryAfter.
func (r *Response) SetRetryAfter(d time.Duration) { r.RetryAfter, r.retryAfterSet = capWait(d), true }

// Invalid is the client's ErrInvalidResponse for this reply: reason says
// what was wrong with it, in our words.
func (r *Response) Invalid(reason string) error { return r.Fail(r.invalid, reason) }

// Fail is a ReplyError of kind for this reply: for a client that reads a
// success as a failure (an empty lookup is ErrNotFound).
func (r *Response) Fail(kind error, reason string) error {
	return &ReplyError{Call: r.call, Status: r.Status, Kind: kind, Reason: reason}
}

// Do sends r, trying again as the package comment says, and passes each
// answered attempt to read (never nil), which decodes the reply and says
// what it means (nil: success; else the client's error, such as its
// *APIError, wrapping its ErrTransient when another attempt may help). A
// 3xx never reaches read. Do returns the last attempt's response (nil when none
// was answered) and read's error, or the core's own: a transport failure
// (the client's ErrTransient), a redirect or an oversized reply (its
// ErrInvalidResponse), ErrOutsideBase, or Authorize's error.
func (c *Client) Do(ctx context.Context, r *Request, read func(*Response) error) (*Response, error) {
	call := c.name + " " + r.Action
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil { // no attempt is made for a caller that is gone
			return nil, notSent{TransportError(call, c.transient, err)}
		}
		resp, err := c.attempt(ctx, r, attempt, read)
		if err == nil {
			return resp, nil
		}
		wait, again := c.again(ctx, r, attempt, resp, err)
		log := logctx.Logger(ctx, c.log)
		if resp != nil {
			log = log.With(zap.String("requestid", resp.RequestID))
		}
		if !again {
			if attempt > 1 {
				log.Warn(c.name+" call failed after retries", zap.String("action", r.Action), zap.Int("attempts", attempt), ErrorField(err))
			}
			return resp, err
		}
		log.Debug("retrying "+c.name+" call", zap.String("action", r.Action), zap.Int("attempt", attempt), zap.Duration("wait", wait), ErrorField(err))
		if serr := c.sleep(ctx, wait); serr != nil {
			return resp, fmt.Errorf("%w (%w while waiting to retry)", err, serr)
		}
	}
}

// again decides whether err, the failure of attempt, is tried again, and
// after how long: only a transient failure, within the budget, of a request
// safe to send again, while the caller waits, and never past its deadline.
// The system's Retry-After is waited when it is at most MaxDelay; a longer
// one ends the call, and the error carries it.
func (c *Client) again(ctx context.Context, r *Request, attempt int, resp *Response, err error) (time.Duration, bool) {
	if attempt >= c.retry.Attempts || ctx.Err() != nil || !errors.Is(err, c.transient) {
		return 0, false
	}
	if !r.Idempotent && !errors.Is(err, ErrNotSent) {
		return 0, false
	}
	wait := backoff.Full(attempt, c.retry.BaseDelay, c.retry.MaxDelay)
	if resp != nil && resp.HasRetryAfter() {
		if resp.RetryAfter > c.retry.MaxDelay {
			return 0, false
		}
		wait = resp.RetryAfter
	}
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
		return 0, false
	}
	return wait, true
}

// attempt makes one try and reports it: to its span (see startSpan), then
// to the Observer, under that span.
func (c *Client) attempt(ctx context.Context, r *Request, n int, read func(*Response) error) (*Response, error) {
	ctx, span := c.startSpan(ctx, r, n)
	start := time.Now()
	resp, err := c.send(ctx, r, read)
	a := Attempt{Action: r.Action, Method: r.Method, Duration: time.Since(start), Attempt: n, Err: err}
	if resp != nil {
		a.Status, a.RequestID = resp.Status, resp.RequestID
	}
	a.System = c.system
	endSpan(span, a)
	c.Observe(ctx, a)
	return resp, err
}

// Observe reports a to the Observer, with the client's System: for work a
// client does outside Do, such as fetching a token.
func (c *Client) Observe(ctx context.Context, a Attempt) {
	if c.observe != nil {
		a.System = c.system
		c.observe(ctx, a)
	}
}

// send makes one attempt under the per-attempt timeout.
func (c *Client) send(ctx context.Context, r *Request, read func(*Response) error) (*Response, error) {
	call := c.name + " " + r.Action
	if err := c.within(r.URL); err != nil {
		return nil, fmt.Errorf("%s: %w", call, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", call, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	inject(ctx, req.Header)
	if c.authorize != nil {
		if err := c.authorize(ctx, req); err != nil {
			return nil, notSent{err}
		}
	}
	hr, err := c.http.Do(req)
	if err != nil {
		return nil, TransportError(call, c.transient, err)
	}
	defer hr.Body.Close()
	resp := &Response{Status: hr.StatusCode, Header: hr.Header, call: call, invalid: c.invalid}
	resp.RetryAfter, resp.retryAfterSet = ParseRetryAfter(hr.Header.Get("Retry-After"), time.Now())
	if hr.StatusCode >= 300 && hr.StatusCode < 400 {
		_, _ = io.Copy(io.Discard, io.LimitReader(hr.Body, c.maxErrorBody)) // lets the connection be reused
		return resp, resp.Invalid(RedirectReason(req.URL, hr.Header.Get("Location")))
	}
	limit := c.maxErrorBody
	if resp.OK() {
		limit = c.maxBody
	}
	b, err := io.ReadAll(io.LimitReader(hr.Body, limit+1))
	if err != nil {
		return resp, &ReplyError{Call: call, Status: resp.Status, Kind: c.transient, Reason: "reading the reply", Err: unwrapURL(err)}
	}
	if int64(len(b)) > limit {
		if resp.OK() {
			return resp, resp.Invalid(fmt.Sprintf("reply larger than %d bytes", limit))
		}
		b = b[:limit]
	}
	resp.Body = b
	return resp, read(resp)
}

// RedirectReason says where a 3xx pointed, by host only (the Location's
// path and query may hold what no log should), resolved against the URL
// the request went to: the reason of the failure a redirect is.
func RedirectReason(from *url.URL, location string) string {
	if from == nil || location == "" {
		return "redirect not followed (no usable Location)"
	}
	to, err := from.Parse(location)
	if err != nil || to.Host == "" {
		return "redirect not followed (no usable Location)"
	}
	return fmt.Sprintf("redirect to host %s not followed", to.Host)
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
