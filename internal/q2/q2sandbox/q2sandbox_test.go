package q2sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/sandbox"
)

type env struct {
	Data      json.RawMessage `json:"data"`
	Success   bool            `json:"success"`
	Errors    json.RawMessage `json:"errors"`
	RequestID string          `json:"requestid"`
	Status    int             `json:"status"`
	LogRefID  string          `json:"log_ref_id"`
}

// rig is Q2 as the service meets it: the part, served by the sandbox's
// frame.
type rig struct {
	*Sandbox                  // the part: its users, customers and tokens
	frame    *sandbox.Sandbox // counts the calls, plays the faults
}

// stats is the frame's stats with Q2's block read out, and the JSON of
// /_sandbox/stats as far as Q2 is concerned.
type stats struct {
	Calls     map[string]int `json:"calls"`
	Users     int            `json:"users"`
	Customers int            `json:"customers"`
}

func (r rig) stats() stats {
	st := r.frame.Stats()
	q := st.Parts[Name].(Stats)
	return stats{Calls: st.Calls, Users: q.Users, Customers: q.Customers}
}

func (r rig) SetFault(f sandbox.Fault) error { return r.frame.SetFault(f) }

func start(t *testing.T, cfg Config) (rig, *httptest.Server) {
	t.Helper()
	sb := rig{Sandbox: New(cfg)}
	sb.frame = sandbox.New(sb.Sandbox)
	srv := httptest.NewServer(sb.frame.Handler())
	t.Cleanup(srv.Close)
	return sb, srv
}

// call sends a request and decodes the reply; body "" sends none.
func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, env) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e env
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("%s %s: reply is not JSON: %v", method, path, err)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type = %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, e
}

func token(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	resp, err := srv.Client().PostForm(srv.URL+"/v2/oauth2/token", url.Values{
		"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}, "grant_type": {"client_credentials"}, "scope": {"a b"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.AccessToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token: %d %+v %v", resp.StatusCode, tok, err)
	}
	return tok.AccessToken
}

func enrollBody(logon string) string {
	return fmt.Sprintf(`{"LogonName":%q,"FirstName":"Ada","LastName":"L","SSN":"123456789","PrimaryCIF":"C1","UserInfo":"mark:%s","AccountLinkingValue":"777"}`, logon, logon)
}

