// Package inbox is the use case "receive one delivery": it makes a delivery
// safe to receive any number of times, concurrently, on any number of
// replicas. The first copy claims the delivery and processes it; copies that
// arrive while it runs wait briefly for its outcome; copies that arrive after
// a final outcome get the stored reply, byte for byte; a transient outcome is
// released, so the next copy processes again.
package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/backoff"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/logctx"
)

// Deliveries records deliveries and their outcomes. Complete and Release
// are fenced by the claim's token: a holder whose lease ran out gets
// events.ErrLeaseLost and writes nothing.
type Deliveries interface {
	Claim(ctx context.Context, c ClaimRequest) (Claim, error)
	Complete(ctx context.Context, key, token string, res Result, ttl time.Duration) error
	Release(ctx context.Context, key, token string, res Result) error
	// Copy finds a final outcome by a copy's CopyKey; ok is false when
	// there is none.
	Copy(ctx context.Context, copyKey string) (c Copy, ok bool, err error)
}

// Processor carries out one event for a product. It returns a transient
// outcome, never a half-recorded final one, when ctx expires.
type Processor interface {
	Process(ctx context.Context, ev *events.SubscriptionEvent, product string) events.Outcome
}

// Primer is a Processor that can build, before the claim, what its
// processing of an event writes before its first outside call, so that
// the claim writes it in the same round trip (ClaimRequest.Primed).
type Primer interface {
	Prime(ctx context.Context, ev *events.SubscriptionEvent, product string) (events.Account, bool)
}

// Config tunes the inbox. Zero values take the defaults.
type Config struct {
	ProcessTimeout time.Duration // deadline for handling one copy, waiting included (PROCESS_TIMEOUT)
	TTL            time.Duration // how long outcomes are kept (EVENT_TTL)
	Wait           time.Duration // how long a copy waits for a copy in progress (at most half of ProcessTimeout)
	// StatusOf is the HTTP status the doors send for an outcome's kind
	// (the handlers' one table), for the attempt history; nil: none is
	// recorded.
	StatusOf func(events.Kind) int
}

func (c Config) withDefaults() Config {
	if c.ProcessTimeout <= 0 {
		c.ProcessTimeout = 4 * time.Second
	}
	if c.TTL <= 0 {
		c.TTL = 72 * time.Hour
	}
	if c.Wait <= 0 {
		c.Wait = 2 * time.Second
	}
	return c
}

// Lease is how long a claim or lock taken for processing holds: longer than
// processing may take, so that a live holder never loses it, and not much
// longer, so that a crashed holder's work is taken over soon.
func Lease(processTimeout time.Duration) time.Duration {
	return processTimeout + processTimeout/4 + time.Second
}

// Inbox receives deliveries.
type Inbox struct {
	deliveries Deliveries
	processor  Processor
	cfg        Config
	log        *zap.Logger

	mu      sync.Mutex
	flights map[string]*flight // deliveries being received on this replica, by key

	appdirect *AppDirect     // AppDirect's notifications (appdirect.go); nil without them
	soon      sync.WaitGroup // results being answered at once, after a 202 (appdirect.go)
}

// flight is one delivery being received; copies that arrive at this replica
// meanwhile wait for its answer instead of asking Redis again.
type flight struct {
	fingerprint string
	done        chan struct{}
	answer      Answer
	err         error
	// stored: the answer is a final outcome held in Redis (stored by this
	// copy, or found there), so followers may be told it is replayed.
	stored bool
}

// New returns an Inbox.
func New(d Deliveries, p Processor, cfg Config, log *zap.Logger) *Inbox {
	return &Inbox{deliveries: d, processor: p, cfg: cfg.withDefaults(), log: log, flights: make(map[string]*flight)}
}

// Delivery is one copy of an event as received.
type Delivery struct {
	Key         string // "id:<webhook-id>" or "sha256:<fingerprint>"
	Fingerprint string // SHA-256 of the body in canonical JSON
	Event       *events.SubscriptionEvent
	Product     string // the product its extension belongs to
	CopyKey     string // names this copy's exact bytes (see Copy); "" for none

	// later: processed for a result posted later (AppDirect's asynchronous
	// results), so no HTTP status is sent for it.
	later bool
}

// Answer is what a delivery is answered with: its reply document and what
// the door needs to send it. The door that received it turns Kind into its
// own terms (an HTTP status).
type Answer struct {
	Kind       events.Kind
	Body       []byte // a reply document
	Code       string // "SUCCESS", "REPLAYED" or the error code, for the log
	Reason     string // which step or check decided a processed outcome (see Attempt.Reason), for the log
	Replayed   bool   // the stored reply of an earlier copy
	RetryAfter time.Duration
	Calls      int // outside calls made for this copy
}

