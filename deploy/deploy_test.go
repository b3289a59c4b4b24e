// Package deploy_test checks, by reading them, that the container and
// deployment files (../Dockerfile, kubernetes/, compose.yaml, grafana/,
// redis/) name only routes, ports, settings and metrics that the code
// really has, so that a renamed route, port, variable or metric breaks a
// test instead of a rollout, a dashboard or an alert.
//
// The files are read with gopkg.in/yaml.v3 (the products file's parser), so
// any valid YAML layout works.
package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/handlers"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/products"
	"github.com/banking-marketplace/webhook/internal/provisioning"
)

// goRuntimeEnv are variables the Go runtime reads, not the service.
var goRuntimeEnv = map[string]bool{"GOMEMLIMIT": true, "GOGC": true, "GOMAXPROCS": true, "GODEBUG": true}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goFiles returns the non-test Go files under dir.
func goFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.FromSlash(dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// --- what the code knows ------------------------------------------------

// settingDirs are where the settings table may live: cmd/webhook, and any
// package under internal/ whose name says config or settings.
func settingDirs(t *testing.T) []string {
	t.Helper()
	dirs := []string{"../cmd/webhook"}
	entries, err := os.ReadDir("../internal")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && (strings.Contains(e.Name(), "config") || strings.Contains(e.Name(), "setting")) {
			dirs = append(dirs, "../internal/"+e.Name())
		}
	}
	return dirs
}

var envLiteral = regexp.MustCompile(`"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"`)

// settings returns every environment variable name the service's code
// spells as a string literal (each setting's name appears quoted in its
// table, whatever the table's shape), mapped to the file that has it.
func settings(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, dir := range settingDirs(t) {
		for _, f := range goFiles(t, dir) {
			for _, m := range envLiteral.FindAllStringSubmatch(read(t, f), -1) {
				out[m[1]] = f
			}
		}
	}
	for _, must := range []string{"WEBHOOK_ADDR", "REDIS_URL", "Q2_BASE_URL", "PRODUCTS_FILE"} {
		if _, ok := out[must]; !ok {
			t.Fatalf("no %q string literal in %v: where is the settings table now? Add its folder to settingDirs", must, settingDirs(t))
		}
	}
	return out
}

// knownSetting reports whether a manifest may set env: a setting of the
// service, or the Go runtime's.
func knownSetting(t *testing.T, known map[string]string, env string) bool {
	t.Helper()
	if _, ok := known[env]; ok || goRuntimeEnv[env] {
		return true
	}
	return false
}

var addrDefault = regexp.MustCompile(`"(:\d+)"`)

// defaultAddr is WEBHOOK_ADDR's default: the ":port" literal on the line
// that names it in the settings table.
func defaultAddr(t *testing.T) string {
	t.Helper()
	for _, dir := range settingDirs(t) {
		for _, f := range goFiles(t, dir) {
			for _, line := range strings.Split(read(t, f), "\n") {
				if strings.Contains(line, `"WEBHOOK_ADDR"`) {
					if m := addrDefault.FindStringSubmatch(line); m != nil {
						return m[1]
					}
				}
			}
		}
	}
	t.Fatal(`no line with "WEBHOOK_ADDR" and its default ":port" in the settings table: has its layout changed? Update defaultAddr`)
	return ""
}

var (
	metricName      = regexp.MustCompile(`Name:\s*"([a-z_][a-z0-9_]*)"`)
	metricNamespace = regexp.MustCompile(`Namespace:\s*"([a-z_][a-z0-9_]*)"`)
	metricLiteral   = regexp.MustCompile(`"(webhook_[a-z0-9_]+)"`)
)

// metrics returns the metric families the code defines: "webhook_..."
// literals, and Namespace + Name pairs, in every non-test Go file of
// internal/ and cmd/; with the value true for histograms (which are
// queried as _bucket, _sum and _count). goRuntime says whether the Go and
// process collectors are registered (go_*, process_* families).
func metrics(t *testing.T) (families map[string]bool, goRuntime bool) {
	t.Helper()
	families = map[string]bool{}
	for _, dir := range []string{"../internal", "../cmd"} {
		for _, f := range goFiles(t, dir) {
			src := read(t, f)
			if strings.Contains(src, "NewGoCollector(") && strings.Contains(src, "NewProcessCollector(") {
				goRuntime = true
			}
			var names []string
			for _, m := range metricLiteral.FindAllStringSubmatch(src, -1) {
				names = append(names, m[1])
			}
			if ns := metricNamespace.FindStringSubmatch(src); ns != nil {
				for _, m := range metricName.FindAllStringSubmatch(src, -1) {
					if !strings.HasPrefix(m[1], ns[1]+"_") {
						names = append(names, ns[1]+"_"+m[1])
					}
				}
			}
			for _, n := range names {
				// A histogram: its options, just before its name, are HistogramOpts.
				i := strings.Index(src, `"`+n+`"`)
				if i < 0 {
					i = strings.Index(src, `"`+strings.TrimPrefix(n, "webhook_")+`"`)
				}
				families[n] = families[n] || strings.Contains(src[max(0, i-120):i], "HistogramOpts")
			}
		}
	}
	for _, must := range []string{"webhook_deliveries_total", "webhook_upstream_requests_total", "webhook_redis_errors_total"} {
		if _, ok := families[must]; !ok {
			t.Fatalf("metric %s not found in the code's non-test Go files: has the way metrics are named changed? Update metrics()", must)
		}
	}
	if !families["webhook_delivery_duration_seconds"] {
		t.Fatal("webhook_delivery_duration_seconds is not seen as a histogram: update metrics()")
	}
	return families, goRuntime
}

