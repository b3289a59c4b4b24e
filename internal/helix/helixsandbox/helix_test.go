package helixsandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// answer is the test's own reading of Helix's envelope.
type answer struct {
	Data   map[string]any `json:"data"`
	Errors []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
	RequestID string          `json:"requestId"`
	Status    int             `json:"status"`
	Throttle  json.RawMessage `json:"throttle"`
}

func (r answer) codes() []int {
	var c []int
	for _, e := range r.Errors {
		c = append(c, e.Code)
	}
	return c
}

// harness is a sandbox behind a mux whose wrap counts calls per route and
// plays a fault (status, code) when one is set, the way internal/sandbox
// does.
type harness struct {
	*Sandbox
	srv *httptest.Server

	mu      sync.Mutex
	calls   map[string]int
	wrapped []string
	fault   map[string][2]int
}

func setup(t *testing.T, key, secret string) *harness {
	t.Helper()
	h := &harness{Sandbox: New(key, secret), calls: map[string]int{}, fault: map[string][2]int{}}
	mux := http.NewServeMux()
	h.Register(mux, func(route string, next http.HandlerFunc) http.HandlerFunc {
		h.wrapped = append(h.wrapped, route)
		return func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			h.calls[route]++
			f, faulty := h.fault[route]
			h.mu.Unlock()
			if faulty {
				h.Fail(w, f[0], f[1])
				return
			}
			next(w, r)
		}
	})
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

// post sends body to route with the default credentials.
func (h *harness) post(t *testing.T, route, body string) (int, answer) {
	t.Helper()
	return h.postAs(t, DefaultKey, DefaultSecret, route, body)
}

func (h *harness) postAs(t *testing.T, key, secret, route, body string) (int, answer) {
	t.Helper()
	// Errors, not Fatal: concurrent callers run outside the test goroutine.
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/account/"+route, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, answer{}
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.SetBasicAuth(key, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, answer{}
	}
	defer resp.Body.Close()
	var r answer
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Errorf("%s: reply is not JSON: %v", route, err)
		return resp.StatusCode, r
	}
	if r.RequestID == "" || r.Status != resp.StatusCode || r.Errors == nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s: envelope %+v (HTTP %d) lacks requestId, status or errors", route, r, resp.StatusCode)
	}
	return resp.StatusCode, r
}

func entitlements(t *testing.T, s *Sandbox) int {
	t.Helper()
	st, ok := s.Stats().(Stats)
	if !ok {
		t.Fatalf("Stats() = %T, want Stats", s.Stats())
	}
	b, _ := json.Marshal(st)
	if want := fmt.Sprintf(`{"entitlements":%d}`, st.Entitlements); string(b) != want {
		t.Errorf("stats JSON = %s, want %s", b, want)
	}
	return st.Entitlements
}

func TestPart(t *testing.T) {
	t.Parallel()
	h := setup(t, "", "")
	if h.Name() != "helix" {
		t.Errorf("Name = %q", h.Name())
	}
	want := []string{"helix.addEntitlement", "helix.editEntitlement", "helix.removeEntitlement"}
	if !reflect.DeepEqual(h.Routes(), want) || !reflect.DeepEqual(h.wrapped, want) {
		t.Errorf("Routes = %v, wrapped = %v, want %v", h.Routes(), h.wrapped, want)
	}
	h.post(t, "addEntitlement", `{"accountId":1,"requestingCustomerId":2,"targetCustomerId":3,"entitlement":"FULL"}`)
	h.post(t, "addEntitlement", `{}`)
	h.postAs(t, "", "", "removeEntitlement", `{}`)
	if want := map[string]int{"helix.addEntitlement": 2, "helix.removeEntitlement": 1}; !reflect.DeepEqual(h.calls, want) {
		t.Errorf("calls = %v, want %v", h.calls, want)
	}
	if n := entitlements(t, h.Sandbox); n != 1 {
		t.Errorf("entitlements = %d, want 1", n)
	}
	h.Reset()
	if n := entitlements(t, h.Sandbox); n != 0 {
		t.Errorf("after Reset, entitlements = %d", n)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	body := `{"accountId":1,"requestingCustomerId":2,"targetCustomerId":3,"entitlement":"FULL"}`
	for _, tc := range []struct {
		name, key, secret, as, asSecret string
		status                          int
	}{
		{"defaults", "", "", DefaultKey, DefaultSecret, 200},
		{"none", "", "", "", "", 401},
		{"wrong secret", "", "", DefaultKey, "nope", 401},
		{"wrong key", "", "", "other", DefaultSecret, 401},
		{"custom", "k1", "s1", "k1", "s1", 200},
		{"defaults refused when custom", "k1", "s1", DefaultKey, DefaultSecret, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, tc.key, tc.secret)
			status, r := h.postAs(t, tc.as, tc.asSecret, "addEntitlement", body)
			if status != tc.status {
				t.Fatalf("status = %d, want %d", status, tc.status)
			}
			if tc.status == 401 && (!slices.Equal(r.codes(), []int{50401}) || entitlements(t, h.Sandbox) != 0) {
				t.Errorf("401 reply = %+v, and entitlements must stay 0", r)
			}
		})
	}
}

