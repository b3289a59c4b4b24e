package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/outside"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
)

// closedURL is an http URL of a loopback port nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// qbdAnswering is a QBD Connect that answers GET /products with status.
func qbdAnswering(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/qbdconnect-api/v1/products" {
			t.Errorf("start check called %s %s, want GET /products", r.Method, r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status == http.StatusOK {
			_, _ = w.Write([]byte(`[]`))
			return
		}
		_, _ = w.Write([]byte(`{"message":"no"}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// readyz answers /readyz's status and its "outside" object.
func readyz(t *testing.T, base string) (int, map[string]string) {
	t.Helper()
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Outside map[string]string `json:"outside"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	return resp.StatusCode, doc.Outside
}

// An outside API that refuses the settings stops the start: exit 1 (the
// configuration parses; the outside world says no), one line naming the
// settings, and the service never listens. One that is unreachable, or
// answers 5xx, is a warning: the service starts, /readyz answers 200 and
// shows the API's state.
func TestOutsideAPIsAtStart(t *testing.T) {
	t.Parallel()
	const wrongSecret = "not-the-sandbox-secret"
	_, sandboxURL := startSandbox(t, q2sandbox.Config{})
	tests := []struct {
		name     string
		env      func(t *testing.T) map[string]string
		wantLine string            // refused: a part of the one line on stderr; "" when the service starts
		want     map[string]string // started: /readyz's "outside"
		wantLog  string            // started: a part of the logs
	}{
		{
			name: "all checked and answering",
			env:  func(t *testing.T) map[string]string { return q2Env(sandboxURL, miniRedisURL(t)) },
			want: map[string]string{"q2": "ok", "qbd_connect": "ok", "helix": "unchecked", "redis": "unchecked"},
		},
		{
			name: "Q2 refuses the credentials",
			env: func(t *testing.T) map[string]string {
				env := q2Env(sandboxURL, miniRedisURL(t))
				env["Q2_CLIENT_SECRET"] = wrongSecret
				return env
			},
			wantLine: "Q2_CLIENT_ID/Q2_CLIENT_SECRET: Q2 refused the client credentials (q2 token: HTTP 401: unauthorized: invalid_client",
		},
		{
			name: "Q2 on a closed port",
			env: func(t *testing.T) map[string]string {
				return with(q2Env(sandboxURL, miniRedisURL(t)), "Q2_BASE_URL", closedURL(t))
			},
			want:    map[string]string{"q2": "unreachable: connection refused", "qbd_connect": "ok", "helix": "unchecked", "redis": "unchecked"},
			wantLog: `"level":"warn","ts":`,
		},
		{
			name: "Q2's token endpoint is not at the base URL",
			env: func(t *testing.T) map[string]string {
				env := q2Env(sandboxURL, miniRedisURL(t))
				env["Q2_BASE_URL"] = sandboxURL + "/not-q2"
				return env
			},
			wantLine: "Q2_BASE_URL/Q2_API_VERSION: Q2's token endpoint is not there",
		},
		{
			name: "QBD Connect refuses the token",
			env: func(t *testing.T) map[string]string {
				return with(q2Env(sandboxURL, miniRedisURL(t)), "QBD_BASE_URL", qbdAnswering(t, http.StatusUnauthorized), "QBD_TOKEN", "wrong")
			},
			wantLine: "QBD_TOKEN: QBD Connect refused the token",
		},
		{
			name: "QBD Connect forbids",
			env: func(t *testing.T) map[string]string {
				return with(q2Env(sandboxURL, miniRedisURL(t)), "QBD_BASE_URL", qbdAnswering(t, http.StatusForbidden))
			},
			wantLine: "QBD_TOKEN: QBD Connect refused the token",
		},
		{
			name: "QBD Connect is not at the base URL",
			env: func(t *testing.T) map[string]string {
				return with(q2Env(sandboxURL, miniRedisURL(t)), "QBD_BASE_URL", qbdAnswering(t, http.StatusNotFound))
			},
			wantLine: "QBD_BASE_URL/QBD_API_VERSION: QBD Connect did not answer GET /products",
		},
		{
			name: "QBD Connect unavailable",
			env: func(t *testing.T) map[string]string {
				return with(q2Env(sandboxURL, miniRedisURL(t)), "QBD_BASE_URL", qbdAnswering(t, http.StatusServiceUnavailable))
			},
			want:    map[string]string{"q2": "ok", "qbd_connect": "unreachable: HTTP 503", "helix": "unchecked", "redis": "unchecked"},
			wantLog: "QBD Connect is unreachable at start",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.env(t)
			if tt.wantLine == "" {
				svc := startService(t, env)
				status, outside := readyz(t, svc.url)
				if status != http.StatusOK || !equalMaps(outside, tt.want) {
					t.Errorf("/readyz %d outside %v, want 200 and %v", status, outside, tt.want)
				}
				if logs := svc.logs.String(); !strings.Contains(logs, tt.wantLog) || !strings.Contains(logs, `"msg":"outside APIs checked"`) {
					t.Errorf("logs lack %q or the check's line:\n%s", tt.wantLog, logs)
				}
				return
			}
			var listened atomic.Bool
			ctx, cancel := context.WithTimeout(withOnListening(context.Background(), func(Listening) { listened.Store(true) }), 30*time.Second)
			defer cancel()
			var logs syncBuffer
			getenv := func(k string) string {
				if k == "WEBHOOK_ADDR" || k == "SANDBOX_ADDR" {
					return "127.0.0.1:0"
				}
				return env[k]
			}
			err := run(ctx, []string{"serve"}, getenv, &logs, &logs)
			var stderr bytes.Buffer
			if code := exitCode(err, &stderr); code != 1 {
				t.Fatalf("exit code %d (err %v), want 1\n%s", code, err, logs.String())
			}
			var refused *outside.Refusal
			if !errors.As(err, &refused) {
				t.Errorf("err %T, want an *outside.Refusal", err)
			}
			line := stderr.String()
			if strings.Count(line, "\n") != 1 || !strings.Contains(line, tt.wantLine) {
				t.Errorf("stderr %q, want one line containing %q", line, tt.wantLine)
			}
			if strings.Contains(line, wrongSecret) || strings.Contains(logs.String(), wrongSecret) {
				t.Error("the secret was written out")
			}
			if listened.Load() {
				t.Error("the service listened before stopping")
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Settings that work but probably not as meant are warnings in the log.
func TestConfigWarnings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"defaults", nil, nil},
		{"secrets ignored by basic", with(nil, "WEBHOOK_AUTH", "basic", "WEBHOOK_BASIC_AUTH", "u:p"),
			[]string{"WEBHOOK_SECRETS is set but WEBHOOK_AUTH=basic ignores it"}},
		{"secrets ignored by none", with(nil, "WEBHOOK_AUTH", "none"),
			[]string{"WEBHOOK_SECRETS is set but WEBHOOK_AUTH=none ignores it"}},
		{"secrets used", prodBase(), nil},
		{"process timeout 5s", map[string]string{"PROCESS_TIMEOUT": "5s"}, []string{"PROCESS_TIMEOUT=5s: the marketplace stops waiting"}},
		{"process timeout 4.9s", map[string]string{"PROCESS_TIMEOUT": "4.9s"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(nil, func(k string) string { return tt.env[k] }, &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", got, len(tt.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("warning %q, want it to contain %q", got[i], tt.want[i])
				}
			}
		})
	}

	// And the service logs them at start.
	_, sandboxURL := startSandbox(t, q2sandbox.Config{})
	svc := startService(t, with(q2Env(sandboxURL, miniRedisURL(t)), "WEBHOOK_SECRETS", newSecret, "PROCESS_TIMEOUT", "6s"))
	for _, want := range []string{`"level":"warn","ts":`, "WEBHOOK_SECRETS is set but WEBHOOK_AUTH=none ignores it", "PROCESS_TIMEOUT=6s"} {
		if !strings.Contains(svc.logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

// LOG_FORMAT forces the format; auto is JSON when the output is not a
// terminal.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		format string
		json   bool
	}{{"json", true}, {"console", false}, {"auto", true}} {
		t.Run(tt.format, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			newLogger(&b, zapcore.InfoLevel, tt.format).Info("hello", zap.String("k", "v"))
			if isJSON := json.Valid(bytes.TrimSpace(b.Bytes())); isJSON != tt.json || !strings.Contains(b.String(), "hello") {
				t.Errorf("LOG_FORMAT=%s wrote %q", tt.format, b.String())
			}
		})
	}
}

// While muted, go-redis's logger drops its lines, its derived loggers too.
func TestMutableCore(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	var muted atomic.Int32
	log := zap.New(mutableCore{core, &muted}).With(zap.String("component", "go-redis"))
	muted.Add(1)
	log.Warn("dial failed while starting")
	log.Sugar().Warnf("dial failed %d", 2)
	muted.Add(-1)
	log.Warn("dial failed later")
	if all := logs.All(); len(all) != 1 || all[0].Message != "dial failed later" {
		t.Errorf("logged %v, want only the line after unmuting", all)
	}
}

// An unreachable Redis at start is one line on stderr and exit 1, not
// go-redis's warnings before it. The real binary: go-redis's logger is
// process-wide, so only a process of its own shows what it writes.
func TestRedisUnreachableAtStartIsOneLine(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{"REDIS_URL=redis" + strings.TrimPrefix(closedURL(t), "http"), "WEBHOOK_ADDR=127.0.0.1:0",
		"Q2_BASE_URL=" + closedURL(t), "Q2_CLIENT_ID=id", "Q2_CLIENT_SECRET=secret", "WEBHOOK_AUTH=none"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1\n%s%s", err, stdout.String(), stderr.String())
	}
	if stdout.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "REDIS_URL") {
		t.Errorf("stdout %q, stderr %q: want nothing, then one line naming REDIS_URL", stdout.String(), stderr.String())
	}
}

// `webhook --help` and `-h` list the commands; `webhook serve --help` has
// serve's flags.
func TestHelpListsCommands(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
		if exitCode(err, &bytes.Buffer{}) != 0 {
			t.Errorf("%v: err %v", args, err)
		}
		for _, cmd := range []string{"serve", "replay", "sandbox", "settle", "version"} {
			if !strings.Contains(out.String(), "\n  "+cmd+" ") {
				t.Errorf("%v: the usage lacks %s:\n%s", args, cmd, out.String())
			}
		}
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--help"}, func(string) string { return "" }, &out, &errOut)
	if exitCode(err, &bytes.Buffer{}) != 0 || !strings.Contains(errOut.String(), "-log-format") || strings.Contains(errOut.String(), "Commands:") {
		t.Errorf("serve --help: err %v, output %q", err, errOut.String())
	}
}

// The default SANDBOX_ADDR taken (another webhook on this machine): the
// service still starts, on another port, and says where. The run command
// of the README must work on any machine.
func TestDefaultSandboxAddrTaken(t *testing.T) {
	ln, err := net.Listen("tcp", defaultSandboxAddr)
	if err == nil { // free: take it for the test; else someone else holds it, which is the case under test too
		defer ln.Close()
	}
	svc := startService(t, map[string]string{"SANDBOX_ADDR": defaultSandboxAddr, "WEBHOOK_AUTH": "none"})
	if code := get(t, svc.url+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if !strings.Contains(svc.logs.String(), "is taken (another webhook running?)") {
		t.Errorf("no warning that the sandbox moved:\n%s", svc.logs)
	}
}
