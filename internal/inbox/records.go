// This file holds the delivery records the inbox keeps through its
// Deliveries (the package comment is in inbox.go): declared here, beside
// the use case that needs them, and implemented by the record store.

package inbox

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

// ClaimState is what a claim found for a delivery.
type ClaimState int

// Claim outcomes.
const (
	// ClaimFresh: the caller holds the lease and must process the delivery,
	// then Complete or Release it with the token.
	ClaimFresh ClaimState = iota + 1
	// ClaimDone: a final outcome is stored; answer it again, byte for byte.
	ClaimDone
	// ClaimBusy: another copy is being processed; wait or answer PENDING.
	ClaimBusy
	// ClaimConflict: the key was seen with another body.
	ClaimConflict
)

func (s ClaimState) String() string {
	switch s {
	case ClaimFresh:
		return "fresh"
	case ClaimDone:
		return "done"
	case ClaimBusy:
		return "busy"
	case ClaimConflict:
		return "conflict"
	}
	return "ClaimState(" + strconv.Itoa(int(s)) + ")"
}

// ClaimRequest asks for one delivery.
type ClaimRequest struct {
	// Key is the delivery key: "id:<webhook-id>" or "sha256:<hex of the
	// canonical body>". Any bytes.
	Key string
	// Fingerprint is the hex SHA-256 of the canonical body.
	Fingerprint string
	// Lease is how long the claim holds: a little longer than
	// PROCESS_TIMEOUT, so that a crashed holder frees it by itself.
	Lease time.Duration
	// TTL is EVENT_TTL, how long the record is kept. Never shorter than
	// Lease.
	TTL          time.Duration
	EventType    string // for the history record
	Subscription string // for the history record
	// Primed, when not nil, is the account the processing writes before
	// its first outside call when the subscription has no record
	// (provisioning's Prime): a store that joins the subscription's lock
	// to the claim (see Claim.Bind) writes it with the claim when the
	// subscription has none, and hands it back to the processing marked
	// events.Account.Primed; any other store ignores it. The claim takes
	// it over.
	Primed *events.Account
}

// Claim is what a claim found.
type Claim struct {
	State   ClaimState
	Token   string        // when Fresh: the fencing token for Complete or Release
	Body    []byte        // when Done: the stored reply, exactly as stored
	RetryIn time.Duration // when Busy: time left on the holder's lease
	// Bind, when Fresh and not nil, is what the store joined to the claim
	// for the processing (its subscription's lock and account, read in the
	// same round trip): the processing, Complete and Release run under
	// the context it returns.
	Bind func(context.Context) context.Context
}

// ErrUnsaved is Complete's or Release's error when the processing's last
// write, which the store joined to the record (see Claim.Bind), was not
// made with it: the outcome rests on nothing, so it is answered 503 and
// promises nothing.
var ErrUnsaved = errors.New("the processing's last write was not made")

// Result is the outcome of one attempt at a delivery, as recorded.
type Result struct {
	Subscription string // the event's subscription_id, whose delivery log it joins
	// CopyKey names the exact bytes of this copy (its webhook-id and raw
	// body, hashed): a final outcome is also kept under it, so that a later
	// byte-identical copy is answered before any JSON work (see Copy).
	CopyKey   string
	EventType string // for a copy's log line
	Kind      events.Kind
	Body      []byte // the reply; stored for replay when Kind is Final
	Code      string // outcome code for the history ("SUCCESS", "ACCOUNT_NOT_FOUND", ...)
	Duration  time.Duration
	// Attempt is this attempt as the delivery's history keeps it; its
	// zero fields are taken from the ones above (and At from the clock).
	Attempt Attempt
}