var promIdent = regexp.MustCompile(`\b((?:webhook|go|process)_[a-z0-9_]+)\b`)

// checkMetricNames reports every metric named in text (a PromQL query or a
// template) that the code does not define, and returns the families named.
func checkMetricNames(t *testing.T, where, text string, families map[string]bool, goRuntime bool) []string {
	t.Helper()
	var used []string
	for _, m := range promIdent.FindAllStringSubmatch(text, -1) {
		name := m[1]
		switch {
		case strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_"):
			if !goRuntime {
				t.Errorf("%s: %s, but the code registers no Go and process collectors", where, name)
			}
			used = append(used, name)
			continue
		}
		family := name
		if _, ok := families[name]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if f, ok := strings.CutSuffix(name, suffix); ok && families[f] {
					family = f
				}
			}
		}
		if _, ok := families[family]; ok {
			used = append(used, family)
			continue
		}
		t.Errorf("%s: metric %s is not defined by the code (internal/metrics)", where, name)
	}
	return used
}

var labelMatcher = regexp.MustCompile(`\b(outcome|target|result)\s*(=~|!~|!=|=)\s*"([^"]*)"`)

// labelValues are the values each checked label may take.
func labelValues(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{"outcome": {}, "target": {}, "result": {}}
	for _, code := range regexp.MustCompile(`ErrorCode\s*=\s*"([A-Z_]+)"`).FindAllStringSubmatch(read(t, "../internal/events/reply.go"), -1) {
		out["outcome"][code[1]] = true
	}
	if !out["outcome"][string(events.TransportError)] {
		t.Fatal("internal/events/reply.go: no ErrorCode constants found: update labelValues")
	}
	for _, v := range []string{"SUCCESS", "REPLAYED", "NONE"} { // metrics.Delivered's other outcomes
		out["outcome"][v] = true
	}
	for _, v := range products.Targets {
		out["target"][v] = true
	}
	// The settle attempts' results: done, or the kind of the failure.
	out["result"]["done"] = true
	for _, k := range []provisioning.Kind{provisioning.Transient, provisioning.Refused, provisioning.Misconfigured} {
		out["result"][k.String()] = true
	}
	return out
}

// checkLabelValues reports label values in a query that the code never
// gives those labels (a typo there makes a panel or alert silently empty).
func checkLabelValues(t *testing.T, where, query string, allowed map[string]map[string]bool) {
	t.Helper()
	for _, m := range labelMatcher.FindAllStringSubmatch(query, -1) {
		for _, v := range strings.Split(m[3], "|") {
			if v == "" || strings.ContainsAny(v, ".*+?()[]") {
				continue
			}
			if !allowed[m[1]][v] {
				t.Errorf("%s: %s=%q is not a value the code gives %s", where, m[1], v, m[1])
			}
		}
	}
}

// --- the Kubernetes objects ----------------------------------------------

type labels map[string]string

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string `yaml:"name"`
		Labels labels `yaml:"labels"`
	} `yaml:"metadata"`
	file string
	node *yaml.Node
}

func (o object) String() string { return o.file + " " + o.Kind + "/" + o.Metadata.Name }

func (o object) decode(t *testing.T, v any) {
	t.Helper()
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
}

