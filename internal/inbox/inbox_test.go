package inbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/store"
)

// processor counts its calls and answers what next says.
type processor struct {
	calls atomic.Int32
	next  func(ctx context.Context, n int32) events.Outcome
}

func (p *processor) Process(ctx context.Context, _ *events.SubscriptionEvent, _ string) events.Outcome {
	n := p.calls.Add(1)
	if p.next == nil {
		return events.Provisioned(fmt.Sprint(n))
	}
	return p.next(ctx, n)
}

func newStore(t *testing.T) (*store.Redis, *miniredis.Miniredis) {
	t.Helper()
	mini := miniredis.RunT(t)
	db, err := store.Open(context.Background(), store.Options{URL: "redis://" + mini.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, mini
}

func newInbox(db *store.Redis, p inbox.Processor) *inbox.Inbox {
	return inbox.New(db, p, inbox.Config{ProcessTimeout: 2 * time.Second, Wait: 500 * time.Millisecond}, zap.NewNop())
}

func delivery(key, fp string) inbox.Delivery {
	return inbox.Delivery{Key: key, Fingerprint: fp, Event: &events.SubscriptionEvent{
		EventType: events.SubscriptionOrder, SubscriptionID: "sub-1"}}
}

// receive hands d to in and returns its reply; the error is the reply's
// when it is not a success, for the tests' convenience.
func receive(t *testing.T, in *inbox.Inbox, d inbox.Delivery) (inbox.Answer, *failure) {
	t.Helper()
	r, err := in.Receive(context.Background(), d)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	switch r.Kind {
	case events.Busy, events.Conflict, events.Transient:
		var doc events.Reply
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			t.Fatalf("reply body %q: %v", r.Body, err)
		}
		return r, &failure{Kind: r.Kind, Code: doc.ErrorCode, RetryAfter: r.RetryAfter}
	}
	return r, nil
}

// failure is a reply that is not a processed outcome.
type failure struct {
	Kind       events.Kind
	Code       events.ErrorCode
	RetryAfter time.Duration
}

func TestFinalOutcomeIsReplayedByteForByte(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	p := &processor{}
	in := newInbox(db, p)
	first, _ := receive(t, in, delivery("id:a", "fp"))
	second, _ := receive(t, in, delivery("id:a", "fp"))
	if p.calls.Load() != 1 {
		t.Fatalf("processed %d times, want 1", p.calls.Load())
	}
	if first.Replayed || !second.Replayed || !bytes.Equal(first.Body, second.Body) || second.Kind != events.Final {
		t.Errorf("first %+v, second %+v", first, second)
	}
	// Another replica, same Redis: the same bytes.
	third, _ := receive(t, newInbox(db, p), delivery("id:a", "fp"))
	if !third.Replayed || !bytes.Equal(third.Body, first.Body) || p.calls.Load() != 1 {
		t.Errorf("another replica got %+v after %d calls", third, p.calls.Load())
	}
}

func TestTransientOutcomeIsProcessedAgain(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	p := &processor{next: func(_ context.Context, n int32) events.Outcome {
		switch n {
		case 1:
			return events.Outage("Q2 down", 5*time.Second)
		case 2:
			return events.NotCancelled("Q2 down")
		}
		return events.Provisioned("7")
	}}
	in := newInbox(db, p)
	r, _ := receive(t, in, delivery("id:t", "fp"))
	if r.Kind != events.Transient || r.RetryAfter != 5*time.Second || r.Replayed {
		t.Fatalf("first: %+v", r)
	}
	if r, _ = receive(t, in, delivery("id:t", "fp")); r.Kind != events.NotStored || r.Code != string(events.DoNotCancel) || r.Replayed {
		t.Fatalf("second: %+v", r)
	}
	if r, _ = receive(t, in, delivery("id:t", "fp")); r.Code != "SUCCESS" || r.Replayed {
		t.Fatalf("third: %+v", r)
	}
	if r, _ = receive(t, in, delivery("id:t", "fp")); !r.Replayed || p.calls.Load() != 3 {
		t.Fatalf("fourth: %+v after %d calls", r, p.calls.Load())
	}
}

func TestReusedIDWithAnotherBody(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	in := newInbox(db, &processor{})
	receive(t, in, delivery("id:r", "fp-1"))
	if _, e := receive(t, in, delivery("id:r", "fp-2")); e == nil || e.Kind != events.Conflict {
		t.Fatalf("reused id: %v, want 422", e)
	}
}

// A copy that arrives while another replica processes waits for the
// outcome; past its wait it gets 409 PENDING with Retry-After.
func TestCopiesWaitForTheHolder(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		hold    time.Duration
		pending bool
	}{
		{"outcome within the wait", 200 * time.Millisecond, false},
		{"outcome after the wait", 1500 * time.Millisecond, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, _ := newStore(t)
			started := make(chan struct{})
			p := &processor{next: func(_ context.Context, n int32) events.Outcome {
				close(started)
				time.Sleep(tt.hold)
				return events.Provisioned("9")
			}}
			holder, copyAt := newInbox(db, p), newInbox(db, p) // two replicas
			go func() { _, _ = holder.Receive(context.Background(), delivery("id:w", "fp")) }()
			<-started
			r, e := receive(t, copyAt, delivery("id:w", "fp"))
			switch {
			case tt.pending && (e == nil || e.Kind != events.Busy || e.Code != events.Pending || e.RetryAfter < time.Second):
				t.Fatalf("got %+v %v, want 409 PENDING with Retry-After", r, e)
			case !tt.pending && (e != nil || !r.Replayed || string(r.Body) != `{"success":true,"accountIdentifier":"9"}`):
				t.Fatalf("got %+v %v, want the holder's reply", r, e)
			}
			if p.calls.Load() != 1 {
				t.Errorf("processed %d times", p.calls.Load())
			}
		})
	}
}

