package qbdapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdsandbox"
)

// startSandbox serves the in-memory QBD Connect and returns a client of it.
func startSandbox(t *testing.T, opts ...Option) (*Client, *qbdsandbox.Sandbox) {
	t.Helper()
	sb := qbdsandbox.New()
	mux := http.NewServeMux()
	sb.Register(mux, func(_ string, h http.HandlerFunc) http.HandlerFunc { return h })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, sb
}

func stats(t *testing.T, sb *qbdsandbox.Sandbox) qbdsandbox.Stats {
	t.Helper()
	return sb.Stats().(qbdsandbox.Stats)
}

// TestSandboxLifecycle walks what provisioning does for a QBD Connect
// product (ORDER, CHANGE, CANCEL) and what an operator does to an instance,
// against the sandbox.
func TestSandboxLifecycle(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"v1", "v3"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			c, sb := startSandbox(t, WithAPIVersion(version), WithToken("any"))
			ctx := context.Background()

			// ORDER: look the customer up by gatewayCustomerId, create it, then the subscription.
			if _, err := c.FindCustomer(ctx, "cus_sub42"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("FindCustomer before create: %v, want ErrNotFound", err)
			}
			cu, err := c.CreateCustomer(ctx, Customer{
				GatewayCustomerID: "cus_sub42", Name: "Acme Corp",
				Address:               &Address{Street1: "1 Main St", City: "Albany", State: "NY", PostalCode: "12207"},
				PrimaryBillingContact: BillingContact{FirstName: "Ann", LastName: "Lee", Email: "ann@example.com"},
				Extra:                 map[string]json.RawMessage{"marketplace": json.RawMessage(`{"subscription":"42"}`)},
			})
			if err != nil {
				t.Fatal(err)
			}
			found, err := c.FindCustomer(ctx, "cus_sub42")
			if err != nil || found.ID != cu.ID || string(found.Extra["marketplace"]) != `{"subscription":"42"}` || found.QBDInstances == nil {
				t.Fatalf("FindCustomer = %+v, %v", found, err)
			}
			if _, err := c.CreateCustomer(ctx, Customer{GatewayCustomerID: "cus_sub42", PrimaryBillingContact: BillingContact{Email: "x@example.com"}}); !errors.Is(err, ErrConflict) {
				t.Errorf("second customer with the gatewayCustomerId: %v, want ErrConflict", err)
			}
			sub, err := c.CreateSubscription(ctx, Subscription{SubscriptionID: "sub_42", ProductID: "prod_qbd", Quantity: 3, CustomerID: cu.ID})
			if err != nil || sub.Status != StatusActive || sub.DateCreated == "" {
				t.Fatalf("CreateSubscription = %+v, %v", sub, err)
			}

			// CHANGE: GET, new quantity, PUT.
			sub.Quantity = 5
			if sub, err = c.UpdateSubscription(ctx, sub.SubscriptionID, *sub); err != nil || sub.Quantity != 5 {
				t.Fatalf("UpdateSubscription = %+v, %v", sub, err)
			}
			if st := stats(t, sb); st != (qbdsandbox.Stats{Customers: 1, Subscriptions: 1, Quantity: 5}) {
				t.Errorf("stats %+v", st)
			}

			// An operator adds an instance, renames it, marks it validated.
			in, err := c.CreateInstance(ctx, Instance{
				Name: "Books", CustomerID: cu.ID, Contact: Contact{FirstName: "Ann", LastName: "Lee", Email: "ann@example.com"},
				SLA: &SLA{SupportHours: 2, TransactionLimit: 1000, DefaultHourlyRate: 95},
			})
			if err != nil || in.InstanceID == "" || in.FileID == "" || in.FrequencyInMinutes != 60 {
				t.Fatalf("CreateInstance = %+v, %v", in, err)
			}
			if in, err = c.UpdateInstance(ctx, in.InstanceID, InstanceUpdate{Name: "Ledger", Password: "pw", FrequencyInMinutes: 30}); err != nil || in.Name != "Ledger" || in.FrequencyInMinutes != 30 {
				t.Fatalf("UpdateInstance = %+v, %v", in, err)
			}
			yes := true
			if err := c.PatchInstance(ctx, in.InstanceID, InstancePatch{Validated: &yes, Extra: map[string]json.RawMessage{"region": json.RawMessage(`"us"`)}}); err != nil {
				t.Fatal(err)
			}
			if in, err = c.GetInstance(ctx, in.InstanceID); err != nil || !in.Validated || string(in.Extra["region"]) != `"us"` || in.SLA.TransactionLimit != 1000 {
				t.Fatalf("GetInstance = %+v, %v", in, err)
			}
			if got, err := c.GetCustomer(ctx, cu.ID); err != nil || len(got.QBDInstances) != 1 {
				t.Errorf("GetCustomer = %+v, %v", got, err)
			}

			// CANCEL: status canceled, quantity 0, the customer's instances deleted.
			sub.Status, sub.Quantity = StatusCanceled, 0
			if _, err := c.UpdateSubscription(ctx, sub.SubscriptionID, *sub); err != nil {
				t.Fatal(err)
			}
			list, err := c.ListInstances(ctx, cu.ID)
			if err != nil || len(list) != 1 {
				t.Fatalf("ListInstances = %+v, %v", list, err)
			}
			for _, in := range list {
				if err := c.DeleteInstance(ctx, in.InstanceID, ""); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.DeleteInstance(ctx, list[0].InstanceID, ""); !errors.Is(err, ErrNotFound) {
				t.Errorf("second delete: %v, want ErrNotFound", err)
			}
			if st := stats(t, sb); st != (qbdsandbox.Stats{Customers: 1}) {
				t.Errorf("stats after the cancel %+v", st)
			}
			if got, err := c.GetSubscription(ctx, "sub_42"); err != nil || got.Status != StatusCanceled || got.Quantity != 0 {
				t.Errorf("GetSubscription = %+v, %v", got, err)
			}

			products, err := c.ListProducts(ctx)
			if err != nil || len(products) == 0 {
				t.Fatalf("ListProducts = %v, %v", products, err)
			}
			if p, err := c.GetProduct(ctx, "prod_qbd"); err != nil || !p.Active || p.Name == "" {
				t.Errorf("GetProduct = %+v, %v", p, err)
			}
		})
	}
}

