package console

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
)

// chromium finds a Chromium or Chrome to drive. Without one the test
// skips, saying why, except under CI=true, where it fails: a CI that skips
// the browser test proves nothing about the pages.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "headless_shell", "headless-shell", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal("no chromium on PATH, and CI=true: the browser test must run in CI; install it (apt-get install -y chromium)")
	}
	t.Skip("no chromium on PATH: skipping the browser test (apt-get install -y chromium to run it; with CI=true it fails instead)")
	return ""
}

// browser is one headless Chromium tab on the console, writing a
// screenshot of each page to CONSOLE_SCREENSHOTS when it is set.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
	n    int
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// text is the visible text of the first element sel matches.
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// wantText wants every one of want in the text of sel.
func (b *browser) wantText(sel string, want ...string) {
	b.t.Helper()
	got := b.text(sel)
	for _, w := range want {
		if !strings.Contains(got, w) {
			b.t.Errorf("%s does not say %q; it says:\n%s", sel, w, got)
		}
	}
}

// count is how many elements sel matches.
func (b *browser) count(sel string) int {
	b.t.Helper()
	nodes, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	if err != nil {
		b.t.Fatalf("finding %s: %v", sel, err)
	}
	return len(nodes)
}

// click clicks sel and waits for the page it leads to; status is that
// page's HTTP status.
func (b *browser) click(sel string) (status int64) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("clicking %s: %v", sel, err)
	}
	return resp.Status
}

func (b *browser) open(path string) (status int64) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Navigate(b.base+path))
	if err != nil {
		b.t.Fatalf("opening %s: %v", path, err)
	}
	return resp.Status
}

func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return u.RequestURI()
}

// shot writes the whole page as NN-name.png in the screenshots folder.
func (b *browser) shot(name string) {
	b.t.Helper()
	if b.dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.n++
	file := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.n, name))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatalf("writing %s: %v", file, err)
	}
}

// search types q in the top bar's search box and sends it.
func (b *browser) search(q string) {
	b.t.Helper()
	if _, err := chromedp.RunResponse(b.ctx, chromedp.Steps(
		chromedp.SetValue(chromedp.CSS(`.top input[name="q"]`), q),
		chromedp.Submit(chromedp.CSS(`.top input[name="q"]`)),
	)); err != nil {
		b.t.Fatalf("searching %q: %v", q, err)
	}
}

