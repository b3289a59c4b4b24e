package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/replay"
	"github.com/banking-marketplace/webhook/internal/signature"
)

const (
	storyDir = "../../fixtures/story"
	badDir   = "../../fixtures/bad"
	// testSecret is a valid Standard Webhooks secret used only in tests.
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="
)

// receiver mimics the service contract closely enough for replay: ORDER
// enrolls (a new decimal account id), CHANGE and CANCEL need a known, active
// account, found by accountIdentifier else by subscription_id.
type receiver struct {
	verifier *signature.Verifier // nil: unsigned requests are accepted

	mu       sync.Mutex
	nextID   int
	bySub    map[string]*account
	byID     map[string]*account
	bodies   map[string][]byte // last body per event type, for placeholder checks
	webhooks []string          // webhook-id of every request
	exts     []string

	inFlight, maxInFlight atomic.Int64
	conns                 atomic.Int64
}

type account struct {
	id        string
	cancelled bool
}

func newReceiver(t *testing.T, secrets ...string) (*receiver, *httptest.Server) {
	t.Helper()
	rc := &receiver{nextID: 1000, bySub: map[string]*account{}, byID: map[string]*account{}, bodies: map[string][]byte{}}
	if len(secrets) > 0 {
		v, err := signature.NewVerifier(secrets)
		if err != nil {
			t.Fatal(err)
		}
		rc.verifier = v
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /marketplace/{extension}", rc.serve)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return rc, srv
}

func reply(w http.ResponseWriter, status int, r events.Reply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(r)
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	n := rc.inFlight.Add(1)
	defer rc.inFlight.Add(-1)
	for {
		m := rc.maxInFlight.Load()
		if n <= m || rc.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		reply(w, http.StatusRequestEntityTooLarge, events.Failure(events.InvalidResponse, "body over 1 MiB"))
		return
	}
	rc.mu.Lock()
	rc.webhooks = append(rc.webhooks, r.Header.Get("webhook-id"))
	rc.exts = append(rc.exts, r.PathValue("extension"))
	rc.mu.Unlock()
	if r.Header.Get("Content-Type") != "application/json" {
		reply(w, http.StatusUnsupportedMediaType, events.Failure(events.InvalidResponse, "want application/json"))
		return
	}
	if rc.verifier != nil {
		if err := rc.verifier.Verify(r.Header, body, time.Now()); err != nil {
			reply(w, http.StatusUnauthorized, events.Failure(events.Unauthorized, "bad signature"))
			return
		}
	}
	ev, err := events.Decode(body)
	if err != nil {
		reply(w, http.StatusBadRequest, events.Failure(events.InvalidResponse, err.Error()))
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.bodies[string(ev.EventType)] = body
	find := func() *account {
		if a := rc.byID[ev.AccountIdentifier()]; a != nil {
			return a
		}
		return rc.bySub[ev.SubscriptionID]
	}
	switch ev.EventType {
	case events.SubscriptionOrder:
		a := rc.bySub[ev.SubscriptionID]
		if a == nil {
			rc.nextID++
			a = &account{id: fmt.Sprint(rc.nextID)}
			rc.bySub[ev.SubscriptionID], rc.byID[a.id] = a, a
		}
		if a.cancelled {
			reply(w, http.StatusOK, events.Failure(events.Forbidden, "subscription cancelled"))
			return
		}
		reply(w, http.StatusOK, events.Success(a.id))
	case events.SubscriptionChange, events.SubscriptionCancel:
		a := find()
		if a == nil || a.cancelled {
			reply(w, http.StatusOK, events.Failure(events.AccountNotFound, "no such account"))
			return
		}
		if ev.EventType == events.SubscriptionCancel {
			a.cancelled = true
		}
		reply(w, http.StatusOK, events.Success(""))
	default:
		reply(w, http.StatusOK, events.Failure(events.ConfigurationError, "unsupported event type"))
	}
}

// run calls replay.Run and returns its output and exit status.
func run(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := replay.Run(context.Background(), args, getenv, &out, &errOut)
	if err != nil {
		var ec interface{ ExitCode() int }
		if !errors.As(err, &ec) {
			t.Fatalf("Run returned %v, which has no ExitCode", err)
		}
		code = ec.ExitCode()
		if strings.Contains(strings.TrimSpace(err.Error()), "\n") {
			t.Errorf("error message is not one line: %q", err)
		}
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func wantCode(t *testing.T, got, want int, stdout, stderr string) {
	t.Helper()
	if got != want {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", got, want, stdout, stderr)
	}
}

// copyFixture writes a fixture of the story into dir under name, with
// replacements applied, and an expectation when expect is not "".
func copyFixture(t *testing.T, dir, from, name, expect string, replace ...string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(storyDir, from))
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.NewReplacer(replace...).Replace(string(data)))
	if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if expect != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".expect.json"), []byte(expect), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStoryPasses(t *testing.T) {
	t.Parallel()
	for _, conc := range []string{"1", "8"} {
		t.Run("concurrency "+conc, func(t *testing.T) {
			t.Parallel()
			rc, srv := newReceiver(t)
			stdout, stderr, code := run(t, nil, "--url", srv.URL, "--concurrency", conc, storyDir)
			wantCode(t, code, 0, stdout, stderr)
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if len(lines) != 5 {
				t.Fatalf("want 4 fixture lines and a summary, got:\n%s", stdout)
			}
			want := []string{"01-order.json 200 success 1001 ", "02-change.json 200 success ", "03-cancel.json 200 success ", "04-change-after-cancel.json 200 ACCOUNT_NOT_FOUND "}
			for i, w := range want {
				if !strings.Contains(lines[i], w) || !strings.HasSuffix(lines[i], " OK") {
					t.Errorf("line %d = %q, want it to hold %q and end in OK", i+1, lines[i], w)
				}
			}
			if !strings.HasPrefix(lines[4], "sent 4, succeeded 4, failed 0, mismatched 0, p50 ") || !strings.Contains(lines[4], ", p99 ") {
				t.Errorf("summary = %q", lines[4])
			}
			if rc.exts[0] != "my-product-name" {
				t.Errorf("extension = %q, want my-product-name", rc.exts[0])
			}
		})
	}
}

func TestWrongExpectationNamesTheField(t *testing.T) {
	t.Parallel()
	_, srv := newReceiver(t)
	dir := t.TempDir()
	copyFixture(t, dir, "01-order.json", "order", `{"success": false, "errorCode": "USER_ALREADY_EXISTS", "status": 200}`)
	stdout, stderr, code := run(t, nil, "--url", srv.URL, dir)
	wantCode(t, code, 1, stdout, stderr)
	for _, want := range []string{"MISMATCH", `success: expected false, got true`, `errorCode: expected "USER_ALREADY_EXISTS", got ""`, "mismatched 1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "status:") {
		t.Errorf("status matched but is reported:\n%s", stdout)
	}
	if !strings.Contains(stderr, "1 mismatched") {
		t.Errorf("error line = %q", stderr)
	}
}

func TestBadExpectationFile(t *testing.T) {
	t.Parallel()
	_, srv := newReceiver(t)
	dir := t.TempDir()
	copyFixture(t, dir, "01-order.json", "order", `{"sucess": true}`)
	stdout, stderr, code := run(t, nil, "--url", srv.URL, dir)
	wantCode(t, code, 1, stdout, stderr)
	if !strings.Contains(stdout, "order.expect.json") || !strings.Contains(stdout, `unknown field "sucess"`) || !strings.Contains(stdout, "FAIL") {
		t.Errorf("output should name the expectation file and the field:\n%s", stdout)
	}
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	t.Run("bad fixtures name their field", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := run(t, nil, "--dry-run", badDir)
		wantCode(t, code, 1, stdout, stderr)
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		want := map[string]string{
			"bad-timestamp.json":           "created is not a timestamp",
			"missing-subscription-id.json": "subscription_id is required",
			"quantity-ten.json":            "quantity must be a whole number",
			"user-id-string.json":          "user_id must be an integer",
		}
		if len(lines) != len(want)+1 {
			t.Fatalf("want one line per fixture and a summary:\n%s", stdout)
		}
		for _, line := range lines[:len(lines)-1] {
			file := filepath.Base(strings.Fields(line)[0])
			if !strings.Contains(line, " BAD: ") || !strings.Contains(line, want[file]) {
				t.Errorf("line %q should say BAD: ...%s", line, want[file])
			}
		}
		if lines[len(lines)-1] != "checked 4, valid 0, invalid 4" {
			t.Errorf("summary = %q", lines[len(lines)-1])
		}
	})
	t.Run("the story is valid and sends nothing", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := run(t, nil, "--dry-run", storyDir)
		wantCode(t, code, 0, stdout, stderr)
		if !strings.Contains(stdout, "checked 4, valid 4, invalid 0") {
			t.Errorf("output:\n%s", stdout)
		}
	})
	t.Run("a placeholder naming no earlier fixture", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, code := run(t, nil, "--dry-run", filepath.Join(storyDir, "02-change.json"))
		wantCode(t, code, 1, stdout, stderr)
		if !strings.Contains(stdout, "unresolved placeholder {{accounts.01-order}}") {
			t.Errorf("output:\n%s", stdout)
		}
	})
}

