package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// runbookAnchors are the runbook entries of docs/operations.md the alerts
// link to; each alert names one.
var runbookAnchors = []string{"runbook-5xx", "runbook-outside-api", "runbook-redis-errors", "runbook-unsettled", "runbook-misconfigured", "runbook-appdirect-results"}

// TestKustomizations: every file a kustomization lists exists, every
// manifest of the folder is listed (or is one of the files applied by
// hand), and the custom resources of the Prometheus Operator are kept out
// of the main one, which must apply on a cluster without them.
func TestKustomizations(t *testing.T) {
	byHand := map[string]bool{"kustomization.yaml": true, "secret.example.yaml": true, "redis-dev.yaml": true, "products.yaml": true}
	for dir, want := range map[string][]string{
		"kubernetes":            nil,
		"kubernetes/monitoring": {"servicemonitor.yaml", "prometheusrule.yaml"},
	} {
		k := kustomizationOf(t, dir+"/kustomization.yaml")
		listed := map[string]bool{}
		for _, r := range k.Resources {
			if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
				t.Errorf("%s/kustomization.yaml lists %s: %v", dir, r, err)
			}
			listed[r] = true
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, f := range files {
			if name := filepath.Base(f); !listed[name] && !byHand[name] {
				t.Errorf("%s/kustomization.yaml does not list %s", dir, name)
			}
		}
		for _, w := range want {
			if !listed[w] {
				t.Errorf("%s/kustomization.yaml does not list %s", dir, w)
			}
		}
	}
	for _, o := range objects(t) {
		if strings.HasPrefix(o.APIVersion, "monitoring.coreos.com/") && !strings.HasPrefix(o.file, "kubernetes/monitoring/") {
			t.Errorf("%s: a Prometheus Operator resource outside monitoring/: `kubectl apply -k deploy/kubernetes` would fail without its CRDs", o)
		}
	}
}

// TestServiceMonitor: Prometheus scrapes /metrics on the ops port, through
// a Service that has it, and never the marketplace's Service.
func TestServiceMonitor(t *testing.T) {
	var sm struct {
		Spec struct {
			Selector struct {
				MatchLabels labels `yaml:"matchLabels"`
			} `yaml:"selector"`
			Endpoints []struct {
				Port string `yaml:"port"`
				Path string `yaml:"path"`
			} `yaml:"endpoints"`
		} `yaml:"spec"`
	}
	monitor := find(t, "ServiceMonitor", "webhook")
	monitor.decode(t, &sm)
	cm, _ := configData(t)
	ops := addrPort(t, "configmap.yaml OPS_ADDR", cm["OPS_ADDR"])
	c, _ := receiver(t)

	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Fatalf("%s: endpoints %+v, want one, path /metrics", monitor, sm.Spec.Endpoints)
	}
	port := sm.Spec.Endpoints[0].Port
	scraped := 0
	for _, o := range all(t, "Service") {
		if !selects(sm.Spec.Selector.MatchLabels, o.Metadata.Labels) {
			continue
		}
		if o.Metadata.Name == "webhook" {
			t.Errorf("%s selects the marketplace's Service webhook; select the ops Service only", monitor)
		}
		var s service
		o.decode(t, &s)
		for _, p := range s.Spec.Ports {
			if p.Name == port {
				scraped++
				if got := c.resolve(p.TargetPort); got != ops {
					t.Errorf("%s: port %s of %s is container port %s, not the ops port %s", monitor, port, o, got, ops)
				}
			}
		}
	}
	if scraped != 1 {
		t.Errorf("%s: its selector %v and port %q match %d Service ports, want one (the ops Service's)", monitor, sm.Spec.Selector.MatchLabels, port, scraped)
	}
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []rule {
	t.Helper()
	var pr struct {
		Spec struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []rule `yaml:"rules"`
			} `yaml:"groups"`
		} `yaml:"spec"`
	}
	find(t, "PrometheusRule", "webhook").decode(t, &pr)
	var out []rule
	for _, g := range pr.Spec.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("prometheusrule.yaml: no rules")
	}
	return out
}

