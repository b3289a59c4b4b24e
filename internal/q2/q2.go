// Package q2 is the provisioning target "q2": an ORDER enrolls a Q2 user
// (customer, user and logon) for the subscription, a CANCEL deletes the
// user (or its customer).
//
// Exactly-once enrollment rests on the logon name: it is derived from the
// subscription, and the Q2 user carries a marker naming the subscription in
// UserInfo. Find recognises the user as its own after a lost reply, a crash
// or an empty Redis; Q2's unique logon names stop two racing enrollments.
// Q2 marks deleted users and keeps their logon taken, so a deleted user of
// ours means the subscription was cancelled (Gone).
package q2

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
)

// Name is the target's name in the products file.
const Name = "q2"

// API is the part of the Q2 API the target uses.
type API interface {
	Enroll(ctx context.Context, e q2api.Enrollment) error
	LookupUser(ctx context.Context, q q2api.UserQuery) ([]q2api.User, error)
	DeleteUser(ctx context.Context, userID int64) error
	DeleteCustomer(ctx context.Context, customerID int64) error
}

// CancelDeletes names what a CANCEL deletes in Q2.
type CancelDeletes string

// What a CANCEL deletes.
const (
	DeleteUser     CancelDeletes = "user"     // the user and its logon (default)
	DeleteCustomer CancelDeletes = "customer" // the customer, with its users and logons
)

// Settings are a product's Q2 settings.
type Settings struct {
	GroupID       int           // the Q2 group new customers join; 0: Q2's default
	UserRoleID    string        // the role new users get; empty: Q2's default
	CancelDeletes CancelDeletes // empty: DeleteUser
}

// Target provisions Q2 users.
type Target struct {
	api API
	set Settings
}

var _ provisioning.Target = (*Target)(nil)

// New returns the q2 target of one product.
func New(api API, s Settings) (*Target, error) {
	switch s.CancelDeletes {
	case "":
		s.CancelDeletes = DeleteUser
	case DeleteUser, DeleteCustomer:
	default:
		return nil, fmt.Errorf("cancel_deletes %q is not user or customer", s.CancelDeletes)
	}
	return &Target{api: api, set: s}, nil
}

// Name implements provisioning.Target.
func (t *Target) Name() string { return Name }

// Find looks the subscription's logon up.
func (t *Target) Find(ctx context.Context, j *provisioning.Job) (events.Step, provisioning.Presence, error) {
	user, state, err := t.ownUser(ctx, who(j))
	switch {
	case errors.Is(err, errForeignLogon) && (j.Event == nil || !creates(j.Event.EventType)):
		return events.Step{}, provisioning.Absent, nil // not ours to touch
	case err != nil:
		return events.Step{}, 0, failure("looking up the subscription's logon", err)
	case state == provisioning.Absent:
		return events.Step{}, state, nil
	}
	return step(user), state, nil
}

// Prepare checks that the event names someone to enroll. Q2 needs the
// event itself (names and contact data, never stored), so the settler
// leaves an enrollment to the ORDER's next copy.
func (t *Target) Prepare(_ context.Context, j *provisioning.Job) (events.Step, error) {
	if j.Event == nil {
		return events.Step{}, provisioning.ErrNeedsEvent
	}
	if _, ok := enrollmentOf(j); !ok {
		if j.Member != "" {
			return events.Step{}, provisioning.Refusal(events.UserNotFound, "the assignment names no user to enroll: payload.user has no name", nil)
		}
		return events.Step{}, provisioning.Refusal(events.UserNotFound,
			"the order names no user to enroll: event.creator and event.payload.company are both missing", nil)
	}
	return events.Step{}, nil
}

// Provision enrolls the subscription's user and looks it up (Enrollment
// answers no ids). It needs no lookup first: Q2 refuses a logon name that
// is taken, and the lookup after it tells the subscription's own user
// (an earlier attempt whose answer was lost: done; deleted: the
// subscription was cancelled) from another's (USER_ALREADY_EXISTS).
// Enrollment is never retried blindly: a retry starts with Find.
func (t *Target) Provision(ctx context.Context, j *provisioning.Job) (events.Step, error) {
	e, ok := enrollmentOf(j)
	if !ok {
		return events.Step{}, provisioning.Refusal(events.UserNotFound,
			"the order names no user to enroll: event.creator and event.payload.company are both missing", nil)
	}
	e.GroupID, e.UserRoleID = t.set.GroupID, t.set.UserRoleID
	if err := t.api.Enroll(ctx, e); err != nil && !errors.Is(err, q2api.ErrAlreadyExists) {
		return events.Step{}, failure("enrolling", err)
	}
	user, state, err := t.ownUser(ctx, who(j))
	switch {
	case err != nil:
		return events.Step{}, failure("looking up the enrolled logon", err)
	case state == provisioning.Gone:
		return step(user), provisioning.ErrGone
	case state != provisioning.Live:
		return events.Step{}, provisioning.Outage("Q2 accepted the enrollment but does not show the user yet; send the order again", 0, nil)
	}
	return step(user), nil
}

