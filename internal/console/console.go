// Package console is the operator console: server-rendered pages at
// /console/ (html/template, every file embedded, no script) that answer
// "what happened to this subscription, and what do I do" without the logs.
// It shows an overview (deliveries per outcome, the settle queue, recent
// failures, the outside systems), a subscription (its intent, each step in
// its outside system, its deliveries and their attempts as a timeline), a
// delivery (its attempts, the outside calls each made, trace links), the
// recent failures, the unsettled subscriptions, and a search by any id.
// Its one action is "settle now" on an unsettled subscription.
//
// It reads through Reader and acts through Actions, which the wiring
// implements; it holds ids, states, codes and times, never personal data.
// Operators sign in with one of the read API's tokens, exchanged for a
// server-side session (Sessions) behind a __Host- cookie; every POST needs
// the session's form token and a same-origin request
// (http.CrossOriginProtection), and every page is sent with a strict
// Content-Security-Policy.
package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Prefix is the path the console is served under: mount the handler there
// with the request path unchanged (echo: e.Any("/console/*",
// echo.WrapHandler(h))).
const Prefix = "/console/"

// Defaults of Config's timeouts.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 12 * time.Hour
)

// Config is what the console needs.
type Config struct {
	Reader  Reader  // required
	Actions Actions // nil: no "settle now"
	// Tokens are the read API's bearer tokens (API_TOKENS); any of them
	// signs in. At least one.
	Tokens   []string
	Sessions Sessions // nil: NewMemorySessions(0, Now)
	Logger   *zap.Logger
	// Demo serves the console over plain http (demo mode): the session
	// cookie is then neither Secure nor __Host- prefixed, since a browser
	// keeps neither from an http page. Off everywhere else.
	Demo bool
	// TraceURL links each trace id to a tracing UI: an absolute http(s) URL
	// with {trace_id} in it (CONSOLE_TRACE_URL,
	// "https://tempo.example/trace/{trace_id}"). Empty: trace ids are shown
	// without a link.
	TraceURL string
	// IdleTimeout ends a session not used for that long; MaxAge ends it
	// that long after sign-in, used or not. 0: DefaultIdleTimeout,
	// DefaultMaxAge.
	IdleTimeout time.Duration
	MaxAge      time.Duration
	Now         func() time.Time // the clock; nil: time.Now
}

// Console is the console's http.Handler.
type Console struct {
	cfg     Config
	log     *zap.Logger
	tokens  []token
	cookie  string // the session cookie's name
	pages   *pages
	handler http.Handler
}

type token struct {
	hash  [32]byte
	label string
}

// TokenLabel is how the console names the operator who signed in with tok
// in its logs and pages: "sha256:" and the first 8 hex digits of the
// token's SHA-256 (`printf %s "$TOKEN" | sha256sum | cut -c1-8`). It says
// which token was used and gives nothing of it away.
func TokenLabel(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(h[:4])
}

// New returns the console, or an error naming the setting to fix.
func New(cfg Config) (*Console, error) {
	if cfg.Reader == nil {
		return nil, errors.New("console: Config.Reader is nil; the wiring must give the console its records")
	}
	if len(cfg.Tokens) == 0 {
		return nil, errors.New("console: no tokens to sign in with; set API_TOKENS (the read API's bearer tokens)")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sessions == nil {
		cfg.Sessions = NewMemorySessions(0, cfg.Now)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.TraceURL != "" {
		if err := CheckTraceURL(cfg.TraceURL); err != nil {
			return nil, fmt.Errorf("console: CONSOLE_TRACE_URL %w", err)
		}
	}
	c := &Console{cfg: cfg, log: cfg.Logger.Named("console"), cookie: "__Host-console"}
	if cfg.Demo {
		c.cookie = "console"
	}
	for _, t := range cfg.Tokens {
		if t == "" {
			return nil, errors.New("console: an empty token in API_TOKENS; remove it")
		}
		c.tokens = append(c.tokens, token{hash: sha256.Sum256([]byte(t)), label: TokenLabel(t)})
	}
	p, err := loadPages(c)
	if err != nil {
		return nil, err
	}
	c.pages = p
	c.handler = c.routes()
	return c, nil
}

// CheckTraceURL checks a trace link (CONSOLE_TRACE_URL): an absolute
// http(s) URL with {trace_id} in it. The configuration reads it with this
// check, so a bad one stops the start naming the setting.
func CheckTraceURL(s string) error {
	u, err := url.Parse(strings.ReplaceAll(s, "{trace_id}", "0"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !strings.Contains(s, "{trace_id}") {
		// Not the value: it may hold a password (the caller shows it
		// redacted).
		return errors.New("must be an absolute http(s) URL with {trace_id} in it, like https://tempo.example/trace/{trace_id}")
	}
	return nil
}

// ServeHTTP serves the console's paths (under Prefix).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// contentSecurityPolicy allows nothing but this origin's own files: no
// inline script or style, no plugins, no framing, forms posted here only.
const contentSecurityPolicy = "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/static/{file}", c.static)
	mux.HandleFunc("GET /console/signin", c.signInPage)
	mux.HandleFunc("POST /console/signin", c.signIn)
	mux.HandleFunc("POST /console/signout", c.action(c.signOut))
	mux.HandleFunc("GET /console/{$}", c.page(c.overview))
	mux.HandleFunc("GET /console/subscriptions/{id}", c.page(c.subscription))
	mux.HandleFunc("POST /console/subscriptions/{id}/settle", c.action(c.settleNow))
	mux.HandleFunc("GET /console/deliveries/{key...}", c.page(c.delivery))
	mux.HandleFunc("GET /console/search", c.page(c.search))
	mux.HandleFunc("GET /console/failures", c.page(c.failures))
	mux.HandleFunc("GET /console/unsettled", c.page(c.unsettled))
	mux.HandleFunc("/console/", c.page(c.notFound))
	mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
	})

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(c.crossOrigin))
	return headers(cop.Handler(mux))
}

// headers sets the security headers of every answer, pages and files.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// crossOrigin answers a POST that came from another site.
func (c *Console) crossOrigin(w http.ResponseWriter, r *http.Request) {
	c.log.Warn("console: a cross-origin request was refused", zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")))
	c.renderError(w, r, nil, http.StatusForbidden, "Refused: this request came from another site",
		"Actions can only be taken from the console's own pages. Open the console and try again from there.")
}

// newID is 256 random bits, URL-safe.
func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionKey is what the store keeps a session under: its id hashed, so
// that the store's contents cannot be used as cookies.
func sessionKey(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// match reports the label of the token tok is, comparing in constant time
// against every token (hashed first, so lengths give nothing away either).
func (c *Console) match(tok string) (string, bool) {
	got := sha256.Sum256([]byte(tok))
	label, found := "", 0
	for _, t := range c.tokens {
		if subtle.ConstantTimeCompare(got[:], t.hash[:]) == 1 {
			label, found = t.label, 1
		}
	}
	return label, found == 1 && tok != ""
}
