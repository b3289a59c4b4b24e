package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testplan"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// prodBase is a whole production configuration that parses: tests of one
// bad setting change one thing in it. Nothing here is contacted: the
// configuration is refused before anything starts.
func prodBase() map[string]string {
	return map[string]string{
		"REDIS_URL": "redis://127.0.0.1:1/0", "Q2_BASE_URL": "https://q2.example", "Q2_CLIENT_ID": "id", "Q2_CLIENT_SECRET": "s",
		"WEBHOOK_SECRETS": newSecret,
	}
}

// with is env (prodBase when nil) with more settings; "" unsets one.
func with(env map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	if env == nil {
		env = prodBase()
	}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

// A bad configuration exits 2 before anything starts, with every problem
// at once: one line each, in order, naming the setting and the fix.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	demo := map[string]string{}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // each line of stderr contains its string, and there are as many lines
	}{
		{"bad duration", nil, with(demo, "EVENT_TTL", "forever"), []string{`EVENT_TTL: "forever" is not a duration like 72h`}},
		{"zero timeout", nil, with(demo, "PROCESS_TIMEOUT", "0s"), []string{`PROCESS_TIMEOUT: "0s" must be more than zero, like 4s`}},
		{"bad auth", nil, with(demo, "WEBHOOK_AUTH", "maybe"), []string{`WEBHOOK_AUTH: "maybe" is not signature, basic or none`}},
		{"bad level", nil, with(demo, "LOG_LEVEL", "loud"), []string{`LOG_LEVEL: "loud" is not a level`}},
		{"bad cancel deletes", nil, with(demo, "CANCEL_DELETES", "everything"), []string{`CANCEL_DELETES: "everything" is not user or customer`}},
		{"bad in-flight cap", nil, with(demo, "MAX_IN_FLIGHT", "-1"), []string{`MAX_IN_FLIGHT: "-1" is not a whole number of 1 or more`}},
		{"bad api version", nil, with(demo, "Q2_API_VERSION", "2"), []string{`Q2_API_VERSION: "2" is not a version Q2 serves; use v1 or v2`}},
		{"unknown api version", nil, with(demo, "Q2_API_VERSION", "v3"), []string{`Q2_API_VERSION: "v3" is not a version Q2 serves`}},
		{"bad qbd api version", nil, with(demo, "QBD_API_VERSION", "one"), []string{`QBD_API_VERSION: "one" is not a version like v1`}},
		{"bad helix url", nil, with(nil, "HELIX_BASE_URL", "helix"), []string{`HELIX_BASE_URL: "helix" is not an http(s) URL`}},
		{"helix without credentials", nil, with(nil, "HELIX_BASE_URL", "https://helix.example"), []string{
			"HELIX_API_KEY: is required when HELIX_BASE_URL is set; set the API key Helix gave you",
			"HELIX_API_SECRET: is required when HELIX_BASE_URL is set"}},
		{"bad qbd url", nil, with(nil, "QBD_BASE_URL", "ftp://qbd"), []string{`QBD_BASE_URL: "ftp://qbd" is not an http(s) URL`}},
		{"qbd url with the api path", nil, with(nil, "QBD_BASE_URL", "https://qbd.example/qbdconnect-api/v1"), []string{"QBD_BASE_URL: is the part before /qbdconnect-api/"}},
		{"credentials in a url", nil, with(nil, "Q2_BASE_URL", "https://user:pw0rd@q2.example"), []string{"Q2_BASE_URL: must not hold credentials"}},
		{"bad q2 url", nil, with(nil, "Q2_BASE_URL", "ftp://q2"), []string{`Q2_BASE_URL: "ftp://q2" is not an http(s) URL`}},
		{"q2 without credentials", nil, with(nil, "Q2_CLIENT_ID", "", "Q2_CLIENT_SECRET", ""), []string{
			"Q2_CLIENT_ID: is required when Q2_BASE_URL is set; set the OAuth2 client id Q2 gave you",
			"Q2_CLIENT_SECRET: is required when Q2_BASE_URL is set"}},
		{"signature without secrets outside demo mode", nil, with(nil, "WEBHOOK_SECRETS", ""), []string{
			"WEBHOOK_SECRETS: is required with WEBHOOK_AUTH=signature outside demo mode (REDIS_URL, Q2_BASE_URL, Q2_CLIENT_ID, ... are set)"}},
		{"bad secret", nil, with(nil, "WEBHOOK_SECRETS", "whsec_not*base64"), []string{"WEBHOOK_SECRETS: secret 1 of 1 is not valid base64"}},
		{"basic without credentials", nil, with(demo, "WEBHOOK_AUTH", "basic"), []string{"WEBHOOK_BASIC_AUTH: must be user:password with WEBHOOK_AUTH=basic"}},
		{"bad basic credentials", nil, with(nil, "WEBHOOK_AUTH", "basic", "WEBHOOK_BASIC_AUTH", "nopassword"), []string{"WEBHOOK_BASIC_AUTH: must be user:password"}},
		{"bad redis url", nil, with(nil, "REDIS_URL", "http://localhost:6379"), []string{`REDIS_URL: is not valid: scheme "http" is not redis or rediss`}},
		{"cluster without url", nil, with(demo, "REDIS_CLUSTER", "true"), []string{"REDIS_URL: is empty, but Sentinel or Cluster is asked for"}},
		{"cluster and sentinel", nil, with(nil, "REDIS_CLUSTER", "true", "REDIS_SENTINEL_MASTER", "m"), []string{"REDIS_CLUSTER: cannot be combined with a Sentinel master name"}},
		{"bad flag", []string{"--nope"}, nil, []string{"flag provided but not defined: -nope"}},
		{"flag value wins and is checked", []string{"--event-ttl", "soon"}, with(demo, "EVENT_TTL", "1h"), []string{`EVENT_TTL: "soon" is not a duration`}},
		{"stray argument", []string{"extra"}, nil, []string{`unexpected argument "extra"`}},
		{"unknown command", []string{"frobnicate"}, nil, []string{`unknown command "frobnicate"`}},
		{"bad listen address", nil, with(demo, "WEBHOOK_ADDR", "127.0.0.1:99999"), []string{`WEBHOOK_ADDR: "127.0.0.1:99999": the port must be a number from 0 to 65535`}},
		{"not a listen address", nil, with(demo, "OPS_ADDR", "9091"), []string{`OPS_ADDR: "9091" is not a listen address host:port, like :8080`}},
		{"ops on the public port", nil, with(demo, "WEBHOOK_ADDR", ":8080", "OPS_ADDR", ":8080"), []string{"OPS_ADDR: is WEBHOOK_ADDR (:8080)"}},
		{"abandon before the timeout", nil, with(demo, "ABANDON_AFTER", "3s"), []string{"ABANDON_AFTER: 3s is not longer than PROCESS_TIMEOUT (4s)"}},
		{"abandon zero", nil, with(demo, "ABANDON_AFTER", "0"), []string{`ABANDON_AFTER: "0" must be more than zero, like 24h`}},
		{"missing products file", nil, with(demo, "PRODUCTS_FILE", "testdata/no-such-products.yaml"),
			[]string{"PRODUCTS_FILE: cannot read the products file: open testdata/no-such-products.yaml: no such file or directory"}},
		{"bad products file", nil, with(demo, "PRODUCTS_FILE", "testdata/bad-products.yaml"),
			[]string{`PRODUCTS_FILE: testdata/bad-products.yaml:3: product "Desk": extension_list: extension "plus" belongs to product "Plus" too`}},
		{"bad wait replicas", nil, with(nil, "REDIS_WAIT_REPLICAS", "-1"), []string{`REDIS_WAIT_REPLICAS: "-1" is not a whole number of 0 or more`}},
		{"wait replicas on the embedded redis", nil, with(demo, "REDIS_WAIT_REPLICAS", "1"), []string{"REDIS_WAIT_REPLICAS: the embedded Redis (no URL) has no replicas"}},
		{"bad log format", nil, with(demo, "LOG_FORMAT", "yaml"), []string{`LOG_FORMAT: "yaml" is not json, console or auto`}},
		{"appdirect without credentials", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com"), []string{
			"APPDIRECT_CONSUMER_KEY: is required with APPDIRECT_MARKETPLACES (shared credentials: with APPDIRECT_CONSUMER_SECRET), or set separate credentials"}},
		{"appdirect key without secret", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_CONSUMER_KEY", "k"),
			[]string{"APPDIRECT_CONSUMER_SECRET: and APPDIRECT_CONSUMER_KEY go together"}},
		{"appdirect notify token without client", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_NOTIFY_TOKEN", "tok"),
			[]string{"APPDIRECT_CLIENT_ID: and APPDIRECT_CLIENT_SECRET are required with separate credentials"}},
		{"appdirect client without notify credentials", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_CLIENT_ID", "id", "APPDIRECT_CLIENT_SECRET", "s"),
			[]string{"APPDIRECT_NOTIFY_TOKEN: or APPDIRECT_NOTIFY_BASIC is required with separate credentials"}},
		{"appdirect bad basic", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_NOTIFY_BASIC", "nopassword", "APPDIRECT_CLIENT_ID", "id", "APPDIRECT_CLIENT_SECRET", "s"),
			[]string{"APPDIRECT_NOTIFY_BASIC: each value must be user:password"}},
		{"appdirect bad public url", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_CONSUMER_KEY", "k", "APPDIRECT_CONSUMER_SECRET", "s", "APPDIRECT_PUBLIC_URL", "webhook.bank/x"),
			[]string{`APPDIRECT_PUBLIC_URL: "webhook.bank/x" is not scheme://host[:port]`}},
		// What the verifier refuses, the configuration refuses first, naming
		// the setting (a query or a user used to pass it and stop the start
		// as APPDIRECT_CONSUMER_SECRET's problem).
		{"appdirect public url with a query", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_CONSUMER_KEY", "k", "APPDIRECT_CONSUMER_SECRET", "s", "APPDIRECT_PUBLIC_URL", "https://webhook.bank?x=1"),
			[]string{`APPDIRECT_PUBLIC_URL: "https://webhook.bank?x=1" is not scheme://host[:port] alone, like https://webhook.bank.example`}},
		{"appdirect public url with a user", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_CONSUMER_KEY", "k", "APPDIRECT_CONSUMER_SECRET", "s", "APPDIRECT_PUBLIC_URL", "https://me@webhook.bank"),
			[]string{`APPDIRECT_PUBLIC_URL: "https://me@webhook.bank" is not scheme://host[:port] alone`}},
		{"appdirect public url with a password", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_CONSUMER_KEY", "k", "APPDIRECT_CONSUMER_SECRET", "s", "APPDIRECT_PUBLIC_URL", "https://me:pw0rd@webhook.bank"),
			[]string{`APPDIRECT_PUBLIC_URL: "https://me:xxxxx@webhook.bank" is not scheme://host[:port] alone`}},
		{"appdirect product of several", nil, with(nil, "PRODUCTS_FILE", "../../products.example.yaml", "QBD_BASE_URL", "https://qbd.example", "HELIX_BASE_URL", "https://helix.example", "HELIX_API_KEY", "k", "HELIX_API_SECRET", "s",
			"APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_CONSUMER_KEY", "k", "APPDIRECT_CONSUMER_SECRET", "s"),
			[]string{"APPDIRECT_PRODUCT: is required when the products file has several products"}},
		{"appdirect credentials without marketplaces", nil, with(nil, "APPDIRECT_CONSUMER_KEY", "k", "APPDIRECT_CONSUMER_SECRET", "s"),
			[]string{"APPDIRECT_MARKETPLACES: is required with the APPDIRECT_* credentials set"}},
		{"appdirect marketplace with a password", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://user:hunter2@acme.appdirect.com", "APPDIRECT_CONSUMER_KEY", "k", "APPDIRECT_CONSUMER_SECRET", "s"),
			[]string{"APPDIRECT_MARKETPLACES: a base URL holds '@'", "APPDIRECT_MARKETPLACES: is required with the APPDIRECT_* credentials set"}},
		{"appdirect unknown product", nil, with(nil, "APPDIRECT_MARKETPLACES", "https://acme.appdirect.com", "APPDIRECT_CONSUMER_KEY", "k", "APPDIRECT_CONSUMER_SECRET", "s", "APPDIRECT_PRODUCT", "nope"),
			[]string{`APPDIRECT_PRODUCT: "nope" is not a product of the products file`}},
		{"trace URL without the trace id", nil, with(demo, "CONSOLE_TRACE_URL", "https://tempo.example/trace/"),
			[]string{`CONSOLE_TRACE_URL: "https://tempo.example/trace/" must be an absolute http(s) URL with {trace_id} in it, like https://tempo.example/trace/{trace_id}`}},
		{"trace URL with a password", nil, with(demo, "CONSOLE_TRACE_URL", "https://me:pw0rd@tempo.example/trace/"),
			[]string{`CONSOLE_TRACE_URL: "https://me:xxxxx@tempo.example/trace/" must be an absolute http(s) URL`}},
		{"trace URL not absolute", nil, with(demo, "CONSOLE_TRACE_URL", "/trace/{trace_id}"), []string{"CONSOLE_TRACE_URL: "}},
		// The example manifests' placeholders (deploy/kubernetes): a pod
		// with unfilled settings stops at once and never turns ready.
		{"placeholder secret", nil, with(nil, "Q2_CLIENT_SECRET", "CHANGE-ME-q2-client-secret"), []string{
			"Q2_CLIENT_SECRET: still the placeholder CHANGE-ME from the example manifest; set the real value"}},
		{"placeholder signing secret", nil, with(nil, "WEBHOOK_SECRETS", "whsec_CHANGE-ME-base64-of-24-or-more-random-bytes"),
			[]string{"WEBHOOK_SECRETS: still the placeholder CHANGE-ME"}},
		{"placeholder in a flag, any case", []string{"--q2-client-id", "change-me"}, prodBase(), []string{"Q2_CLIENT_ID: still the placeholder CHANGE-ME"}},
		{"placeholder q2 host", nil, with(nil, "Q2_BASE_URL", "https://q2.example.invalid"),
			[]string{`Q2_BASE_URL: "https://q2.example.invalid" is the example manifest's placeholder (a .invalid host never resolves); set the real base URL`}},
		{"placeholder qbd host", nil, with(nil, "QBD_BASE_URL", "https://QBD.Invalid./"), []string{"QBD_BASE_URL: "}},
		{"placeholder helix host", nil, with(nil, "HELIX_BASE_URL", "https://helix.example.invalid:8443", "HELIX_API_KEY", "k", "HELIX_API_SECRET", "s"), []string{"HELIX_BASE_URL: "}},

		// The issue: errors came one per restart. Now all at once.
		{"a real q2 and nothing else", nil, map[string]string{"Q2_BASE_URL": "https://q2.example"}, []string{
			"Q2_CLIENT_ID: is required when Q2_BASE_URL is set",
			"Q2_CLIENT_SECRET: is required when Q2_BASE_URL is set",
			"REDIS_URL: is required outside demo mode (Q2_BASE_URL is set); set the redis:// or rediss:// URL of a Redis whose maxmemory-policy is noeviction",
			"WEBHOOK_SECRETS: is required with WEBHOOK_AUTH=signature outside demo mode (Q2_BASE_URL is set)"}},
		{"many bad settings", nil, map[string]string{"EVENT_TTL": "forever", "LOG_LEVEL": "loud", "WEBHOOK_AUTH": "maybe", "MAX_IN_FLIGHT": "0"}, []string{
			"WEBHOOK_AUTH:", "EVENT_TTL:", "MAX_IN_FLIGHT:", "LOG_LEVEL:"}},
		// Demo mode or production, never half: a secret alone is
		// production, and every API the products use must be configured.
		{"a secret alone is production", nil, map[string]string{"WEBHOOK_SECRETS": newSecret}, []string{
			`Q2_BASE_URL: is required outside demo mode (WEBHOOK_SECRETS is set) for the default product (no PRODUCTS_FILE), which provisions in q2; set the base URL of your Q2 API`,
			"Q2_CLIENT_ID: is required outside demo mode", "Q2_CLIENT_SECRET: is required outside demo mode", "REDIS_URL: is required outside demo mode (WEBHOOK_SECRETS is set)"}},
		{"redis alone is production", nil, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "WEBHOOK_AUTH": "none"}, []string{
			"Q2_BASE_URL: is required outside demo mode (REDIS_URL is set)", "Q2_CLIENT_ID:", "Q2_CLIENT_SECRET:"}},
		{"the example products with only q2", nil, with(nil, "PRODUCTS_FILE", "../../products.example.yaml"), []string{
			`QBD_BASE_URL: is required outside demo mode (REDIS_URL, Q2_BASE_URL, Q2_CLIENT_ID, ... are set) for product "QBD Connect", which provisions in qbd_connect; set the base URL of your QBD Connect API`,
			`HELIX_BASE_URL: is required outside demo mode (REDIS_URL, Q2_BASE_URL, Q2_CLIENT_ID, ... are set) for product "Business Access", which provisions in helix`,
			"HELIX_API_KEY: is required outside demo mode", "HELIX_API_SECRET: is required outside demo mode"}},
		{"a product file's mistakes and the settings' together", nil, with(map[string]string{"Q2_BASE_URL": "https://q2.example"}, "PRODUCTS_FILE", "testdata/bad-products.yaml", "EVENT_TTL", "x"), []string{
			"EVENT_TTL:", "PRODUCTS_FILE: testdata/bad-products.yaml:3:", "Q2_CLIENT_ID:", "Q2_CLIENT_SECRET:", "REDIS_URL:", "WEBHOOK_SECRETS:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if len(args) == 0 || args[0] != "frobnicate" {
				args = append([]string{"serve"}, args...)
			}
			var out, errOut bytes.Buffer
			err := run(context.Background(), args, func(k string) string { return tt.env[k] }, &out, &errOut)
			var stderr bytes.Buffer
			if code := exitCode(err, &stderr); code != 2 {
				t.Fatalf("exit code = %d (err %v), want 2", code, err)
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(tt.want), stderr.String())
			}
			for i, line := range lines {
				if !strings.HasPrefix(line, "webhook: ") || !strings.Contains(line, tt.want[i]) {
					t.Errorf("line %d = %q, want it to contain %q", i+1, line, tt.want[i])
				}
				if strings.Contains(line, "pw0rd") || strings.Contains(line, strings.TrimPrefix(newSecret, "whsec_")) {
					t.Errorf("line %d shows a secret: %q", i+1, line)
				}
			}
			if out.Len() != 0 || strings.Contains(errOut.String(), "listening") {
				t.Errorf("something started: %s%s", out.String(), errOut.String())
			}
		})
	}
}

