package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The binary, built once for the tests that run it.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the test that builds and runs the binary")
	}
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "deploy-test-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "webhook")
		if out, err := exec.Command("go", "build", "-o", binPath, "../cmd/webhook").CombinedOutput(); err != nil {
			binErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// isPlaceholder reports whether a manifest value is one left to fill in:
// it holds CHANGE-ME, or it is a URL on the .invalid top-level domain.
func isPlaceholder(v string) bool {
	if strings.Contains(strings.ToUpper(v), "CHANGE-ME") {
		return true
	}
	u, err := url.Parse(v)
	return err == nil && u.Host != "" && strings.HasSuffix(strings.ToLower(u.Hostname()), ".invalid")
}

// filled is a valid value for a placeholder of setting k: every other
// setting must pass, so that the one left unfilled is the only error.
func filled(k string) string {
	switch {
	case k == "REDIS_URL":
		return "redis://:a-real-password@redis:6379/0"
	case strings.HasSuffix(k, "_URL"):
		return "https://api.example.com"
	case k == "WEBHOOK_SECRETS":
		return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	case k == "API_TOKENS":
		return "0123456789abcdef0123456789abcdef"
	}
	return "filled-in"
}

// TestPlaceholdersStopTheStart: a pod started with any one of the example
// manifests' placeholders left unfilled stops at once, with exit status 2
// and a line naming that setting, so it never turns ready. The real binary
// runs with the ConfigMap and Secret as its environment (PRODUCTS_FILE
// pointing at the file the ConfigMap is made from), every other
// placeholder filled in.
func TestPlaceholdersStopTheStart(t *testing.T) {
	bin := binary(t)
	cm, sec := configData(t)
	env := map[string]string{}
	for k, v := range cm {
		env[k] = v
	}
	for k, v := range sec {
		env[k] = v
	}
	env["PRODUCTS_FILE"] = productsFile(t)
	var placeholders []string
	for k, v := range env {
		if isPlaceholder(v) {
			placeholders = append(placeholders, k)
		}
	}
	sort.Strings(placeholders)
	for _, want := range []string{"Q2_BASE_URL", "Q2_CLIENT_SECRET", "REDIS_URL", "WEBHOOK_SECRETS"} {
		if !isPlaceholder(env[want]) {
			t.Errorf("%s is not a placeholder (CHANGE-ME, or a .invalid host for a base URL): has the marker changed?", want)
		}
	}
	for _, left := range placeholders {
		t.Run(left, func(t *testing.T) {
			cmd := exec.Command(bin, "serve")
			for k, v := range env {
				if k != left && isPlaceholder(v) {
					v = filled(k)
				}
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("with %s unfilled: %v, want exit status 2\n%s%s", left, err, stdout.String(), stderr.String())
			}
			if line := stderr.String(); strings.Count(line, "\n") != 1 || !strings.Contains(line, left+": ") || !strings.Contains(line, "placeholder") {
				t.Errorf("with %s unfilled, stderr %q: want one line naming it as a placeholder", left, line)
			}
			if strings.Contains(stderr.String(), env[left]) && left != "Q2_BASE_URL" && left != "QBD_BASE_URL" && left != "HELIX_BASE_URL" {
				t.Errorf("with %s unfilled, stderr repeats its value: a secret's value must never reach the log", left)
			}
		})
	}
}

// freeAddr is a 127.0.0.1 address nobody listens on (as far as anyone can
// know before binding it).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestOpsListener runs the real binary as the manifests do (two listeners,
// the ConfigMap's products file), in demo mode so that it needs no Redis or
// outside API: the probes' paths and /metrics answer on the ops port and
// not on the public one; the marketplace route is on the public port and
// not on the ops one; SIGTERM stops both. The metric families it exports
// are the ones the dashboard test reads from the code.
func TestOpsListener(t *testing.T) {
	if _, ok := settings(t)["OPS_ADDR"]; !ok {
		t.Fatal("the service does not know OPS_ADDR, which the manifests set")
	}
	bin := binary(t)
	public, ops := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{
		"WEBHOOK_ADDR=" + public, "OPS_ADDR=" + ops, "SANDBOX_ADDR=127.0.0.1:0",
		"PRODUCTS_FILE=" + productsFile(t), "LOG_FORMAT=json", "SHUTDOWN_DELAY=0s",
	}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("the service's output:\n%s", logs.String())
		}
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	status := func(method, addr, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s%s: %v", method, addr, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Wait for the ops listener: a deadline for a start that hangs, not a
	// timing assertion.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get("http://" + ops + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("the service exited before listening: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ops listener %s did not answer within 60 s", ops)
		}
	}

	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if got := status("GET", ops, path); got != http.StatusOK {
			t.Errorf("ops port: GET %s answers %d, want 200", path, got)
		}
		if got := status("GET", public, path); got != http.StatusNotFound && got != http.StatusMethodNotAllowed {
			t.Errorf("public port: GET %s answers %d, want it absent (404): it belongs to the ops port only", path, got)
		}
	}
	extension := "my-product-name" // an extension of the ConfigMap's products
	if got := status("POST", public, "/marketplace/"+extension); got == http.StatusNotFound || got == http.StatusMethodNotAllowed {
		t.Errorf("public port: POST /marketplace/%s answers %d: the marketplace route is missing", extension, got)
	}
	if got := status("POST", ops, "/marketplace/"+extension); got != http.StatusNotFound && got != http.StatusMethodNotAllowed {
		t.Errorf("ops port: POST /marketplace/%s answers %d, want 404: the marketplace route is the public port's", extension, got)
	}

	// Every webhook_ family it exports is one the static scan found, and
	// every go_/process_ one the dashboard uses is there.
	resp, err := client.Get("http://" + ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
		}
	}
	resp.Body.Close()
	families, _ := metrics(t)
	for name := range exported {
		if _, ok := families[name]; strings.HasPrefix(name, "webhook_") && !ok {
			t.Errorf("/metrics exports %s, which the tests' scan of the code did not find: update metrics()", name)
		}
	}
	for _, m := range regexp.MustCompile(`\b((?:go|process)_[a-z0-9_]+)\b`).FindAllStringSubmatch(read(t, "grafana/webhook-dashboard.json"), -1) {
		if !exported[m[1]] {
			t.Errorf("the dashboard uses %s, which /metrics does not export", m[1])
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit status 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("the service did not stop within 60 s of SIGTERM")
	}
}

