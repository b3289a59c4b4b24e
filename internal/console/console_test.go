package console

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/events"
)

const (
	tokenA = "read-api-token-0123456789abcdef"
	tokenB = "another-token-fedcba9876543210"
)

// rig is a console over a fake, with its clock and its log.
type rig struct {
	c     *Console
	f     *fake
	clock *clock
	logs  *observer.ObservedLogs
}

func newRig(t *testing.T, f *fake, change ...func(*Config)) *rig {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	clk := newClock()
	cfg := Config{Reader: f, Actions: f, Tokens: []string{tokenA, tokenB}, Logger: zap.New(core), Now: clk.Now,
		TraceURL: "https://tempo.example/trace/{trace_id}"}
	for _, ch := range change {
		ch(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &rig{c: c, f: f, clock: clk, logs: logs}
}

func (r *rig) do(t *testing.T, req *http.Request, ck *http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	if ck != nil {
		req.AddCookie(ck)
	}
	w := httptest.NewRecorder()
	r.c.ServeHTTP(w, req)
	return w
}

func (r *rig) get(t *testing.T, path string, ck *http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	return r.do(t, httptest.NewRequest(http.MethodGet, path, nil), ck)
}

// post sends a form as a browser on the console's own page would
// (Sec-Fetch-Site: same-origin), with extra headers set after.
func (r *rig) post(t *testing.T, path string, form url.Values, ck *http.Cookie, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	return r.do(t, req, ck)
}

// signIn signs in with tok and returns the session cookie and the form
// token of the session.
func (r *rig) signIn(t *testing.T, tok string) (*http.Cookie, string) {
	t.Helper()
	w := r.post(t, "/console/signin", url.Values{"token": {tok}, "next": {"/console/"}}, nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: status %d, want 303; body:\n%s", w.Code, w.Body)
	}
	ck := sessionCookie(t, w)
	page := r.get(t, "/console/", ck)
	if page.Code != http.StatusOK {
		t.Fatalf("overview after sign-in: status %d", page.Code)
	}
	return ck, csrfOf(t, page.Body.String())
}

func sessionCookie(t *testing.T, w *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, ck := range w.Result().Cookies() {
		if ck.Name == "__Host-console" || ck.Name == "console" {
			return ck
		}
	}
	t.Fatalf("no session cookie in %v", w.Result().Header["Set-Cookie"])
	return nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in the page")
	}
	return m[1]
}

func TestNewRefusesABadConfig(t *testing.T) {
	t.Parallel()
	f := newFake()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no reader", Config{Tokens: []string{tokenA}}, "Config.Reader"},
		{"no tokens", Config{Reader: f}, "API_TOKENS"},
		{"an empty token", Config{Reader: f, Tokens: []string{tokenA, ""}}, "empty token"},
		{"trace URL without the id", Config{Reader: f, Tokens: []string{tokenA}, TraceURL: "https://tempo.example/trace/"}, "CONSOLE_TRACE_URL"},
		{"trace URL not http", Config{Reader: f, Tokens: []string{tokenA}, TraceURL: "javascript:alert({trace_id})"}, "CONSOLE_TRACE_URL"},
		{"trace URL relative", Config{Reader: f, Tokens: []string{tokenA}, TraceURL: "/trace/{trace_id}"}, "CONSOLE_TRACE_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestSignIn(t *testing.T) {
	t.Parallel()
	r := newRig(t, fullFake())

	// Signed out, a page sends the browser to sign in and back.
	w := r.get(t, "/console/subscriptions/"+subStuck+"?refresh=30", nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/signin?next=%2Fconsole%2Fsubscriptions%2F"+subStuck+"%3Frefresh%3D30" {
		t.Fatalf("signed out: %d to %q, want 303 to the sign-in page with next", w.Code, w.Header().Get("Location"))
	}
	page := r.get(t, w.Header().Get("Location"), nil)
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), `name="next" value="/console/subscriptions/`+subStuck+`?refresh=30"`) {
		t.Fatalf("sign-in page: %d, without the next field:\n%s", page.Code, page.Body)
	}

	// A wrong token is refused, with no cookie.
	for _, tok := range []string{"", "nope", tokenA + "x", tokenA[:len(tokenA)-1], strings.ToUpper(tokenA)} {
		w = r.post(t, "/console/signin", url.Values{"token": {tok}}, nil)
		if w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
			t.Errorf("token %q: %d with cookies %v, want 401 and none", tok, w.Code, w.Result().Cookies())
		}
		if !strings.Contains(w.Body.String(), "API_TOKENS") {
			t.Errorf("token %q: the refusal does not name API_TOKENS", tok)
		}
	}

	// The right one gives a session cookie and goes back to next.
	w = r.post(t, "/console/signin", url.Values{"token": {tokenB}, "next": {"/console/unsettled"}}, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/unsettled" {
		t.Fatalf("sign-in: %d to %q, want 303 to /console/unsettled", w.Code, w.Header().Get("Location"))
	}
	ck := sessionCookie(t, w)
	if ck.Name != "__Host-console" || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
		t.Errorf("cookie %+v: want __Host-console, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain", ck)
	}
	if ck.MaxAge <= 0 || ck.MaxAge > int(DefaultMaxAge/time.Second) {
		t.Errorf("cookie Max-Age %d, want 1..%d", ck.MaxAge, int(DefaultMaxAge/time.Second))
	}
	if len(ck.Value) < 22 { // 128 bits in base64
		t.Errorf("cookie value %q is shorter than 128 bits", ck.Value)
	}
	if strings.Contains(ck.Value, tokenB) {
		t.Error("the cookie carries the token")
	}
	page = r.get(t, "/console/unsettled", ck)
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), TokenLabel(tokenB)) {
		t.Fatalf("unsettled after sign-in: %d, without the operator's label", page.Code)
	}
	if strings.Contains(page.Body.String(), tokenB) {
		t.Error("the page shows the token")
	}

	// Each sign-in is a new session id.
	ck2 := sessionCookie(t, r.post(t, "/console/signin", url.Values{"token": {tokenB}}, nil))
	if ck2.Value == ck.Value {
		t.Error("two sign-ins gave the same session id")
	}
	for _, e := range r.logs.All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, tokenA) || strings.Contains(f.String, tokenB) {
				t.Errorf("log %q carries a token", e.Message)
			}
		}
	}
	if n := r.logs.FilterMessage("console: signed in").FilterField(zap.String("operator", TokenLabel(tokenB))).Len(); n != 2 {
		t.Errorf("%d sign-ins logged with the operator's label, want 2", n)
	}
}

