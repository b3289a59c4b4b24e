package q2

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
)

// fakeAPI records the deletes it is asked for.
type fakeAPI struct{ deleted []string }

func (f *fakeAPI) Enroll(context.Context, q2api.Enrollment) error { return nil }
func (f *fakeAPI) LookupUser(context.Context, q2api.UserQuery) ([]q2api.User, error) {
	return nil, nil
}
func (f *fakeAPI) DeleteUser(_ context.Context, id int64) error {
	f.deleted = append(f.deleted, "user")
	return nil
}
func (f *fakeAPI) DeleteCustomer(_ context.Context, id int64) error {
	f.deleted = append(f.deleted, "customer")
	return nil
}

// Deprovision deletes what CANCEL_DELETES says, and the user when a
// customer is asked for but the step names none: "customer 0" would answer
// "not found" and leave the user live.
func TestDeprovision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		mode  CancelDeletes
		step  events.Step
		wants string
	}{
		{"user", DeleteUser, events.Step{ID: "7", Data: map[string]string{"customer_id": "3"}}, "user"},
		{"customer", DeleteCustomer, events.Step{ID: "7", Data: map[string]string{"customer_id": "3"}}, "customer"},
		{"customer unknown", DeleteCustomer, events.Step{ID: "7", Data: map[string]string{"customer_id": "0"}}, "user"},
		{"customer missing", DeleteCustomer, events.Step{ID: "7"}, "user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{}
			target, err := New(api, Settings{CancelDeletes: tt.mode})
			if err != nil {
				t.Fatal(err)
			}
			if err := target.Deprovision(context.Background(), nil, tt.step); err != nil {
				t.Fatal(err)
			}
			if len(api.deleted) != 1 || api.deleted[0] != tt.wants {
				t.Errorf("deleted %v, want %s", api.deleted, tt.wants)
			}
		})
	}
	if _, err := New(&fakeAPI{}, Settings{CancelDeletes: "everything"}); err == nil {
		t.Error("New accepted cancel_deletes=everything")
	}
}

// Case 9 of issue 20: the q2 target's rows of the failure table. A reply
// the service cannot read (garbled, too large, a redirect) may follow an
// Enrollment that did its work: the outcome is unknown, never a refusal;
// the service's own credentials and permissions are a misconfiguration.
func TestFailureRows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want provisioning.Kind
		code events.ErrorCode
	}{
		{"unreadable reply", fmt.Errorf("q2 Enrollment: %w: not JSON", q2api.ErrInvalidResponse), provisioning.Transient, events.TransportError},
		{"transport", fmt.Errorf("q2 Enrollment: %w: reset", q2api.ErrTransient), provisioning.Transient, events.TransportError},
		{"credentials", fmt.Errorf("q2 token: %w", q2api.ErrUnauthorized), provisioning.Misconfigured, events.Unauthorized},
		{"permissions", fmt.Errorf("q2 Enrollment: %w", q2api.ErrForbidden), provisioning.Misconfigured, events.Forbidden},
		{"a logon of another user", errForeignLogon, provisioning.Refused, events.UserAlreadyExists},
		{"something Q2 refused", errors.New("q2 Enrollment: HTTP 400"), provisioning.Refused, events.UnknownError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := failure("enrolling", tc.err)
			if f.Kind != tc.want || f.Code != tc.code {
				t.Errorf("failure = %v %s, want %v %s", f.Kind, f.Code, tc.want, tc.code)
			}
		})
	}
}