// TestLifecycle walks one entitlement through add, edit and remove, with
// the codes each repeated or misplaced call meets.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	h := setup(t, "", "")
	body := func(level string) string {
		return `{"accountId":11,"requestingCustomerId":22,"targetCustomerId":33,"entitlement":"` + level + `"}`
	}
	for i, step := range []struct {
		route, body string
		status      int
		codes       []int
		level       string // the level held afterwards, "" for none
	}{
		{"editEntitlement", body("FULL"), 400, []int{195119}, ""},
		{"removeEntitlement", body(""), 400, []int{195119}, ""},
		{"addEntitlement", body("RDONLY"), 200, nil, "RDONLY"},
		{"addEntitlement", body("FULL"), 400, []int{195110}, "RDONLY"},
		{"editEntitlement", body("FULL"), 200, nil, "FULL"},
		{"editEntitlement", body("FULL"), 200, nil, "FULL"},
		{"removeEntitlement", `{"accountId":11,"requestingCustomerId":22,"targetCustomerId":33}`, 200, nil, ""},
		{"removeEntitlement", body("FULL"), 400, []int{195119}, ""},
		{"addEntitlement", body("CRONLY"), 200, nil, "CRONLY"},
	} {
		status, r := h.post(t, step.route, step.body)
		if status != step.status || !slices.Equal(r.codes(), step.codes) {
			t.Errorf("step %d %s: %d %v, want %d %v", i, step.route, status, r.codes(), step.status, step.codes)
		}
		if status == 200 && (r.Data["accountId"] != 11.0 || r.Data["targetCustomerId"] != 33.0) {
			t.Errorf("step %d: data = %v", i, r.Data)
		}
		level, ok := h.Entitlement(11, 33)
		if level != step.level || ok != (step.level != "") {
			t.Errorf("step %d: level %q, %v; want %q", i, level, ok, step.level)
		}
	}
	// Another target on the same account, and the same target on another
	// account, are other entitlements.
	h.post(t, "addEntitlement", `{"accountId":11,"requestingCustomerId":22,"targetCustomerId":34,"entitlement":"FULL"}`)
	h.post(t, "addEntitlement", `{"accountId":12,"requestingCustomerId":22,"targetCustomerId":33,"entitlement":"FULL"}`)
	if n := entitlements(t, h.Sandbox); n != 3 {
		t.Errorf("entitlements = %d, want 3", n)
	}
}

