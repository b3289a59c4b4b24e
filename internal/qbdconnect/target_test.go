package qbdconnect_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/qbdconnect"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdsandbox"
	"github.com/banking-marketplace/webhook/internal/testevents"
)

func TestNew(t *testing.T) {
	t.Parallel()
	c, err := qbdapi.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qbdconnect.New(c, qbdconnect.Settings{}); err == nil || !strings.Contains(err.Error(), "product_id") {
		t.Errorf("New without a product id: %v; want an error naming product_id", err)
	}
	if _, err := qbdconnect.New(nil, qbdconnect.Settings{ProductID: "prod_qbd"}); err == nil {
		t.Error("New with a nil client: no error")
	}
}

// TestProvision walks Find and Provision against the sandbox: what is
// created, and that Find recognises it.
func TestProvision(t *testing.T) {
	t.Parallel()
	q := newQBD(t)
	ctx := context.Background()
	ev := testevents.Order(t, "sub-provision")

	if _, p, err := q.target.Find(ctx, job(ev)); err != nil || p != provisioning.Absent {
		t.Fatalf("Find before = %v, %v; want Absent", p, err)
	}
	s, err := q.target.Provision(ctx, job(ev))
	if err != nil {
		t.Fatal(err)
	}
	sid := subscriptionOf(s)
	if s.Target != qbdconnect.Name || s.ID == "" || sid != qbdconnect.SubscriptionID("sub-provision") {
		t.Fatalf("step = %+v", s)
	}
	cu, err := q.client.FindCustomer(ctx, qbdconnect.GatewayCustomerID("sub-provision"))
	if err != nil {
		t.Fatal(err)
	}
	a, bc := cu.Address, cu.PrimaryBillingContact
	if cu.ID != s.ID || cu.Name != "Doe Holdings" || cu.SubscriptionID != sid || a == nil || a.Street1 != "123 Some St" ||
		a.City != "COLORADO SPRINGS" || a.State != "CO" || a.PostalCode != "80909-5448" ||
		bc.FirstName != "John" || bc.LastName != "Doe" || bc.Email != "jdoe@q2ebanking.com" {
		t.Errorf("customer = %+v, address %+v", cu, a)
	}
	sub := q.subscription(sid)
	if sub.CustomerID != cu.ID || sub.ProductID != "prod_qbd" || sub.Quantity != 2 || sub.Email != "jdoe@q2ebanking.com" || sub.Status != qbdapi.StatusActive {
		t.Errorf("subscription = %+v; want quantity 2 (the INSTANCE item)", sub)
	}

	found, p, err := q.target.Find(ctx, job(ev))
	if err != nil || p != provisioning.Live || found.ID != s.ID || found.Data["subscription_id"] != sid {
		t.Errorf("Find after = %+v, %v, %v; want Live with the same step", found, p, err)
	}
	// Provision again (as if Find had not looked): the same step, nothing new.
	again, err := q.target.Provision(ctx, job(ev))
	if err != nil || again.ID != s.ID {
		t.Errorf("second Provision = %+v, %v", again, err)
	}
	if st := q.stats(); st != (qbdsandbox.Stats{Customers: 1, Subscriptions: 1, Quantity: 2}) || q.count(routeCreateCustomer) != 1 {
		t.Errorf("stats %+v, %d customer creates; want one customer and one subscription", st, q.count(routeCreateCustomer))
	}
}

