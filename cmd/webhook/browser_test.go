package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testbrowser"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// freeAddr is a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The personal data the stories' events carry: no console page and no
// read API reply may show any of it.
var personalData = []string{"John", "Doe", "jdoe@q2ebanking.com", "123 Some St", "COLORADO SPRINGS", "80909", "Doe Holdings",
	"+1 719 555 0142", "billing@doeholdings.example"}

// withPersonalData is an event fixture with a phone and a company email
// besides the creator's name, email and address it already has.
func withPersonalData(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	ev := m["event"].(map[string]any)
	if creator, ok := ev["creator"].(map[string]any); ok {
		if addr, ok := creator["address"].(map[string]any); ok {
			addr["phone"] = "+1 719 555 0142"
		}
	}
	if company, ok := ev["payload"].(map[string]any)["company"].(map[string]any); ok {
		company["email"], company["phoneNumber"] = "billing@doeholdings.example", "+1 719 555 0142"
	}
	b, _ := json.Marshal(m)
	return b
}

// TestConsoleEndToEnd drives the console of the real binary, on real Redis
// and the sandbox, in Chromium, as an operator would: sign in with a read
// API token; find an ORDER that Q2's Enrollment failed three times before
// it worked by its webhook-id, and see its four attempts with their
// reasons; open a Business Access ORDER that Helix refused and see which
// step failed and why; refuse a POST without its form token; press
// "settle now" on a CANCEL left unsettled by Q2 and see it settle. Then no
// page it saw, and no read API reply, carries the events' personal data.
func TestConsoleEndToEnd(t *testing.T) {
	t.Parallel()
	execPath := testbrowser.Chromium(t)
	bin := binary(t)
	redis := testredis.Start(t)
	sb, sandboxURL := startSandbox(t, q2sandbox.Config{})
	ops := freeAddr(t)
	env := q2Env(sandboxURL, redis.URL())
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	env["API_TOKENS"] = apiToken
	env["OPS_ADDR"] = ops
	env["CONSOLE_TRACE_URL"] = "https://tempo.example/trace/{trace_id}"
	svc := startBinary(t, bin, env)
	opsURL := "http://" + ops
	eventually(t, 15*time.Second, "the ops listener", func() bool { return get(t, opsURL+"/healthz") == 200 })

	// A TLS proxy in front of the ops listener, passing the Host on, as
	// a deployment has: the session cookie is Secure.
	target, _ := url.Parse(opsURL)
	proxy := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
	}})
	defer proxy.Close()

	// The stories' deliveries.
	plus := svc.url + "/marketplace/my-product-name"
	biz := svc.url + "/marketplace/business-access"
	if err := sb.SetFault(sandbox.Fault{Route: "Enrollment", Status: 503, Times: 3}); err != nil {
		t.Fatal(err)
	}
	const orderID = "msg_console_order"
	order := withPersonalData(t, withSubscription(t, "subscription-order.json", "sub-console-order", ""))
	for range 3 {
		wantReply(t, post(t, plus, order, http.Header{"Webhook-Id": {orderID}}), 503, events.TransportError)
	}
	wantReply(t, post(t, plus, order, http.Header{"Webhook-Id": {orderID}}), 200, "")

	if err := sb.SetFault(sandbox.Fault{Route: "helix.addEntitlement", Code: 195122, Times: 1}); err != nil {
		t.Fatal(err)
	}
	refused := withPersonalData(t, withHelixConfiguration(t, withSubscription(t, "subscription-order.json", "sub-console-refused", "")))
	wantReply(t, post(t, biz, refused, http.Header{"Webhook-Id": {"msg_console_refused"}}), 200, events.Forbidden)

	const stuck = "sub-console-stuck"
	stuckOrder := withPersonalData(t, withHelixConfiguration(t, withSubscription(t, "subscription-order.json", stuck, "")))
	rep := wantReply(t, post(t, biz, stuckOrder, http.Header{"Webhook-Id": {"msg_console_stuck_order"}}), 200, "")
	if err := sb.SetFault(sandbox.Fault{Route: "DeleteUser", Status: 503, Times: 1000}); err != nil {
		t.Fatal(err)
	}
	cancel := withPersonalData(t, withSubscription(t, "subscription-cancel.json", stuck, rep.AccountIdentifier))
	wantReply(t, post(t, biz, cancel, http.Header{"Webhook-Id": {"msg_console_stuck_cancel"}}), 200, "")

	// The browser, keeping every page for the personal-data check.
	b := testbrowser.New(t, execPath, proxy.URL, true)

	// Sign in with a read API token.
	b.SignIn(apiToken)
	// Q2's last answer was the CANCEL's 503: the overview says so first.
	b.WantText("main", "An outside system is not answering", "Q2 unreachable", "1 not settled", "Recent failures", "FORBIDDEN",
		"helix.provision: helix 195122", "Helix")
	b.Shot("overview")

	// The ORDER that failed three times, by its webhook-id: its four
	// attempts, three 503s with their reason, then the success.
	b.Search(orderID)
	if loc := b.Location(); loc != "/console/deliveries/"+url.PathEscape("id:"+orderID) {
		t.Fatalf("searching %s led to %s, want its delivery", orderID, loc)
	}
	if n := b.Count("li.tl"); n != 4 {
		t.Errorf("the ORDER shows %d attempts, want 4", n)
	}
	if n := b.Count("li.tl.warn"); n != 3 {
		t.Errorf("the ORDER shows %d failed attempts in amber, want 3", n)
	}
	b.WantText("main", "SUBSCRIPTION_ORDER: SUCCESS after 4 attempts", orderID, "q2.provision: HTTP 503", "TRANSPORT_ERROR",
		"HTTP 503", "Enrollment", "LookupUser", "SUCCESS")
	b.Shot("delivery")
	b.Click(`.crumbs a[href^="/console/subscriptions/"]`)
	b.WantText("main", "Settled: active everywhere", "sub-console-order")
	b.Shot("subscription")

	// The Business Access ORDER that Helix refused: which step, and why.
	b.Search("sub-console-refused")
	if loc := b.Location(); loc != "/console/subscriptions/sub-console-refused" {
		t.Fatalf("searching sub-console-refused led to %s", loc)
	}
	b.WantText(".callout", "Refused (FORBIDDEN)", "nothing of it is left")
	b.WantText("main", "helix.provision: helix 195122", "addEntitlement", "helix 195122", "HTTP 400", "Q2", "undone")
	b.Shot("subscription-refused")

	// The CANCEL that Q2 could not finish: unsettled, with Settle now. A
	// POST without the form token is refused and changes nothing.
	b.Open("/console/subscriptions/" + stuck)
	b.WantText(".callout", "Not settled", "Q2")
	b.Shot("subscription-unsettled")
	b.Do("taking the form token out", chromedp.RemoveAttribute(chromedp.CSS(`form.action input[name="csrf"]`), "name"))
	if st := b.Click(`form.action button[type="submit"]`); st != 403 {
		t.Errorf("settle now without the form token: HTTP %d, want 403", st)
	}
	b.WantText("main", "Refused: the form's token is missing or stale")
	b.Shot("refused-without-token")

	// Settle now, with Q2 answering again. So that the settler's own
	// retry does not settle it first, wait until its next try is a few
	// seconds off.
	for {
		_, doc := apiGet(t, opsURL+"/v1/subscriptions/"+stuck, apiToken)
		next, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(doc["next_attempt"]))
		if doc["settled"] == true {
			t.Fatalf("the settler settled %s while Q2 still failed: %v", stuck, doc)
		}
		if time.Until(next) > 3*time.Second {
			break
		}
		time.Sleep(time.Until(next) + time.Second)
	}
	b.Open("/console/subscriptions/" + stuck)
	if err := sb.SetFault(sandbox.Fault{Route: "DeleteUser", Times: 0}); err != nil {
		t.Fatal(err)
	}
	if st := b.Click(`form.action button[type="submit"]`); st != 200 {
		t.Fatalf("settle now: HTTP %d", st)
	}
	b.WantText(".flash", "Settled: every step of "+stuck)
	b.WantText(".callout", "Cancelled, and nothing of it is left")
	if n := b.Count("form.action"); n != 0 {
		t.Error("settle now is still offered on a settled subscription")
	}
	b.Shot("settled")
	if _, doc := apiGet(t, opsURL+"/v1/subscriptions/"+stuck, apiToken); doc["settled"] != true || doc["status"] != "cancelled" {
		t.Errorf("after settle now: %v", doc)
	}

	// The lists.
	b.Open("/console/failures")
	b.WantText("main", "msg_console_refused")
	b.Shot("failures")
	b.Open("/console/unsettled")
	b.Shot("unsettled")
	b.Open("/console/")
	b.Shot("overview-after")

	// No page and no read API reply carries the events' personal data.
	replies := map[string]string{}
	for _, path := range []string{
		"/v1/deliveries?webhook_id=" + orderID, "/v1/deliveries/id%3A" + orderID, "/v1/deliveries?outcome=failed&since=1h",
		"/v1/deliveries?subscription_id=sub-console-refused", "/v1/deliveries?subscription_id=" + stuck,
		"/v1/subscriptions/sub-console-order", "/v1/subscriptions?user_id=12345", "/v1/subscriptions?state=unsettled",
		"/v1/deliveries?account_identifier=" + rep.AccountIdentifier,
	} {
		code, doc := apiGet(t, opsURL+path, apiToken)
		if code != 200 {
			t.Errorf("GET %s: %d %v", path, code, doc)
		}
		j, _ := json.Marshal(doc)
		replies[path] = string(j)
	}
	checkNoPersonalData(t, b.Pages, replies)
}

