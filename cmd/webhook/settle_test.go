package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testplan"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// The settle design from outside (issue 20, cases 1, 2 and 4): the real
// binary, a real redis-server and the sandbox, Business Access (a Q2 user,
// then a Helix entitlement for its customer).

// businessAccess starts the binary for Business Access with extra
// settings, on its own Redis and sandbox.
func businessAccess(t *testing.T, extra map[string]string) (*process, testplan.Sandbox, *testredis.Server) {
	t.Helper()
	bin := binary(t)
	redis := testredis.Start(t)
	sb, url := startSandbox(t, q2sandbox.Config{})
	env := q2Env(url, redis.URL())
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	env["API_TOKENS"] = apiToken
	for k, v := range extra {
		env[k] = v
	}
	return startBinary(t, bin, env), sb, redis
}

func entitlements(sb testplan.Sandbox) int {
	h, _ := sb.Stats().Parts["helix"].(helixsandbox.Stats)
	return h.Entitlements
}

// readAPI GETs a read API path and decodes its JSON.
func readAPI(t *testing.T, p *process, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode
}

type subscriptionView struct {
	SubscriptionID string `json:"subscription_id"`
	Status         string `json:"status"`
	Intent         string `json:"intent"`
	Edition        string `json:"edition"`
	Settled        bool   `json:"settled"`
	Waiting        string `json:"waiting"`
	Steps          []struct {
		Target, State string
		LastError     string `json:"last_error"`
	} `json:"steps"`
}

// Case 1: Helix refuses the service's credentials at step 2. The ORDER is
// answered 503 (not a 200 UNAUTHORIZED), the subscription is listed as
// unsettled with Helix's error, a CHANGE waits (409), and when no copy
// comes for ABANDON_AFTER the settler undoes the Q2 user and a late copy
// gets OPERATION_CANCELLED.
func TestSettleMisconfiguredStepFromOutside(t *testing.T) {
	t.Parallel()
	p, sb, _ := businessAccess(t, map[string]string{"PROCESS_TIMEOUT": "1s", "ABANDON_AFTER": "4s"})
	if err := sb.SetFault(sandbox.Fault{Route: "helix.addEntitlement", Code: 50401, Times: 1000}); err != nil {
		t.Fatal(err)
	}
	order := readFixture(t, "../../../fixtures/business-access/01-order.json")
	url := p.url + "/marketplace/business-access"
	r := post(t, url, order, http.Header{"Webhook-Id": {"msg_misconfigured"}})
	wantReply(t, r, 503, events.TransportError)
	if sb.Stats().Users != 1 {
		t.Fatalf("users %d after step 2 failed, want the Q2 user kept for the next copy", sb.Stats().Users)
	}
	var unsettled struct{ Subscriptions []subscriptionView }
	readAPI(t, p, "/v1/subscriptions?state=unsettled", &unsettled)
	if len(unsettled.Subscriptions) != 1 || unsettled.Subscriptions[0].Status != "provisioning" ||
		!strings.Contains(unsettled.Subscriptions[0].Steps[1].LastError, "UNAUTHORIZED") {
		t.Fatalf("unsettled: %+v", unsettled)
	}
	change := readFixture(t, "../../../fixtures/business-access/02-change.json")
	wantReply(t, post(t, url, change, nil), 409, events.Pending)
	if !strings.Contains(p.logs.String(), `"level":"error"`) {
		t.Error("the misconfiguration was not logged as an error")
	}

	eventually(t, 20*time.Second, "the settler to give the ORDER up", func() bool { return sb.Stats().Users == 0 })
	r = post(t, url, order, http.Header{"Webhook-Id": {"msg_misconfigured"}})
	wantReply(t, r, 200, events.OperationCancelled)
	wantReply(t, post(t, url, change, nil), 200, events.AccountNotFound)
	readAPI(t, p, "/v1/subscriptions?state=unsettled", &unsettled)
	if len(unsettled.Subscriptions) != 0 || entitlements(sb) != 0 {
		t.Errorf("after abandoning: unsettled %+v, entitlements %d", unsettled, entitlements(sb))
	}
}