func TestSignInIsForTheConsoleOnly(t *testing.T) {
	t.Parallel()
	for next, want := range map[string]string{
		"/console/deliveries/id:1?x=1": "/console/deliveries/id:1?x=1",
		"":                             "/console/",
		"https://evil.example/":        "/console/",
		"//evil.example/console/":      "/console/",
		"/console//evil.example":       "/console/",
		`/console/\evil`:               "/console/",
		"/metrics":                     "/console/",
		"/console/signin?next=/x":      "/console/",
		"javascript:alert(1)":          "/console/",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestDemoCookie(t *testing.T) {
	t.Parallel()
	r := newRig(t, newFake(), func(c *Config) { c.Demo = true })
	ck := sessionCookie(t, r.post(t, "/console/signin", url.Values{"token": {tokenA}}, nil))
	if ck.Name != "console" || ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" {
		t.Errorf("demo cookie %+v: want console, not Secure, HttpOnly, SameSite=Strict, Path=/console/", ck)
	}
}

func TestSessionsExpire(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		steps []time.Duration // clock moves, each followed by a request
		live  bool            // the session is alive after the last
	}{
		{"used within the idle timeout", []time.Duration{29 * time.Minute}, true},
		{"idle too long", []time.Duration{30 * time.Minute}, false},
		{"kept alive by use", []time.Duration{20 * time.Minute, 20 * time.Minute, 20 * time.Minute}, true},
		{"past the absolute timeout though in use", repeat(25*time.Minute, 29), false},
	} {
		for store, sessions := range map[string]func(*clock) Sessions{
			"memory": func(c *clock) Sessions { return NewMemorySessions(0, c.Now) },
			// A store that keeps sessions past their ttl: the console's own
			// check still ends them.
			"keeps everything": func(*clock) Sessions { return keepAll{NewMemorySessions(0, func() time.Time { return t0 })} },
		} {
			t.Run(tc.name+"/"+store, func(t *testing.T) {
				t.Parallel()
				r := newRig(t, fullFake())
				r.c.cfg.Sessions = sessions(r.clock)
				sessionsExpire(t, r, tc.steps, tc.live)
			})
		}
	}
}

// keepAll is a session store whose entries never expire.
type keepAll struct{ *MemorySessions }

func (k keepAll) Put(ctx context.Context, key string, s Session, _ time.Duration) error {
	return k.MemorySessions.Put(ctx, key, s, 1000*time.Hour)
}

func (k keepAll) Refresh(ctx context.Context, key string, s Session, _ time.Duration) error {
	return k.MemorySessions.Refresh(ctx, key, s, 1000*time.Hour)
}