// TestProvisionFindsEarlierWork: what an earlier attempt left (its reply
// lost) is found and completed, never created again.
func TestProvisionFindsEarlierWork(t *testing.T) {
	t.Parallel()
	const sub = "sub-earlier"
	gateway, sid := qbdconnect.GatewayCustomerID(sub), qbdconnect.SubscriptionID(sub)
	newCustomer := func(q *qbd, gateway, subscriptionID string) *qbdapi.Customer {
		cu, err := q.client.CreateCustomer(context.Background(), qbdapi.Customer{GatewayCustomerID: gateway, SubscriptionID: subscriptionID,
			PrimaryBillingContact: qbdapi.BillingContact{Email: "jdoe@q2ebanking.com"}})
		if err != nil {
			t.Fatal(err)
		}
		return cu
	}
	newSubscription := func(q *qbd, id, customerID, status string) {
		if _, err := q.client.CreateSubscription(context.Background(), qbdapi.Subscription{SubscriptionID: id, CustomerID: customerID,
			ProductID: "prod_qbd", Quantity: 2, Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		before   func(q *qbd)
		presence provisioning.Presence // what Find answers for an ORDER
		wantErr  events.ErrorCode      // of Provision; "" for success
		subs     int                   // live subscriptions after Provision
	}{
		{"customer created, its reply lost", func(q *qbd) { newCustomer(q, gateway, sid) },
			provisioning.Absent, "", 1},
		{"customer and subscription created, a reply lost", func(q *qbd) {
			newSubscription(q, sid, newCustomer(q, gateway, sid).ID, qbdapi.StatusActive)
		}, provisioning.Live, "", 1},
		{"a customer naming another subscription id", func(q *qbd) {
			newSubscription(q, "sub_operator", newCustomer(q, gateway, "sub_operator").ID, qbdapi.StatusActive)
		}, provisioning.Live, "", 1},
		{"subscription canceled", func(q *qbd) {
			newSubscription(q, sid, newCustomer(q, gateway, sid).ID, qbdapi.StatusCanceled)
		}, provisioning.Gone, "", 0},
		{"subscription id held by another customer", func(q *qbd) {
			other := newCustomer(q, "cus_other", "")
			newCustomer(q, gateway, sid)
			newSubscription(q, sid, other.ID, qbdapi.StatusActive)
		}, 0, events.UserAlreadyExists, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newQBD(t)
			ctx := context.Background()
			tt.before(q)
			creates := q.count(routeCreateCustomer)
			ev := testevents.Order(t, sub)

			_, p, err := q.target.Find(ctx, job(ev))
			if tt.presence == 0 {
				wantFailure(t, err, provisioning.Refused, tt.wantErr)
			} else if err != nil || p != tt.presence {
				t.Errorf("Find = %v, %v; want %v", p, err, tt.presence)
			}
			s, err := q.target.Provision(ctx, job(ev))
			switch {
			case tt.presence == provisioning.Gone:
				if !errors.Is(err, provisioning.ErrGone) || s.ID == "" {
					t.Errorf("Provision = %+v, %v; want ErrGone with the step's ids", s, err)
				}
			case tt.wantErr != "":
				wantFailure(t, err, provisioning.Refused, tt.wantErr)
			case err != nil || s.ID == "":
				t.Errorf("Provision = %+v, %v", s, err)
			}
			if st := q.stats(); st.Customers != creates || st.Subscriptions != tt.subs || q.count(routeCreateCustomer) != creates {
				t.Errorf("stats %+v after %d customer creates; want no new customer and %d live subscriptions", st, q.count(routeCreateCustomer), tt.subs)
			}
		})
	}
}

// TestFindForeignSubscriptionOnCancel: a CANCEL does not touch a
// subscription id held by another customer.
func TestFindForeignSubscriptionOnCancel(t *testing.T) {
	t.Parallel()
	q := newQBD(t)
	ctx := context.Background()
	const sub = "sub-foreign"
	other, err := q.client.CreateCustomer(ctx, qbdapi.Customer{GatewayCustomerID: "cus_other", PrimaryBillingContact: qbdapi.BillingContact{Email: "a@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.client.CreateCustomer(ctx, qbdapi.Customer{GatewayCustomerID: qbdconnect.GatewayCustomerID(sub), PrimaryBillingContact: qbdapi.BillingContact{Email: "b@example.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.client.CreateSubscription(ctx, qbdapi.Subscription{SubscriptionID: qbdconnect.SubscriptionID(sub), CustomerID: other.ID, Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if _, p, err := q.target.Find(ctx, job(testevents.Cancel(t, sub, ""))); err != nil || p != provisioning.Absent {
		t.Errorf("Find for a CANCEL = %v, %v; want Absent", p, err)
	}
}

func TestChange(t *testing.T) {
	t.Parallel()
	q := newQBD(t)
	ctx := context.Background()
	const sub = "sub-change"
	s, err := q.target.Provision(ctx, job(testevents.Order(t, sub)))
	if err != nil {
		t.Fatal(err)
	}
	sid := subscriptionOf(s)
	// Something another tool stored on the subscription must survive the PUT.
	cur := q.subscription(sid)
	cur.Extra = map[string]json.RawMessage{"note": json.RawMessage(`"kept"`)}
	if _, err := q.client.UpdateSubscription(ctx, sid, *cur); err != nil {
		t.Fatal(err)
	}

	withItems := func(items ...events.Item) *events.SubscriptionEvent {
		ev := testevents.Change(t, sub, s.ID)
		ev.Event.Payload.Order.Items = items
		return ev
	}
	tests := []struct {
		name string
		ev   *events.SubscriptionEvent
		want int64 // the quantity after
		puts int   // PUTs made
	}{
		{"new quantity", testevents.Change(t, sub, s.ID), 4, 1},
		{"same quantity", testevents.Change(t, sub, s.ID), 4, 0},
		{"no items", withItems(), 4, 0},
		{"first item when no INSTANCE", withItems(events.Item{Unit: "USER", Quantity: 7}), 7, 1},
	}
	for _, tt := range tests { // in order: each starts where the last ended
		puts := q.count(routePutSub)
		got, err := q.target.Change(ctx, job(tt.ev), s)
		if err != nil || got.ID != s.ID {
			t.Fatalf("%s: Change = %+v, %v", tt.name, got, err)
		}
		after := q.subscription(sid)
		if after.Quantity != tt.want || q.count(routePutSub)-puts != tt.puts || string(after.Extra["note"]) != `"kept"` || after.ProductID != "prod_qbd" {
			t.Errorf("%s: subscription %+v after %d PUTs; want quantity %d, %d PUTs, the rest kept", tt.name, after, q.count(routePutSub)-puts, tt.want, tt.puts)
		}
	}

	// A subscription QBD Connect no longer has: refused.
	gone := s
	gone.Data = map[string]string{"subscription_id": "mp-sub-none"}
	_, err = q.target.Change(ctx, job(testevents.Change(t, sub, s.ID)), gone)
	wantFailure(t, err, provisioning.Refused, events.AccountNotFound)
	// A canceled one is not changed: final.
	if err := q.target.Deprovision(ctx, job(testevents.Cancel(t, sub, s.ID)), s); err != nil {
		t.Fatal(err)
	}
	_, err = q.target.Change(ctx, job(testevents.Change(t, sub, s.ID)), s)
	wantFailure(t, err, provisioning.Refused, events.AccountNotFound)
}

func TestDeprovision(t *testing.T) {
	t.Parallel()
	q := newQBD(t)
	ctx := context.Background()
	const sub = "sub-deprovision"
	s, err := q.target.Provision(ctx, job(testevents.Order(t, sub)))
	if err != nil {
		t.Fatal(err)
	}
	q.addInstance(s.ID)
	q.addInstance(s.ID)
	other, err := q.target.Provision(ctx, job(testevents.Order(t, "sub-other")))
	if err != nil {
		t.Fatal(err)
	}
	q.addInstance(other.ID)

	if err := q.target.Deprovision(ctx, job(testevents.Cancel(t, sub, s.ID)), s); err != nil {
		t.Fatal(err)
	}
	sid := subscriptionOf(s)
	if got := q.subscription(sid); got.Status != qbdapi.StatusCanceled || got.Quantity != 0 || got.CustomerID != s.ID {
		t.Errorf("subscription after = %+v; want canceled with quantity 0", got)
	}
	if list, err := q.client.ListInstances(ctx, s.ID); err != nil || len(list) != 0 {
		t.Errorf("instances after = %+v, %v; want none", list, err)
	}
	if st := q.stats(); st.Instances != 1 || st.Subscriptions != 1 {
		t.Errorf("stats %+v; the other customer's instance and subscription must stay", st)
	}
	if _, p, err := q.target.Find(ctx, job(testevents.Order(t, sub))); err != nil || p != provisioning.Gone {
		t.Errorf("Find after = %v, %v; want Gone", p, err)
	}

	// Again: nothing left to do, no write.
	puts, deletes := q.count(routePutSub), q.count(routeDeleteInstance)
	if err := q.target.Deprovision(ctx, job(testevents.Cancel(t, sub, s.ID)), s); err != nil || q.count(routePutSub) != puts || q.count(routeDeleteInstance) != deletes {
		t.Errorf("second Deprovision: %v, %d PUTs, %d DELETEs; want none", err, q.count(routePutSub)-puts, q.count(routeDeleteInstance)-deletes)
	}
	// What QBD Connect does not have counts as done.
	unknown := events.Step{Target: qbdconnect.Name, ID: "no-such-customer", Data: map[string]string{"subscription_id": "mp-sub-none"}}
	if err := q.target.Deprovision(ctx, job(testevents.Cancel(t, sub, "")), unknown); err != nil {
		t.Errorf("Deprovision of unknown ids: %v; want done", err)
	}
	// A step without ids is a bug of the record: final, naming it.
	_, err = q.target.Change(ctx, job(testevents.Change(t, sub, "")), events.Step{Target: qbdconnect.Name, ID: s.ID})
	wantFailure(t, err, provisioning.Refused, events.ConfigurationError)
	wantFailure(t, q.target.Deprovision(ctx, job(testevents.Cancel(t, sub, "")), events.Step{Target: qbdconnect.Name}), provisioning.Refused, events.ConfigurationError)
}

// TestDeprovisionResumes: a CANCEL cut short after deleting some
// instances leaves the subscription active, so it is found Live and the
// next attempt finishes.
func TestDeprovisionResumes(t *testing.T) {
	t.Parallel()
	q := newQBD(t)
	ctx := context.Background()
	const sub = "sub-resume"
	s, err := q.target.Provision(ctx, job(testevents.Order(t, sub)))
	if err != nil {
		t.Fatal(err)
	}
	q.addInstance(s.ID)
	q.addInstance(s.ID)
	q.fail(routeDeleteInstance, fault{}, fault{status: 400}) // the first answers normally
	wantFailure(t, q.target.Deprovision(ctx, job(testevents.Cancel(t, sub, s.ID)), s), provisioning.Refused, events.InvalidResponse)
	if _, p, err := q.target.Find(ctx, job(testevents.Cancel(t, sub, s.ID))); err != nil || p != provisioning.Live {
		t.Fatalf("Find after a cut-short cancel = %v, %v; want Live", p, err)
	}
	if err := q.target.Deprovision(ctx, job(testevents.Cancel(t, sub, s.ID)), s); err != nil {
		t.Fatal(err)
	}
	if st := q.stats(); st.Instances != 0 || st.Subscriptions != 0 {
		t.Errorf("stats %+v; want nothing live", st)
	}
}

// TestFailures is the error table, seen through the calls that meet each
// answer.
func TestFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		route      string
		faults     []fault
		kind       provisioning.Kind
		code       events.ErrorCode
		retryAfter time.Duration // of a transient failure
		message    string        // in the failure's message
	}{
		{"503 on a lookup, retried, then Retry-After beyond the backoff cap", routeListCustomers,
			[]fault{{status: 503}, {status: 503, retryAfter: "7"}}, provisioning.Transient, events.TransportError, 7 * time.Second, "looking up"},
		{"503 on creating the customer: not retried", routeCreateCustomer,
			[]fault{{status: 503}}, provisioning.Transient, events.TransportError, 5 * time.Second, "creating the customer"},
		{"429 on creating the subscription", routeCreateSub,
			[]fault{{status: 429, retryAfter: "2"}}, provisioning.Transient, events.TransportError, 2 * time.Second, "creating the subscription"},
		{"401", routeListCustomers,
			[]fault{{status: 401}}, provisioning.Misconfigured, events.Unauthorized, 0, "QBD_TOKEN"},
		{"403", routeCreateCustomer,
			[]fault{{status: 403}}, provisioning.Misconfigured, events.Unauthorized, 0, "QBD_TOKEN"},
		{"400 names the field", routeCreateCustomer,
			[]fault{{status: 400, body: `{"status":400,"error":"Bad Request","message":"name must be at most 80 characters"}`}},
			provisioning.Refused, events.InvalidResponse, 0, "name must be at most 80 characters"},
		{"422", routeCreateSub,
			[]fault{{status: 422}}, provisioning.Refused, events.InvalidResponse, 0, "creating the subscription"},
		{"a 2xx that is not JSON", routeListCustomers,
			[]fault{{status: 200, body: "<html>"}}, provisioning.Transient, events.TransportError, 0, "cannot read"},
		{"409 on a lookup", routeListCustomers,
			[]fault{{status: 409}}, provisioning.Refused, events.UnknownError, 0, "detail is in the service's log"},
		{"404 from a subscription lookup after a conflict", routeGetSub,
			[]fault{{status: 404}}, provisioning.Refused, events.UnknownError, 0, "creating the subscription"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := newQBD(t)
			ev := testevents.Order(t, "sub-failures")
			if tt.route == routeGetSub {
				// The create conflicts, and the lookup that follows finds nothing.
				q.fail(routeCreateSub, fault{status: 409})
			}
			q.fail(tt.route, tt.faults...)
			_, err := q.target.Provision(context.Background(), job(ev))
			f := wantFailure(t, err, tt.kind, tt.code)
			if f.RetryAfter != tt.retryAfter || !strings.Contains(f.Message, tt.message) {
				t.Errorf("failure %+v; want RetryAfter %v and a message with %q", f, tt.retryAfter, tt.message)
			}
		})
	}

	// The event's deadline is transient too.
	q := newQBD(t)
	ctx, stop := context.WithCancel(context.Background())
	stop()
	_, _, err := q.target.Find(ctx, job(testevents.Order(t, "sub-deadline")))
	wantFailure(t, err, provisioning.Transient, events.TransportError)
}
