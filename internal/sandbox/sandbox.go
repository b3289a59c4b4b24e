package sandbox

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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

// maxBody bounds every request body.
const maxBody = 1 << 20

// Config holds the sandbox's client credentials and token lifetime; zero
// fields take the defaults.
type Config struct {
	ClientID     string
	ClientSecret string
	TokenTTL     time.Duration
}

// Routes names the routes that count calls and take faults.
var Routes = []string{"token", "Enrollment", "DeleteUser", "DeleteCustomer", "LookupUser", "LookupCustomer", "AddExternalAccount", "GetAccountList"}

// Fault makes the next Times calls of Route wait Delay, then answer Status
// with an error (Status 0: then answer normally). Times 0 clears the route's
// fault.
type Fault struct {
	Route   string `json:"route"`
	Status  int    `json:"status"`
	Times   int    `json:"times"`
	DelayMS int    `json:"delay_ms"`
}

// Stats counts the calls received per route (when they arrive, before
// authentication and faults) and the live users and customers.
type Stats struct {
	Calls     map[string]int `json:"calls"`
	Users     int            `json:"users"`
	Customers int            `json:"customers"`
}

// Sandbox is the in-memory Q2 API. It is safe for concurrent use.
type Sandbox struct {
	cfg Config

	mu        sync.Mutex
	tokens    map[string]time.Time // access token → expiry
	customers []*customer          // CustomerID = index + 1
	users     []*user              // UserID = index + 1
	logons    map[string]*user     // live logon name (lower case) → user
	nextID    int64                // logon and account ids
	faults    map[string]Fault
	calls     map[string]int
}

// New returns an empty sandbox.
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

// Reset forgets everything: users, customers, tokens, faults and counters.
func (s *Sandbox) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]time.Time{}
	s.customers, s.users = nil, nil
	s.logons = map[string]*user{}
	s.nextID = 0
	s.faults = map[string]Fault{}
	s.calls = map[string]int{}
}

// Stats returns the call counters and the live users and customers.
func (s *Sandbox) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Calls: maps.Clone(s.calls)}
	for _, u := range s.users {
		if u.deleted.IsZero() {
			st.Users++
		}
	}
	for _, c := range s.customers {
		if c.deleted.IsZero() {
			st.Customers++
		}
	}
	return st
}

// SetFault installs f, replacing the route's previous fault.
func (s *Sandbox) SetFault(f Fault) error {
	switch {
	case !slices.Contains(Routes, f.Route):
		return fmt.Errorf("route %q is not one of %s", f.Route, strings.Join(Routes, ", "))
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("status %d: want 0 or 400-599", f.Status)
	case f.Times < 0 || f.DelayMS < 0:
		return errors.New("times and delay_ms must not be negative")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times == 0 {
		delete(s.faults, f.Route)
	} else {
		s.faults[f.Route] = f
	}
	return nil
}

// Handler serves the Q2 routes and the /_sandbox/ routes.
func (s *Sandbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{v}/oauth2/token", s.route("token", s.token))
	mux.HandleFunc("POST /{v}/Enrollment", s.route("Enrollment", s.authed(s.enroll)))
	mux.HandleFunc("DELETE /{v}/DeleteUser/{id}", s.route("DeleteUser", s.authed(s.deleteUser)))
	mux.HandleFunc("DELETE /{v}/DeleteCustomer/{id}", s.route("DeleteCustomer", s.authed(s.deleteCustomer)))
	mux.HandleFunc("POST /{v}/LookupUser", s.route("LookupUser", s.authed(s.lookupUser)))
	mux.HandleFunc("POST /{v}/LookupCustomer", s.route("LookupCustomer", s.authed(s.lookupCustomer)))
	mux.HandleFunc("POST /{v}/AddExternalAccount", s.route("AddExternalAccount", s.authed(s.addExternalAccount)))
	mux.HandleFunc("GET /{v}/GetAccountList", s.route("GetAccountList", s.authed(s.accountList)))
	mux.HandleFunc("GET /_sandbox/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	mux.HandleFunc("POST /_sandbox/faults", s.setFault)
	mux.HandleFunc("POST /_sandbox/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	})
	return mux
}

// route counts the call, checks the version segment and plays the route's
// fault, if any. The delay does not watch the caller: a delayed call does
// its work even when its caller has gone away.
func (s *Sandbox) route(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[name]++
		f, faulty := s.faults[name]
		if faulty {
			if f.Times--; f.Times == 0 {
				delete(s.faults, name)
			} else {
				s.faults[name] = f
			}
		}
		s.mu.Unlock()

		if v := r.PathValue("v"); v != "v1" && v != "v2" {
			fail(w, http.StatusNotFound, fmt.Sprintf("unknown API version %q (want v1 or v2)", v))
			return
		}
		if faulty {
			time.Sleep(time.Duration(f.DelayMS) * time.Millisecond)
			if f.Status != 0 {
				msg := fmt.Sprintf("sandbox fault: %s answers %d", name, f.Status)
				if name == "token" {
					writeJSON(w, f.Status, oauthError{"temporarily_unavailable", msg})
				} else {
					fail(w, f.Status, msg)
				}
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h(w, r)
	}
}

// authed wants a live Bearer token.
func (s *Sandbox) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		exp, known := s.tokens[tok]
		live := ok && known && time.Now().Before(exp)
		if known && !live {
			delete(s.tokens, tok)
		}
		s.mu.Unlock()
		if !live {
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
	s.mu.Lock()
	for t, exp := range s.tokens {
		if !now.Before(exp) {
			delete(s.tokens, t)
		}
	}
	s.tokens[tok] = now.Add(s.cfg.TokenTTL)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int64(s.cfg.TokenTTL / time.Second),
		"scope":        r.PostForm.Get("scope"),
	})
}

func (s *Sandbox) setFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "fault: " + err.Error()})
		return
	}
	if err := s.SetFault(f); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "error": "fault: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
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
