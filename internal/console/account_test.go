package console

import (
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

func TestSubscriptionOf(t *testing.T) {
	t.Parallel()
	since, due := t0.Add(-time.Hour), t0.Add(time.Minute)
	a := events.Account{SubscriptionID: "s1", Product: "Business Access", AccountIdentifier: "Q2U-1", UserID: 42,
		Intent: events.Intent{State: events.IntentRefused, By: events.SubscriptionOrder, Edition: "PREMIUM", Code: events.UserAlreadyExists,
			Message: "user exists", At: since},
		Steps: []events.Step{
			{Target: "q2", State: events.StepUndone, ID: "Q2U-1", Data: map[string]string{"CustomerID": "c-9"}},
			{Target: "helix", State: events.StepUnknown, Attempts: 2, LastError: "TRANSPORT_ERROR: helix answered 503"},
		},
		Status: events.AccountFailed, Settle: events.Settle{Since: since, Due: due, Attempts: 2, Waiting: "helix: TRANSPORT_ERROR"},
		CreatedAt: since, UpdatedAt: t0}
	s := SubscriptionOf(a)
	if s.ID != "s1" || s.Status != "failed" || s.Intent != IntentRefused || s.IntentBy != "SUBSCRIPTION_ORDER" || s.RefusalCode != "USER_ALREADY_EXISTS" ||
		s.Edition != "PREMIUM" || s.UserID != 42 || !s.IntentAt.Equal(since) {
		t.Errorf("subscription %+v", s)
	}
	if len(s.Steps) != 2 || s.Steps[1] != (Step{System: "helix", State: StepUnknown, Attempts: 2, LastError: "TRANSPORT_ERROR: helix answered 503"}) {
		t.Errorf("steps %+v", s.Steps)
	}
	if s.Settle != (Settle{Since: since, Waiting: "helix: TRANSPORT_ERROR", Next: due, Attempts: 2}) {
		t.Errorf("settle %+v", s.Settle)
	}
	a.Settle = events.Settle{Due: due} // settled, queued for a recheck only
	if s := SubscriptionOf(a); !s.Settle.Since.IsZero() || !s.Settle.Next.IsZero() {
		t.Errorf("a settled account is shown unsettled: %+v", s.Settle)
	}
	if r := RowOf(a); r.ID != "s1" || len(r.Steps) != 2 || r.Intent != IntentRefused {
		t.Errorf("row %+v", r)
	}
}
