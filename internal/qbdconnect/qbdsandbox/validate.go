package qbdsandbox

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// The seed's limits.
const (
	maxState         = 2
	maxPostalCode    = 10
	minFrequency     = 1
	defaultFrequency = 60
)

// statuses are Stripe's subscription statuses: the seed names none, and
// its subscriptions are Stripe's.
var statuses = []string{"active", "canceled", "incomplete", "incomplete_expired", "past_due", "paused", "trialing", "unpaid"}

// problems collects what is wrong with a body, each naming its field.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p *problems) required(field, value string) {
	if value == "" {
		p.add("%s is required", field)
	}
}

func (p *problems) maxLen(field, value string, n int) {
	if c := utf8.RuneCountInString(value); c > n {
		p.add("%s must be at most %d characters (got %d)", field, n, c)
	}
}

func (p *problems) customer(c *customer) {
	if a := c.Address; a != nil {
		p.required("address.street1", a.Street1)
		p.required("address.city", a.City)
		p.required("address.state", a.State)
		p.maxLen("address.state", a.State, maxState)
		p.required("address.postalCode", a.PostalCode)
		p.maxLen("address.postalCode", a.PostalCode, maxPostalCode)
	}
	if c.PrimaryBillingContact == nil {
		p.add("primaryBillingContact is required (an object with at least an email)")
	} else {
		p.required("primaryBillingContact.email", c.PrimaryBillingContact.Email)
	}
	if len(c.QBDInstances) > 0 {
		p.add("qbdInstances cannot be sent: create each instance with POST /instances")
	}
}

// instance checks everything but whether the customer exists.
func (p *problems) instance(in *instance) {
	p.required("name", in.Name)
	p.required("customerId", in.CustomerID)
	if in.Contact == nil {
		p.add("contact is required (an object with firstName, lastName and email)")
	} else {
		p.required("contact.firstName", in.Contact.FirstName)
		p.required("contact.lastName", in.Contact.LastName)
		p.required("contact.email", in.Contact.Email)
	}
	p.frequency(in.FrequencyInMinutes)
	p.sla(in.SLA)
}

func (p *problems) frequency(f *int64) {
	if f != nil && *f < minFrequency {
		p.add("frequencyInMinutes must be at least %d (got %d)", minFrequency, *f)
	}
}

func (p *problems) sla(s *sla) {
	if s == nil {
		return
	}
	if s.SupportHours == nil {
		p.add("sla.supportHours is required")
	}
	if s.TransactionLimit == nil {
		p.add("sla.transactionLimit is required")
	}
	if s.DefaultHourlyRate == nil {
		p.add("sla.defaultHourlyRate is required")
	}
}

// subscription checks everything but whether its customer and product
// exist.
func (p *problems) subscription(s *subscription) {
	if s.Quantity < 0 {
		p.add("quantity must be at least 0 (got %d)", s.Quantity)
	}
	if !slices.Contains(statuses, s.Status) {
		p.add("status %q is not one of %v", s.Status, statuses)
	}
	p.sla(s.SLA)
}
