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
// one subscription. Lock's token fences SaveAccount: a holder whose lease ran
// out gets ErrLeaseLost instead of overwriting the next holder's write.
type Accounts interface {
	Account(ctx context.Context, subscriptionID string) (events.Account, error)
	AccountByIdentifier(ctx context.Context, accountIdentifier string) (events.Account, error)
	SaveAccount(ctx context.Context, lockToken string, a events.Account) error
	Lock(ctx context.Context, subscriptionID string, lease, wait time.Duration) (token string, unlock func(), err error)
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
	q := &countingQ2{Q2: s.q2}
	out := s.locked(ctx, ev, q)
	out.Q2Calls = int(q.calls.Load())
	return out
}

// work is one event being carried out under its subscription's lock.
type work struct {
	ev           *events.SubscriptionEvent
	subscription string // the subscription the event is about (see target)
	token        string // the lock's fencing token, for SaveAccount
	q2           Q2
}

// locked runs ev under its subscription's lock. The dispatch lists every
// event type it handles; any other is refused before anything is touched.
func (s *Service) locked(ctx context.Context, ev *events.SubscriptionEvent, q Q2) events.Outcome {
	var handle func(context.Context, *work) events.Outcome
	switch ev.EventType {
	case events.SubscriptionOrder:
		handle = s.order
	case events.SubscriptionChange:
		handle = s.change
	case events.SubscriptionCancel:
		handle = s.cancel
	default:
		return events.Refused(events.ConfigurationError, fmt.Sprintf(
			"event_type %q is not supported; this extension handles SUBSCRIPTION_ORDER, SUBSCRIPTION_CHANGE and SUBSCRIPTION_CANCEL", ev.EventType))
	}
	subscription, err := s.target(ctx, ev)
	if err != nil {
		return s.storeDown(err)
	}
	token, unlock, err := s.accounts.Lock(ctx, subscription, s.cfg.LockLease, s.cfg.LockWait)
	switch {
	case errors.Is(err, store.ErrBusy):
		return events.Outcome{Status: http.StatusConflict, RetryAfter: time.Second, Reply: events.Failure(events.Pending,
			"another event of this subscription is being processed; send this one again shortly")}
	case err != nil:
		return s.storeDown(err)
	}
	defer unlock()
	return handle(ctx, &work{ev: ev, subscription: subscription, token: token, q2: q})
}

// target is the subscription an event is about: the one of the account its
// accountIdentifier names, when that is a known account, else its
// subscription_id. An ORDER is always about its subscription_id. Only "not
// found" falls back: any other store error is returned, so that a Redis
// blip is a transient 503, never a stored ACCOUNT_NOT_FOUND.
func (s *Service) target(ctx context.Context, ev *events.SubscriptionEvent) (string, error) {
	id := ev.AccountIdentifier()
	if ev.EventType == events.SubscriptionOrder || id == "" {
		return ev.SubscriptionID, nil
	}
	a, err := s.accounts.AccountByIdentifier(ctx, id)
	switch {
	case err == nil:
		return a.SubscriptionID, nil
	case errors.Is(err, store.ErrNotFound):
		return ev.SubscriptionID, nil
	}
	return "", err
}

func (s *Service) order(ctx context.Context, w *work) events.Outcome {
	ev := w.ev
	acct, err := s.accounts.Account(ctx, ev.SubscriptionID)
	switch {
	case err == nil && acct.Active():
		return events.Provisioned(acct.AccountIdentifier)
	case err == nil:
		// Cancelled: never provisioned again. A CANCEL that overtook a
		// lost Enrollment reply may have found nothing while Q2 was still
		// creating the user; make sure no live user of ours is left.
		if out, ok := s.sweep(ctx, w, ev.SubscriptionID); !ok {
			return out
		}
		return events.Refused(events.Forbidden, "subscription "+ev.SubscriptionID+" was cancelled; it is not provisioned again")
	case !errors.Is(err, store.ErrNotFound):
		return s.storeDown(err)
	}

	enrollment, ok := newEnrollment(ev)
	if !ok {
		return events.Refused(events.UserNotFound,
			"the order names no user to enroll: event.creator and event.payload.company are both missing")
	}
	user, found, out, done := s.enroll(ctx, w.q2, enrollment, ev.SubscriptionID)
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
		EventTime:         eventTime(ev),
	}
	if found == deletedUser {
		// Our own user, deleted: the subscription was cancelled and the
		// record of it lost (Redis emptied, a failover). Record that again
		// and refuse, without enrolling.
		acct.Status, acct.CancelledAt = events.AccountCancelled, &now
		if err := s.accounts.SaveAccount(ctx, w.token, acct); err != nil {
			return s.storeDown(err)
		}
		return events.Refused(events.Forbidden, "subscription "+ev.SubscriptionID+" was cancelled; it is not provisioned again")
	}
	applyOrder(&acct, ev.Event.Payload.Order)
	if err := s.accounts.SaveAccount(ctx, w.token, acct); err != nil {
		return s.storeDown(err)
	}
	return events.Provisioned(acct.AccountIdentifier)
}