func sessionsExpire(t *testing.T, r *rig, steps []time.Duration, live bool) {
	t.Helper()
	ck, _ := r.signIn(t, tokenA)
	var w *httptest.ResponseRecorder
	for _, d := range steps {
		r.clock.Advance(d)
		w = r.get(t, "/console/failures", ck)
	}
	if live {
		if w.Code != http.StatusOK {
			t.Fatalf("status %d, want 200", w.Code)
		}
		return
	}
	if w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Location"), "expired=1") {
		t.Fatalf("expired: %d to %q, want 303 to sign-in with expired=1", w.Code, w.Header().Get("Location"))
	}
	if c := sessionCookie(t, w); c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("the cookie is not cleared: %+v", c)
	}
	page := r.get(t, w.Header().Get("Location"), nil)
	if !strings.Contains(page.Body.String(), "Your session expired") {
		t.Error("the sign-in page does not say the session expired")
	}
	// The session is gone on the server, not just in the browser.
	r.clock.Advance(-24 * time.Hour)
	if w := r.get(t, "/console/failures", ck); w.Code != http.StatusSeeOther {
		t.Errorf("the expired session still works on the server: %d", w.Code)
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestSignOut(t *testing.T) {
	t.Parallel()
	r := newRig(t, fullFake())
	ck, csrf := r.signIn(t, tokenA)
	if w := r.post(t, "/console/signout", url.Values{}, ck); w.Code != http.StatusForbidden {
		t.Fatalf("sign-out without the form token: %d, want 403", w.Code)
	}
	w := r.post(t, "/console/signout", url.Values{"csrf": {csrf}}, ck)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/signin" {
		t.Fatalf("sign-out: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if c := sessionCookie(t, w); c.MaxAge >= 0 {
		t.Errorf("sign-out does not clear the cookie: %+v", c)
	}
	if w := r.get(t, "/console/", ck); w.Code != http.StatusSeeOther {
		t.Errorf("the cookie still works after sign-out: %d", w.Code)
	}
}

// An action still running when its session signs out (settle now takes up
// to PROCESS_TIMEOUT) writes its flash message when it ends: that write
// must not bring the signed-out session back.
func TestSignOutDuringAnActionStaysSignedOut(t *testing.T) {
	t.Parallel()
	f := fullFake()
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.settleHook = func() { once.Do(func() { close(started); <-release }) }
	r := newRig(t, f)
	ck, csrf := r.signIn(t, tokenA)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.post(t, "/console/subscriptions/"+subStuck+"/settle", url.Values{"csrf": {csrf}}, ck)
	}()
	<-started
	if w := r.post(t, "/console/signout", url.Values{"csrf": {csrf}}, ck); w.Code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", w.Code)
	}
	close(release)
	<-done
	if w := r.get(t, "/console/", ck); w.Code != http.StatusSeeOther {
		t.Errorf("the session signed out during an action works again: %d", w.Code)
	}
}

func TestActionsNeedTheFormTokenAndTheSameOrigin(t *testing.T) {
	t.Parallel()
	path := "/console/subscriptions/" + subStuck + "/settle"
	for _, tc := range []struct {
		name    string
		form    func(csrf string) url.Values
		headers []string
		session bool
		want    int
	}{
		{"no form token", func(string) url.Values { return url.Values{} }, nil, true, http.StatusForbidden},
		{"a wrong form token", func(string) url.Values { return url.Values{"csrf": {"x" + strings.Repeat("A", 42)}} }, nil, true, http.StatusForbidden},
		{"another session's form token", nil, nil, true, http.StatusForbidden},
		{"cross-site", func(c string) url.Values { return url.Values{"csrf": {c}} }, []string{"Sec-Fetch-Site", "cross-site"}, true, http.StatusForbidden},
		{"same-site, other origin", func(c string) url.Values { return url.Values{"csrf": {c}} }, []string{"Sec-Fetch-Site", "same-site"}, true, http.StatusForbidden},
		{"an Origin of another host", func(c string) url.Values { return url.Values{"csrf": {c}} }, []string{"Sec-Fetch-Site", "", "Origin", "https://evil.example"}, true, http.StatusForbidden},
		{"no session", func(c string) url.Values { return url.Values{"csrf": {c}} }, nil, false, http.StatusSeeOther},
		{"all good", func(c string) url.Values { return url.Values{"csrf": {c}} }, nil, true, http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, fullFake())
			ck, csrf := r.signIn(t, tokenA)
			form := url.Values{}
			if tc.form != nil {
				form = tc.form(csrf)
			} else {
				_, other := r.signIn(t, tokenB)
				form.Set("csrf", other)
			}
			if !tc.session {
				ck = nil
			}
			w := r.post(t, path, form, ck, tc.headers...)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d; body:\n%s", w.Code, tc.want, w.Body)
			}
			calls := r.f.settleCalls()
			if ok := tc.name == "all good"; ok != (len(calls) == 1) {
				t.Fatalf("SettleNow called %d times", len(calls))
			}
			if tc.want == http.StatusForbidden {
				checkHeaders(t, w)
				if !strings.Contains(w.Body.String(), "Refused") {
					t.Error("the refusal page does not say refused")
				}
			}
		})
	}
}

func TestSignInRefusesCrossOrigin(t *testing.T) {
	t.Parallel()
	r := newRig(t, newFake())
	w := r.post(t, "/console/signin", url.Values{"token": {tokenA}}, nil, "Sec-Fetch-Site", "cross-site")
	if w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
		t.Fatalf("cross-site sign-in: %d with cookies %v, want 403 and none", w.Code, w.Result().Cookies())
	}
}

// checkHeaders wants the security headers on an answer.
func checkHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := w.Header().Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}

// inline finds what a strict CSP would block or what loads from elsewhere:
// script elements, style elements or attributes, event handler attributes,
// files loaded from another origin (links to a tracing UI are fine: they
// load nothing), and data: or javascript: URLs.
var inline = regexp.MustCompile(`(?i)<script|<style|\sstyle=|\son[a-z]+=|(src|action)="(https?:)?//[^"]*"|<link[^>]+href="(https?:)?//|(src|href)="(data|javascript):`)

