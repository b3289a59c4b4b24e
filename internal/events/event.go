// Package events is the domain of the service: the SubscriptionEvent a
// marketplace sends, its decoding and validation, the error codes and reply
// documents of q2_marketplace, the outcome of processing one delivery, and the
// account a subscription is provisioned as.
//
// It imports nothing of ours and no framework: every other package may stand
// on it.
package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
)

// EventType names what a subscription event asks for.
type EventType string

// The event types the Q2 marketplace sends, and those AppDirect sends
// when it calls the service directly.
const (
	SubscriptionOrder  EventType = "SUBSCRIPTION_ORDER"
	SubscriptionChange EventType = "SUBSCRIPTION_CHANGE"
	SubscriptionCancel EventType = "SUBSCRIPTION_CANCEL"
	// SubscriptionNotice carries payload.notice.type (see the Notice*
	// constants).
	SubscriptionNotice EventType = "SUBSCRIPTION_NOTICE"
	// UserAssignment and UserUnassignment carry payload.user: one more
	// user of the subscription's account, or one fewer.
	UserAssignment   EventType = "USER_ASSIGNMENT"
	UserUnassignment EventType = "USER_UNASSIGNMENT"
)

// The notices of a SUBSCRIPTION_NOTICE.
const (
	NoticeDeactivated     = "DEACTIVATED"      // suspend: provisioned, not to be used
	NoticeReactivated     = "REACTIVATED"      // usable again
	NoticeClosed          = "CLOSED"           // cancel
	NoticeUpcomingInvoice = "UPCOMING_INVOICE" // acknowledged, nothing to do
)

// Supported reports whether the service knows how to process t.
func (t EventType) Supported() bool {
	switch t {
	case SubscriptionOrder, SubscriptionChange, SubscriptionCancel:
		return true
	}
	return false
}

// FlagStateless marks an AppDirect event that must be acknowledged without
// side effects (AppDirect's integration "ping").
const FlagStateless = "STATELESS"

// SubscriptionEvent is the document the Q2 marketplace posts to an extension
// URL (q2_marketplace.models.marketplace.SubscriptionEvent). Event is the raw
// AppDirect event it wraps.
type SubscriptionEvent struct {
	Event             Event      `json:"event"`
	EventType         EventType  `json:"event_type" validate:"required,max=64"`
	UserID            int64      `json:"user_id" validate:"gte=0"`
	SubscriptionID    string     `json:"subscription_id" validate:"required,max=128,ident"`
	SSOUserID         string     `json:"sso_user_id" validate:"max=256"`
	ProductIdentifier string     `json:"product_identifier" validate:"max=256"`
	ExtensionURL      string     `json:"extension_url" validate:"max=2048"`
	ExtensionName     string     `json:"extension_name,omitempty" validate:"max=256"`
	Created           *Timestamp `json:"created,omitempty"`
	Processed         *Timestamp `json:"processed,omitempty"`
	FIName            string     `json:"fi_name,omitempty" validate:"max=256"`

	// AccountIsSubscription: the subscription's accountIdentifier is its
	// own id, not a target's (AppDirect's direct events: that id is derived
	// from the ORDER's marketplace and event token, so no one else can guess
	// it, and it leads back to the subscription even after Redis forgot).
	// Not part of the delivery's JSON.
	AccountIsSubscription bool `json:"-"`
}

// Stateless reports whether the event asks to be acknowledged only.
func (e *SubscriptionEvent) Stateless() bool { return e.Event.Flag == FlagStateless }

// AccountIdentifier is the account the event names, if any.
func (e *SubscriptionEvent) AccountIdentifier() string {
	if a := e.Event.Payload.Account; a != nil {
		return a.AccountIdentifier
	}
	return ""
}

