package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// deliveryReader is a Reader that knows deliveries by key, and one
// account (identifier "501") of subscription sub-1.
type deliveryReader struct {
	fakeReader
	byKey    map[string]inbox.DeliverySummary
	failures []inbox.DeliverySummary
	gotSince time.Time
	gotLimit int
}

func (r *deliveryReader) DeliveryByKey(_ context.Context, key string) (inbox.DeliverySummary, error) {
	d, ok := r.byKey[key]
	if !ok {
		return d, events.ErrNotFound
	}
	return d, nil
}

func (r *deliveryReader) DeliveriesByKeys(_ context.Context, keys []string) ([]inbox.DeliverySummary, error) {
	var out []inbox.DeliverySummary
	for _, k := range keys {
		if d, ok := r.byKey[k]; ok {
			out = append(out, d)
		}
	}
	return out, nil
}

func (r *deliveryReader) Deliveries(_ context.Context, sub string) ([]inbox.DeliverySummary, error) {
	var out []inbox.DeliverySummary
	for _, d := range r.byKey {
		if d.Subscription == sub {
			out = append(out, d)
		}
	}
	return out, nil
}

func (r *deliveryReader) AccountByIdentifier(_ context.Context, id string) (events.Account, error) {
	if id != "501" {
		return events.Account{}, events.ErrNotFound
	}
	return events.Account{SubscriptionID: "sub-1", AccountIdentifier: id}, nil
}

func (r *deliveryReader) Failures(_ context.Context, since time.Time, cursor string, limit int) ([]inbox.DeliverySummary, string, error) {
	r.gotSince, r.gotLimit = since, limit
	switch cursor {
	case "":
		return r.failures[:1], "c2", nil
	case "c2":
		return r.failures[1:], "", nil
	}
	return nil, "", inbox.ErrBadCursor
}