// Attempt is one processed copy of a delivery, as its history keeps it:
// when, how long, what was sent, what it meant and why, and the outside
// calls it made. Ids, codes, statuses and times only: nothing personal,
// no message text.
type Attempt struct {
	At       time.Time
	Duration time.Duration
	// Status is the HTTP status the door sent for it; 0 when none was (an
	// AppDirect event whose result is posted later).
	Status int
	Code   string      // "SUCCESS" or the error code answered
	Kind   events.Kind // what the outcome meant: final, transient, ...
	// Reason is which step or check decided the outcome ("q2.provision:
	// HTTP 503", "helix.provision: helix 195122"); "" when nothing but
	// the code is to say.
	Reason  string
	TraceID string // W3C trace id (32 hex digits); "" when not traced
	Calls   []events.Call
	// CallsDropped counts the calls made but not kept (events.MaxCallsKept).
	CallsDropped int
}

// ErrBadCursor is the answer to a page cursor that the list did not give
// (made up, cut, or of another list).
var ErrBadCursor = errors.New("not a cursor of this list")

// AttemptsKept bounds a delivery's history: the latest attempts are kept,
// and DeliverySummary.Dropped counts the older ones.
const AttemptsKept = 10

// DeliverySummary is one delivery as its record says, for operators (a
// subscription's delivery log, a search, the recent failures): ids,
// codes, counts and times, and its attempt history; nothing personal.
type DeliverySummary struct {
	Key          string `json:"key"`
	EventType    string `json:"event_type"`
	Subscription string `json:"subscription"`
	// State is processing, released (a transient outcome: a later copy is
	// processed again) or done (a final outcome, stored and replayed).
	State      string `json:"state"`
	Kind       string `json:"kind"` // of the latest outcome, as stored (events.Kind's words: final, unsettled for NotStored, transient)
	Code       string `json:"code"` // of the latest outcome: SUCCESS or an error code
	Attempts   int    `json:"attempts"`
	Copies     int    `json:"copies"` // answered from the stored outcome
	First      int64  `json:"first"`  // Unix ms
	Last       int64  `json:"last"`   // Unix ms
	DurationMS int64  `json:"duration_ms"`
	// History is the attempts kept, oldest first (at most AttemptsKept);
	// Dropped counts the older ones no longer kept.
	History []Attempt `json:"-"`
	Dropped int       `json:"-"`
}

// Copy is a final outcome found by a copy's CopyKey: what a byte-identical
// copy of an answered delivery is answered with, without decoding it.
type Copy struct {
	Key          string `json:"k"` // the delivery key
	EventType    string `json:"t"`
	Subscription string `json:"s"`
	Body         string `json:"b"` // the stored reply, exactly
}

// The read API and the operator console both show a delivery from its
// DeliverySummary; what they derive from it is derived here, once, so
// that they say the same.

// WebhookID is the Standard Webhooks webhook-id of a delivery that came
// with one (its key is "id:<webhook-id>"); "" otherwise.
func (d DeliverySummary) WebhookID() string {
	if id, ok := strings.CutPrefix(d.Key, "id:"); ok {
		return id
	}
	return ""
}

// EventToken is the AppDirect event token of a delivery that came from
// AppDirect (its key is AppDirectKey's, or "appdirect:<token>" before
// that); "" otherwise.
func (d DeliverySummary) EventToken() string {
	if tok, ok := AppDirectToken(d.Key); ok {
		return tok
	}
	return ""
}

// Answered is the HTTP status last sent for the delivery and the reason of
// its latest attempt: the latest attempt kept says both. A record written
// before attempt histories has none: its status is then statusOf its
// latest outcome's kind (the doors' table, handlers.StatusOf), its reason
// "". While a copy is processing, nothing is answered yet: 0 and "". 0
// also when no status was sent (an AppDirect result posted later).
func (d DeliverySummary) Answered(statusOf func(events.Kind) int) (status int, reason string) {
	switch n := len(d.History); {
	case d.State == "processing":
		return 0, ""
	case n > 0:
		return d.History[n-1].Status, d.History[n-1].Reason
	}
	if k := events.ParseKind(d.Kind); k != 0 {
		return statusOf(k), ""
	}
	return 0, ""
}