// Event is an AppDirect subscription event. Unknown fields are ignored.
type Event struct {
	Type        EventType    `json:"type" validate:"max=64"`
	Flag        string       `json:"flag,omitempty" validate:"max=64"`
	Marketplace *Marketplace `json:"marketplace,omitempty"`
	Creator     *Person      `json:"creator,omitempty"`
	Payload     Payload      `json:"payload"`
}

// Marketplace identifies the AppDirect marketplace an event comes from.
type Marketplace struct {
	Partner string `json:"partner"`
	BaseURL string `json:"baseUrl"`
}

// Person is an AppDirect user: the creator of an event, or the user of a
// user assignment.
type Person struct {
	UUID      string   `json:"uuid" validate:"max=256"`
	OpenID    string   `json:"openId"`
	Email     string   `json:"email" validate:"max=254"`
	FirstName string   `json:"firstName" validate:"max=256"`
	LastName  string   `json:"lastName" validate:"max=256"`
	Language  string   `json:"language"`
	Locale    string   `json:"locale"`
	Address   *Address `json:"address,omitempty"`
}

// Address is an AppDirect postal address; every field may be empty.
type Address struct {
	Salutation     string `json:"salutation"`
	FirstName      string `json:"firstName"`
	LastName       string `json:"lastName"`
	FullName       string `json:"fullName"`
	CompanyName    string `json:"companyName"`
	Phone          string `json:"phone"`
	PhoneExtension string `json:"phoneExtension"`
	Street1        string `json:"street1"`
	Street2        string `json:"street2"`
	City           string `json:"city"`
	State          string `json:"state"`
	Zip            string `json:"zip"`
	Country        string `json:"country"`
}

// Payload is the body of an AppDirect event; which parts are set depends on
// the event type.
type Payload struct {
	User          *Person       `json:"user,omitempty"`
	Company       *Company      `json:"company,omitempty"`
	Account       *AccountRef   `json:"account,omitempty"`
	Order         *Order        `json:"order,omitempty"`
	Notice        *Notice       `json:"notice,omitempty"`
	Configuration Configuration `json:"configuration,omitempty"`
}

// Configuration is an event's payload.configuration: string keys to
// values. AppDirect sends `{}` or, in some notices, `[]` when there is
// none: both read as empty.
type Configuration map[string]any

// UnmarshalJSON reads an object, or an empty array as no configuration.
func (c *Configuration) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); bytes.Equal(t, []byte("null")) || len(t) > 0 && t[0] == '[' {
		var list []any
		if err := json.Unmarshal(t, &list); err != nil || len(list) > 0 {
			return &json.UnmarshalTypeError{Value: "array", Type: reflect.TypeFor[Configuration](), Field: ""}
		}
		*c = nil
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*c = m
	return nil
}

// Company is the purchasing company of an order.
type Company struct {
	UUID        string `json:"uuid"`
	Name        string `json:"name" validate:"max=256"`
	Email       string `json:"email"`
	PhoneNumber string `json:"phoneNumber"`
	Website     string `json:"website"`
	Country     string `json:"country"`
}

// AccountRef is the account an event refers to, as the marketplace knows it.
type AccountRef struct {
	AccountIdentifier string `json:"accountIdentifier" validate:"max=128"`
	Status            string `json:"status"`
}

// Order is what was bought: an edition and quantities of units.
type Order struct {
	EditionCode     string `json:"editionCode" validate:"max=128"`
	PricingDuration string `json:"pricingDuration" validate:"max=64"`
	Items           []Item `json:"items" validate:"max=100,dive"`
}

// Item is a quantity of one unit (USER, GIGABYTE, ...).
type Item struct {
	Unit     string   `json:"unit" validate:"max=64"`
	Quantity Quantity `json:"quantity" validate:"gte=0"`
}

// Notice is the body of an AppDirect SUBSCRIPTION_NOTICE.
type Notice struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Quantity is a whole number that AppDirect sends as a JSON number or as a
// string ("10").
type Quantity int64

// String renders q in decimal.
func (q Quantity) String() string { return strconv.FormatInt(int64(q), 10) }