func TestFlagWinsOverEnvironment(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig([]string{"--event-ttl", "1h", "--log-level", "debug"},
		func(k string) string { return map[string]string{"EVENT_TTL": "forever", "LOG_LEVEL": "error"}[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EventTTL != time.Hour || cfg.LogLevel.String() != "debug" {
		t.Errorf("config = %+v", cfg)
	}
	cfg, err = loadConfig(nil, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8080" || cfg.EventTTL != 72*time.Hour || cfg.ProcessTimeout != 4*time.Second || cfg.Q2APIVersion != "v2" || !cfg.Demo || cfg.Auth != "signature" ||
		cfg.AbandonAfter != 24*time.Hour || cfg.OpsAddr != "" || !cfg.Catalog.IsDefault() {
		t.Errorf("defaults = %+v", cfg)
	}
}

// Demo mode is when nothing only a real deployment sets is set; each
// such setting alone leaves it. API_TOKENS does not: the read API can be
// tried on a demo.
func TestDemoModeRule(t *testing.T) {
	t.Parallel()
	for _, s := range settings {
		env := map[string]string{}
		switch s.env {
		case "WEBHOOK_BASIC_AUTH":
			env = map[string]string{"WEBHOOK_AUTH": "basic", s.env: "u:p"}
		case "WEBHOOK_SECRETS":
			env[s.env] = newSecret
		case "REDIS_URL", "Q2_BASE_URL", "QBD_BASE_URL", "HELIX_BASE_URL":
			env[s.env] = "redis://127.0.0.1:1/0"
			if s.env != "REDIS_URL" {
				env[s.env] = "https://api.example"
			}
		default:
			if !s.production {
				continue
			}
			env[s.env] = "x"
		}
		_, err := loadConfig(nil, func(k string) string { return env[k] }, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "outside demo mode ("+s.env+" is set)") {
			t.Errorf("%s alone: %v, want production's requirements naming it", s.env, err)
		}
	}
	cfg, err := loadConfig(nil, func(k string) string {
		return map[string]string{"API_TOKENS": "0123456789abcdef0123", "PRODUCTS_FILE": "../../products.example.yaml", "WEBHOOK_AUTH": "none", "LOG_LEVEL": "debug"}[k]
	}, &bytes.Buffer{})
	if err != nil || !cfg.Demo {
		t.Errorf("API tokens, a products file, no auth: %v, demo %v; want demo mode", err, cfg != nil && cfg.Demo)
	}
}

func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"version"}, func(string) string { return "" }, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "webhook ") {
		t.Errorf("version: %v %q", err, out.String())
	}
	for _, cmd := range []string{"serve", "replay", "sandbox"} {
		out.Reset()
		errOut.Reset()
		err := run(context.Background(), []string{cmd, "--help"}, func(string) string { return "" }, &out, &errOut)
		if exitCode(err, &bytes.Buffer{}) != 0 || !strings.Contains(out.String()+errOut.String(), "Usage: webhook "+cmd) {
			t.Errorf("%s --help: err %v, output %q", cmd, err, out.String()+errOut.String())
		}
	}
}

// The shared fixtures, over real HTTP, in demo mode (nothing set): the
// contract's replies, one log line per delivery.
func TestServeFixtures(t *testing.T) {
	t.Parallel()
	svc := startService(t, nil)
	url := svc.url + "/marketplace/my-product-name"

	first := post(t, url, readFixture(t, "subscription-order.json"), nil)
	id := wantReply(t, first, 200, "").AccountIdentifier
	again := post(t, url, readFixture(t, "subscription-order.json"), nil)
	if !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the copy got %s (replayed %q), want the same bytes replayed", again.body, again.header.Get("Idempotent-Replayed"))
	}
	wantReply(t, post(t, url, withSubscription(t, "subscription-change.json", "a3c9c831-e550-428f-b89c-43c5e7b338b9", id), nil), 200, "")
	wantReply(t, post(t, url, readFixture(t, "subscription-cancel.json"), nil), 200, "")
	wantReply(t, post(t, url, readFixture(t, "q2-sdk-sample-cancel.json"), nil), 200, "") // cancelled already
	wantReply(t, post(t, url, withSubscription(t, "subscription-change.json", "a3c9c831-e550-428f-b89c-43c5e7b338b9", "x"), nil), 200, events.AccountNotFound)

	bad := post(t, url, []byte(`{"event":{},"event_type":"SUBSCRIPTION_ORDER","user_id":"x","subscription_id":"s"}`), nil)
	if rep := wantReply(t, bad, 400, events.InvalidResponse); !strings.Contains(rep.Message, "user_id must be an integer") {
		t.Errorf("400 message %q does not name the field", rep.Message)
	}
	wantReply(t, post(t, url, bytes.Repeat([]byte("x"), 2<<20), nil), 413, events.InvalidResponse)
	if code := get(t, svc.url+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code := get(t, svc.url+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}

	if err := svc.stop(t); err != nil {
		t.Fatalf("run returned %v after the signal, want nil", err)
	}
	logs := svc.logs.String()
	for _, want := range []string{`"msg":"delivery"`, `"key":"sha256:`, `"event_type":"SUBSCRIPTION_ORDER"`, `"outcome":"SUCCESS"`, `"duration"`, `"calls":2`, `"msg":"stopped"`, "demo mode"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

// SIGTERM while a delivery is in flight: /readyz turns 503, the delivery's
// Q2 call and Redis writes complete, run returns nil.
func TestGracefulDrain(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	sb, q2 := startSandbox(t, q2sandbox.Config{})
	env := q2Env(q2, redis.URL())
	env["SHUTDOWN_DELAY"] = "500ms"
	svc := startService(t, env)
	if err := sb.SetFault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 1000}); err != nil {
		t.Fatal(err)
	}
	replies := make(chan response, 1)
	go func() { replies <- post(t, svc.url+"/marketplace/p", readFixture(t, "subscription-order.json"), nil) }()
	eventually(t, 5*time.Second, "the enrollment to reach Q2", func() bool { return sb.Stats().Calls["Enrollment"] == 1 })

	stopped := make(chan error, 1)
	go func() { stopped <- svc.stop(t) }()
	eventually(t, 2*time.Second, "/readyz to turn 503", func() bool { return get(t, svc.url+"/readyz") == 503 })

	wantReply(t, <-replies, 200, "")
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v", err)
	}
	if sb.Stats().Users != 1 {
		t.Errorf("users = %d, want 1", sb.Stats().Users)
	}
	// The outcome was recorded before the process ended: a new replica on
	// the same Redis replays it.
	next := startService(t, q2Env(q2, redis.URL()))
	r := post(t, next.url+"/marketplace/p", readFixture(t, "subscription-order.json"), nil)
	if r.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("after the drain the delivery was not recorded: %d %s", r.status, r.body)
	}
}

