package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/q2"
	"github.com/banking-marketplace/webhook/internal/store"
	"github.com/banking-marketplace/webhook/internal/testevents"
	"github.com/banking-marketplace/webhook/internal/testplan"
)

// sent is a go-redis hook that records the commands the store sends (a
// pipeline once, by its first command) and can fail the ones that match
// breaks, before they are sent.
type sent struct {
	mu     sync.Mutex
	cmds   []string
	breaks func(args []any) bool
}

func (s *sent) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *sent) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if s.record(cmd.Args()) {
			cmd.SetErr(errors.New("broken by the test"))
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

func (s *sent) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 {
			s.record(cmds[0].Args())
		}
		return next(ctx, cmds)
	}
}

func (s *sent) record(args []any) (broken bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var name string
	if len(args) > 0 {
		name, _ = args[0].(string)
	}
	if len(args) > 3 && strings.HasPrefix(name, "eval") { // evalsha, its first key names it
		name += " " + keyShape(args[3])
	}
	s.cmds = append(s.cmds, name)
	return s.breaks != nil && s.breaks(args)
}

// keyShape is a key with its hash tag cut: "webhook:lock:{…}".
func keyShape(k any) string {
	s, _ := k.(string)
	if i := strings.IndexByte(s, '{'); i >= 0 {
		return s[:i] + "{…}"
	}
	return s
}

func (s *sent) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.cmds
	s.cmds = nil
	return out
}

type unitEnv struct {
	*testplan.Env
	in   *inbox.Inbox
	sent *sent
}

func newUnitEnv(t *testing.T) *unitEnv {
	e := testplan.New(t, testplan.Config{Product: "default", Q2: &q2.Settings{}})
	s := &sent{}
	store.AddHook(e.DB, s)
	in := inbox.New(e.DB, e.Service, inbox.Config{ProcessTimeout: 4 * time.Second}, zap.NewNop())
	return &unitEnv{Env: e, in: in, sent: s}
}

