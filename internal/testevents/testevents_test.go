package testevents_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/testevents"
)

// recorder is a testing.TB that keeps Errorf's and Fatalf's messages
// instead of failing, so that a test can see what Story and WantOutcome
// report.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// Fatalf records too; the helpers under test return after it.
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestChange: the fixture comes back with the subscription and account
// the test gives it.
func TestChange(t *testing.T) {
	ev := testevents.Change(t, "sub-1", "acct-1")
	if ev.SubscriptionID != "sub-1" || ev.EventType != events.SubscriptionChange || ev.Event.Payload.Account.AccountIdentifier != "acct-1" {
		t.Errorf("event = %+v; want the CHANGE of sub-1, account acct-1", ev)
	}
}

// TestStory: Story reports each reply that is not final or differs from
// its expectation, and fills {{accounts.NAME}} from earlier replies.
func TestStory(t *testing.T) {
	tests := []struct {
		name       string
		expect     string
		reply      events.Outcome
		wantErrors int
	}{
		{"matching reply", `{"success":true,"accountIdentifier":"7"}`, events.Outcome{Kind: events.Final, Reply: events.Success("7")}, 0},
		{"other account", `{"success":true,"accountIdentifier":"8"}`, events.Outcome{Kind: events.Final, Reply: events.Success("7")}, 1},
		{"failure for success", `{"success":true}`, events.Outcome{Kind: events.Final, Reply: events.Failure(events.Forbidden, "no")}, 2},
		{"not final", `{"success":true}`, events.Outcome{Kind: events.Transient, Reply: events.Success("7")}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			change, err := os.ReadFile(filepath.Join("testdata", "subscription-change.json"))
			if err != nil {
				t.Fatal(err)
			}
			changeJSON := string(change)
			write(t, dir, "01-change.json", changeJSON)
			write(t, dir, "01-change.expect.json", tt.expect)
			write(t, dir, "02-copy.json", changeJSON)
			write(t, dir, "02-copy.expect.json", `{"accountIdentifier":"{{accounts.01-change}}"}`)
			r := &recorder{TB: t}
			sent := testevents.Story(r, dir, func(*events.SubscriptionEvent) events.Outcome { return tt.reply })
			if len(sent) != 2 || len(r.errors) != tt.wantErrors {
				t.Errorf("sent %d events, errors %q; want 2 events and %d errors", len(sent), r.errors, tt.wantErrors)
			}
		})
	}
}

func TestWantOutcome(t *testing.T) {
	tests := []struct {
		name string
		got  events.Outcome
		kind events.Kind
		code events.ErrorCode
		fail bool
	}{
		{"success", events.Provisioned("7"), events.Final, "", false},
		{"failure with its code", events.Outcome{Kind: events.Final, Reply: events.Failure(events.Forbidden, "no")}, events.Final, events.Forbidden, false},
		{"other kind", events.Provisioned("7"), events.Transient, "", true},
		{"failure for success", events.Outcome{Kind: events.Final, Reply: events.Failure(events.Forbidden, "no")}, events.Final, "", true},
		{"success for failure", events.Provisioned("7"), events.Final, events.Forbidden, true},
		{"other code", events.Outcome{Kind: events.Final, Reply: events.Failure(events.Forbidden, "no")}, events.Final, events.AccountNotFound, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			testevents.WantOutcome(r, tt.got, tt.kind, tt.code)
			if failed := len(r.errors) > 0; failed != tt.fail {
				t.Errorf("failed = %v (%q), want %v", failed, r.errors, tt.fail)
			}
		})
	}
}
