package qbdconnect

import (
	"errors"
	"strings"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
)

// orderEvent is an ORDER with a creator, an address and a company; edit
// changes it before use.
func orderEvent(edit func(ev *events.SubscriptionEvent)) *events.SubscriptionEvent {
	ev := &events.SubscriptionEvent{EventType: events.SubscriptionOrder, SubscriptionID: "sub-1"}
	ev.Event.Creator = &events.Person{Email: "jdoe@example.com", FirstName: "John", LastName: "Doe", Address: &events.Address{
		Street1: "123 Some St", Street2: "Suite 4", City: "Colorado Springs", State: "CO", Zip: "80909-5448", Country: "US", Phone: "555-0100",
	}}
	ev.Event.Payload.Company = &events.Company{Name: "Doe Holdings"}
	if edit != nil {
		edit(ev)
	}
	return ev
}

// TestDerivedIDs pins the derived ids: changing them would make every
// subscription's customer unfindable, and the next copy of an ORDER would
// create a second customer.
func TestDerivedIDs(t *testing.T) {
	t.Parallel()
	const sub = "65d945e7-7911-47f8-b7c1-8def1a776464"
	if got, want := GatewayCustomerID(sub), "mp-e0617eafd83bdb8edc3950b7"; got != want {
		t.Errorf("GatewayCustomerID = %q, want %q", got, want)
	}
	if got, want := SubscriptionID(sub), "mp-sub-e0617eafd83bdb8edc3950b7"; got != want {
		t.Errorf("SubscriptionID = %q, want %q", got, want)
	}
	if GatewayCustomerID("sub-a") == GatewayCustomerID("sub-b") {
		t.Error("two subscriptions share a gatewayCustomerId")
	}
}

func TestNewCustomer(t *testing.T) {
	t.Parallel()
	c, err := newCustomer(orderEvent(nil), "sub-1")
	if err != nil {
		t.Fatal(err)
	}
	a := c.Address
	switch {
	case c.GatewayCustomerID != GatewayCustomerID("sub-1") || c.SubscriptionID != SubscriptionID("sub-1"):
		t.Errorf("ids %q, %q", c.GatewayCustomerID, c.SubscriptionID)
	case c.Name != "Doe Holdings":
		t.Errorf("name %q, want the company's", c.Name)
	case a == nil || a.Street1 != "123 Some St" || a.Street2 != "Suite 4" || a.City != "Colorado Springs" || a.State != "CO" || a.PostalCode != "80909-5448":
		t.Errorf("address %+v", a)
	case string(a.Extra["country"]) != `"US"`:
		t.Errorf("address extra %s", a.Extra)
	case c.PrimaryBillingContact.FirstName != "John" || c.PrimaryBillingContact.LastName != "Doe" ||
		c.PrimaryBillingContact.Email != "jdoe@example.com" || c.PrimaryBillingContact.Phone != "555-0100":
		t.Errorf("billing contact %+v", c.PrimaryBillingContact)
	}

	c, err = newCustomer(orderEvent(func(ev *events.SubscriptionEvent) { ev.Event.Payload.Company = nil }), "sub-1")
	if err != nil || c.Name != "John Doe" {
		t.Errorf("without a company: name %q, %v; want the creator's full name", c.Name, err)
	}
}

func TestNewCustomerState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		state, country, want string
	}{
		{"CO", "US", "CO"},
		{"co", "", "CO"},
		{"Colorado", "US", "CO"},
		{"  new   YORK ", "USA", "NY"},
		{"Washington, D.C.", "United States", "DC"},
		{"Puerto Rico", "", "PR"},
		{"ON", "CA", "ON"},         // two letters stand as given, whatever the country
		{"Ontario", "CA", ""},      // not a US state
		{"Georgia", "GE", ""},      // a US name, but not a US address
		{"Nowhere Land", "US", ""}, // no such state
	}
	for _, tt := range tests {
		t.Run(tt.state+"/"+tt.country, func(t *testing.T) {
			t.Parallel()
			c, err := newCustomer(orderEvent(func(ev *events.SubscriptionEvent) {
				ev.Event.Creator.Address.State, ev.Event.Creator.Address.Country = tt.state, tt.country
			}), "sub-1")
			if tt.want != "" {
				if err != nil || c.Address.State != tt.want {
					t.Fatalf("state = %q, %v; want %q", c.Address.State, err, tt.want)
				}
				return
			}
			f := wantRefusal(t, err, events.InvalidResponse, "event.creator.address.state")
			if strings.Contains(f.Message, strings.TrimSpace(tt.state)) {
				t.Errorf("the message shows the value: %q", f.Message)
			}
		})
	}
}

func TestNewCustomerRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		edit   func(ev *events.SubscriptionEvent)
		code   events.ErrorCode
		fields []string // each must be named
	}{
		{"no creator", func(ev *events.SubscriptionEvent) { ev.Event.Creator = nil },
			events.UserNotFound, []string{"event.creator"}},
		{"no creator and no company", func(ev *events.SubscriptionEvent) { ev.Event.Creator, ev.Event.Payload.Company = nil, nil },
			events.UserNotFound, []string{"event.creator", "event.payload.company"}},
		{"no email", func(ev *events.SubscriptionEvent) { ev.Event.Creator.Email = " " },
			events.ConfigurationError, []string{"event.creator.email"}},
		{"no address", func(ev *events.SubscriptionEvent) { ev.Event.Creator.Address = nil },
			events.ConfigurationError, []string{"event.creator.address"}},
		{"no email and no address", func(ev *events.SubscriptionEvent) { ev.Event.Creator.Email, ev.Event.Creator.Address = "", nil },
			events.ConfigurationError, []string{"event.creator.email", "event.creator.address"}},
		{"address without street and city", func(ev *events.SubscriptionEvent) {
			ev.Event.Creator.Address.Street1, ev.Event.Creator.Address.City = "", ""
		}, events.ConfigurationError, []string{"event.creator.address.street1", "event.creator.address.city"}},
		{"no zip, bad state", func(ev *events.SubscriptionEvent) {
			ev.Event.Creator.Address.Zip, ev.Event.Creator.Address.State = "", "Atlantis"
		}, events.ConfigurationError, []string{"event.creator.address.zip", "event.creator.address.state"}},
		{"zip too long", func(ev *events.SubscriptionEvent) { ev.Event.Creator.Address.Zip = "80909-54481" },
			events.InvalidResponse, []string{"event.creator.address.zip"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := newCustomer(orderEvent(tt.edit), "sub-1")
			wantRefusal(t, err, tt.code, tt.fields...)
		})
	}
}

// wantRefusal checks that err is a final failure with code whose message
// names every field.
func wantRefusal(t *testing.T, err error, code events.ErrorCode, fields ...string) *provisioning.Failure {
	t.Helper()
	var f *provisioning.Failure
	if !errors.As(err, &f) || f.Kind != provisioning.Refused || f.Code != code {
		t.Fatalf("err = %v; want a final %s", err, code)
	}
	for _, field := range fields {
		if !strings.Contains(f.Message, field) {
			t.Errorf("message %q does not name %s", f.Message, field)
		}
	}
	return f
}

func TestQuantity(t *testing.T) {
	t.Parallel()
	items := func(it ...events.Item) *events.Order { return &events.Order{Items: it} }
	tests := []struct {
		name     string
		order    *events.Order
		ordered  int64 // orderQuantity
		changed  int64 // changeQuantity, when ok
		changeOK bool
	}{
		{"no order", nil, 1, 0, false},
		{"no items", items(), 1, 0, false},
		{"first item", items(events.Item{Unit: "USER", Quantity: 5}, events.Item{Unit: "GIGABYTE", Quantity: 9}), 5, 5, true},
		{"the INSTANCE item", items(events.Item{Unit: "USER", Quantity: 5}, events.Item{Unit: "INSTANCE", Quantity: 2}), 2, 2, true},
		{"instance in lower case", items(events.Item{Unit: "instance", Quantity: 3}), 3, 3, true},
		{"zero", items(events.Item{Unit: "INSTANCE", Quantity: 0}), 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := orderQuantity(itemsOf(tt.order)); got != tt.ordered {
				t.Errorf("orderQuantity = %d, want %d", got, tt.ordered)
			}
			if got, ok := changeQuantity(itemsOf(tt.order)); got != tt.changed || ok != tt.changeOK {
				t.Errorf("changeQuantity = %d, %v; want %d, %v", got, ok, tt.changed, tt.changeOK)
			}
		})
	}
}

func itemsOf(o *events.Order) []events.Item {
	if o == nil {
		return nil
	}
	return o.Items
}
