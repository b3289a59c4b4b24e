package sandbox

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

// Routes names Q2's routes that count calls and take faults; a Part adds
// its own.
var Routes = []string{"token", "Enrollment", "DeleteUser", "DeleteCustomer", "LookupUser", "LookupCustomer", "AddExternalAccount", "GetAccountList"}

// Fault makes the next Times calls of Route wait Delay, then answer Status
// with an error (Status 0: then answer normally). Code, for a part's route
// only, is an error code of that API: the fault answers Status (400 when 0)
// in the part's error envelope with that code. Times 0 clears the route's
// fault.
type Fault struct {
	Route   string `json:"route"`
	Status  int    `json:"status"`
	Times   int    `json:"times"`
	DelayMS int    `json:"delay_ms"`
	Code    int    `json:"code"`
}

// Stats counts the calls received per route (when they arrive, before
// authentication and faults; routes never called are left out) and the
// live users and customers. Parts holds each part's block by its name: in
// JSON the blocks stand beside "calls", "users" and "customers".
type Stats struct {
	Calls     map[string]int `json:"calls"`
	Users     int            `json:"users"`
	Customers int            `json:"customers"`
	Parts     map[string]any `json:"-"` // decoded from JSON as json.RawMessage
}

// MarshalJSON writes the parts' blocks beside the fixed fields.
func (st Stats) MarshalJSON() ([]byte, error) {
	doc := map[string]any{"calls": st.Calls, "users": st.Users, "customers": st.Customers}
	for name, block := range st.Parts {
		doc[name] = block // New keeps part names off the fixed ones
	}
	return json.Marshal(doc)
}

// UnmarshalJSON reads the fixed fields, and every other key into Parts.
func (st *Stats) UnmarshalJSON(b []byte) error {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	var out Stats
	for k, v := range doc {
		var err error
		switch k {
		case "calls":
			err = json.Unmarshal(v, &out.Calls)
		case "users":
			err = json.Unmarshal(v, &out.Users)
		case "customers":
			err = json.Unmarshal(v, &out.Customers)
		default:
			if out.Parts == nil {
				out.Parts = map[string]any{}
			}
			out.Parts[k] = v
		}
		if err != nil {
			return fmt.Errorf("stats %q: %w", k, err)
		}
	}
	*st = out
	return nil
}

// Sandbox is the in-memory Q2 API, hosting other APIs (parts) beside it. It
// is safe for concurrent use.
type Sandbox struct {
	cfg     Config
	q2      directory
	parts   []Part
	routes  []string                 // Q2's, then each part's
	owner   map[string]Part          // route → its part; nil for Q2's routes
	calls   map[string]*atomic.Int64 // one per route, fixed by New
	handler http.Handler

	tokMu   sync.RWMutex
	tokens  map[string]time.Time // access token → expiry
	sweepAt int                  // sweep expired tokens when there are this many

	faultMu sync.Mutex
	faults  map[string]Fault
}

// minSweep is the number of tokens below which expired ones are not swept.
const minSweep = 1024