// pagePaths are every page of the full fake.
var pagePaths = []string{
	"/console/",
	"/console/subscriptions/" + subOrdered,
	"/console/subscriptions/" + subStuck,
	"/console/subscriptions/" + subCancel,
	"/console/deliveries/" + url.PathEscape(keyOrdered),
	"/console/deliveries/" + url.PathEscape(keyStuck),
	"/console/deliveries/" + url.PathEscape(keyCancel),
	"/console/deliveries/" + url.PathEscape(keyAppToken),
	"/console/search",
	"/console/search?q=Q2U-&all=1",
	"/console/search?q=" + subOrdered + "&all=1",
	"/console/failures",
	"/console/failures?since=1h",
	"/console/failures?since=7d",
	"/console/unsettled",
	"/console/?refresh=30",
}

func TestEveryPageRenders(t *testing.T) {
	t.Parallel()
	full := []struct {
		path string
		want []string
	}{
		{"/console/", []string{"An outside system refuses the service", "QBD Connect", "unreachable", "Helix", "refused",
			"2 <span>not settled</span>", subCancel, "TRANSPORT_ERROR", "512", "Recent failures", keyStuck}},
		{"/console/subscriptions/" + subOrdered, []string{"Settled: active everywhere", "Attempt 1", "Attempt 4",
			"q2.enroll: HTTP 503", "q2-req-a3", "https://tempo.example/trace/" + traceOrdered, "880112"}},
		{"/console/subscriptions/" + subStuck, []string{"Not settled: the intent is active, Helix is pending", "Settle now",
			"HELIX_API_KEY", "What to do:", "helix.addEntitlement: HTTP 401", "not yet", "QBD-C-1029"}},
		{"/console/subscriptions/" + subCancel, []string{"cancelled", "unknown", "The settler retries by itself", "2 older attempts not kept", "no answer: timeout"}},
		{"/console/deliveries/" + url.PathEscape(keyOrdered), []string{"SUBSCRIPTION_ORDER", "msg_2Nf8kQ1", "4 attempts", "Final:", "Attempt 4", "TRANSPORT_ERROR"}},
		{"/console/deliveries/" + url.PathEscape(keyStuck), []string{"UNAUTHORIZED", "Fix the credentials", "Not final", "hx-19f"}},
		{"/console/deliveries/" + url.PathEscape(keyAppToken), []string{appToken, "AppDirect", "fetchEvent"}},
		{"/console/search?q=Q2U-&all=1", []string{"Nothing found"}},
		{"/console/search?q=" + subOrdered + "&all=1", []string{"subscription id", subOrdered}},
		{"/console/failures", []string{keyStuck, keyCancel, "last 24 hours"}},
		{"/console/unsettled", []string{subStuck, subCancel, "Settle now", "20 min"}},
	}
	empty := []struct {
		path string
		want []string
	}{
		{"/console/", []string{"All clear", "No delivery in the last 24 hours", "No failed delivery", "0 <span>not settled</span>", "No outside system is known yet"}},
		{"/console/failures", []string{"No failed delivery"}},
		{"/console/unsettled", []string{"Every subscription is settled"}},
		{"/console/search", []string{"What you can search by"}},
		{"/console/search?q=nothing", []string{"Nothing found"}},
		{"/console/subscriptions/s-empty", []string{"No step", "No delivery kept"}},
		{"/console/deliveries/id:empty", []string{"No attempt recorded yet"}},
	}
	run := func(t *testing.T, r *rig, path string, want []string) {
		t.Helper()
		ck, _ := r.signIn(t, tokenA)
		w := r.get(t, path, ck)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d; body:\n%s", path, w.Code, w.Body)
		}
		checkHeaders(t, w)
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		body := w.Body.String()
		for _, s := range want {
			if !strings.Contains(body, s) {
				t.Errorf("%s does not say %q", path, s)
			}
		}
		if m := inline.FindString(body); m != "" {
			t.Errorf("%s has %q: inline code or another origin's file", path, m)
		}
		if strings.Contains(body, "ZgotmplZ") {
			t.Errorf("%s has a value html/template refused", path)
		}
	}
	t.Run("full", func(t *testing.T) {
		t.Parallel()
		r := newRig(t, fullFake())
		for _, p := range full {
			run(t, r, p.path, p.want)
		}
	})
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		f := newFake()
		f.subs["s-empty"] = Subscription{ID: "s-empty"}
		f.deliveries["id:empty"] = Delivery{Key: "id:empty"}
		r := newRig(t, f)
		for _, p := range empty {
			run(t, r, p.path, p.want)
		}
	})
}

