// Package qbdconnect is the provisioning target "qbd_connect": an ORDER
// creates a QBD Connect customer for the buyer and a subscription of the
// product's QBD Connect product for it, a CHANGE puts the new quantity on
// the subscription, a CANCEL deletes the customer's instances and marks the
// subscription canceled with quantity 0.
//
// Exactly once rests on two ids derived from the marketplace subscription
// alone (see GatewayCustomerID and SubscriptionID): every attempt at an
// ORDER looks the customer up by its gatewayCustomerId before creating it,
// and the subscription by its id before (and after) creating it, so a copy
// sent after a lost reply, a crash or an emptied Redis finds the work done
// instead of doing it twice. QBD Connect cannot list a customer's
// subscriptions, hence the derived subscription id; it is also written in
// the customer's subscriptionId (the seed's "subscription ID from
// Stripe"), which Find prefers when set.
//
// QBD Connect never deletes customers or subscriptions: a canceled
// subscription of ours therefore means "this subscription was cancelled"
// (Gone), and a late ORDER is refused instead of provisioned again.
package qbdconnect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
)

// Name is the target's name in the products file.
const Name = "qbd_connect"

// dataSubscription is the key of the QBD Connect subscription id in a
// step's Data; the step's ID is the QBD Connect customer id.
const dataSubscription = "subscription_id"

// API is the part of the QBD Connect API the target uses
// (*qbdapi.Client).
type API interface {
	FindCustomer(ctx context.Context, gatewayCustomerID string) (*qbdapi.Customer, error)
	CreateCustomer(ctx context.Context, c qbdapi.Customer) (*qbdapi.Customer, error)
	CreateSubscription(ctx context.Context, s qbdapi.Subscription) (*qbdapi.Subscription, error)
	GetSubscription(ctx context.Context, id string) (*qbdapi.Subscription, error)
	UpdateSubscription(ctx context.Context, id string, s qbdapi.Subscription) (*qbdapi.Subscription, error)
	ListInstances(ctx context.Context, customerID string) ([]qbdapi.Instance, error)
	DeleteInstance(ctx context.Context, id, projectID string) error
}

// Settings are a product's qbd_connect settings (products.QBDConnect).
type Settings struct {
	ProductID string // the QBD Connect product of the subscriptions, "prod_qbd"; required
}

// Target provisions QBD Connect customers and subscriptions.
type Target struct {
	api API
	set Settings
}

var _ provisioning.Target = (*Target)(nil)

// New returns the qbd_connect target of one product.
func New(api API, s Settings) (*Target, error) {
	if api == nil {
		return nil, errors.New("qbd_connect: the QBD Connect client is nil")
	}
	if s.ProductID == "" {
		return nil, errors.New("qbd_connect.product_id is required: the QBD Connect product its subscriptions are for")
	}
	return &Target{api: api, set: s}, nil
}

// Name implements provisioning.Target.
func (t *Target) Name() string { return Name }

// GatewayCustomerID is the gatewayCustomerId of a subscription's QBD
// Connect customer: "mp-" and 24 hex digits of SHA-256 over
// "q2-marketplace-subscription:" + the subscription id. It is derived from
// the subscription alone, so every attempt looks for (and creates) the same
// customer; "mp-" tells it from Stripe's "cus_" ids.
func GatewayCustomerID(subscriptionID string) string {
	return "mp-" + digest(subscriptionID)
}

// SubscriptionID is the id the target gives a subscription's QBD Connect
// subscription: "mp-sub-" and the same 24 hex digits. QBD Connect lists no
// subscriptions by customer, so only an id known in advance lets a copy
// sent after a lost reply find the subscription (GET /subscriptions/{id}).
func SubscriptionID(subscriptionID string) string {
	return "mp-sub-" + digest(subscriptionID)
}

func digest(subscriptionID string) string {
	sum := sha256.Sum256([]byte("q2-marketplace-subscription:" + subscriptionID))
	return hex.EncodeToString(sum[:12])
}

// subscriptionOf is the id of the customer's subscription: the one the
// customer names, else the derived one.
func subscriptionOf(c *qbdapi.Customer, subscription string) string {
	if c.SubscriptionID != "" {
		return c.SubscriptionID
	}
	return SubscriptionID(subscription)
}