// enroll makes sure Q2 has the subscription's user, enrolling it unless an
// earlier attempt already did, and returns it with what was found: a live
// user, or a deleted one (then nothing is enrolled). When done is true, out
// is the outcome to answer instead.
func (s *Service) enroll(ctx context.Context, q Q2, e q2client.Enrollment, subscription string) (user q2client.User, found userState, out events.Outcome, done bool) {
	user, found, err := s.ownUser(ctx, q, e.LogonName, e.UserInfo)
	if err != nil {
		return user, found, s.q2Failed(events.SubscriptionOrder, "looking up the logon", err), true
	}
	if found != noUser {
		return user, found, out, false // an earlier attempt enrolled it
	}
	if err := q.Enroll(ctx, e); err != nil && !errors.Is(err, q2client.ErrAlreadyExists) {
		return user, found, s.q2Failed(events.SubscriptionOrder, "enrolling", err), true
	}
	// Enrollment answers no ids: find the user we just made (or that a
	// racing attempt made first).
	user, found, err = s.ownUser(ctx, q, e.LogonName, e.UserInfo)
	switch {
	case err != nil:
		return user, found, s.q2Failed(events.SubscriptionOrder, "looking up the enrolled logon", err), true
	case found == noUser:
		s.log.Warn("Q2 accepted an enrollment but its logon is not found yet", zap.String("subscription", subscription))
		return user, found, events.Unavailable("Q2 accepted the enrollment but does not show the user yet; send the order again", 5*time.Second), true
	}
	return user, found, out, false
}

// errForeignLogon is a logon that Q2 holds for a user that is not ours.
var errForeignLogon = errors.New("logon held by another user")

// userState is what Q2 holds of a subscription's own user.
type userState int

const (
	noUser      userState = iota // none: never enrolled (or Q2 forgot)
	liveUser                     // enrolled and not deleted
	deletedUser                  // enrolled, then deleted: the subscription was cancelled
)

// ownUser finds the Q2 user with logon that carries our marker, preferring
// a live one. Q2 keeps deleted users visible (DeletedDate set) and their
// logon taken, so a deleted user of ours means "this subscription was
// cancelled". A logon held only by users without our marker is
// errForeignLogon.
func (s *Service) ownUser(ctx context.Context, q Q2, logon, marker string) (q2client.User, userState, error) {
	users, err := q.LookupUser(ctx, q2client.UserQuery{LoginName: logon})
	if errors.Is(err, q2client.ErrNotFound) || (err == nil && len(users) == 0) {
		return q2client.User{}, noUser, nil
	}
	if err != nil {
		return q2client.User{}, noUser, err
	}
	var deleted *q2client.User
	for i, u := range users {
		switch {
		case u.UserInfo != marker:
		case u.DeletedDate == "":
			return u, liveUser, nil
		case deleted == nil:
			deleted = &users[i]
		}
	}
	if deleted != nil {
		return *deleted, deletedUser, nil
	}
	return q2client.User{}, noUser, errForeignLogon
}

func (s *Service) change(ctx context.Context, w *work) events.Outcome {
	ev := w.ev
	acct, err := s.accounts.Account(ctx, w.subscription)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && !acct.Active()):
		return events.Refused(events.AccountNotFound, "no active account for subscription "+ev.SubscriptionID)
	case err != nil:
		return s.storeDown(err)
	}
	at := eventTime(ev)
	if at != nil && acct.EventTime != nil && at.Before(*acct.EventTime) {
		// A late CHANGE: a newer ORDER or CHANGE is applied already.
		s.log.Info("a change older than the one applied is not applied",
			zap.String("subscription", w.subscription), zap.Time("event_time", *at), zap.Time("applied", *acct.EventTime))
		return events.Provisioned(acct.AccountIdentifier)
	}
	applyOrder(&acct, ev.Event.Payload.Order)
	acct.UpdatedAt = s.now().UTC()
	if at != nil {
		acct.EventTime = at
	}
	if err := s.accounts.SaveAccount(ctx, w.token, acct); err != nil {
		return s.storeDown(err)
	}
	return events.Provisioned(acct.AccountIdentifier)
}

