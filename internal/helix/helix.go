// Package helix is the provisioning target "helix": an ORDER grants a
// customer an entitlement on a business account through
// internal/helix/helixapi, a CHANGE to an edition with another level edits
// it, and a CANCEL removes it. codes.go holds the one table from Helix's
// answers to marketplace outcomes.
//
// Helix has no lookup of entitlements, so the target cannot find its own
// earlier work; it does not need to: the entitlement is named by its ids
// alone (account, target customer), which come from the event's
// payload.configuration and the Q2 customer an earlier q2 step enrolled,
// and the calls are idempotent. A repeated add answers 195110 (already
// entitled) and a repeated remove 195119 (no entitlement); both mean done.
package helix

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix/helixapi"
	"github.com/banking-marketplace/webhook/internal/provisioning"
)

// Name is the target's name in the products file.
const Name = "helix"

// The keys of payload.configuration the target reads.
const (
	KeyAccountID            = "accountId"            // the business account (required)
	KeyRequestingCustomerID = "requestingCustomerId" // the customer granting access, who holds it (required)
	KeyTargetCustomerID     = "targetCustomerId"     // the customer receiving it; default: the q2 step's CustomerID
)

// The keys of a recorded step's Data.
const (
	dataAccount    = "account_id"
	dataRequesting = "requesting_customer_id"
	dataTarget     = "target_customer_id"
	dataLevel      = "entitlement"
)

// API is the part of the Helix API the target uses.
type API interface {
	AddEntitlement(ctx context.Context, e helixapi.Entitlement) (helixapi.Result, error)
	EditEntitlement(ctx context.Context, e helixapi.Entitlement) (helixapi.Result, error)
	RemoveEntitlement(ctx context.Context, e helixapi.Entitlement) (helixapi.Result, error)
}

// Settings are a product's Helix settings (the products file's helix
// block).
type Settings struct {
	Entitlement string            // the level granted; empty: RDONLY
	Editions    map[string]string // edition code → level, for editions that grant another one
}

// Target grants Helix entitlements.
type Target struct {
	api      API
	level    helixapi.Level
	editions map[string]helixapi.Level
}

var _ provisioning.Target = (*Target)(nil)

// New returns the helix target of one product. Levels are read with
// helixapi.ParseLevel, which would take "rdonly" for RDONLY; but the
// products file, where the service's levels come from, has already refused
// anything other than an exact level. A bad one is an error naming its
// setting.
func New(api API, s Settings) (*Target, error) {
	if api == nil {
		return nil, errors.New("helix target: the Helix client is missing")
	}
	t := &Target{api: api, level: helixapi.LevelReadOnly, editions: make(map[string]helixapi.Level, len(s.Editions))}
	if s.Entitlement != "" {
		l, err := helixapi.ParseLevel(s.Entitlement)
		if err != nil {
			return nil, fmt.Errorf("helix.entitlement: %w", err)
		}
		t.level = l
	}
	for edition, level := range s.Editions {
		l, err := helixapi.ParseLevel(level)
		if err != nil {
			return nil, fmt.Errorf("helix.editions.%s: %w", edition, err)
		}
		t.editions[edition] = l
	}
	return t, nil
}

// Name implements provisioning.Target.
func (t *Target) Name() string { return Name }

// Find cannot ask Helix (it has no lookup): when the event or the
// recorded step names the entitlement, it answers Unknown with that step,
// so that an undo with nothing recorded still removes it; else Absent.
func (t *Target) Find(_ context.Context, j *provisioning.Job) (events.Step, provisioning.Presence, error) {
	e, err := t.entitlement(j)
	if err != nil {
		return events.Step{}, provisioning.Absent, nil
	}
	return step(e), provisioning.Unknown, nil
}

// Prepare names the entitlement the ORDER asks for: its ids and level,
// from the event, or from the recorded step when the settler works
// without the event.
func (t *Target) Prepare(_ context.Context, j *provisioning.Job) (events.Step, error) {
	e, err := t.entitlement(j)
	if err != nil {
		return events.Step{}, err
	}
	return step(e), nil
}

// Provision adds the prepared entitlement. An entitlement already there
// (195110: a copy of the ORDER, a lost reply, a Redis that forgot) is
// success once it is edited to the level asked, which it may not have.
func (t *Target) Provision(ctx context.Context, j *provisioning.Job) (events.Step, error) {
	e, err := recorded(j.Current)
	if err != nil {
		return events.Step{}, err
	}
	_, err = t.api.AddEntitlement(ctx, e)
	var ae *helixapi.APIError
	if errors.As(err, &ae) && ae.Has(helixapi.CodeAlreadyEntitled) {
		_, err = t.api.EditEntitlement(ctx, e)
		if err := failure(Edit, err); err != nil {
			return events.Step{}, err
		}
		return step(e), nil
	}
	if err := failure(Add, err); err != nil {
		return events.Step{}, err
	}
	return step(e), nil
}

// Change edits the entitlement when the CHANGE's edition grants another
// level than the recorded one; anything else changes nothing in Helix.
func (t *Target) Change(ctx context.Context, j *provisioning.Job, s events.Step) (events.Step, error) {
	level := t.levelOf(j.Intent.Edition)
	if string(level) == s.Data[dataLevel] {
		return s, nil
	}
	e, err := recorded(s)
	if err != nil {
		return s, err
	}
	e.Level = level
	_, err = t.api.EditEntitlement(ctx, e)
	if err := failure(Edit, err); err != nil {
		return s, err
	}
	changed := s
	changed.Data = maps.Clone(s.Data)
	changed.Data[dataLevel] = string(level)
	return changed, nil
}

