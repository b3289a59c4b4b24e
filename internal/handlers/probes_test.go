package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Probes answered 2xx log at debug, so that an orchestrator calling them
// every few seconds does not bury the deliveries; a failing probe still
// warns, and other routes keep their levels.
func TestProbesLogAtDebug(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		method string
		path   string
		ready  error
		want   zapcore.Level
	}{
		{"healthz", http.MethodGet, "/healthz", nil, zapcore.DebugLevel},
		{"readyz ready", http.MethodGet, "/readyz", nil, zapcore.DebugLevel},
		{"readyz unavailable", http.MethodGet, "/readyz", &NotReadyError{Reason: "redis: unavailable"}, zapcore.WarnLevel},
		{"a delivery", http.MethodPost, "/marketplace/my-product", nil, zapcore.InfoLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			h := New(Config{Receiver: &fakeReceiver{reply: okReply}, Logger: zap.New(core),
				Ready: func(context.Context) error { return tt.ready }})
			var body []byte
			if tt.method == http.MethodPost {
				body = orderFixture(t)
			}
			do(t, h, tt.method, tt.path, body, nil)
			lines := logs.All()
			if len(lines) != 1 || lines[0].Level != tt.want {
				t.Fatalf("log lines %v, want one at %s", lines, tt.want)
			}
		})
	}
}

// /readyz shows the outside APIs' state in its body; the status stays
// about Redis, whatever that state says.
func TestReadyzShowsOutside(t *testing.T) {
	t.Parallel()
	outside := map[string]string{"q2": "unreachable: connection refused", "qbd_connect": "ok", "helix": "unchecked"}
	tests := []struct {
		name       string
		ready      error
		wantStatus int
		wantState  string
	}{
		{"ready while Q2 is unreachable", nil, 200, "ready"},
		{"redis down", &NotReadyError{Reason: "redis: unavailable", Cause: errors.New("dial tcp 10.0.0.1:6379")}, 503, "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := New(Config{Receiver: &fakeReceiver{}, Ready: func(context.Context) error { return tt.ready },
				Outside: func() map[string]string { return outside }})
			rec := do(t, h, http.MethodGet, "/readyz", nil, nil)
			var doc struct {
				Status  string            `json:"status"`
				Outside map[string]string `json:"outside"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != tt.wantStatus {
				t.Fatalf("/readyz %d %s, want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if doc.Status != tt.wantState || !reflect.DeepEqual(doc.Outside, outside) {
				t.Errorf("/readyz body %s, want status %q and outside %v", rec.Body, tt.wantState, outside)
			}
		})
	}
}
