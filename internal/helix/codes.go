// This file holds the one table from Helix's answers to marketplace
// outcomes (the package comment is in helix.go).

package helix

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix/helixapi"
	"github.com/banking-marketplace/webhook/internal/provisioning"
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

// Class is what a Helix call's result means: Done (the entitlement is as
// asked, whatever Helix said), or a failure of Kind (transient, refused or
// misconfigured, the one classification of internal/provisioning) with
// Code and Message for the reply.
type Class struct {
	Done       bool
	Kind       provisioning.Kind
	Code       events.ErrorCode
	Message    string
	RetryAfter time.Duration // Transient only: Helix's wait, 0 when it said none
}

// rule is one row of the table.
type rule struct {
	code      int
	what      string // the code's meaning, for the docs
	kind      provisioning.Kind
	errorCode events.ErrorCode
	message   string // for the marketplace reply; the code is appended
}

// done names the code that means "already as asked" for each call: a
// retried add meets its own entitlement, a retried remove finds none.
var done = map[Op]int{Add: helixapi.CodeAlreadyEntitled, Remove: helixapi.CodeNoEntitlement}

const (
	transient     = provisioning.Transient
	refused       = provisioning.Refused
	misconfigured = provisioning.Misconfigured
)

// codes is the one table from Helix codes to outcomes. When Helix sends
// several codes, the one listed first here decides: credentials, then
// server-side trouble, then the business codes in Helix's order.
//
// Refused: the request is wrong for this subscription, or the bank's state
// of the account or customer does not allow it (an invalid account, a
// locked or unverified customer): a refused ORDER is undone and answered
// for good, and the customer orders again once the bank has fixed it.
// Misconfigured: the service's own setup (credentials, the program's
// approval, the ids and level it sends): answered 503 and alerted, so the
// marketplace sends the event again after the fix.
var codes = []rule{
	{code: helixapi.CodeUnauthorized, what: "credentials refused", kind: misconfigured, errorCode: events.Unauthorized, message: "Helix refused the service's API key and secret (HELIX_API_KEY, HELIX_API_SECRET)"},
	{code: helixapi.CodeIPNotTrusted, what: "IP not trusted", kind: misconfigured, errorCode: events.Unauthorized, message: "Helix does not trust the service's IP address"},
	{code: helixapi.CodeRateLimited, what: "rate limit", kind: transient},
	{code: 50500, what: "server-side failure", kind: transient},
	{code: 50501, what: "server-side failure", kind: transient},
	{code: 50502, what: "server-side failure", kind: transient},
	{code: 50503, what: "server-side failure", kind: transient},
	{code: 50504, what: "server-side failure", kind: transient},
	{code: 50505, what: "server-side failure", kind: transient},
	{code: helixapi.CodeInsufficientEntitlement, what: "requesting customer lacks entitlement", kind: refused, errorCode: events.Forbidden, message: "the requesting customer may not grant access to this account"},
	{code: helixapi.CodeProgramNotAuthorized, what: "program not authorized", kind: misconfigured, errorCode: events.Forbidden, message: "the service's Helix program is not approved for entitlements; Q2 and the bank must approve it"},
	{code: helixapi.CodeNotBusinessAccount, what: "not a business account", kind: refused, errorCode: events.AccountNotFound, message: "the account is not a business account"},
	{code: helixapi.CodeAccountStatus, what: "account status forbids it", kind: refused, errorCode: events.Forbidden, message: "the account's status does not allow entitlement changes now"},
	{code: helixapi.CodeAccountLocked, what: "account locked", kind: refused, errorCode: events.Forbidden, message: "the account is locked"},
	{code: helixapi.CodeRequestingCustomerRequired, what: "requestingCustomerId required", kind: misconfigured, errorCode: events.ConfigurationError, message: "Helix wants a requestingCustomerId the service did not send"},
	{code: helixapi.CodeAccountRequired, what: "accountId required", kind: misconfigured, errorCode: events.ConfigurationError, message: "Helix wants an accountId the service did not send"},
	{code: helixapi.CodeTargetCustomerRequired, what: "targetCustomerId required", kind: misconfigured, errorCode: events.ConfigurationError, message: "Helix wants a targetCustomerId the service did not send"},
	{code: helixapi.CodeInvalidEntitlement, what: "invalid entitlement level", kind: misconfigured, errorCode: events.ConfigurationError, message: "Helix refused the entitlement level; fix the product's helix entitlement in PRODUCTS_FILE"},
	{code: helixapi.CodeInvalidAccount, what: "invalid account", kind: refused, errorCode: events.AccountNotFound, message: "Helix does not know the account"},
	{code: helixapi.CodeAlreadyEntitled, what: "already entitled", kind: refused, errorCode: events.UserAlreadyExists, message: "the customer already has an entitlement on the account"},
	{code: helixapi.CodeCustomerInvalid, what: "customer invalid", kind: refused, errorCode: events.UserNotFound, message: "Helix does not know the target or requesting customer"},
	{code: helixapi.CodeCustomerInactive, what: "customer inactive", kind: refused, errorCode: events.Forbidden, message: "the customer is inactive"},
	{code: helixapi.CodeCustomerLocked, what: "customer locked", kind: refused, errorCode: events.Forbidden, message: "the customer is locked"},
	{code: helixapi.CodeCustomerDeceased, what: "customer deceased", kind: refused, errorCode: events.Forbidden, message: "the customer is marked as deceased"},
	{code: helixapi.CodeCustomerNotVerified, what: "customer not verified", kind: refused, errorCode: events.Forbidden, message: "the customer is not verified yet"},
	{code: helixapi.CodeCustomerUnrelated, what: "customer unrelated to the business", kind: refused, errorCode: events.Forbidden, message: "the customer has no active relationship to the business that owns the account"},
	{code: helixapi.CodeCustomerNotOnboarded, what: "customer not onboarded for the level", kind: refused, errorCode: events.Forbidden, message: "the customer has not completed onboarding for this level (only RDONLY is allowed until then)"},
	{code: helixapi.CodeNoEntitlement, what: "no entitlement", kind: refused, errorCode: events.AccountNotFound, message: "the customer has no entitlement on the account"},
	{code: helixapi.CodeTargetIsBusiness, what: "target is the business customer", kind: refused, errorCode: events.Forbidden, message: "the business customer cannot be given an entitlement on its own account"},
	{code: helixapi.CodeRemoveCustomerInvalid, what: "customer invalid (remove)", kind: refused, errorCode: events.UserNotFound, message: "Helix does not know the customer"},
	{code: helixapi.CodeRemoveCustomerInactive, what: "customer inactive (remove)", kind: refused, errorCode: events.Forbidden, message: "the customer is inactive"},
	{code: helixapi.CodeRemoveCustomerStatus, what: "customer status forbids it (remove)", kind: refused, errorCode: events.Forbidden, message: "the customer's status does not allow the change now"},
	{code: helixapi.CodeRemoveCustomerLocked, what: "customer locked (remove)", kind: refused, errorCode: events.Forbidden, message: "the customer is locked"},
	{code: helixapi.CodeRemoveCustomerDeceased, what: "customer deceased (remove)", kind: refused, errorCode: events.Forbidden, message: "the customer is marked as deceased"},
}