func TestSigning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want int
	}{
		{"--secret", nil, []string{"--secret", testSecret}, 0},
		{"first of WEBHOOK_SECRETS", map[string]string{"WEBHOOK_SECRETS": testSecret + " " + otherSecret}, nil, 0},
		{"wrong secret", nil, []string{"--secret", otherSecret}, 1},
		{"--secret= overrides WEBHOOK_SECRETS and sends unsigned", map[string]string{"WEBHOOK_SECRETS": testSecret}, []string{"--secret="}, 1},
		{"no secret", nil, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, srv := newReceiver(t, testSecret)
			args := append([]string{"--url", srv.URL}, tt.args...)
			stdout, stderr, code := run(t, tt.env, append(args, storyDir)...)
			wantCode(t, code, tt.want, stdout, stderr)
			if tt.want == 1 && !strings.Contains(stdout, "UNAUTHORIZED") {
				t.Errorf("output should show the UNAUTHORIZED replies:\n%s", stdout)
			}
		})
	}
}

func TestPlaceholders(t *testing.T) {
	t.Parallel()
	t.Run("resolved from the earlier reply", func(t *testing.T) {
		t.Parallel()
		rc, srv := newReceiver(t)
		stdout, stderr, code := run(t, nil, "--url", srv.URL, filepath.Join(storyDir, "01-order.json"), filepath.Join(storyDir, "02-change.json"))
		wantCode(t, code, 0, stdout, stderr)
		ev, err := events.Decode(rc.bodies["SUBSCRIPTION_CHANGE"])
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.AccountIdentifier(); got != "1001" {
			t.Errorf("change sent accountIdentifier %q, want the order's 1001", got)
		}
	})
	t.Run("in an expectation file", func(t *testing.T) {
		t.Parallel()
		_, srv := newReceiver(t)
		dir := t.TempDir()
		copyFixture(t, dir, "01-order.json", "a-order", `{"success": true}`)
		copyFixture(t, dir, "01-order.json", "b-order-again", `{"success": true, "accountIdentifier": "{{accounts.a-order}}"}`)
		stdout, stderr, code := run(t, nil, "--url", srv.URL, "--concurrency", "4", dir)
		wantCode(t, code, 0, stdout, stderr)
	})
	t.Run("across paths with concurrency", func(t *testing.T) {
		t.Parallel()
		_, srv := newReceiver(t)
		dir := t.TempDir()
		for i := range 20 {
			copyFixture(t, dir, "02-change.json", fmt.Sprintf("change-%02d", i), `{"success": true}`)
		}
		stdout, stderr, code := run(t, nil, "--url", srv.URL, "--concurrency", "8", filepath.Join(storyDir, "01-order.json"), dir)
		wantCode(t, code, 0, stdout, stderr)
	})
	t.Run("unresolved fails that fixture only", func(t *testing.T) {
		t.Parallel()
		_, srv := newReceiver(t)
		dir := t.TempDir()
		copyFixture(t, dir, "01-order.json", "01-order", "")
		copyFixture(t, dir, "02-change.json", "02-change", "", "{{accounts.01-order}}", "{{accounts.nope}}")
		copyFixture(t, dir, "03-cancel.json", "03-cancel", `{"success": true}`)
		copyFixture(t, dir, "02-change.json", "04-typo", "", "{{accounts.01-order}}", "{{acounts.01-order}}")
		stdout, stderr, code := run(t, nil, "--url", srv.URL, dir)
		wantCode(t, code, 1, stdout, stderr)
		for _, want := range []string{
			"02-change.json - - - FAIL: unresolved placeholder {{accounts.nope}}: no fixture nope.json comes before this one in the run",
			"03-cancel.json 200 success ",
			"04-typo.json - - - FAIL: unknown placeholder {{acounts.01-order}}",
			"sent 4, succeeded 2, failed 2, mismatched 0",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q:\n%s", want, stdout)
			}
		}
	})
	t.Run("naming a fixture that got no account", func(t *testing.T) {
		t.Parallel()
		_, srv := newReceiver(t)
		dir := t.TempDir()
		copyFixture(t, dir, "03-cancel.json", "01-cancel", "", "{{accounts.01-order}}", "unknown")
		copyFixture(t, dir, "02-change.json", "02-change", "", "{{accounts.01-order}}", "{{accounts.01-cancel}}")
		stdout, stderr, code := run(t, nil, "--url", srv.URL, dir)
		wantCode(t, code, 1, stdout, stderr)
		if !strings.Contains(stdout, "fixture 01-cancel received no accountIdentifier") {
			t.Errorf("output:\n%s", stdout)
		}
	})
}

func TestBadArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no url", []string{storyDir}, "--url is required"},
		{"no path", []string{"--url", "http://localhost:1"}, "no PATH given"},
		{"concurrency 0", []string{"--url", "http://localhost:1", "--concurrency", "0", storyDir}, "--concurrency is 0"},
		{"bad format", []string{"--url", "http://localhost:1", "--format", "xml", storyDir}, `--format "xml"`},
		{"unknown flag", []string{"--url", "http://localhost:1", "--retries", "3", storyDir}, "flag provided but not defined: -retries"},
		{"not a url", []string{"--url", "localhost:8080", storyDir}, "is not an http(s) URL"},
		{"missing path", []string{"--url", "http://localhost:1", "no/such/folder"}, "PATH no/such/folder"},
		{"bad secret", []string{"--url", "http://localhost:1", "--secret", "whsec_short", storyDir}, "--secret"},
		{"expectation as path", []string{"--dry-run", filepath.Join(storyDir, "01-order.expect.json")}, "is an expectation file"},
		{"bad timeout", []string{"--url", "http://localhost:1", "--timeout", "0s", storyDir}, "--timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := run(t, nil, tt.args...)
			wantCode(t, code, 2, stdout, stderr)
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("error %q should say %q", stderr, tt.want)
			}
			if strings.Contains(stderr, "short") && tt.name == "bad secret" {
				t.Errorf("error prints the secret: %q", stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := run(t, nil, "--help")
	wantCode(t, code, 0, stdout, stderr)
	for _, flag := range []string{"-url", "-secret", "-extension", "-concurrency", "-dry-run", "-timeout", "-format", "-keep-ids"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("help lacks %s:\n%s", flag, stdout)
		}
	}
}

