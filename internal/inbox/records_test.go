package inbox_test

import (
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// What the read API and the console derive from a delivery record: the
// ids in its key, and the status and reason last answered, with a record
// written before attempt histories answered by its kind's status.
func TestDeliverySummaryDerived(t *testing.T) {
	t.Parallel()
	statusOf := func(k events.Kind) int { return map[events.Kind]int{events.Final: 200, events.Transient: 503}[k] }
	at := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	history := []inbox.Attempt{{At: at, Status: 503, Reason: "q2.provision: HTTP 503"}, {At: at, Status: 200, Reason: "done"}}
	for _, tc := range []struct {
		name             string
		d                inbox.DeliverySummary
		webhookID, token string
		status           int
		reason           string
	}{
		{"with history", inbox.DeliverySummary{Key: "id:msg_1", State: "done", Kind: "final", History: history}, "msg_1", "", 200, "done"},
		{"without history, final", inbox.DeliverySummary{Key: "id:msg_2", State: "done", Kind: "final"}, "msg_2", "", 200, ""},
		{"without history, transient", inbox.DeliverySummary{Key: "appdirect:tok-3", State: "released", Kind: "transient"}, "", "tok-3", 503, ""},
		{"without history, a kind not known", inbox.DeliverySummary{Key: "sha256:ab", State: "done", Kind: "later"}, "", "", 0, ""},
		{"processing", inbox.DeliverySummary{Key: "id:msg_4", State: "processing", Kind: "transient", History: history}, "msg_4", "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, reason := tc.d.Answered(statusOf)
			if tc.d.WebhookID() != tc.webhookID || tc.d.EventToken() != tc.token || status != tc.status || reason != tc.reason {
				t.Errorf("webhook-id %q, token %q, answered %d %q; want %q, %q, %d %q",
					tc.d.WebhookID(), tc.d.EventToken(), status, reason, tc.webhookID, tc.token, tc.status, tc.reason)
			}
		})
	}
}
