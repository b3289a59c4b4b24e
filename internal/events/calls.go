package events

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Calls collects what one processed attempt at a delivery did, for its
// history and its log line: the outside API calls it made (every attempt
// of every call, retries included) and the reason codes of what decided
// its outcome. The inbox puts one in the processing context; the outside
// clients' observer adds the calls (RecordCall) and the use case the
// reasons (Decided). It holds ids, statuses, codes and durations only:
// never a body or a message an outside system wrote.
type Calls struct {
	mu      sync.Mutex
	n       int
	kept    []Call // the latest MaxCallsKept, oldest first
	reasons []string
}

// Call is one outside API call, as an attempt's history keeps it.
type Call struct {
	System string // "q2", "qbd_connect", "helix", "appdirect"
	Action string // the call, bounded: "Enrollment", "POST /customers", "addEntitlement"
	Status int    // the HTTP status answered; 0 when none came
	// Error classes a failed call in a few words of ours, never the
	// outside system's text: "timeout", "connection refused", "not sent",
	// "invalid reply", "helix 195107", "already exists". "" on success.
	Error     string
	Duration  time.Duration
	RequestID string // the outside system's id of the request, when its reply had one
}

// Failed reports whether the call did not do what was asked: no answer,
// an error status, or an answer the client read as a failure.
func (c Call) Failed() bool { return c.Status == 0 || c.Status >= 400 || c.Error != "" }

// MaxCallsKept bounds the calls an attempt keeps: the latest are kept
// (the failing one is usually last), and N still counts them all.
const MaxCallsKept = 16

// maxReasons bounds the reason codes of one attempt.
const maxReasons = 4

type callsKey struct{}

// WithCalls returns ctx carrying a new, empty collector.
func WithCalls(ctx context.Context) (context.Context, *Calls) {
	c := &Calls{}
	return context.WithValue(ctx, callsKey{}, c), c
}

func callsOf(ctx context.Context) *Calls {
	c, _ := ctx.Value(callsKey{}).(*Calls)
	return c
}

// RecordCall adds one outside call to ctx's collector, if it has one.
func RecordCall(ctx context.Context, call Call) {
	c := callsOf(ctx)
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if len(c.kept) == MaxCallsKept {
		copy(c.kept, c.kept[1:])
		c.kept = c.kept[:MaxCallsKept-1]
	}
	c.kept = append(c.kept, call)
}

// LastCall is the latest call to system that ctx's collector holds.
func LastCall(ctx context.Context, system string) (Call, bool) {
	c := callsOf(ctx)
	if c == nil {
		return Call{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.kept) - 1; i >= 0; i-- {
		if c.kept[i].System == system {
			return c.kept[i], true
		}
	}
	return Call{}, false
}

// Decided records, in ctx's collector if it has one, a reason code of
// the attempt's outcome: which step or check decided it, in ids, codes
// and statuses ("q2.provision: HTTP 503", "helix.provision: helix
// 195122", "order: subscription cancelled"), never a message text. The
// first reason is what decided; later ones say what happened after it
// (an undo that failed too).
func Decided(ctx context.Context, reason string) {
	c := callsOf(ctx)
	if c == nil || reason == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reasons) < maxReasons {
		c.reasons = append(c.reasons, reason)
	}
}

// N is the number of calls recorded, those no longer kept included.
func (c *Calls) N() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Kept is a copy of the calls kept, oldest first, and how many older ones
// were not kept.
func (c *Calls) Kept() (calls []Call, dropped int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Call(nil), c.kept...), c.n - len(c.kept)
}

// Reason is the attempt's reason codes, "; "-separated, the deciding one
// first; "" when none was recorded.
func (c *Calls) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.reasons, "; ")
}
