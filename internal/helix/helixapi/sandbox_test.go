package helixapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix"
	"github.com/banking-marketplace/webhook/internal/helix/helixapi"
	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/provisioning"
)

// fake serves the sandbox's Helix part behind a wrap that counts calls and
// plays a fault for its next times calls, like internal/sandbox.
type fake struct {
	*helixsandbox.Sandbox
	url string

	mu    sync.Mutex
	calls map[string]int
	fault map[string]struct{ status, code, times int }
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{Sandbox: helixsandbox.New("", ""), calls: map[string]int{}, fault: map[string]struct{ status, code, times int }{}}
	mux := http.NewServeMux()
	f.Register(mux, func(route string, h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			f.calls[route]++
			ft, faulty := f.fault[route]
			if faulty {
				if ft.times--; ft.times == 0 {
					delete(f.fault, route)
				} else {
					f.fault[route] = ft
				}
			}
			f.mu.Unlock()
			if faulty {
				f.Fail(w, ft.status, ft.code)
				return
			}
			h(w, r)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *fake) count(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[route]
}

// TestAgainstSandbox: the client, the sandbox and the code table agree on
// every answer the sandbox can give through the client.
func TestAgainstSandbox(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c, err := helixapi.New(f.url, helixapi.WithCredentials(helixsandbox.DefaultKey, helixsandbox.DefaultSecret),
		helixapi.WithRetry(3, time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e := helixapi.Entitlement{AccountID: 100, RequestingCustomerID: 200, TargetCustomerID: 300, Level: helixapi.LevelReadOnly}
	full := e
	full.Level = helixapi.LevelFull
	self := e
	self.TargetCustomerID = self.RequestingCustomerID

	type outcome struct {
		done, transient bool
		code            events.ErrorCode
		final           bool
	}
	done := outcome{done: true}
	for _, step := range []struct {
		name  string
		fault struct{ status, code, times int }
		op    helix.Op
		in    helixapi.Entitlement
		route string
		want  outcome
		calls int    // calls of the route made by this step
		level string // level held afterwards
	}{
		{name: "edit of none", op: helix.Edit, in: full, route: "helix.editEntitlement", want: outcome{code: events.AccountNotFound, final: true}, calls: 1},
		{name: "add", op: helix.Add, in: e, route: "helix.addEntitlement", want: done, calls: 1, level: "RDONLY"},
		{name: "add again: 195110 is done", op: helix.Add, in: full, route: "helix.addEntitlement", want: done, calls: 1, level: "RDONLY"},
		{name: "edit after a 503", fault: struct{ status, code, times int }{503, 0, 1}, op: helix.Edit, in: full, route: "helix.editEntitlement", want: done, calls: 2, level: "FULL"},
		{name: "edit after a 429 with throttle", fault: struct{ status, code, times int }{429, 0, 1}, op: helix.Edit, in: e, route: "helix.editEntitlement", want: done, calls: 2, level: "RDONLY"},
		{name: "remove while locked", fault: struct{ status, code, times int }{0, 195104, 1}, op: helix.Remove, in: e, route: "helix.removeEntitlement", want: outcome{code: events.Forbidden, final: true}, calls: 1, level: "RDONLY"},
		{name: "remove", op: helix.Remove, in: e, route: "helix.removeEntitlement", want: done, calls: 1},
		{name: "remove again: 195119 is done", op: helix.Remove, in: e, route: "helix.removeEntitlement", want: done, calls: 1},
		{name: "target is the requester", op: helix.Add, in: self, route: "helix.addEntitlement", want: outcome{code: events.Forbidden, final: true}, calls: 1},
		{name: "server down: add is not sent again", fault: struct{ status, code, times int }{502, 0, 1}, op: helix.Add, in: e, route: "helix.addEntitlement", want: outcome{transient: true, code: events.TransportError}, calls: 1},
		{name: "server down: remove tried 3 times", fault: struct{ status, code, times int }{502, 0, 5}, op: helix.Remove, in: e, route: "helix.removeEntitlement", want: outcome{transient: true, code: events.TransportError}, calls: 3},
	} {
		if step.fault.times > 0 {
			f.mu.Lock()
			f.fault[step.route] = step.fault
			f.mu.Unlock()
		}
		before := f.count(step.route)
		var err error
		switch step.op {
		case helix.Add:
			_, err = c.AddEntitlement(ctx, step.in)
		case helix.Edit:
			_, err = c.EditEntitlement(ctx, step.in)
		case helix.Remove:
			_, err = c.RemoveEntitlement(ctx, step.in)
		}
		cl := helix.Classify(step.op, err)
		if got := (outcome{cl.Done, cl.Kind == provisioning.Transient, cl.Code, cl.Kind == provisioning.Refused}); got != step.want {
			t.Errorf("%s: %+v (err %v), want %+v", step.name, got, err, step.want)
		}
		if n := f.count(step.route) - before; n != step.calls {
			t.Errorf("%s: %d calls, want %d", step.name, n, step.calls)
		}
		if level, _ := f.Entitlement(e.AccountID, e.TargetCustomerID); level != step.level {
			t.Errorf("%s: level %q, want %q", step.name, level, step.level)
		}
	}

	bad, err := helixapi.New(f.url, helixapi.WithCredentials(helixsandbox.DefaultKey, "wrong"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.AddEntitlement(ctx, e)
	if cl := helix.Classify(helix.Add, err); !errors.Is(err, helixapi.ErrUnauthorized) || cl.Code != events.Unauthorized || cl.Kind != provisioning.Misconfigured {
		t.Errorf("wrong secret: %v classed %+v, want UNAUTHORIZED, misconfigured", err, cl)
	}
}