// Receive handles one copy of a delivery. Its error is for what no reply
// document describes (a bug); every outcome, including PENDING, a reused
// id and Redis being unavailable, is an Answer.
//
// Concurrent copies of one delivery at this replica are coalesced: the
// first goes to Redis, the others wait for its answer, so that a storm of
// copies costs Redis one claim per replica, not one per copy.
func (in *Inbox) Receive(ctx context.Context, d Delivery) (Answer, error) {
	in.mu.Lock()
	if f, ok := in.flights[d.Key]; ok {
		in.mu.Unlock()
		return in.follow(ctx, f, d)
	}
	f := &flight{fingerprint: d.Fingerprint, done: make(chan struct{})}
	in.flights[d.Key] = f
	in.mu.Unlock()

	defer func() {
		if p := recover(); p != nil {
			f.err = errors.New("processing panicked")
			in.land(d.Key, f)
			panic(p)
		}
		in.land(d.Key, f)
	}()
	f.answer, f.stored, f.err = in.receive(ctx, d)
	return f.answer, f.err
}

// Copy answers a byte-identical copy of an answered delivery, before any
// JSON work: ok is false when copyKey names no stored final outcome (a new
// delivery, a copy with other bytes, a Redis error: the caller then takes
// the whole path, which decides). Every redelivery rule holds: only final
// outcomes are kept under a copy key, and a copy with another body has
// another key.
func (in *Inbox) Copy(ctx context.Context, copyKey string) (a Answer, c Copy, ok bool) {
	if copyKey == "" {
		return a, c, false
	}
	c, ok, err := in.deliveries.Copy(ctx, copyKey)
	if err != nil {
		logctx.Logger(ctx, in.log).Debug("looking up a copy failed; taking the whole path", zap.Error(err))
		return a, c, false
	}
	if !ok {
		return a, c, false
	}
	return Answer{Kind: events.Final, Body: []byte(c.Body), Code: "REPLAYED", Replayed: true}, c, true
}

// land ends a flight and wakes its followers.
func (in *Inbox) land(key string, f *flight) {
	in.mu.Lock()
	delete(in.flights, key)
	in.mu.Unlock()
	close(f.done)
}

// follow answers a copy that arrived while another copy of its delivery was
// being received here: with that copy's answer. Only a stored final outcome
// is marked replayed; a transient one (503, 409) is passed on as it is, so a
// sender never takes a retryable answer for a settled one.
func (in *Inbox) follow(ctx context.Context, f *flight, d Delivery) (Answer, error) {
	if f.fingerprint != d.Fingerprint {
		return reusedID(), nil
	}
	t := time.NewTimer(min(in.cfg.Wait, in.cfg.ProcessTimeout/2))
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
		return pending(time.Second), nil
	case <-ctx.Done():
		return pending(time.Second), nil
	}
	if f.err != nil {
		return Answer{}, f.err
	}
	r := f.answer
	r.Calls, r.Reason = 0, ""
	if f.stored {
		r.Replayed, r.Code = true, "REPLAYED"
	}
	return r, nil
}