// TestValidation: the codes answered for bad bodies, all at once, and
// nothing stored.
func TestValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, route, body string
		codes             []int
	}{
		{"empty add", "addEntitlement", `{}`, []int{195105, 195106, 195107, 195108}},
		{"empty remove", "removeEntitlement", `{}`, []int{195105, 195106, 195107}},
		{"not json", "editEntitlement", `accountId=1`, []int{195105, 195106, 195107, 195108}},
		{"array", "removeEntitlement", `[1,2,3]`, []int{195105, 195106, 195107}},
		{"zero and negative", "addEntitlement", `{"accountId":0,"requestingCustomerId":-2,"targetCustomerId":3,"entitlement":"FULL"}`, []int{195105, 195106}},
		{"strings and fractions", "addEntitlement", `{"accountId":"1","requestingCustomerId":2.5,"targetCustomerId":3,"entitlement":"FULL"}`, []int{195105, 195106}},
		{"lower-case level", "addEntitlement", `{"accountId":1,"requestingCustomerId":2,"targetCustomerId":3,"entitlement":"full"}`, []int{195108}},
		{"level not a string", "editEntitlement", `{"accountId":1,"requestingCustomerId":2,"targetCustomerId":3,"entitlement":1}`, []int{195108}},
		{"target is requester", "addEntitlement", `{"accountId":1,"requestingCustomerId":2,"targetCustomerId":2,"entitlement":"FULL"}`, []int{195122}},
		{"target is requester, remove", "removeEntitlement", `{"accountId":1,"requestingCustomerId":2,"targetCustomerId":2}`, []int{195122}},
		{"missing target and bad level", "addEntitlement", `{"accountId":1,"requestingCustomerId":2,"entitlement":"X"}`, []int{195107, 195108}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, "", "")
			status, r := h.post(t, tc.route, tc.body)
			if status != 400 || !slices.Equal(r.codes(), tc.codes) {
				t.Errorf("= %d %v, want 400 %v", status, r.codes(), tc.codes)
			}
			for _, e := range r.Errors {
				if e.Message == "" {
					t.Errorf("code %d has no message", e.Code)
				}
			}
			if n := entitlements(t, h.Sandbox); n != 0 {
				t.Errorf("entitlements = %d, want 0", n)
			}
		})
	}
}

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	h := setup(t, "", "")
	seen := map[string]bool{}
	for range 5 {
		_, r := h.post(t, "removeEntitlement", `{}`)
		if len(r.RequestID) != 36 || seen[r.RequestID] {
			t.Errorf("requestId %q is not a fresh UUID", r.RequestID)
		}
		seen[r.RequestID] = true
	}
}

// TestFail: a fault's answer, through the wrap, in Helix's envelope.
func TestFail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		status, code   int
		wantStatus     int
		wantCodes      []int
		throttle, auth bool
	}{
		{"code only", 0, 195104, 400, []int{195104}, false, false},
		{"status and code", 404, 195109, 404, []int{195109}, false, false},
		{"unknown code", 0, 199999, 400, []int{199999}, false, false},
		{"503", 503, 0, 503, []int{50503}, false, false},
		{"500", 500, 0, 500, []int{50500}, false, false},
		{"429", 429, 0, 429, []int{50429}, true, false},
		{"50429 on 400", 0, 50429, 400, []int{50429}, true, false},
		{"401", 401, 0, 401, []int{50401}, false, false},
		{"403", 403, 0, 403, []int{50403}, false, false},
		{"418", 418, 0, 418, nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, "", "")
			h.fault["helix.addEntitlement"] = [2]int{tc.status, tc.code}
			status, r := h.post(t, "addEntitlement", `{"accountId":1,"requestingCustomerId":2,"targetCustomerId":3,"entitlement":"FULL"}`)
			if status != tc.wantStatus || !slices.Equal(r.codes(), tc.wantCodes) {
				t.Errorf("= %d %v, want %d %v", status, r.codes(), tc.wantStatus, tc.wantCodes)
			}
			if got := string(r.Throttle) == `{"retryAfterMs":100}`; got != tc.throttle {
				t.Errorf("throttle = %s", r.Throttle)
			}
			for _, e := range r.Errors {
				if e.Message == "" {
					t.Errorf("code %d has no message", e.Code)
				}
			}
			if n := entitlements(t, h.Sandbox); n != 0 || h.calls["helix.addEntitlement"] != 1 {
				t.Errorf("entitlements = %d, calls = %v: a fault must not reach the handler", n, h.calls)
			}
		})
	}
}

// TestConcurrentAdds: of many identical adds at once, exactly one creates
// the entitlement; the others meet 195110.
func TestConcurrentAdds(t *testing.T) {
	t.Parallel()
	h := setup(t, "", "")
	const n = 16
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			status, r := h.post(t, "addEntitlement", `{"accountId":5,"requestingCustomerId":6,"targetCustomerId":7,"entitlement":"RDDB"}`)
			if status != 200 && !slices.Equal(r.codes(), []int{195110}) {
				t.Errorf("= %d %v, want 200 or 195110", status, r.codes())
			}
			statuses <- status
		})
	}
	wg.Wait()
	close(statuses)
	ok := 0
	for s := range statuses {
		if s == 200 {
			ok++
		}
	}
	if ok != 1 || entitlements(t, h.Sandbox) != 1 {
		t.Errorf("%d adds succeeded, want 1", ok)
	}
}
