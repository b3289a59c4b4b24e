// Package deploy_test checks that the container and deployment files
// (../Dockerfile, kubernetes/*.yaml, compose.yaml) name only routes, ports
// and settings that the code really has, so that a renamed route, port or
// variable breaks a test instead of a rollout. There is no YAML library in
// go.mod: the few fields needed are read with line scanning, which is why
// the files keep a plain block style (one key per line).
package deploy_test

import (
	"context"
	"errors"
	"github.com/banking-marketplace/webhook/internal/events"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/handlers"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// okReceiver answers every delivery with success.
type okReceiver struct{}

func (okReceiver) Receive(context.Context, inbox.Delivery) (inbox.Reply, error) {
	return inbox.Reply{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"1"}`), Code: "SUCCESS"}, nil
}

func (okReceiver) Copy(context.Context, string) (inbox.Reply, events.Copy, bool) {
	return inbox.Reply{}, events.Copy{}, false
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// setting is one row of the settings table in cmd/webhook/config.go.
type setting struct{ flag, def string }

var settingRow = regexp.MustCompile(`^\s*\{"([A-Z][A-Z0-9_]*)",\s*"([a-z0-9-]+)",\s*"([^"]*)"`)

// settings reads the binary's settings table: env name → flag and default.
func settings(t *testing.T) map[string]setting {
	t.Helper()
	out := map[string]setting{}
	for _, line := range strings.Split(read(t, "../cmd/webhook/config.go"), "\n") {
		if m := settingRow.FindStringSubmatch(line); m != nil {
			out[m[1]] = setting{flag: m[2], def: m[3]}
		}
	}
	if _, ok := out["WEBHOOK_ADDR"]; !ok || len(out) < 5 {
		t.Fatalf("found %d settings in cmd/webhook/config.go and no WEBHOOK_ADDR: has the table's layout changed?", len(out))
	}
	return out
}

// --- a little YAML, by lines -------------------------------------------

func indent(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

func blank(line string) bool {
	s := strings.TrimSpace(line)
	return s == "" || strings.HasPrefix(s, "#")
}

// under returns the lines indented under the first line whose key is key
// (and has no scalar value; an anchor, &name, is allowed).
func under(lines []string, key string) []string {
	for i, line := range lines {
		m := keyValue.FindStringSubmatch(stripComment(line))
		if m == nil || m[1] != key || (strings.TrimSpace(m[2]) != "" && !strings.HasPrefix(m[2], "&")) {
			continue
		}
		var out []string
		for _, l := range lines[i+1:] {
			if blank(l) {
				continue
			}
			if indent(l) <= indent(line) {
				break
			}
			out = append(out, l)
		}
		return out
	}
	return nil
}

func stripComment(s string) string {
	if i := strings.Index(s, " #"); i >= 0 && strings.Count(s[:i], `"`)%2 == 0 {
		s = s[:i]
	}
	return s
}

var keyValue = regexp.MustCompile(`^\s*(?:-\s+)?([A-Za-z_][\w.-]*):\s*(.*)$`)

// pairs returns the key: scalar lines of a block (first occurrence wins),
// values unquoted and without comments.
func pairs(lines []string) map[string]string {
	out := map[string]string{}
	for _, l := range lines {
		if blank(l) {
			continue
		}
		if m := keyValue.FindStringSubmatch(l); m != nil {
			if _, dup := out[m[1]]; !dup {
				out[m[1]] = unquote(strings.TrimSpace(stripComment(m[2])))
			}
		}
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// all returns every value of key in the lines, in order.
func all(lines []string, key string) []string {
	var out []string
	for _, l := range lines {
		if m := keyValue.FindStringSubmatch(stripComment(l)); m != nil && m[1] == key {
			out = append(out, unquote(strings.TrimSpace(m[2])))
		}
	}
	return out
}

// listItems splits a block into its "- " items.
func listItems(lines []string) [][]string {
	var out [][]string
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "- ") || len(out) == 0 {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], l)
	}
	return out
}

// envKeys returns the upper-case keys of a ConfigMap's or Secret's data.
func envKeys(t *testing.T, file string, sections ...string) map[string]string {
	t.Helper()
	lines := strings.Split(read(t, file), "\n")
	out := map[string]string{}
	for _, s := range sections {
		for k, v := range pairs(under(lines, s)) {
			out[k] = v
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no keys under %v", file, sections)
	}
	return out
}

// composeService is one service of compose.yaml with its merged (<<: *x)
// anchors, nearest first.
type composeService struct {
	name     string
	segments [][]string
}

// get returns the block under key from the service or its anchors.
func (s composeService) get(key string) []string {
	for _, seg := range s.segments {
		if b := under(seg, key); b != nil {
			return b
		}
	}
	return nil
}

func (s composeService) scalar(key string) string {
	for _, seg := range s.segments {
		if len(seg) == 0 {
			continue
		}
		top := indent(seg[0])
		for _, l := range seg {
			if indent(l) == top {
				if m := keyValue.FindStringSubmatch(stripComment(l)); m != nil && m[1] == key {
					return unquote(strings.TrimSpace(m[2]))
				}
			}
		}
	}
	return ""
}

func (s composeService) env() map[string]string {
	out := map[string]string{}
	for i := len(s.segments) - 1; i >= 0; i-- { // the service's own values win
		for k, v := range pairs(under(s.segments[i], "environment")) {
			out[k] = v
		}
	}
	return out
}

func (s composeService) command() string {
	return strings.NewReplacer(`"`, "", "[", "", "]", "", ",", " ").Replace(s.scalar("command"))
}

// publishedContainerPorts returns the container side of "HOST:CONTAINER".
func (s composeService) publishedContainerPorts() []string {
	var out []string
	for _, l := range s.get("ports") {
		p := unquote(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stripComment(l)), "-")))
		p = strings.TrimSuffix(p, "/tcp")
		out = append(out, p[strings.LastIndex(p, ":")+1:])
	}
	return out
}