// Case 2: an ORDER whose Helix add is slow is answered 503; the CANCEL
// succeeds; the add lands after it, and the settler's recheck removes it.
func TestSettleLateWorkFromOutside(t *testing.T) {
	t.Parallel()
	p, sb, _ := businessAccess(t, map[string]string{"PROCESS_TIMEOUT": "1s"})
	if err := sb.SetFault(sandbox.Fault{Route: "helix.addEntitlement", Times: 1, DelayMS: 2500}); err != nil {
		t.Fatal(err)
	}
	url := p.url + "/marketplace/business-access"
	wantReply(t, post(t, url, readFixture(t, "../../../fixtures/business-access/01-order.json"), nil), 503, events.TransportError)
	cancel := []byte(strings.Replace(string(readFixture(t, "../../../fixtures/business-access/03-cancel.json")), "{{accounts.01-order}}", "", 1))
	wantReply(t, post(t, url, cancel, nil), 200, "")
	if sb.Stats().Users != 0 {
		t.Fatal("the CANCEL left the Q2 user")
	}
	eventually(t, 5*time.Second, "the slow add to land", func() bool { return entitlements(sb) == 1 })
	eventually(t, 30*time.Second, "the settler to remove the late entitlement", func() bool { return entitlements(sb) == 0 })
}

// Case 4: a CHANGE after Redis forgot everything is applied: the record is
// rebuilt from Q2 and Helix, and the entitlement edited.
func TestSettleChangeAfterRedisForgotFromOutside(t *testing.T) {
	t.Parallel()
	p, sb, redis := businessAccess(t, nil)
	url := p.url + "/marketplace/business-access"
	first := wantReply(t, post(t, url, readFixture(t, "../../../fixtures/business-access/01-order.json"), nil), 200, "")
	redis.Flush()
	change := readFixture(t, "../../../fixtures/business-access/02-change.json")
	if rep := wantReply(t, post(t, url, change, nil), 200, ""); rep.AccountIdentifier != first.AccountIdentifier {
		t.Errorf("CHANGE answered %q, want the ORDER's %q", rep.AccountIdentifier, first.AccountIdentifier)
	}
	var sub subscriptionView
	readAPI(t, p, "/v1/subscriptions/b1a2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d", &sub)
	if sub.Status != "active" || sub.Edition != "PREMIUM" || !sub.Settled {
		t.Errorf("after the CHANGE: %+v", sub)
	}
	if calls := sb.Stats().Calls["helix.editEntitlement"]; calls != 1 {
		t.Errorf("%d editEntitlement calls, want 1", calls)
	}
}

// `webhook settle` runs one pass over the settle queue against the
// configured Redis and outside APIs, and prints what it did: here it
// finishes an undo that the service left when it stopped.
func TestSettleCommand(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	sb, url := startSandbox(t, q2sandbox.Config{})
	env := q2Env(url, redis.URL())
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	svc := startService(t, env)
	target := svc.url + "/marketplace/business-access"
	order := readFixture(t, "../../../fixtures/business-access/01-order.json")
	// Helix refuses for good: the ORDER is refused and its Q2 user must
	// go, but Q2 is down for that delete.
	if err := sb.SetFault(sandbox.Fault{Route: "helix.addEntitlement", Code: 195104, Times: 1}); err != nil {
		t.Fatal(err)
	}
	if err := sb.SetFault(sandbox.Fault{Route: "DeleteUser", Status: 503, Times: 1000}); err != nil {
		t.Fatal(err)
	}
	wantReply(t, post(t, target, order, nil), 200, events.Forbidden)
	if err := svc.stop(t); err != nil {
		t.Fatal(err)
	}
	if sb.Stats().Users != 1 {
		t.Fatal("setup: the Q2 user should still be live")
	}

	var out, errOut strings.Builder
	getenv := func(k string) string { return env[k] }
	err := run(t.Context(), []string{"settle"}, getenv, &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "refused, not settled") || !strings.Contains(out.String(), "1 not settled") {
		t.Fatalf("settle while Q2 is down: %v\n%s%s", err, out.String(), errOut.String())
	}
	if err := sb.SetFault(sandbox.Fault{Route: "DeleteUser", Times: 0}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(t.Context(), []string{"settle", "--subscription", "b1a2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"}, getenv, &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "refused, settled") || !strings.Contains(out.String(), "q2 undone") {
		t.Fatalf("settle after Q2 is back: %v\n%s%s", err, out.String(), errOut.String())
	}
	t.Log(out.String())
	if sb.Stats().Users != 0 {
		t.Error("the settle command left the Q2 user")
	}
}