func (e *unitEnv) receive(t *testing.T, key string, ev *events.SubscriptionEvent) inbox.Answer {
	t.Helper()
	a, err := e.in.Receive(context.Background(), inbox.Delivery{Key: key, Fingerprint: "fp-" + key, Event: ev, Product: "default"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A new ORDER of a one-step Q2 product costs Redis two round trips
// around its outside calls: the claim takes the subscription's lock,
// finds no account and writes the intent (the ORDER's record with its
// step "calling", as provisioning's Prime built it) before Enrollment;
// the outcome, the account, its indexes, the delivery log and the unlock
// are one script. A copy is one round trip. The counts do not depend on
// the machine.
func TestNewOrderRoundTrips(t *testing.T) {
	e := newUnitEnv(t)
	const sub = "rt-1"
	// A first ORDER loads the scripts (EVALSHA, NOSCRIPT, EVAL): counted
	// are the ORDERs after it, as a running service sends them.
	e.receive(t, "id:warm-up", testevents.Fixture(t, "../provisioning/testdata/subscription-order.json", "warm-up", ""))
	e.sent.take()
	before := e.Q2.Sandbox.Stats().Calls
	a := e.receive(t, "id:rt-1", testevents.Fixture(t, "../provisioning/testdata/subscription-order.json", sub, ""))
	if a.Kind != events.Final || !strings.Contains(string(a.Body), `"success":true`) {
		t.Fatalf("ORDER answered %v %s", a.Kind, a.Body)
	}
	want := []string{"evalsha webhook:delivery:{…}", "evalsha webhook:delivery:{…}"}
	if got := e.sent.take(); !slices.Equal(got, want) {
		t.Errorf("a new ORDER sent %q, want %q", got, want)
	}
	calls := e.Q2.Sandbox.Stats().Calls
	for route, n := range before {
		calls[route] -= n
	}
	if calls["Enrollment"] != 1 || calls["LookupUser"] != 1 || calls["token"] != 0 || len(calls) != 3 {
		t.Errorf("Q2 calls %v: want Enrollment and LookupUser once each", calls)
	}
	acct := e.Account(sub)
	if !acct.Intent.Promised || !acct.Settled() || acct.AccountIdentifier == "" {
		t.Errorf("account after the ORDER: %+v, want promised and settled with an identifier", acct)
	}
	e.sent.take()
	if a := e.receive(t, "id:rt-1", testevents.Fixture(t, "../provisioning/testdata/subscription-order.json", sub, "")); !a.Replayed {
		t.Errorf("copy answered %+v, want the stored reply", a)
	}
	if got := e.sent.take(); len(got) != 1 {
		t.Errorf("a copy sent %q, want one round trip", got)
	}
	if err := e.DB.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := e.Mini.Exists("webhook:lock:{" + sub + "}"); n {
		t.Error("the subscription's lock is still held after the outcome was recorded")
	}
}

// The claim writes an ORDER's first record (Prime's: the intent, the
// step "calling") only for a subscription that has none, under the lock
// it takes itself, and only a record written so lets the processing call
// Enrollment without asking Q2 first. A record left "calling" by an
// attempt that died is asked about first (its call may have landed) and
// never overwritten; under another holder's lock nothing is written.
func TestPrimedRecordOnlyForASubscriptionWithoutOne(t *testing.T) {
	order := func(t *testing.T, sub string) *events.SubscriptionEvent {
		return testevents.Fixture(t, "../provisioning/testdata/subscription-order.json", sub, "")
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, e *unitEnv, sub string)
		// Q2 calls of the ORDER received after the setup
		enrollments, lookups int
		wantAccount          bool
	}{
		{name: "no record: written by the claim, Enrollment at once", enrollments: 1, lookups: 1, wantAccount: true},
		{name: "a record left calling by an attempt whose outcome was lost: asked first, not enrolled again",
			setup: func(t *testing.T, e *unitEnv, sub string) {
				e.sent.breaks = func(args []any) bool {
					return len(args) > 1 && args[0] == "evalsha" && args[1] == store.CompleteScriptHash
				}
				if a := e.receive(t, "id:first-"+sub, order(t, sub)); a.Kind != events.Transient {
					t.Fatalf("setup: ORDER with its outcome lost answered %v %s", a.Kind, a.Body)
				}
				e.sent.breaks = nil
				if acct := e.Account(sub); acct.Steps[0].State != events.StepCalling && acct.Steps[0].State != events.StepLive {
					t.Fatalf("setup: account %+v", acct.Steps)
				}
				e.Mini.FastForward(10 * time.Second)
			},
			enrollments: 0, lookups: 1, wantAccount: true},
		{name: "the subscription's lock held by another: nothing written",
			setup: func(t *testing.T, e *unitEnv, sub string) {
				if err := e.Mini.Set("webhook:lock:{"+sub+"}", "another-holder"); err != nil {
					t.Fatal(err)
				}
			},
			enrollments: 0, lookups: 0, wantAccount: false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newUnitEnv(t)
			sub := "primed-" + string(rune('a'+i))
			if tt.setup != nil {
				tt.setup(t, e, sub)
			}
			before := e.Q2.Sandbox.Stats().Calls
			e.receive(t, "id:"+sub, order(t, sub))
			calls := e.Q2.Sandbox.Stats().Calls
			if got := calls["Enrollment"] - before["Enrollment"]; got != tt.enrollments {
				t.Errorf("Enrollment calls %d, want %d", got, tt.enrollments)
			}
			if got := calls["LookupUser"] - before["LookupUser"]; got != tt.lookups {
				t.Errorf("LookupUser calls %d, want %d", got, tt.lookups)
			}
			if got := e.Mini.Exists("webhook:account:{" + sub + "}"); got != tt.wantAccount {
				t.Errorf("account stored %v, want %v", got, tt.wantAccount)
			}
			if st := e.Q2.Sandbox.Stats(); st.Users > 1 {
				t.Errorf("Q2 has %d users, want at most 1", st.Users)
			}
		})
	}
}

// The last save of an ORDER is written with its outcome. When that
// script fails, the reply must not be the success it would have said: it
// rests on nothing, so it is a 503, the account says nothing was
// promised, and the next copy finds the Q2 user (one user, never two) and
// answers success.
func TestOutcomeNotRecordedPromisesNothing(t *testing.T) {
	e := newUnitEnv(t)
	const sub = "rt-2"
	e.sent.breaks = func(args []any) bool {
		return len(args) > 1 && args[0] == "evalsha" && args[1] == store.CompleteScriptHash
	}
	a := e.receive(t, "id:rt-2", testevents.Fixture(t, "../provisioning/testdata/subscription-order.json", sub, ""))
	if a.Kind != events.Transient || strings.Contains(string(a.Body), `"success":true`) {
		t.Fatalf("ORDER whose outcome was not recorded answered %v %s, want a 503", a.Kind, a.Body)
	}
	if acct := e.Account(sub); acct.Intent.Promised {
		t.Errorf("account %+v: promised, though the reply promised nothing", acct.Intent)
	}
	e.sent.breaks = nil
	// The claim's lease is still held by the broken attempt: the next
	// copy comes after it, as the marketplace's would.
	e.Mini.FastForward(10 * time.Second)
	a = e.receive(t, "id:rt-2", testevents.Fixture(t, "../provisioning/testdata/subscription-order.json", sub, ""))
	if a.Kind != events.Final || !strings.Contains(string(a.Body), `"success":true`) {
		t.Fatalf("next copy answered %v %s, want success", a.Kind, a.Body)
	}
	if st := e.Q2.Sandbox.Stats(); st.Users != 1 {
		t.Errorf("Q2 has %d users, want 1", st.Users)
	}
	if acct := e.Account(sub); !acct.Intent.Promised || !acct.Settled() {
		t.Errorf("account after the copy: %+v, want promised and settled", acct)
	}
}

// The save joined to an outcome is fenced by the subscription's lock as
// every save is: when another holder has the lock by then, neither the
// account nor the outcome is written, the other's lock stays, and the
// error says the reply rests on nothing (inbox.ErrUnsaved).
func TestJoinedSaveIsFenced(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lockLost bool
	}{{"lock held", false}, {"lock taken by another", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUnitEnv(t)
			ctx := context.Background()
			const sub = "fence-1"
			claim, err := e.DB.Claim(ctx, inbox.ClaimRequest{Key: "id:fence", Fingerprint: "fp", Lease: 5 * time.Second, TTL: time.Hour,
				EventType: "SUBSCRIPTION_ORDER", Subscription: sub})
			if err != nil || claim.State != inbox.ClaimFresh || claim.Bind == nil {
				t.Fatalf("claim %+v, %v: want fresh, with the subscription's lock", claim, err)
			}
			ctx = claim.Bind(ctx)
			token, unlock, err := e.DB.Lock(ctx, sub, 5*time.Second, 0)
			if err != nil {
				t.Fatal(err)
			}
			unlock()
			if _, err := e.DB.Account(ctx, sub); !errors.Is(err, events.ErrNotFound) {
				t.Fatalf("account of a new subscription: %v, want not found", err)
			}
			now := time.Now().UTC()
			if err := e.DB.SaveFinal(ctx, token, events.Account{SubscriptionID: sub, Product: "default", CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			if e.Mini.Exists("webhook:account:{" + sub + "}") {
				t.Fatal("the final save was written before the outcome")
			}
			if a, err := e.DB.Account(ctx, sub); err != nil || a.SubscriptionID != sub {
				t.Errorf("account read under the unit after its final save: %+v, %v: want the held one", a, err)
			}
			if tc.lockLost {
				if err := e.Mini.Set("webhook:lock:{"+sub+"}", "another-holder"); err != nil {
					t.Fatal(err)
				}
			}
			err = e.DB.Complete(ctx, "id:fence", claim.Token, inbox.Result{Subscription: sub, Kind: events.Final, Body: []byte(`{"success":true}`), Code: "SUCCESS"}, time.Hour)
			written := e.Mini.Exists("webhook:account:{" + sub + "}")
			lock, _ := e.Mini.Get("webhook:lock:{" + sub + "}")
			switch {
			case tc.lockLost && (!errors.Is(err, inbox.ErrUnsaved) || !errors.Is(err, events.ErrLeaseLost)):
				t.Errorf("complete after the lock was lost: %v, want ErrUnsaved and ErrLeaseLost", err)
			case tc.lockLost && (written || lock != "another-holder"):
				t.Errorf("lock lost: account written %v, lock %q: want nothing written, the other's lock kept", written, lock)
			case !tc.lockLost && (err != nil || !written || lock != ""):
				t.Errorf("complete: %v, account written %v, lock %q: want written and the lock dropped", err, written, lock)
			}
		})
	}
}

// lose runs a command and then drops its reply, once, for the first
// command match accepts: the write happened, the caller does not know.
type lose struct {
	mu    sync.Mutex
	match func([]any) bool
}

func (l *lose) DialHook(next redis.DialHook) redis.DialHook { return next }
func (l *lose) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (l *lose) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.match != nil && l.match(cmd.Args()) {
			l.match = nil
			cmd.SetErr(errors.New("reply lost by the test"))
			return cmd.Err()
		}
		return err
	}
}