// Classify says what err, the result of op, means. A nil err is Done. The
// table decides for every code it lists; failures without a known code
// are classed by kind: credentials (misconfigured), transient (HTTP 408,
// 429, 5xx, transport, deadline), an unreadable reply or a redirect
// (transient: the call may have done its work), a request refused before
// sending or a missing route (misconfigured), anything else refused with
// UNKNOWN_ERROR.
func Classify(op Op, err error) Class {
	if err == nil {
		return Class{Done: true}
	}
	var ae *helixapi.APIError
	isAPI := errors.As(err, &ae)
	if isAPI {
		if c, ok := done[op]; ok && ae.Has(c) {
			return Class{Done: true}
		}
		for _, r := range codes {
			if !ae.Has(r.code) {
				continue
			}
			if r.kind == transient {
				return transientClass(ae)
			}
			return Class{Kind: r.kind, Code: r.errorCode, Message: fmt.Sprintf("Helix: %s (code %d)", r.message, r.code)}
		}
	}
	switch {
	case errors.Is(err, helixapi.ErrUnauthorized):
		return Class{Kind: misconfigured, Code: events.Unauthorized, Message: "Helix refused the service's credentials (HELIX_API_KEY, HELIX_API_SECRET)"}
	case provisioning.MayPass(err, helixapi.ErrTransient):
		return transientClass(ae)
	case errors.Is(err, helixapi.ErrInvalidRequest):
		return Class{Kind: misconfigured, Code: events.ConfigurationError, Message: err.Error()} // names each bad field
	case errors.Is(err, helixapi.ErrInvalidResponse):
		c := transientClass(ae)
		c.Message = "Helix answered something the service cannot read; the call may have done its work, it is tried again"
		return c
	case isAPI && len(ae.Codes) > 0:
		return Class{Kind: refused, Code: events.UnknownError, Message: fmt.Sprintf("Helix answered code %d, which the service does not know", ae.Codes[0])}
	case isAPI && (ae.HTTPStatus == http.StatusNotFound || ae.HTTPStatus == http.StatusMethodNotAllowed):
		return Class{Kind: misconfigured, Code: events.ConfigurationError, Message: fmt.Sprintf("Helix has no such route (HTTP %d); check HELIX_BASE_URL", ae.HTTPStatus)}
	case isAPI:
		return Class{Kind: refused, Code: events.UnknownError, Message: fmt.Sprintf("Helix refused the call with HTTP %d and no code", ae.HTTPStatus)}
	}
	return Class{Kind: refused, Code: events.UnknownError, Message: "the Helix call failed; the detail is in the service's log"}
}

// transientClass classes a failure worth trying again, with Helix's wait
// when ae (which may be nil) says one.
func transientClass(ae *helixapi.APIError) Class {
	c := Class{Kind: transient, Code: events.TransportError, Message: "Helix is unavailable or busy; try again later"}
	if ae != nil {
		c.RetryAfter = ae.RetryAfter
	}
	return c
}