// stormResult checks a storm's replies: every one the same success, or 409
// PENDING; exactly one enrollment.
func stormResult(t *testing.T, replies []response, sb testplan.Sandbox) {
	t.Helper()
	var id string
	successes := 0
	for _, r := range replies {
		switch rep := r.reply(t); {
		case r.status == 200 && rep.Success:
			if id != "" && rep.AccountIdentifier != id {
				t.Fatalf("two account identifiers: %s and %s", id, rep.AccountIdentifier)
			}
			id = rep.AccountIdentifier
			successes++
		case r.status == 409 && rep.ErrorCode == events.Pending && r.header.Get("Retry-After") != "":
		default:
			t.Fatalf("storm reply %d %s", r.status, r.body)
		}
	}
	if successes == 0 {
		t.Fatal("no copy succeeded")
	}
	if st := sb.Stats(); st.Calls["Enrollment"] != 1 || st.Users != 1 {
		t.Fatalf("after the storm: %+v, want one enrollment and one user", st)
	}
	t.Logf("%d copies: %d succeeded, %d pending", len(replies), successes, len(replies)-successes)
}

func storm(t *testing.T, urls []string, n int, body []byte) []response {
	t.Helper()
	replies := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i] = post(t, urls[i%len(urls)]+"/marketplace/p", body, nil)
		}()
	}
	close(start)
	wg.Wait()
	return replies
}

