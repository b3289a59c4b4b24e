package events

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every raw event of AppDirect's own SDK decodes, with what the service
// reads of it.
func TestDecodeAppDirectSamples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file    string
		typ     EventType
		check   func(*SubscriptionEvent) bool
		reading string
	}{
		{"subscription-order", SubscriptionOrder, func(e *SubscriptionEvent) bool { return e.Event.Payload.Order != nil && e.Event.Creator != nil }, "an order and a creator"},
		{"subscription-order-without-creator", SubscriptionOrder, func(e *SubscriptionEvent) bool { return e.Event.Creator == nil }, "no creator"},
		{"subscription-order-addon", SubscriptionOrder, func(e *SubscriptionEvent) bool { return e.Event.Payload.Order.Items[0].Quantity == 1 }, "one USER"},
		{"subscription-change", SubscriptionChange, func(e *SubscriptionEvent) bool {
			return e.AccountIdentifier() == "206123" && e.Event.Payload.Order.Items[0].Quantity == 25
		}, "the account and a quantity sent as a string"},
		{"subscription-cancel", SubscriptionCancel, func(e *SubscriptionEvent) bool { return e.AccountIdentifier() != "" }, "the account"},
		{"subscription-closed", SubscriptionNotice, func(e *SubscriptionEvent) bool { return e.Event.Payload.Notice.Type == NoticeClosed }, "CLOSED"},
		{"subscription-deactivated", SubscriptionNotice, func(e *SubscriptionEvent) bool { return e.Event.Payload.Notice.Type == NoticeDeactivated }, "DEACTIVATED"},
		{"subscription-reactivated", SubscriptionNotice, func(e *SubscriptionEvent) bool { return e.Event.Payload.Notice.Type == NoticeReactivated }, "REACTIVATED"},
		{"subscription-upcoming-invoice", SubscriptionNotice, func(e *SubscriptionEvent) bool { return e.Event.Payload.Notice.Type == NoticeUpcomingInvoice }, "UPCOMING_INVOICE"},
		{"user-assign", UserAssignment, func(e *SubscriptionEvent) bool { return e.Event.Payload.User != nil && e.Event.Payload.User.UUID != "" }, "the user"},
		{"user-unassign", UserUnassignment, func(e *SubscriptionEvent) bool { return e.Event.Payload.User != nil && e.Event.Payload.User.UUID != "" }, "the user"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join("testdata", "appdirect", tc.file+".json"))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := DecodeAppDirect(b)
			if err != nil {
				t.Fatalf("DecodeAppDirect: %v", err)
			}
			if ev.EventType != tc.typ || ev.SubscriptionID != "" || !tc.check(ev) {
				t.Errorf("decoded %s %+v; want %s with %s", ev.EventType, ev.Event.Payload, tc.typ, tc.reading)
			}
		})
	}
}

func TestDecodeAppDirectRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, says string }{
		{`<event/>`, "not valid JSON"},
		{`[]`, "must be a JSON object"},
		{`{"marketplace":{}}`, "event.type is required"},
		{`{"type":"SUBSCRIPTION_ORDER","payload":{"order":{"items":[{"quantity":"ten"}]}}}`, "quantity"},
		{`{"type":"SUBSCRIPTION_ORDER","payload":{"configuration":["x"]}}`, "configuration"},
	} {
		if _, err := DecodeAppDirect([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("DecodeAppDirect(%s) = %v, want an error saying %q", tc.body, err, tc.says)
		}
	}
	// [] and {} both mean "no configuration".
	for _, conf := range []string{`[]`, `{}`, `null`} {
		if _, err := DecodeAppDirect([]byte(`{"type":"SUBSCRIPTION_NOTICE","payload":{"configuration":` + conf + `}}`)); err != nil {
			t.Errorf("configuration %s: %v", conf, err)
		}
	}
}
