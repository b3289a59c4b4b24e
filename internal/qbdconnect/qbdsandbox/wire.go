package qbdsandbox

import (
	"cmp"
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"sync"
)

// props holds an object's additional properties: the seed allows them on
// customers, addresses, contacts, instances, SLAs and subscriptions, and
// the sandbox keeps and returns them as sent.
type props map[string]json.RawMessage

// Wire types: the seed's schemas. Fields the seed marks required but a
// client may leave out, and numbers where 0 is valid, are pointers, so
// that "missing" can be told apart.

type address struct {
	Street1    string `json:"street1"`
	Street2    string `json:"street2,omitempty"`
	City       string `json:"city"`
	State      string `json:"state"`
	PostalCode string `json:"postalCode"`
	Extra      props  `json:"-"`
}

type billingContact struct {
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	Email     string `json:"email"`
	Phone     string `json:"phone,omitempty"`
	Extra     props  `json:"-"`
}

type contact struct {
	FirstName string `json:"firstName"`
	LastName  string `json:"lastName"`
	Email     string `json:"email"`
	Phone     string `json:"phone,omitempty"`
	Extra     props  `json:"-"`
}

type sla struct {
	SupportHours      *float64 `json:"supportHours"`
	TransactionLimit  *int64   `json:"transactionLimit"`
	DefaultHourlyRate *float64 `json:"defaultHourlyRate"`
	Extra             props    `json:"-"`
}

type customer struct {
	ID                    string          `json:"id"`
	OrganizationID        string          `json:"organizationId,omitempty"`
	GatewayCustomerID     string          `json:"gatewayCustomerId,omitempty"`
	SubscriptionID        string          `json:"subscriptionId,omitempty"`
	Name                  string          `json:"name,omitempty"`
	Address               *address        `json:"address,omitempty"`
	PrimaryBillingContact *billingContact `json:"primaryBillingContact"`
	QBDInstances          []instance      `json:"qbdInstances"` // computed for replies
	Extra                 props           `json:"-"`

	seq uint64 // creation order, for lists
}

type instance struct {
	InstanceID         string   `json:"instanceId"`
	Name               string   `json:"name"`
	CustomerID         string   `json:"customerId"`
	Contact            *contact `json:"contact"`
	QBDPath            string   `json:"qbdPath,omitempty"`
	AppURL             string   `json:"appUrl,omitempty"`
	FrequencyInMinutes *int64   `json:"frequencyInMinutes"`
	FileID             string   `json:"fileId"`
	Validated          bool     `json:"validated"`
	SLA                *sla     `json:"sla,omitempty"`
	DateCreated        string   `json:"dateCreated"`
	Password           string   `json:"password,omitempty"` // write-only: cleared by public()
	Extra              props    `json:"-"`

	seq uint64
}

// public is the instance as replies show it: without its password.
func (in instance) public() instance {
	in.Password = ""
	return in
}

// instanceUpdate is the body of PUT /instances/{id}.
type instanceUpdate struct {
	Name               *string `json:"name"`
	Password           *string `json:"password"`
	QBDPath            *string `json:"qbdPath"`
	FrequencyInMinutes *int64  `json:"frequencyInMinutes"`
}

type subscription struct {
	SubscriptionID     string `json:"subscriptionId"`
	ProductID          string `json:"productId,omitempty"`
	PriceID            string `json:"priceId,omitempty"`
	SubscriptionItemID string `json:"subscriptionItemId,omitempty"`
	Quantity           int64  `json:"quantity"`
	CustomerID         string `json:"customerId,omitempty"`
	Email              string `json:"email,omitempty"`
	Status             string `json:"status"`
	SLA                *sla   `json:"sla,omitempty"`
	DateCreated        string `json:"dateCreated"`
	Extra              props  `json:"-"`
}

type product struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Active      bool   `json:"active"`
}