// 200 copies of one event at once, on one replica and on two sharing Redis:
// one processing, one enrollment.
func TestStorm(t *testing.T) {
	t.Parallel()
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d replicas", replicas), func(t *testing.T) {
			t.Parallel()
			redis := testredis.Start(t)
			sb, q2 := startSandbox(t, q2sandbox.Config{})
			if err := sb.SetFault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 200}); err != nil {
				t.Fatal(err)
			}
			var urls []string
			for range replicas {
				urls = append(urls, startService(t, q2Env(q2, redis.URL())).url)
			}
			stormResult(t, storm(t, urls, 200, readFixture(t, "subscription-order.json")), sb)
		})
	}
}

// Redis down: 503 TRANSPORT_ERROR with Retry-After and /readyz 503; Redis
// back: the service recovers without a restart.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	sb, q2 := startSandbox(t, q2sandbox.Config{})
	svc := startService(t, q2Env(q2, redis.URL()))
	url := svc.url + "/marketplace/p"

	redis.Down()
	r := post(t, url, withSubscription(t, "subscription-order.json", "sub-outage-1", ""), nil)
	wantReply(t, r, 503, events.TransportError)
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if code := get(t, svc.url+"/readyz"); code != 503 {
		t.Errorf("/readyz during the outage = %d", code)
	}
	if sb.Stats().Calls["Enrollment"] != 0 {
		t.Error("Q2 was called while Redis was down")
	}

	redis.Up()
	eventually(t, 10*time.Second, "/readyz to recover", func() bool { return get(t, svc.url+"/readyz") == 200 })
	wantReply(t, post(t, url, withSubscription(t, "subscription-order.json", "sub-outage-1", ""), nil), 200, "")
}

