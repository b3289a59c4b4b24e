package qbdapi

import "encoding/json"

// Subscription statuses. The seed names no values; its subscriptions are
// Stripe's, so these are Stripe's (also "incomplete", "incomplete_expired",
// "past_due", "paused", "trialing", "unpaid").
const (
	StatusActive   = "active"
	StatusCanceled = "canceled"
)

// Customer is a QBD Connect client (the seed's customer schema).
// CreateCustomer needs PrimaryBillingContact.Email and, when Address is
// set, its Street1, City, State (at most 2 characters) and PostalCode (at
// most 10).
type Customer struct {
	ID                    string         `json:"id,omitempty"`                // set by the server
	OrganizationID        string         `json:"organizationId,omitempty"`    // from Insightly
	GatewayCustomerID     string         `json:"gatewayCustomerId,omitempty"` // Stripe's customer id, "cus_..."
	SubscriptionID        string         `json:"subscriptionId,omitempty"`    // Stripe's subscription id
	Name                  string         `json:"name,omitempty"`
	Address               *Address       `json:"address,omitempty"`
	PrimaryBillingContact BillingContact `json:"primaryBillingContact"`
	QBDInstances          []Instance     `json:"qbdInstances,omitempty"` // the customer's instances, as the server reports them

	// Extra holds the properties the seed does not name (it allows them),
	// as sent. They are encoded after the named ones; a key that a named
	// field uses is ignored.
	Extra map[string]json.RawMessage `json:"-"`
}

// Address is a customer's postal address.
type Address struct {
	Street1    string                     `json:"street1"`
	Street2    string                     `json:"street2,omitempty"`
	City       string                     `json:"city"`
	State      string                     `json:"state"`      // two letters
	PostalCode string                     `json:"postalCode"` // at most 10 characters
	Extra      map[string]json.RawMessage `json:"-"`          // as Customer.Extra
}

// BillingContact is the person who signed up for QBD Connect; Email is
// required.
type BillingContact struct {
	FirstName string                     `json:"firstName,omitempty"`
	LastName  string                     `json:"lastName,omitempty"`
	Email     string                     `json:"email"`
	Phone     string                     `json:"phone,omitempty"`
	Extra     map[string]json.RawMessage `json:"-"` // as Customer.Extra
}

// Instance is one QuickBooks Desktop connection of a customer. Name,
// CustomerID and Contact (with its first and last name and email) are
// required; the server sets InstanceID, FileID and DateCreated.
type Instance struct {
	InstanceID         string                     `json:"instanceId,omitempty"`
	Name               string                     `json:"name"`
	CustomerID         string                     `json:"customerId"`
	Contact            Contact                    `json:"contact"`
	QBDPath            string                     `json:"qbdPath,omitempty"`            // the QuickBooks company file
	AppURL             string                     `json:"appUrl,omitempty"`             // where QBWC sends requests
	FrequencyInMinutes int                        `json:"frequencyInMinutes,omitempty"` // QBWC polling; 0 leaves the server's default (60)
	FileID             string                     `json:"fileId,omitempty"`             // a UUID the server generates
	Validated          bool                       `json:"validated,omitempty"`          // the contact's email was confirmed
	SLA                *SLA                       `json:"sla,omitempty"`
	DateCreated        string                     `json:"dateCreated,omitempty"` // YYYY-MM-DD
	Extra              map[string]json.RawMessage `json:"-"`                     // as Customer.Extra
}

// Contact is an instance's contact; all but Phone are required.
type Contact struct {
	FirstName string                     `json:"firstName"`
	LastName  string                     `json:"lastName"`
	Email     string                     `json:"email"`
	Phone     string                     `json:"phone,omitempty"`
	Extra     map[string]json.RawMessage `json:"-"` // as Customer.Extra
}

// SLA is the service level agreement of an instance or a subscription;
// when present, all three numbers are sent, zero included.
type SLA struct {
	SupportHours      float64                    `json:"supportHours"`
	TransactionLimit  int64                      `json:"transactionLimit"`
	DefaultHourlyRate float64                    `json:"defaultHourlyRate"`
	Extra             map[string]json.RawMessage `json:"-"` // as Customer.Extra
}

// InstanceUpdate is the body of PUT /instances/{id}: it replaces these
// fields of the instance. Password is the secret QBWC authenticates with:
// never log an InstanceUpdate. The seed allows no other properties here.
type InstanceUpdate struct {
	Name               string `json:"name"`
	Password           string `json:"password,omitempty"`
	QBDPath            string `json:"qbdPath,omitempty"`
	FrequencyInMinutes int    `json:"frequencyInMinutes,omitempty"` // 0: the default, 60
}

// InstancePatch is the body of PATCH /instances/{id}, a JSON merge patch
// (RFC 7396): only the fields that are set are sent, and a property of
// Extra whose value is null removes it. The seed documents no PATCH body;
// the sandbox applies it this way. Never log one that carries Password.
type InstancePatch struct {
	Name               *string                    `json:"name,omitempty"`
	Password           *string                    `json:"password,omitempty"`
	Contact            *Contact                   `json:"contact,omitempty"`
	QBDPath            *string                    `json:"qbdPath,omitempty"`
	AppURL             *string                    `json:"appUrl,omitempty"`
	FrequencyInMinutes *int                       `json:"frequencyInMinutes,omitempty"`
	Validated          *bool                      `json:"validated,omitempty"`
	SLA                *SLA                       `json:"sla,omitempty"`
	Extra              map[string]json.RawMessage `json:"-"`
}