// script matches a run of the script whose SHA-1 is hash.
func script(hash string) func([]any) bool {
	return func(a []any) bool { return len(a) > 1 && a[0] == "evalsha" && a[1] == hash }
}

const (
	orderJSON  = "../provisioning/testdata/subscription-order.json"
	cancelJSON = "../provisioning/testdata/subscription-cancel.json"
)

// The subscription's lock taken by a claim never outlives the delivery:
// not when the claim's reply is lost (the script ran, the inbox answered
// 503), not when the outcome's script fails. The next event of the
// subscription and the settler get it at once.
func TestUnitLockNeverOutlivesTheDelivery(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breaks func(e *unitEnv, l *lose)
	}{
		{"claim reply lost", func(e *unitEnv, l *lose) { l.match = script(store.ClaimScriptHash) }},
		{"complete failed", func(e *unitEnv, l *lose) { e.sent.breaks = script(store.CompleteScriptHash) }},
		{"complete reply lost", func(e *unitEnv, l *lose) { l.match = script(store.CompleteScriptHash) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newUnitEnv(t)
			l := &lose{}
			store.AddHook(e.DB, l)
			const sub = "leak-1"
			if a := e.receive(t, "id:order", testevents.Fixture(t, orderJSON, sub, "")); a.Kind != events.Final {
				t.Fatalf("ORDER answered %v %s", a.Kind, a.Body)
			}
			tc.breaks(e, l)
			e.receive(t, "id:order-again", testevents.Fixture(t, orderJSON, sub, "")) // another delivery of the ORDER
			e.sent.breaks, l.match = nil, nil
			if e.Mini.Exists("webhook:lock:{" + sub + "}") {
				t.Error("the subscription's lock outlives the delivery")
			}
			if _, err := e.Service.Settle(context.Background(), sub); errors.Is(err, events.ErrBusy) {
				t.Errorf("settler: %v", err)
			}
			acct := e.Account(sub)
			if a := e.receive(t, "id:cancel", testevents.Fixture(t, cancelJSON, sub, acct.AccountIdentifier)); a.Kind != events.Final {
				t.Errorf("CANCEL after it answered %v %s, want it carried out", a.Kind, a.Body)
			}
		})
	}
}

