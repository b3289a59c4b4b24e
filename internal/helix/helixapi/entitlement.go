package helixapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// Level is a Helix entitlement level: what the target customer may do on
// the business account.
type Level string

// The levels Helix accepts.
const (
	LevelFull       Level = "FULL"   // full access
	LevelReadOnly   Level = "RDONLY" // read only
	LevelReadDebit  Level = "RDDB"   // read and debit
	LevelReadCredit Level = "RDCR"   // read and credit
	LevelDebitOnly  Level = "DBONLY" // debit only
	LevelCreditOnly Level = "CRONLY" // credit only
)

// Levels lists every level, in Helix's documented order.
var Levels = []Level{LevelFull, LevelReadOnly, LevelReadDebit, LevelReadCredit, LevelDebitOnly, LevelCreditOnly}

// Valid reports whether l is exactly one of Levels.
func (l Level) Valid() bool {
	for _, v := range Levels {
		if l == v {
			return true
		}
	}
	return false
}

// ParseLevel reads a level from configuration, ignoring case and
// surrounding spaces ("rdonly" is RDONLY). Its error matches
// ErrInvalidLevel and lists the valid levels.
func ParseLevel(s string) (Level, error) {
	l := Level(strings.ToUpper(strings.TrimSpace(s)))
	if !l.Valid() {
		return "", fmt.Errorf("%w %q: want one of %s", ErrInvalidLevel, s, levelList())
	}
	return l, nil
}

func levelList() string {
	s := make([]string, len(Levels))
	for i, l := range Levels {
		s[i] = string(l)
	}
	return strings.Join(s, ", ")
}

// Entitlement is the body of the three routes: the business account, the
// customer granting access (who must hold it), the customer receiving it,
// and the level (not sent by RemoveEntitlement).
type Entitlement struct {
	AccountID            int64 `json:"accountId"`
	RequestingCustomerID int64 `json:"requestingCustomerId"`
	TargetCustomerID     int64 `json:"targetCustomerId"`
	Level                Level `json:"entitlement"`
}

// removal is the body of removeEntitlement: the three ids only.
type removal struct {
	AccountID            int64 `json:"accountId"`
	RequestingCustomerID int64 `json:"requestingCustomerId"`
	TargetCustomerID     int64 `json:"targetCustomerId"`
}

// check names every field Helix would refuse, so that a bad configuration
// is reported before a call is spent on it.
func (e Entitlement) check(route string, withLevel bool) error {
	var bad []string
	for _, f := range []struct {
		name string
		v    int64
	}{{"accountId", e.AccountID}, {"requestingCustomerId", e.RequestingCustomerID}, {"targetCustomerId", e.TargetCustomerID}} {
		if f.v < 1 {
			bad = append(bad, fmt.Sprintf("%s must be 1 or more, got %d", f.name, f.v))
		}
	}
	if withLevel && !e.Level.Valid() {
		bad = append(bad, fmt.Sprintf("entitlement %q must be one of %s", e.Level, levelList()))
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("helix %s: %w: %s", route, ErrInvalidRequest, strings.Join(bad, "; "))
}

// Result is a successful reply: Helix's request id (quote it to Helix
// support) and the envelope's data, as sent.
type Result struct {
	RequestID string
	Data      json.RawMessage
}

// Helix error codes of the entitlement routes (the addEntitlement seed and
// the reference pages of edit and remove) and the common codes this package
// and its users act on. Codes are stable; messages are not.
const (
	CodeInsufficientEntitlement    = 195100 // the requesting customer may not grant on this account
	CodeProgramNotAuthorized       = 195101 // our program is not approved for the route
	CodeNotBusinessAccount         = 195102
	CodeAccountStatus              = 195103 // the account's status forbids entitlement changes
	CodeAccountLocked              = 195104
	CodeRequestingCustomerRequired = 195105
	CodeAccountRequired            = 195106
	CodeTargetCustomerRequired     = 195107
	CodeInvalidEntitlement         = 195108
	CodeInvalidAccount             = 195109
	CodeAlreadyEntitled            = 195110 // add: the target already has an entitlement
	CodeCustomerInvalid            = 195112 // target or requesting customer
	CodeCustomerInactive           = 195113
	CodeCustomerLocked             = 195114
	CodeCustomerDeceased           = 195115
	CodeCustomerNotVerified        = 195116
	CodeCustomerUnrelated          = 195117 // no active relationship to the business customer
	CodeCustomerNotOnboarded       = 195118 // OFAC status not verified, for a level other than RDONLY
	CodeNoEntitlement              = 195119 // remove: the target has no entitlement to the account
	CodeTargetIsBusiness           = 195122 // the target is the business customer

	// removeEntitlement's customer checks.
	CodeRemoveCustomerInvalid  = 60001
	CodeRemoveCustomerInactive = 60002
	CodeRemoveCustomerStatus   = 60003 // not in a status that allows the change
	CodeRemoveCustomerLocked   = 60004
	CodeRemoveCustomerDeceased = 60005
	CodeUnauthorized           = 50401 // common: credentials refused
	CodeIPNotTrusted           = 50403 // common: the caller's IP is not trusted
	CodeRateLimited            = 50429 // common: rate limit
	CodeServerErrorFirst       = 50500 // common: 50500–50505 are server-side failures
	CodeServerErrorLast        = 50505
)

// AddEntitlement grants e.Level on e.AccountID to e.TargetCustomerID.
// An existing entitlement is an *APIError with CodeAlreadyEntitled. It is
// not sent again after a lost reply (an ErrTransient): the caller sends
// the event again, and meets CodeAlreadyEntitled if the first one landed.
func (c *Client) AddEntitlement(ctx context.Context, e Entitlement) (Result, error) {
	const route = "addEntitlement"
	if err := e.check(route, true); err != nil {
		return Result{}, err
	}
	return c.call(ctx, route, e, false)
}

// EditEntitlement changes the level of an existing entitlement.
func (c *Client) EditEntitlement(ctx context.Context, e Entitlement) (Result, error) {
	const route = "editEntitlement"
	if err := e.check(route, true); err != nil {
		return Result{}, err
	}
	return c.call(ctx, route, e, true)
}

// RemoveEntitlement takes the target's entitlement away; e.Level is ignored
// and not sent. No entitlement is an *APIError with CodeNoEntitlement.
func (c *Client) RemoveEntitlement(ctx context.Context, e Entitlement) (Result, error) {
	const route = "removeEntitlement"
	if err := e.check(route, false); err != nil {
		return Result{}, err
	}
	return c.call(ctx, route, removal{e.AccountID, e.RequestingCustomerID, e.TargetCustomerID}, true)
}