// The read API's delivery routes: by key (any bytes, percent-encoded),
// by webhook-id, event token, subscription or account identifier, and
// the recent failures in pages; each delivery with its attempts, calls
// and reasons; every mistake answered 400 naming the parameter and the
// fix.
func TestReadAPIDeliveries(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	order := inbox.DeliverySummary{Key: "id:msg/1%A", EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-1", State: "done", Kind: "final",
		Code: "SUCCESS", Attempts: 2, First: at.UnixMilli(), Last: at.UnixMilli(), Dropped: 3,
		History: []inbox.Attempt{
			{At: at, Status: 503, Code: "TRANSPORT_ERROR", Kind: events.Transient, Reason: "q2.provision: HTTP 503", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
				Calls: []events.Call{{System: "q2", Action: "Enrollment", Status: 503, RequestID: "q2-1"}, {System: "q2", Action: "LookupUser", Error: "timeout"}}},
			{At: at.Add(time.Minute), Status: 200, Code: "SUCCESS", Kind: events.Final},
		}}
	ad := inbox.DeliverySummary{Key: "appdirect:tok-9", EventType: "SUBSCRIPTION_CANCEL", Subscription: "sub-2", State: "done", Kind: "final",
		Code: "FORBIDDEN", History: []inbox.Attempt{{At: at, Code: "FORBIDDEN", Kind: events.Final, Reason: "event: accountIdentifier of another subscription"}}}
	// The same token of two marketplaces: a delivery each.
	adA := inbox.DeliverySummary{Key: "appdirect:tok-7@acme.example", EventType: "SUBSCRIPTION_ORDER", Subscription: "ad-a", State: "done", Kind: "final", Code: "SUCCESS"}
	adB := inbox.DeliverySummary{Key: "appdirect:tok-7@http://b.example:8080", EventType: "SUBSCRIPTION_ORDER", Subscription: "ad-b", State: "done", Kind: "final", Code: "SUCCESS"}
	// A record written before attempt histories: its status is its kind's.
	legacy := inbox.DeliverySummary{Key: "id:legacy", EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-3", State: "done", Kind: "final", Code: "SUCCESS"}
	r := &deliveryReader{byKey: map[string]inbox.DeliverySummary{order.Key: order, ad.Key: ad, adA.Key: adA, adB.Key: adB, legacy.Key: legacy},
		failures: []inbox.DeliverySummary{ad, ad}}
	h := New(Config{Receiver: &fakeReceiver{}, Reader: r, APITokens: []string{"token-token-token-token"},
		AppDirect: &AppDirect{Marketplaces: []string{"https://acme.example", "http://b.example:8080"}}})
	get := func(t *testing.T, path string) (int, map[string]any) {
		t.Helper()
		rec := do(t, h, http.MethodGet, path, nil, http.Header{"Authorization": {"Bearer token-token-token-token"}})
		var doc map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("GET %s: %d %q is not JSON", path, rec.Code, rec.Body)
		}
		return rec.Code, doc
	}
	keys := func(doc map[string]any) string {
		var out []string
		list, _ := doc["deliveries"].([]any)
		for _, d := range list {
			out = append(out, d.(map[string]any)["key"].(string))
		}
		return strings.Join(out, ",")
	}

	t.Run("by key", func(t *testing.T) {
		code, doc := get(t, "/v1/deliveries/id%3Amsg%2F1%25A")
		if code != 200 || doc["key"] != order.Key || doc["webhook_id"] != "msg/1%A" || doc["status"] != float64(200) || doc["attempts_dropped"] != float64(3) {
			t.Fatalf("%d %v", code, doc)
		}
		hist := doc["attempt_history"].([]any)
		first := hist[0].(map[string]any)
		calls := first["calls"].([]any)
		if len(hist) != 2 || first["reason"] != "q2.provision: HTTP 503" || first["status"] != float64(503) || first["kind"] != "transient" ||
			first["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || len(calls) != 2 ||
			calls[0].(map[string]any)["request_id"] != "q2-1" || calls[1].(map[string]any)["status"] != nil || calls[1].(map[string]any)["error"] != "timeout" {
			t.Errorf("history %v", hist)
		}
		if code, doc := get(t, "/v1/deliveries/id%3Anope"); code != 404 || !strings.Contains(doc["message"].(string), "EVENT_TTL") {
			t.Errorf("an unknown key: %d %v", code, doc)
		}
	})

	t.Run("a record without history", func(t *testing.T) {
		code, doc := get(t, "/v1/deliveries/id%3Alegacy")
		if code != 200 || doc["status"] != float64(200) || doc["reason"] != "" || len(doc["attempt_history"].([]any)) != 0 || doc["webhook_id"] != "legacy" {
			t.Errorf("%d %v; want status 200 (its kind's), no reason, no history", code, doc)
		}
	})

	for _, tc := range []struct{ name, query, want string }{
		{"by webhook-id", "webhook_id=msg/1%25A", order.Key},
		{"by an unknown webhook-id", "webhook_id=msg_none", ""},
		{"by event token", "event_token=tok-9", ad.Key},
		{"by event token of two marketplaces", "event_token=tok-7", adA.Key + "," + adB.Key},
		{"by subscription", "subscription_id=sub-1", order.Key},
		{"by account identifier", "account_identifier=501", order.Key},
		{"by an unknown account identifier", "account_identifier=999", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, doc := get(t, "/v1/deliveries?"+tc.query)
			if code != 200 || keys(doc) != tc.want {
				t.Errorf("%d %v; want the deliveries [%s]", code, doc, tc.want)
			}
		})
	}

	t.Run("the event token of a key with its marketplace", func(t *testing.T) {
		code, doc := get(t, "/v1/deliveries/appdirect:tok-7@acme.example")
		if code != 200 || doc["event_token"] != "tok-7" {
			t.Errorf("%d %v; want event_token tok-7", code, doc)
		}
	})

	t.Run("recent failures in pages", func(t *testing.T) {
		code, doc := get(t, "/v1/deliveries?outcome=failed&since=2h&limit=1")
		if code != 200 || keys(doc) != ad.Key || doc["next_cursor"] != "c2" || r.gotLimit != 1 || time.Since(r.gotSince) < 2*time.Hour-time.Minute {
			t.Fatalf("first page: %d %v (since %v, limit %d)", code, doc, r.gotSince, r.gotLimit)
		}
		code, doc = get(t, "/v1/deliveries?outcome=failed&since=2026-12-05T13:00:00Z&cursor=c2")
		if _, more := doc["next_cursor"]; code != 200 || keys(doc) != ad.Key || more || !r.gotSince.Equal(at.Add(-time.Hour)) || r.gotLimit != defaultFailuresPage {
			t.Fatalf("last page: %d %v", code, doc)
		}
	})

	for _, tc := range []struct{ name, query, want string }{
		{"no selector", "", "one of subscription_id, webhook_id, event_token, account_identifier or outcome=failed is required"},
		{"two selectors", "webhook_id=a&subscription_id=b", "not subscription_id and webhook_id"},
		{"an empty id", "event_token=", "event_token is empty"},
		{"another outcome", "outcome=success", "outcome must be failed"},
		{"a bad since", "outcome=failed&since=yesterday", "since must be an RFC 3339 time"},
		{"a bad limit", "outcome=failed&limit=0", "limit must be a whole number from 1 to 200"},
		{"a forged cursor", "outcome=failed&cursor=xyz", "cursor is not one this list gave"},
		{"a cursor without outcome", "subscription_id=sub-1&cursor=c2", "cursor goes with outcome=failed only"},
		{"a webhook-id with a space", "webhook_id=a%20b", "webhook_id must be at most 256 printable ASCII characters"},
		{"an event token too long", "event_token=" + strings.Repeat("t", 257), "event_token must be at most 256 printable ASCII characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, doc := get(t, "/v1/deliveries?"+tc.query)
			if msg, _ := doc["message"].(string); code != 400 || !strings.Contains(msg, tc.want) {
				t.Errorf("%d %v; want 400 saying %q", code, doc, tc.want)
			}
		})
	}
}