// receive takes one copy through Redis: claim, wait for another replica's
// copy, process, record. stored reports that the answer is a final outcome
// held in Redis.
func (in *Inbox) receive(ctx context.Context, d Delivery) (answer Answer, stored bool, err error) {
	req := ClaimRequest{
		Key:          d.Key,
		Fingerprint:  d.Fingerprint,
		Lease:        Lease(in.cfg.ProcessTimeout),
		TTL:          in.cfg.TTL,
		EventType:    string(d.Event.EventType),
		Subscription: d.Event.SubscriptionID,
	}
	// PROCESS_TIMEOUT bounds the whole handling of the copy, waiting
	// included: the marketplace gives up after about 5 s.
	deadline := time.Now().Add(in.cfg.ProcessTimeout)
	waitUntil := time.Now().Add(min(in.cfg.Wait, in.cfg.ProcessTimeout/2))
	pause := 10 * time.Millisecond
	for {
		// Not on the request's context: a sender hanging up after Redis
		// ran the claim must not leave the lease held with nobody to
		// process it (every copy would get 409 until it ran out).
		if p, ok := in.processor.(Primer); ok { // built at each try: its times are the claim's
			if a, ok := p.Prime(ctx, d.Event, d.Product); ok {
				req.Primed = &a
			}
		}
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), storeBudget)
		claim, err := in.deliveries.Claim(cctx, req)
		ccancel()
		if err != nil {
			logctx.Logger(ctx, in.log).Warn("claiming a delivery failed", zap.String("key", d.Key), zap.Error(err))
			return outage("the delivery store is unavailable; nothing was processed"), false, nil
		}
		switch claim.State {
		case ClaimDone:
			return Answer{Kind: events.Final, Body: claim.Body, Code: "REPLAYED", Replayed: true}, true, nil
		case ClaimConflict:
			return reusedID(), false, nil
		case ClaimFresh:
			if claim.Bind != nil {
				ctx = claim.Bind(ctx)
			}
			return in.process(ctx, d, claim.Token, deadline)
		}
		// Busy: another copy is processing. Wait for its outcome, briefly.
		left := time.Until(waitUntil)
		if left <= 0 {
			return pending(claim.RetryIn), false, nil
		}
		if err := backoff.Sleep(ctx, min(backoff.Half(pause), left)); err != nil {
			return pending(time.Second), false, nil
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// storeBudget is how long the store calls after processing may take. It
// starts when processing ends, however long that took, so an outcome
// reached at the deadline is still recorded (final) or released (transient).
const storeBudget = 2 * time.Second

// process runs the event under the claim identified by token, until
// deadline, and records the outcome: stored when final, released otherwise.
// stored reports that the final outcome is now held in Redis.
func (in *Inbox) process(ctx context.Context, d Delivery, token string, deadline time.Time) (answer Answer, stored bool, err error) {
	start := time.Now()
	// The work must not stop half-way because the sender hung up or the
	// server is draining: detach from the request, bound by the deadline.
	detached := context.WithoutCancel(ctx)
	pctx, cancel := context.WithDeadline(detached, deadline)
	defer cancel()

	recorded := false
	defer func() {
		if p := recover(); p != nil {
			if !recorded {
				sctx, scancel := context.WithTimeout(detached, storeBudget)
				_ = in.deliveries.Release(sctx, d.Key, token, Result{Subscription: d.Event.SubscriptionID, Kind: events.Transient, Code: "PANIC", Duration: time.Since(start),
					Attempt: Attempt{At: start, Reason: "panic", TraceID: traceID(ctx)}})
				scancel()
			}
			panic(p)
		}
	}()

	pctx, calls := events.WithCalls(pctx)
	out := in.processor.Process(pctx, d.Event, d.Product)
	out.Calls = calls.N()
	attempt := Attempt{At: start, Reason: calls.Reason(), TraceID: traceID(ctx)}
	attempt.Calls, attempt.CallsDropped = calls.Kept()
	if in.cfg.StatusOf != nil && !d.later {
		attempt.Status = in.cfg.StatusOf(out.Kind)
	}
	body, err := json.Marshal(out.Reply)
	if err != nil { // cannot happen: Answer marshals strings and a bool
		return Answer{}, false, fmt.Errorf("encoding reply: %w", err)
	}
	code := codeOf(out.Reply)
	elapsed := time.Since(start)
	sctx, scancel := context.WithTimeout(detached, storeBudget)
	defer scancel()
	res := Result{Subscription: d.Event.SubscriptionID, CopyKey: d.CopyKey, EventType: string(d.Event.EventType),
		Kind: out.Kind, Body: body, Code: code, Duration: elapsed, Attempt: attempt}
	if out.Final() {
		err = in.deliveries.Complete(sctx, d.Key, token, res, in.cfg.TTL)
	} else {
		err = in.deliveries.Release(sctx, d.Key, token, res)
	}
	recorded = true
	switch {
	case errors.Is(err, ErrUnsaved):
		// The reply would rest on a write that was not made: it promises
		// nothing. A later copy or the settler finds what is true.
		logctx.Logger(ctx, in.log).Warn("recording an outcome failed with the processing's last write; answered 503", zap.String("key", d.Key), zap.Error(err))
		a := outage("the outcome could not be recorded; nothing is promised, send the event again")
		a.Reason, a.Calls = "store: outcome not recorded", out.Calls
		return a, false, nil
	case errors.Is(err, events.ErrLeaseLost):
		// Our lease ran out and another copy took over: our outcome still
		// describes what happened, so answer it; the newer holder's stands.
		logctx.Logger(ctx, in.log).Warn("delivery lease lost before its outcome was recorded", zap.String("key", d.Key))
	case err != nil && out.Final():
		// The effect happened and the reply is true, but it is not stored: a
		// later copy is processed again, which every event type tolerates.
		logctx.Logger(ctx, in.log).Error("recording a final outcome failed", zap.String("key", d.Key), zap.Error(err))
	case err != nil:
		logctx.Logger(ctx, in.log).Warn("releasing a delivery failed; its lease will expire", zap.String("key", d.Key), zap.Error(err))
	}
	return Answer{Kind: out.Kind, Body: body, Code: code, Reason: attempt.Reason, RetryAfter: out.RetryAfter, Calls: out.Calls}, out.Final() && err == nil, nil
}

// traceID is the W3C trace id of ctx's span, "" when it is not traced.
func traceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

func codeOf(r events.Reply) string {
	if r.Success {
		return "SUCCESS"
	}
	return string(r.ErrorCode)
}

func pending(retryAfter time.Duration) Answer {
	return answerOf(events.InProgress("this delivery is being processed right now; send it again later", retryAfter))
}

func reusedID() Answer {
	return answerOf(events.Outcome{Kind: events.Conflict, Reply: events.Failure(events.InvalidResponse,
		"this webhook-id was delivered before with a different body; send a new webhook-id for a new event")})
}

func outage(msg string) Answer {
	return answerOf(events.Outage(msg, 5*time.Second))
}

// answerOf is the answer of an outcome decided here, not by processing.
func answerOf(out events.Outcome) Answer {
	body, _ := json.Marshal(out.Reply) // cannot fail: strings and a bool
	return Answer{Kind: out.Kind, Body: body, Code: codeOf(out.Reply), RetryAfter: out.RetryAfter}
}
