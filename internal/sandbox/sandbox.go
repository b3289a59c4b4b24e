package sandbox

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBody bounds every request body.
const maxBody = 1 << 20

// Fault makes the next Times calls of Route wait Delay, then answer Status
// with an error (Status 0: then answer normally). Code is an error code of
// the route's API: the fault answers Status (400 when 0) in the part's
// error envelope with that code; a part may refuse codes (Q2 takes none).
// Times 0 clears the route's fault.
type Fault struct {
	Route   string `json:"route"`
	Status  int    `json:"status"`
	Times   int    `json:"times"`
	DelayMS int    `json:"delay_ms"`
	Code    int    `json:"code"`
}

// Stats counts the calls received per route (when they arrive, before
// authentication and faults; routes never called are left out) and holds
// each part's block by its name. In JSON the blocks stand beside "calls",
// except that a TopLevelStats part's fields stand there themselves.
type Stats struct {
	Calls map[string]int `json:"calls"`
	Parts map[string]any `json:"-"`

	topLevel []string // the parts whose block's fields stand at the top level
}

// MarshalJSON writes the parts' blocks beside "calls", a TopLevelStats
// part's fields in place of its block.
func (st Stats) MarshalJSON() ([]byte, error) {
	doc := map[string]any{"calls": st.Calls}
	for name, block := range st.Parts {
		if !slices.Contains(st.topLevel, name) {
			doc[name] = block // New keeps part names off the other keys
			continue
		}
		fields, err := objectFields(block)
		if err != nil {
			return nil, fmt.Errorf("stats of part %q: %w", name, err)
		}
		for k, v := range fields {
			doc[k] = v
		}
	}
	return json.Marshal(doc)
}

// objectFields is block's JSON object, field by field.
func objectFields(block any) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(block)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("its block %s is not a JSON object", b)
	}
	return fields, nil
}

// Sandbox serves its parts, the outside APIs, from memory, with the
// /_sandbox/ routes of tests and demos beside them. It knows no outside
// system itself. It is safe for concurrent use.
type Sandbox struct {
	parts    []Part
	topLevel []string                 // names of the TopLevelStats parts
	routes   []string                 // each part's, in order
	owner    map[string]Part          // route → its part
	calls    map[string]*atomic.Int64 // one per route, fixed by New
	handler  http.Handler

	faultMu sync.Mutex
	faults  map[string]Fault
}

// New returns a sandbox serving the given parts, each reset. A part whose
// name is empty, "calls" or taken (by another part, or by a field of a
// TopLevelStats part's block), or whose route is empty or taken, is a
// wiring mistake: New panics naming it, as http.ServeMux does for
// conflicting patterns.
func New(parts ...Part) *Sandbox {
	s := &Sandbox{parts: parts, owner: map[string]Part{}, calls: map[string]*atomic.Int64{}}
	keys := map[string]bool{"calls": true} // the top level's keys
	claim := func(what, key string) {
		if keys[key] || key == "" {
			panic(fmt.Sprintf("sandbox: %s %q is empty, reserved or taken", what, key))
		}
		keys[key] = true
	}
	for _, p := range parts {
		claim("part name", p.Name())
		if _, top := p.(TopLevelStats); !top {
			continue
		}
		s.topLevel = append(s.topLevel, p.Name())
		fields, err := objectFields(p.Stats())
		if err != nil {
			panic(fmt.Sprintf("sandbox: part %q has its stats at the top level, but %v", p.Name(), err))
		}
		for k := range fields {
			claim(fmt.Sprintf("stats field of part %q", p.Name()), k)
		}
	}
	for _, p := range parts {
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

// Reset forgets everything: faults, counters and every part's state.
func (s *Sandbox) Reset() {
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

// Stats returns the call counters and each part's block.
func (s *Sandbox) Stats() Stats {
	st := Stats{Calls: map[string]int{}, topLevel: s.topLevel}
	for route, n := range s.calls {
		if v := n.Load(); v != 0 {
			st.Calls[route] = int(v)
		}
	}
	for _, p := range s.parts {
		if st.Parts == nil {
			st.Parts = map[string]any{}
		}
		st.Parts[p.Name()] = p.Stats()
	}
	return st
}

// SetFault installs f, replacing the route's previous fault. The route is
// any part's; a code only makes sense for a part that takes codes.
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
	}
	if rf, ok := p.(RouteFaults); ok && f.Code != 0 {
		if err := rf.CheckFault(f.Route, f.Code); err != nil {
			return err
		}
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

// Handler serves every part's routes and the /_sandbox/ routes.
func (s *Sandbox) Handler() http.Handler { return s.handler }

func (s *Sandbox) mux() *http.ServeMux {
	mux := http.NewServeMux()
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

// partRoute is the wrap a part registers its routes with: it counts the
// call and plays the route's fault in the part's own error envelope. The
// delay does not watch the caller: a delayed call does its work even when
// its caller has gone away. A route the part did not declare in Routes is
// a wiring mistake, found when the handler is built.
func (s *Sandbox) partRoute(p Part) func(string, http.HandlerFunc) http.HandlerFunc {
	fail := func(w http.ResponseWriter, _ string, status, code int) { p.Fail(w, status, code) }
	if rf, ok := p.(RouteFaults); ok {
		fail = rf.FailRoute
	}
	return func(route string, h http.HandlerFunc) http.HandlerFunc {
		if s.owner[route] != p {
			panic(fmt.Sprintf("sandbox: part %q registers route %q, which is not in its Routes", p.Name(), route))
		}
		return func(w http.ResponseWriter, r *http.Request) {
			f, faulty := s.arrive(route)
			if faulty {
				time.Sleep(time.Duration(f.DelayMS) * time.Millisecond)
				if f.Status != 0 || f.Code != 0 {
					fail(w, route, cmp.Or(f.Status, http.StatusBadRequest), f.Code)
					return
				}
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			h(w, r)
		}
	}
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the caller may be gone; nothing to do
}