func (s *Service) cancel(ctx context.Context, w *work) events.Outcome {
	acct, err := s.accounts.Account(ctx, w.subscription)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s.cancelUnrecorded(ctx, w)
	case err != nil:
		return s.storeDown(err)
	case !acct.Active():
		// Cancelled before: cancelling again changes nothing, but a user
		// that Q2 created after the first cancel (a lost Enrollment reply
		// landing late) must not stay behind.
		if out, ok := s.sweep(ctx, w, acct.SubscriptionID); !ok {
			return out
		}
		if acct.AccountIdentifier == "" {
			return events.Refused(events.AccountNotFound, "no account for subscription "+w.ev.SubscriptionID)
		}
		return events.Provisioned(acct.AccountIdentifier)
	}

	if err := s.deprovision(ctx, w.q2, acct.UserID, acct.CustomerID); err != nil {
		return s.q2Failed(events.SubscriptionCancel, "deleting the "+string(s.cfg.CancelDeletes), err)
	}
	now := s.now().UTC()
	acct.Status, acct.UpdatedAt, acct.CancelledAt = events.AccountCancelled, now, &now
	if err := s.accounts.SaveAccount(ctx, w.token, acct); err != nil {
		return s.storeDown(err)
	}
	return events.Provisioned(acct.AccountIdentifier)
}

// cancelUnrecorded cancels a subscription that has no account: its ORDER
// has not arrived yet, its reply was lost after Q2 enrolled the user, or
// Redis forgot it. It deletes the subscription's own user if Q2 has one
// and records the subscription as cancelled either way, so that a later
// ORDER answers FORBIDDEN and provisions nothing.
func (s *Service) cancelUnrecorded(ctx context.Context, w *work) events.Outcome {
	logon := LogonName(w.subscription)
	user, found, err := s.ownUser(ctx, w.q2, logon, Marker(w.subscription))
	if err != nil && !errors.Is(err, errForeignLogon) { // a foreign user is not ours to delete
		return s.q2Failed(events.SubscriptionCancel, "looking up the subscription's logon", err)
	}
	if found == liveUser {
		if err := s.deprovision(ctx, w.q2, user.UserID, user.CustomerID); err != nil {
			return s.q2Failed(events.SubscriptionCancel, "deleting the "+string(s.cfg.CancelDeletes), err)
		}
	}
	now := s.now().UTC()
	acct := events.Account{SubscriptionID: w.subscription, Logon: logon, Status: events.AccountCancelled,
		CreatedAt: now, UpdatedAt: now, CancelledAt: &now}
	if found != noUser {
		acct.AccountIdentifier = strconv.FormatInt(user.UserID, 10)
		acct.UserID, acct.CustomerID = user.UserID, user.CustomerID
	}
	if err := s.accounts.SaveAccount(ctx, w.token, acct); err != nil {
		return s.storeDown(err)
	}
	if found == noUser {
		return events.Refused(events.AccountNotFound, "no account for subscription "+w.ev.SubscriptionID+
			"; it is recorded as cancelled, so a later order is refused")
	}
	return events.Provisioned(acct.AccountIdentifier)
}

// sweep makes sure a cancelled subscription has no live user of ours in
// Q2, deleting one that appeared after the cancel. ok is false when it
// could not tell or delete; out is then the outcome to answer.
func (s *Service) sweep(ctx context.Context, w *work, subscription string) (out events.Outcome, ok bool) {
	user, found, err := s.ownUser(ctx, w.q2, LogonName(subscription), Marker(subscription))
	if err != nil && !errors.Is(err, errForeignLogon) {
		return s.q2Failed(w.ev.EventType, "checking that the cancelled subscription has no live user", err), false
	}
	if found != liveUser {
		return out, true
	}
	s.log.Warn("a cancelled subscription had a live Q2 user; deleting it", zap.String("subscription", subscription))
	if err := s.deprovision(ctx, w.q2, user.UserID, user.CustomerID); err != nil {
		return s.q2Failed(w.ev.EventType, "deleting the cancelled subscription's user", err), false
	}
	return out, true
}

// deprovision deletes a subscription's user (or its customer, with
// CANCEL_DELETES=customer). Already deleted counts as done.
func (s *Service) deprovision(ctx context.Context, q Q2, userID, customerID int64) error {
	var err error
	if s.cfg.CancelDeletes == DeleteCustomer {
		err = q.DeleteCustomer(ctx, customerID)
	} else {
		err = q.DeleteUser(ctx, userID)
	}
	if errors.Is(err, q2client.ErrNotFound) {
		return nil
	}
	return err
}

// eventTime is the marketplace's own time of an event, when it carries one.
func eventTime(ev *events.SubscriptionEvent) *time.Time {
	if ev.Created == nil || ev.Created.IsZero() {
		return nil
	}
	t := ev.Created.UTC()
	return &t
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