// Find looks the subscription's customer up by its gatewayCustomerId, then
// its QBD Connect subscription: Absent when either is missing (a customer
// without a subscription is an ORDER cut short; Provision completes it),
// Gone when the subscription is canceled, Live otherwise.
func (t *Target) Find(ctx context.Context, j *provisioning.Job) (events.Step, provisioning.Presence, error) {
	cu, err := t.api.FindCustomer(ctx, GatewayCustomerID(j.Subscription))
	switch {
	case errors.Is(err, qbdapi.ErrNotFound):
		return events.Step{}, provisioning.Absent, nil
	case err != nil:
		return events.Step{}, 0, failure("looking up the subscription's customer", err)
	}
	sid := subscriptionOf(cu, j.Subscription)
	sub, err := t.api.GetSubscription(ctx, sid)
	switch {
	case errors.Is(err, qbdapi.ErrNotFound):
		return events.Step{}, provisioning.Absent, nil
	case err != nil:
		return events.Step{}, 0, failure("looking up the customer's subscription", err)
	case !ours(sub, cu):
		if j.Event.EventType != events.SubscriptionOrder {
			return events.Step{}, provisioning.Absent, nil // not ours to touch
		}
		return events.Step{}, 0, failure("looking up the customer's subscription", errForeignSubscription)
	case sub.Status == qbdapi.StatusCanceled:
		return step(cu.ID, sid), provisioning.Gone, nil
	}
	return step(cu.ID, sid), provisioning.Live, nil
}

// Prepare checks that the order holds what QBD Connect needs. The
// customer is made of the event's buyer (names, address, contact), never
// stored, so the settler leaves it to the ORDER's next copy.
func (t *Target) Prepare(_ context.Context, j *provisioning.Job) (events.Step, error) {
	if j.Event == nil {
		return events.Step{}, provisioning.ErrNeedsEvent
	}
	if _, err := newCustomer(j.Event, j.Subscription); err != nil {
		return events.Step{}, err
	}
	return events.Step{}, nil
}

// Provision creates what Find did not find: the customer (unless it
// exists), then its subscription. Nothing is created before the order is
// known to hold what QBD Connect needs, so a refused order leaves nothing
// behind. Neither create is retried blindly: a create that conflicts is
// looked up and taken when it is ours.
func (t *Target) Provision(ctx context.Context, j *provisioning.Job) (events.Step, error) {
	want, err := newCustomer(j.Event, j.Subscription)
	if err != nil {
		return events.Step{}, err
	}
	cu, existed, err := t.customer(ctx, want)
	if err != nil {
		return events.Step{}, err
	}
	sid := subscriptionOf(cu, j.Subscription)
	if existed {
		// An earlier attempt got this far: its subscription may exist too.
		switch err := t.adopt(ctx, sid, cu); {
		case err == nil:
			return step(cu.ID, sid), nil
		case errors.Is(err, provisioning.ErrGone):
			return step(cu.ID, sid), err
		case !errors.Is(err, qbdapi.ErrNotFound):
			return events.Step{}, failure("looking up the customer's subscription", err)
		}
	}
	sub := qbdapi.Subscription{
		SubscriptionID: sid,
		ProductID:      t.set.ProductID,
		Quantity:       orderQuantity(j.Intent.Items),
		CustomerID:     cu.ID,
		Email:          cu.PrimaryBillingContact.Email,
		Status:         qbdapi.StatusActive,
	}
	_, err = t.api.CreateSubscription(ctx, sub)
	if errors.Is(err, qbdapi.ErrConflict) {
		err = t.adopt(ctx, sid, cu)
	}
	if errors.Is(err, provisioning.ErrGone) {
		return step(cu.ID, sid), err
	}
	if err != nil {
		return events.Step{}, failure("creating the subscription", err)
	}
	return step(cu.ID, sid), nil
}

// customer finds the customer by its gatewayCustomerId, else creates it. A
// create that conflicts (created meanwhile) is looked up again. existed
// reports that it was there before this call.
func (t *Target) customer(ctx context.Context, want qbdapi.Customer) (cu *qbdapi.Customer, existed bool, err error) {
	cu, err = t.api.FindCustomer(ctx, want.GatewayCustomerID)
	if err == nil {
		return cu, true, nil
	}
	if !errors.Is(err, qbdapi.ErrNotFound) {
		return nil, false, failure("looking up the subscription's customer", err)
	}
	cu, err = t.api.CreateCustomer(ctx, want)
	if errors.Is(err, qbdapi.ErrConflict) {
		existed = true
		cu, err = t.api.FindCustomer(ctx, want.GatewayCustomerID)
	}
	if err != nil {
		return nil, false, failure("creating the customer", err)
	}
	return cu, existed, nil
}

