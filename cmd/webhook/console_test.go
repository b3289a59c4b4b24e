package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/console"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/httpcall"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// pageClient talks to the console as a browser without script would: no
// redirect followed, and outside the recorder that checks the API's
// exchanges against docs/openapi.yaml (the console's pages are HTML for
// people, not the API).
var pageClient = &http.Client{Transport: http.DefaultTransport, Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// page sends a request with the session cookie (none when empty) and
// returns the status, the Location and the body.
func page(t *testing.T, method, u, cookie string, form url.Values) (int, string, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := pageClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// signIn exchanges apiToken for a session at base and returns its cookie.
func signIn(t *testing.T, base string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/console/signin", strings.NewReader(url.Values{"token": {apiToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := pageClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "console") && c.Value != "" {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie %+v: want HttpOnly and SameSite=Strict", c)
			}
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("sign-in answered %d with no session cookie", resp.StatusCode)
	return ""
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// The console on the ops listener of two replicas sharing one Redis: a
// session opened on one is known to the other, and signing out on one
// signs out on both; the public listener has no console; outside demo
// mode the session cookie is __Host- and Secure.
func TestConsoleSessionsAcrossReplicas(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	_, sb := startSandbox(t, q2sandbox.Config{})
	env := q2Env(sb, redis.URL())
	env["API_TOKENS"] = apiToken
	env["OPS_ADDR"] = "127.0.0.1:0"
	a, b := startService(t, env), startService(t, env)

	if code, _, _ := page(t, http.MethodGet, a.url+"/console/", "", nil); code != 404 {
		t.Errorf("the public listener's /console/: %d, want 404 (the console is on OPS_ADDR)", code)
	}
	if code, loc, _ := page(t, http.MethodGet, a.opsURL+"/console/", "", nil); code != 303 || !strings.HasPrefix(loc, "/console/signin") {
		t.Fatalf("signed out: %d to %q, want 303 to the sign-in page", code, loc)
	}
	cookie := signIn(t, a.opsURL)
	if !strings.HasPrefix(cookie, "__Host-console=") {
		t.Errorf("outside demo mode the cookie is %q, want __Host-console (Secure, whole site)", cookie)
	}
	code, _, body := page(t, http.MethodGet, b.opsURL+"/console/", cookie, nil)
	if code != 200 || !strings.Contains(body, "Overview") {
		t.Fatalf("the other replica with the session: %d, want the overview", code)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the overview has no sign-out form with its token")
	}
	if code, _, _ := page(t, http.MethodPost, b.opsURL+"/console/signout", cookie, url.Values{"csrf": {m[1]}}); code != 303 {
		t.Fatalf("sign out: %d, want 303", code)
	}
	if code, _, _ := page(t, http.MethodGet, a.opsURL+"/console/", cookie, nil); code != 303 {
		t.Errorf("after signing out on one replica, the other answers %d, want 303 to sign in", code)
	}
}

// Without API_TOKENS there is no console, and its 404 names the setting.
func TestConsoleOffWithoutTokens(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{"WEBHOOK_AUTH": "none"})
	code, _, body := page(t, http.MethodGet, svc.url+"/console/", "", nil)
	if code != 404 || !strings.Contains(body, "set API_TOKENS") {
		t.Errorf("GET /console/ without API_TOKENS: %d %s, want 404 naming API_TOKENS", code, body)
	}
}

// Each outside system's state, as this replica's calls found it: a
// refusal of the credentials, no answer, an answer; since when.
func TestSystemsFromCalls(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	s := newSystems(func() time.Time { return now })
	step := func(a httpcall.Attempt) { s.observe(a); now = now.Add(time.Minute) }
	step(httpcall.Attempt{System: "q2", Status: 200})
	step(httpcall.Attempt{System: "q2", Status: 409}) // a business answer: the system answers
	step(httpcall.Attempt{System: "helix", Status: 401, Err: errors.New("unauthorized")})
	step(httpcall.Attempt{System: "qbd_connect", Err: context.DeadlineExceeded})
	step(httpcall.Attempt{System: "qbd_connect", Status: 503})
	step(httpcall.Attempt{System: "appdirect", Err: context.Canceled}) // the caller left: nothing said
	got := s.all()
	start := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	want := map[string]systemState{
		"q2":          {state: console.SystemOK, since: start},
		"helix":       {state: console.SystemRefused, code: "HTTP 401", since: start.Add(2 * time.Minute)},
		"qbd_connect": {state: console.SystemUnreachable, code: "HTTP 503", since: start.Add(3 * time.Minute)},
	}
	if len(got) != len(want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %+v, want %+v", name, got[name], w)
		}
	}
}

// The console shows a delivery record as the read API answers it: a
// record written before attempt histories has its kind's status (the read
// API's fallback), on the delivery's page and in lists alike; while a
// copy is processing, nothing is answered yet.
func TestConsoleDeliveryOfRecords(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name           string
		d              inbox.DeliverySummary
		status         int
		reason         string
		webhook, token string
	}{
		{"without history", inbox.DeliverySummary{Key: "id:legacy", State: "done", Kind: "final", Code: "SUCCESS"}, 200, "", "legacy", ""},
		{"without history, released", inbox.DeliverySummary{Key: "appdirect:tok", State: "released", Kind: "transient", Code: "TRANSPORT_ERROR"}, 503, "", "", "tok"},
		{"with history", inbox.DeliverySummary{Key: "id:m", State: "done", Kind: "final", Code: "FORBIDDEN",
			History: []inbox.Attempt{{At: at, Status: 200, Code: "FORBIDDEN", Kind: events.Final, Reason: "order: cancelled"}}}, 200, "order: cancelled", "m", ""},
		{"processing", inbox.DeliverySummary{Key: "id:p", State: "processing", Kind: "transient", Code: "TRANSPORT_ERROR",
			History: []inbox.Attempt{{At: at, Status: 503, Code: "TRANSPORT_ERROR", Kind: events.Transient, Reason: "q2.provision: HTTP 503"}}}, 0, "", "p", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, row := deliveryOf(tc.d), rowOf(tc.d)
			if d.Status != tc.status || d.WebhookID != tc.webhook || d.EventToken != tc.token {
				t.Errorf("delivery: status %d, webhook-id %q, token %q; want %d, %q, %q", d.Status, d.WebhookID, d.EventToken, tc.status, tc.webhook, tc.token)
			}
			if row.Status != tc.status || row.Reason != tc.reason {
				t.Errorf("row: status %d, reason %q; want %d, %q", row.Status, row.Reason, tc.status, tc.reason)
			}
		})
	}
}
