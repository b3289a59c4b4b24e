// Package subscriptions carries out subscription events in Q2: an ORDER
// enrolls a Q2 user and records the account, a CHANGE records the new edition
// and quantities, a CANCEL deletes the Q2 user and marks the account
// cancelled. Each event runs under a per-subscription lock and returns a
// final outcome (stored and replayed to later copies) or a transient one
// (nothing final happened; a later copy is processed again).
//
// Exactly-once enrollment rests on the logon name: it is derived from the
// subscription, and the Q2 user carries a marker naming the subscription in
// UserInfo. A retry after a lost reply, a crash or an empty Redis finds that
// logon, recognises the user as its own, and completes without a second
// enrollment; Q2's unique logon names stop two racing enrollments.
package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2client"
	"github.com/banking-marketplace/webhook/internal/store"
)

// Accounts records provisioned subscriptions and serialises the events of
// one subscription.
type Accounts interface {
	Account(ctx context.Context, subscriptionID string) (events.Account, error)
	AccountByIdentifier(ctx context.Context, accountIdentifier string) (events.Account, error)
	SaveAccount(ctx context.Context, a events.Account) error
	Lock(ctx context.Context, name string, lease, wait time.Duration) (unlock func(), err error)
}

var _ Accounts = (*store.Redis)(nil)

// Q2 is the part of the Q2 API the service uses.
type Q2 interface {
	Enroll(ctx context.Context, e q2client.Enrollment) error
	LookupUser(ctx context.Context, q q2client.UserQuery) ([]q2client.User, error)
	DeleteUser(ctx context.Context, userID int64) error
	DeleteCustomer(ctx context.Context, customerID int64) error
}

var _ Q2 = (*q2client.Client)(nil)

// CancelDeletes names what a CANCEL deletes in Q2 (CANCEL_DELETES).
type CancelDeletes string

// What a CANCEL deletes.
const (
	DeleteUser     CancelDeletes = "user"     // the user and its logon (default)
	DeleteCustomer CancelDeletes = "customer" // the customer, with its users and logons
)

// Config tunes the service. Zero values take the defaults.
type Config struct {
	CancelDeletes CancelDeletes
	LockLease     time.Duration // how long a subscription lock holds; longer than PROCESS_TIMEOUT
	LockWait      time.Duration // how long an event waits for another event of its subscription
}

// Service processes subscription events.
type Service struct {
	accounts Accounts
	q2       Q2
	cfg      Config
	log      *zap.Logger
	now      func() time.Time
}

// New returns a Service.
func New(accounts Accounts, q2 Q2, cfg Config, log *zap.Logger) *Service {
	if cfg.CancelDeletes == "" {
		cfg.CancelDeletes = DeleteUser
	}
	if cfg.LockLease <= 0 {
		cfg.LockLease = 6 * time.Second
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = 1500 * time.Millisecond
	}
	return &Service{accounts: accounts, q2: q2, cfg: cfg, log: log, now: time.Now}
}

// Process carries out ev. It never panics on a valid event and never returns
// a final success that is not recorded.
func (s *Service) Process(ctx context.Context, ev *events.SubscriptionEvent) events.Outcome {
	if ev.Stateless() {
		return events.Provisioned(ev.AccountIdentifier())
	}
	if !ev.EventType.Supported() {
		return events.Refused(events.ConfigurationError, fmt.Sprintf(
			"event_type %q is not supported; this extension handles SUBSCRIPTION_ORDER, SUBSCRIPTION_CHANGE and SUBSCRIPTION_CANCEL", ev.EventType))
	}
	q := &countingQ2{Q2: s.q2}
	out := s.locked(ctx, ev, q)
	out.Q2Calls = int(q.calls.Load())
	return out
}

