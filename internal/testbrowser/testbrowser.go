// Package testbrowser drives the operator console in a real headless
// Chromium for tests: one tab over TLS (the console's session cookie is
// __Host- and Secure), a screenshot of each page to CONSOLE_SCREENSHOTS
// when it is set, and, when asked, the HTML of every page it saw. The
// console's own test and the end-to-end test of the binary share it. Only
// tests import it.
package testbrowser

import (
	"context"
	"fmt"
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
)

// Tab is one headless Chromium tab on a site.
type Tab struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string // screenshots; "" for none
	n    int
	// Pages is the HTML each page showed, by path, when New was asked to
	// keep them (nil otherwise).
	Pages map[string]string
}

// New starts the Chromium at execPath (Chromium's answer) and opens a tab
// on base (an https:// URL whose certificate the tab accepts whatever it
// is: httptest's own), stopped when the test ends. keepPages keeps every
// page's HTML in Pages.
func New(t *testing.T, execPath, base string, keepPages bool) *Tab {
	t.Helper()
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("CONSOLE_SCREENSHOTS: %v", err)
		}
	}
	ctx, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(execPath),
		chromedp.Flag("ignore-certificate-errors", true), // httptest's own certificate
		chromedp.WindowSize(1360, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel(); stop() })
	b := &Tab{t: t, ctx: bctx, base: base, dir: dir}
	if keepPages {
		b.Pages = map[string]string{}
	}
	return b
}

// Chromium finds a Chromium or Chrome to drive: a test asks first, before
// it starts anything. Without one the test skips, saying why, except
// under CI=true, where it fails: a CI that skips the browser test proves
// nothing about the pages.
func Chromium(t *testing.T) string {
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

// Do runs actions on the page; what names them in a failure.
func (b *Tab) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// Open goes to path on the site; status is the page's HTTP status.
func (b *Tab) Open(path string) (status int64) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Navigate(b.base+path))
	if err != nil {
		b.t.Fatalf("opening %s: %v", path, err)
	}
	b.keep()
	return resp.Status
}

// Click clicks sel and waits for the page it leads to; status is that
// page's HTTP status.
func (b *Tab) Click(sel string) (status int64) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("clicking %s: %v", sel, err)
	}
	b.keep()
	return resp.Status
}

// SignIn opens the console signed out, which asks for a token, keeps a
// screenshot of that page ("signin"), signs in with token and checks
// that the console then shows its overview.
func (b *Tab) SignIn(token string) {
	b.t.Helper()
	b.Open("/console/")
	if loc := b.Location(); !strings.HasPrefix(loc, "/console/signin") {
		b.t.Fatalf("signed out, the console is at %s, want the sign-in page", loc)
	}
	b.Shot("signin")
	b.Do("typing the token", chromedp.SendKeys(chromedp.CSS("#token"), token))
	if st := b.Click(`.signin button[type="submit"]`); st != 200 {
		b.t.Fatalf("sign-in: HTTP %d", st)
	}
	if loc := b.Location(); loc != "/console/" {
		b.t.Fatalf("after sign-in the console is at %s, want the overview", loc)
	}
}

// Search types q in the console's top-bar search box and sends it.
func (b *Tab) Search(q string) {
	b.t.Helper()
	if _, err := chromedp.RunResponse(b.ctx, chromedp.Steps(
		chromedp.SetValue(chromedp.CSS(`.top input[name="q"]`), q),
		chromedp.Submit(chromedp.CSS(`.top input[name="q"]`)),
	)); err != nil {
		b.t.Fatalf("searching %q: %v", q, err)
	}
	b.keep()
}

// Text is the visible text of the first element sel matches.
func (b *Tab) Text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// WantText wants every one of want in the text of sel.
func (b *Tab) WantText(sel string, want ...string) {
	b.t.Helper()
	got := b.Text(sel)
	for _, w := range want {
		if !strings.Contains(got, w) {
			b.t.Errorf("%s on %s does not say %q; it says:\n%s", sel, b.Location(), w, got)
		}
	}
}

// Count is how many elements sel matches.
func (b *Tab) Count(sel string) int {
	b.t.Helper()
	nodes, err := chromedp.Run(b.ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	if err != nil {
		b.t.Fatalf("finding %s: %v", sel, err)
	}
	return len(nodes)
}

// Location is the path and query of the page shown.
func (b *Tab) Location() string {
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

// Shot writes the whole page as NN-name.png in the screenshots folder.
func (b *Tab) Shot(name string) {
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

// keep records the page's HTML in Pages, when they are kept.
func (b *Tab) keep() {
	b.t.Helper()
	if b.Pages == nil {
		return
	}
	html, err := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		b.t.Fatalf("reading the page: %v", err)
	}
	b.Pages[b.Location()] = html
}