// Redis restarted empty between two copies of an answered ORDER: the copy
// finds the Q2 user by its logon and answers the same accountIdentifier.
func TestRedisRestartedEmpty(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	sb, q2 := startSandbox(t, q2sandbox.Config{})
	svc := startService(t, q2Env(q2, redis.URL()))
	url := svc.url + "/marketplace/p"
	first := wantReply(t, post(t, url, readFixture(t, "subscription-order.json"), nil), 200, "")

	redis.Down()
	redis.Up()
	eventually(t, 10*time.Second, "/readyz to recover", func() bool { return get(t, svc.url+"/readyz") == 200 })
	again := post(t, url, readFixture(t, "subscription-order.json"), nil)
	if rep := wantReply(t, again, 200, ""); rep.AccountIdentifier != first.AccountIdentifier || again.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("after the restart: %s, want %s processed again", again.body, first.AccountIdentifier)
	}
	// The copy's Enrollment is refused (the logon is taken) and the lookup
	// after it finds the user ours: one user.
	if st := sb.Stats(); st.Users != 1 || st.Customers != 1 {
		t.Errorf("Q2 after the restart: %+v, want one user", st)
	}
}

// A late ORDER after a CANCEL is FORBIDDEN and enrolls nobody; an ORDER
// during a Q2 outage is 503, then succeeds once Q2 is back.
func TestOrderAfterCancelAndDuringOutage(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	sb, q2 := startSandbox(t, q2sandbox.Config{})
	svc := startService(t, q2Env(q2, redis.URL()))
	url := svc.url + "/marketplace/p"

	if err := sb.SetFault(sandbox.Fault{Route: "LookupUser", Status: 503, Times: 100}); err != nil {
		t.Fatal(err)
	}
	r := post(t, url, readFixture(t, "subscription-order.json"), http.Header{"Webhook-Id": {"msg_order"}})
	wantReply(t, r, 503, events.TransportError)
	_ = sb.SetFault(sandbox.Fault{Route: "LookupUser", Times: 0})
	id := wantReply(t, post(t, url, readFixture(t, "subscription-order.json"), http.Header{"Webhook-Id": {"msg_order"}}), 200, "").AccountIdentifier

	wantReply(t, post(t, url, withSubscription(t, "subscription-cancel.json", "a3c9c831-e550-428f-b89c-43c5e7b338b9", id), nil), 200, "")
	late := withSubscription(t, "subscription-order.json", "a3c9c831-e550-428f-b89c-43c5e7b338b9", "")
	late = bytes.Replace(late, []byte(`"fi_name"`), []byte(`"late":true,"fi_name"`), 1) // another delivery of the ORDER
	wantReply(t, post(t, url, late, nil), 200, events.Forbidden)
	if st := sb.Stats(); st.Calls["Enrollment"] != 1 || st.Users != 0 {
		t.Errorf("Q2 after the late ORDER: %+v", st)
	}
}

