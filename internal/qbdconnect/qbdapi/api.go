package qbdapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

// CustomerQuery filters ListCustomers. The zero value lists every customer.
type CustomerQuery struct {
	GatewayCustomerID string // Stripe's customer id, "cus_..."
}

// ListCustomers is GET /customers[?gatewayCustomerId=]. The seed shows this
// route answering one Customer where the instance list answers an array, so
// both are accepted: a single object is a list of one.
func (c *Client) ListCustomers(ctx context.Context, q CustomerQuery) ([]Customer, error) {
	list, _, err := c.listCustomers(ctx, q)
	return list, err
}

func (c *Client) listCustomers(ctx context.Context, q CustomerQuery) ([]Customer, *httpcall.Response, error) {
	var query url.Values
	if q.GatewayCustomerID != "" {
		query = url.Values{"gatewayCustomerId": {q.GatewayCustomerID}}
	}
	r, err := c.newCall(http.MethodGet, "/customers", nil, query, "customers")
	if err != nil {
		return nil, nil, err
	}
	var out customerList
	resp, err := c.do(ctx, r, &out)
	if err != nil {
		return nil, nil, err
	}
	return out, resp, nil
}

// FindCustomer returns the one customer whose gatewayCustomerId is id:
// ErrNotFound when there is none (an empty list or a 404), ErrConflict when
// several share it. Provisioning calls it before CreateCustomer, and again
// after a create whose reply was lost.
func (c *Client) FindCustomer(ctx context.Context, gatewayCustomerID string) (*Customer, error) {
	const route = "/customers?gatewayCustomerId="
	if gatewayCustomerID == "" {
		return nil, badArgument(http.MethodGet, route, "gatewayCustomerId must not be empty")
	}
	list, resp, err := c.listCustomers(ctx, CustomerQuery{GatewayCustomerID: gatewayCustomerID})
	switch {
	case err != nil:
		return nil, err
	case len(list) == 0:
		return nil, resp.Fail(ErrNotFound, fmt.Sprintf("no customer has gatewayCustomerId %q", gatewayCustomerID))
	case len(list) > 1:
		return nil, resp.Fail(ErrConflict, fmt.Sprintf("%d customers have gatewayCustomerId %q", len(list), gatewayCustomerID))
	}
	return &list[0], nil
}

// customerList decodes an array of customers or a single customer.
type customerList []Customer

func (l *customerList) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var one Customer
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*l = customerList{one}
		return nil
	}
	return json.Unmarshal(b, (*[]Customer)(l))
}

// CreateCustomer is POST /customers; it returns the customer with its id.
// It is not retried once sent: after a transient failure, FindCustomer
// tells whether it was created.
func (c *Client) CreateCustomer(ctx context.Context, cu Customer) (*Customer, error) {
	return create[Customer](ctx, c, "/customers", "customers", cu)
}

// GetCustomer is GET /customers/{id}.
func (c *Client) GetCustomer(ctx context.Context, id string) (*Customer, error) {
	return get[Customer](ctx, c, "/customers/{id}", "customers", id)
}

// ListInstances is GET /instances?customerId=: the customer's instances.
func (c *Client) ListInstances(ctx context.Context, customerID string) ([]Instance, error) {
	const route = "/instances?customerId="
	if customerID == "" {
		return nil, badArgument(http.MethodGet, route, "customerId must not be empty")
	}
	r, err := c.newCall(http.MethodGet, route, nil, url.Values{"customerId": {customerID}}, "instances")
	if err != nil {
		return nil, err
	}
	var out []Instance
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateInstance is POST /instances; it returns the instance with its
// instanceId and fileId. It is not retried once sent: after a transient
// failure, ListInstances tells whether it was created.
func (c *Client) CreateInstance(ctx context.Context, in Instance) (*Instance, error) {
	return create[Instance](ctx, c, "/instances", "instances", in)
}

// GetInstance is GET /instances/{id}.
func (c *Client) GetInstance(ctx context.Context, id string) (*Instance, error) {
	return get[Instance](ctx, c, "/instances/{id}", "instances", id)
}

// UpdateInstance is PUT /instances/{id}: it replaces the fields of u and
// returns the instance.
func (c *Client) UpdateInstance(ctx context.Context, id string, u InstanceUpdate) (*Instance, error) {
	return put[Instance](ctx, c, "/instances/{id}", "instances", id, u)
}

// PatchInstance is PATCH /instances/{id} with p as a JSON merge patch. The
// seed documents no reply, so none is read. Not retried once sent.
func (c *Client) PatchInstance(ctx context.Context, id string, p InstancePatch) error {
	r, err := c.newCall(http.MethodPatch, "/instances/{id}", p, nil, "instances", id)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, r, nil)
	return err
}

// DeleteInstance is DELETE /instances/{id}[?projectId=]; projectID, the
// instance's support project, may be empty. ErrNotFound means there is no
// such instance (any more): a retried delete whose first reply was lost
// ends that way too, so callers treat it as done.
func (c *Client) DeleteInstance(ctx context.Context, id, projectID string) error {
	var query url.Values
	if projectID != "" {
		query = url.Values{"projectId": {projectID}}
	}
	r, err := c.newCall(http.MethodDelete, "/instances/{id}", nil, query, "instances", id)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, r, nil)
	return err
}

// CreateSubscription is POST /subscriptions. It is not retried once sent:
// after a transient failure, GetSubscription with the Stripe id tells
// whether it was created.
func (c *Client) CreateSubscription(ctx context.Context, s Subscription) (*Subscription, error) {
	return create[Subscription](ctx, c, "/subscriptions", "subscriptions", s)
}

// GetSubscription is GET /subscriptions/{id}.
func (c *Client) GetSubscription(ctx context.Context, id string) (*Subscription, error) {
	return get[Subscription](ctx, c, "/subscriptions/{id}", "subscriptions", id)
}

// UpdateSubscription is PUT /subscriptions/{id}: it replaces the
// subscription with s (send it whole) and returns it. Cancelling is
// Status StatusCanceled with Quantity 0.
func (c *Client) UpdateSubscription(ctx context.Context, id string, s Subscription) (*Subscription, error) {
	return put[Subscription](ctx, c, "/subscriptions/{id}", "subscriptions", id, s)
}

// ListProducts is GET /products.
func (c *Client) ListProducts(ctx context.Context) ([]Product, error) {
	r, err := c.newCall(http.MethodGet, "/products", nil, nil, "products")
	if err != nil {
		return nil, err
	}
	var out []Product
	if _, err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetProduct is GET /products/{id}.
func (c *Client) GetProduct(ctx context.Context, id string) (*Product, error) {
	return get[Product](ctx, c, "/products/{id}", "products", id)
}

func create[T any](ctx context.Context, c *Client, route, resource string, body any) (*T, error) {
	return roundTrip[T](ctx, c, http.MethodPost, route, resource, body)
}

func get[T any](ctx context.Context, c *Client, route, resource, id string) (*T, error) {
	return roundTrip[T](ctx, c, http.MethodGet, route, resource, nil, id)
}

func put[T any](ctx context.Context, c *Client, route, resource, id string, body any) (*T, error) {
	return roundTrip[T](ctx, c, http.MethodPut, route, resource, body, id)
}

func roundTrip[T any](ctx context.Context, c *Client, method, route, resource string, body any, ids ...string) (*T, error) {
	r, err := c.newCall(method, route, body, nil, resource, ids...)
	if err != nil {
		return nil, err
	}
	out := new(T)
	if _, err := c.do(ctx, r, out); err != nil {
		return nil, err
	}
	return out, nil
}