// known caches the lower-cased JSON names of a struct type's fields
// (encoding/json matches names without regard to case).
var known sync.Map // reflect.Type → map[string]bool

func fieldNames(t reflect.Type) map[string]bool {
	if m, ok := known.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "-" {
			m[strings.ToLower(cmp.Or(name, f.Name))] = true
		}
	}
	known.Store(t, m)
	return m
}

// unmarshalKeeping decodes data into v (a pointer to a struct without JSON
// methods) and returns the properties it does not name.
func unmarshalKeeping(data []byte, v any) (props, error) {
	if err := json.Unmarshal(data, v); err != nil {
		return nil, err
	}
	var all props
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, err
	}
	names := fieldNames(reflect.TypeOf(v).Elem())
	maps.DeleteFunc(all, func(k string, _ json.RawMessage) bool { return names[strings.ToLower(k)] })
	if len(all) == 0 {
		return nil, nil
	}
	return all, nil
}

// marshalKeeping encodes v (a struct without JSON methods) with extra's
// properties added; v's own fields win a clash.
func marshalKeeping(v any, extra props) ([]byte, error) {
	if len(extra) == 0 {
		return json.Marshal(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	names := fieldNames(reflect.TypeOf(v))
	for k, raw := range extra {
		if !names[strings.ToLower(k)] {
			obj[k] = raw
		}
	}
	return json.Marshal(obj) // keys sorted
}

func (v address) MarshalJSON() ([]byte, error) {
	type plain address
	return marshalKeeping(plain(v), v.Extra)
}

func (v *address) UnmarshalJSON(b []byte) error {
	type plain address
	var p plain
	extra, err := unmarshalKeeping(b, &p)
	p.Extra = extra
	*v = address(p)
	return err
}

func (v billingContact) MarshalJSON() ([]byte, error) {
	type plain billingContact
	return marshalKeeping(plain(v), v.Extra)
}

func (v *billingContact) UnmarshalJSON(b []byte) error {
	type plain billingContact
	var p plain
	extra, err := unmarshalKeeping(b, &p)
	p.Extra = extra
	*v = billingContact(p)
	return err
}

func (v contact) MarshalJSON() ([]byte, error) {
	type plain contact
	return marshalKeeping(plain(v), v.Extra)
}

func (v *contact) UnmarshalJSON(b []byte) error {
	type plain contact
	var p plain
	extra, err := unmarshalKeeping(b, &p)
	p.Extra = extra
	*v = contact(p)
	return err
}

func (v sla) MarshalJSON() ([]byte, error) {
	type plain sla
	return marshalKeeping(plain(v), v.Extra)
}

func (v *sla) UnmarshalJSON(b []byte) error {
	type plain sla
	var p plain
	extra, err := unmarshalKeeping(b, &p)
	p.Extra = extra
	*v = sla(p)
	return err
}

func (v customer) MarshalJSON() ([]byte, error) {
	type plain customer
	return marshalKeeping(plain(v), v.Extra)
}

func (v *customer) UnmarshalJSON(b []byte) error {
	type plain customer
	var p plain
	extra, err := unmarshalKeeping(b, &p)
	p.Extra = extra
	*v = customer(p)
	return err
}

func (v instance) MarshalJSON() ([]byte, error) {
	type plain instance
	return marshalKeeping(plain(v), v.Extra)
}

func (v *instance) UnmarshalJSON(b []byte) error {
	type plain instance
	var p plain
	extra, err := unmarshalKeeping(b, &p)
	p.Extra = extra
	*v = instance(p)
	return err
}

func (v subscription) MarshalJSON() ([]byte, error) {
	type plain subscription
	return marshalKeeping(plain(v), v.Extra)
}

func (v *subscription) UnmarshalJSON(b []byte) error {
	type plain subscription
	var p plain
	extra, err := unmarshalKeeping(b, &p)
	p.Extra = extra
	*v = subscription(p)
	return err
}
