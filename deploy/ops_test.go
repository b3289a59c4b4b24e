package deploy_test

import (
	"bytes"
	"errors"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// isPlaceholder reports whether a manifest value is one left to fill in:
// it holds CHANGE-ME, or it is a URL on the .invalid top-level domain.
func isPlaceholder(v string) bool {
	if strings.Contains(strings.ToUpper(v), "CHANGE-ME") {
		return true
	}
	u, err := url.Parse(v)
	return err == nil && u.Host != "" && strings.HasSuffix(strings.ToLower(u.Hostname()), ".invalid")
}

// TestPlaceholdersStopTheStart: a pod started with any one of the example
// manifests' placeholders left unfilled stops at once, with exit status 2
// and a line naming that setting, so it never turns ready. The real binary
// runs with the ConfigMap and Secret as its environment, every other
// placeholder filled in.
func TestPlaceholdersStopTheStart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the test that builds the binary")
	}
	env := envKeys(t, "kubernetes/configmap.yaml", "data")
	for k, v := range envKeys(t, "kubernetes/secret.example.yaml", "stringData", "data") {
		env[k] = v
	}
	var placeholders []string
	for k, v := range env {
		if isPlaceholder(v) {
			placeholders = append(placeholders, k)
		}
	}
	sort.Strings(placeholders)
	if len(placeholders) == 0 {
		t.Fatal("no placeholder (CHANGE-ME, a .invalid host) in configmap.yaml or secret.example.yaml: has the marker changed?")
	}
	filled := func(k string) string {
		switch {
		case strings.HasSuffix(k, "_URL"):
			return "https://api.example.com"
		case k == "WEBHOOK_SECRETS":
			return "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		}
		return "filled-in"
	}

	bin := filepath.Join(t.TempDir(), "webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/webhook").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
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
		})
	}
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
			continue // ours: kustomization.yaml and compose set its tag
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

// TestRedisDevManifest: the development Redis answers where configmap.yaml's
// REDIS_URL points, keeps its data (AOF on a volume), says it is for
// development, and stays out of kustomization.yaml, so that `kubectl apply
// -k` never installs it into production.
func TestRedisDevManifest(t *testing.T) {
	doc := read(t, "kubernetes/redis-dev.yaml")
	lines := strings.Split(doc, "\n")
	if !strings.HasPrefix(doc, "# DEVELOPMENT ONLY") {
		t.Error("redis-dev.yaml does not open with DEVELOPMENT ONLY")
	}
	if strings.Contains(read(t, "kubernetes/kustomization.yaml"), "redis-dev.yaml") {
		t.Error("kustomization.yaml lists redis-dev.yaml: a production apply would install the development Redis")
	}
	u, err := url.Parse(envKeys(t, "kubernetes/configmap.yaml", "data")["REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	service := pairs(under(lines, "metadata"))["name"] // the first document is the Service
	if all(lines, "kind")[0] != "Service" || service != u.Hostname() {
		t.Errorf("redis-dev.yaml's first document is not a Service named %q (REDIS_URL's host)", u.Hostname())
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	if ports := all(lines, "port"); len(ports) == 0 || ports[0] != port {
		t.Errorf("redis-dev.yaml: Service port %v, REDIS_URL wants %s", ports, port)
	}
	if cp := all(lines, "containerPort"); len(cp) != 1 || cp[0] != "6379" {
		t.Errorf("redis-dev.yaml: containerPort %v, want 6379", cp)
	}
	for _, want := range []string{`"--appendonly", "yes"`, "volumeClaimTemplates:", "mountPath: /data", "replicas: 1 "} {
		if !strings.Contains(doc, want) {
			t.Errorf("redis-dev.yaml lacks %s", want)
		}
	}
}
