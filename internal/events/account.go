package events

import "time"

// AccountStatus is the state of a subscription as provisioned.
type AccountStatus string

// Account states. A cancelled account is kept, so that a late or replayed
// ORDER for its subscription is refused rather than provisioned again.
const (
	// AccountProvisioning: an ORDER is being carried out step by step; the
	// steps done so far are recorded, and the next copy resumes after them.
	AccountProvisioning AccountStatus = "PROVISIONING"
	AccountActive       AccountStatus = "ACTIVE"
	// AccountSuspended: provisioned, but not to be used now (AppDirect's
	// DEACTIVATED notice; REACTIVATED makes it active again).
	AccountSuspended AccountStatus = "SUSPENDED"
	AccountCancelled AccountStatus = "CANCELLED"
	// AccountFailed: an ORDER was refused for good and its earlier steps
	// undone; a later ORDER gets the same refusal (FailureCode).
	AccountFailed AccountStatus = "FAILED"
)

// Account is a subscription as provisioned: which product, which steps of
// its plan are done in which outside system, and what was bought. It holds
// no personal data.
type Account struct {
	SubscriptionID string `json:"subscriptionId"`
	Product        string `json:"product,omitempty"` // the product's name
	// AccountIdentifier is the first step's id (the Q2 UserID for a q2
	// step), answered to the marketplace.
	AccountIdentifier string `json:"accountIdentifier"`
	// UserID is the marketplace's user_id of the ORDER (the Q2 user the
	// bank's extension asks about).
	UserID          int64         `json:"userId,omitempty"`
	Steps           []Step        `json:"steps,omitempty"`
	Edition         string        `json:"edition,omitempty"`
	PricingDuration string        `json:"pricingDuration,omitempty"`
	Items           []Item        `json:"items,omitempty"`
	Status          AccountStatus `json:"status"`
	CreatedAt       time.Time     `json:"createdAt"`
	UpdatedAt       time.Time     `json:"updatedAt"`
	CancelledAt     *time.Time    `json:"cancelledAt,omitempty"`
	// FailureCode and FailureMessage are the refusal of a FAILED account.
	FailureCode    ErrorCode `json:"failureCode,omitempty"`
	FailureMessage string    `json:"failureMessage,omitempty"`
	// EventTime is the marketplace's own time (`created`) of the newest
	// ORDER or CHANGE applied, when the events carry one: a CHANGE older
	// than it arrived late and is not applied over a newer one.
	EventTime *time.Time `json:"eventTime,omitempty"`
}

// Active reports whether the account is provisioned and not cancelled.
func (a Account) Active() bool { return a.Status == AccountActive }

// Step is what one target of a product's plan did for a subscription: the
// ids it needs to change or undo it. Recorded right after it is done, so
// that a crash or a transient failure resumes after it, never doing it
// twice.
type Step struct {
	Target string            `json:"target"`         // "q2", "qbd_connect", "helix"
	ID     string            `json:"id"`             // the target's main id (Q2 UserID, QBD customer id, ...)
	Data   map[string]string `json:"data,omitempty"` // other ids the target keeps (CustomerID, subscription id, ...)
	Undone bool              `json:"undone,omitempty"`
}

// Step returns the recorded step of target, if any.
func (a *Account) Step(target string) (*Step, bool) {
	for i := range a.Steps {
		if a.Steps[i].Target == target {
			return &a.Steps[i], true
		}
	}
	return nil, false
}