// TestSandboxErrors: the sandbox's refusals reach the caller as the right
// kind, with the field named.
func TestSandboxErrors(t *testing.T) {
	t.Parallel()
	c, _ := startSandbox(t)
	ctx := context.Background()
	_, err := c.CreateCustomer(ctx, Customer{Address: &Address{Street1: "1", City: "A", State: "NYC", PostalCode: "12207"}})
	var ae *APIError
	if !errors.As(err, &ae) || !errors.Is(err, ErrBadRequest) || ae.Status != 400 ||
		!strings.Contains(err.Error(), "address.state") || !strings.Contains(err.Error(), "primaryBillingContact.email") {
		t.Errorf("bad customer: %v, want ErrBadRequest naming address.state and primaryBillingContact.email", err)
	}
	if _, err := c.CreateInstance(ctx, Instance{Name: "B", CustomerID: "none", Contact: Contact{FirstName: "A", LastName: "L", Email: "e"}}); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "customerId") {
		t.Errorf("instance of an unknown customer: %v", err)
	}
	if _, err := c.GetCustomer(ctx, "none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown customer: %v", err)
	}
	if _, err := c.UpdateSubscription(ctx, "none", Subscription{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown subscription: %v", err)
	}
	if _, err := c.CreateSubscription(ctx, Subscription{Status: "gone"}); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "status") {
		t.Errorf("bad status: %v", err)
	}
}
