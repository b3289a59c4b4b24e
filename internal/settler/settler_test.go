package settler_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/settler"
	"github.com/banking-marketplace/webhook/internal/store"
)

// slow is a target that creates from the record alone (as Helix), takes a
// while to do it, and remembers how many calls ran at once for one
// subscription.
type slow struct {
	mu      sync.Mutex
	down    bool
	busy    map[string]int
	most    int
	created map[string]int
}

func (s *slow) Name() string { return "slow" }
func (s *slow) Find(context.Context, *provisioning.Job) (events.Step, provisioning.Presence, error) {
	return events.Step{}, provisioning.Unknown, nil
}
func (s *slow) Prepare(_ context.Context, j *provisioning.Job) (events.Step, error) {
	return events.Step{ID: "slow-" + j.Subscription}, nil
}
func (s *slow) Provision(_ context.Context, j *provisioning.Job) (events.Step, error) {
	s.mu.Lock()
	if s.down {
		s.mu.Unlock()
		return events.Step{}, provisioning.Outage("down", 0, nil)
	}
	s.busy[j.Subscription]++
	s.most = max(s.most, s.busy[j.Subscription])
	s.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	s.mu.Lock()
	s.busy[j.Subscription]--
	s.created[j.Subscription]++
	s.mu.Unlock()
	return j.Current, nil
}
func (s *slow) Change(_ context.Context, _ *provisioning.Job, st events.Step) (events.Step, error) {
	return st, nil
}
func (s *slow) Deprovision(context.Context, *provisioning.Job, events.Step) error { return nil }

// replica is one process's store, service and settler over a shared Redis.
func replica(t *testing.T, addr string, target provisioning.Target) (*store.Redis, *provisioning.Service, *settler.Worker) {
	t.Helper()
	db, err := store.Open(context.Background(), store.Options{URL: "redis://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	svc, err := provisioning.New(db, []provisioning.Plan{{Product: "p", Targets: []provisioning.Target{target}}},
		provisioning.Config{LockWait: time.Millisecond}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return db, svc, settler.New(db, svc, settler.Config{Pass: 2 * time.Second}, zap.NewNop(), nil)
}

func order(sub string) *events.SubscriptionEvent {
	return &events.SubscriptionEvent{EventType: events.SubscriptionOrder, SubscriptionID: sub,
		Event: events.Event{Type: events.SubscriptionOrder}}
}

// Rules: a settle queue entry survives the process that wrote it (the
// queue is in Redis), and two replicas' settlers never work on one
// subscription at once (the subscription's lock).
func TestTwoReplicasSettleEachSubscriptionOnce(t *testing.T) {
	t.Parallel()
	mini := miniredis.RunT(t)
	target := &slow{down: true, busy: map[string]int{}, created: map[string]int{}}
	db, svc, _ := replica(t, mini.Addr(), target)
	subs := []string{"s1", "s2", "s3", "s4", "s5"}
	for _, sub := range subs {
		if out := svc.Process(context.Background(), order(sub), "p"); out.Kind != events.Transient {
			t.Fatalf("ORDER %s = %+v, want transient", sub, out)
		}
	}
	_ = db.Close() // the process that answered is gone

	target.mu.Lock()
	target.down = false
	target.mu.Unlock()
	_, _, one := replica(t, mini.Addr(), target)
	_, _, two := replica(t, mini.Addr(), target)
	var wg sync.WaitGroup
	var results [2][]settler.Result
	for i, w := range []*settler.Worker{one, two} {
		wg.Go(func() {
			r, err := w.Once(context.Background(), "")
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	if target.most != 1 {
		t.Errorf("%d calls ran at once for one subscription, want 1", target.most)
	}
	settled := map[string]bool{}
	for _, rs := range results {
		for _, r := range rs {
			switch {
			case errors.Is(r.Err, events.ErrBusy):
			case r.Err != nil:
				t.Errorf("%s: %v", r.Report.Subscription, r.Err)
			case r.Report.Settled:
				settled[r.Report.Subscription] = true
			}
		}
	}
	for _, sub := range subs {
		if !settled[sub] && target.created[sub] == 0 {
			t.Errorf("%s was not settled by either replica", sub)
		}
	}
}