// Many copies at once, on one replica and on two: one processing, one reply.
func TestConcurrentCopies(t *testing.T) {
	t.Parallel()
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d replicas", replicas), func(t *testing.T) {
			t.Parallel()
			db, _ := newStore(t)
			p := &processor{next: func(context.Context, int32) events.Outcome {
				time.Sleep(50 * time.Millisecond)
				return events.Provisioned("1")
			}}
			var inboxes []*inbox.Inbox
			for range replicas {
				inboxes = append(inboxes, newInbox(db, p))
			}
			var wg sync.WaitGroup
			var replayed atomic.Int32
			for i := range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, e := inboxes[i%replicas].Receive(context.Background(), delivery("sha256:x", "x"))
					if e != nil || string(r.Body) != `{"success":true,"accountIdentifier":"1"}` {
						t.Errorf("copy %d: %+v %v", i, r, e)
					}
					if r.Replayed {
						replayed.Add(1)
					}
				}()
			}
			wg.Wait()
			if p.calls.Load() != 1 || replayed.Load() != 99 {
				t.Errorf("processed %d times, %d replayed; want 1 and 99", p.calls.Load(), replayed.Load())
			}
		})
	}
}

// A holder that crashed leaves a lease; once it runs out, a copy takes over.
func TestCrashedHolderIsTakenOver(t *testing.T) {
	t.Parallel()
	db, mini := newStore(t)
	dead, err := db.Claim(context.Background(), inbox.ClaimRequest{Key: "id:c", Fingerprint: "fp", Lease: 5 * time.Second, TTL: time.Hour, EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-1"})
	if err != nil || dead.State != inbox.ClaimFresh {
		t.Fatal(dead, err)
	}
	p := &processor{}
	in := inbox.New(db, p, inbox.Config{ProcessTimeout: 2 * time.Second, Wait: 50 * time.Millisecond}, zap.NewNop())
	if _, e := receive(t, in, delivery("id:c", "fp")); e == nil || e.Kind != events.Busy {
		t.Fatalf("while the dead holder's lease lives: %v, want 409", e)
	}
	mini.FastForward(6 * time.Second)
	if r, e := receive(t, in, delivery("id:c", "fp")); e != nil || r.Code != "SUCCESS" || p.calls.Load() != 1 {
		t.Fatalf("after the lease: %+v %v", r, e)
	}
	// The dead holder's late write cannot overwrite the outcome.
	if err := db.Complete(context.Background(), "id:c", dead.Token, inbox.Result{Kind: events.Final, Body: []byte("stale")}, time.Hour); !errors.Is(err, events.ErrLeaseLost) {
		t.Errorf("late Complete: %v, want ErrLeaseLost", err)
	}
}

func TestPanicReleasesTheClaim(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	p := &processor{next: func(_ context.Context, n int32) events.Outcome {
		if n == 1 {
			panic("boom")
		}
		return events.Provisioned("2")
	}}
	in := newInbox(db, p)
	func() {
		defer func() { _ = recover() }()
		in.Receive(context.Background(), delivery("id:p", "fp"))
		t.Error("the panic did not propagate")
	}()
	if r, e := receive(t, in, delivery("id:p", "fp")); e != nil || r.Code != "SUCCESS" {
		t.Fatalf("after a panic: %+v %v", r, e)
	}
}

// PROCESS_TIMEOUT bounds the whole handling, waiting included, and the
// processor's work does not end when the sender hangs up.
func TestDeadlineAndDetachedContext(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	var deadline time.Time
	var cancelled error
	p := &processor{next: func(ctx context.Context, _ int32) events.Outcome {
		deadline, _ = ctx.Deadline()
		time.Sleep(20 * time.Millisecond)
		cancelled = ctx.Err()
		return events.Provisioned("3")
	}}
	in := inbox.New(db, p, inbox.Config{ProcessTimeout: time.Second}, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	go func() { time.Sleep(5 * time.Millisecond); cancel() }()
	if _, err := in.Receive(ctx, delivery("id:d", "fp")); err != nil {
		t.Fatal(err)
	}
	if deadline.IsZero() || deadline.After(start.Add(time.Second+50*time.Millisecond)) {
		t.Errorf("processing deadline %v, want within PROCESS_TIMEOUT of arrival", deadline.Sub(start))
	}
	if cancelled != nil {
		t.Errorf("the sender hanging up cancelled the processing: %v", cancelled)
	}
}

func TestRedisDownIs503(t *testing.T) {
	t.Parallel()
	db, mini := newStore(t)
	p := &processor{}
	in := newInbox(db, p)
	mini.Close()
	if _, e := receive(t, in, delivery("id:x", "fp")); e == nil || e.Kind != events.Transient || e.Code != events.TransportError || e.RetryAfter == 0 {
		t.Fatalf("Redis down: %v", e)
	}
	if p.calls.Load() != 0 {
		t.Error("processed while Redis was down")
	}
}

// Rule: an outcome reached inside PROCESS_TIMEOUT is recorded, however long
// the processing took: the store calls after processing get a budget of
// their own. A processor slower than that budget (2 s) once left the
// delivery "processing", so the next copy got 409 and, after the lease, was
// processed again.
func TestSlowProcessingIsStillRecorded(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		out   events.Outcome
		final bool
	}{
		{"final", events.Provisioned("5"), true},
		{"transient", events.Outage("Q2 down", time.Second), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, _ := newStore(t)
			p := &processor{next: func(_ context.Context, n int32) events.Outcome {
				if n == 1 {
					time.Sleep(2500 * time.Millisecond)
				}
				return tt.out
			}}
			in := inbox.New(db, p, inbox.Config{ProcessTimeout: 4 * time.Second, Wait: 100 * time.Millisecond}, zap.NewNop())
			if r, _ := receive(t, in, delivery("id:slow", "fp")); r.Kind != tt.out.Kind {
				t.Fatalf("first copy: %+v", r)
			}
			rec, err := db.DeliveryByKey(context.Background(), "id:slow")
			if err != nil {
				t.Fatal(err)
			}
			want := map[bool]string{true: "done", false: "released"}[tt.final]
			if rec.State != want {
				t.Fatalf("after a 2.5 s processing the record is %q, want %q", rec.State, want)
			}
			r, e := receive(t, in, delivery("id:slow", "fp"))
			if r.Replayed != tt.final {
				t.Fatalf("next copy: %+v %v; want replayed=%v", r, e, tt.final)
			}
		})
	}
}

// Rule: followers coalesced on a replica are told "replayed" only when the
// first copy's reply is a stored final outcome, never for a 503 or a 409.
func TestFollowersOfATransientReplyAreNotReplayed(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		out      events.Outcome
		replayed bool
	}{
		{"stored final", events.Provisioned("1"), true},
		{"transient 503", events.Outage("Q2 down", time.Second), false},
		{"do not cancel", events.NotCancelled("Q2 down"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, _ := newStore(t)
			started := make(chan struct{})
			p := &processor{next: func(context.Context, int32) events.Outcome {
				close(started)
				time.Sleep(100 * time.Millisecond)
				return tt.out
			}}
			in := newInbox(db, p)
			first := make(chan inbox.Answer)
			go func() { r, _ := in.Receive(context.Background(), delivery("id:f", "fp")); first <- r }()
			<-started
			r, e := receive(t, in, delivery("id:f", "fp"))
			if r.Kind != tt.out.Kind || r.Replayed != tt.replayed {
				t.Fatalf("follower got %+v %v; want kind %v replayed=%v", r, e, tt.out.Kind, tt.replayed)
			}
			if lead := <-first; lead.Replayed {
				t.Errorf("the first copy is marked replayed: %+v", lead)
			}
			if p.calls.Load() != 1 {
				t.Errorf("processed %d times", p.calls.Load())
			}
		})
	}
}