// objects returns every document of the YAML files under kubernetes/.
func objects(t *testing.T) []object {
	t.Helper()
	var out []object
	err := filepath.WalkDir("kubernetes", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") || filepath.Base(p) == "products.yaml" {
			return err
		}
		dec := yaml.NewDecoder(strings.NewReader(read(t, p)))
		for {
			var n yaml.Node
			if err := dec.Decode(&n); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			o := object{file: filepath.ToSlash(p), node: &n}
			if err := n.Decode(&o); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			out = append(out, o)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// find returns the one object of kind and name (any name when empty).
func find(t *testing.T, kind, name string) object {
	t.Helper()
	var found []object
	for _, o := range objects(t) {
		if o.Kind == kind && (name == "" || o.Metadata.Name == name) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("kubernetes/: %d objects %s %q, want one", len(found), kind, name)
	}
	return found[0]
}

func all(t *testing.T, kind string) []object {
	t.Helper()
	var out []object
	for _, o := range objects(t) {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Args            []string `yaml:"args"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort string `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Limits map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type deployment struct {
	Spec struct {
		Template struct {
			Metadata struct {
				Labels labels `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
				Volumes                       []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// receiver is the Deployment's webhook container, and the pod's labels.
func receiver(t *testing.T) (container, deployment) {
	t.Helper()
	var d deployment
	find(t, "Deployment", "webhook").decode(t, &d)
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("deployment.yaml: %d containers, want the one receiver", len(cs))
	}
	return cs[0], d
}

// containerPorts maps the container's port names to their numbers.
func (c container) containerPorts() map[string]string {
	out := map[string]string{}
	for _, p := range c.Ports {
		out[p.Name] = p.ContainerPort
	}
	return out
}

// resolve gives the number of a port written by name or by number.
func (c container) resolve(port string) string {
	if n, ok := c.containerPorts()[port]; ok {
		return n
	}
	return port
}

type service struct {
	Spec struct {
		Type     string `yaml:"type"`
		Selector labels `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       string `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

// configData returns the ConfigMap's data and the Secret's values.
func configData(t *testing.T) (cm, secret map[string]string) {
	t.Helper()
	var c struct {
		Data map[string]string `yaml:"data"`
	}
	find(t, "ConfigMap", "webhook-config").decode(t, &c)
	var s struct {
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
	}
	find(t, "Secret", "webhook-secrets").decode(t, &s)
	if len(c.Data) == 0 || len(s.StringData) == 0 {
		t.Fatal("configmap.yaml or secret.example.yaml: no values")
	}
	if len(s.Data) > 0 {
		t.Error("secret.example.yaml: data (base64) is not reviewable; write stringData")
	}
	return c.Data, s.StringData
}

func addrPort(t *testing.T, where, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		t.Fatalf("%s: %q is not a listen address like :8080: %v", where, addr, err)
	}
	return port
}

// --- compose ---------------------------------------------------------------

type composeService struct {
	name            string
	Image           string            `yaml:"image"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	Volumes         []string          `yaml:"volumes"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Healthcheck     *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func composeServices(t *testing.T) map[string]composeService {
	t.Helper()
	var doc struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(read(t, "compose.yaml")), &doc); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(doc.Services) == 0 {
		t.Fatal("compose.yaml: no services")
	}
	for name, s := range doc.Services {
		s.name = name
		doc.Services[name] = s
	}
	return doc.Services
}

// composeReceivers are the compose services that run `webhook serve`.
func composeReceivers(t *testing.T, svcs map[string]composeService) []composeService {
	t.Helper()
	var out []composeService
	for _, s := range svcs {
		if slices.Equal(s.Command, []string{"serve"}) {
			out = append(out, s)
		}
	}
	if len(out) < 2 {
		t.Fatalf("compose.yaml: %d receivers; want two sharing one Redis", len(out))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// published returns the container side of each "[IP:]HOST:CONTAINER".
func (s composeService) published() []string {
	var out []string
	for _, p := range s.Ports {
		p = strings.TrimSuffix(p, "/tcp")
		out = append(out, p[strings.LastIndex(p, ":")+1:])
	}
	return out
}

// --- the tests: settings -------------------------------------------------

// TestEnvNamesAreSettings: every variable the files set is one the service
// reads (a typo would be ignored silently and the default used); secrets
// are in the Secret and base URLs in the ConfigMap; the Deployment takes
// its environment from both.
func TestEnvNamesAreSettings(t *testing.T) {
	known := settings(t)
	cm, sec := configData(t)
	c, _ := receiver(t)
	check := func(where string, env map[string]string) {
		for k := range env {
			if !knownSetting(t, known, k) {
				t.Errorf("%s sets %s, which is not a setting of webhook serve (no %q literal in %v)", where, k, k, settingDirs(t))
			}
		}
	}
	check("kubernetes/configmap.yaml", cm)
	check("kubernetes/secret.example.yaml", sec)
	depEnv := map[string]string{}
	for _, e := range c.Env {
		depEnv[e.Name] = e.Value
	}
	check("kubernetes/deployment.yaml env", depEnv)
	for _, s := range composeServices(t) {
		check("compose.yaml "+s.name, s.Environment)
	}

	secret := regexp.MustCompile(`(_SECRETS?|_TOKENS?|_KEY|_PASSWORD|_BASIC_AUTH)$`)
	for k := range cm {
		if secret.MatchString(k) || k == "REDIS_URL" {
			t.Errorf("configmap.yaml holds %s: a secret (REDIS_URL holds the Redis password) belongs in the Secret", k)
		}
	}
	for k := range sec {
		if strings.HasSuffix(k, "_BASE_URL") {
			t.Errorf("secret.example.yaml holds %s: a base URL is configuration; put it in configmap.yaml", k)
		}
		if _, ok := cm[k]; ok {
			t.Errorf("%s is set in both configmap.yaml and secret.example.yaml: which one wins depends on envFrom order", k)
		}
	}
	for k := range depEnv {
		if _, ok := cm[k]; ok {
			t.Errorf("%s is set in both deployment.yaml env and configmap.yaml: env wins, silently", k)
		}
	}

	var fromCM, fromSecret []string
	for _, e := range c.EnvFrom {
		if e.ConfigMapRef != nil {
			fromCM = append(fromCM, e.ConfigMapRef.Name)
		}
		if e.SecretRef != nil {
			fromSecret = append(fromSecret, e.SecretRef.Name)
		}
	}
	if !slices.Equal(fromCM, []string{"webhook-config"}) || !slices.Equal(fromSecret, []string{"webhook-secrets"}) {
		t.Errorf("deployment.yaml envFrom: ConfigMaps %v and Secrets %v, want webhook-config and webhook-secrets", fromCM, fromSecret)
	}
}

// targetSettings are the settings each target needs in production: its
// base URL (ConfigMap) and its credentials (Secret).
var targetSettings = map[string]struct {
	base        string
	credentials []string
}{
	products.TargetQ2:         {"Q2_BASE_URL", []string{"Q2_CLIENT_ID", "Q2_CLIENT_SECRET"}},
	products.TargetQBDConnect: {"QBD_BASE_URL", []string{"QBD_TOKEN"}},
	products.TargetHelix:      {"HELIX_BASE_URL", []string{"HELIX_API_KEY", "HELIX_API_SECRET"}},
}

type kustomization struct {
	Resources          []string `yaml:"resources"`
	ConfigMapGenerator []struct {
		Name  string   `yaml:"name"`
		Files []string `yaml:"files"`
	} `yaml:"configMapGenerator"`
	Images []struct {
		Name    string `yaml:"name"`
		NewTag  string `yaml:"newTag"`
		NewName string `yaml:"newName"`
		Digest  string `yaml:"digest"`
	} `yaml:"images"`
}

func kustomizationOf(t *testing.T, file string) kustomization {
	t.Helper()
	var k kustomization
	if err := yaml.Unmarshal([]byte(read(t, file)), &k); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return k
}

// productsFile is the products file the pods read: the key and source file
// of the configMapGenerator whose ConfigMap deployment.yaml mounts at
// PRODUCTS_FILE's folder. It checks that chain on the way.
func productsFile(t *testing.T) (source string) {
	t.Helper()
	cm, _ := configData(t)
	path := cm["PRODUCTS_FILE"]
	if path == "" {
		t.Fatal("configmap.yaml: no PRODUCTS_FILE: the pods would run the default product, not the bank's")
	}
	c, d := receiver(t)
	var mount string
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			if !vm.ReadOnly {
				t.Errorf("deployment.yaml: the products volume %q is mounted without readOnly: true", vm.Name)
			}
			mount = vm.Name
		}
	}
	var configMap string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == mount && v.ConfigMap != nil {
			configMap = v.ConfigMap.Name
		}
	}
	if configMap == "" {
		t.Fatalf("deployment.yaml: PRODUCTS_FILE %s is not in a volume mounted from a ConfigMap", path)
	}
	k := kustomizationOf(t, "kubernetes/kustomization.yaml")
	for _, g := range k.ConfigMapGenerator {
		if g.Name != configMap {
			continue
		}
		for _, f := range g.Files {
			key, file, ok := strings.Cut(f, "=")
			if !ok {
				key, file = filepath.Base(f), f
			}
			if key == filepath.Base(path) {
				return filepath.Join("kubernetes", file)
			}
		}
	}
	t.Fatalf("kustomization.yaml: no configMapGenerator %q with the file %s (PRODUCTS_FILE)", configMap, filepath.Base(path))
	return ""
}

// TestProductsConfigMap: the products file the pods mount parses with the
// service's own parser, says the same as the repository's
// products.example.yaml, and every target its products name has its base
// URL in the ConfigMap and its credentials in the Secret (production mode
// refuses to start otherwise).
func TestProductsConfigMap(t *testing.T) {
	src := productsFile(t)
	catalog, err := products.Parse([]byte(read(t, src)))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	example, err := products.Parse([]byte(read(t, "../products.example.yaml")))
	if err != nil {
		t.Fatalf("products.example.yaml: %v", err)
	}
	if !reflect.DeepEqual(catalog.Products, example.Products) {
		t.Errorf("%s and products.example.yaml describe different products: copy products.example.yaml's products into it", src)
	}

	cm, sec := configData(t)
	used := map[string]bool{}
	for _, p := range catalog.Products {
		for _, target := range p.Targets {
			used[target] = true
		}
	}
	for target := range used {
		need, ok := targetSettings[target]
		if !ok {
			t.Errorf("%s: target %q has no row in targetSettings", src, target)
			continue
		}
		if cm[need.base] == "" {
			t.Errorf("configmap.yaml: no %s, which the products' target %s needs", need.base, target)
		}
		for _, c := range need.credentials {
			if sec[c] == "" {
				t.Errorf("secret.example.yaml: no %s, which the products' target %s needs", c, target)
			}
		}
	}
	if sec["REDIS_URL"] == "" {
		t.Error("secret.example.yaml: no REDIS_URL: production needs one Redis shared by every replica")
	}
	if auth := cm["WEBHOOK_AUTH"]; (auth == "" || auth == "signature") && sec["WEBHOOK_SECRETS"] == "" {
		t.Error("secret.example.yaml: no WEBHOOK_SECRETS, required with WEBHOOK_AUTH=signature")
	}
	if sec["API_TOKENS"] == "" {
		t.Error("secret.example.yaml: no API_TOKENS: the read API and the console would be off")
	}
}

// --- the tests: ports, probes, exposure -----------------------------------

// okReceiver answers every delivery with success.
type okReceiver struct{}

func (okReceiver) Receive(context.Context, inbox.Delivery) (inbox.Answer, error) {
	return inbox.Answer{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"1"}`), Code: "SUCCESS"}, nil
}

func (okReceiver) Copy(context.Context, string) (inbox.Answer, inbox.Copy, bool) {
	return inbox.Answer{}, inbox.Copy{}, false
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

// TestProbes: the probes go to the ops port (OPS_ADDR), on paths the
// service serves, and mean what they should: liveness and start-up do not
// depend on Redis (an outage must make pods unready, not restart them all),
// readiness does.
func TestProbes(t *testing.T) {
	cm, _ := configData(t)
	ops := addrPort(t, "configmap.yaml OPS_ADDR", cm["OPS_ADDR"])
	c, _ := receiver(t)

	var redisDown error
	srv := httptest.NewServer(handlers.New(handlers.Config{
		Receiver: okReceiver{},
		Ready:    func(context.Context) error { return redisDown },
	}))
	defer srv.Close()

	for _, p := range []struct {
		kind     string
		probe    *probe
		needsRed bool
	}{
		{"startupProbe", c.StartupProbe, false},
		{"livenessProbe", c.LivenessProbe, false},
		{"readinessProbe", c.ReadinessProbe, true},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("deployment.yaml: no %s with httpGet", p.kind)
			continue
		}
		path, port := p.probe.HTTPGet.Path, p.probe.HTTPGet.Port
		if got := c.resolve(port); got != ops {
			t.Errorf("deployment.yaml %s: port %q is %s, not the ops port %s (OPS_ADDR): the public port serves no probe", p.kind, port, got, ops)
		}
		redisDown = nil
		if code := get(t, srv.URL, path); code != http.StatusOK {
			t.Errorf("deployment.yaml %s: GET %s answers %d, want 200", p.kind, path, code)
			continue
		}
		redisDown = errors.New("redis: connection refused")
		code := get(t, srv.URL, path)
		switch {
		case p.needsRed && code != http.StatusServiceUnavailable:
			t.Errorf("deployment.yaml readinessProbe %s answers %d while Redis is down, want 503: deliveries would go to a pod that cannot take them", path, code)
		case !p.needsRed && code != http.StatusOK:
			t.Errorf("deployment.yaml %s %s answers %d while Redis is down, want 200: a Redis outage would restart every pod", p.kind, path, code)
		}
	}
}

// TestPortsAgree: WEBHOOK_ADDR's port is the container port http, the
// Dockerfile's EXPOSE and the binary's default; OPS_ADDR's port is the
// container port ops; the two differ and are the container's only ports.
func TestPortsAgree(t *testing.T) {
	cm, _ := configData(t)
	public := addrPort(t, "configmap.yaml WEBHOOK_ADDR", cm["WEBHOOK_ADDR"])
	ops := addrPort(t, "configmap.yaml OPS_ADDR", cm["OPS_ADDR"])
	if public == ops {
		t.Fatalf("configmap.yaml: WEBHOOK_ADDR and OPS_ADDR share port %s", public)
	}
	if def := addrPort(t, "WEBHOOK_ADDR's default", defaultAddr(t)); def != public {
		t.Errorf("configmap.yaml WEBHOOK_ADDR port %s differs from the binary's default %s: `docker run -p %s:%s` would not reach it", public, def, def, def)
	}
	c, _ := receiver(t)
	if got, want := c.containerPorts(), map[string]string{"http": public, "ops": ops}; !reflect.DeepEqual(got, want) {
		t.Errorf("deployment.yaml: container ports %v, want %v (WEBHOOK_ADDR and OPS_ADDR)", got, want)
	}
	expose := regexp.MustCompile(`(?m)^EXPOSE\s+(\d+)(?:/tcp)?\s*$`).FindAllStringSubmatch(read(t, "../Dockerfile"), -1)
	if len(expose) != 1 || expose[0][1] != public {
		t.Errorf("Dockerfile: EXPOSE %v, want exactly one EXPOSE %s (the public port; the ops port exists only with OPS_ADDR)", expose, public)
	}
}

// TestOnlyThePublicPortIsExposed: the Service the marketplace reaches and
// the Ingress forward only to the public port, and the Ingress routes only
// the marketplace's paths; the ops port has a ClusterIP Service of its own
// that no Ingress names.
func TestOnlyThePublicPortIsExposed(t *testing.T) {
	cm, _ := configData(t)
	public := addrPort(t, "configmap.yaml WEBHOOK_ADDR", cm["WEBHOOK_ADDR"])
	ops := addrPort(t, "configmap.yaml OPS_ADDR", cm["OPS_ADDR"])
	c, d := receiver(t)
	podLabels := d.Spec.Template.Metadata.Labels

	servicePorts := map[string]map[string]string{} // Service → port name and number → container port
	for _, o := range all(t, "Service") {
		if o.file == "kubernetes/redis-dev.yaml" {
			continue
		}
		var s service
		o.decode(t, &s)
		if !selects(s.Spec.Selector, podLabels) {
			t.Errorf("%s: its selector %v does not select the receivers %v", o, s.Spec.Selector, podLabels)
		}
		if s.Spec.Type != "" && s.Spec.Type != "ClusterIP" {
			t.Errorf("%s: type %s; expose the receivers through the Ingress only", o, s.Spec.Type)
		}
		servicePorts[o.Metadata.Name] = map[string]string{}
		for _, p := range s.Spec.Ports {
			target := c.resolve(p.TargetPort)
			if p.TargetPort == "" {
				target = p.Port
			}
			servicePorts[o.Metadata.Name][p.Name] = target
			servicePorts[o.Metadata.Name][p.Port] = target
			if o.Metadata.Name == "webhook" && target != public {
				t.Errorf("%s: port %s forwards to container port %s; the marketplace's Service must expose only the public port %s", o, p.Port, target, public)
			}
		}
	}
	if _, ok := servicePorts["webhook"]; !ok {
		t.Fatal("kubernetes/: no Service webhook")
	}
	opsService := false
	for name, ports := range servicePorts {
		for _, target := range ports {
			if target == ops && name != "webhook" {
				opsService = true
			}
		}
	}
	if !opsService {
		t.Errorf("kubernetes/: no ClusterIP Service for the ops port %s (the ServiceMonitor needs one)", ops)
	}

	var ing struct {
		Spec struct {
			DefaultBackend any `yaml:"defaultBackend"`
			Rules          []struct {
				HTTP struct {
					Paths []struct {
						Path    string `yaml:"path"`
						Backend struct {
							Service struct {
								Name string `yaml:"name"`
								Port struct {
									Name   string `yaml:"name"`
									Number string `yaml:"number"`
								} `yaml:"port"`
							} `yaml:"service"`
						} `yaml:"backend"`
					} `yaml:"paths"`
				} `yaml:"http"`
			} `yaml:"rules"`
		} `yaml:"spec"`
	}
	ingress := find(t, "Ingress", "webhook")
	ingress.decode(t, &ing)
	if ing.Spec.DefaultBackend != nil {
		t.Errorf("%s: a defaultBackend sends every path to it; route the marketplace paths only", ingress)
	}
	paths := 0
	for _, r := range ing.Spec.Rules {
		for _, p := range r.HTTP.Paths {
			paths++
			if !strings.HasPrefix(p.Path, "/marketplace/") && p.Path != "/appdirect/events" {
				t.Errorf("%s: path %s is not a marketplace route (/marketplace/..., /appdirect/events)", ingress, p.Path)
			}
			port := p.Backend.Service.Port.Name
			if port == "" {
				port = p.Backend.Service.Port.Number
			}
			if got := servicePorts[p.Backend.Service.Name][port]; got != public {
				t.Errorf("%s: path %s goes to Service %s port %q, which is container port %q, not the public port %s", ingress, p.Path, p.Backend.Service.Name, port, got, public)
			}
		}
	}
	if paths == 0 {
		t.Errorf("%s: no paths", ingress)
	}
}

func selects(selector, podLabels labels) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if podLabels[k] != v {
			return false
		}
	}
	return true
}

type peer struct {
	NamespaceSelector *struct {
		MatchLabels labels `yaml:"matchLabels"`
	} `yaml:"namespaceSelector"`
	PodSelector *struct {
		MatchLabels labels `yaml:"matchLabels"`
	} `yaml:"podSelector"`
	IPBlock *struct {
		CIDR string `yaml:"cidr"`
	} `yaml:"ipBlock"`
}

type policyPort struct {
	Port     string `yaml:"port"`
	Protocol string `yaml:"protocol"`
}

// TestNetworkPolicy: the receivers take the public port from one namespace
// (the ingress controller's) and the ops port from another (monitoring),
// nothing else; they may call DNS, Redis and HTTPS.
func TestNetworkPolicy(t *testing.T) {
	var np struct {
		Spec struct {
			PodSelector struct {
				MatchLabels labels `yaml:"matchLabels"`
			} `yaml:"podSelector"`
			PolicyTypes []string `yaml:"policyTypes"`
			Ingress     []struct {
				From  []peer       `yaml:"from"`
				Ports []policyPort `yaml:"ports"`
			} `yaml:"ingress"`
			Egress []struct {
				To    []peer       `yaml:"to"`
				Ports []policyPort `yaml:"ports"`
			} `yaml:"egress"`
		} `yaml:"spec"`
	}
	policy := find(t, "NetworkPolicy", "webhook")
	policy.decode(t, &np)
	c, d := receiver(t)
	if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Metadata.Labels) {
		t.Errorf("%s: podSelector %v does not select the receivers", policy, np.Spec.PodSelector.MatchLabels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") || !slices.Contains(np.Spec.PolicyTypes, "Egress") {
		t.Errorf("%s: policyTypes %v, want Ingress and Egress", policy, np.Spec.PolicyTypes)
	}
	cm, sec := configData(t)
	public := addrPort(t, "WEBHOOK_ADDR", cm["WEBHOOK_ADDR"])
	ops := addrPort(t, "OPS_ADDR", cm["OPS_ADDR"])

	namespaces := map[string][]string{} // container port → the namespaces let in
	for i, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 || len(rule.Ports) == 0 {
			t.Errorf("%s: ingress rule %d has no from or no ports: it lets in everyone, or on every port", policy, i)
			continue
		}
		for _, p := range rule.Ports {
			for _, f := range rule.From {
				ns := "?"
				if f.NamespaceSelector != nil {
					ns = f.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
				}
				if f.NamespaceSelector == nil || ns == "" || f.IPBlock != nil {
					t.Errorf("%s: ingress rule %d lets in %+v; name one namespace by kubernetes.io/metadata.name", policy, i, f)
				}
				namespaces[c.resolve(p.Port)] = append(namespaces[c.resolve(p.Port)], ns)
			}
		}
	}
	if len(namespaces[public]) == 0 || len(namespaces[ops]) == 0 || len(namespaces) != 2 {
		t.Fatalf("%s: ingress lets in %v, want the public port %s and the ops port %s only", policy, namespaces, public, ops)
	}
	for _, ns := range namespaces[ops] {
		if slices.Contains(namespaces[public], ns) {
			t.Errorf("%s: namespace %s reaches both the public and the ops port; the ops port is for monitoring only", policy, ns)
		}
	}

	redis, err := url.Parse(strings.Split(sec["REDIS_URL"], ",")[0])
	if err != nil {
		t.Fatal(err)
	}
	redisPort := redis.Port()
	if redisPort == "" {
		redisPort = "6379"
	}
	allowed := map[string]bool{}
	for _, rule := range np.Spec.Egress {
		if len(rule.Ports) == 0 {
			t.Errorf("%s: an egress rule without ports lets the receivers call anything", policy)
		}
		for _, p := range rule.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = "TCP"
			}
			allowed[p.Port+"/"+proto] = true
		}
	}
	for _, want := range []string{"53/UDP", "53/TCP", "443/TCP", redisPort + "/TCP"} {
		if !allowed[want] {
			t.Errorf("%s: egress does not allow %s (DNS, HTTPS to the outside APIs, Redis at REDIS_URL's port)", policy, want)
		}
	}
}

