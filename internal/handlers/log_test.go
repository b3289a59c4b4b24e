package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/signature"
)

// Issue 10 item 12: every reply of the extension URL was logged with
// "status":200 and no reason. The one line per request now has the status
// really sent, the error code, a private reason, and a level that says
// whose fault it is.
func TestLogLineTellsTheTruth(t *testing.T) {
	t.Parallel()
	order := orderFixture(t)
	sign, auth := newSigner(t)
	other, _ := newSigner(t)
	signed := func(s *signer, at time.Time, body []byte) http.Header {
		h, err := signature.Headers(s.secret, "msg_log", at, body)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	dup := withEventKeys(t, order, `"Flag": "STATELESS", "flag": ""`)
	redisDown := &Error{Status: 503, Code: events.TransportError, Message: "the delivery store is unavailable",
		RetryAfter: 5 * time.Second, Cause: errors.New("dial tcp 10.0.0.5:6379: connect: connection refused")}

	tests := []struct {
		name       string
		body       []byte
		header     http.Header
		receiver   *fakeReceiver
		wantStatus int
		wantCode   events.ErrorCode // "" for none
		wantReason string           // a part of it; "" for no reason field
		wantLevel  zapcore.Level
	}{
		{name: "success", body: order, header: signed(sign, time.Now(), order), wantStatus: 200, wantLevel: zapcore.InfoLevel},
		{name: "wrong secret", body: order, header: signed(other, time.Now(), order), wantStatus: 401, wantCode: events.Unauthorized,
			wantReason: "no matching signature", wantLevel: zapcore.WarnLevel},
		{name: "timestamp 10 minutes off", body: order, header: signed(sign, time.Now().Add(-10*time.Minute), order), wantStatus: 401,
			wantCode: events.Unauthorized, wantReason: "timestamp too old", wantLevel: zapcore.WarnLevel},
		{name: "not JSON", body: []byte("{"), header: signed(sign, time.Now(), []byte("{")), wantStatus: 400, wantCode: events.InvalidResponse,
			wantReason: "not valid JSON", wantLevel: zapcore.WarnLevel},
		{name: "keys read as one", body: dup, header: signed(sign, time.Now(), dup), wantStatus: 400, wantCode: events.InvalidResponse,
			wantReason: `"event.Flag" and "event.flag" differ only in case`, wantLevel: zapcore.WarnLevel},
		{name: "redis down", body: order, header: signed(sign, time.Now(), order), receiver: &fakeReceiver{err: redisDown},
			wantStatus: 503, wantCode: events.TransportError, wantReason: "connection refused", wantLevel: zapcore.WarnLevel},
		{name: "our bug", body: order, header: signed(sign, time.Now(), order), receiver: &fakeReceiver{err: errors.New("nil map")},
			wantStatus: 500, wantCode: events.UnknownError, wantReason: "nil map", wantLevel: zapcore.ErrorLevel},
		{name: "a refusal decided in processing", body: order, header: signed(sign, time.Now(), order),
			receiver: &fakeReceiver{reply: inbox.Answer{Kind: events.Final, Code: string(events.Forbidden), Reason: "order: subscription cancelled",
				Body: []byte(`{"success":false,"errorCode":"FORBIDDEN","message":"subscription s was cancelled"}`)}},
			wantStatus: 200, wantReason: "order: subscription cancelled", wantLevel: zapcore.InfoLevel},
		{name: "panic", body: order, header: signed(sign, time.Now(), order), receiver: &fakeReceiver{hook: func() { panic("boom") }},
			wantStatus: 500, wantCode: events.UnknownError, wantReason: "boom", wantLevel: zapcore.ErrorLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			recv := tt.receiver
			if recv == nil {
				recv = &fakeReceiver{reply: okReply}
			}
			h := New(Config{Receiver: recv, Auth: auth, Logger: zap.New(core)})
			rec := do(t, h, http.MethodPost, "/marketplace/my-product", tt.body, tt.header)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			lines := logs.All()
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want one per request: %v", len(lines), lines)
			}
			line := lines[0]
			f := line.ContextMap()
			if line.Message != "delivery" || f["extension"] != "my-product" {
				t.Errorf("line %q %v: want a delivery line naming the extension", line.Message, f)
			}
			if f["webhook_id"] != "msg_log" { // a 401 included: the id a marketplace's ticket quotes
				t.Errorf("logged webhook_id %v, want msg_log", f["webhook_id"])
			}
			if f["status"] != int64(tt.wantStatus) {
				t.Errorf("logged status %v, sent %d", f["status"], tt.wantStatus)
			}
			if got, _ := f["code"].(string); got != string(tt.wantCode) {
				t.Errorf("logged code %q, want %q", got, tt.wantCode)
			}
			got, hasReason := f["reason"].(string)
			if hasReason != (tt.wantReason != "") || !strings.Contains(got, tt.wantReason) {
				t.Errorf("logged reason %q, want one containing %q", got, tt.wantReason)
			}
			if _, hasStack := f["stack"].(string); hasStack != (tt.name == "panic") {
				t.Errorf("logged stack: %v, want one for a panic only", hasStack)
			}
			if line.Level != tt.wantLevel {
				t.Errorf("level %s, want %s", line.Level, tt.wantLevel)
			}
			if strings.Contains(got, sign.secret) || strings.Contains(got, "accountIdentifier") {
				t.Errorf("the reason %q carries a secret or the body", got)
			}
		})
	}
}

