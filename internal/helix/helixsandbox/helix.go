// Package helixsandbox is the Helix part of the sandbox: POST
// /account/addEntitlement, /account/editEntitlement and
// /account/removeEntitlement served from memory, with HTTP Basic and
// Helix's envelope {data, errors: [{code, message}], requestId, status,
// throttle}.
//
// It has its own wire types and imports neither internal/sandbox nor
// internal/helix/helixapi: the client is tested against an independent reading
// of Helix's documentation. It implements the sandbox's Part interface,
// declared in internal/sandbox and copied here for reference:
//
//	type Part interface {
//		Name() string     // "helix"
//		Routes() []string // "helix.addEntitlement", "helix.editEntitlement", "helix.removeEntitlement"
//		Register(mux *http.ServeMux, wrap func(route string, h http.HandlerFunc) http.HandlerFunc) // wrap counts the call and plays faults
//		Stats() any                                   // {"entitlements": live count}
//		Fail(w http.ResponseWriter, status, code int) // a fault's answer in Helix's envelope
//		Reset()
//	}
//
// Entitlements are keyed by (accountId, targetCustomerId). The sandbox
// answers on its own the codes that need no bank behind them, with HTTP 400
// and every code that applies: 195105–195107 (an id missing or below 1),
// 195108 (an unknown level, add and edit), 195122 (target equal to
// requester), 195110 (add of an existing entitlement) and 195119 (remove or
// edit of none). Helix's reference names no code for editing a missing
// entitlement; the sandbox answers remove's 195119, the only code that says
// so. A body that is not a JSON object is read as an empty one.
package helixsandbox

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
)

// Default credentials, used by New for empty arguments.
const (
	DefaultKey    = "helix-sandbox"
	DefaultSecret = "helix-sandbox-secret"
)

// maxBody bounds every request body.
const maxBody = 1 << 20

// The Helix codes the sandbox answers (its own copy: it shares no code with
// the client).
const (
	codeRequestingRequired = 195105
	codeAccountRequired    = 195106
	codeTargetRequired     = 195107
	codeInvalidEntitlement = 195108
	codeAlreadyEntitled    = 195110
	codeNoEntitlement      = 195119
	codeTargetIsBusiness   = 195122
	codeUnauthorized       = 50401
	codeRateLimited        = 50429
)

// messages are the documented texts of the codes a fault may ask for,
// without the values Helix fills in.
var messages = map[int]string{
	195100: "requestingCustomerId has insufficient entitlement on accountId to add entitlement for targetCustomerId",
	195101: "Program is not authorized to use this endpoint. Please contact your relationship manager for details.",
	195102: "accountId must be a business account.",
	195103: "accountId is currently in a status where entitlements cannot be added. Please refer to API documentation.",
	195104: "accountId is currently locked and entitlements cannot be added.",
	195105: "requestingCustomerId is required",
	195106: "accountId is required",
	195107: "targetCustomerId is required",
	195108: "entitlement is invalid. Refer to API documentation for valid values",
	195109: "Invalid accountId",
	195110: "targetCustomerId already has an entitlement for accountId",
	195112: "customerId is invalid.",
	195113: "customerId is inactive.",
	195114: "customerId is locked.",
	195115: "customerId is marked as deceased.",
	195116: "customerId is not in verified status.",
	195117: "customerId must have an active customer relationship to the business customer who owns the account.",
	195118: "targetCustomerId has not met sufficient onboarding requirements to be given this entitlement for accountId",
	195119: "targetCustomerId does not have an existing entitlement to accountId",
	195122: "targetCustomerId can not be the business customer.",
	60001:  "customer is invalid",
	60002:  "customer is inactive",
	60003:  "customer is not in a status that allows this",
	60004:  "customer is locked",
	60005:  "customer is marked as deceased",
	50401:  "Unauthorized",
	50403:  "IP address is not trusted",
	50429:  "Rate limit exceeded",
	50500:  "Internal server error",
}

var levels = []string{"FULL", "RDONLY", "RDDB", "RDCR", "DBONLY", "CRONLY"}

// The routes, as counted by the sandbox and named in its faults.
const (
	routeAdd    = "helix.addEntitlement"
	routeEdit   = "helix.editEntitlement"
	routeRemove = "helix.removeEntitlement"
)

