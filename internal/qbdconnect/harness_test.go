package qbdconnect_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/qbdconnect"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdsandbox"
)

// Routes of the QBD Connect sandbox part, as its wrap function names them.
const (
	routeListCustomers  = "qbd.GET /customers"
	routeCreateCustomer = "qbd.POST /customers"
	routeCreateSub      = "qbd.POST /subscriptions"
	routeGetSub         = "qbd.GET /subscriptions/{id}"
	routePutSub         = "qbd.PUT /subscriptions/{id}"
	routeDeleteInstance = "qbd.DELETE /instances/{id}"
)

// fault is how a route answers instead of the sandbox: status with
// QBD Connect's error shape, or body as it is; the zero fault lets the
// sandbox answer.
type fault struct {
	status     int
	retryAfter string // the Retry-After header, when set
	body       string // a raw body instead of the error shape
}

// qbd is the sandbox part served over HTTP, the real client of it, and
// the target. The wrap around every route counts calls and plays faults.
type qbd struct {
	t      *testing.T
	sb     *qbdsandbox.Sandbox
	client *qbdapi.Client
	target *qbdconnect.Target

	mu     sync.Mutex
	calls  map[string]int
	faults map[string][]fault // route → the answers of its next calls
}

func newQBD(t *testing.T) *qbd {
	t.Helper()
	q := &qbd{t: t, sb: qbdsandbox.New(), calls: map[string]int{}, faults: map[string][]fault{}}
	mux := http.NewServeMux()
	q.sb.Register(mux, q.wrap)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var err error
	q.client, err = qbdapi.New(srv.URL, qbdapi.WithRetry(3, time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if q.target, err = qbdconnect.New(q.client, qbdconnect.Settings{ProductID: "prod_qbd"}); err != nil {
		t.Fatal(err)
	}
	return q
}

func (q *qbd) wrap(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q.mu.Lock()
		q.calls[route]++
		var f *fault
		if next := q.faults[route]; len(next) > 0 {
			f, q.faults[route] = &next[0], next[1:]
		}
		q.mu.Unlock()
		switch {
		case f == nil || (f.status == 0 && f.body == ""):
			h(w, r) // fault{}: this call answers normally
		case f.body != "":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.status)
			_, _ = w.Write([]byte(f.body))
		default:
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			q.sb.Fail(w, f.status, 0)
		}
	}
}

// fail makes the next calls of route answer fs, one each.
func (q *qbd) fail(route string, fs ...fault) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.faults[route] = append(q.faults[route], fs...)
}

func (q *qbd) count(route string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls[route]
}

func (q *qbd) stats() qbdsandbox.Stats {
	q.t.Helper()
	return q.sb.Stats().(qbdsandbox.Stats)
}

// subscription reads a QBD Connect subscription.
func (q *qbd) subscription(id string) *qbdapi.Subscription {
	q.t.Helper()
	s, err := q.client.GetSubscription(context.Background(), id)
	if err != nil {
		q.t.Fatalf("GET /subscriptions/%s: %v", id, err)
	}
	return s
}

// addInstance creates an instance of the customer, as its user would.
func (q *qbd) addInstance(customerID string) {
	q.t.Helper()
	_, err := q.client.CreateInstance(context.Background(), qbdapi.Instance{Name: "Books", CustomerID: customerID,
		Contact: qbdapi.Contact{FirstName: "John", LastName: "Doe", Email: "jdoe@example.com"}})
	if err != nil {
		q.t.Fatal(err)
	}
}

// subscriptionOf is the QBD Connect subscription id a qbd_connect step
// recorded, under the key that accounts already in Redis hold it by.
func subscriptionOf(s events.Step) string { return s.Data["subscription_id"] }

// job is the target's job for ev.
func job(ev *events.SubscriptionEvent) *provisioning.Job {
	j := &provisioning.Job{Event: ev, Product: "qbd", Subscription: ev.SubscriptionID}
	if o := ev.Event.Payload.Order; o != nil {
		j.Intent = events.Intent{State: events.IntentActive, Edition: o.EditionCode, Items: o.Items}
	}
	return j
}

// wantFailure checks that err is a *provisioning.Failure of kind and code.
func wantFailure(t *testing.T, err error, kind provisioning.Kind, code events.ErrorCode) *provisioning.Failure {
	t.Helper()
	var f *provisioning.Failure
	if !errors.As(err, &f) || f.Kind != kind || f.Code != code {
		t.Fatalf("err = %v; want a %s %s failure", err, kind, code)
	}
	return f
}
