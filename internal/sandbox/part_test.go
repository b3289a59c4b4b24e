package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakePart is the smallest Part: POST /{name}/{version}/things adds a
// thing.
type fakePart struct {
	name   string
	routes []string // what Routes declares; Register wraps "<name>.things"

	stats  any // when not nil, what Stats returns
	mu     sync.Mutex
	things int
	fails  []string // "status/code" of each Fail
	resets int
}

func newFake(name string) *fakePart {
	return &fakePart{name: name, routes: []string{name + ".things"}}
}

func (p *fakePart) Name() string     { return p.name }
func (p *fakePart) Routes() []string { return p.routes }

func (p *fakePart) Register(mux *http.ServeMux, wrap func(string, http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("POST /"+p.name+"/{version}/things", wrap(p.name+".things", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		p.mu.Lock()
		p.things++
		p.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
}

func (p *fakePart) Stats() any {
	if p.stats != nil {
		return p.stats
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return map[string]int{"things": p.things}
}

func (p *fakePart) Fail(w http.ResponseWriter, status, code int) {
	p.mu.Lock()
	p.fails = append(p.fails, fmt.Sprintf("%d/%d", status, code))
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"fake_error":%d}`, code)
}

func (p *fakePart) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.things, p.fails = 0, nil
	p.resets++
}

// serve starts sb behind real HTTP and returns a function that sends a
// request and returns the status and body.
func serve(t *testing.T, sb *Sandbox) func(method, path, body string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
}

func TestPart(t *testing.T) {
	t.Parallel()
	fake, other := newFake("fake"), newFake("other")
	sb := New(fake, other)
	send := serve(t, sb)
	post := func(path, body string) (int, string) { t.Helper(); return send("POST", path, body) }
	thing := func() (int, string) { t.Helper(); return post("/fake/v9/things", "{}") }

	// Served and counted, whatever its version segment; another part serves beside it.
	for range 2 {
		if st, body := thing(); st != http.StatusCreated {
			t.Fatalf("thing: %d %s", st, body)
		}
	}
	if st, body := post("/other/v1/things", "{}"); st != http.StatusCreated {
		t.Fatalf("another part beside it: %d %s", st, body)
	}
	if st, body := post("/fake/v1/things", `{"x":"`+strings.Repeat("x", maxBody)+`"}`); st != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: %d %s, want 413 from the body limit", st, body)
	}

	// Stats: one calls map for every route, each part's block beside it.
	_, body := send("GET", "/_sandbox/stats", "")
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("stats %s: %v", body, err)
	}
	if string(doc["calls"]) != `{"fake.things":3,"other.things":1}` || string(doc["fake"]) != `{"things":2}` || string(doc["other"]) != `{"things":1}` || len(doc) != 3 {
		t.Errorf("stats %s: want the calls, and the blocks \"fake\": {\"things\":2} and \"other\": {\"things\":1}", body)
	}

	// Faults on a part's route answer through its Fail.
	for _, tc := range []struct {
		fault      string
		status     int
		body, fail string
	}{
		{`{"route":"fake.things","code":195110,"times":1}`, 400, `{"fake_error":195110}`, "400/195110"},
		{`{"route":"fake.things","status":503,"code":7,"times":1}`, 503, `{"fake_error":7}`, "503/7"},
		{`{"route":"fake.things","status":429,"times":1}`, 429, `{"fake_error":0}`, "429/0"},
		{`{"route":"fake.things","delay_ms":1,"times":1}`, 201, "", ""}, // delayed, then served
	} {
		t.Run(tc.fault, func(t *testing.T) {
			if st, body := post("/_sandbox/faults", tc.fault); st != 200 {
				t.Fatalf("set fault: %d %s", st, body)
			}
			fake.mu.Lock()
			fake.fails = nil
			before := fake.things
			fake.mu.Unlock()
			st, body := thing()
			fake.mu.Lock()
			fails, after := fake.fails, fake.things
			fake.mu.Unlock()
			if st != tc.status || body != tc.body {
				t.Errorf("faulty call: %d %s, want %d %s", st, body, tc.status, tc.body)
			}
			var want []string
			if tc.fail != "" {
				want = []string{tc.fail}
			}
			if !slices.Equal(fails, want) {
				t.Errorf("Fail calls = %v, want %v", fails, want)
			}
			if served := after > before; served != (tc.status == 201) {
				t.Errorf("handler ran: %v, want %v", served, tc.status == 201)
			}
			if st, _ := thing(); st != http.StatusCreated {
				t.Errorf("after the fault: %d, want 201", st)
			}
		})
	}

	// Routes must exist; statuses, times and codes must make sense.
	for _, f := range []Fault{
		{Route: "fake.nope", Times: 1},
		{Route: "fake.things", Code: -1, Times: 1},
		{Route: "fake.things", Status: 200, Times: 1},
		{Route: "fake.things", Times: -1},
	} {
		if err := sb.SetFault(f); err == nil {
			t.Errorf("SetFault(%+v) = nil, want an error", f)
		}
	}

	// Reset reaches every part.
	if st, body := post("/_sandbox/reset", ""); st != 200 {
		t.Fatalf("reset: %d %s", st, body)
	}
	for _, p := range []*fakePart{fake, other} {
		p.mu.Lock()
		things, resets := p.things, p.resets
		p.mu.Unlock()
		if things != 0 || resets != 2 { // New resets once
			t.Errorf("%s after reset: %d things, %d resets; want 0 and 2", p.name, things, resets)
		}
	}
	if s := sb.Stats(); len(s.Calls) != 0 || fmt.Sprint(s.Parts["fake"]) != "map[things:0]" {
		t.Errorf("stats after reset = %+v", s)
	}
}

// topPart is a part whose stats stand at the top level, as Q2's do.
type topPart struct{ *fakePart }

func (topPart) StatsAtTopLevel() {}

// TestTopLevelStats: a TopLevelStats part's fields stand beside "calls"
// in the JSON, and its block under its name in Go.
func TestTopLevelStats(t *testing.T) {
	t.Parallel()
	top, block := topPart{newFake("top")}, newFake("block")
	sb := New(top, block)
	send := serve(t, sb)
	send("POST", "/top/v1/things", "{}")
	if st, body := send("GET", "/_sandbox/stats", ""); st != 200 || body != `{"block":{"things":0},"calls":{"top.things":1},"things":1}`+"\n" {
		t.Errorf("stats: %d %s, want the top part's \"things\" beside \"calls\"", st, body)
	}
	if s := sb.Stats(); fmt.Sprint(s.Parts["top"]) != "map[things:1]" {
		t.Errorf("Stats().Parts = %v, want the top part's block under its name", s.Parts)
	}
}

// routedPart is a part whose fault answers depend on the route, and which
// refuses code 7, as Q2 answers its token route apart and takes no code.
type routedPart struct{ *fakePart }

func (routedPart) CheckFault(route string, code int) error {
	if code == 7 {
		return fmt.Errorf("code %d: %s takes none", code, route)
	}
	return nil
}

func (p routedPart) FailRoute(w http.ResponseWriter, route string, status, code int) {
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s %d/%d", route, status, code)
}

// TestRouteFaults: a RouteFaults part checks each fault and answers it
// with its route, in place of Fail.
func TestRouteFaults(t *testing.T) {
	t.Parallel()
	p := routedPart{newFake("r")}
	send := serve(t, New(p))
	if st, body := send("POST", "/_sandbox/faults", `{"route":"r.things","code":7,"times":1}`); st != 400 || !strings.Contains(body, "code 7: r.things takes none") {
		t.Errorf("a refused code: %d %s, want 400 with the part's reason", st, body)
	}
	if st, body := send("POST", "/_sandbox/faults", `{"route":"r.things","status":503,"code":8,"times":1}`); st != 200 {
		t.Fatalf("set fault: %d %s", st, body)
	}
	if st, body := send("POST", "/r/v1/things", "{}"); st != 503 || body != "r.things 503/8" {
		t.Errorf("faulty call: %d %q, want FailRoute's 503 \"r.things 503/8\"", st, body)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.fails) != 0 {
		t.Errorf("Fail was called (%v); FailRoute replaces it", p.fails)
	}
}

// TestPartWiring checks that New refuses parts that would collide, naming
// the mistake, as http.ServeMux does for patterns.
func TestPartWiring(t *testing.T) {
	t.Parallel()
	undeclared := newFake("odd")
	undeclared.routes = []string{"odd.other"}
	for _, tc := range []struct {
		name  string
		parts []Part
		want  string
	}{
		{"empty name", []Part{newFake("")}, `part name ""`},
		{"reserved name", []Part{newFake("calls")}, `part name "calls"`},
		{"same name twice", []Part{newFake("a"), newFake("a")}, `part name "a"`},
		{"name of a top-level field", []Part{topPart{newFake("t")}, newFake("things")}, `part name "things"`},
		{"top-level field of a name", []Part{newFake("things"), topPart{newFake("t")}}, `stats field of part "t" "things"`},
		{"top-level stats not an object", []Part{topPart{&fakePart{name: "n", stats: 3}}}, `part "n" has its stats at the top level`},
		{"route taken", []Part{newFake("b"), &fakePart{name: "c", routes: []string{"b.things"}}}, `route "b.things"`},
		{"undeclared route", []Part{undeclared}, `registers route "odd.things"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if msg := fmt.Sprint(recover()); !strings.Contains(msg, tc.want) {
					t.Errorf("panic %q, want it to name %s", msg, tc.want)
				}
			}()
			New(tc.parts...)
		})
	}
}