// Subscription is a customer's QBD Connect subscription, keyed by its
// Stripe id. Quantity is the number of instances paid for and is always
// sent (0 on cancel). A PUT replaces the subscription: send it whole (GET,
// change, PUT) so that nothing is lost.
type Subscription struct {
	SubscriptionID     string                     `json:"subscriptionId,omitempty"` // Stripe's; generated by the server when empty
	ProductID          string                     `json:"productId,omitempty"`
	PriceID            string                     `json:"priceId,omitempty"`
	SubscriptionItemID string                     `json:"subscriptionItemId,omitempty"`
	Quantity           int64                      `json:"quantity"`
	CustomerID         string                     `json:"customerId,omitempty"`
	Email              string                     `json:"email,omitempty"`  // the customer's email in Stripe
	Status             string                     `json:"status,omitempty"` // StatusActive, StatusCanceled, ...; empty: the server's default (active)
	SLA                *SLA                       `json:"sla,omitempty"`
	DateCreated        string                     `json:"dateCreated,omitempty"` // YYYY-MM-DD
	Extra              map[string]json.RawMessage `json:"-"`                     // as Customer.Extra
}

// Product is a QBD Connect product. The seed shows no schema for it; its
// ids are Stripe's ("prod_..."), so this reads Stripe's product fields and
// keeps the rest in Extra.
type Product struct {
	ID          string                     `json:"id"`
	Name        string                     `json:"name,omitempty"`
	Description string                     `json:"description,omitempty"`
	Active      bool                       `json:"active"`
	Extra       map[string]json.RawMessage `json:"-"`
}

// The JSON methods below keep Extra; see extra.go.

func (v Customer) MarshalJSON() ([]byte, error) {
	type plain Customer
	return encodeWithExtra(plain(v), v.Extra)
}

func (v *Customer) UnmarshalJSON(b []byte) error {
	type plain Customer
	var p plain
	extra, err := decodeWithExtra(b, &p)
	if err == nil {
		p.Extra = extra
		*v = Customer(p)
	}
	return err
}

func (v Address) MarshalJSON() ([]byte, error) {
	type plain Address
	return encodeWithExtra(plain(v), v.Extra)
}

func (v *Address) UnmarshalJSON(b []byte) error {
	type plain Address
	var p plain
	extra, err := decodeWithExtra(b, &p)
	if err == nil {
		p.Extra = extra
		*v = Address(p)
	}
	return err
}

func (v BillingContact) MarshalJSON() ([]byte, error) {
	type plain BillingContact
	return encodeWithExtra(plain(v), v.Extra)
}

func (v *BillingContact) UnmarshalJSON(b []byte) error {
	type plain BillingContact
	var p plain
	extra, err := decodeWithExtra(b, &p)
	if err == nil {
		p.Extra = extra
		*v = BillingContact(p)
	}
	return err
}

func (v Instance) MarshalJSON() ([]byte, error) {
	type plain Instance
	return encodeWithExtra(plain(v), v.Extra)
}

func (v *Instance) UnmarshalJSON(b []byte) error {
	type plain Instance
	var p plain
	extra, err := decodeWithExtra(b, &p)
	if err == nil {
		p.Extra = extra
		*v = Instance(p)
	}
	return err
}

func (v Contact) MarshalJSON() ([]byte, error) {
	type plain Contact
	return encodeWithExtra(plain(v), v.Extra)
}

func (v *Contact) UnmarshalJSON(b []byte) error {
	type plain Contact
	var p plain
	extra, err := decodeWithExtra(b, &p)
	if err == nil {
		p.Extra = extra
		*v = Contact(p)
	}
	return err
}

func (v SLA) MarshalJSON() ([]byte, error) {
	type plain SLA
	return encodeWithExtra(plain(v), v.Extra)
}

func (v *SLA) UnmarshalJSON(b []byte) error {
	type plain SLA
	var p plain
	extra, err := decodeWithExtra(b, &p)
	if err == nil {
		p.Extra = extra
		*v = SLA(p)
	}
	return err
}

// MarshalJSON sends only the set fields, then Extra (null values included:
// they remove the property).
func (v InstancePatch) MarshalJSON() ([]byte, error) {
	type plain InstancePatch
	return encodeWithExtra(plain(v), v.Extra)
}

func (v Subscription) MarshalJSON() ([]byte, error) {
	type plain Subscription
	return encodeWithExtra(plain(v), v.Extra)
}

func (v *Subscription) UnmarshalJSON(b []byte) error {
	type plain Subscription
	var p plain
	extra, err := decodeWithExtra(b, &p)
	if err == nil {
		p.Extra = extra
		*v = Subscription(p)
	}
	return err
}

func (v Product) MarshalJSON() ([]byte, error) {
	type plain Product
	return encodeWithExtra(plain(v), v.Extra)
}

func (v *Product) UnmarshalJSON(b []byte) error {
	type plain Product
	var p plain
	extra, err := decodeWithExtra(b, &p)
	if err == nil {
		p.Extra = extra
		*v = Product(p)
	}
	return err
}