// TestAlerts: every alert has a severity and a runbook_url that points at
// one of the runbook's entries, queries only metrics and label values the
// code has, and together they watch what the issue asks: 5xx replies,
// outside APIs failing, Redis errors, unsettled subscriptions growing old,
// and refusals caused by our own setup.
func TestAlerts(t *testing.T) {
	families, goRuntime := metrics(t)
	values := labelValues(t)
	watched := map[string]bool{}
	anchors := map[string]bool{}
	names := map[string]bool{}
	for _, r := range alertRules(t) {
		if r.Alert == "" {
			t.Errorf("prometheusrule.yaml: a rule without alert (recording rules: %q) has no runbook", r.Record)
			continue
		}
		where := "prometheusrule.yaml " + r.Alert
		if names[r.Alert] {
			t.Errorf("%s: two alerts with this name", where)
		}
		names[r.Alert] = true
		if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", where, sev)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: no summary or description", where)
		}
		u, err := url.Parse(r.Annotations["runbook_url"])
		switch {
		case err != nil || u.Scheme != "https":
			t.Errorf("%s: runbook_url %q is not an https URL", where, r.Annotations["runbook_url"])
		case !strings.HasSuffix(u.Path, "/docs/operations.md") || !slices.Contains(runbookAnchors, u.Fragment):
			t.Errorf("%s: runbook_url %q does not point at one of docs/operations.md's entries %v", where, u, runbookAnchors)
		default:
			anchors[u.Fragment] = true
		}
		if r.For != "" {
			if _, err := parsePromDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", where, r.For, err)
			}
		}
		for _, m := range checkMetricNames(t, where, r.Expr, families, goRuntime) {
			watched[m] = true
		}
		for _, text := range r.Annotations { // templates may query too
			checkMetricNames(t, where+" annotations", text, families, goRuntime)
		}
		checkLabelValues(t, where, r.Expr, values)
		checkBalanced(t, where, r.Expr)
	}
	for _, m := range []string{
		"webhook_deliveries_total", "webhook_upstream_requests_total", "webhook_redis_errors_total",
		"webhook_unsettled_oldest_seconds", "webhook_misconfigured_total",
	} {
		if !watched[m] {
			t.Errorf("prometheusrule.yaml: no alert on %s", m)
		}
	}
	for _, a := range runbookAnchors {
		if !anchors[a] {
			t.Errorf("prometheusrule.yaml: no alert links to #%s", a)
		}
	}
	checkRunbookAnchors(t)
}

