package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

const apiToken = "read-api-token-for-tests-0123456789"

// apiGet calls the read API with token and decodes the JSON answer.
func apiGet(t *testing.T, url, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("GET %s: %d %q is not JSON", url, resp.StatusCode, b)
	}
	return resp.StatusCode, doc
}

// The read API through the running service on real Redis: right after each
// reply, with nothing personal in it.
func TestReadAPI(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	sb, url := startSandbox(t, q2sandbox.Config{})
	env := q2Env(url, redis.URL())
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	env["API_TOKENS"] = "an-old-token-being-rotated-out " + apiToken
	svc := startService(t, env)
	api := svc.url + "/v1"
	sub := "sub-read-api"

	t.Run("tokens", func(t *testing.T) {
		for _, tok := range []string{"", "wrong-token-wrong-token"} {
			if code, doc := apiGet(t, api+"/subscriptions/"+sub, tok); code != 401 || doc["message"] == nil {
				t.Errorf("token %q: %d %v, want 401 with a message", tok, code, doc)
			}
		}
		if code, _ := apiGet(t, api+"/subscriptions/"+sub, "an-old-token-being-rotated-out"); code != 404 {
			t.Errorf("the other token: %d, want 404 (unknown subscription)", code)
		}
	})

	order := withSubscription(t, "subscription-order.json", sub, "")
	plus := svc.url + "/marketplace/my-product-name"
	first := wantReply(t, post(t, plus, order, nil), 200, "")
	code, doc := apiGet(t, api+"/subscriptions/"+sub, apiToken)
	if code != 200 || doc["status"] != "active" || doc["product"] != "Online Banking Plus" || doc["edition"] != "BASIC" ||
		doc["account_identifier"] != first.AccountIdentifier || doc["user_id"] != float64(12345) {
		t.Fatalf("after the ORDER: %d %v", code, doc)
	}
	if items, _ := doc["items"].([]any); len(items) != 1 {
		t.Errorf("items %v", doc["items"])
	}
	for _, personal := range []string{"email", "firstName", "name", "address", "logon", "ssn"} {
		if _, ok := doc[personal]; ok {
			t.Errorf("the answer carries %q: %v", personal, doc)
		}
	}

	// Two copies of the ORDER, a CHANGE, then a CANCEL that first meets a
	// Q2 outage (DO_NOT_CANCEL: released, not final) and then succeeds.
	post(t, plus, order, nil)
	post(t, plus, order, nil)
	wantReply(t, post(t, plus, withSubscription(t, "subscription-change.json", sub, first.AccountIdentifier), nil), 200, "")
	if _, doc := apiGet(t, api+"/subscriptions/"+sub, apiToken); doc["edition"] != "PREMIUM" {
		t.Errorf("after the CHANGE: %v", doc)
	}
	if err := sb.SetFault(sandbox.Fault{Route: "DeleteUser", Status: 503, Times: 10}); err != nil {
		t.Fatal(err)
	}
	cancel := withSubscription(t, "subscription-cancel.json", sub, first.AccountIdentifier)
	wantReply(t, post(t, plus, cancel, nil), 200, events.DoNotCancel)
	if err := sb.SetFault(sandbox.Fault{Route: "DeleteUser", Times: 0}); err != nil {
		t.Fatal(err)
	}
	wantReply(t, post(t, plus, cancel, nil), 200, "")
	if _, doc := apiGet(t, api+"/subscriptions/"+sub, apiToken); doc["status"] != "cancelled" {
		t.Errorf("after the CANCEL: %v", doc)
	}

	code, doc = apiGet(t, api+"/deliveries?subscription_id="+sub, apiToken)
	deliveries, _ := doc["deliveries"].([]any)
	if code != 200 || len(deliveries) != 3 {
		t.Fatalf("deliveries: %d %v, want the ORDER, the CHANGE and the CANCEL", code, doc)
	}
	newest := deliveries[0].(map[string]any)
	if newest["event_type"] != "SUBSCRIPTION_CANCEL" || newest["attempts"] != float64(2) || newest["final"] != true || newest["status"] != float64(200) {
		t.Errorf("the CANCEL (newest first): %v", newest)
	}
	oldest := deliveries[2].(map[string]any)
	if oldest["event_type"] != "SUBSCRIPTION_ORDER" || oldest["attempts"] != float64(1) || oldest["copies_answered"] != float64(2) || oldest["outcome"] != "SUCCESS" {
		t.Errorf("the ORDER: %v", oldest)
	}

	// A second product for the same user, listed by user_id.
	other := withSubscription(t, "subscription-order.json", "sub-read-api-2", "")
	wantReply(t, post(t, svc.url+"/marketplace/treasury-desk", other, nil), 200, "")
	_, doc = apiGet(t, api+"/subscriptions?user_id=12345", apiToken)
	if subs, _ := doc["subscriptions"].([]any); len(subs) != 2 {
		t.Fatalf("the user's subscriptions: %v", doc)
	}
	_, doc = apiGet(t, api+"/subscriptions?user_id=12345&product=Treasury%20Desk", apiToken)
	if subs, _ := doc["subscriptions"].([]any); len(subs) != 1 || subs[0].(map[string]any)["status"] != "active" {
		t.Fatalf("filtered by product: %v", doc)
	}
	if code, _ := apiGet(t, api+"/subscriptions?user_id=x", apiToken); code != 400 {
		t.Errorf("a bad user_id: %d, want 400", code)
	}
}

