package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/helix/helixapi"
	"github.com/banking-marketplace/webhook/internal/httpcall"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
)

// An outside call's failure is classed in a few words of ours for the
// attempt history: the system's own codes, the client's kind of failure,
// how the exchange failed; nothing of the system's message text.
func TestCallOfClassesFailures(t *testing.T) {
	t.Parallel()
	secret := "Jane Roe, jane@example.com"
	for _, tc := range []struct {
		name   string
		status int
		err    error
		want   string
	}{
		{"success", 200, nil, ""},
		{"a 503", 503, &q2api.APIError{Endpoint: "Enrollment", Status: 503}, ""},
		{"helix's codes", 400, &helixapi.APIError{Route: "addEntitlement", HTTPStatus: 400, Codes: []int{195122}, Messages: []string{secret}}, "helix 195122"},
		{"a taken logon", 200, fmt.Errorf("q2 Enrollment: %w: %s", q2api.ErrAlreadyExists, secret), "already exists"},
		{"a timeout", 0, fmt.Errorf("q2 Enrollment: %w: %w", q2api.ErrTransient, context.DeadlineExceeded), "timeout"},
		{"a refused connection", 0, fmt.Errorf("q2 Enrollment: %w: %w", q2api.ErrTransient, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), "connection refused"},
		{"not sent", 0, fmt.Errorf("q2 token: %w", httpcall.ErrNotSent), "not sent"},
		{"anything else", 0, errors.New(secret), "transport error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := callOf(httpcall.Attempt{System: "q2", Action: "Enrollment", Status: tc.status, Duration: time.Millisecond, RequestID: "r-1", Err: tc.err})
			if c.Error != tc.want || c.Status != tc.status || c.RequestID != "r-1" || c.System != "q2" || c.Action != "Enrollment" {
				t.Errorf("call %+v, want error class %q", c, tc.want)
			}
		})
	}
}
