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

// fakePart is the smallest Part: POST /fake/{version}/things adds a thing.
// Its version segment is its own business, not Q2's v1/v2.
type fakePart struct {
	name   string
	routes []string // what Routes declares; Register wraps "<name>.things"

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

func TestPart(t *testing.T) {
	t.Parallel()
	fake := newFake("fake")
	sb := New(Config{}, fake)
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	thing := func() (int, string) { t.Helper(); return post("/fake/v9/things", "{}") }

	// Served and counted, whatever its version segment; Q2 still serves beside it.
	for range 2 {
		if st, body := thing(); st != http.StatusCreated {
			t.Fatalf("thing: %d %s", st, body)
		}
	}
	tok := token(t, srv)
	if st, _ := call(t, srv, "POST", "/v2/Enrollment", tok, enrollBody("p1")); st != 200 {
		t.Fatalf("Q2 beside a part: %d", st)
	}
	if st, body := post("/fake/v1/things", `{"x":"`+strings.Repeat("x", maxBody)+`"}`); st != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: %d %s, want 413 from the body limit", st, body)
	}

	// Stats: one calls map for every route, the part's block beside it.
	_, body := func() (int, string) {
		resp, err := srv.Client().Get(srv.URL + "/_sandbox/stats")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}()
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("stats %s: %v", body, err)
	}
	if st.Calls["fake.things"] != 3 || st.Calls["Enrollment"] != 1 || st.Users != 1 || st.Customers != 1 {
		t.Errorf("stats = %+v", st)
	}
	if raw, _ := st.Parts["fake"].(json.RawMessage); string(raw) != `{"things":2}` {
		t.Errorf("stats %s: want the block \"fake\": {\"things\":2}", body)
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

	// Codes belong to parts; routes must exist.
	for _, f := range []Fault{
		{Route: "LookupUser", Code: 1, Times: 1},
		{Route: "token", Status: 503, Code: 2, Times: 1},
		{Route: "fake.nope", Times: 1},
		{Route: "fake.things", Code: -1, Times: 1},
	} {
		if err := sb.SetFault(f); err == nil {
			t.Errorf("SetFault(%+v) = nil, want an error", f)
		}
	}

	// Reset reaches the part.
	if st, body := post("/_sandbox/reset", ""); st != 200 {
		t.Fatalf("reset: %d %s", st, body)
	}
	fake.mu.Lock()
	things, resets := fake.things, fake.resets
	fake.mu.Unlock()
	if things != 0 || resets != 2 { // New resets once
		t.Errorf("after reset: %d things, %d resets; want 0 and 2", things, resets)
	}
	if s := sb.Stats(); len(s.Calls) != 0 || fmt.Sprint(s.Parts["fake"]) != "map[things:0]" {
		t.Errorf("stats after reset = %+v", s)
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
		{"reserved name", []Part{newFake("users")}, `part name "users"`},
		{"same name twice", []Part{newFake("a"), newFake("a")}, `part name "a"`},
		{"route of Q2", []Part{&fakePart{name: "b", routes: []string{"token"}}}, `route "token"`},
		{"undeclared route", []Part{undeclared}, `registers route "odd.things"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if msg := fmt.Sprint(recover()); !strings.Contains(msg, tc.want) {
					t.Errorf("panic %q, want it to name %s", msg, tc.want)
				}
			}()
			New(Config{}, tc.parts...)
		})
	}
}