// Deprovision removes the recorded entitlement; none there (195119) is
// done.
func (t *Target) Deprovision(ctx context.Context, _ *provisioning.Job, s events.Step) error {
	e, err := recorded(s)
	if err != nil {
		return err
	}
	_, err = t.api.RemoveEntitlement(ctx, e)
	return failure(Remove, err)
}

// entitlement is the entitlement an event names: the account and the
// requesting customer from payload.configuration, the target customer
// from there too or else from the plan's q2 step, and the level of the
// order's edition. Every missing or bad id is named in one final
// CONFIGURATION_ERROR: the order itself is incomplete.
func (t *Target) entitlement(j *provisioning.Job) (helixapi.Entitlement, error) {
	if e, err := recorded(j.Current); err == nil {
		// Named before (Prepare recorded its ids): the same entitlement,
		// at the level the intent asks.
		e.Level = t.levelOf(j.Intent.Edition)
		return e, nil
	}
	if j.Event == nil {
		return helixapi.Entitlement{}, provisioning.ErrNeedsEvent
	}
	conf := j.Event.Event.Payload.Configuration
	var problems []string
	id := func(key string) int64 {
		v, ok := conf[key]
		if !ok || v == nil {
			problems = append(problems, "payload.configuration."+key+" is missing")
			return 0
		}
		n, ok := positiveID(v)
		if !ok {
			problems = append(problems, "payload.configuration."+key+" must be a whole number of 1 or more (a JSON number or a numeric string)")
		}
		return n
	}
	e := helixapi.Entitlement{AccountID: id(KeyAccountID), RequestingCustomerID: id(KeyRequestingCustomerID)}
	if v, given := conf[KeyTargetCustomerID]; given && v != nil {
		e.TargetCustomerID = id(KeyTargetCustomerID)
	} else if id, ok := j.CustomerID(); ok {
		e.TargetCustomerID = id
	} else {
		problems = append(problems, "payload.configuration."+KeyTargetCustomerID+
			" is missing and no step before helix created a customer; name the customer, or put q2 before helix in the product's targets")
	}
	if len(problems) > 0 {
		return helixapi.Entitlement{}, provisioning.Refusal(events.ConfigurationError,
			"the order cannot be entitled in Helix: "+strings.Join(problems, "; "), nil)
	}
	e.Level = t.levelOf(j.Intent.Edition)
	return e, nil
}

// levelOf is the level an edition grants: its own, else the product's.
func (t *Target) levelOf(edition string) helixapi.Level {
	if l, ok := t.editions[edition]; ok {
		return l
	}
	return t.level
}

// maxExact is the largest integer a JSON number decoded as float64 holds
// exactly; a larger id must come as a string.
const maxExact = 1 << 53

// positiveID reads a configuration value as an id of 1 or more: a JSON
// number with no fraction, or a string of decimal digits.
func positiveID(v any) (int64, bool) {
	var n int64
	switch v := v.(type) {
	case float64:
		if v != math.Trunc(v) || v < 1 || v > maxExact {
			return 0, false
		}
		n = int64(v)
	case string:
		var err error
		if n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
			return 0, false
		}
	case int:
		n = int64(v)
	case int64:
		n = v
	default:
		return 0, false
	}
	return n, n >= 1
}

// step is what the target records of an entitlement: its ids and level.
// The ID names the entitlement as Helix keys it (account, target).
func step(e helixapi.Entitlement) events.Step {
	return events.Step{Target: Name,
		ID: strconv.FormatInt(e.AccountID, 10) + ":" + strconv.FormatInt(e.TargetCustomerID, 10),
		Data: map[string]string{
			dataAccount:    strconv.FormatInt(e.AccountID, 10),
			dataRequesting: strconv.FormatInt(e.RequestingCustomerID, 10),
			dataTarget:     strconv.FormatInt(e.TargetCustomerID, 10),
			dataLevel:      string(e.Level),
		}}
}

// recorded reads the entitlement back from a recorded step.
func recorded(s events.Step) (helixapi.Entitlement, error) {
	var e helixapi.Entitlement
	for _, f := range []struct {
		key string
		to  *int64
	}{{dataAccount, &e.AccountID}, {dataRequesting, &e.RequestingCustomerID}, {dataTarget, &e.TargetCustomerID}} {
		n, err := strconv.ParseInt(s.Data[f.key], 10, 64)
		if err != nil || n < 1 {
			return e, provisioning.Refusal(events.ConfigurationError, "the recorded helix step has no "+f.key, err)
		}
		*f.to = n
	}
	e.Level = helixapi.Level(s.Data[dataLevel])
	return e, nil
}

// failure turns the result of a Helix call into the machinery's terms
// through Classify, the one table: nil when the entitlement is as asked,
// else a *provisioning.Failure.
func failure(op Op, err error) error {
	c := Classify(op, err)
	if c.Done {
		return nil
	}
	return &provisioning.Failure{Kind: c.Kind, Code: c.Code, Message: c.Message, RetryAfter: c.RetryAfter, Err: err}
}
