package console

import (
	"context"
	"errors"
	"time"
)

// Reader is what the console reads, each method one page's worth (the
// wiring implements it over the records in Redis). Every type it answers
// holds ids, states, codes, times and counts only: no names, emails or
// addresses, the same rule as the read API. A record that does not exist
// is events.ErrNotFound; any other error is shown as "the record store did
// not answer" and logged.
type Reader interface {
	// Overview is the front page: deliveries per outcome, the settle
	// queue, recent failures and the outside systems' state.
	Overview(ctx context.Context) (Overview, error)
	// Subscription is one subscription with its steps, its place in the
	// settle queue and its deliveries (newest first, each with its
	// attempts).
	Subscription(ctx context.Context, id string) (Subscription, error)
	// Delivery is one delivery by its key, with its attempts.
	Delivery(ctx context.Context, key string) (Delivery, error)
	// Search finds subscriptions and deliveries by any id an operator may
	// have: subscription id, webhook-id, AppDirect event token, account
	// identifier, Q2 user id, delivery key. Exact matches; none is an empty
	// slice, not an error.
	Search(ctx context.Context, q string) ([]Hit, error)
	// Failures is the deliveries whose latest attempt failed, last seen at
	// or after since, newest first, one page at a time: cursor "" is the
	// first page; next is the cursor of the page after, "" on the last.
	Failures(ctx context.Context, since time.Time, cursor string) (rows []DeliveryRow, next string, err error)
	// Unsettled is the subscriptions whose intent is not settled yet,
	// oldest first.
	Unsettled(ctx context.Context) ([]SubscriptionRow, error)
}

// Actions is what an operator can make the service do. There is one:
// settling a subscription now. Nothing re-runs an event the marketplace did
// not send.
type Actions interface {
	// SettleNow settles one unsettled subscription at once, under its lock,
	// as the settler would at its next attempt, and says where it stands
	// after (the settle pass's own result: the console reads nothing
	// around it). ErrSettled when it is settled already (nothing done, no
	// settle pass); events.ErrBusy when someone holds its lock (try again
	// shortly); events.ErrNotFound when there is no such subscription.
	SettleNow(ctx context.Context, subscription string) (SettleResult, error)
}

// ErrSettled is SettleNow's answer for a subscription that is settled
// already: nothing was done.
var ErrSettled = errors.New("the subscription is settled already")

// Overview is the front page.
type Overview struct {
	// Hour and Day count the deliveries answered over the last hour and the
	// last 24 hours by outcome code ("SUCCESS" or an error code), in any
	// order; a delivery counts once, under its latest outcome.
	Hour, Day []OutcomeCount
	// Unsettled is how many subscriptions are not settled yet; Oldest is
	// the one that has waited longest (zero ID when none).
	Unsettled int
	Oldest    SubscriptionRow
	// RecentFailures is the newest failed deliveries (the console shows up
	// to ten).
	RecentFailures []DeliveryRow
	// Systems is each outside system's state as the service last saw it.
	Systems []System
}

// OutcomeCount is how many deliveries ended with one outcome code.
type OutcomeCount struct {
	Outcome string // "SUCCESS" or an error code
	Count   int
}

// The states of an outside system.
const (
	SystemOK          = "ok"          // the last calls were answered
	SystemUnreachable = "unreachable" // no answer, a timeout, a 5xx or a 429
	SystemRefused     = "refused"     // it refused the service's own credentials or setup
)

// System is one outside system's last known state.
type System struct {
	Name  string    // "q2", "qbd_connect", "helix", "appdirect"
	State string    // SystemOK, SystemUnreachable, SystemRefused; "" not called yet
	Since time.Time // when it entered that state; zero when unknown
	// Code is the last failure's code when not ok ("HTTP 503",
	// "UNAUTHORIZED", "timeout"): no message text.
	Code string
}

// The intents of a subscription (what the marketplace asked last).
const (
	IntentActive    = "active"
	IntentCancelled = "cancelled"
	IntentRefused   = "refused"
)

// The states of a step in its outside system.
const (
	StepPending = "pending" // nothing done, no call went out that may have done it
	StepCalling = "calling" // a call that creates it was cut short: it may exist
	StepLive    = "live"    // done
	StepUndone  = "undone"  // undone, or never done and known absent
	StepUnknown = "unknown" // a call that creates it had no readable answer: it may exist
)