func TestNoPersonalDataOnAnyPage(t *testing.T) {
	t.Parallel()
	r := newRig(t, fullFake())
	ck, csrf := r.signIn(t, tokenA)
	pages := map[string]string{}
	for _, p := range pagePaths {
		w := r.get(t, p, ck)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: status %d", p, w.Code)
		}
		pages[p] = w.Body.String()
	}
	// The page after an action, with its result.
	r.f.settleRes = &SettleResult{Waiting: "helix: UNAUTHORIZED for " + people[1].Email}
	r.post(t, "/console/subscriptions/"+subStuck+"/settle", url.Values{"csrf": {csrf}}, ck)
	pages["after settle now"] = r.get(t, "/console/subscriptions/"+subStuck, ck).Body.String()
	// A search for an email address is not run, and not shown back.
	pages["search by email"] = r.get(t, "/console/search?q="+url.QueryEscape(people[0].Email), ck).Body.String()
	pages["search by mailto"] = r.get(t, "/console/search?q="+url.QueryEscape("mailto:"+people[0].Email), ck).Body.String()

	if !strings.Contains(pages["after settle now"], "[email removed]") {
		t.Error("the settle result's email address was not masked")
	}
	for _, p := range []string{"search by email", "search by mailto"} {
		if !strings.Contains(pages[p], "ids only") {
			t.Errorf("%s: the page does not say the console searches by ids only", p)
		}
	}
	for _, q := range r.f.searches {
		if strings.Contains(q, "@") {
			t.Errorf("the console searched the records for %q", q)
		}
	}
	for path, body := range pages {
		for _, p := range people {
			for _, s := range []string{p.Name, p.Email, p.Company, p.Address, p.Phone} {
				if strings.Contains(body, s) || strings.Contains(body, url.QueryEscape(s)) {
					t.Errorf("%s shows personal data %q", path, s)
				}
			}
		}
	}
}

func TestSettleNow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		sub       string
		res       *SettleResult
		err       error
		wantCalls int
		wantFlash string
	}{
		{"settles", subStuck, nil, nil, 1, "Settled: every step of " + subStuck},
		{"still waiting", subStuck, &SettleResult{Waiting: "helix: UNAUTHORIZED", Next: t0.Add(time.Hour)}, nil, 1,
			"Tried, still not settled: helix: UNAUTHORIZED. The settler tries again at 2026-12-05 15:00:00 UTC."},
		{"busy", subStuck, nil, events.ErrBusy, 1, "is being worked on"},
		{"settled meanwhile", subStuck, nil, ErrSettled, 1, "is settled already"},
		{"store down", subStuck, nil, errors.New("redis: connection refused"), 1, "Settle now failed"},
		{"a settled subscription is not touched", subOrdered, nil, nil, 0, "is settled already"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, fullFake())
			r.f.settleRes, r.f.settleErr = tc.res, tc.err
			ck, csrf := r.signIn(t, tokenB)
			reads := r.f.subscriptionReads()
			w := r.post(t, "/console/subscriptions/"+tc.sub+"/settle", url.Values{"csrf": {csrf}}, ck)
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/console/subscriptions/"+tc.sub {
				t.Fatalf("settle now: %d to %q, want 303 to the subscription", w.Code, w.Header().Get("Location"))
			}
			if n := r.f.subscriptionReads() - reads; n != 0 {
				t.Errorf("settle now read the subscription's page %d times; SettleNow reads what it needs and answers where it stands", n)
			}
			if got := len(r.f.settleCalls()); got != tc.wantCalls {
				t.Fatalf("SettleNow called %d times, want %d", got, tc.wantCalls)
			}
			page := r.get(t, "/console/subscriptions/"+tc.sub, ck).Body.String()
			if !strings.Contains(page, tc.wantFlash) {
				t.Errorf("the page after does not say %q", tc.wantFlash)
			}
			if again := r.get(t, "/console/subscriptions/"+tc.sub, ck).Body.String(); strings.Contains(again, tc.wantFlash) {
				t.Error("the result is shown twice")
			}
			logged := r.logs.FilterField(zap.String("action", "settle_now")).FilterField(zap.String("operator", TokenLabel(tokenB))).
				FilterField(zap.String("subscription", tc.sub))
			if logged.Len() != 1 {
				t.Errorf("%d log lines of the action with who did it, want 1", logged.Len())
			}
		})
	}
}

// Settle now on a subscription there is none of answers the page the
// subscription's own address would: 404, naming it.
func TestSettleNowOfNone(t *testing.T) {
	t.Parallel()
	r := newRig(t, fullFake())
	ck, csrf := r.signIn(t, tokenA)
	w := r.post(t, "/console/subscriptions/nope/settle", url.Values{"csrf": {csrf}}, ck)
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "No subscription &#34;nope&#34;") {
		t.Errorf("settle now of no subscription: %d, want 404 naming it; body:\n%s", w.Code, w.Body)
	}
}