func TestFlagsAfterPaths(t *testing.T) {
	t.Parallel()
	_, srv := newReceiver(t)
	stdout, stderr, code := run(t, nil, storyDir, "--url", srv.URL, "--concurrency", "2")
	wantCode(t, code, 0, stdout, stderr)
}

func TestJSONFormat(t *testing.T) {
	t.Parallel()
	_, srv := newReceiver(t)
	stdout, stderr, code := run(t, nil, "--url", srv.URL, "--format", "json", storyDir)
	wantCode(t, code, 0, stdout, stderr)
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 5 {
		t.Fatalf("want 5 JSON lines, got %d:\n%s", len(lines), stdout)
	}
	first := lines[0]
	if first["type"] != "fixture" || first["result"] != "OK" || first["status"] != 200.0 || first["accountIdentifier"] != "1001" || first["success"] != true {
		t.Errorf("first line = %v", first)
	}
	if _, ok := first["durationMs"].(float64); !ok {
		t.Errorf("first line has no durationMs: %v", first)
	}
	if lines[3]["errorCode"] != "ACCOUNT_NOT_FOUND" {
		t.Errorf("fourth line = %v", lines[3])
	}
	sum := lines[4]
	if sum["type"] != "summary" || sum["sent"] != 4.0 || sum["succeeded"] != 4.0 || sum["failed"] != 0.0 || sum["mismatched"] != 0.0 {
		t.Errorf("summary = %v", sum)
	}
	if _, ok := sum["p99Ms"].(float64); !ok {
		t.Errorf("summary has no p99Ms: %v", sum)
	}
}

func TestTransportFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"5xx", func(w http.ResponseWriter, _ *http.Request) {
			reply(w, http.StatusServiceUnavailable, events.Failure(events.TransportError, "redis down"))
		}, "503 TRANSPORT_ERROR"},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}, "is not a JSON reply document"},
		{"too slow", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "no reply within --timeout 100ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			stdout, stderr, code := run(t, nil, "--url", srv.URL, "--timeout", "100ms", filepath.Join(storyDir, "01-order.json"))
			wantCode(t, code, 1, stdout, stderr)
			if !strings.Contains(stdout, tt.want) || !strings.Contains(stdout, "FAIL") || !strings.Contains(stdout, "failed 1") {
				t.Errorf("output should say FAIL and %q:\n%s", tt.want, stdout)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		stdout, stderr, code := run(t, nil, "--url", url, storyDir)
		wantCode(t, code, 1, stdout, stderr)
		if !strings.Contains(stdout, "sent 4, succeeded 0, failed 4") {
			t.Errorf("output:\n%s", stdout)
		}
	})
	t.Run("an expected 503 is not a failure", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			reply(w, http.StatusServiceUnavailable, events.Failure(events.TransportError, "q2 down"))
		}))
		t.Cleanup(srv.Close)
		dir := t.TempDir()
		copyFixture(t, dir, "01-order.json", "order", `{"status": 503, "errorCode": "TRANSPORT_ERROR"}`)
		stdout, stderr, code := run(t, nil, "--url", srv.URL, dir)
		wantCode(t, code, 0, stdout, stderr)
	})
}

