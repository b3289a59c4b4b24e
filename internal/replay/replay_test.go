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
// account, found by accountIdentifier else by subscription_id. It keeps its
// state between runs, like the service on Redis, and answers a webhook-id it
// has answered before with the same bytes and Idempotent-Replayed: true.
type receiver struct {
	verifier *signature.Verifier // nil: unsigned requests are accepted
	basic    []string            // user, password; nil: no Basic credentials asked

	mu       sync.Mutex
	nextID   int
	bySub    map[string]*account
	byID     map[string]*account
	replies  map[string][]byte // stored reply per webhook-id
	bodies   map[string][]byte // last body per event type, for placeholder checks
	webhooks []string          // webhook-id of every request
	subs     []string          // subscription_id of every valid event, in arrival order
	accounts []string          // accountIdentifier of every valid event, in arrival order
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
	rc := &receiver{nextID: 1000, bySub: map[string]*account{}, byID: map[string]*account{}, replies: map[string][]byte{}, bodies: map[string][]byte{}}
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
	if rc.basic != nil {
		if u, p, ok := r.BasicAuth(); !ok || u != rc.basic[0] || p != rc.basic[1] {
			reply(w, http.StatusUnauthorized, events.Failure(events.Unauthorized, "missing or wrong basic credentials"))
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
	id := r.Header.Get("webhook-id")
	if stored, ok := rc.replies[id]; ok {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		_, _ = w.Write(stored)
		return
	}
	rec := httptest.NewRecorder()
	rc.process(rec, ev, body)
	rc.replies[id] = rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// process carries out one new delivery; the caller holds rc.mu.
func (rc *receiver) process(w http.ResponseWriter, ev *events.SubscriptionEvent, body []byte) {
	rc.bodies[string(ev.EventType)] = body
	rc.subs = append(rc.subs, ev.SubscriptionID)
	rc.accounts = append(rc.accounts, ev.AccountIdentifier())
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
			if !strings.HasPrefix(lines[4], "sent 4, passed 4, failed 0, mismatched 0, skipped 0, replayed 0, p50 ") || !strings.Contains(lines[4], ", p99 ") {
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
	t.Run("names given twice, which the door refuses", func(t *testing.T) {
		t.Parallel()
		body, err := os.ReadFile(filepath.Join(storyDir, "01-order.json"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "twice.json")
		twice := bytes.Replace(body, []byte(`"subscription_id"`), []byte(`"Subscription_ID": "other", "subscription_id"`), 1)
		if err := os.WriteFile(path, twice, 0o600); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := run(t, nil, "--dry-run", path)
		wantCode(t, code, 1, stdout, stderr)
		if !strings.Contains(stdout, " BAD: ") || !strings.Contains(stdout, "differ only in case") {
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
		// Files named one by one are independent (a folder would be a story,
		// cut short at the first failure).
		var paths []string
		for _, n := range []string{"01-order", "02-change", "03-cancel", "04-typo"} {
			paths = append(paths, filepath.Join(dir, n+".json"))
		}
		stdout, stderr, code := run(t, nil, append([]string{"--url", srv.URL}, paths...)...)
		wantCode(t, code, 1, stdout, stderr)
		for _, want := range []string{
			"02-change.json - - - FAIL: unresolved placeholder {{accounts.nope}}: no fixture nope.json comes before this one in the run",
			"03-cancel.json 200 success ",
			"04-typo.json - - - FAIL: unknown placeholder {{acounts.01-order}}",
			"sent 4, passed 2, failed 2, mismatched 0, skipped 0",
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
	for _, flag := range []string{"-url", "-secret", "-basic-auth", "-extension", "-concurrency", "-dry-run", "-timeout", "-format", "-keep-ids", "-fresh"} {
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

// jsonLines decodes --format json output, one object per line.
func jsonLines(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestJSONFormat(t *testing.T) {
	t.Parallel()
	_, srv := newReceiver(t)
	stdout, stderr, code := run(t, nil, "--url", srv.URL, "--format", "json", storyDir)
	wantCode(t, code, 0, stdout, stderr)
	lines := jsonLines(t, stdout)
	if len(lines) != 5 {
		t.Fatalf("want 5 JSON lines, got %d:\n%s", len(lines), stdout)
	}
	// The outcome is an object with every field, whatever the reply held.
	tests := []struct {
		line int
		want map[string]any
	}{
		{0, map[string]any{"status": 200.0, "success": true, "errorCode": "", "accountIdentifier": "1001", "message": "", "replayed": false}},
		{1, map[string]any{"status": 200.0, "success": true, "errorCode": "", "accountIdentifier": "", "message": "", "replayed": false}},
		{3, map[string]any{"status": 200.0, "success": false, "errorCode": "ACCOUNT_NOT_FOUND", "accountIdentifier": "", "message": "no such account", "replayed": false}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("line ", tt.line+1), func(t *testing.T) {
			line := lines[tt.line]
			if line["type"] != "fixture" || line["result"] != "OK" {
				t.Errorf("line = %v", line)
			}
			got, ok := line["outcome"].(map[string]any)
			if !ok {
				t.Fatalf("outcome is %T %v, want an object", line["outcome"], line["outcome"])
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("outcome = %v, want %v", got, tt.want)
			}
			if _, ok := line["durationMs"].(float64); !ok {
				t.Errorf("line has no durationMs: %v", line)
			}
			if _, ok := line["subscriptionId"]; ok {
				t.Errorf("subscriptionId without --fresh: %v", line)
			}
		})
	}
	sum := lines[4]
	want := map[string]any{"type": "summary", "sent": 4.0, "passed": 4.0, "failed": 0.0, "mismatched": 0.0, "skipped": 0.0, "replayed": 0.0}
	for k, v := range want {
		if sum[k] != v {
			t.Errorf("summary[%q] = %v, want %v (%v)", k, sum[k], v, sum)
		}
	}
	if _, ok := sum["p99Ms"].(float64); !ok {
		t.Errorf("summary has no p99Ms: %v", sum)
	}

	t.Run("no reply, no outcome", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}))
		t.Cleanup(srv.Close)
		stdout, stderr, code := run(t, nil, "--url", srv.URL, "--format", "json", filepath.Join(storyDir, "01-order.json"))
		wantCode(t, code, 1, stdout, stderr)
		line := jsonLines(t, stdout)[0]
		if _, ok := line["outcome"]; ok || line["result"] != "FAIL" {
			t.Errorf("a reply that is no document: line = %v, want FAIL without outcome", line)
		}
	})
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
			timeout := "10s" // a loaded machine must not turn an answer into a timeout
			if strings.Contains(tt.want, "--timeout") {
				timeout = "100ms"
			}
			stdout, stderr, code := run(t, nil, "--url", srv.URL, "--timeout", timeout, filepath.Join(storyDir, "01-order.json"))
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
		if !strings.Contains(stdout, "sent 1, passed 0, failed 1, mismatched 0, skipped 3") {
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
	if want := fmt.Sprintf("sent %d, passed %d, failed 0, mismatched 0, skipped 0", n, n); !strings.Contains(stdout, want) {
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

// The story against one receiver that keeps its state, twice in a row: with
// --fresh both runs pass, each as a new subscription whose events all carry
// the same fresh id and the account its own ORDER received; without it the
// second run's ORDER meets the cancelled subscription, and the rest of the
// story is skipped rather than failed.
func TestFreshReplaysTwice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		secondCode int
		second     []string // in the second run's output
	}{
		{"--fresh", []string{"--fresh"}, 0, []string{"01-order.json 200 success 1002 ", "sent 4, passed 4, failed 0, mismatched 0, skipped 0, replayed 0"}},
		{"--fresh --concurrency 8", []string{"--fresh", "--concurrency", "8"}, 0, []string{"sent 4, passed 4"}},
		{"--fresh --keep-ids: new webhook-ids too", []string{"--fresh", "--keep-ids"}, 0, []string{"sent 4, passed 4, failed 0, mismatched 0, skipped 0, replayed 0"}},
		{"without --fresh", nil, 1, []string{
			"01-order.json 200 FORBIDDEN ",
			"02-change.json - - - SKIPPED: an earlier event of this story failed",
			"04-change-after-cancel.json - - - SKIPPED: an earlier event of this story failed",
			"sent 1, passed 0, failed 0, mismatched 1, skipped 3",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc, srv := newReceiver(t)
			args := append(append([]string{"--url", srv.URL}, tt.args...), storyDir)
			stdout, stderr, code := run(t, nil, args...)
			wantCode(t, code, 0, stdout, stderr)
			stdout, stderr, code = run(t, nil, args...)
			wantCode(t, code, tt.secondCode, stdout, stderr)
			for _, want := range tt.second {
				if !strings.Contains(stdout, want) {
					t.Errorf("second run's output lacks %q:\n%s", want, stdout)
				}
			}
			if tt.secondCode != 0 {
				if !strings.Contains(stderr, "1 of 1 fixtures did not pass (0 failed, 1 mismatched), 3 skipped after them") {
					t.Errorf("error line = %q", stderr)
				}
				return
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			if len(rc.subs) != 8 || len(rc.webhooks) != 8 {
				t.Fatalf("the receiver saw %d events, %d webhook-ids; want 8", len(rc.subs), len(rc.webhooks))
			}
			const original = "65d945e7-7911-47f8-b7c1-8def1a776464"
			runs := [][]string{rc.subs[:4], rc.subs[4:]}
			for i, subs := range runs {
				for _, s := range subs {
					if s != subs[0] || s == original {
						t.Errorf("run %d sent subscription ids %q: want one fresh id, not the fixture's", i+1, subs)
						break
					}
				}
				// The CHANGE, CANCEL and late CHANGE name this run's account.
				want := fmt.Sprint(1001 + i)
				for _, a := range rc.accounts[4*i+1 : 4*i+4] {
					if a != want {
						t.Errorf("run %d sent accountIdentifiers %q, want %s", i+1, rc.accounts[4*i:4*i+4], want)
						break
					}
				}
			}
			if runs[0][0] == runs[1][0] {
				t.Errorf("both runs sent subscription %s", runs[0][0])
			}
			seen := map[string]bool{}
			for _, id := range rc.webhooks {
				if seen[id] {
					t.Errorf("webhook-id %s sent twice: %q", id, rc.webhooks)
				}
				seen[id] = true
			}
		})
	}
}

// --fresh shows the subscription it sent in --format json, so that it can be
// looked up in the receiver's logs or read API.
func TestFreshJSONNamesTheSubscription(t *testing.T) {
	t.Parallel()
	rc, srv := newReceiver(t)
	stdout, stderr, code := run(t, nil, "--url", srv.URL, "--fresh", "--format", "json", filepath.Join(storyDir, "01-order.json"))
	wantCode(t, code, 0, stdout, stderr)
	if got := jsonLines(t, stdout)[0]["subscriptionId"]; got != rc.subs[0] {
		t.Errorf("subscriptionId = %v, want the id sent, %s", got, rc.subs[0])
	}
}

// A fixture that depends on one that did not pass is skipped, not failed:
// the later events of its story, or a fixture whose placeholder names it.
// Fixtures that depend on nothing go on.
func TestSkipped(t *testing.T) {
	t.Parallel()
	const wrong = `{"success": false}` // the receiver answers success: a mismatch
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) []string // the paths to replay
		want  []string
	}{
		{"a story's first event fails", func(t *testing.T, dir string) []string {
			copyFixture(t, dir, "01-order.json", "01-order", wrong)
			copyFixture(t, dir, "02-change.json", "02-change", `{"success": true}`)
			copyFixture(t, dir, "03-cancel.json", "03-cancel", `{"success": true}`)
			return []string{dir}
		}, []string{
			"01-order.json 200 success 1001 ",
			"02-change.json - - - SKIPPED: an earlier event of this story failed",
			"03-cancel.json - - - SKIPPED: an earlier event of this story failed",
			"sent 1, passed 0, failed 0, mismatched 1, skipped 2",
		}},
		{"a story's middle event fails", func(t *testing.T, dir string) []string {
			copyFixture(t, dir, "01-order.json", "01-order", `{"success": true}`)
			copyFixture(t, dir, "02-change.json", "02-change", `{"success": true}`, "{{accounts.01-order}}", "{{accounts.nope}}")
			copyFixture(t, dir, "03-cancel.json", "03-cancel", `{"success": true}`)
			return []string{dir}
		}, []string{
			"01-order.json 200 success 1001 ",
			"02-change.json - - - FAIL: unresolved placeholder {{accounts.nope}}",
			"03-cancel.json - - - SKIPPED: an earlier event of this story failed",
			"sent 2, passed 1, failed 1, mismatched 0, skipped 1",
		}},
		{"a fixture of another path names a failed one", func(t *testing.T, dir string) []string {
			copyFixture(t, dir, "01-order.json", "order", wrong)
			copyFixture(t, dir, "02-change.json", "change", "", "{{accounts.01-order}}", "{{accounts.order}}")
			return []string{filepath.Join(dir, "order.json"), filepath.Join(dir, "change.json")}
		}, []string{
			"change.json - - - SKIPPED: fixture order, which this one names, did not pass",
			"sent 1, passed 0, failed 0, mismatched 1, skipped 1",
		}},
		{"a folder without placeholders is no story", func(t *testing.T, dir string) []string {
			copyFixture(t, dir, "01-order.json", "a", wrong)
			copyFixture(t, dir, "01-order.json", "b", `{"success": true}`, "65d945e7", "75d945e7")
			return []string{dir}
		}, []string{
			"b.json 200 success 100", // either id: with concurrency, either may come first
			"sent 2, passed 1, failed 0, mismatched 1, skipped 0",
		}},
	}
	for _, tt := range tests {
		for _, conc := range []string{"1", "4"} {
			t.Run(tt.name+", concurrency "+conc, func(t *testing.T) {
				t.Parallel()
				_, srv := newReceiver(t)
				paths := tt.setup(t, t.TempDir())
				stdout, stderr, code := run(t, nil, append([]string{"--url", srv.URL, "--concurrency", conc}, paths...)...)
				wantCode(t, code, 1, stdout, stderr)
				for _, want := range tt.want {
					if !strings.Contains(stdout, want) {
						t.Errorf("output lacks %q:\n%s", want, stdout)
					}
				}
			})
		}
	}
}

// Replies the receiver answered from its store (Idempotent-Replayed: true)
// are marked on their line and counted in the summary.
func TestReplayedCounted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		format string
		want   func(t *testing.T, stdout string)
	}{
		{"text", "text", func(t *testing.T, stdout string) {
			for _, want := range []string{"01-order.json 200 success 1001 (replayed) ", "04-change-after-cancel.json 200 ACCOUNT_NOT_FOUND (replayed) ", "sent 4, passed 4, failed 0, mismatched 0, skipped 0, replayed 4"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
		}},
		{"json", "json", func(t *testing.T, stdout string) {
			lines := jsonLines(t, stdout)
			for _, line := range lines[:4] {
				if o, _ := line["outcome"].(map[string]any); o["replayed"] != true {
					t.Errorf("line %v: outcome.replayed is not true", line)
				}
			}
			if sum := lines[4]; sum["replayed"] != 4.0 {
				t.Errorf("summary = %v, want replayed 4", sum)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, srv := newReceiver(t)
			// --keep-ids: the second run is the same deliveries again.
			args := []string{"--url", srv.URL, "--keep-ids", "--format", tt.format, storyDir}
			stdout, stderr, code := run(t, nil, args...)
			wantCode(t, code, 0, stdout, stderr)
			if strings.Contains(stdout, "replayed\":true") || strings.Contains(stdout, "(replayed)") {
				t.Errorf("the first run has replayed replies:\n%s", stdout)
			}
			stdout, stderr, code = run(t, nil, args...)
			wantCode(t, code, 0, stdout, stderr)
			tt.want(t, stdout)
		})
	}
}

func TestBasicAuth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want int
	}{
		{"--basic-auth", nil, []string{"--basic-auth", "market:s3cret:with:colons"}, 0},
		{"WEBHOOK_BASIC_AUTH", map[string]string{"WEBHOOK_BASIC_AUTH": "market:s3cret:with:colons"}, nil, 0},
		{"the flag wins over the environment", map[string]string{"WEBHOOK_BASIC_AUTH": "market:wrong"}, []string{"--basic-auth", "market:s3cret:with:colons"}, 0},
		{"wrong password", nil, []string{"--basic-auth", "market:wrong"}, 1},
		{"--basic-auth= sends none", map[string]string{"WEBHOOK_BASIC_AUTH": "market:s3cret:with:colons"}, []string{"--basic-auth="}, 1},
		{"none", nil, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc, srv := newReceiver(t)
			rc.basic = []string{"market", "s3cret:with:colons"}
			stdout, stderr, code := run(t, tt.env, append(append([]string{"--url", srv.URL}, tt.args...), storyDir)...)
			wantCode(t, code, tt.want, stdout, stderr)
			if tt.want == 1 && !strings.Contains(stdout, "401 UNAUTHORIZED") {
				t.Errorf("output should show the UNAUTHORIZED reply:\n%s", stdout)
			}
		})
	}
}

func TestBasicAuthBadValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no colon", nil, []string{"--basic-auth", "marketpassword"}, "--basic-auth must be user:password"},
		{"no user", nil, []string{"--basic-auth", ":password"}, "--basic-auth must be user:password"},
		{"no password", nil, []string{"--basic-auth", "market:"}, "--basic-auth must be user:password"},
		{"from the environment", map[string]string{"WEBHOOK_BASIC_AUTH": "marketpassword"}, nil, "WEBHOOK_BASIC_AUTH must be user:password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := run(t, tt.env, append(append([]string{"--url", "http://127.0.0.1:1"}, tt.args...), storyDir)...)
			wantCode(t, code, 2, stdout, stderr)
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("error %q should say %q", stderr, tt.want)
			}
			if strings.Contains(stderr, "password") && !strings.Contains(stderr, "user:password") || strings.Contains(stderr, "marketpassword") {
				t.Errorf("error prints the credentials: %q", stderr)
			}
		})
	}
}