var (
	topBlock   = regexp.MustCompile(`^([\w-]+):\s*(?:&([\w-]+))?\s*$`)
	serviceKey = regexp.MustCompile(`^  ([\w.-]+):\s*$`)
	mergeKey   = regexp.MustCompile(`^\s*<<:\s*\*([\w-]+)`)
)

func composeServices(t *testing.T) map[string]composeService {
	t.Helper()
	lines := strings.Split(read(t, "compose.yaml"), "\n")
	anchors := map[string][]string{}
	var svcLines []string
	for i := 0; i < len(lines); i++ {
		m := topBlock.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		block := under(lines[i:], m[1])
		if m[2] != "" {
			anchors[m[2]] = block
		}
		if m[1] == "services" {
			svcLines = block
		}
	}
	var resolve func(seg []string, depth int) [][]string
	resolve = func(seg []string, depth int) [][]string {
		out := [][]string{seg}
		if len(seg) == 0 {
			return out
		}
		for _, l := range seg {
			if m := mergeKey.FindStringSubmatch(l); m != nil && indent(l) == indent(seg[0]) && depth < 5 {
				a, ok := anchors[m[1]]
				if !ok {
					t.Fatalf("compose.yaml: merge of unknown anchor *%s", m[1])
				}
				out = append(out, resolve(a, depth+1)...)
			}
		}
		return out
	}
	out := map[string]composeService{}
	for i, l := range svcLines {
		if m := serviceKey.FindStringSubmatch(l); m != nil {
			out[m[1]] = composeService{name: m[1], segments: resolve(under(svcLines[i:], m[1]), 0)}
		}
	}
	if len(out) == 0 {
		t.Fatal("compose.yaml: no services found")
	}
	return out
}

// receivers are the compose services that run `webhook serve`.
func receivers(t *testing.T, svcs map[string]composeService) []composeService {
	t.Helper()
	var out []composeService
	for _, s := range svcs {
		if _, ok := s.env()["WEBHOOK_ADDR"]; ok || s.command() == "serve" {
			out = append(out, s)
		}
	}
	if len(out) < 2 {
		t.Fatalf("compose.yaml: %d receivers; want two sharing one Redis", len(out))
	}
	return out
}

func addrPort(t *testing.T, where, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		t.Fatalf("%s: %q is not a listen address like :8080: %v", where, addr, err)
	}
	return port
}

// --- the tests ---------------------------------------------------------

// probe is one HTTP probe: of Kubernetes (kind readinessProbe, ...) or a
// compose receiver's healthcheck (kind healthcheck; none today, as the
// distroless image has nothing to run one with, but one added later with
// a URL is checked).
type probe struct{ file, kind, path, port string }