func TestToken(t *testing.T) {
	t.Parallel()
	_, srv := start(t, Config{})
	for _, tc := range []struct {
		name   string
		form   url.Values
		basic  bool
		status int
		errStr string
	}{
		{"form", url.Values{"client_id": {"sandbox"}, "client_secret": {"sandbox-secret"}, "grant_type": {"client_credentials"}}, false, 200, ""},
		{"basic", url.Values{"grant_type": {"client_credentials"}}, true, 200, ""},
		{"wrong secret", url.Values{"client_id": {"sandbox"}, "client_secret": {"x"}, "grant_type": {"client_credentials"}}, false, 401, "invalid_client"},
		{"wrong grant", url.Values{"client_id": {"sandbox"}, "client_secret": {"sandbox-secret"}, "grant_type": {"password"}}, false, 400, "unsupported_grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/v1/oauth2/token", strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basic {
				req.SetBasicAuth(DefaultClientID, DefaultClientSecret)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.status || (tc.errStr != "" && body["error"] != tc.errStr) {
				t.Errorf("%d %v, want %d %s", resp.StatusCode, body, tc.status, tc.errStr)
			}
			if tc.status == 200 && (body["token_type"] != "Bearer" || body["expires_in"] != 3600.0) {
				t.Errorf("token reply = %v", body)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	sb, srv := start(t, Config{})
	tok := token(t, srv)
	if st, e := call(t, srv, "POST", "/v2/LookupUser", tok, `{"UserID":1}`); st != 200 || !e.Success || string(e.Data) != "[]" {
		t.Errorf("live token: %d %+v", st, e)
	}
	// Expire it without waiting: a wait long enough for a loaded machine
	// would slow every run.
	sb.tokMu.Lock()
	sb.tokens[tok] = time.Now().Add(-time.Second)
	sb.tokMu.Unlock()
	for name, tk := range map[string]string{"none": "", "unknown": "nope", "expired": tok} {
		st, e := call(t, srv, "POST", "/v2/LookupUser", tk, `{"UserID":1}`)
		if st != 401 || e.Success || e.Status != 401 || e.RequestID == "" {
			t.Errorf("%s token: %d %+v, want a 401 envelope", name, st, e)
		}
	}
}

func TestEnrollment(t *testing.T) {
	t.Parallel()
	sb, srv := start(t, Config{})
	tok := token(t, srv)
	st, e := call(t, srv, "POST", "/v2/Enrollment", tok, enrollBody("ada"))
	if st != 200 || !e.Success || string(e.Data) != "{}" || string(e.Errors) != "[]" || e.RequestID == "" || e.LogRefID == "" {
		t.Fatalf("enroll: %d %+v", st, e)
	}
	st, e = call(t, srv, "POST", "/v1/Enrollment", tok, enrollBody("ADA"))
	if st != 409 || e.Success || e.Status != 409 || !strings.Contains(string(e.Errors), "already exists") {
		t.Errorf("same logon: %d %+v, want a 409 envelope", st, e)
	}
	for _, body := range []string{`{"FirstName":"A","LastName":"B"}`, `{"LogonName":"x","FirstName":"A"}`, `{`, `[1]`} {
		if st, e := call(t, srv, "POST", "/v2/Enrollment", tok, body); st != 400 || e.Success || e.Status != 400 {
			t.Errorf("%s: %d %+v, want a 400 envelope", body, st, e)
		}
	}
	big := `{"LogonName":"` + strings.Repeat("x", maxBody) + `"}`
	if st, _ := call(t, srv, "POST", "/v2/Enrollment", tok, big); st != 413 {
		t.Errorf("big body: %d, want 413", st)
	}
	// Q2 marks a deleted user: its logon name stays taken.
	if st, _ := call(t, srv, "DELETE", "/v2/DeleteUser/1", tok, ""); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	if st, e := call(t, srv, "POST", "/v2/Enrollment", tok, enrollBody("Ada")); st != 409 || !strings.Contains(string(e.Errors), "already exists") {
		t.Errorf("re-enroll after delete: %d %+v, want a 409 envelope", st, e)
	}
	if s := sb.stats(); s.Users != 0 || s.Customers != 1 {
		t.Errorf("stats = %+v, want 0 live users, 1 live customer", s)
	}
}

func TestEnrollmentConcurrent(t *testing.T) {
	t.Parallel()
	sb, srv := start(t, Config{})
	tok := token(t, srv)
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			st, _ := call(t, srv, "POST", "/v2/Enrollment", tok, enrollBody("same"))
			mu.Lock()
			statuses[st]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if statuses[200] != 1 || statuses[409] != 49 {
		t.Errorf("statuses = %v, want one 200 and 49 409", statuses)
	}
	if s := sb.stats(); s.Users != 1 || s.Calls["Enrollment"] != 50 {
		t.Errorf("stats = %+v", s)
	}
}

func TestDeleteAndLookup(t *testing.T) {
	t.Parallel()
	_, srv := start(t, Config{})
	tok := token(t, srv)
	for _, l := range []string{"u1", "u2"} {
		call(t, srv, "POST", "/v2/Enrollment", tok, enrollBody(l))
	}
	lookup := func(path, body string) []map[string]any {
		t.Helper()
		st, e := call(t, srv, "POST", path, tok, body)
		var out []map[string]any
		if st != 200 || !e.Success || json.Unmarshal(e.Data, &out) != nil {
			t.Fatalf("%s %s: %d %+v", path, body, st, e)
		}
		return out
	}
	for body, want := range map[string]int{
		`{"LoginName":"U1"}`: 1, `{"SSN":"123456789"}`: 2, `{"UserID":2}`: 1, `{"PrimaryCIF":"C1"}`: 2,
		`{"CustomerID":1}`: 1, `{"LoginName":"u1","UserID":2}`: 0, `{"LoginName":"nobody"}`: 0,
	} {
		if got := lookup("/v2/LookupUser", body); len(got) != want {
			t.Errorf("LookupUser %s: %d users, want %d", body, len(got), want)
		}
	}
	u := lookup("/v2/LookupUser", `{"LoginName":"u1","IncludeAuthToken":true}`)[0]
	if u["UserInfo"] != "mark:u1" || u["AuthToken"] == nil || u["DeletedDate"] != nil {
		t.Errorf("user = %v", u)
	}
	for body, want := range map[string]int{`{"TaxID":"123456789"}`: 2, `{"LoginName":"u2"}`: 1, `{"CustomerID":2}`: 1, `{"PrimaryCIF":"none"}`: 0} {
		if got := lookup("/v2/LookupCustomer", body); len(got) != want {
			t.Errorf("LookupCustomer %s: %d, want %d", body, len(got), want)
		}
	}
	if st, _ := call(t, srv, "POST", "/v2/LookupUser", tok, `{}`); st != 400 {
		t.Errorf("LookupUser without criteria: %d, want 400", st)
	}

	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"DELETE", "/v2/DeleteUser/1", 200},
		{"DELETE", "/v2/DeleteUser/1", 404},
		{"DELETE", "/v2/DeleteUser/99", 404},
		{"DELETE", "/v2/DeleteUser/x", 400},
		{"DELETE", "/v2/DeleteCustomer/2", 200},
		{"DELETE", "/v2/DeleteCustomer/2", 404},
		{"DELETE", "/v2/DeleteUser/2", 404}, // deleted with its customer
		{"DELETE", "/v3/DeleteUser/2", 404},
	} {
		if st, e := call(t, srv, tc.method, tc.path, tok, ""); st != tc.status || e.Success != (st == 200) || e.Status != st {
			t.Errorf("%s %s: %d %+v, want %d", tc.method, tc.path, st, e, tc.status)
		}
	}
	// Deleted users and customers are still found, marked.
	for _, u := range lookup("/v2/LookupUser", `{"SSN":"123456789"}`) {
		if !deletedAfterCreated(u) {
			t.Errorf("user %v: want DeletedDate set, in Q2's format, not before CreateDate", u["UserID"])
		}
	}
	for _, c := range lookup("/v2/LookupCustomer", `{"TaxID":"123456789"}`) {
		if wantDeleted := c["CustomerID"] == 2.0; deletedAfterCreated(c) != wantDeleted || wantDeleted != (c["DeletedDate"] != nil) {
			t.Errorf("customer %v: DeletedDate %v, want it set only for customer 2", c["CustomerID"], c["DeletedDate"])
		}
	}
}

// deletedAfterCreated reports whether a looked-up record carries a
// DeletedDate in Q2's format, not before its CreateDate.
func deletedAfterCreated(rec map[string]any) bool {
	deleted, _ := rec["DeletedDate"].(string)
	created, _ := rec["CreateDate"].(string)
	d, errD := time.Parse(q2Time, deleted)
	c, errC := time.Parse(q2Time, created)
	return errD == nil && errC == nil && !d.Before(c)
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	_, srv := start(t, Config{})
	tok := token(t, srv)
	call(t, srv, "POST", "/v2/Enrollment", tok, enrollBody("acc"))
	st, e := call(t, srv, "POST", "/v2/AddExternalAccount", tok, `{"Account":{"ABA":"022222222","Account":"123456","AccountType":"Checking","LogonName":"acc","AllowDeposit":true}}`)
	if st != 200 || string(e.Data) != `[{"ABA":"022222222","Account":"123456","Success":true}]` {
		t.Errorf("AddExternalAccount: %d %s", st, e.Data)
	}
	st, e = call(t, srv, "POST", "/v2/AddExternalAccount", tok, `{"Account":[{"ABA":"1","Account":"1","LogonName":"acc"},{"ABA":"022222222","Account":"2","LogonName":"nobody"}]}`)
	if st != 200 || strings.Count(string(e.Data), `"Success":false`) != 2 {
		t.Errorf("bad accounts: %d %s", st, e.Data)
	}
	for _, q := range []string{"username=acc", "user_id=1", "customer_id=1"} {
		st, e := call(t, srv, "GET", "/v2/GetAccountList?"+q, tok, "")
		var list []map[string]any
		_ = json.Unmarshal(e.Data, &list)
		if st != 200 || len(list) != 2 || list[0]["AccountNumber"] != "777" || list[1]["IsExternal"] != true {
			t.Errorf("GetAccountList?%s: %d %s", q, st, e.Data)
		}
	}
	for q, want := range map[string]int{"username=nobody": 404, "user_id=9": 404, "": 400, "username=acc&user_id=1": 400} {
		if st, _ := call(t, srv, "GET", "/v2/GetAccountList?"+q, tok, ""); st != want {
			t.Errorf("GetAccountList?%s: %d, want %d", q, st, want)
		}
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	sb, srv := start(t, Config{})
	tok := token(t, srv)
	post := func(body string) int {
		resp, err := srv.Client().Post(srv.URL+"/_sandbox/faults", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, bad := range []string{`{`, `{"route":"Nope","times":1}`, `{"route":"DeleteUser","status":200,"times":1}`, `{"route":"DeleteUser","times":-1}`, `{"route":"DeleteUser","extra":1}`, `{"route":"DeleteUser","status":503,"code":5,"times":1}`} {
		if st := post(bad); st != 400 {
			t.Errorf("fault %s: %d, want 400", bad, st)
		}
	}
	if st := post(`{"route":"LookupUser","status":503,"times":2}`); st != 200 {
		t.Fatalf("set fault: %d", st)
	}
	for i, want := range []int{503, 503, 200} {
		if st, e := call(t, srv, "POST", "/v2/LookupUser", tok, `{"UserID":1}`); st != want || e.Status != want {
			t.Errorf("call %d: %d %+v, want %d", i, st, e, want)
		}
	}
	// Cleared by times 0.
	post(`{"route":"LookupUser","status":500,"times":5}`)
	post(`{"route":"LookupUser","times":0}`)
	if st, _ := call(t, srv, "POST", "/v2/LookupUser", tok, `{"UserID":1}`); st != 200 {
		t.Errorf("after clearing: %d", st)
	}
	// A delayed enrollment completes though its caller gave up.
	if err := sb.SetFault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 200}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v2/Enrollment", strings.NewReader(enrollBody("late")))
	req.Header.Set("Authorization", "Bearer "+tok)
	start := time.Now()
	if _, err := srv.Client().Do(req); err == nil {
		t.Fatal("the caller should have timed out")
	}
	for sb.stats().Users != 1 {
		if time.Since(start) > 2*time.Second {
			t.Fatal("the delayed enrollment never completed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Error("the delay was not applied")
	}
	// Faults on the token route answer an OAuth2 error.
	_ = sb.SetFault(sandbox.Fault{Route: "token", Status: 503, Times: 1})
	resp, _ := srv.Client().PostForm(srv.URL+"/v2/oauth2/token", url.Values{})
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), `"error"`) {
		t.Errorf("token fault: %d %s", resp.StatusCode, b)
	}
}

func TestStatsAndReset(t *testing.T) {
	t.Parallel()
	sb, srv := start(t, Config{})
	tok := token(t, srv)
	call(t, srv, "POST", "/v2/Enrollment", tok, enrollBody("s1"))
	call(t, srv, "POST", "/v2/Enrollment", "", enrollBody("s2")) // counted, though refused
	call(t, srv, "DELETE", "/v2/DeleteUser/5", tok, "")
	resp, err := srv.Client().Get(srv.URL + "/_sandbox/stats")
	if err != nil {
		t.Fatal(err)
	}
	var st stats
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	want := map[string]int{"token": 1, "Enrollment": 2, "DeleteUser": 1}
	if fmt.Sprint(st.Calls) != fmt.Sprint(want) || st.Users != 1 || st.Customers != 1 {
		t.Errorf("stats = %+v, want calls %v and 1 user, 1 customer", st, want)
	}
	_ = sb.SetFault(sandbox.Fault{Route: "LookupUser", Status: 500, Times: 1})
	resp, err = srv.Client().Post(srv.URL+"/_sandbox/reset", "application/json", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reset: %v %v", resp, err)
	}
	resp.Body.Close()
	if s := sb.stats(); len(s.Calls) != 0 || s.Users != 0 || s.Customers != 0 {
		t.Errorf("after reset: %+v", s)
	}
	if st, _ := call(t, srv, "POST", "/v2/LookupUser", tok, `{"UserID":1}`); st != 401 {
		t.Errorf("old token after reset: %d, want 401", st)
	}
	tok = token(t, srv)
	if st, _ := call(t, srv, "POST", "/v2/LookupUser", tok, `{"UserID":1}`); st != 200 {
		t.Errorf("fault survived reset: %d", st)
	}
}
