package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// logLines decodes a service's JSON log lines.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// Demo mode says so in one line, which names the sandbox and every
// product's targets; nothing else at start warns of the embedded parts.
func TestDemoModeStartLine(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{"PRODUCTS_FILE": "../../products.example.yaml"})
	var demo []map[string]any
	for _, l := range logLines(t, svc.logs.String()) {
		msg, _ := l["msg"].(string)
		if strings.Contains(msg, "demo mode") {
			demo = append(demo, l)
		}
		if l["level"] == "warn" && !strings.Contains(msg, "demo mode") {
			t.Errorf("another warning at the start of demo mode: %q", msg)
		}
		if msg == "listening" && l["mode"] != "demo" {
			t.Errorf("the listening line says mode %v", l["mode"])
		}
	}
	if len(demo) != 1 {
		t.Fatalf("%d lines say demo mode, want one:\n%s", len(demo), svc.logs)
	}
	products, _ := demo[0]["products"].(map[string]any)
	sb, _ := demo[0]["sandbox"].(string)
	host := strings.TrimPrefix(sb, "http://")
	if want := "q2 " + host + ", helix " + host; products["Business Access"] != want || len(products) != 4 {
		t.Errorf("products %v, want 4 and Business Access = %q", products, want)
	}
	if status, outside := readyz(t, svc.url); status != http.StatusOK ||
		!equalMaps(outside, map[string]string{"q2": "sandbox", "qbd_connect": "sandbox", "helix": "sandbox", "redis": "embedded"}) {
		t.Errorf("/readyz %d %v", status, outside)
	}
}