// csrfValue hides the session's random form token before the check: the
// check is for the events' data, not for chance letters in a token.
var csrfValue = regexp.MustCompile(`name="csrf" value="[^"]*"`)

// checkNoPersonalData fails for every page or reply that carries any of
// personalData.
func checkNoPersonalData(t *testing.T, pages, replies map[string]string) {
	t.Helper()
	if len(pages) < 8 || len(replies) == 0 {
		t.Fatalf("only %d pages and %d replies were kept: the check would prove little", len(pages), len(replies))
	}
	for _, leak := range personalDataIn(pages, replies) {
		t.Error(leak)
	}
}

// personalDataIn says, for each page and reply, which of personalData it
// shows.
func personalDataIn(pages, replies map[string]string) []string {
	var leaks []string
	check := func(what, text string) {
		text = csrfValue.ReplaceAllString(text, "")
		for _, p := range personalData {
			if strings.Contains(text, p) {
				leaks = append(leaks, fmt.Sprintf("%s shows %q, personal data of the events", what, p))
			}
		}
	}
	for path, html := range pages {
		check("the console page "+path, html)
	}
	for path, body := range replies {
		check("the read API reply to "+path, body)
	}
	slices.Sort(leaks)
	return leaks
}

// The personal-data check finds the events' data in a page or a reply,
// and not in a form token's chance letters, so that TestConsoleEndToEnd's
// check cannot pass by looking at nothing.
func TestPersonalDataIn(t *testing.T) {
	t.Parallel()
	pages := map[string]string{"/console/a": `<input name="csrf" value="JohnDoe">ok`}
	replies := map[string]string{"/v1/x": `{"id":"1"}`}
	if leaks := personalDataIn(pages, replies); len(leaks) != 0 {
		t.Errorf("clean pages: %v", leaks)
	}
	pages["/console/leak"] = "<td>COLORADO SPRINGS</td>"
	replies["/v1/leak"] = `{"email":"jdoe@q2ebanking.com"}`
	if leaks := personalDataIn(pages, replies); len(leaks) != 2 {
		t.Errorf("a page with a city and a reply with an email: %v, want both found", leaks)
	}
}