type key struct{ account, target int64 }

type entitlement struct {
	requesting int64
	level      string
}

// Sandbox is the in-memory Helix. It is safe for concurrent use.
type Sandbox struct {
	key, secret string

	mu   sync.Mutex
	ents map[key]entitlement
}

// Stats is the sandbox's live state, for GET /_sandbox/stats.
type Stats struct {
	Entitlements int `json:"entitlements"`
}

// New returns an empty Helix accepting key and secret as HTTP Basic
// credentials (DefaultKey and DefaultSecret when empty).
func New(key, secret string) *Sandbox {
	if key == "" {
		key = DefaultKey
	}
	if secret == "" {
		secret = DefaultSecret
	}
	s := &Sandbox{key: key, secret: secret}
	s.Reset()
	return s
}

// Name is the part's name in the sandbox's stats.
func (s *Sandbox) Name() string { return "helix" }

// Routes names the routes whose calls are counted and take faults.
func (s *Sandbox) Routes() []string { return []string{routeAdd, routeEdit, routeRemove} }

// Register adds the three routes to mux, each wrapped by wrap (which counts
// the call and plays faults) outside authentication.
func (s *Sandbox) Register(mux *http.ServeMux, wrap func(route string, h http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("POST /account/addEntitlement", wrap(routeAdd, s.authed(s.add)))
	mux.HandleFunc("POST /account/editEntitlement", wrap(routeEdit, s.authed(s.edit)))
	mux.HandleFunc("POST /account/removeEntitlement", wrap(routeRemove, s.authed(s.remove)))
}

// Stats returns the live entitlements, as a Stats.
func (s *Sandbox) Stats() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Entitlements: len(s.ents)}
}

// Reset forgets every entitlement.
func (s *Sandbox) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ents = map[key]entitlement{}
}

// Entitlement returns the level targetCustomerID holds on accountID, for
// tests that check what a CHANGE did.
func (s *Sandbox) Entitlement(accountID, targetCustomerID int64) (level string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ents[key{accountID, targetCustomerID}]
	return e.level, ok
}

// Fail answers a fault in Helix's envelope: status (400 when 0), with code
// in errors. Without a code, the status's common code is used (50401,
// 50403, 50429, 50500–50505) and other statuses carry no error entry. A
// rate limit says "throttle": {"retryAfterMs": 100}.
func (s *Sandbox) Fail(w http.ResponseWriter, status, code int) {
	if status == 0 {
		status = http.StatusBadRequest
	}
	if code == 0 {
		switch {
		case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests:
			code = 50000 + status
		case status >= 500 && status <= 505:
			code = 50000 + status
		}
	}
	var errs []apiError
	if code != 0 {
		msg, ok := messages[code]
		switch {
		case !ok && code >= 50500 && code <= 50599:
			msg = messages[50500]
		case !ok:
			msg = fmt.Sprintf("sandbox fault: code %d", code)
		}
		errs = append(errs, apiError{code, msg})
	}
	reply(w, status, nil, errs...)
}

