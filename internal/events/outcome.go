package events

import "time"

// Kind says what an outcome means for the delivery, whatever door it came
// through. The HTTP door turns it into a status in one table
// (internal/handlers); an asynchronous door would post the reply instead.
type Kind uint8

// The kinds of outcome.
const (
	// Final: settled. The reply is stored and replayed, byte for byte, to
	// every later copy of the delivery (a success, or a business refusal
	// such as ACCOUNT_NOT_FOUND).
	Final Kind = iota + 1
	// NotStored: answered as it is but not stored, so a later copy is
	// processed again: DO_NOT_CANCEL (see NotCancelled). The HTTP door
	// answers an event sent to another product's extension the same way,
	// before the inbox, so that a copy sent after the products file is
	// fixed succeeds.
	NotStored
	// Transient: nothing final happened (Redis or an outside API
	// unreachable, a deadline); send the delivery again after RetryAfter.
	Transient
	// Busy: a copy of the delivery, or another event of its subscription,
	// is being processed right now; send it again after RetryAfter.
	Busy
	// Conflict: the delivery's key was seen before with another body.
	Conflict
	// Accepted: recorded, to be processed and answered later (AppDirect's
	// asynchronous results: 202 now, the result posted when known).
	Accepted
)

// kindNames are the kinds as delivery records store them. NotStored is
// written "unsettled", its name before "unsettled" came to mean a
// subscription the settle queue holds: records already written keep their
// meaning.
var kindNames = [...]string{Final: "final", NotStored: "unsettled", Transient: "transient", Busy: "busy", Conflict: "conflict", Accepted: "accepted"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// ParseKind is the inverse of Kind.String; 0 for an unknown name.
func ParseKind(s string) Kind {
	for k, name := range kindNames {
		if name == s && name != "" {
			return Kind(k)
		}
	}
	return 0
}

// Outcome is what processing one delivery came to.
type Outcome struct {
	Kind       Kind
	Reply      Reply
	RetryAfter time.Duration // Transient and Busy: when to try again
	Calls      int           // outside API calls made, for the delivery's log line
}

// Final reports whether the outcome is stored and replayed.
func (o Outcome) Final() bool { return o.Kind == Final }

// Provisioned is the final success of a delivery.
func Provisioned(accountIdentifier string) Outcome {
	return Outcome{Kind: Final, Reply: Success(accountIdentifier)}
}

// Refusal is a final business failure (ACCOUNT_NOT_FOUND, FORBIDDEN, ...):
// sent again, the delivery gets the same answer.
func Refusal(code ErrorCode, message string) Outcome {
	return Outcome{Kind: Final, Reply: Failure(code, message)}
}

// NotCancelled answers a cancel that could not be carried out now: the
// marketplace keeps the subscription and may send the cancel again.
func NotCancelled(message string) Outcome {
	return Outcome{Kind: NotStored, Reply: Failure(DoNotCancel, message)}
}

// Outage answers a delivery that hit a transient failure (Redis or an
// outside API unreachable): nothing final happened, a later copy is
// processed again.
func Outage(message string, retryAfter time.Duration) Outcome {
	return Outcome{Kind: Transient, Reply: Failure(TransportError, message), RetryAfter: retryAfter}
}

// InProgress answers a delivery whose copy, or another event of whose
// subscription, is being processed right now: PENDING, Busy.
func InProgress(message string, retryAfter time.Duration) Outcome {
	return Outcome{Kind: Busy, Reply: Failure(Pending, message), RetryAfter: max(retryAfter, time.Second)}
}