// New returns an empty sandbox serving Q2 and the given parts. A part
// whose name is empty, reserved ("calls", "users", "customers") or taken,
// or whose route is taken, is a wiring mistake: New panics naming it, as
// http.ServeMux does for conflicting patterns.
func New(cfg Config, parts ...Part) *Sandbox {
	if cfg.ClientID == "" {
		cfg.ClientID = DefaultClientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = DefaultClientSecret
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	s := &Sandbox{cfg: cfg, parts: parts, owner: map[string]Part{}, calls: map[string]*atomic.Int64{}}
	for _, r := range Routes {
		s.addRoute(r, nil)
	}
	names := map[string]bool{"calls": true, "users": true, "customers": true}
	for _, p := range parts {
		if names[p.Name()] || p.Name() == "" {
			panic(fmt.Sprintf("sandbox: part name %q is empty, reserved or taken", p.Name()))
		}
		names[p.Name()] = true
		for _, r := range p.Routes() {
			s.addRoute(r, p)
		}
	}
	s.Reset()
	s.handler = s.mux()
	return s
}

func (s *Sandbox) addRoute(route string, p Part) {
	if _, taken := s.owner[route]; taken || route == "" {
		panic(fmt.Sprintf("sandbox: route %q is empty or taken", route))
	}
	s.owner[route] = p
	s.routes = append(s.routes, route)
	s.calls[route] = new(atomic.Int64)
}

// Reset forgets everything: users, customers, tokens, faults, counters and
// every part's state.
func (s *Sandbox) Reset() {
	s.q2.reset()
	s.tokMu.Lock()
	s.tokens, s.sweepAt = map[string]time.Time{}, minSweep
	s.tokMu.Unlock()
	s.faultMu.Lock()
	s.faults = map[string]Fault{}
	s.faultMu.Unlock()
	for _, n := range s.calls {
		n.Store(0)
	}
	for _, p := range s.parts {
		p.Reset()
	}
}

// Stats returns the call counters, the live users and customers, and each
// part's block.
func (s *Sandbox) Stats() Stats {
	st := Stats{Calls: map[string]int{}}
	for route, n := range s.calls {
		if v := n.Load(); v != 0 {
			st.Calls[route] = int(v)
		}
	}
	st.Users, st.Customers = s.q2.live()
	for _, p := range s.parts {
		if st.Parts == nil {
			st.Parts = map[string]any{}
		}
		st.Parts[p.Name()] = p.Stats()
	}
	return st
}

// SetFault installs f, replacing the route's previous fault. The route is
// any of Q2's or of a part; a code only makes sense for a part's route.
func (s *Sandbox) SetFault(f Fault) error {
	p, known := s.owner[f.Route]
	switch {
	case !known:
		return fmt.Errorf("route %q is not one of %s", f.Route, strings.Join(s.routes, ", "))
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("status %d: want 0 or 400-599", f.Status)
	case f.Times < 0 || f.DelayMS < 0:
		return errors.New("times and delay_ms must not be negative")
	case f.Code < 0:
		return fmt.Errorf("code %d: want 0 or an API error code", f.Code)
	case f.Code != 0 && p == nil:
		return fmt.Errorf("code %d: Q2 route %q takes no code; give only a status", f.Code, f.Route)
	}
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if f.Times == 0 {
		delete(s.faults, f.Route)
	} else {
		s.faults[f.Route] = f
	}
	return nil
}

// Handler serves the Q2 routes, every part's routes and the /_sandbox/
// routes.
func (s *Sandbox) Handler() http.Handler { return s.handler }

func (s *Sandbox) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{v}/oauth2/token", s.q2Route("token", s.token))
	mux.HandleFunc("POST /{v}/Enrollment", s.q2Route("Enrollment", s.authed(s.enroll)))
	mux.HandleFunc("DELETE /{v}/DeleteUser/{id}", s.q2Route("DeleteUser", s.authed(s.deleteUser)))
	mux.HandleFunc("DELETE /{v}/DeleteCustomer/{id}", s.q2Route("DeleteCustomer", s.authed(s.deleteCustomer)))
	mux.HandleFunc("POST /{v}/LookupUser", s.q2Route("LookupUser", s.authed(s.lookupUser)))
	mux.HandleFunc("POST /{v}/LookupCustomer", s.q2Route("LookupCustomer", s.authed(s.lookupCustomer)))
	mux.HandleFunc("POST /{v}/AddExternalAccount", s.q2Route("AddExternalAccount", s.authed(s.addExternalAccount)))
	mux.HandleFunc("GET /{v}/GetAccountList", s.q2Route("GetAccountList", s.authed(s.accountList)))
	for _, p := range s.parts {
		p.Register(mux, s.partRoute(p))
	}
	mux.HandleFunc("GET /_sandbox/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	mux.HandleFunc("POST /_sandbox/faults", s.setFault)
	mux.HandleFunc("POST /_sandbox/reset", func(w http.ResponseWriter, r *http.Request) {
		s.Reset()
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
	})
	return mux
}

// arrive counts a call of route and takes one of its fault's calls.
func (s *Sandbox) arrive(route string) (Fault, bool) {
	s.calls[route].Add(1)
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	f, faulty := s.faults[route]
	if faulty {
		if f.Times--; f.Times == 0 {
			delete(s.faults, route)
		} else {
			s.faults[route] = f
		}
	}
	return f, faulty
}

// q2Route counts the call, checks the version segment and plays the route's
// fault, if any. The delay does not watch the caller: a delayed call does
// its work even when its caller has gone away.
func (s *Sandbox) q2Route(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, faulty := s.arrive(name)
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

// partRoute is the wrap a part registers its routes with: it counts the
// call and plays the route's fault in the part's own error envelope, with
// the same delay rule as Q2's routes. A route the part did not declare in
// Routes is a wiring mistake, found when the handler is built.
func (s *Sandbox) partRoute(p Part) func(string, http.HandlerFunc) http.HandlerFunc {
	return func(route string, h http.HandlerFunc) http.HandlerFunc {
		if s.owner[route] != p {
			panic(fmt.Sprintf("sandbox: part %q registers route %q, which is not in its Routes", p.Name(), route))
		}
		return func(w http.ResponseWriter, r *http.Request) {
			f, faulty := s.arrive(route)
			if faulty {
				time.Sleep(time.Duration(f.DelayMS) * time.Millisecond)
				if f.Status != 0 || f.Code != 0 {
					p.Fail(w, cmp.Or(f.Status, http.StatusBadRequest), f.Code)
					return
				}
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			h(w, r)
		}
	}
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
