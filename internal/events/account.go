package events

import "time"

// AccountStatus is the state of a provisioned subscription.
type AccountStatus string

// Account states. A cancelled account is kept, so that a late or replayed
// ORDER for its subscription is refused rather than enrolled again.
const (
	AccountActive    AccountStatus = "ACTIVE"
	AccountCancelled AccountStatus = "CANCELLED"
)

// Account is a subscription as provisioned in Q2: the record that maps the
// marketplace's subscription to the Q2 user enrolled for it. It holds no
// personal data.
type Account struct {
	SubscriptionID    string        `json:"subscriptionId"`
	AccountIdentifier string        `json:"accountIdentifier"` // the Q2 UserID, decimal
	UserID            int64         `json:"userId"`
	CustomerID        int64         `json:"customerId"`
	Logon             string        `json:"logon"`
	Edition           string        `json:"edition,omitempty"`
	PricingDuration   string        `json:"pricingDuration,omitempty"`
	Items             []Item        `json:"items,omitempty"`
	Status            AccountStatus `json:"status"`
	CreatedAt         time.Time     `json:"createdAt"`
	UpdatedAt         time.Time     `json:"updatedAt"`
	CancelledAt       *time.Time    `json:"cancelledAt,omitempty"`
	// EventTime is the marketplace's own time (`created`) of the newest
	// ORDER or CHANGE applied, when the events carry one: a CHANGE older
	// than it arrived late and is not applied over a newer one.
	EventTime *time.Time `json:"eventTime,omitempty"`
}

// Active reports whether the account is provisioned and not cancelled.
func (a Account) Active() bool { return a.Status == AccountActive }