// authed wants the sandbox's HTTP Basic credentials.
func (s *Sandbox) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k, secret, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(k), []byte(s.key)) != 1 ||
			subtle.ConstantTimeCompare([]byte(secret), []byte(s.secret)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="helix"`)
			reply(w, http.StatusUnauthorized, nil, apiError{codeUnauthorized, messages[codeUnauthorized]})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h(w, r)
	}
}

// request is a body as the sandbox read it: ids below 1 stand for missing
// or unreadable ones.
type request struct {
	account, requesting, target int64
	level                       string
}

// wireEntitlement is the data of a success.
type wireEntitlement struct {
	AccountID            int64  `json:"accountId"`
	RequestingCustomerID int64  `json:"requestingCustomerId"`
	TargetCustomerID     int64  `json:"targetCustomerId"`
	Entitlement          string `json:"entitlement,omitempty"`
}

// read decodes r's body and checks it, answering 400 itself when the body
// is wrong; ok is false then.
func read(w http.ResponseWriter, r *http.Request, withLevel bool) (req request, ok bool) {
	var fields map[string]json.RawMessage
	_ = json.NewDecoder(r.Body).Decode(&fields) // anything but an object reads as empty
	id := func(name string) int64 {
		var n int64
		if json.Unmarshal(fields[name], &n) != nil {
			return 0
		}
		return n
	}
	req = request{account: id("accountId"), requesting: id("requestingCustomerId"), target: id("targetCustomerId")}
	var errs []apiError
	if req.requesting < 1 {
		errs = append(errs, apiError{codeRequestingRequired, "requestingCustomerId is required"})
	}
	if req.account < 1 {
		errs = append(errs, apiError{codeAccountRequired, "accountId is required"})
	}
	if req.target < 1 {
		errs = append(errs, apiError{codeTargetRequired, "targetCustomerId is required"})
	}
	if withLevel {
		_ = json.Unmarshal(fields["entitlement"], &req.level)
		if !slices.Contains(levels, req.level) {
			shown := string(fields["entitlement"])
			if shown == "" {
				shown = "(none)"
			}
			errs = append(errs, apiError{codeInvalidEntitlement, fmt.Sprintf("entitlement %s is invalid. Refer to API documentation for valid values", shown)})
		}
	}
	if req.target >= 1 && req.target == req.requesting {
		errs = append(errs, apiError{codeTargetIsBusiness, fmt.Sprintf("targetCustomerId %d can not be the business customer.", req.target)})
	}
	if len(errs) > 0 {
		reply(w, http.StatusBadRequest, nil, errs...)
		return req, false
	}
	return req, true
}

func (s *Sandbox) add(w http.ResponseWriter, r *http.Request) {
	req, ok := read(w, r, true)
	if !ok {
		return
	}
	s.mu.Lock()
	k := key{req.account, req.target}
	_, exists := s.ents[k]
	if !exists {
		s.ents[k] = entitlement{req.requesting, req.level}
	}
	s.mu.Unlock()
	if exists {
		reply(w, http.StatusBadRequest, nil, apiError{codeAlreadyEntitled,
			fmt.Sprintf("targetCustomerId %d already has an entitlement for accountId %d", req.target, req.account)})
		return
	}
	reply(w, http.StatusOK, wireEntitlement{req.account, req.requesting, req.target, req.level})
}

func (s *Sandbox) edit(w http.ResponseWriter, r *http.Request) {
	req, ok := read(w, r, true)
	if !ok {
		return
	}
	s.mu.Lock()
	k := key{req.account, req.target}
	_, exists := s.ents[k]
	if exists {
		s.ents[k] = entitlement{req.requesting, req.level}
	}
	s.mu.Unlock()
	if !exists {
		noEntitlement(w, req)
		return
	}
	reply(w, http.StatusOK, wireEntitlement{req.account, req.requesting, req.target, req.level})
}

func (s *Sandbox) remove(w http.ResponseWriter, r *http.Request) {
	req, ok := read(w, r, false)
	if !ok {
		return
	}
	s.mu.Lock()
	k := key{req.account, req.target}
	_, exists := s.ents[k]
	delete(s.ents, k)
	s.mu.Unlock()
	if !exists {
		noEntitlement(w, req)
		return
	}
	reply(w, http.StatusOK, wireEntitlement{AccountID: req.account, RequestingCustomerID: req.requesting, TargetCustomerID: req.target})
}

func noEntitlement(w http.ResponseWriter, req request) {
	reply(w, http.StatusBadRequest, nil, apiError{codeNoEntitlement,
		fmt.Sprintf("targetCustomerId %d does not have an existing entitlement to accountId %d", req.target, req.account)})
}

// envelope is Helix's reply document.
type envelope struct {
	Data      any        `json:"data"`
	Errors    []apiError `json:"errors"`
	RequestID string     `json:"requestId"`
	Status    int        `json:"status"`
	Throttle  any        `json:"throttle"`
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// reply writes the envelope with a fresh requestId. A rate limit carries
// a short throttle, so that clients retry soon.
func reply(w http.ResponseWriter, status int, data any, errs ...apiError) {
	env := envelope{Data: data, Errors: errs, RequestID: requestID(), Status: status}
	if env.Errors == nil {
		env.Errors = []apiError{}
	}
	if status == http.StatusTooManyRequests || slices.ContainsFunc(errs, func(e apiError) bool { return e.Code == codeRateLimited }) {
		env.Throttle = map[string]int{"retryAfterMs": 100}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(env) // the caller may be gone; nothing to do
}

// requestID is a random UUID (version 4).
func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
