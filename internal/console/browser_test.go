package console

import (
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/testbrowser"
)

// TestConsoleInABrowser drives the console in a real Chromium over TLS, as
// an operator would: sign in, read the overview, find a subscription whose
// ORDER failed three times at Q2 before it worked, open that delivery,
// find a Business Access ORDER stuck at Helix and settle it; then a POST
// with its form token taken out is refused, and an idle session signs out.
func TestConsoleInABrowser(t *testing.T) {
	execPath := testbrowser.Chromium(t)

	f := fullFake()
	clk := newClock()
	c, err := New(Config{Reader: f, Actions: f, Tokens: []string{tokenA}, Logger: zap.NewNop(), Now: clk.Now,
		TraceURL: "https://tempo.example/trace/{trace_id}"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(c) // the __Host- cookie is Secure: the browser keeps it over https only
	defer srv.Close()

	b := testbrowser.New(t, execPath, srv.URL, false)

	// Signed out, the console asks for a token; signed in, the overview
	// says what is wrong first.
	b.SignIn(tokenA)
	b.WantText("main", "An outside system refuses the service", "Helix", "refused", "QBD Connect", "unreachable",
		"2 not settled", "Recent failures", "UNAUTHORIZED")
	b.Shot("overview")

	// The subscription whose ORDER worked on the fourth attempt: its step,
	// and its four attempts with their reasons.
	b.Search(subOrdered)
	if loc := b.Location(); loc != "/console/subscriptions/"+subOrdered {
		t.Fatalf("searching %s led to %s", subOrdered, loc)
	}
	b.WantText("main", "Settled: active everywhere", "Q2U-90210")
	b.WantText(".steps-table", "Q2", "live")
	order := `article.delivery:has(a.dl-type[href$="` + url.PathEscape(keyOrdered) + `"])`
	if n := b.Count(order + " li.tl"); n != 4 {
		t.Errorf("the ORDER shows %d attempts, want 4", n)
	}
	if n := b.Count(order + ` li.tl.warn`); n != 3 {
		t.Errorf("the ORDER shows %d failed attempts in amber, want 3", n)
	}
	b.WantText(order, "Attempt 1", "Attempt 4", "q2.enroll: HTTP 503", "TRANSPORT_ERROR", "transient: the marketplace sends it again", "SUCCESS", "q2-req-a3")
	b.Shot("subscription")

	// Its delivery: every attempt, every call, the trace.
	if st := b.Click(order + " a.dl-open"); st != 200 {
		t.Fatalf("opening the delivery: HTTP %d", st)
	}
	if loc := b.Location(); loc != "/console/deliveries/"+url.PathEscape(keyOrdered) {
		t.Fatalf("the delivery is at %s", loc)
	}
	b.WantText("main", "SUBSCRIPTION_ORDER: SUCCESS after 4 attempts", "msg_2Nf8kQ1", "Final:", "q2-req-a1", "q2-req-a4", traceOrdered)
	if n := b.Count("li.tl"); n != 4 {
		t.Errorf("the delivery shows %d attempts, want 4", n)
	}
	b.Shot("delivery")

	// The Business Access ORDER stuck at Helix, found by its account
	// identifier: which step failed, why, and what to do.
	b.Search(accountStuck)
	if loc := b.Location(); loc != "/console/subscriptions/"+subStuck {
		t.Fatalf("searching %s led to %s", accountStuck, loc)
	}
	b.WantText(".callout", "Not settled", "Helix is pending", "What to do", "Settle now")
	b.WantText(".steps-table", "Helix", "pending", "UNAUTHORIZED", "HELIX_API_KEY")
	b.Shot("subscription-unsettled")

	// Settle now, and see it settled.
	if st := b.Click(`form.action button[type="submit"]`); st != 200 {
		t.Fatalf("settle now: HTTP %d", st)
	}
	b.WantText(".flash", "Settled: every step of "+subStuck)
	b.WantText(".callout", "Settled")
	if n := b.Count(`form.action`); n != 0 {
		t.Error("settle now is still offered on a settled subscription")
	}
	if got := f.settleCalls(); !slices.Equal(got, []string{subStuck}) {
		t.Errorf("SettleNow calls %v, want [%s]", got, subStuck)
	}
	b.Shot("settled")

	// The lists.
	b.Open("/console/failures?since=7d")
	b.WantText("main", keyStuck, keyCancel)
	b.Shot("failures")
	b.Open("/console/unsettled")
	b.WantText("main", subCancel, "Settle now")
	b.Shot("unsettled")
	b.Search("no-such-id")
	b.WantText("main", "Nothing found")
	b.Shot("search")

	// A POST without the form token is refused, and changes nothing.
	b.Open("/console/subscriptions/" + subCancel)
	b.WantText(".callout", "Not settled: the intent is cancelled, QBD Connect is unknown")
	b.Shot("subscription-cancel")
	b.Do("taking the form token out", chromedp.RemoveAttribute(chromedp.CSS(`form.action input[name="csrf"]`), "name"))
	if st := b.Click(`form.action button[type="submit"]`); st != 403 {
		t.Errorf("settle now without the form token: HTTP %d, want 403", st)
	}
	b.WantText("main", "Refused: the form's token is missing or stale")
	if got := f.settleCalls(); slices.Contains(got, subCancel) {
		t.Errorf("SettleNow ran for %s without the form token", subCancel)
	}
	b.Shot("refused")

	// An idle session signs out.
	clk.Advance(DefaultIdleTimeout + time.Minute)
	b.Open("/console/unsettled")
	if loc := b.Location(); !strings.HasPrefix(loc, "/console/signin") || !strings.Contains(loc, "expired=1") {
		t.Fatalf("after the idle timeout the console is at %s, want the sign-in page", loc)
	}
	b.WantText("main", "Your session expired")
	b.Shot("expired")
}