// Each processed copy joins the delivery's history: when, the status the
// door sends for its kind, its outcome and reason, the trace it ran in
// and the outside calls it made; a copy answered from the record does not.
func TestAttemptsAreRecorded(t *testing.T) {
	t.Parallel()
	db, _ := newStore(t)
	p := &processor{next: func(ctx context.Context, n int32) events.Outcome {
		events.RecordCall(ctx, events.Call{System: "q2", Action: "Enrollment", Status: 503, RequestID: fmt.Sprint("req-", n)})
		if n == 1 {
			events.Decided(ctx, "q2.provision: HTTP 503")
			return events.Outage("Q2 down", time.Second)
		}
		return events.Provisioned("7")
	}}
	statusOf := map[events.Kind]int{events.Final: 200, events.Transient: 503}
	in := inbox.New(db, p, inbox.Config{ProcessTimeout: 2 * time.Second, StatusOf: func(k events.Kind) int { return statusOf[k] }}, zap.NewNop())
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}}))
	for range 3 {
		if _, err := in.Receive(ctx, delivery("id:hist", "fp")); err != nil {
			t.Fatal(err)
		}
	}
	d, err := db.DeliveryByKey(context.Background(), "id:hist")
	if err != nil {
		t.Fatal(err)
	}
	if d.Attempts != 2 || d.Copies != 1 || len(d.History) != 2 {
		t.Fatalf("delivery %+v: want 2 attempts in the history and 1 copy", d)
	}
	first, second := d.History[0], d.History[1]
	if first.Status != 503 || first.Code != "TRANSPORT_ERROR" || first.Kind != events.Transient || first.Reason != "q2.provision: HTTP 503" ||
		first.TraceID != tid.String() || len(first.Calls) != 1 || first.Calls[0].RequestID != "req-1" || first.At.IsZero() {
		t.Errorf("first attempt %+v", first)
	}
	if second.Status != 200 || second.Code != "SUCCESS" || second.Reason != "" || len(second.Calls) != 1 || second.Calls[0].RequestID != "req-2" {
		t.Errorf("second attempt %+v", second)
	}
}