var probeKind = regexp.MustCompile(`^\s*(\w+Probe):\s*$`)
var healthURL = regexp.MustCompile(`https?://[^/\s"',\]]+(/[^\s"',\]]*)`)

func probes(t *testing.T) []probe {
	t.Helper()
	var out []probe
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		kind := ""
		for _, l := range strings.Split(read(t, f), "\n") {
			if m := probeKind.FindStringSubmatch(l); m != nil {
				kind = m[1]
			}
			if m := keyValue.FindStringSubmatch(stripComment(l)); m != nil {
				switch m[1] {
				case "path":
					out = append(out, probe{file: f, kind: kind, path: unquote(strings.TrimSpace(m[2]))})
				case "port":
					if n := len(out); n > 0 && out[n-1].port == "" && out[n-1].kind == kind {
						out[n-1].port = unquote(strings.TrimSpace(m[2]))
					}
				}
			}
		}
	}
	for _, s := range receivers(t, composeServices(t)) {
		for _, l := range s.get("healthcheck") {
			for _, m := range healthURL.FindAllStringSubmatch(l, -1) {
				out = append(out, probe{file: "compose.yaml " + s.name, kind: "healthcheck", path: m[1]})
			}
		}
	}
	return out
}

func get(t *testing.T, base, path string) int {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestProbePathsAreServed: every probe path is a route of the service, and
// the probes mean what they should: liveness and start-up do not depend on
// Redis (an outage must make pods unready, not restart them all), readiness
// does.
func TestProbePathsAreServed(t *testing.T) {
	var redisDown error
	srv := httptest.NewServer(handlers.New(handlers.Config{
		Receiver: okReceiver{},
		Ready:    func(context.Context) error { return redisDown },
	}))
	defer srv.Close()

	found := map[string]int{}
	for _, p := range probes(t) {
		found[p.kind]++
		redisDown = nil
		if code := get(t, srv.URL, p.path); code != http.StatusOK { // 404 or 405: not a route
			t.Errorf("%s: %s path %s: GET answers %d, want 200", p.file, p.kind, p.path, code)
			continue
		}
		redisDown = errors.New("redis: connection refused")
		code := get(t, srv.URL, p.path)
		switch p.kind {
		case "readinessProbe":
			if code != http.StatusServiceUnavailable {
				t.Errorf("%s: readinessProbe path %s answers %d while Redis is down, want 503: it would keep sending deliveries to a pod that cannot take them", p.file, p.path, code)
			}
		case "livenessProbe", "startupProbe":
			if code != http.StatusOK {
				t.Errorf("%s: %s path %s answers %d while Redis is down, want 200: a Redis outage would restart every pod", p.file, p.kind, p.path, code)
			}
		}
	}
	for _, kind := range []string{"readinessProbe", "livenessProbe"} {
		if found[kind] == 0 {
			t.Errorf("kubernetes/: no %s with an httpGet path found", kind)
		}
	}
	t.Logf("probes checked: %v", found)

	// The extension route the Service forwards to is there too.
	resp, err := http.Post(srv.URL+"/marketplace/demo", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		t.Errorf("POST /marketplace/demo answers %d: the route is missing", resp.StatusCode)
	}
}

// TestPortsAgree: the port of WEBHOOK_ADDR in the ConfigMap is the one the
// Deployment, its probes, the Service, the Dockerfile and compose use.
func TestPortsAgree(t *testing.T) {
	cfg := envKeys(t, "kubernetes/configmap.yaml", "data")
	want := addrPort(t, "configmap.yaml WEBHOOK_ADDR", cfg["WEBHOOK_ADDR"])
	if def := addrPort(t, "config.go WEBHOOK_ADDR default", settings(t)["WEBHOOK_ADDR"].def); def != want {
		t.Errorf("configmap.yaml WEBHOOK_ADDR port %s differs from the binary's default %s: `docker run -p %s:%s` would not reach it", want, def, def, def)
	}

	// Deployment: every containerPort, and the names they are known by.
	dep := strings.Split(read(t, "kubernetes/deployment.yaml"), "\n")
	named := map[string]string{}
	cports := all(dep, "containerPort")
	if len(cports) == 0 {
		t.Fatal("deployment.yaml: no containerPort")
	}
	for _, p := range cports {
		if p != want {
			t.Errorf("deployment.yaml: containerPort %s, but WEBHOOK_ADDR listens on %s", p, want)
		}
	}
	for _, item := range listItems(under(dep, "ports")) { // the container's ports
		if kv := pairs(item); kv["name"] != "" {
			named[kv["name"]] = kv["containerPort"]
		}
	}
	if named["http"] != want {
		t.Errorf("deployment.yaml: no containerPort %s named http (found %v)", want, named)
	}
	resolve := func(where, port string) {
		if n, ok := named[port]; ok {
			port = n
		}
		if port != want {
			t.Errorf("%s: port %q does not reach the container port %s", where, port, want)
		}
	}
	for _, p := range probes(t) {
		if strings.HasPrefix(p.file, "kubernetes/") {
			resolve(p.file+" "+p.kind, p.port)
		}
	}
	targets := all(strings.Split(read(t, "kubernetes/service.yaml"), "\n"), "targetPort")
	if len(targets) == 0 {
		t.Error("service.yaml: no targetPort")
	}
	for _, p := range targets {
		resolve("service.yaml targetPort", p)
	}

	// Dockerfile.
	expose := regexp.MustCompile(`(?m)^EXPOSE\s+(\d+)(?:/tcp)?\s*$`).FindAllStringSubmatch(read(t, "../Dockerfile"), -1)
	if len(expose) != 1 || expose[0][1] != want {
		var got []string
		for _, m := range expose {
			got = append(got, m[1])
		}
		t.Errorf("Dockerfile: EXPOSE %v, want exactly one EXPOSE %s", got, want)
	}

	// compose: every receiver listens on, and publishes, the same port.
	svcs := composeServices(t)
	for _, s := range receivers(t, svcs) {
		if got := addrPort(t, "compose.yaml "+s.name+" WEBHOOK_ADDR", s.env()["WEBHOOK_ADDR"]); got != want {
			t.Errorf("compose.yaml %s: WEBHOOK_ADDR port %s, want %s", s.name, got, want)
		}
		ports := s.publishedContainerPorts()
		if len(ports) == 0 {
			t.Errorf("compose.yaml %s: publishes no port", s.name)
		}
		for _, p := range ports {
			if p != want {
				t.Errorf("compose.yaml %s: publishes container port %s, but it listens on %s", s.name, p, want)
			}
		}
	}
}

// TestComposeWiring: the receivers reach the sandbox and the Redis of the
// same stack, on the ports those listen on.
func TestComposeWiring(t *testing.T) {
	svcs := composeServices(t)
	sandboxPort := ""
	for _, s := range svcs {
		if f := strings.Fields(s.command()); len(f) > 0 && (f[0] == "sandbox" || f[0] == "q2-sandbox") {
			for i, a := range f {
				if a == "--addr" && i+1 < len(f) {
					sandboxPort = addrPort(t, "compose.yaml "+s.name+" --addr", f[i+1])
				} else if v, ok := strings.CutPrefix(a, "--addr="); ok {
					sandboxPort = addrPort(t, "compose.yaml "+s.name+" --addr", v)
				}
			}
			if sandboxPort == "" {
				t.Fatalf("compose.yaml %s: the sandbox without --addr listens on 127.0.0.1 only, out of reach of the receivers", s.name)
			}
			for _, p := range s.publishedContainerPorts() {
				if p != sandboxPort {
					t.Errorf("compose.yaml %s: publishes container port %s, but it listens on %s", s.name, p, sandboxPort)
				}
			}
		}
	}
	redis := map[string]bool{}
	for _, s := range receivers(t, svcs) {
		env := s.env()
		if env["Q2_BASE_URL"] != "" {
			u, err := url.Parse(env["Q2_BASE_URL"])
			if err != nil {
				t.Fatalf("compose.yaml %s: Q2_BASE_URL: %v", s.name, err)
			}
			if _, ok := svcs[u.Hostname()]; !ok || u.Port() != sandboxPort {
				t.Errorf("compose.yaml %s: Q2_BASE_URL %s is not the sandbox service on port %s", s.name, u, sandboxPort)
			}
		}
		u, err := url.Parse(env["REDIS_URL"])
		if err != nil || env["REDIS_URL"] == "" {
			t.Fatalf("compose.yaml %s: REDIS_URL %q: receivers need one shared Redis", s.name, env["REDIS_URL"])
		}
		if _, ok := svcs[u.Hostname()]; !ok {
			t.Errorf("compose.yaml %s: REDIS_URL host %q is not a service of the stack", s.name, u.Hostname())
		}
		redis[env["REDIS_URL"]] = true
	}
	if len(redis) != 1 {
		t.Errorf("compose.yaml: the receivers use %d different REDIS_URLs; they must share one", len(redis))
	}
}

// TestEnvNamesAreSettings: every variable the files set is one the binary
// reads (a typo would be ignored silently and the default used), secrets
// are not in the ConfigMap, and the two together pass the binary's own
// "required with" rules.
func TestEnvNamesAreSettings(t *testing.T) {
	known := settings(t)
	cm := envKeys(t, "kubernetes/configmap.yaml", "data")
	sec := envKeys(t, "kubernetes/secret.example.yaml", "stringData", "data")
	check := func(where string, env map[string]string) {
		for k := range env {
			if _, ok := known[k]; !ok {
				t.Errorf("%s sets %s, which is not a setting of webhook serve (cmd/webhook/config.go)", where, k)
			}
		}
	}
	check("kubernetes/configmap.yaml", cm)
	check("kubernetes/secret.example.yaml", sec)
	for _, s := range composeServices(t) {
		check("compose.yaml "+s.name, s.env())
	}

	for _, k := range []string{"Q2_CLIENT_SECRET", "WEBHOOK_SECRETS", "WEBHOOK_BASIC_AUTH"} {
		if _, ok := cm[k]; ok {
			t.Errorf("configmap.yaml holds %s: a secret belongs in the Secret", k)
		}
	}
	for k := range sec {
		if _, ok := cm[k]; ok {
			t.Errorf("%s is set in both configmap.yaml and secret.example.yaml: which one wins depends on envFrom order", k)
		}
	}
	if cm["REDIS_URL"] == "" {
		t.Error("configmap.yaml: REDIS_URL is empty: each replica would get its own embedded Redis")
	}
	if cm["Q2_BASE_URL"] != "" {
		for _, k := range []string{"Q2_CLIENT_ID", "Q2_CLIENT_SECRET"} {
			if _, ok := sec[k]; !ok {
				t.Errorf("secret.example.yaml: no %s, required with Q2_BASE_URL", k)
			}
		}
	}
	if auth := cm["WEBHOOK_AUTH"]; auth == "" || auth == "signature" {
		if _, ok := sec["WEBHOOK_SECRETS"]; !ok {
			t.Error("secret.example.yaml: no WEBHOOK_SECRETS, required with WEBHOOK_AUTH=signature")
		}
	}
	dep := read(t, "kubernetes/deployment.yaml")
	for _, ref := range []string{"configmap.yaml", "secret.example.yaml"} {
		name := pairs(under(strings.Split(read(t, "kubernetes/"+ref), "\n"), "metadata"))["name"]
		if !strings.Contains(dep, "name: "+name+"\n") {
			t.Errorf("deployment.yaml does not take its env from %s's %q", ref, name)
		}
	}
}

// TestShutdownFitsGracePeriod: the orchestrator waits longer than the
// service's own drain (SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT) before it kills.
func TestShutdownFitsGracePeriod(t *testing.T) {
	known := settings(t)
	drain := func(t *testing.T, where string, env map[string]string) time.Duration {
		var total time.Duration
		for _, k := range []string{"SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT"} {
			v, ok := env[k]
			if !ok {
				v = known[k].def
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s: %s %q: %v", where, k, v, err)
			}
			total += d
		}
		return total
	}

	need := drain(t, "configmap.yaml", envKeys(t, "kubernetes/configmap.yaml", "data"))
	grace := all(strings.Split(read(t, "kubernetes/deployment.yaml"), "\n"), "terminationGracePeriodSeconds")
	if len(grace) != 1 {
		t.Fatalf("deployment.yaml: terminationGracePeriodSeconds %v; set it once (the default 30 s is implicit)", grace)
	}
	secs, err := strconv.Atoi(grace[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(secs) * time.Second; got <= need {
		t.Errorf("deployment.yaml: terminationGracePeriodSeconds %s is not more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT = %s", got, need)
	}

	for _, s := range receivers(t, composeServices(t)) {
		need := drain(t, "compose.yaml "+s.name, s.env())
		v := s.scalar("stop_grace_period")
		if v == "" {
			v = "10s" // docker's default
		}
		got, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("compose.yaml %s: stop_grace_period %q: %v", s.name, v, err)
		}
		if got <= need {
			t.Errorf("compose.yaml %s: stop_grace_period %s is not more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT = %s", s.name, got, need)
		}
	}
}

// TestDockerfile: the build sets a version variable that exists, and the
// entry point is the binary it builds.
func TestDockerfile(t *testing.T) {
	df := read(t, "../Dockerfile")
	out := regexp.MustCompile(`go build .*-o\s+(\S+)\s+\./cmd/webhook`).FindStringSubmatch(df)
	if out == nil {
		t.Fatal("Dockerfile: no `go build ... -o PATH ./cmd/webhook`")
	}
	if !strings.Contains(df, `ENTRYPOINT ["`+out[1]+`"]`) {
		t.Errorf("Dockerfile: ENTRYPOINT is not the built binary %s", out[1])
	}
	if !strings.Contains(df, "-X main.version=") {
		t.Error("Dockerfile: the build does not set main.version")
	}
	mains, _ := filepath.Glob("../cmd/webhook/*.go")
	found := false
	for _, f := range mains {
		if !strings.HasSuffix(f, "_test.go") && regexp.MustCompile(`(?m)^var version\b`).MatchString(read(t, f)) {
			found = true
		}
	}
	if !found {
		t.Error("cmd/webhook: no package-level `var version`: -X main.version would be silently ignored")
	}
	cmd := regexp.MustCompile(`(?m)^CMD \["([\w-]+)"`).FindStringSubmatch(df)
	if cmd == nil || cmd[1] != "serve" {
		t.Errorf("Dockerfile: CMD %v, want [\"serve\"]", cmd)
	}
}

// TestMemoryFitsHostileBodies: what unauthenticated senders can make a pod
// hold live (handlers.BodyHeapBound at the default limits, plus a stack per
// reader and the service's own baseline) is below GOMEMLIMIT, which is
// below the container's memory limit with room for the rest of the runtime.
func TestMemoryFitsHostileBodies(t *testing.T) {
	const (
		baseline   = 32 << 20 // the service at rest: code, Redis and Q2 clients, runtime
		stack      = 8 << 10  // a goroutine's stack, one per connection
		minHeadway = 0.15     // GOMEMLIMIT leaves at least this share of the limit to non-heap memory
	)
	lines := strings.Split(read(t, "kubernetes/deployment.yaml"), "\n")
	limit := quantity(t, pairs(under(under(lines, "resources"), "limits"))["memory"])

	var goMemLimit int64
	for _, item := range listItems(under(lines, "env")) {
		if p := pairs(item); p["name"] == "GOMEMLIMIT" {
			goMemLimit = quantity(t, p["value"])
		}
	}
	if goMemLimit == 0 {
		t.Fatal("deployment.yaml sets no GOMEMLIMIT: the GC would let garbage grow to twice the live heap, past limits.memory")
	}

	live := handlers.BodyHeapBound(handlers.DefaultMaxBodyReaders, handlers.DefaultBodyMemory) +
		handlers.DefaultMaxBodyReaders*stack + baseline
	if live >= goMemLimit {
		t.Errorf("hostile bodies can hold %d MiB live, not below GOMEMLIMIT (%d MiB)", live>>20, goMemLimit>>20)
	}
	if float64(goMemLimit) > (1-minHeadway)*float64(limit) {
		t.Errorf("GOMEMLIMIT %d MiB leaves less than %.0f%% of limits.memory (%d MiB) to the rest of the process", goMemLimit>>20, minHeadway*100, limit>>20)
	}
	t.Logf("live bound %d MiB < GOMEMLIMIT %d MiB < limits.memory %d MiB", live>>20, goMemLimit>>20, limit>>20)
}

// quantity reads a memory size as Kubernetes (256Mi) or GOMEMLIMIT (200MiB)
// write it.
func quantity(t *testing.T, s string) int64 {
	t.Helper()
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"Gi", 30}, {"Mi", 20}, {"Ki", 10}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("memory size %q: %v", s, err)
			}
			return v << u.shift
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("memory size %q: want a number with Mi, Gi, MiB or GiB", s)
	}
	return v
}