// TestImageIsARelease: the image the manifests run is a release tag (x.y.z)
// or a digest, never a moving tag such as dev or latest, which
// imagePullPolicy IfNotPresent would never pull again.
func TestImageIsARelease(t *testing.T) {
	release := regexp.MustCompile(`^v?\d+\.\d+\.\d+(-[\w.]+)?$`)
	digest := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	k := kustomizationOf(t, "kubernetes/kustomization.yaml")
	c, _ := receiver(t)
	ref, _, _ := strings.Cut(c.Image, "@") // a digest in deployment.yaml too is fine
	name, tag, _ := strings.Cut(ref, ":")
	if !release.MatchString(tag) {
		t.Errorf("deployment.yaml: image %s is not a release tag (x.y.z)", c.Image)
	}
	found := false
	for _, img := range k.Images {
		if img.Name != name {
			continue
		}
		found = true
		switch {
		case img.Digest != "":
			if !digest.MatchString(img.Digest) {
				t.Errorf("kustomization.yaml: digest %q is not sha256:<64 hex digits>", img.Digest)
			}
		case !release.MatchString(img.NewTag):
			t.Errorf("kustomization.yaml: newTag %q is not a release (x.y.z) nor a digest: with imagePullPolicy %s a tag pushed again is never pulled", img.NewTag, c.ImagePullPolicy)
		case img.NewTag != tag:
			t.Errorf("kustomization.yaml: newTag %s, deployment.yaml says %s: say one release in both", img.NewTag, tag)
		}
	}
	if !found {
		t.Errorf("kustomization.yaml: no images entry for %s", name)
	}
}