// locked runs ev under its subscription's lock.
func (s *Service) locked(ctx context.Context, ev *events.SubscriptionEvent, q Q2) events.Outcome {
	subscription := s.target(ctx, ev)
	unlock, err := s.accounts.Lock(ctx, "subscription:"+subscription, s.cfg.LockLease, s.cfg.LockWait)
	switch {
	case errors.Is(err, store.ErrBusy):
		return events.Outcome{Status: http.StatusConflict, RetryAfter: time.Second, Reply: events.Failure(events.Pending,
			"another event of this subscription is being processed; send this one again shortly")}
	case err != nil:
		return s.storeDown(err)
	}
	defer unlock()

	switch ev.EventType {
	case events.SubscriptionOrder:
		return s.order(ctx, ev, q)
	case events.SubscriptionChange:
		return s.change(ctx, ev, subscription)
	default:
		return s.cancel(ctx, ev, subscription, q)
	}
}

// target is the subscription an event is about: the one of the account its
// accountIdentifier names, when that is a known account, else its
// subscription_id. An ORDER is always about its subscription_id.
func (s *Service) target(ctx context.Context, ev *events.SubscriptionEvent) string {
	id := ev.AccountIdentifier()
	if ev.EventType == events.SubscriptionOrder || id == "" {
		return ev.SubscriptionID
	}
	if a, err := s.accounts.AccountByIdentifier(ctx, id); err == nil {
		return a.SubscriptionID
	}
	return ev.SubscriptionID
}

func (s *Service) order(ctx context.Context, ev *events.SubscriptionEvent, q Q2) events.Outcome {
	acct, err := s.accounts.Account(ctx, ev.SubscriptionID)
	switch {
	case err == nil && acct.Active():
		return events.Provisioned(acct.AccountIdentifier)
	case err == nil:
		return events.Refused(events.Forbidden, "subscription "+ev.SubscriptionID+" was cancelled; it is not provisioned again")
	case !errors.Is(err, store.ErrNotFound):
		return s.storeDown(err)
	}

	enrollment, ok := newEnrollment(ev)
	if !ok {
		return events.Refused(events.UserNotFound,
			"the order names no user to enroll: event.creator and event.payload.company are both missing")
	}
	user, out, done := s.enroll(ctx, q, enrollment, ev.SubscriptionID)
	if done {
		return out
	}
	now := s.now().UTC()
	acct = events.Account{
		SubscriptionID:    ev.SubscriptionID,
		AccountIdentifier: strconv.FormatInt(user.UserID, 10),
		UserID:            user.UserID,
		CustomerID:        user.CustomerID,
		Logon:             enrollment.LogonName,
		Status:            events.AccountActive,
		CreatedAt:         now,
		UpdatedAt:         now,
	}
	applyOrder(&acct, ev.Event.Payload.Order)
	if err := s.accounts.SaveAccount(ctx, acct); err != nil {
		return s.storeDown(err)
	}
	return events.Provisioned(acct.AccountIdentifier)
}

// enroll makes sure Q2 has the subscription's user, enrolling it unless an
// earlier attempt already did, and returns it. When done is true, out is the
// outcome to answer instead.
func (s *Service) enroll(ctx context.Context, q Q2, e q2client.Enrollment, subscription string) (user q2client.User, out events.Outcome, done bool) {
	user, found, err := s.ownUser(ctx, q, e.LogonName, e.UserInfo)
	if err != nil {
		return user, s.q2Failed(events.SubscriptionOrder, "looking up the logon", err), true
	}
	if found {
		return user, out, false // an earlier attempt enrolled it
	}
	if err := q.Enroll(ctx, e); err != nil && !errors.Is(err, q2client.ErrAlreadyExists) {
		return user, s.q2Failed(events.SubscriptionOrder, "enrolling", err), true
	}
	// Enrollment answers no ids: find the user we just made (or that a
	// racing attempt made first).
	user, found, err = s.ownUser(ctx, q, e.LogonName, e.UserInfo)
	switch {
	case err != nil:
		return user, s.q2Failed(events.SubscriptionOrder, "looking up the enrolled logon", err), true
	case !found:
		s.log.Warn("Q2 accepted an enrollment but its logon is not found yet", zap.String("subscription", subscription))
		return user, events.Unavailable("Q2 accepted the enrollment but does not show the user yet; send the order again", 5*time.Second), true
	}
	return user, out, false
}