// A record script that ran but whose reply was lost carried the save:
// the reply is the outcome, not a 503 that says nothing was promised over
// a promise Redis holds (if no copy came, the promised intent would never
// be given up, and the user would be left behind a refusal).
func TestLostCompleteReplyAnswersTheOutcome(t *testing.T) {
	e := newUnitEnv(t)
	l := &lose{}
	store.AddHook(e.DB, l)
	e.receive(t, "id:warm-up", testevents.Fixture(t, orderJSON, "warm-up", ""))
	const sub = "lost-1"
	l.match = script(store.CompleteScriptHash)
	a := e.receive(t, "id:lost", testevents.Fixture(t, orderJSON, sub, ""))
	acct := e.Account(sub)
	rec, err := e.DB.DeliveryByKey(context.Background(), "id:lost")
	if err != nil || rec.State != "done" || !acct.Intent.Promised {
		t.Fatalf("record %+v, %v, promised %v: want the outcome written", rec, err, acct.Intent.Promised)
	}
	if a.Kind != events.Final || !strings.Contains(string(a.Body), `"success":true`) {
		t.Errorf("answered %v %s over a written promise, want the success", a.Kind, a.Body)
	}
}

// A Complete whose reply was lost after its script ran, sent again by its
// holder, counts the outcome once: on one node the first run wrote the
// counters with the record; on Cluster, where they are written after the
// reply (outcomeApart), the second call, answered "already recorded",
// writes them.
func TestCompleteSentAgainAfterALostReplyCountsOnce(t *testing.T) {
	t.Parallel()
	for _, cluster := range []bool{false, true} {
		t.Run(map[bool]string{false: "one node", true: "cluster"}[cluster], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			mr := miniredis.RunT(t)
			db, err := store.Open(ctx, store.Options{URL: "redis://" + mr.Addr(), Cluster: cluster})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			l := &lose{}
			store.AddHook(db, l)
			claim := func(key string) inbox.Claim {
				c, err := db.Claim(ctx, inbox.ClaimRequest{Key: key, Fingerprint: "fp", Lease: time.Minute, TTL: time.Hour,
					EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-" + key})
				if err != nil || c.State != inbox.ClaimFresh {
					t.Fatalf("Claim = %+v, %v", c, err)
				}
				return c
			}
			at := time.Now()
			res := inbox.Result{Kind: events.Final, Body: []byte(`{"success":true}`), Code: "WARM_UP", Attempt: inbox.Attempt{At: at}}
			// A warm-up loads the script, so that the reply lost is a run's.
			if err := db.Complete(ctx, "id:warm-up", claim("id:warm-up").Token, res, time.Hour); err != nil {
				t.Fatal(err)
			}
			const key = "id:lost-reply"
			c := claim(key)
			res.Code = "SUCCESS"
			l.match = script(store.CompleteScriptHash)
			if err := db.Complete(ctx, key, c.Token, res, time.Hour); err == nil {
				t.Fatal("the first Complete: no error, though its reply was lost")
			}
			if err := db.Complete(ctx, key, c.Token, res, time.Hour); err != nil {
				t.Fatalf("Complete sent again: %v", err)
			}
			if hour, _, err := db.OutcomeCounts(ctx, at); err != nil || hour["SUCCESS"] != 1 {
				t.Errorf("counted %v, %v; want SUCCESS once", hour, err)
			}
		})
	}
}