// checkRunbookAnchors: once docs/operations.md exists (another change
// writes it), each anchor the alerts link to is in it, as an explicit
// id/name or as a heading GitHub turns into that anchor.
func checkRunbookAnchors(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("../docs/operations.md")
	if os.IsNotExist(err) {
		t.Logf("docs/operations.md does not exist yet: the runbook anchors %v are not checked", runbookAnchors)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	have := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?:id|name)="([^"]+)"`).FindAllStringSubmatch(doc, -1) {
		have[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`).FindAllStringSubmatch(doc, -1) {
		have[githubAnchor(m[1])] = true
	}
	for _, a := range runbookAnchors {
		if !have[a] {
			t.Errorf("docs/operations.md has no anchor #%s, which an alert's runbook_url points at", a)
		}
	}
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces to
// hyphens, punctuation other than - and _ dropped.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

var promDuration = regexp.MustCompile(`^(\d+(ms|s|m|h|d|w|y))+$`)

func parsePromDuration(s string) (string, error) {
	if !promDuration.MatchString(s) {
		return "", fmt.Errorf("not a Prometheus duration like 10m")
	}
	return s, nil
}

// checkBalanced reports a query whose brackets or quotes do not pair up:
// the cheapest syntax check that needs no PromQL parser.
func checkBalanced(t *testing.T, where, q string) {
	t.Helper()
	var stack []rune
	pair := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inString := false
	for _, r := range q {
		switch {
		case r == '"':
			inString = !inString
		case inString:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case r == ')' || r == ']' || r == '}':
			if len(stack) == 0 || stack[len(stack)-1] != pair[r] {
				t.Errorf("%s: unbalanced %q in %s", where, r, q)
				return
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 || inString {
		t.Errorf("%s: unclosed brackets or quotes in %s", where, q)
	}
}

// TestDashboard: the Grafana dashboard is JSON Grafana can import, its
// queries name only metrics and label values the code has, and it shows
// what the issue asks: deliveries per outcome, latency, 5xx, outside calls
// and their errors, in-flight, Redis errors, the settle queue.
func TestDashboard(t *testing.T) {
	var dash struct {
		Title      string            `json:"title"`
		UID        string            `json:"uid"`
		Schema     int               `json:"schemaVersion"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
	}
	raw := read(t, "grafana/webhook-dashboard.json")
	if err := json.Unmarshal([]byte(raw), &dash); err != nil {
		t.Fatalf("grafana/webhook-dashboard.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || dash.Schema == 0 || len(dash.Panels) == 0 {
		t.Fatalf("grafana/webhook-dashboard.json: title %q, uid %q, schemaVersion %d, %d panels: not an importable dashboard", dash.Title, dash.UID, dash.Schema, len(dash.Panels))
	}
	hasDatasource := false
	for _, v := range dash.Templating.List {
		hasDatasource = hasDatasource || v.Type == "datasource"
	}
	if !hasDatasource {
		t.Error("grafana/webhook-dashboard.json: no datasource variable: the panels would be tied to one Grafana's data source")
	}

	families, goRuntime := metrics(t)
	values := labelValues(t)
	used := map[string]bool{}
	ids := map[float64]bool{}
	exprs := 0
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if id, ok := v["id"].(float64); ok && v["type"] != nil {
				if ids[id] {
					t.Errorf("grafana/webhook-dashboard.json: two panels with id %v", id)
				}
				ids[id] = true
			}
			if title, ok := v["title"].(string); ok {
				where = title
			}
			if expr, ok := v["expr"].(string); ok {
				exprs++
				for _, m := range checkMetricNames(t, "dashboard panel "+where, expr, families, goRuntime) {
					used[m] = true
				}
				checkLabelValues(t, "dashboard panel "+where, expr, values)
				checkBalanced(t, "dashboard panel "+where, expr)
			}
			for k, x := range v {
				if k != "templating" {
					walk(where, x)
				}
			}
		case []any:
			for _, x := range v {
				walk(where, x)
			}
		}
	}
	var doc any
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	walk("", doc)
	if exprs == 0 {
		t.Fatal("grafana/webhook-dashboard.json: no queries")
	}
	for _, m := range []string{
		"webhook_deliveries_total", "webhook_delivery_duration_seconds", "webhook_upstream_requests_total",
		"webhook_in_flight", "webhook_redis_errors_total", "webhook_unsettled_subscriptions",
		"webhook_unsettled_oldest_seconds", "webhook_settle_attempts_total",
	} {
		if !used[m] {
			t.Errorf("grafana/webhook-dashboard.json: no panel shows %s", m)
		}
	}
	for _, q := range []string{"0.50", "0.99"} {
		if !regexp.MustCompile(`histogram_quantile\(` + regexp.QuoteMeta(q) + `,[^"]*webhook_delivery_duration_seconds_bucket`).MatchString(raw) {
			t.Errorf("grafana/webhook-dashboard.json: no histogram_quantile(%s, ...webhook_delivery_duration_seconds_bucket...) panel: p50 and p99 latency", q)
		}
	}
}