// adopt takes an existing subscription sid (an earlier attempt created it
// and its reply was lost) when it belongs to cu and is not canceled.
func (t *Target) adopt(ctx context.Context, sid string, cu *qbdapi.Customer) error {
	sub, err := t.api.GetSubscription(ctx, sid)
	switch {
	case err != nil:
		return err
	case !ours(sub, cu):
		return errForeignSubscription
	case sub.Status == qbdapi.StatusCanceled:
		return provisioning.ErrGone
	}
	return nil
}

// ours reports whether sub is the subscription of cu.
func ours(sub *qbdapi.Subscription, cu *qbdapi.Customer) bool {
	return sub.CustomerID == cu.ID
}

// Change puts a CHANGE's quantity on the subscription: GET, new quantity,
// PUT (the PUT replaces the subscription, so everything else is sent back
// as read). A CHANGE without items, or with the quantity already there,
// calls no PUT.
func (t *Target) Change(ctx context.Context, j *provisioning.Job, s events.Step) (events.Step, error) {
	qty, ok := changeQuantity(j.Intent.Items)
	if !ok {
		return s, nil
	}
	sid := s.Data[dataSubscription]
	if sid == "" {
		return s, provisioning.Refusal(events.ConfigurationError, "the recorded qbd_connect step has no subscription id", nil)
	}
	sub, err := t.api.GetSubscription(ctx, sid)
	switch {
	case errors.Is(err, qbdapi.ErrNotFound):
		return s, provisioning.Refusal(events.AccountNotFound, "QBD Connect does not have the subscription any more", err)
	case err != nil:
		return s, failure("reading the subscription", err)
	case sub.Status == qbdapi.StatusCanceled:
		return s, provisioning.Refusal(events.AccountNotFound, "the QBD Connect subscription is canceled; a canceled subscription is not changed", nil)
	case sub.Quantity == qty:
		return s, nil
	}
	sub.Quantity = qty
	if _, err := t.api.UpdateSubscription(ctx, sid, *sub); err != nil {
		return s, failure("changing the subscription's quantity", err)
	}
	return s, nil
}

// Deprovision deletes the customer's instances, then marks the
// subscription canceled with quantity 0. The canceled status is written
// last, so that it means "all undone": a CANCEL cut short after some
// deletions leaves the subscription active, and the next copy (or Find)
// still sees work to undo. A customer, instance or subscription that is
// gone already (404) counts as done.
func (t *Target) Deprovision(ctx context.Context, _ *provisioning.Job, s events.Step) error {
	sid := s.Data[dataSubscription]
	if s.ID == "" || sid == "" {
		return provisioning.Refusal(events.ConfigurationError, "the recorded qbd_connect step has no customer or subscription id", nil)
	}
	instances, err := t.api.ListInstances(ctx, s.ID)
	if err != nil && !errors.Is(err, qbdapi.ErrNotFound) {
		return failure("listing the customer's instances", err)
	}
	for _, in := range instances {
		if err := t.api.DeleteInstance(ctx, in.InstanceID, ""); err != nil && !errors.Is(err, qbdapi.ErrNotFound) {
			return failure("deleting an instance", err)
		}
	}
	sub, err := t.api.GetSubscription(ctx, sid)
	switch {
	case errors.Is(err, qbdapi.ErrNotFound):
		return nil
	case err != nil:
		return failure("reading the subscription", err)
	case sub.Status == qbdapi.StatusCanceled && sub.Quantity == 0:
		return nil
	}
	sub.Status, sub.Quantity = qbdapi.StatusCanceled, 0
	if _, err := t.api.UpdateSubscription(ctx, sid, *sub); err != nil && !errors.Is(err, qbdapi.ErrNotFound) {
		return failure("canceling the subscription", err)
	}
	return nil
}

// step is what the target records: the customer id (the accountIdentifier
// of a product whose first target is qbd_connect) and the subscription id.
func step(customerID, subscriptionID string) events.Step {
	return events.Step{Target: Name, ID: customerID, Data: map[string]string{dataSubscription: subscriptionID}}
}
