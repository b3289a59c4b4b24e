package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/q2client"
	"github.com/banking-marketplace/webhook/internal/qbdclient"
)

const (
	// checkTimeout bounds each check of an outside API, at start and after:
	// a start must not hang on an API that does not answer.
	checkTimeout = 5 * time.Second
	// recheckEvery is how often the outside APIs are checked again after
	// start, for /readyz: one token request to Q2 and one GET to QBD
	// Connect per replica and period.
	recheckEvery = 30 * time.Second
)

// The states of an outside API in /readyz's "outside" object.
const (
	stateOK          = "ok"
	stateSandbox     = "sandbox"   // the embedded sandbox serves it: nothing to check
	stateUnchecked   = "unchecked" // no cheap call tells (Helix has only writes)
	stateUnreachable = "unreachable: "
	stateRefused     = "refused: "
)

// outsideCheck is one outside API's cheap authenticated call.
type outsideCheck struct {
	name  string                          // its key in /readyz's "outside": q2, qbd_connect
	title string                          // its name in log lines: Q2, QBD Connect
	call  func(ctx context.Context) error // a token fetch, a GET of a list
	// refused tells, for a failed call, whether the API answered and
	// refused the settings (credentials, base URL, version): retrying will
	// not help, so at start that stops the service, naming the settings to
	// fix. nil: the API is merely unreachable (network, timeout, 5xx).
	refused func(err error) *refusedError
}

// refusedError is an outside API refusing the service's settings at start:
// the configuration parses, the outside world says no. It exits with
// status 1, as 2 is for settings that do not parse.
type refusedError struct {
	settings string // what to fix: "Q2_CLIENT_ID/Q2_CLIENT_SECRET"
	what     string // "Q2 refused the client credentials"
	fix      string // "set the OAuth2 client credentials Q2 gave you"
	err      error
}

func (e *refusedError) Error() string {
	detail := strings.Join(strings.Fields(e.err.Error()), " ") // one line, whatever the API wrote
	return fmt.Sprintf("%s: %s (%s); %s", e.settings, e.what, detail, e.fix)
}

func (e *refusedError) Unwrap() error { return e.err }
func (e *refusedError) ExitCode() int { return 1 }

// q2Check fetches a token: it proves the client credentials, the base URL
// and the API version in one request.
func q2Check(c *q2client.Client) outsideCheck {
	return outsideCheck{name: "q2", title: "Q2", call: c.CheckToken, refused: func(err error) *refusedError {
		switch {
		case errors.Is(err, q2client.ErrTransient):
			return nil
		case errors.Is(err, q2client.ErrNotFound), errors.Is(err, q2client.ErrInvalidResponse):
			return &refusedError{"Q2_BASE_URL/Q2_API_VERSION", "Q2's token endpoint is not there", "set the base URL and API version of your Q2 API", err}
		}
		return &refusedError{"Q2_CLIENT_ID/Q2_CLIENT_SECRET", "Q2 refused the client credentials", "set the OAuth2 client credentials Q2 gave you (and Q2_SCOPE if it names scopes)", err}
	}}
}

// qbdCheck lists the products, the cheapest read of QBD Connect, with the
// token.
func qbdCheck(c *qbdclient.Client) outsideCheck {
	call := func(ctx context.Context) error {
		_, err := c.ListProducts(ctx)
		return err
	}
	return outsideCheck{name: "qbd_connect", title: "QBD Connect", call: call, refused: func(err error) *refusedError {
		switch {
		case errors.Is(err, qbdclient.ErrTransient):
			return nil
		case errors.Is(err, qbdclient.ErrUnauthorized):
			return &refusedError{"QBD_TOKEN", "QBD Connect refused the token", "set the bearer token QBD Connect gave you", err}
		}
		return &refusedError{"QBD_BASE_URL/QBD_API_VERSION", "QBD Connect did not answer GET /products", "set the part of the URL before /qbdconnect-api/ and its version", err}
	}}
}

// outsideMonitorFor checks the APIs the service really calls (a base URL
// is set); the others get a fixed state: "sandbox" when the embedded
// sandbox serves them, "unchecked" for Helix, which has no call without an
// effect.
func outsideMonitorFor(cfg *config, t targets, log *zap.Logger) *outsideMonitor {
	fixed := map[string]string{}
	var checks []outsideCheck
	if cfg.Q2BaseURL != "" {
		checks = append(checks, q2Check(t.q2))
	} else {
		fixed["q2"] = stateSandbox
	}
	if cfg.QBDBaseURL != "" {
		checks = append(checks, qbdCheck(t.qbd))
	} else {
		fixed["qbd_connect"] = stateSandbox
	}
	fixed["helix"] = stateSandbox
	if cfg.HelixBaseURL != "" {
		fixed["helix"] = stateUnchecked
	}
	return newOutsideMonitor(fixed, checks, checkTimeout, log)
}