func TestWebhookIDs(t *testing.T) {
	t.Parallel()
	order := filepath.Join(storyDir, "01-order.json")
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep-ids=", keep), func(t *testing.T) {
			t.Parallel()
			rc, srv := newReceiver(t)
			args := []string{"--url", srv.URL, order, order}
			if keep {
				args = append([]string{"--keep-ids"}, args...)
			}
			stdout, stderr, code := run(t, nil, args...)
			wantCode(t, code, 0, stdout, stderr)
			if len(rc.webhooks) != 2 || !strings.HasPrefix(rc.webhooks[0], "msg_") {
				t.Fatalf("webhook ids = %q", rc.webhooks)
			}
			if same := rc.webhooks[0] == rc.webhooks[1]; same != keep {
				t.Errorf("ids %q: same=%t, want %t", rc.webhooks, same, keep)
			}
		})
	}
}

func TestExtensionFlag(t *testing.T) {
	t.Parallel()
	rc, srv := newReceiver(t)
	stdout, stderr, code := run(t, nil, "--url", srv.URL+"/", "--extension", "other-product", filepath.Join(storyDir, "01-order.json"))
	wantCode(t, code, 0, stdout, stderr)
	if rc.exts[0] != "other-product" {
		t.Errorf("extension = %q", rc.exts[0])
	}
}

// TestManyFixtures sends a few thousand fixtures concurrently: every one is
// sent once, no more than --concurrency at a time, over reused connections.
func TestManyFixtures(t *testing.T) {
	t.Parallel()
	n := 2000
	if testing.Short() {
		n = 200
	}
	dir := t.TempDir()
	order, err := os.ReadFile(filepath.Join(storyDir, "01-order.json"))
	if err != nil {
		t.Fatal(err)
	}
	const sub = `"subscription_id": "`
	for i := range n {
		data := strings.Replace(string(order), sub, fmt.Sprintf("%sload-%05d-", sub, i), 1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("order-%05d.json", i)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc, srv := newReceiver(t, testSecret)
	stdout, stderr, code := run(t, nil, "--url", srv.URL, "--concurrency", "32", "--secret", testSecret, dir)
	wantCode(t, code, 0, stdout, stderr)
	if want := fmt.Sprintf("sent %d, succeeded %d, failed 0, mismatched 0", n, n); !strings.Contains(stdout, want) {
		t.Errorf("summary lacks %q", want)
	}
	if got := len(rc.bySub); got != n {
		t.Errorf("receiver provisioned %d subscriptions, want %d", got, n)
	}
	if m := rc.maxInFlight.Load(); m > 32 {
		t.Errorf("%d requests in flight at once, want at most 32", m)
	}
	if c := rc.conns.Load(); c > 64 {
		t.Errorf("%d connections for %d requests: keep-alive is not working", c, n)
	}
}

func TestMismatchShowsTheReplyMessage(t *testing.T) {
	t.Parallel()
	_, srv := newReceiver(t)
	dir := t.TempDir()
	copyFixture(t, dir, "04-change-after-cancel.json", "change", `{"success": true}`, "{{accounts.01-order}}", "unknown")
	stdout, stderr, code := run(t, nil, "--url", srv.URL, dir)
	wantCode(t, code, 1, stdout, stderr)
	if !strings.Contains(stdout, `MISMATCH: success: expected true, got false; the reply says "no such account"`) {
		t.Errorf("output:\n%s", stdout)
	}
}

func TestInterrupted(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a gone client only once the body is read
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	var out bytes.Buffer
	err := replay.Run(ctx, []string{"--url", srv.URL, storyDir}, func(string) string { return "" }, &out, io.Discard)
	var ee *replay.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(err.Error(), "interrupted after 1 of 4 fixtures") {
		t.Fatalf("Run = %v, want exit 1 interrupted after 1 of 4\n%s", err, out.String())
	}
}