// /readyz says what is unavailable, never the detail (addresses, driver
// errors): that goes to the request's log line.
func TestReadyzKeepsTheDetailInTheLog(t *testing.T) {
	t.Parallel()
	detail := errors.New("dial tcp 10.1.2.3:6379: i/o timeout")
	tests := []struct {
		name       string
		err        error
		wantReason string
	}{
		{"redis", &NotReadyError{Reason: "redis: unavailable", Cause: detail}, "redis: unavailable"},
		{"draining", &NotReadyError{Reason: "shutting down"}, "shutting down"},
		{"anything else", detail, "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.DebugLevel)
			h := New(Config{Receiver: &fakeReceiver{}, Logger: zap.New(core), Ready: func(context.Context) error { return tt.err }})
			rec := do(t, h, http.MethodGet, "/readyz", nil, nil)
			var doc map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != 503 {
				t.Fatalf("/readyz %d %s", rec.Code, rec.Body)
			}
			if doc["status"] != "unavailable" || doc["reason"] != tt.wantReason || len(doc) != 2 {
				t.Errorf("/readyz body %s, want status unavailable and reason %q", rec.Body, tt.wantReason)
			}
			if strings.Contains(rec.Body.String(), "10.1.2.3") {
				t.Error("/readyz shows an internal address")
			}
			lines := logs.All()
			if len(lines) != 1 || lines[0].ContextMap()["status"] != int64(503) {
				t.Fatalf("log lines %v, want one with status 503", lines)
			}
			if r, _ := lines[0].ContextMap()["reason"].(string); tt.err == detail && !strings.Contains(r, "10.1.2.3") {
				t.Errorf("the log's reason %q lacks the detail", r)
			}
		})
	}
}

// The request line is pooled: what one request added to its line (a
// delivery's fields, a private reason) must not reach the next one's.
func TestLogLinesDoNotLeakIntoTheNext(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.DebugLevel)
	notReady := true
	h := New(Config{Receiver: &fakeReceiver{reply: okReply}, Logger: zap.New(core),
		Ready: func(context.Context) error {
			if notReady {
				return &NotReadyError{Reason: "redis: unavailable", Cause: errors.New("dial tcp 10.0.0.5:6379: refused")}
			}
			return nil
		}})
	order := orderFixture(t)
	if rec := do(t, h, http.MethodPost, "/marketplace/my-product", order, http.Header{"Webhook-Id": {"msg_leak"}}); rec.Code != 200 {
		t.Fatalf("delivery: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodGet, "/readyz", nil, nil); rec.Code != 503 {
		t.Fatalf("readyz: %d", rec.Code)
	}
	notReady = false
	for range 3 {
		if rec := do(t, h, http.MethodGet, "/readyz", nil, nil); rec.Code != 200 {
			t.Fatalf("readyz: %d", rec.Code)
		}
	}
	lines := logs.All()
	if len(lines) != 5 {
		t.Fatalf("%d lines; want 5", len(lines))
	}
	if lines[0].Message != "delivery" || lines[0].ContextMap()["webhook_id"] != "msg_leak" {
		t.Fatalf("the delivery's line: %s %v", lines[0].Message, lines[0].ContextMap())
	}
	if r := lines[1].ContextMap()["reason"]; !strings.Contains(fmt.Sprint(r), "refused") {
		t.Fatalf("the failed probe's line has reason %v", r)
	}
	for _, l := range lines[2:] {
		m := l.ContextMap()
		if l.Message != "request" || m["webhook_id"] != nil || m["key"] != nil || m["reason"] != nil || m["route"] != "/readyz" {
			t.Fatalf("a later line carries an earlier request's fields: %s %v", l.Message, m)
		}
	}
}

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	h := New(Config{Receiver: &fakeReceiver{reply: okReply}})
	given := do(t, h, http.MethodGet, "/healthz", nil, http.Header{"X-Request-Id": {"ticket-42"}})
	if got := given.Header().Get("X-Request-Id"); got != "ticket-42" {
		t.Errorf("a request's own X-Request-Id is answered as %q", got)
	}
	// One too long or not printable is replaced: it is echoed and logged.
	for _, sent := range []string{strings.Repeat("x", 20000), "a b", "tab\there", "é"} {
		got := do(t, h, http.MethodGet, "/healthz", nil, http.Header{"X-Request-Id": {sent}}).Header().Get("X-Request-Id")
		if got == sent || len(got) != 32 {
			t.Errorf("X-Request-Id %.20q answered as %.40q, want a new id of ours", sent, got)
		}
	}
	seen := map[string]bool{}
	for range 100 {
		id := do(t, h, http.MethodGet, "/healthz", nil, nil).Header().Get("X-Request-Id")
		if len(id) != 32 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" || seen[id] {
			t.Fatalf("request id %q: want 32 new letters and digits", id)
		}
		seen[id] = true
	}
}
