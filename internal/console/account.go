package console

import (
	"strings"

	"github.com/banking-marketplace/webhook/internal/events"
)

// SubscriptionOf is the console's view of an account record, without its
// deliveries (the Reader adds them): ids, states, codes and times only.
// A Reader over the records builds its Subscription and Unsettled answers
// with it, so that the console and the read API say the same.
func SubscriptionOf(a events.Account) Subscription {
	s := Subscription{
		ID: a.SubscriptionID, Product: a.Product, Edition: a.Intent.Edition, Status: strings.ToLower(string(a.Status)),
		AccountIdentifier: a.AccountIdentifier, UserID: a.UserID, Created: a.CreatedAt, Updated: a.UpdatedAt,
		Intent: string(a.Intent.State), IntentBy: string(a.Intent.By), IntentAt: a.Intent.At, Promised: a.Intent.Promised,
		Steps: make([]Step, 0, len(a.Steps)),
	}
	if a.Intent.State == events.IntentRefused {
		s.RefusalCode = string(a.Intent.Code)
	}
	for _, st := range a.Steps {
		s.Steps = append(s.Steps, Step{System: st.Target, State: string(st.State), ID: st.ID, Attempts: st.Attempts, LastError: st.LastError})
	}
	if !a.Settle.Since.IsZero() {
		s.Settle = Settle{Since: a.Settle.Since, Waiting: a.Settle.Waiting, Next: a.Settle.Due, Attempts: a.Settle.Attempts}
	}
	return s
}

// RowOf is an account as a row of the unsettled list.
func RowOf(a events.Account) SubscriptionRow {
	s := SubscriptionOf(a)
	return SubscriptionRow{ID: s.ID, Product: s.Product, Intent: s.Intent, Status: s.Status, Steps: s.Steps, Settle: s.Settle}
}