func TestSettleNowIsOnlyOfferedWhenUnsettled(t *testing.T) {
	t.Parallel()
	r := newRig(t, fullFake())
	ck, _ := r.signIn(t, tokenA)
	for sub, want := range map[string]bool{subStuck: true, subCancel: true, subOrdered: false} {
		page := r.get(t, "/console/subscriptions/"+sub, ck).Body.String()
		if got := strings.Contains(page, `/settle"`); got != want {
			t.Errorf("%s: settle now offered %v, want %v", sub, got, want)
		}
	}
	noActions := newRig(t, fullFake(), func(c *Config) { c.Actions = nil })
	ck, csrf := noActions.signIn(t, tokenA)
	if page := noActions.get(t, "/console/subscriptions/"+subStuck, ck).Body.String(); strings.Contains(page, `/settle"`) {
		t.Error("settle now offered without Actions")
	}
	if w := noActions.post(t, "/console/subscriptions/"+subStuck+"/settle", url.Values{"csrf": {csrf}}, ck); w.Code != http.StatusNotFound {
		t.Errorf("settle now without Actions: %d, want 404", w.Code)
	}
}

func TestSearch(t *testing.T) {
	t.Parallel()
	r := newRig(t, fullFake())
	ck, _ := r.signIn(t, tokenA)
	for _, tc := range []struct {
		q, to string
	}{
		{subStuck, "/console/subscriptions/" + subStuck},
		{accountStuck, "/console/subscriptions/" + subStuck},
		{"880112", "/console/subscriptions/" + subOrdered},
		{"msg_2Nf8kQ1", "/console/deliveries/" + url.PathEscape(keyOrdered)},
		{appToken, "/console/deliveries/" + url.PathEscape(keyAppToken)},
		{keyCancel, "/console/deliveries/" + url.PathEscape(keyCancel)},
		{"  " + subStuck + " ", "/console/subscriptions/" + subStuck},
	} {
		w := r.get(t, "/console/search?q="+url.QueryEscape(tc.q), ck)
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tc.to {
			t.Errorf("search %q: %d to %q, want 303 to %q", tc.q, w.Code, w.Header().Get("Location"), tc.to)
		}
	}
	r.f.searches = nil
	for _, q := range []string{"jane@example.com", strings.Repeat("x", maxQuery+1)} {
		w := r.get(t, "/console/search?q="+url.QueryEscape(q), ck)
		if w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), q) {
			t.Errorf("search %.20q: %d, or shown back", q, w.Code)
		}
	}
	if len(r.f.searches) != 0 {
		t.Errorf("searched the records for %q", r.f.searches)
	}
	// An AppDirect delivery key names its marketplace after an "@": it is
	// an id, and is searched.
	adKey := "appdirect:" + appToken + "@acme.appdirect.com"
	if w := r.get(t, "/console/search?q="+url.QueryEscape(adKey), ck); w.Code == http.StatusBadRequest || !slices.Contains(r.f.searches, adKey) {
		t.Errorf("search %q: %d, searched %q; want it searched", adKey, w.Code, r.f.searches)
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	r := newRig(t, fullFake())
	ck, _ := r.signIn(t, tokenA)
	for path, want := range map[string]int{
		"/console/subscriptions/nope": http.StatusNotFound,
		"/console/deliveries/id:nope": http.StatusNotFound,
		"/console/nowhere":            http.StatusNotFound,
	} {
		w := r.get(t, path, ck)
		if w.Code != want {
			t.Errorf("%s: %d, want %d", path, w.Code, want)
		}
		checkHeaders(t, w)
	}
	r.f.err = errors.New("redis: i/o timeout")
	for _, path := range []string{"/console/", "/console/subscriptions/" + subStuck, "/console/failures", "/console/unsettled", "/console/search?q=x", "/console/deliveries/" + keyStuck} {
		w := r.get(t, path, ck)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Errorf("%s with the store down: %d, want 503 with Retry-After", path, w.Code)
		}
		if strings.Contains(w.Body.String(), "i/o timeout") {
			t.Errorf("%s shows the store's error", path)
		}
	}
}

func TestStaticFiles(t *testing.T) {
	t.Parallel()
	r := newRig(t, newFake())
	ck, _ := r.signIn(t, tokenA)
	page := r.get(t, "/console/", ck).Body.String()
	m := regexp.MustCompile(`<link rel="stylesheet" href="(/console/static/console\.css\?v=[0-9a-f]+)">`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no versioned stylesheet link in the page")
	}
	w := r.get(t, m[1], nil)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") || !strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
		t.Fatalf("stylesheet: %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"))
	}
	checkHeaders(t, w)
	if w := r.get(t, "/console/static/nope.js", nil); w.Code != http.StatusNotFound {
		t.Errorf("a missing file: %d", w.Code)
	}
}

func TestRefreshIsOptIn(t *testing.T) {
	t.Parallel()
	r := newRig(t, fullFake())
	ck, _ := r.signIn(t, tokenA)
	off := r.get(t, "/console/failures?since=1h", ck).Body.String()
	if strings.Contains(off, `http-equiv="refresh"`) || !strings.Contains(off, `href="/console/failures?refresh=30&amp;since=1h"`) {
		t.Error("refresh is not off by default, or the page has no link to turn it on")
	}
	on := r.get(t, "/console/failures?since=1h&refresh=30", ck).Body.String()
	if !strings.Contains(on, `<meta http-equiv="refresh" content="30">`) || !strings.Contains(on, `href="/console/failures?since=1h"`) {
		t.Error("refresh=30 does not refresh, or the page has no link to stop")
	}
}