// Change changes nothing in Q2: the edition and quantities are the
// account's.
func (t *Target) Change(_ context.Context, _ *provisioning.Job, s events.Step) (events.Step, error) {
	return s, nil
}

// Deprovision deletes the user (or its customer); already deleted is done.
func (t *Target) Deprovision(ctx context.Context, _ *provisioning.Job, s events.Step) error {
	var err error
	if id, ok := CustomerID(s); ok && t.set.CancelDeletes == DeleteCustomer {
		err = t.api.DeleteCustomer(ctx, id)
	} else {
		// Delete User, also when a customer is to be deleted but the step
		// names none: deleting "customer 0" would answer "not found" and
		// leave the user live.
		id, perr := strconv.ParseInt(s.ID, 10, 64)
		if perr != nil {
			return provisioning.Refusal(events.ConfigurationError, "the recorded q2 step has no user id", perr)
		}
		err = t.api.DeleteUser(ctx, id)
	}
	if err != nil && !errors.Is(err, q2api.ErrNotFound) {
		return failure("deleting the "+string(t.set.CancelDeletes), err)
	}
	return nil
}

// EnrollsUsers marks the q2 target as the one that enrolls the users
// assigned to a subscription (AppDirect's USER_ASSIGNMENT): each gets a
// Q2 user of its own, its logon derived from the subscription and the
// marketplace user, found again as the subscription's own user is.
func (t *Target) EnrollsUsers() {}

// who is whose logon a job's step is: the subscription's, or the
// assigned user's (Job.Member).
func who(j *provisioning.Job) string {
	switch {
	case j.Member != "" && j.MemberGen > 0:
		return j.Subscription + "/user/" + j.Member + "/" + strconv.Itoa(j.MemberGen)
	case j.Member != "":
		return j.Subscription + "/user/" + j.Member
	}
	return j.Subscription
}

// creates reports whether an event type creates a Q2 user: only then is
// a logon of ours held by someone else a refusal, not "nothing of ours".
func creates(t events.EventType) bool {
	return t == events.SubscriptionOrder || t == events.UserAssignment
}

// enrollmentOf is the enrollment of the job's user: the ORDER's, or the
// assigned user's.
func enrollmentOf(j *provisioning.Job) (q2api.Enrollment, bool) {
	if j.Member != "" {
		return newMemberEnrollment(j.Event, who(j))
	}
	return newEnrollment(j.Event, j.Subscription)
}

// CustomerID is the Q2 CustomerID a q2 step enrolled.
func CustomerID(s events.Step) (int64, bool) {
	id, err := strconv.ParseInt(s.Data[provisioning.DataCustomerID], 10, 64)
	return id, err == nil && id > 0
}

func step(u q2api.User) events.Step {
	return events.Step{Target: Name, ID: strconv.FormatInt(u.UserID, 10),
		Data: map[string]string{provisioning.DataCustomerID: strconv.FormatInt(u.CustomerID, 10)}}
}

// errForeignLogon is a logon that Q2 holds for a user that is not ours.
var errForeignLogon = errors.New("logon held by another user")

// ownUser finds the Q2 user with the subscription's logon that carries
// our marker, preferring a live one: Live, Gone (deleted: the subscription
// was cancelled) or Absent. A logon held only by users without our marker
// is errForeignLogon.
func (t *Target) ownUser(ctx context.Context, subscription string) (q2api.User, provisioning.Presence, error) {
	marker := Marker(subscription)
	users, err := t.api.LookupUser(ctx, q2api.UserQuery{LoginName: LogonName(subscription)})
	if errors.Is(err, q2api.ErrNotFound) || (err == nil && len(users) == 0) {
		return q2api.User{}, provisioning.Absent, nil
	}
	if err != nil {
		return q2api.User{}, 0, err
	}
	var deleted *q2api.User
	for i, u := range users {
		switch {
		case u.UserInfo != marker:
		case u.DeletedDate == "":
			return u, provisioning.Live, nil
		case deleted == nil:
			deleted = &users[i]
		}
	}
	if deleted != nil {
		return *deleted, provisioning.Gone, nil
	}
	return q2api.User{}, 0, errForeignLogon
}
