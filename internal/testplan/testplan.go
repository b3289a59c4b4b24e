// Package testplan builds, for tests, the provisioning service of one
// product as the webhook runs it: accounts in Redis (miniredis here) and,
// when the plan provisions Q2, the Q2 sandbox behind real HTTP with the
// real client. The tests of provisioning and of each target share it so
// that every plan test stands on the same ground; Sandbox reads a
// sandbox's stats with Q2's users beside the calls, for every test that
// counts them. Only tests import it.
package testplan

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/store"
)

// LockWait is how long an event waits for its subscription's lock when
// Config leaves it zero: short, so that a test of a busy subscription is
// quick, and long enough for a loaded machine.
const LockWait = 200 * time.Millisecond

// Config is the plan of one product.
type Config struct {
	Product string
	// Q2, when not nil, puts a q2 target with these settings first in
	// the plan, over a Q2 sandbox; nil leaves Q2 out.
	Q2       *q2.Settings
	Targets  []provisioning.Target // the plan's targets, after q2
	LockWait time.Duration         // LockWait when zero
}

// Env is the service of Config's product on miniredis.
type Env struct {
	Mini    *miniredis.Miniredis
	DB      *store.Redis
	Q2      *Q2 // nil when the plan has no q2
	Service *provisioning.Service

	t       testing.TB
	product string
}

// Q2 is a Q2 sandbox served by httptest and the real client of it.
type Q2 struct {
	Sandbox Sandbox
	Client  *q2api.Client
}

// Sandbox is a sandbox serving Q2 (and maybe other parts), whose Stats
// read Q2's block out: the tests count Q2's users beside the calls.
type Sandbox struct{ *sandbox.Sandbox }

// Stats is the sandbox's stats with Q2's live users and customers beside
// the calls, where /_sandbox/stats shows them too.
type Stats struct {
	sandbox.Stats
	Users, Customers int
}

// Stats returns the calls, each part's block, and Q2's users and
// customers (0 when the sandbox serves no Q2).
func (s Sandbox) Stats() Stats {
	st := s.Sandbox.Stats()
	q2, _ := st.Parts[q2sandbox.Name].(q2sandbox.Stats)
	return Stats{Stats: st, Users: q2.Users, Customers: q2.Customers}
}

// NewQ2 starts a Q2 sandbox, closed when the test ends, and its client,
// which retries quickly.
func NewQ2(t testing.TB) *Q2 {
	t.Helper()
	sb := sandbox.New(q2sandbox.New(q2sandbox.Config{}))
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	c, err := q2api.New(srv.URL,
		q2api.WithCredentials(q2sandbox.DefaultClientID, q2sandbox.DefaultClientSecret),
		q2api.WithRetry(2, time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return &Q2{Sandbox: Sandbox{sb}, Client: c}
}

// Target is the q2 target over the sandbox, with settings s.
func (q *Q2) Target(t testing.TB, s q2.Settings) provisioning.Target {
	t.Helper()
	target, err := q2.New(q.Client, s)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// NewService is the service of one product provisioning targets, in
// order, with its accounts in accounts: a test may hand it accounts that
// fail on purpose.
func NewService(t testing.TB, accounts provisioning.Accounts, product string, lockWait time.Duration, targets ...provisioning.Target) *provisioning.Service {
	t.Helper()
	if lockWait == 0 {
		lockWait = LockWait
	}
	svc, err := provisioning.New(accounts, []provisioning.Plan{{Product: product, Targets: targets}},
		provisioning.Config{LockWait: lockWait}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// New starts miniredis, the store on it and, when cfg asks for q2, a Q2
// sandbox, all closed when the test ends, and builds cfg's service.
func New(t testing.TB, cfg Config) *Env {
	t.Helper()
	mini := miniredis.RunT(t)
	db, err := store.Open(context.Background(), store.Options{URL: "redis://" + mini.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e := &Env{Mini: mini, DB: db, t: t, product: cfg.Product}
	var targets []provisioning.Target
	if cfg.Q2 != nil {
		e.Q2 = NewQ2(t)
		targets = append(targets, e.Q2.Target(t, *cfg.Q2))
	}
	targets = append(targets, cfg.Targets...)
	e.Service = NewService(t, db, cfg.Product, cfg.LockWait, targets...)
	return e
}

// Process processes ev for the product, as a delivery would, within a
// deadline that keeps a stuck test from hanging.
func (e *Env) Process(ev *events.SubscriptionEvent) events.Outcome {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	return e.Service.Process(ctx, ev, e.product)
}

// Account is the stored account of subscription sub; the test fails
// when there is none.
func (e *Env) Account(sub string) events.Account {
	e.t.Helper()
	a, err := e.DB.Account(context.Background(), sub)
	if err != nil {
		e.t.Fatalf("account %s: %v", sub, err)
	}
	return a
}