func TestFailuresArePaged(t *testing.T) {
	t.Parallel()
	f := fullFake()
	f.pageSize = 1
	r := newRig(t, f)
	ck, _ := r.signIn(t, tokenA)
	first := r.get(t, "/console/failures?since=7d", ck).Body.String()
	if !strings.Contains(first, `href="/console/failures?cursor=1&amp;since=7d"`) {
		t.Fatalf("no link to the next page:\n%s", first)
	}
	second := r.get(t, "/console/failures?cursor=1&since=7d", ck).Body.String()
	if !strings.Contains(second, "← Newest") || !strings.Contains(second, keyCancel) || strings.Contains(second, keyStuck) {
		t.Error("the second page is not the second failure")
	}
}

func TestTraceLinks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tmpl, id, want string
	}{
		{"https://tempo.example/trace/{trace_id}", traceOrdered, "https://tempo.example/trace/" + traceOrdered},
		{"https://grafana.example/explore?traceId={trace_id}&x=1", traceOrdered, "https://grafana.example/explore?traceId=" + traceOrdered + "&x=1"},
		{"", traceOrdered, ""},
		{"https://tempo.example/trace/{trace_id}", "not-a-trace\"><b>", ""},
		{"https://tempo.example/trace/{trace_id}", strings.ToUpper(traceOrdered), ""},
	} {
		c := &Console{cfg: Config{TraceURL: tc.tmpl}}
		if got := c.traceURL(tc.id); got != tc.want {
			t.Errorf("traceURL(%q) with %q = %q, want %q", tc.id, tc.tmpl, got, tc.want)
		}
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"TRANSPORT_ERROR: q2 answered 503":            "TRANSPORT_ERROR: q2 answered 503",
		"USER_ALREADY_EXISTS: a.b+c@bank.example.com": "USER_ALREADY_EXISTS: [email removed]",
		"for x@y.io and z@w.org":                      "for [email removed] and [email removed]",
		"sha256:9c1e@ not an address":                 "sha256:9c1e@ not an address",
	} {
		if got := scrub(in); got != want {
			t.Errorf("scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTimes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "just now"},
		{42 * time.Second, "42 s ago"},
		{3 * time.Minute, "3 min ago"},
		{2*time.Hour + 5*time.Minute, "2 h 5 min ago"},
		{20 * time.Hour, "20 h ago"},
		{3 * 24 * time.Hour, "3 days ago"},
		{-4 * time.Minute, "in 4 min"},
	} {
		if got := ago(t0, t0.Add(-tc.d)); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := string(when(t0, t0.Add(-3*time.Minute))); !strings.Contains(got, "3 min ago") || !strings.Contains(got, "2026-12-05 13:57:00 UTC") {
		t.Errorf("when = %q, want relative and absolute", got)
	}
	for d, want := range map[time.Duration]string{0: "—", 312 * time.Millisecond: "312 ms", 1250 * time.Millisecond: "1.2 s", 3*time.Minute + 4*time.Second: "3m4s"} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestMemorySessions(t *testing.T) {
	t.Parallel()
	clk := newClock()
	m := NewMemorySessions(2, clk.Now)
	ctx := t.Context()
	if err := m.Put(ctx, "a", Session{Operator: "x"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, "b", Session{}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := m.Put(ctx, "c", Session{}, time.Hour); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("a third session: %v, want ErrTooManySessions", err)
	}
	if s, err := m.Get(ctx, "a"); err != nil || s.Operator != "x" {
		t.Fatalf("Get a: %v %v", s, err)
	}
	clk.Advance(time.Minute)
	if _, err := m.Get(ctx, "a"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Get a after its ttl: %v, want ErrNoSession", err)
	}
	if err := m.Put(ctx, "c", Session{}, time.Hour); err != nil {
		t.Fatalf("a session in the room of an expired one: %v", err)
	}
	if err := m.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(ctx, "b"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Get b after Delete: %v", err)
	}
}

func TestTokenLabel(t *testing.T) {
	t.Parallel()
	// printf %s read-api-token-0123456789abcdef | sha256sum | cut -c1-8
	if got := TokenLabel(tokenA); !regexp.MustCompile(`^sha256:[0-9a-f]{8}$`).MatchString(got) || strings.Contains(got, tokenA[:8]) {
		t.Errorf("TokenLabel = %q", got)
	}
	if TokenLabel(tokenA) == TokenLabel(tokenB) {
		t.Error("two tokens, one label")
	}
}

func TestKeysOfAnyBytesHaveAPage(t *testing.T) {
	t.Parallel()
	keys := []string{"id:a/b", "id:a b", "id:50%", "id:q?x=1#f", "id:ünï", "id:../../metrics", `id:"><b>x`}
	f := newFake()
	for _, k := range keys {
		f.deliveries[k] = Delivery{Key: k, EventType: "SUBSCRIPTION_ORDER", Subscription: "s/1?x"}
	}
	f.subs["s/1?x"] = Subscription{ID: "s/1?x"}
	r := newRig(t, f)
	ck, _ := r.signIn(t, tokenA)
	sub := r.get(t, "/console/subscriptions/"+url.PathEscape("s/1?x"), ck)
	if sub.Code != http.StatusOK {
		t.Fatalf("the subscription s/1?x: %d", sub.Code)
	}
	links := regexp.MustCompile(`href="(/console/deliveries/[^"]+)"`).FindAllStringSubmatch(sub.Body.String(), -1)
	seen := map[string]bool{}
	for _, l := range links {
		path := strings.ReplaceAll(l[1], "&amp;", "&")
		w := r.get(t, path, ck)
		if w.Code != http.StatusOK {
			t.Errorf("%s: %d", path, w.Code)
			continue
		}
		for _, k := range keys {
			if strings.Contains(w.Body.String(), "<code>"+template.HTMLEscapeString(k)+"</code>") {
				seen[k] = true
			}
		}
	}
	for _, k := range keys {
		if !seen[k] {
			t.Errorf("no link of the subscription's page leads to delivery %q", k)
		}
	}
	if strings.Contains(sub.Body.String(), "<b>x") {
		t.Error("a key is not escaped")
	}
}

func TestOverviewSaysWhatToLookAtFirst(t *testing.T) {
	t.Parallel()
	unsettled := func(n int) Overview {
		return Overview{Unsettled: n, Oldest: SubscriptionRow{ID: "s", Settle: Settle{Since: t0.Add(-90 * time.Minute)}}}
	}
	for _, tc := range []struct {
		name  string
		ov    Overview
		fails int
		class string
		title string
	}{
		{"all clear", Overview{Systems: []System{{Name: "q2", State: SystemOK}}}, 0, classOK, "All clear"},
		{"failures only", Overview{}, 3, classInfo, "some deliveries failed this hour"},
		{"one unsettled", unsettled(1), 0, classWarn, "1 subscription is not settled yet"},
		{"some unsettled", unsettled(4), 0, classWarn, "4 subscriptions are not settled yet"},
		{"a system down", Overview{Unsettled: 4, Systems: []System{{Name: "helix", State: SystemUnreachable}}}, 0, classWarn, "An outside system is not answering"},
		{"a system refusing", Overview{Systems: []System{{Name: "helix", State: SystemUnreachable}, {Name: "q2", State: SystemRefused}}}, 0, classBad, "An outside system refuses the service"},
	} {
		got := overviewCallout(t0, tc.ov, tc.fails)
		if got.Class != tc.class || !strings.Contains(got.Title, tc.title) {
			t.Errorf("%s: %s %q, want %s %q", tc.name, got.Class, got.Title, tc.class, tc.title)
		}
	}
}

// recordingSessions remembers every key it was given.
type recordingSessions struct {
	*MemorySessions
	keys []string
}

func (s *recordingSessions) Put(ctx context.Context, key string, v Session, ttl time.Duration) error {
	s.keys = append(s.keys, key)
	return s.MemorySessions.Put(ctx, key, v, ttl)
}

func TestTheStoreNeverSeesTheCookie(t *testing.T) {
	t.Parallel()
	store := &recordingSessions{MemorySessions: NewMemorySessions(0, nil)}
	r := newRig(t, fullFake(), func(c *Config) { c.Sessions = store })
	ck, csrf := r.signIn(t, tokenA)
	if len(store.keys) == 0 {
		t.Fatal("no session stored")
	}
	for _, k := range store.keys {
		if k == ck.Value || strings.Contains(k, ck.Value) {
			t.Errorf("the store was given the cookie's id as a key")
		}
	}
	if csrf == ck.Value {
		t.Error("the form token is the session id")
	}
}

// failingSessions is a session store that stops answering on demand.
type failingSessions struct {
	*MemorySessions
	down atomic.Bool
}

func (f *failingSessions) Get(ctx context.Context, key string) (Session, error) {
	if f.down.Load() {
		return Session{}, errors.New("dial tcp: connection refused")
	}
	return f.MemorySessions.Get(ctx, key)
}

// A session store that does not answer is an outage, not a sign-out: a
// page or an action answers 503 with Retry-After, the action is not done,
// and nobody is sent to sign in (a sign-in would fail the same way).
func TestSessionStoreDownIsNotASignOut(t *testing.T) {
	t.Parallel()
	f := fullFake()
	r := newRig(t, f)
	store := &failingSessions{MemorySessions: NewMemorySessions(0, r.clock.Now)}
	r.c.cfg.Sessions = store
	ck, csrf := r.signIn(t, tokenA)
	store.down.Store(true)
	for _, w := range []*httptest.ResponseRecorder{
		r.get(t, "/console/", ck),
		r.post(t, "/console/subscriptions/"+subStuck+"/settle", url.Values{"csrf": {csrf}}, ck),
	} {
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Errorf("session store down: %d (Location %q), want 503 with Retry-After", w.Code, w.Header().Get("Location"))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.settled) != 0 {
		t.Errorf("the action ran without a session: %v", f.settled)
	}
}
