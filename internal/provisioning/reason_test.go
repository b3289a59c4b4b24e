package provisioning_test

import (
	"context"
	"strings"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
)

// Every outcome that is not a plain success says what decided it, in a
// reason code of targets, steps, statuses and codes: a failed step names
// its target, what it was doing and what the outside system answered (the
// delivery's latest call to it); a refusal decided by a check names the
// check. Never the outcome's message text.
func TestOutcomesCarryTheirReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(a, b *fakeTarget) (calls []events.Call)
		do    func(run func(events.EventType) events.Outcome)
		want  string
	}{
		{name: "a step's outage, as its call answered", setup: func(_, b *fakeTarget) []events.Call {
			b.failNext("Provision", outage)
			return []events.Call{{System: "b", Action: "create", Status: 503}}
		}, do: func(run func(events.EventType) events.Outcome) { run(events.SubscriptionOrder) }, want: "b.provision: HTTP 503"},
		{name: "a step refused with the system's own code", setup: func(_, b *fakeTarget) []events.Call {
			b.failNext("Provision", refusal)
			return []events.Call{{System: "b", Action: "create", Status: 400, Error: "b 195122"}}
		}, do: func(run func(events.EventType) events.Outcome) { run(events.SubscriptionOrder) }, want: "b.provision: b 195122"},
		{name: "a step that failed without a call", setup: func(_, b *fakeTarget) []events.Call {
			b.failNext("Provision", refusal)
			return nil
		}, do: func(run func(events.EventType) events.Outcome) { run(events.SubscriptionOrder) }, want: "b.provision: FORBIDDEN"},
		{name: "a timeout", setup: func(a, _ *fakeTarget) []events.Call {
			a.failNext("Provision", timeout)
			return []events.Call{{System: "a", Action: "create", Error: "timeout"}}
		}, do: func(run func(events.EventType) events.Outcome) { run(events.SubscriptionOrder) }, want: "a.provision: timeout"},
		{name: "an order of a cancelled subscription", setup: func(_, _ *fakeTarget) []events.Call { return nil },
			do: func(run func(events.EventType) events.Outcome) {
				run(events.SubscriptionOrder)
				run(events.SubscriptionCancel)
				run(events.SubscriptionOrder)
			}, want: "order: subscription cancelled"},
		{name: "a change of nothing", setup: func(_, _ *fakeTarget) []events.Call { return nil },
			do: func(run func(events.EventType) events.Outcome) { run(events.SubscriptionChange) }, want: "change: no active account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc, _, a, b := twoSteps(t)
			calls := tc.setup(a, b)
			var reason string
			tc.do(func(typ events.EventType) events.Outcome {
				ctx, c := events.WithCalls(context.Background())
				for _, call := range calls {
					events.RecordCall(ctx, call)
				}
				out := svc.Process(ctx, event(typ, "s-reason"), "two")
				reason = c.Reason()
				return out
			})
			if !strings.HasPrefix(reason, tc.want) {
				t.Errorf("reason %q, want it to start with %q", reason, tc.want)
			}
		})
	}
}