// TestShutdownFitsGracePeriod: the orchestrator waits longer than the
// service's own drain (SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT) before it kills.
func TestShutdownFitsGracePeriod(t *testing.T) {
	drain := func(where string, env map[string]string) time.Duration {
		t.Helper()
		var total time.Duration
		for _, k := range []string{"SHUTDOWN_DELAY", "SHUTDOWN_TIMEOUT"} {
			d, err := time.ParseDuration(env[k])
			if err != nil {
				t.Fatalf("%s: %s %q: set it explicitly, as a duration: %v", where, k, env[k], err)
			}
			total += d
		}
		return total
	}
	cm, _ := configData(t)
	need := drain("configmap.yaml", cm)
	_, d := receiver(t)
	grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("deployment.yaml: no terminationGracePeriodSeconds; set it (the default 30 s is implicit)")
	}
	if got := time.Duration(*grace) * time.Second; got <= need {
		t.Errorf("deployment.yaml: terminationGracePeriodSeconds %s is not more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT = %s", got, need)
	}
	for _, s := range composeReceivers(t, composeServices(t)) {
		need := drain("compose.yaml "+s.name, s.Environment)
		v := s.StopGracePeriod
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
	found := false
	for _, f := range goFiles(t, "../cmd/webhook") {
		if regexp.MustCompile(`(?m)^var version\b`).MatchString(read(t, f)) {
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
	if !regexp.MustCompile(`(?m)^USER nonroot`).MatchString(df) {
		t.Error("Dockerfile: the final stage does not run as USER nonroot")
	}
}

// TestMemoryFitsHostileBodies: what unauthenticated senders can make a pod
// hold live (handlers.BodyHeapBound at the default limits, plus a stack per
// reader and the service's own baseline) is below GOMEMLIMIT, which is
// below the container's memory limit with room for the rest of the runtime.
func TestMemoryFitsHostileBodies(t *testing.T) {
	const (
		baseline   = 32 << 20 // the service at rest: code, Redis and outside clients, runtime
		stack      = 8 << 10  // a goroutine's stack, one per connection
		minHeadway = 0.15     // GOMEMLIMIT leaves at least this share of the limit to non-heap memory
	)
	c, _ := receiver(t)
	limit := quantity(t, c.Resources.Limits["memory"])
	var goMemLimit int64
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			goMemLimit = quantity(t, e.Value)
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

// --- the tests: compose and Redis -----------------------------------------

// TestCompose: two receivers share the stack's one Redis (which never
// evicts), call the stack's sandbox for every outside API, listen on the
// same public and ops ports as in Kubernetes, publish both, and read the
// repository's products file, mounted read-only.
func TestCompose(t *testing.T) {
	svcs := composeServices(t)
	cm, _ := configData(t)
	public := addrPort(t, "configmap.yaml WEBHOOK_ADDR", cm["WEBHOOK_ADDR"])
	ops := addrPort(t, "configmap.yaml OPS_ADDR", cm["OPS_ADDR"])

	sandboxPort := ""
	for _, s := range svcs {
		if len(s.Command) > 0 && (s.Command[0] == "sandbox" || s.Command[0] == "q2-sandbox") {
			for i, a := range s.Command {
				if a == "--addr" && i+1 < len(s.Command) {
					sandboxPort = addrPort(t, "compose.yaml "+s.name+" --addr", s.Command[i+1])
				} else if v, ok := strings.CutPrefix(a, "--addr="); ok {
					sandboxPort = addrPort(t, "compose.yaml "+s.name+" --addr", v)
				}
			}
			if sandboxPort == "" {
				t.Fatalf("compose.yaml %s: the sandbox without --addr listens on 127.0.0.1 only, out of reach of the receivers", s.name)
			}
		}
	}
	if sandboxPort == "" {
		t.Fatal("compose.yaml: no sandbox service")
	}

	redisURLs := map[string]bool{}
	for _, s := range composeReceivers(t, svcs) {
		env := s.Environment
		where := "compose.yaml " + s.name
		if got := addrPort(t, where+" WEBHOOK_ADDR", env["WEBHOOK_ADDR"]); got != public {
			t.Errorf("%s: WEBHOOK_ADDR port %s, want %s as in Kubernetes", where, got, public)
		}
		if env["OPS_ADDR"] == "" {
			t.Errorf("%s: no OPS_ADDR: the stack would not run as Kubernetes does", where)
		} else if got := addrPort(t, where+" OPS_ADDR", env["OPS_ADDR"]); got != ops {
			t.Errorf("%s: OPS_ADDR port %s, want %s as in Kubernetes", where, got, ops)
		}
		if got := s.published(); !slices.Contains(got, public) || !slices.Contains(got, ops) || len(got) != 2 {
			t.Errorf("%s: publishes container ports %v, want the public %s and the ops %s", where, got, public, ops)
		}
		for _, base := range []string{"Q2_BASE_URL", "QBD_BASE_URL", "HELIX_BASE_URL"} {
			u, err := url.Parse(env[base])
			if err != nil || env[base] == "" {
				t.Errorf("%s: %s %q: want the stack's sandbox", where, base, env[base])
				continue
			}
			if s, ok := svcs[u.Hostname()]; !ok || u.Port() != sandboxPort || s.Command[0] != "sandbox" && s.Command[0] != "q2-sandbox" {
				t.Errorf("%s: %s %s is not the sandbox service on port %s", where, base, u, sandboxPort)
			}
		}
		u, err := url.Parse(env["REDIS_URL"])
		if err != nil || env["REDIS_URL"] == "" {
			t.Fatalf("%s: REDIS_URL %q: receivers need one shared Redis", where, env["REDIS_URL"])
		}
		if _, ok := svcs[u.Hostname()]; !ok {
			t.Errorf("%s: REDIS_URL host %q is not a service of the stack", where, u.Hostname())
		}
		redisURLs[env["REDIS_URL"]] = true
		if !strings.HasPrefix(svcs[u.Hostname()].Image, "redis:") || !strings.Contains(strings.Join(svcs[u.Hostname()].Command, " "), "--maxmemory-policy noeviction") {
			t.Errorf("compose.yaml %s: the Redis does not run with --maxmemory-policy noeviction; the service refuses an evicting Redis", u.Hostname())
		}

		path := env["PRODUCTS_FILE"]
		mounted := ""
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) == 3 && parts[1] == path {
				mounted = parts[0]
				if parts[2] != "ro" {
					t.Errorf("%s: the products file is mounted %s, want ro", where, parts[2])
				}
			}
		}
		if mounted == "" {
			t.Errorf("%s: PRODUCTS_FILE %q is not a mounted file", where, path)
		} else if _, err := products.Load(filepath.Join(filepath.Dir("compose.yaml"), mounted)); err != nil {
			t.Errorf("%s: %v", where, err)
		}
		if s.Healthcheck != nil {
			for _, word := range s.Healthcheck.Test {
				if m := regexp.MustCompile(`https?://[^/:]+:(\d+)/`).FindStringSubmatch(word); m != nil && m[1] != ops {
					t.Errorf("%s: healthcheck on port %s; the probes are on the ops port %s", where, m[1], ops)
				}
			}
		}
	}
	if len(redisURLs) != 1 {
		t.Errorf("compose.yaml: the receivers use %d different REDIS_URLs; they must share one", len(redisURLs))
	}
}

// TestRedisSettingsInOnePlace: deploy/redis/README.md names every setting a
// production Redis needs, and the Redis this folder runs never evicts.
func TestRedisSettingsInOnePlace(t *testing.T) {
	doc := read(t, "redis/README.md")
	for _, want := range []string{
		"maxmemory-policy noeviction", "appendonly yes", "appendfsync everysec",
		"min-replicas-to-write", "min-replicas-max-lag", "REDIS_WAIT_REPLICAS", "REDIS_SENTINEL_MASTER",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("redis/README.md does not say %q", want)
		}
	}
	known := settings(t)
	for _, m := range regexp.MustCompile("`((?:REDIS)_[A-Z_]+)`").FindAllStringSubmatch(doc, -1) {
		if _, ok := known[m[1]]; !ok {
			t.Errorf("redis/README.md names %s, which is not a setting", m[1])
		}
	}
	var sts struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	find(t, "StatefulSet", "redis").decode(t, &sts)
	args := strings.Join(sts.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--maxmemory-policy noeviction", "--appendonly yes"} {
		if !strings.Contains(args, want) {
			t.Errorf("redis-dev.yaml: args %q lack %s", args, want)
		}
	}
}

// TestNoSecretValues: the example Secret holds only placeholders, and the
// other manifests no credentials at all.
func TestNoSecretValues(t *testing.T) {
	_, sec := configData(t)
	for k, v := range sec {
		if !isPlaceholder(v) {
			t.Errorf("secret.example.yaml: %s is %q, not a CHANGE-ME placeholder: an example must not hold a usable value", k, v)
		}
	}
	for _, o := range objects(t) {
		var raw bytes.Buffer
		enc := yaml.NewEncoder(&raw)
		_ = enc.Encode(o.node)
		if o.Kind != "Secret" && regexp.MustCompile(`whsec_[A-Za-z0-9+/=]{20,}`).Match(raw.Bytes()) {
			t.Errorf("%s: holds a whsec_ signing secret", o)
		}
	}
}