// TestConsoleInABrowser drives the console in a real Chromium over TLS, as
// an operator would: sign in, read the overview, find a subscription whose
// ORDER failed three times at Q2 before it worked, open that delivery,
// find a Business Access ORDER stuck at Helix and settle it; then a POST
// with its form token taken out is refused, and an idle session signs out.
func TestConsoleInABrowser(t *testing.T) {
	execPath := chromium(t)
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("CONSOLE_SCREENSHOTS: %v", err)
		}
	}

	f := fullFake()
	clk := newClock()
	c, err := New(Config{Reader: f, Actions: f, Tokens: []string{tokenA}, Logger: zap.NewNop(), Now: clk.Now,
		TraceURL: "https://tempo.example/trace/{trace_id}"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(c) // the __Host- cookie is Secure: the browser keeps it over https only
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(execPath),
		chromedp.Flag("ignore-certificate-errors", true), // httptest's own certificate
		chromedp.WindowSize(1360, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	b := &browser{t: t, ctx: bctx, base: srv.URL, dir: dir}

	// Signed out, the console asks for a token.
	b.open("/console/")
	if loc := b.location(); !strings.HasPrefix(loc, "/console/signin") {
		t.Fatalf("signed out, the console is at %s, want the sign-in page", loc)
	}
	b.shot("signin")
	b.do("typing the token", chromedp.SendKeys(chromedp.CSS("#token"), tokenA))
	if st := b.click(`.signin button[type="submit"]`); st != 200 {
		t.Fatalf("sign-in: HTTP %d", st)
	}

	// The overview says what is wrong first.
	if loc := b.location(); loc != "/console/" {
		t.Fatalf("after sign-in the console is at %s, want the overview", loc)
	}
	b.wantText("main", "An outside system refuses the service", "Helix", "refused", "QBD Connect", "unreachable",
		"2 not settled", "Recent failures", "UNAUTHORIZED")
	b.shot("overview")

	// The subscription whose ORDER worked on the fourth attempt: its step,
	// and its four attempts with their reasons.
	b.search(subOrdered)
	if loc := b.location(); loc != "/console/subscriptions/"+subOrdered {
		t.Fatalf("searching %s led to %s", subOrdered, loc)
	}
	b.wantText("main", "Settled: active everywhere", "Q2U-90210")
	b.wantText(".steps-table", "Q2", "live")
	order := `article.delivery:has(a.dl-type[href$="` + url.PathEscape(keyOrdered) + `"])`
	if n := b.count(order + " li.tl"); n != 4 {
		t.Errorf("the ORDER shows %d attempts, want 4", n)
	}
	if n := b.count(order + ` li.tl.warn`); n != 3 {
		t.Errorf("the ORDER shows %d failed attempts in amber, want 3", n)
	}
	b.wantText(order, "Attempt 1", "Attempt 4", "q2.enroll: HTTP 503", "TRANSPORT_ERROR", "transient: the marketplace sends it again", "SUCCESS", "q2-req-a3")
	b.shot("subscription")

	// Its delivery: every attempt, every call, the trace.
	if st := b.click(order + " a.dl-open"); st != 200 {
		t.Fatalf("opening the delivery: HTTP %d", st)
	}
	if loc := b.location(); loc != "/console/deliveries/"+url.PathEscape(keyOrdered) {
		t.Fatalf("the delivery is at %s", loc)
	}
	b.wantText("main", "SUBSCRIPTION_ORDER: SUCCESS after 4 attempts", "msg_2Nf8kQ1", "Final:", "q2-req-a1", "q2-req-a4", traceOrdered)
	if n := b.count("li.tl"); n != 4 {
		t.Errorf("the delivery shows %d attempts, want 4", n)
	}
	b.shot("delivery")

	// The Business Access ORDER stuck at Helix, found by its account
	// identifier: which step failed, why, and what to do.
	b.search(accountStuck)
	if loc := b.location(); loc != "/console/subscriptions/"+subStuck {
		t.Fatalf("searching %s led to %s", accountStuck, loc)
	}
	b.wantText(".callout", "Not settled", "Helix is pending", "What to do", "Settle now")
	b.wantText(".steps-table", "Helix", "pending", "UNAUTHORIZED", "HELIX_API_KEY")
	b.shot("subscription-unsettled")

	// Settle now, and see it settled.
	if st := b.click(`form.action button[type="submit"]`); st != 200 {
		t.Fatalf("settle now: HTTP %d", st)
	}
	b.wantText(".flash", "Settled: every step of "+subStuck)
	b.wantText(".callout", "Settled")
	if n := b.count(`form.action`); n != 0 {
		t.Error("settle now is still offered on a settled subscription")
	}
	if got := f.settleCalls(); !slices.Equal(got, []string{subStuck}) {
		t.Errorf("SettleNow calls %v, want [%s]", got, subStuck)
	}
	b.shot("settled")

	// The lists.
	b.open("/console/failures?since=7d")
	b.wantText("main", keyStuck, keyCancel)
	b.shot("failures")
	b.open("/console/unsettled")
	b.wantText("main", subCancel, "Settle now")
	b.shot("unsettled")
	b.search("no-such-id")
	b.wantText("main", "Nothing found")
	b.shot("search")

	// A POST without the form token is refused, and changes nothing.
	b.open("/console/subscriptions/" + subCancel)
	b.wantText(".callout", "Not settled: the intent is cancelled, QBD Connect is unknown")
	b.shot("subscription-cancel")
	b.do("taking the form token out", chromedp.RemoveAttribute(chromedp.CSS(`form.action input[name="csrf"]`), "name"))
	if st := b.click(`form.action button[type="submit"]`); st != 403 {
		t.Errorf("settle now without the form token: HTTP %d, want 403", st)
	}
	b.wantText("main", "Refused: the form's token is missing or stale")
	if got := f.settleCalls(); slices.Contains(got, subCancel) {
		t.Errorf("SettleNow ran for %s without the form token", subCancel)
	}
	b.shot("refused")

	// An idle session signs out.
	clk.Advance(DefaultIdleTimeout + time.Minute)
	b.open("/console/unsettled")
	if loc := b.location(); !strings.HasPrefix(loc, "/console/signin") || !strings.Contains(loc, "expired=1") {
		t.Fatalf("after the idle timeout the console is at %s, want the sign-in page", loc)
	}
	b.wantText("main", "Your session expired")
	b.shot("expired")
}