// syncBuffer is a bytes.Buffer the service's output can be written to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	fromLine  = regexp.MustCompile(`(?m)^FROM\s+(\S+)`)
	imageLine = regexp.MustCompile(`(?m)^\s*image:\s*"?([^"\s#]+)`)
	exactTag  = regexp.MustCompile(`:\d+\.\d+\.\d+(-[\w.]+)?(@sha256:[0-9a-f]{64})?$`)
	goDirect  = regexp.MustCompile(`(?m)^go (\d+\.\d+\.\d+)$`)
)

// TestBaseImagesPinned: every third-party image is an exact version
// (x.y.z), never a moving tag such as redis:7; the Go build image is the
// release go.mod asks for. Distroless publishes no version tags: it may
// only be pinned by digest, so it is allowed its :nonroot tag.
func TestBaseImagesPinned(t *testing.T) {
	df := read(t, "../Dockerfile")
	images := map[string]string{}
	for _, m := range fromLine.FindAllStringSubmatch(df, -1) {
		images[m[1]] = "Dockerfile"
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range append(files, "compose.yaml") {
		for _, m := range imageLine.FindAllStringSubmatch(read(t, f), -1) {
			images[m[1]] = f
		}
	}
	for image, where := range images {
		switch {
		case strings.Contains(image, "banking-marketplace/webhook"):
			continue // ours: TestImageIsARelease
		case strings.HasPrefix(image, "gcr.io/distroless/"):
			if !strings.Contains(image, ":nonroot") {
				t.Errorf("%s: %s: want the :nonroot variant (uid 65532, which the manifests name)", where, image)
			}
		case !exactTag.MatchString(image):
			t.Errorf("%s: %s is not pinned to an exact version (x.y.z): a rebuild could pull another release", where, image)
		}
	}

	goMod := goDirect.FindStringSubmatch(read(t, "../go.mod"))
	if goMod == nil {
		t.Fatal("go.mod: no `go x.y.z` line")
	}
	if want := "golang:" + goMod[1] + "-"; !strings.Contains(df, "FROM "+want) {
		t.Errorf("Dockerfile: the build image is not %s... (go.mod's go %s)", want, goMod[1])
	}
}

// TestRedisDevManifest: the development Redis answers where the example
// Secret's REDIS_URL points, keeps its data (AOF on a volume), says it is
// for development, and stays out of kustomization.yaml, so that `kubectl
// apply -k` never installs it into production.
func TestRedisDevManifest(t *testing.T) {
	doc := read(t, "kubernetes/redis-dev.yaml")
	if !strings.HasPrefix(doc, "# DEVELOPMENT ONLY") {
		t.Error("redis-dev.yaml does not open with DEVELOPMENT ONLY")
	}
	for _, r := range kustomizationOf(t, "kubernetes/kustomization.yaml").Resources {
		if r == "redis-dev.yaml" {
			t.Error("kustomization.yaml lists redis-dev.yaml: a production apply would install the development Redis")
		}
	}
	_, sec := configData(t)
	u, err := url.Parse(sec["REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	var svc service
	find(t, "Service", u.Hostname()).decode(t, &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != port {
		t.Errorf("redis-dev.yaml: Service %s ports %+v, REDIS_URL wants %s", u.Hostname(), svc.Spec.Ports, port)
	}
	var sts struct {
		Spec struct {
			Replicas             int `yaml:"replicas"`
			VolumeClaimTemplates []struct {
				Metadata struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
			} `yaml:"volumeClaimTemplates"`
			Template struct {
				Spec struct {
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	find(t, "StatefulSet", "redis").decode(t, &sts)
	if sts.Spec.Replicas != 1 {
		t.Errorf("redis-dev.yaml: %d replicas; a second would be a second, unrelated Redis", sts.Spec.Replicas)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if got := c.containerPorts(); len(got) != 1 || got["redis"] != "6379" {
		t.Errorf("redis-dev.yaml: container ports %v, want redis: 6379", got)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/data" ||
		c.VolumeMounts[0].Name != sts.Spec.VolumeClaimTemplates[0].Metadata.Name {
		t.Error("redis-dev.yaml: /data is not the volume claim: the AOF would not survive the pod")
	}
}