// outsideMonitor keeps the outside APIs' last known state for /readyz: the
// result of the start check, then of a re-check every recheckEvery. It
// does not listen to the deliveries' own calls, so it says the same with
// or without traffic.
type outsideMonitor struct {
	checks  []outsideCheck
	timeout time.Duration
	log     *zap.Logger

	mu    sync.Mutex
	state map[string]string
}

func newOutsideMonitor(fixed map[string]string, checks []outsideCheck, timeout time.Duration, log *zap.Logger) *outsideMonitor {
	state := make(map[string]string, len(fixed)+len(checks))
	maps.Copy(state, fixed)
	return &outsideMonitor{checks: checks, timeout: timeout, log: log, state: state}
}

// State is a copy of the last known state, for /readyz.
func (m *outsideMonitor) State() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.state)
}

// set records an API's state and reports the one before.
func (m *outsideMonitor) set(name, state string) (before string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	before, m.state[name] = m.state[name], state
	return before
}

// result is one check's outcome.
type result struct {
	state   string
	err     error
	refused *refusedError
}

func (m *outsideMonitor) run(ctx context.Context, c outsideCheck) result {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	err := c.call(ctx)
	if err == nil {
		return result{state: stateOK}
	}
	if refused := c.refused(err); refused != nil {
		return result{stateRefused + shortReason(err), err, refused}
	}
	return result{stateUnreachable + shortReason(err), err, nil}
}

// start checks every API at once. An API that refuses the settings is the
// error (the service stops); one that is unreachable is a warning, since a
// Q2 outage must not crash-loop every replica, and copies of deliveries
// already answered need no outside API.
func (m *outsideMonitor) start(ctx context.Context) error {
	results := make([]result, len(m.checks))
	var wg sync.WaitGroup
	for i, c := range m.checks {
		wg.Go(func() { results[i] = m.run(ctx, c) })
	}
	wg.Wait()
	for _, r := range results {
		if r.refused != nil {
			return r.refused
		}
	}
	for i, r := range results {
		m.set(m.checks[i].name, r.state)
		if r.err != nil {
			m.log.Warn(m.checks[i].title+" is unreachable at start: deliveries that need it answer 503 until it is back (copies of answered deliveries are still answered); /readyz shows its state",
				zap.String("api", m.checks[i].name), zap.Error(r.err))
		}
	}
	m.log.Info("outside APIs checked", zap.Any("outside", m.State()))
	return nil
}

// watchInBackground runs watch until stop is called; stop waits for it.
func (m *outsideMonitor) watchInBackground(every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.watch(ctx, every)
	}()
	return func() {
		cancel()
		<-done
	}
}

// watch checks every API again every period until ctx ends, and logs each
// change of state: back to ok at info, unreachable at warn, refused (the
// credentials were revoked or rotated under the service) at error.
func (m *outsideMonitor) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range m.checks {
			r := m.run(ctx, c)
			if ctx.Err() != nil {
				return // stopping: the cut check says nothing about the API
			}
			if before := m.set(c.name, r.state); before == r.state {
				continue
			}
			f := []zap.Field{zap.String("api", c.name), zap.String("state", r.state)}
			switch {
			case r.refused != nil:
				m.log.Error(c.title+" now refuses the service's settings: "+r.refused.settings+"; deliveries that need it fail until they are fixed", append(f, zap.Error(r.err))...)
			case r.err != nil:
				m.log.Warn(c.title+" is unreachable", append(f, zap.Error(r.err))...)
			default:
				m.log.Info(c.title+" answers again", f...)
			}
		}
	}
}

// shortReason says in a few words why a check failed, for /readyz, which
// anyone who reaches the pod can read: no addresses, no message from the
// API. The log line has the whole error.
func shortReason(err error) string {
	var q2e *q2client.APIError
	var qbde *qbdclient.APIError
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &q2e):
		return fmt.Sprintf("HTTP %d", q2e.Status)
	case errors.As(err, &qbde):
		return fmt.Sprintf("HTTP %d", qbde.Status)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns):
		return "host not found"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	case errors.Is(err, q2client.ErrInvalidResponse), errors.Is(err, qbdclient.ErrInvalidResponse):
		return "not the API's answer"
	}
	return "network error"
}
