// Package testevents reads marketplace events from a test's fixtures and
// plays fixture stories, so that the tests of every package that processes
// events read their fixtures the same way. Each package keeps its own
// testdata; only tests import this package.
package testevents

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
)

// Fixture decodes the event at path (relative to the test's package
// folder), giving it subscription sub and, when the event names an
// account, the accountIdentifier account: one fixture serves every
// subscription a test makes up.
func Fixture(t testing.TB, path, sub, account string) *events.SubscriptionEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Decode(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	ev.SubscriptionID = sub
	if ev.Event.Payload.Account != nil {
		ev.Event.Payload.Account.AccountIdentifier = account
	}
	return ev
}

// Order is the package's testdata/subscription-order.json for sub.
func Order(t testing.TB, sub string) *events.SubscriptionEvent {
	t.Helper()
	return Fixture(t, filepath.Join("testdata", "subscription-order.json"), sub, "")
}

// Change is the package's testdata/subscription-change.json for sub and
// its account.
func Change(t testing.TB, sub, account string) *events.SubscriptionEvent {
	t.Helper()
	return Fixture(t, filepath.Join("testdata", "subscription-change.json"), sub, account)
}

// Cancel is the package's testdata/subscription-cancel.json for sub and
// its account.
func Cancel(t testing.TB, sub, account string) *events.SubscriptionEvent {
	t.Helper()
	return Fixture(t, filepath.Join("testdata", "subscription-cancel.json"), sub, account)
}

// Story plays a fixture story, as `webhook replay` does: every NAME.json
// of dir in name order, with each {{accounts.EARLIER}} replaced by the
// accountIdentifier the reply to EARLIER.json carried. Each reply must be
// final and carry every field of NAME.expect.json, which every step must
// have. Story answers the events it sent, in order, for the caller's own
// checks.
func Story(t testing.TB, dir string, process func(*events.SubscriptionEvent) events.Outcome) []*events.SubscriptionEvent {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	accounts := map[string]string{}
	fill := func(b []byte) []byte {
		s := string(b)
		for name, id := range accounts {
			s = strings.ReplaceAll(s, "{{accounts."+name+"}}", id)
		}
		return []byte(s)
	}
	var sent []*events.SubscriptionEvent
	for _, path := range paths {
		if strings.HasSuffix(path, ".expect.json") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(fill(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := process(ev)
		accounts[name] = out.Reply.AccountIdentifier
		sent = append(sent, ev)

		eb, err := os.ReadFile(strings.TrimSuffix(path, ".json") + ".expect.json")
		if err != nil {
			t.Fatalf("%s: every step of the story needs its expectation: %v", name, err)
		}
		var want map[string]any
		if err := json.Unmarshal(fill(eb), &want); err != nil {
			t.Fatalf("%s.expect.json: %v", name, err)
		}
		gb, err := json.Marshal(out.Reply)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(gb, &got); err != nil {
			t.Fatal(err)
		}
		if !out.Final() {
			t.Errorf("%s: reply %v %s; want a final reply", name, out.Kind, gb)
		}
		for k, v := range want {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("%s: reply %s; want %s = %v", name, gb, k, v)
			}
		}
	}
	return sent
}

// WantOutcome fails the test unless got is of kind and carries code: a
// success when code is "", else a failure with that code.
func WantOutcome(t testing.TB, got events.Outcome, kind events.Kind, code events.ErrorCode) {
	t.Helper()
	if got.Kind != kind || got.Reply.Success != (code == "") || got.Reply.ErrorCode != code {
		t.Fatalf("outcome = %v %+v; want %v %q", got.Kind, got.Reply, kind, code)
	}
}