// Production lists each product, its targets and the host each calls,
// never a credential; no sandbox serves anything.
func TestProductionStartLine(t *testing.T) {
	t.Parallel()
	sb, url := startSandbox(t, q2sandbox.Config{})
	env := with(q2Env(url, miniRedisURL(t)), "PRODUCTS_FILE", "../../products.example.yaml")
	svc := startService(t, env)
	host := strings.TrimPrefix(url, "http://")
	var line map[string]any
	for _, l := range logLines(t, svc.logs.String()) {
		switch l["msg"] {
		case "production mode":
			line = l
		case "listening":
			if l["mode"] != "production" {
				t.Errorf("the listening line says mode %v", l["mode"])
			}
		}
	}
	if line == nil {
		t.Fatalf("no production mode line:\n%s", svc.logs)
	}
	want := map[string]any{"Online Banking Plus": "q2 " + host, "Treasury Desk": "q2 " + host,
		"QBD Connect": "qbd_connect " + host, "Business Access": "q2 " + host + ", helix " + host}
	if got, _ := json.Marshal(line["products"]); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("products %s, want %v", got, want)
	}
	logs := svc.logs.String()
	for _, secret := range []string{q2sandbox.DefaultClientSecret, "demo mode", "sandbox mode"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain %q", secret)
		}
	}
	body := withSubscription(t, "subscription-order.json", "sub-prod-line", "")
	wantReply(t, post(t, svc.url+"/marketplace/qbd-connect", body, nil), 200, "")
	if st := sb.Stats(); st.Calls["qbd.POST /customers"] != 1 {
		t.Errorf("the configured QBD Connect got %d customers, want 1 (%v)", st.Calls["qbd.POST /customers"], st.Calls)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// Redis at start: a password Redis refuses, or a policy that evicts, stops
// the start with one line (exit 1) saying what to fix, never the password;
// a Redis that hides its policy is one warning, and the start goes on.
func TestRedisAtStart(t *testing.T) {
	t.Parallel()
	const password = "redis-pw-8c1e"
	_, sandboxURL := startSandbox(t, q2sandbox.Config{})
	tests := []struct {
		name     string
		redisURL func(t *testing.T) string
		wantLine string // "": the service starts
	}{
		{"no password where one is required", func(t *testing.T) string {
			m := miniredis.RunT(t)
			m.RequireAuth(password)
			return "redis://" + m.Addr()
		}, "REDIS_URL: Redis refused the credentials: Redis requires a password and none was given (NOAUTH Authentication required.); the password in REDIS_URL is wrong or missing"},
		{"wrong password", func(t *testing.T) string {
			m := miniredis.RunT(t)
			m.RequireAuth("another-" + password)
			return "redis://:" + password + "@" + m.Addr()
		}, "REDIS_URL: Redis refused the credentials: the user or password is wrong"},
		{"evicting", func(t *testing.T) string {
			s := testredis.Real(t)
			setPolicy(t, s, "allkeys-lru")
			return s.URL()
		}, "Redis maxmemory-policy: Redis may delete keys when its memory is full, delivery records included, and an event whose record is gone is processed twice (maxmemory-policy is allkeys-lru); " +
			"set it to noeviction: CONFIG SET maxmemory-policy noeviction"},
		{"hidden policy", func(t *testing.T) string { return miniRedisURL(t) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := q2Env(sandboxURL, tt.redisURL(t))
			if tt.wantLine == "" {
				svc := startService(t, env)
				var warnings []string
				for _, l := range logLines(t, svc.logs.String()) {
					if msg, _ := l["msg"].(string); strings.Contains(msg, "maxmemory-policy") {
						warnings = append(warnings, l["level"].(string)+" "+msg)
					}
				}
				if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "warn Redis refuses CONFIG and INFO") {
					t.Errorf("lines about the policy %q, want one warning", warnings)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var logs syncBuffer
			err := run(ctx, []string{"serve"}, func(k string) string {
				if k == "WEBHOOK_ADDR" {
					return "127.0.0.1:0"
				}
				return env[k]
			}, &logs, &logs)
			var stderr bytes.Buffer
			if code := exitCode(err, &stderr); code != 1 {
				t.Fatalf("exit %d (%v), want 1\n%s", code, err, logs.String())
			}
			if line := stderr.String(); strings.Count(line, "\n") != 1 || !strings.Contains(line, tt.wantLine) {
				t.Errorf("stderr %q, want one line containing %q", line, tt.wantLine)
			}
			if strings.Contains(stderr.String()+logs.String(), password) {
				t.Error("the password was written out")
			}
			if strings.Contains(logs.String(), `"msg":"listening"`) {
				t.Error("the service listened")
			}
		})
	}
}

// setPolicy sets the maxmemory-policy of the redis-server s.
func setPolicy(t *testing.T, s *testredis.Server, policy string) {
	t.Helper()
	o, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	if err := c.ConfigSet(context.Background(), "maxmemory-policy", policy).Err(); err != nil {
		t.Fatal(err)
	}
}

// A Redis set to evict after start: the next readiness checks show it in
// "outside" (readiness itself stays: Redis answers) and one error line
// says what to fix; set back, it is ok again.
func TestRedisEvictingLater(t *testing.T) {
	t.Parallel()
	s := testredis.Real(t)
	_, sandboxURL := startSandbox(t, q2sandbox.Config{})
	svc := startService(t, q2Env(sandboxURL, s.URL()))
	if _, outside := readyz(t, svc.url); outside["redis"] != "ok" {
		t.Fatalf("redis state at start %q, want ok", outside["redis"])
	}
	setPolicy(t, s, "volatile-lru")
	eventually(t, 10*time.Second, "/readyz to show the policy", func() bool {
		status, outside := readyz(t, svc.url)
		return status == http.StatusOK && outside["redis"] == "evicting: maxmemory-policy is volatile-lru"
	})
	for range 3 {
		readyz(t, svc.url)
	}
	const msg = "Redis's maxmemory-policy is volatile-lru, not noeviction"
	if n := strings.Count(svc.logs.String(), msg); n != 1 {
		t.Errorf("%d lines say %q, want one (at the change)\n%s", n, msg, svc.logs)
	}
	for _, l := range logLines(t, svc.logs.String()) {
		if m, _ := l["msg"].(string); strings.HasPrefix(m, msg) && (l["level"] != "error" || !strings.Contains(m, "CONFIG SET maxmemory-policy noeviction")) {
			t.Errorf("the line %v is not an error naming the fix", l)
		}
	}
	setPolicy(t, s, "noeviction")
	eventually(t, 10*time.Second, "/readyz to show ok again", func() bool {
		_, outside := readyz(t, svc.url)
		return outside["redis"] == "ok"
	})
	if !strings.Contains(svc.logs.String(), "Redis's maxmemory-policy is noeviction again") {
		t.Errorf("no line says the policy is back:\n%s", svc.logs)
	}
}

// `webhook version` says the module version and the VCS revision the
// binary was built from, and whether the tree had changes.
func TestVersionFromBuildInfo(t *testing.T) {
	t.Parallel()
	info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "82e1415f0c2b5d9b2c9b7a1d3e4f5a6b7c8d9e0f"}, {Key: "vcs.modified", Value: "true"}}}
	tests := []struct {
		override string
		info     *debug.BuildInfo
		want     string
	}{
		{"", info, "webhook v1.2.0 (rev 82e1415f0c2b5d9b2c9b7a1d3e4f5a6b7c8d9e0f, modified) go1.26.0"},
		{"1.3.0-rc1", info, "webhook 1.3.0-rc1 (rev 82e1415f0c2b5d9b2c9b7a1d3e4f5a6b7c8d9e0f, modified) go1.26.0"},
		{"", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, "webhook (devel) (no VCS revision: built outside a git checkout or with -buildvcs=false) go1.26.0"},
		{"", &debug.BuildInfo{GoVersion: "go1.26.0", Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}}, "webhook (devel) (rev abc) go1.26.0"},
	}
	for _, tt := range tests {
		if got := buildVersion(tt.override, tt.info); got != tt.want {
			t.Errorf("buildVersion(%q) = %q, want %q", tt.override, got, tt.want)
		}
	}

	// The real binary says what Go recorded in it (go version -m): the
	// revision where Go found the checkout (go build records it; GOFLAGS
	// or a git worktree can keep it from doing so), else that it has none.
	if testing.Short() {
		t.Skip("-short: skipping the build of the binary")
	}
	bin := filepath.Join(t.TempDir(), "webhook")
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "(no VCS revision"
	if m := regexp.MustCompile(`(?m)^\s*build\s+vcs\.revision=(\w+)$`).FindSubmatch(meta); m != nil {
		want = "(rev " + string(m[1])
		if bytes.Contains(meta, []byte("vcs.modified=true")) {
			want += ", modified)"
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "webhook ") || !strings.Contains(string(out), want) {
		t.Errorf("webhook version = %q, want it to contain %q (go version -m:\n%s)", out, want, meta)
	}
}