// Two products from the example file: each extension is provisioned by its
// own product's plan, recorded with its product; another extension is 404.
func TestProductsFile(t *testing.T) {
	t.Parallel()
	sb, q2 := startSandbox(t, q2sandbox.Config{})
	env := q2Env(q2, miniRedisURL(t))
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	svc := startService(t, env)
	for i, ext := range []string{"my-product-name", "treasury-desk"} {
		body := withSubscription(t, "subscription-order.json", fmt.Sprintf("sub-product-%d", i), "")
		wantReply(t, post(t, svc.url+"/marketplace/"+ext, body, nil), 200, "")
	}
	if n := sb.Stats().Calls["Enrollment"]; n != 2 {
		t.Errorf("enrollments %d, want one per product", n)
	}
	wantReply(t, post(t, svc.url+"/marketplace/nobody-sells-this", readFixture(t, "subscription-order.json"), nil), 404, events.ConfigurationError)
	if !strings.Contains(svc.logs.String(), `"product":"Treasury Desk"`) {
		t.Error("the delivery's log line does not name its product")
	}
}

// The products example with every target, and the fixture stories of the
// QBD Connect and Business Access products replayed through the real
// command: every reply as expected, and the sandbox's counters moved as the
// contract says.
func TestProductStoriesReplay(t *testing.T) {
	t.Parallel()
	sb, url := startSandbox(t, q2sandbox.Config{})
	env := q2Env(url, miniRedisURL(t))
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	svc := startService(t, env)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"replay", "--url", svc.url, "../../fixtures/qbd-story", "../../fixtures/business-access"},
		func(string) string { return "" }, &out, &errOut)
	if err != nil {
		t.Fatalf("replay: %v\n%s%s", err, out.String(), errOut.String())
	}
	st := sb.Stats()
	for route, want := range map[string]int{"qbd.POST /customers": 1, "qbd.POST /subscriptions": 1, "Enrollment": 1,
		"helix.addEntitlement": 1, "helix.editEntitlement": 1, "helix.removeEntitlement": 1, "DeleteUser": 1} {
		if st.Calls[route] != want {
			t.Errorf("calls[%q] = %d, want %d (all: %v)", route, st.Calls[route], want, st.Calls)
		}
	}
	if st.Users != 0 {
		t.Errorf("live Q2 users after the cancels: %d", st.Users)
	}
	b, _ := json.Marshal(st)
	for _, want := range []string{`"entitlements":0`, `"subscriptions":0`, `"quantity":0`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("stats %s lack %s", b, want)
		}
	}

	// Every family of the contract and the issue, with plausible values.
	resp, err := http.Get(svc.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`webhook_deliveries_total{event_type="SUBSCRIPTION_ORDER",outcome="SUCCESS"} 2`,
		`webhook_deliveries_total{event_type="SUBSCRIPTION_ORDER",outcome="FORBIDDEN"} 1`,
		`webhook_deliveries_total{event_type="SUBSCRIPTION_CANCEL",outcome="SUCCESS"} 2`,
		`webhook_delivery_duration_seconds_count{event_type="SUBSCRIPTION_CHANGE"} 2`,
		`webhook_duplicates_total 0`,
		`webhook_upstream_requests_total{action="addEntitlement",status="200",target="helix"} 1`,
		`webhook_upstream_requests_total{action="POST /customers",status="201",target="qbd_connect"}`,
		`webhook_upstream_requests_total{action="Enrollment",status="200",target="q2"} 1`,
		`webhook_upstream_request_duration_seconds_bucket{action="LookupUser",target="q2",le="+Inf"}`,
		`webhook_in_flight 0`,
		`webhook_redis_errors_total 0`,
		`webhook_token_refreshes_total{result="ok",target="q2"} 1`,
		`webhook_plan_steps_undone_total{target="q2"} 1`,
		`webhook_settle_attempts_total{result="done",target="helix"}`,
		`webhook_unsettled_subscriptions `,
		`webhook_misconfigured_total{target="helix"} 0`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(string(text), "sub-") {
		t.Error("/metrics carries a subscription id in a label")
	}
}

