package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
)

// apiError is a client's error type as a Table sees it: it carries the
// wait the system asked for and wraps a sentinel.
type apiError struct {
	wait time.Duration
	kind error
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP error: %v", e.kind) }
func (e *apiError) Unwrap() error { return e.kind }

var (
	errDown   = errors.New("down")
	errTaken  = errors.New("taken")
	errBadKey = errors.New("bad key")
	errOdd    = errors.New("odd")
)

// TestTableClassifies: the frame every sentinel-classified target shares,
// each step of it once: an outage first (with the system's wait, else the
// default), then the first matching row, then UNKNOWN_ERROR.
func TestTableClassifies(t *testing.T) {
	t.Parallel()
	table := provisioning.Table[*apiError]{
		System:     "Sys",
		Transient:  errDown,
		RetryAfter: func(e *apiError) time.Duration { return e.wait },
		Rows: []provisioning.Row{
			{Err: errTaken, Kind: provisioning.Refused, Code: events.UserAlreadyExists, Message: "Sys has it"},
			{Err: errBadKey, Kind: provisioning.Misconfigured, Code: events.Unauthorized, Message: "Sys refused the key"},
			{Err: errOdd, Kind: provisioning.Refused, Code: events.Forbidden, Message: "never reached when errBadKey matches too"},
		},
	}
	const outage = "Sys is unavailable (doing x); nothing final was recorded, send the event again"
	tests := []struct {
		name    string
		err     error
		want    provisioning.Failure
		explain bool
	}{
		{"transient, no wait said", fmt.Errorf("call: %w", errDown),
			provisioning.Failure{Kind: provisioning.Transient, Code: events.TransportError, Message: outage, RetryAfter: provisioning.DefaultRetry}, false},
		{"transient, the system's wait", &apiError{wait: 7 * time.Second, kind: errDown},
			provisioning.Failure{Kind: provisioning.Transient, Code: events.TransportError, Message: outage, RetryAfter: 7 * time.Second}, false},
		{"transient, a zero wait", &apiError{kind: errDown},
			provisioning.Failure{Kind: provisioning.Transient, Code: events.TransportError, Message: outage, RetryAfter: provisioning.DefaultRetry}, false},
		{"the event's deadline", fmt.Errorf("call: %w", context.DeadlineExceeded),
			provisioning.Failure{Kind: provisioning.Transient, Code: events.TransportError, Message: outage, RetryAfter: provisioning.DefaultRetry}, false},
		{"a transient row's error is still an outage first", fmt.Errorf("%w %w", errDown, errTaken),
			provisioning.Failure{Kind: provisioning.Transient, Code: events.TransportError, Message: outage, RetryAfter: provisioning.DefaultRetry}, false},
		{"a row", &apiError{kind: errTaken},
			provisioning.Failure{Kind: provisioning.Refused, Code: events.UserAlreadyExists, Message: "Sys has it"}, false},
		{"the first matching row wins", fmt.Errorf("%w %w", errOdd, errBadKey),
			provisioning.Failure{Kind: provisioning.Misconfigured, Code: events.Unauthorized, Message: "Sys refused the key"}, false},
		{"a row, explained", errTaken,
			provisioning.Failure{Kind: provisioning.Refused, Code: events.UserAlreadyExists, Message: "Sys has it (doing x)"}, true},
		{"nothing matches", errors.New("HTTP 418"),
			provisioning.Failure{Kind: provisioning.Refused, Code: events.UnknownError, Message: "Sys refused the call while doing x; the detail is in the service's log"}, false},
		{"nothing matches, explained: only rows are", errors.New("HTTP 418"),
			provisioning.Failure{Kind: provisioning.Refused, Code: events.UnknownError, Message: "Sys refused the call while doing x; the detail is in the service's log"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := table
			if tt.explain {
				tb.Explain = func(r provisioning.Row, doing string, _ error) string { return r.Message + " (" + doing + ")" }
			}
			f := tb.Classify("doing x", tt.err)
			if f.Err != tt.err {
				t.Errorf("Err = %v, want the call's error %v", f.Err, tt.err)
			}
			f.Err = nil
			if *f != tt.want {
				t.Errorf("Classify = %+v\nwant       %+v", *f, tt.want)
			}
		})
	}
}