// Without API_TOKENS the read API does not exist, and its 404 says which
// setting turns it on (issue 21: it said "no such route").
func TestReadAPIOffWithoutTokens(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{"WEBHOOK_AUTH": "none"})
	code, doc := apiGet(t, svc.url+"/v1/subscriptions/x", apiToken)
	if msg, _ := doc["message"].(string); code != 404 || !strings.Contains(msg, "set API_TOKENS") {
		t.Errorf("GET /v1/subscriptions/x without API_TOKENS: %d %v, want 404 naming API_TOKENS", code, doc)
	}
}

// An ORDER that Q2's Enrollment fails three times, then provisions: the
// read API shows its four attempts with their reasons and calls, found by
// its webhook-id, its key, its subscription and its account identifier;
// the recent failures list a refused ORDER and page with a cursor. Every
// reply is checked against docs/openapi.yaml by TestMain.
func TestReadAPIAttemptHistory(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	sb, url := startSandbox(t, q2sandbox.Config{})
	env := q2Env(url, redis.URL())
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	env["API_TOKENS"] = apiToken
	svc := startService(t, env)
	api := svc.url + "/v1"
	plus := svc.url + "/marketplace/my-product-name"

	if err := sb.SetFault(sandbox.Fault{Route: "Enrollment", Status: 503, Times: 3}); err != nil {
		t.Fatal(err)
	}
	order := withSubscription(t, "subscription-order.json", "sub-history", "")
	id := http.Header{"Webhook-Id": {"msg_history_1"}}
	for range 3 {
		wantReply(t, post(t, plus, order, id), 503, events.TransportError)
	}
	rep := wantReply(t, post(t, plus, order, id), 200, "")
	post(t, plus, order, id) // a copy: counted, not an attempt

	code, doc := apiGet(t, api+"/deliveries?webhook_id=msg_history_1", apiToken)
	list, _ := doc["deliveries"].([]any)
	if code != 200 || len(list) != 1 {
		t.Fatalf("by webhook-id: %d %v", code, doc)
	}
	d := list[0].(map[string]any)
	hist, _ := d["attempt_history"].([]any)
	if d["key"] != "id:msg_history_1" || d["attempts"] != float64(4) || d["copies_answered"] != float64(1) || len(hist) != 4 || d["status"] != float64(200) {
		t.Fatalf("the ORDER: %v", d)
	}
	for i, h := range hist {
		a := h.(map[string]any)
		calls, _ := a["calls"].([]any)
		if i < 3 {
			if a["outcome"] != "TRANSPORT_ERROR" || a["status"] != float64(503) || a["reason"] != "q2.provision: HTTP 503" || len(calls) == 0 {
				t.Errorf("attempt %d: %v, want a 503 with its reason and calls", i+1, a)
			}
			continue
		}
		enrollment := false
		for _, c := range calls {
			c := c.(map[string]any)
			enrollment = enrollment || (c["action"] == "Enrollment" && c["status"] == float64(200) && c["request_id"] != "")
		}
		if a["outcome"] != "SUCCESS" || a["status"] != float64(200) || a["reason"] != "" || !enrollment {
			t.Errorf("attempt 4: %v, want SUCCESS with its Enrollment and Q2's request id", a)
		}
	}
	if code, byKey := apiGet(t, api+"/deliveries/id%3Amsg_history_1", apiToken); code != 200 || byKey["attempts"] != float64(4) {
		t.Errorf("by key: %d %v", code, byKey)
	}
	for _, q := range []string{"subscription_id=sub-history", "account_identifier=" + rep.AccountIdentifier} {
		if code, doc := apiGet(t, api+"/deliveries?"+q, apiToken); code != 200 || len(doc["deliveries"].([]any)) != 1 {
			t.Errorf("?%s: %d %v", q, code, doc)
		}
	}
	if code, doc := apiGet(t, api+"/deliveries/id%3Amsg_never", apiToken); code != 404 || doc["message"] == nil {
		t.Errorf("an unknown key: %d %v", code, doc)
	}

	// Two refused ORDERs: the recent failures list them, newest first, a
	// page at a time; the recovered ORDER is not listed.
	for i, sub := range []string{"sub-refused-1", "sub-refused-2"} {
		ord := withSubscription(t, "subscription-order.json", sub, "")
		wantReply(t, post(t, plus, ord, http.Header{"Webhook-Id": {fmt.Sprint("msg_refused_", i)}}), 200, "")
		wantReply(t, post(t, plus, withSubscription(t, "subscription-cancel.json", sub, ""), nil), 200, "")
		wantReply(t, post(t, plus, ord, http.Header{"Webhook-Id": {fmt.Sprint("msg_reordered_", i)}}), 200, events.Forbidden)
	}
	code, doc = apiGet(t, api+"/deliveries?outcome=failed&since=1h&limit=1", apiToken)
	first, _ := doc["deliveries"].([]any)
	cursor, _ := doc["next_cursor"].(string)
	if code != 200 || len(first) != 1 || cursor == "" || first[0].(map[string]any)["key"] != "id:msg_reordered_1" ||
		first[0].(map[string]any)["reason"] != "order: subscription cancelled" {
		t.Fatalf("the first page of failures: %d %v", code, doc)
	}
	code, doc = apiGet(t, api+"/deliveries?outcome=failed&since=1h&limit=1&cursor="+cursor, apiToken)
	second, _ := doc["deliveries"].([]any)
	if code != 200 || len(second) != 1 || second[0].(map[string]any)["key"] != "id:msg_reordered_0" {
		t.Fatalf("the second page of failures: %d %v", code, doc)
	}
	if code, doc := apiGet(t, api+"/deliveries?outcome=failed&cursor=forged", apiToken); code != 400 || !strings.Contains(doc["message"].(string), "cursor") {
		t.Errorf("a forged cursor: %d %v", code, doc)
	}
}