// Subscription is one subscription: what the marketplace asked for it (the
// intent), where each step stands in its outside system, whether and why
// it waits in the settle queue, and its deliveries.
type Subscription struct {
	ID                string
	Product           string // the product's name
	Edition           string
	Status            string // provisioning, active, suspended, cancelled, failed
	AccountIdentifier string // answered to the marketplace
	UserID            int64  // the Q2 user id of the ORDER; 0 when none
	Created, Updated  time.Time

	Intent   string    // IntentActive, IntentCancelled, IntentRefused
	IntentBy string    // the event type that set it: SUBSCRIPTION_ORDER, ...
	IntentAt time.Time // when it was set
	// Promised: a success reply was sent for the intent; false while an
	// ORDER or CHANGE is not answered with success yet.
	Promised bool
	// RefusalCode is a refused intent's error code.
	RefusalCode string

	// Steps are the plan's steps in plan order.
	Steps []Step

	// Settle is where settling stands; its Since is zero when settled.
	Settle Settle

	// Deliveries are the subscription's deliveries, newest first, each
	// with its attempts.
	Deliveries []Delivery
}

// Step is one step of a subscription's plan: its outside system, its state
// there, the id it has there, and its failures since it last moved.
type Step struct {
	System    string // "q2", "qbd_connect", "helix"
	State     string // StepPending, StepCalling, StepLive, StepUndone, StepUnknown
	ID        string // the outside system's main id (the Q2 UserID, the QBD customer id, ...)
	Attempts  int    // failed calls since the step last moved
	LastError string // the last failure's code and reason ("TRANSPORT_ERROR: q2 answered 503")
}

// Settle is a subscription's place in the settle queue.
type Settle struct {
	Since    time.Time // when it became unsettled; zero: settled
	Waiting  string    // why it is not settled, in the service's words
	Next     time.Time // when the settler tries next; zero when not scheduled
	Attempts int       // settle passes that made no progress
}

// SubscriptionRow is one subscription in a list (the unsettled ones).
type SubscriptionRow struct {
	ID      string
	Product string
	Intent  string
	Status  string
	Steps   []Step // states only are shown in lists
	Settle  Settle
}

// Delivery is one event received (all its copies share its key) with its
// attempts.
type Delivery struct {
	Key          string // the delivery key: "id:<webhook-id>", "sha256:<hex>", ...
	WebhookID    string // the Standard Webhooks webhook-id, when it came with one
	EventToken   string // the AppDirect event token, when it came from AppDirect
	EventType    string
	Subscription string
	// State is processing, released (a later copy is processed again) or
	// done (final: stored and answered to every later copy).
	State   string
	Outcome string // of the latest attempt: "SUCCESS" or an error code
	Status  int    // the HTTP status last sent; 0 while processing
	Copies  int    // copies answered from the stored outcome, without processing
	First   time.Time
	Last    time.Time
	// Attempts are the attempts kept, oldest first; Dropped counts the
	// older ones not kept (the history is capped).
	Attempts []Attempt
	Dropped  int
}

// Attempt is one copy of a delivery that was processed.
type Attempt struct {
	At       time.Time
	Duration time.Duration
	Status   int    // the HTTP status sent; 0 when none was (the client went away)
	Outcome  string // "SUCCESS" or an error code
	// Kind is what the outcome meant: final (stored and answered to every
	// later copy), unsettled (answered, not stored), transient (send it
	// again), busy, conflict.
	Kind string
	// Reason is the outcome's reason code: which step or check decided it
	// ("q2.enroll: HTTP 503", "helix 195110"); no message text.
	Reason  string
	TraceID string // W3C trace id, 32 lowercase hex digits; "" when not traced
	Calls   []Call // the outside calls it made, in order
}

// Call is one outside API call an attempt made (each retry its own).
type Call struct {
	System    string // "q2", "qbd_connect", "helix", "appdirect"
	Action    string // "enroll", "addEntitlement", ...
	Status    int    // the HTTP status answered; 0 when none came
	Error     string // when no status came: "timeout", "connection refused", ...
	Duration  time.Duration
	RequestID string // the outside system's request id, when it sent one
}

// DeliveryRow is one delivery in a list (recent failures).
type DeliveryRow struct {
	Key          string
	EventType    string
	Subscription string
	State        string
	Outcome      string // of the latest attempt
	Reason       string // of the latest attempt
	Status       int
	Attempts     int
	Last         time.Time
}

// The kinds of search hit.
const (
	HitSubscription = "subscription"
	HitDelivery     = "delivery"
)

// Hit is one thing a search found.
type Hit struct {
	Kind string // HitSubscription or HitDelivery
	ID   string // the subscription id or the delivery key
	// Field says which id matched: "subscription id", "webhook-id", "event
	// token", "account identifier", "Q2 user id", "delivery key".
	Field        string
	Subscription string    // a delivery's subscription
	EventType    string    // a delivery's event type
	State        string    // a subscription's status, a delivery's outcome
	At           time.Time // last change
}

// SettleResult is where a subscription stands after "settle now".
type SettleResult struct {
	Settled bool      // every step is where the intent wants it
	Waiting string    // why not, when not settled
	Next    time.Time // when the settler tries again, when not settled
}