// errForeignLogon is a logon that Q2 holds for a user that is not ours.
var errForeignLogon = errors.New("logon held by another user")

// ownUser finds the live Q2 user with logon and checks that it carries our
// marker.
func (s *Service) ownUser(ctx context.Context, q Q2, logon, marker string) (q2client.User, bool, error) {
	users, err := q.LookupUser(ctx, q2client.UserQuery{LoginName: logon})
	if errors.Is(err, q2client.ErrNotFound) || (err == nil && len(users) == 0) {
		return q2client.User{}, false, nil
	}
	if err != nil {
		return q2client.User{}, false, err
	}
	for _, u := range users {
		if u.UserInfo == marker {
			return u, true, nil
		}
	}
	return q2client.User{}, false, errForeignLogon
}

func (s *Service) change(ctx context.Context, ev *events.SubscriptionEvent, subscription string) events.Outcome {
	acct, err := s.accounts.Account(ctx, subscription)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && !acct.Active()):
		return events.Refused(events.AccountNotFound, "no active account for subscription "+ev.SubscriptionID)
	case err != nil:
		return s.storeDown(err)
	}
	applyOrder(&acct, ev.Event.Payload.Order)
	acct.UpdatedAt = s.now().UTC()
	if err := s.accounts.SaveAccount(ctx, acct); err != nil {
		return s.storeDown(err)
	}
	return events.Provisioned(acct.AccountIdentifier)
}

func (s *Service) cancel(ctx context.Context, ev *events.SubscriptionEvent, subscription string, q Q2) events.Outcome {
	acct, err := s.accounts.Account(ctx, subscription)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return events.Refused(events.AccountNotFound, "no account for subscription "+ev.SubscriptionID)
	case err != nil:
		return s.storeDown(err)
	case !acct.Active():
		return events.Provisioned(acct.AccountIdentifier) // cancelled before: cancelling again changes nothing
	}

	if s.cfg.CancelDeletes == DeleteCustomer {
		err = q.DeleteCustomer(ctx, acct.CustomerID)
	} else {
		err = q.DeleteUser(ctx, acct.UserID)
	}
	if err != nil && !errors.Is(err, q2client.ErrNotFound) { // not found: deleted already
		return s.q2Failed(events.SubscriptionCancel, "deleting the "+string(s.cfg.CancelDeletes), err)
	}
	now := s.now().UTC()
	acct.Status, acct.UpdatedAt, acct.CancelledAt = events.AccountCancelled, now, &now
	if err := s.accounts.SaveAccount(ctx, acct); err != nil {
		return s.storeDown(err)
	}
	return events.Provisioned(acct.AccountIdentifier)
}

// applyOrder records what an order bought.
func applyOrder(a *events.Account, o *events.Order) {
	if o == nil {
		return
	}
	a.Edition, a.PricingDuration = o.EditionCode, o.PricingDuration
	a.Items = append([]events.Item(nil), o.Items...)
}

func (s *Service) storeDown(err error) events.Outcome {
	s.log.Warn("account store unavailable", zap.Error(err))
	return events.Unavailable("the account store is unavailable; nothing final was recorded, send the event again", 5*time.Second)
}

// countingQ2 counts the Q2 calls of one event, for its log line.
type countingQ2 struct {
	Q2
	calls atomic.Int32
}

func (c *countingQ2) Enroll(ctx context.Context, e q2client.Enrollment) error {
	c.calls.Add(1)
	return c.Q2.Enroll(ctx, e)
}

func (c *countingQ2) LookupUser(ctx context.Context, q q2client.UserQuery) ([]q2client.User, error) {
	c.calls.Add(1)
	return c.Q2.LookupUser(ctx, q)
}

func (c *countingQ2) DeleteUser(ctx context.Context, id int64) error {
	c.calls.Add(1)
	return c.Q2.DeleteUser(ctx, id)
}

func (c *countingQ2) DeleteCustomer(ctx context.Context, id int64) error {
	c.calls.Add(1)
	return c.Q2.DeleteCustomer(ctx, id)
}