// Every log line of a delivery, the outside API calls' included, carries
// its request id, delivery key and subscription; Q2's own request ids are
// logged with each call.
func TestCorrelatedLogs(t *testing.T) {
	t.Parallel()
	_, url := startSandbox(t, q2sandbox.Config{})
	env := q2Env(url, miniRedisURL(t))
	env["LOG_LEVEL"] = "debug"
	env["LOG_FORMAT"] = "json"
	svc := startService(t, env)
	wantReply(t, post(t, svc.url+"/marketplace/p", withSubscription(t, "subscription-order.json", "sub-correlated", ""), http.Header{"Webhook-Id": {"msg_correlated"}}), 200, "")
	var calls int
	for _, line := range strings.Split(svc.logs.String(), "\n") {
		if !strings.Contains(line, `"msg":"q2 call"`) || strings.Contains(line, `"action":"token"`) {
			continue
		}
		calls++
		for _, want := range []string{`"webhook_id":"msg_correlated"`, `"key":"id:msg_correlated"`, `"subscription":"sub-correlated"`, `"request_id":"`, `"requestid":"`} {
			if !strings.Contains(line, want) {
				t.Errorf("a q2 call's log line lacks %s: %s", want, line)
			}
		}
	}
	if calls != 2 {
		t.Errorf("%d q2 call lines, want 2 (enrollment, then the lookup for its ids)", calls)
	}
}
