package q2sandbox

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultClientID     = "sandbox"
	DefaultClientSecret = "sandbox-secret"
	DefaultTokenTTL     = time.Hour
)

// maxBody is the sandbox's bound on every request body (internal/sandbox
// applies it), named in the 413 answer.
const maxBody = 1 << 20

// Config holds the client credentials Q2 accepts and its token lifetime;
// zero fields take the defaults.
type Config struct {
	ClientID     string
	ClientSecret string
	TokenTTL     time.Duration
}

// routes names Q2's routes that count calls and take faults: each action,
// and the token as "token".
var routes = []string{"token", "Enrollment", "DeleteUser", "DeleteCustomer", "LookupUser", "LookupCustomer", "AddExternalAccount", "GetAccountList"}

// Stats is Q2's block of /_sandbox/stats: the live (not deleted) users
// and customers. It stands at the top level, beside "calls".
type Stats struct {
	Users     int `json:"users"`
	Customers int `json:"customers"`
}

// Sandbox is the in-memory Q2, a part of the sandbox (internal/sandbox),
// which counts its calls and plays its faults. It is safe for concurrent
// use.
type Sandbox struct {
	cfg Config
	dir directory

	tokMu   sync.RWMutex
	tokens  map[string]time.Time // access token → expiry
	sweepAt int                  // sweep expired tokens when there are this many
}

// minSweep is the number of tokens below which expired ones are not swept.
const minSweep = 1024

// New returns an empty Q2 accepting cfg's credentials.
func New(cfg Config) *Sandbox {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = DefaultClientSecret
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	s := &Sandbox{cfg: cfg}
	s.Reset()
	return s
}

// Name is Q2's name among the sandbox's parts: its stats block's key in
// Stats().Parts (in JSON its fields stand at the top level).
const Name = "q2"

// Name is Name.
func (s *Sandbox) Name() string { return Name }

// Routes names Q2's routes: "token" and each action.
func (s *Sandbox) Routes() []string { return slices.Clone(routes) }

// StatsAtTopLevel puts "users" and "customers" at the top level of
// /_sandbox/stats, where the contract has them.
func (s *Sandbox) StatsAtTopLevel() {}

// Register adds Q2's routes under any /{v1,v2}/ prefix.
func (s *Sandbox) Register(mux *http.ServeMux, wrap func(route string, h http.HandlerFunc) http.HandlerFunc) {
	route := func(name string, h http.HandlerFunc) http.HandlerFunc { return wrap(name, versioned(h)) }
	mux.HandleFunc("POST /{v}/oauth2/token", route("token", s.token))
	mux.HandleFunc("POST /{v}/Enrollment", route("Enrollment", s.authed(s.enroll)))
	mux.HandleFunc("DELETE /{v}/DeleteUser/{id}", route("DeleteUser", s.authed(s.deleteUser)))
	mux.HandleFunc("DELETE /{v}/DeleteCustomer/{id}", route("DeleteCustomer", s.authed(s.deleteCustomer)))
	mux.HandleFunc("POST /{v}/LookupUser", route("LookupUser", s.authed(s.lookupUser)))
	mux.HandleFunc("POST /{v}/LookupCustomer", route("LookupCustomer", s.authed(s.lookupCustomer)))
	mux.HandleFunc("POST /{v}/AddExternalAccount", route("AddExternalAccount", s.authed(s.addExternalAccount)))
	mux.HandleFunc("GET /{v}/GetAccountList", route("GetAccountList", s.authed(s.accountList)))
}

// versioned answers 404 for a version segment other than v1 and v2.
func versioned(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if v := r.PathValue("v"); v != "v1" && v != "v2" {
			fail(w, http.StatusNotFound, fmt.Sprintf("unknown API version %q (want v1 or v2)", v))
			return
		}
		h(w, r)
	}
}

// Stats returns the live users and customers, as a Stats.
func (s *Sandbox) Stats() any {
	var st Stats
	st.Users, st.Customers = s.dir.live()
	return st
}

// Reset forgets every user, customer and token.
func (s *Sandbox) Reset() {
	s.dir.reset()
	s.tokMu.Lock()
	s.tokens, s.sweepAt = map[string]time.Time{}, minSweep
	s.tokMu.Unlock()
}

// CheckFault refuses a code: Q2's faults are a status, nothing more.
func (s *Sandbox) CheckFault(route string, code int) error {
	return fmt.Errorf("code %d: Q2 route %q takes no code; give only a status", code, route)
}

// Fail answers a fault in Q2's envelope.
func (s *Sandbox) Fail(w http.ResponseWriter, status, _ int) {
	fail(w, status, fmt.Sprintf("sandbox fault: answers %d", status))
}

// FailRoute answers a fault on route: an OAuth2 error on the token route,
// Q2's envelope on the others.
func (s *Sandbox) FailRoute(w http.ResponseWriter, route string, status, _ int) {
	msg := fmt.Sprintf("sandbox fault: %s answers %d", route, status)
	if route == "token" {
		writeJSON(w, status, oauthError{"temporarily_unavailable", msg})
		return
	}
	fail(w, status, msg)
}

// authed wants a live Bearer token.
func (s *Sandbox) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.tokMu.RLock()
		exp, known := s.tokens[tok]
		s.tokMu.RUnlock()
		if !ok || !known || !time.Now().Before(exp) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			fail(w, http.StatusUnauthorized, "missing, unknown or expired bearer token")
			return
		}
		h(w, r)
	}
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// token is the OAuth2 client-credentials grant; credentials come in the
// form or as HTTP Basic.
func (s *Sandbox) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "body is not a form"})
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(s.cfg.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.ClientSecret)) != 1 {
		writeJSON(w, http.StatusUnauthorized, oauthError{Error: "invalid_client"})
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "unsupported_grant_type"})
		return
	}
	tok := rand.Text()
	now := time.Now()
	s.tokMu.Lock()
	if len(s.tokens) >= s.sweepAt { // doubling keeps the sweeps' cost per token flat
		for t, exp := range s.tokens {
			if !now.Before(exp) {
				delete(s.tokens, t)
			}
		}
		s.sweepAt = max(2*len(s.tokens), minSweep)
	}
	s.tokens[tok] = now.Add(s.cfg.TokenTTL)
	s.tokMu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(s.cfg.TokenTTL / time.Second),
		"scope":        r.PostForm.Get("scope"),
	})
}

// envelope is Q2's reply document.
type envelope struct {
	Data      any    `json:"data"`
	Success   bool   `json:"success"`
	Errors    any    `json:"errors"`
	RequestID string `json:"requestid"`
	Status    int    `json:"status"`
	LogRefID  string `json:"log_ref_id"`
}

func reply(w http.ResponseWriter, status int, data, errs any) {
	id := requestID()
	writeJSON(w, status, envelope{
		Data: data, Success: status < 300, Errors: errs, Status: status,
		RequestID: id, LogRefID: "sandbox-" + id[:8],
	})
}

func succeed(w http.ResponseWriter, data any) { reply(w, http.StatusOK, data, []string{}) }

func fail(w http.ResponseWriter, status int, msg string) {
	reply(w, status, map[string]any{}, []string{msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the caller may be gone; nothing to do
}

// requestID is a random UUID (version 4).
func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
