package qbdconnect

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
)

// What the seed limits in a customer's address.
const (
	maxState      = 2
	maxPostalCode = 10
)

// newCustomer builds the QBD Connect customer of an ORDER: named after the
// company (else the creator), at the creator's address, with the creator
// as primary billing contact. It checks first what QBD Connect requires,
// so that nothing is created for an order that cannot be provisioned:
//
//   - no creator (nobody to bill): USER_NOT_FOUND, as the q2 target answers
//     an order that names nobody;
//   - a required field missing (email, address, street1, city, state,
//     zip): CONFIGURATION_ERROR, because the marketplace listing must be
//     set up to collect it;
//   - a field present but unusable (a state that is neither two letters
//     nor a US state name, a zip over 10 characters): INVALID_RESPONSE, the
//     code QBD Connect's own 400 gets.
//
// Every failure is final and names every field concerned, never its value.
func newCustomer(ev *events.SubscriptionEvent, subscription string) (qbdapi.Customer, error) {
	creator, company := ev.Event.Creator, ev.Event.Payload.Company
	if creator == nil {
		msg := "the order has no event.creator: QBD Connect needs the person who ordered as the customer's billing contact"
		if company == nil {
			msg = "the order names no one: event.creator and event.payload.company are both missing"
		}
		return qbdapi.Customer{}, provisioning.Refusal(events.UserNotFound, msg, nil)
	}
	var missing, invalid []string
	email := strings.TrimSpace(creator.Email)
	if email == "" {
		missing = append(missing, "event.creator.email")
	}
	addr, aMissing, aInvalid := newAddress(creator.Address)
	missing, invalid = append(missing, aMissing...), append(invalid, aInvalid...)
	switch {
	case len(missing) > 0:
		msg := strings.Join(missing, ", ") + " required by QBD Connect " + isAre(len(missing)) + " missing from the order"
		if len(invalid) > 0 {
			msg += "; " + strings.Join(invalid, "; ")
		}
		return qbdapi.Customer{}, provisioning.Refusal(events.ConfigurationError, msg, nil)
	case len(invalid) > 0:
		return qbdapi.Customer{}, provisioning.Refusal(events.InvalidResponse, strings.Join(invalid, "; "), nil)
	}
	// creator.Address is set: a missing one was refused above.
	first, last := strings.TrimSpace(creator.FirstName), strings.TrimSpace(creator.LastName)
	name := strings.TrimSpace(strings.Join([]string{first, last}, " "))
	if company != nil && strings.TrimSpace(company.Name) != "" {
		name = strings.TrimSpace(company.Name)
	}
	if name == "" {
		name = strings.TrimSpace(creator.Address.FullName)
	}
	return qbdapi.Customer{
		GatewayCustomerID: GatewayCustomerID(subscription),
		SubscriptionID:    SubscriptionID(subscription),
		Name:              name,
		Address:           addr,
		PrimaryBillingContact: qbdapi.BillingContact{
			FirstName: first, LastName: last, Email: email, Phone: strings.TrimSpace(creator.Address.Phone),
		},
	}, nil
}

// newAddress is the customer's address from the creator's: zip becomes
// postalCode, a state name becomes its two-letter code, and the country
// (which the seed does not name, but allows) is kept as "country".
func newAddress(a *events.Address) (addr *qbdapi.Address, missing, invalid []string) {
	const field = "event.creator.address"
	if a == nil {
		return nil, []string{field}, nil
	}
	addr = &qbdapi.Address{
		Street1:    strings.TrimSpace(a.Street1),
		Street2:    strings.TrimSpace(a.Street2),
		City:       strings.TrimSpace(a.City),
		PostalCode: strings.TrimSpace(a.Zip),
	}
	for _, f := range []struct{ name, value string }{
		{"street1", addr.Street1}, {"city", addr.City}, {"state", strings.TrimSpace(a.State)}, {"zip", addr.PostalCode},
	} {
		if f.value == "" {
			missing = append(missing, field+"."+f.name)
		}
	}
	if state := strings.TrimSpace(a.State); state != "" {
		code, ok := stateCode(state, a.Country)
		if !ok {
			invalid = append(invalid, fmt.Sprintf("%s.state must be a two-letter code or a US state name (got %d characters)", field, len([]rune(state))))
		}
		addr.State = code
	}
	if n := len([]rune(addr.PostalCode)); n > maxPostalCode {
		invalid = append(invalid, fmt.Sprintf("%s.zip must be at most %d characters for QBD Connect (got %d)", field, maxPostalCode, n))
	}
	if c := strings.TrimSpace(a.Country); c != "" {
		country, _ := json.Marshal(c) // a string always encodes
		addr.Extra = map[string]json.RawMessage{"country": country}
	}
	return addr, missing, invalid
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// stateCode is the seed's two-letter state of an address: a state of at
// most two letters as given (upper-cased), else the code of a US state,
// district or territory named in full (any case and spacing), when the
// country is the US or not given.
func stateCode(state, country string) (string, bool) {
	if len([]rune(state)) <= maxState {
		return strings.ToUpper(state), true
	}
	if !usCountry(country) {
		return "", false
	}
	key := strings.ToLower(strings.Join(strings.Fields(strings.NewReplacer(".", "", ",", " ").Replace(state)), " "))
	code, ok := usStates[key]
	return code, ok
}

func usCountry(country string) bool {
	switch strings.ToLower(strings.ReplaceAll(strings.TrimSpace(country), ".", "")) {
	case "", "us", "usa", "united states", "united states of america":
		return true
	}
	return false
}

// usStates maps the lower-cased names of the US states, the District of
// Columbia and the inhabited territories to their USPS codes.
var usStates = map[string]string{
	"alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
	"colorado": "CO", "connecticut": "CT", "delaware": "DE", "florida": "FL", "georgia": "GA",
	"hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA",
	"kansas": "KS", "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD",
	"massachusetts": "MA", "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO",
	"montana": "MT", "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
	"new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH",
	"oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
	"south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT",
	"virginia": "VA", "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY",
	"district of columbia": "DC", "washington dc": "DC",
	"american samoa": "AS", "guam": "GU", "northern mariana islands": "MP", "puerto rico": "PR",
	"us virgin islands": "VI", "united states virgin islands": "VI", "virgin islands": "VI",
}

// orderQuantity is the quantity an ORDER buys: the item of unit INSTANCE
// (QBD Connect's subscription quantity counts instances), else the first
// item, else 1.
func orderQuantity(items []events.Item) int64 {
	if q, ok := changeQuantity(items); ok {
		return q
	}
	return 1
}

// changeQuantity is the quantity an order names, as orderQuantity, and
// false when it has no items (a CHANGE of the edition alone).
func changeQuantity(items []events.Item) (int64, bool) {
	if len(items) == 0 {
		return 0, false
	}
	for _, it := range items {
		if strings.EqualFold(it.Unit, "INSTANCE") {
			return int64(it.Quantity), true
		}
	}
	return int64(items[0].Quantity), true
}
