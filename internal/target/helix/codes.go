// This file holds the one table from Helix's answers to marketplace
// outcomes (the package comment is in helix.go).

package helix

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helixclient"
)

// Op is the Helix call that failed: one code means different things on
// each (195110 is success for an add, 195119 for a remove).
type Op int

// The three entitlement calls.
const (
	Add    Op = iota + 1 // addEntitlement, on ORDER
	Edit                 // editEntitlement, on CHANGE
	Remove               // removeEntitlement, on CANCEL
)

func (o Op) String() string {
	switch o {
	case Add:
		return "add"
	case Edit:
		return "edit"
	case Remove:
		return "remove"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Class is what a Helix call's result means for the delivery. Exactly one
// of three holds: Done (the entitlement is as asked, whatever Helix said),
// Transient (nothing was decided: try again later, after RetryAfter when
// Helix said), or a failure with Code and Message for the reply, stored
// and replayed to later copies only when Final.
type Class struct {
	Done       bool
	Transient  bool
	Code       events.ErrorCode
	Final      bool
	Message    string
	RetryAfter time.Duration // Transient only: Helix's wait, 0 when it said none
}

// rule is one row of the table.
type rule struct {
	code      int
	what      string // the code's meaning, for the README
	transient bool
	errorCode events.ErrorCode
	final     bool
	message   string // for the marketplace reply; the code is appended
}

// done names the code that means "already as asked" for each call: a
// retried add meets its own entitlement, a retried remove finds none.
var done = map[Op]int{Add: helixclient.CodeAlreadyEntitled, Remove: helixclient.CodeNoEntitlement}

// codes is the one table from Helix codes to outcomes. When Helix sends
// several codes, the one listed first here decides: credentials, then
// server-side trouble, then the business codes in Helix's order.
//
// Final: the request itself is wrong or the fact will not change (an
// invalid account or customer, not a business account, deceased, no
// relationship, the business entitling itself): a copy of the delivery
// gets the same answer. Not final: a state the bank changes without the
// event changing (a lock, an account or customer status, verification,
// onboarding) or the service's own setup (credentials, the program's
// approval, the configured ids and level): answered, not stored, so a
// copy sent after the fix is processed again.
var codes = []rule{
	{code: helixclient.CodeUnauthorized, what: "credentials refused", errorCode: events.Unauthorized, message: "Helix refused the service's API key and secret (HELIX_API_KEY, HELIX_API_SECRET)"},
	{code: helixclient.CodeIPNotTrusted, what: "IP not trusted", errorCode: events.Unauthorized, message: "Helix does not trust the service's IP address"},
	{code: helixclient.CodeRateLimited, what: "rate limit", transient: true},
	{code: 50500, what: "server-side failure", transient: true},
	{code: 50501, what: "server-side failure", transient: true},
	{code: 50502, what: "server-side failure", transient: true},
	{code: 50503, what: "server-side failure", transient: true},
	{code: 50504, what: "server-side failure", transient: true},
	{code: 50505, what: "server-side failure", transient: true},
	{code: helixclient.CodeInsufficientEntitlement, what: "requesting customer lacks entitlement", errorCode: events.Forbidden, final: true, message: "the requesting customer may not grant access to this account"},
	{code: helixclient.CodeProgramNotAuthorized, what: "program not authorized", errorCode: events.Forbidden, message: "the service's Helix program is not approved for entitlements; Q2 and the bank must approve it"},
	{code: helixclient.CodeNotBusinessAccount, what: "not a business account", errorCode: events.AccountNotFound, final: true, message: "the account is not a business account"},
	{code: helixclient.CodeAccountStatus, what: "account status forbids it", errorCode: events.Forbidden, message: "the account's status does not allow entitlement changes now"},
	// Locked is final on purpose, though the bank may lift it: the
	// marketplace takes a failed ORDER as failed, so an ORDER refused here
	// must not leave the Q2 user of an earlier step behind (the plan undoes
	// it only after a final failure).
	{code: helixclient.CodeAccountLocked, what: "account locked", errorCode: events.Forbidden, final: true, message: "the account is locked"},
	{code: helixclient.CodeRequestingCustomerRequired, what: "requestingCustomerId required", errorCode: events.ConfigurationError, message: "Helix wants a requestingCustomerId; set it in the subscription's configuration"},
	{code: helixclient.CodeAccountRequired, what: "accountId required", errorCode: events.ConfigurationError, message: "Helix wants an accountId; set it in the subscription's configuration"},
	{code: helixclient.CodeTargetCustomerRequired, what: "targetCustomerId required", errorCode: events.ConfigurationError, message: "Helix wants a targetCustomerId; set it in the subscription's configuration"},
	{code: helixclient.CodeInvalidEntitlement, what: "invalid entitlement level", errorCode: events.ConfigurationError, message: "Helix refused the entitlement level; fix the product's helix entitlement"},
	{code: helixclient.CodeInvalidAccount, what: "invalid account", errorCode: events.AccountNotFound, final: true, message: "Helix does not know the account"},
	{code: helixclient.CodeAlreadyEntitled, what: "already entitled", errorCode: events.UserAlreadyExists, final: true, message: "the customer already has an entitlement on the account"},
	{code: helixclient.CodeCustomerInvalid, what: "customer invalid", errorCode: events.UserNotFound, final: true, message: "Helix does not know the target or requesting customer"},
	{code: helixclient.CodeCustomerInactive, what: "customer inactive", errorCode: events.Forbidden, message: "the customer is inactive"},
	{code: helixclient.CodeCustomerLocked, what: "customer locked", errorCode: events.Forbidden, message: "the customer is locked"},
	{code: helixclient.CodeCustomerDeceased, what: "customer deceased", errorCode: events.Forbidden, final: true, message: "the customer is marked as deceased"},
	{code: helixclient.CodeCustomerNotVerified, what: "customer not verified", errorCode: events.Forbidden, message: "the customer is not verified yet"},
	{code: helixclient.CodeCustomerUnrelated, what: "customer unrelated to the business", errorCode: events.Forbidden, final: true, message: "the customer has no active relationship to the business that owns the account"},
	{code: helixclient.CodeCustomerNotOnboarded, what: "customer not onboarded for the level", errorCode: events.Forbidden, message: "the customer has not completed onboarding for this level (only RDONLY is allowed until then)"},
	{code: helixclient.CodeNoEntitlement, what: "no entitlement", errorCode: events.AccountNotFound, final: true, message: "the customer has no entitlement on the account"},
	{code: helixclient.CodeTargetIsBusiness, what: "target is the business customer", errorCode: events.Forbidden, final: true, message: "the business customer cannot be given an entitlement on its own account"},
	{code: helixclient.CodeRemoveCustomerInvalid, what: "customer invalid (remove)", errorCode: events.UserNotFound, final: true, message: "Helix does not know the customer"},
	{code: helixclient.CodeRemoveCustomerInactive, what: "customer inactive (remove)", errorCode: events.Forbidden, message: "the customer is inactive"},
	{code: helixclient.CodeRemoveCustomerStatus, what: "customer status forbids it (remove)", errorCode: events.Forbidden, message: "the customer's status does not allow the change now"},
	{code: helixclient.CodeRemoveCustomerLocked, what: "customer locked (remove)", errorCode: events.Forbidden, message: "the customer is locked"},
	{code: helixclient.CodeRemoveCustomerDeceased, what: "customer deceased (remove)", errorCode: events.Forbidden, final: true, message: "the customer is marked as deceased"},
}

// Classify says what err, the result of op, means for the delivery. A nil
// err is Done. The table decides for every code it lists; failures without
// a known code are classed by kind: credentials (UNAUTHORIZED), transient
// (HTTP 408, 429, 5xx, transport, deadline), a request refused before
// sending (CONFIGURATION_ERROR), an unreadable reply (INVALID_RESPONSE), a
// missing route (CONFIGURATION_ERROR), anything else UNKNOWN_ERROR. Only
// the table's final rows are Final.
func Classify(op Op, err error) Class {
	if err == nil {
		return Class{Done: true}
	}
	var ae *helixclient.APIError
	isAPI := errors.As(err, &ae)
	if isAPI {
		if c, ok := done[op]; ok && ae.Has(c) {
			return Class{Done: true}
		}
		for _, r := range codes {
			if !ae.Has(r.code) {
				continue
			}
			if r.transient {
				return transient(ae)
			}
			return Class{Code: r.errorCode, Final: r.final, Message: fmt.Sprintf("Helix: %s (code %d)", r.message, r.code)}
		}
	}
	switch {
	case errors.Is(err, helixclient.ErrUnauthorized):
		return Class{Code: events.Unauthorized, Message: "Helix refused the service's credentials (HELIX_API_KEY, HELIX_API_SECRET)"}
	case errors.Is(err, helixclient.ErrTransient) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return transient(ae)
	case errors.Is(err, helixclient.ErrInvalidRequest):
		return Class{Code: events.ConfigurationError, Message: err.Error()} // names each bad field
	case errors.Is(err, helixclient.ErrInvalidResponse):
		return Class{Code: events.InvalidResponse, Message: "Helix answered something the service cannot read"}
	case isAPI && len(ae.Codes) > 0:
		return Class{Code: events.UnknownError, Message: fmt.Sprintf("Helix answered code %d, which the service does not know", ae.Codes[0])}
	case isAPI && (ae.HTTPStatus == http.StatusNotFound || ae.HTTPStatus == http.StatusMethodNotAllowed):
		return Class{Code: events.ConfigurationError, Message: fmt.Sprintf("Helix has no such route (HTTP %d); check HELIX_BASE_URL", ae.HTTPStatus)}
	case isAPI:
		return Class{Code: events.UnknownError, Message: fmt.Sprintf("Helix refused the call with HTTP %d and no code", ae.HTTPStatus)}
	}
	return Class{Code: events.UnknownError, Message: "the Helix call failed; the detail is in the service's log"}
}

// transient classes a failure worth trying again, with Helix's wait when
// ae (which may be nil) says one.
func transient(ae *helixclient.APIError) Class {
	c := Class{Transient: true, Code: events.TransportError, Message: "Helix is unavailable or busy; try again later"}
	if ae != nil {
		c.RetryAfter = ae.RetryAfter
	}
	return c
}
