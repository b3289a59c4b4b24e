// Package outside keeps the last known state of what the service depends
// on outside itself, for /readyz's "outside" object: each outside API the
// products call, and Redis's eviction policy. It checks each once at start
// (a refusal of the service's settings stops the start; an API that does
// not answer is only a warning), then again every period, logging each
// change once.
//
// It takes values: the clients to check, and for each refusal the
// settings to fix and how, in the words of the wiring that knows their
// names (cmd/webhook). It reads no environment variable.
package outside

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The states of a dependency in /readyz's "outside" object.
const (
	OK        = "ok"
	Sandbox   = "sandbox"   // demo mode: the embedded sandbox serves it, nothing to check
	Embedded  = "embedded"  // demo mode's Redis: in the process, it never evicts
	Unchecked = "unchecked" // no cheap call tells (Helix has only writes; a managed Redis hides its policy)

	unreachable = "unreachable: "
	refused     = "refused: "
)

// Check is one dependency's cheap call, and what its failures mean.
type Check struct {
	Name  string                          // its key in /readyz's "outside": q2, qbd_connect, redis
	Title string                          // its name in log lines: Q2, QBD Connect, Redis
	Call  func(ctx context.Context) error // a token fetch, a GET of a list, a read of a setting
	// Refused tells, for a failed call, whether the dependency answered and
	// refused the service's settings (credentials, base URL, version):
	// retrying will not help, so at start that stops the service, naming
	// the settings to fix. nil: the dependency is merely unreachable
	// (network, timeout, 5xx).
	Refused func(err error) *Refusal
	// Unchecked, when set, recognizes an answer that makes the check
	// impossible for good (a managed Redis refusing CONFIG and INFO): the
	// state is "unchecked", warning is logged once, and the check is not
	// run again.
	Unchecked func(err error) (warning string, ok bool)
	// Later is the error log line of a refusal found after start; nil:
	// "<Title> now refuses the service's settings: <settings>; ...".
	Later func(r *Refusal) string
	// Back is the log line of a return to ok; empty: "<Title> answers
	// again".
	Back string
	// EveryProbe: also run on each readiness probe (Recheck), not only
	// every period (Redis's policy: one cheap command to a server the
	// probe pings anyway; an outside API's check costs a call to someone
	// else).
	EveryProbe bool
}

// Advice names the settings a refusal is about and how to fix them, in
// the words of whoever configures the service: "Q2_CLIENT_ID/Q2_CLIENT_SECRET",
// "set the OAuth2 client credentials Q2 gave you".
type Advice struct {
	Settings string
	Fix      string
}

// Refusal is a dependency refusing the service's settings: the
// configuration parses, the outside world says no. As a start error it
// exits with status 1 (2 is for settings that do not parse).
type Refusal struct {
	Advice
	What  string // "Q2 refused the client credentials"
	Err   error
	State string // /readyz's state; empty: "refused: " and a short reason
}

func (e *Refusal) Error() string {
	detail := strings.Join(strings.Fields(e.Err.Error()), " ") // one line, whatever the dependency wrote
	return fmt.Sprintf("%s: %s (%s); %s", e.Settings, e.What, detail, e.Fix)
}

func (e *Refusal) Unwrap() error { return e.Err }

// ExitCode is the exit status of a start stopped by the refusal.
func (e *Refusal) ExitCode() int { return 1 }

// Monitor keeps the dependencies' last known state: the result of the
// start check, then of a re-check every period. It does not listen to the
// deliveries' own calls, so it says the same with or without traffic.
type Monitor struct {
	checks  []Check
	timeout time.Duration
	log     *zap.Logger

	mu    sync.Mutex
	state map[string]string
	given map[string]bool // checks given up (unchecked): not run again
}

// NewMonitor runs checks, each bounded by timeout (a start must not hang
// on a dependency that does not answer); fixed are states that no check
// changes ("helix": Unchecked; in demo mode, every one).
func NewMonitor(fixed map[string]string, checks []Check, timeout time.Duration, log *zap.Logger) *Monitor {
	state := make(map[string]string, len(fixed)+len(checks))
	maps.Copy(state, fixed)
	return &Monitor{checks: checks, timeout: timeout, log: log, state: state, given: map[string]bool{}}
}

// State is a copy of the last known state, for /readyz.
func (m *Monitor) State() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.state)
}

// set records a dependency's state and reports the one before.
func (m *Monitor) set(name, state string) (before string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	before, m.state[name] = m.state[name], state
	return before
}

// giveUp marks a check as impossible: it is not run again.
func (m *Monitor) giveUp(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.given[name] = true
}

func (m *Monitor) givenUp(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.given[name]
}

// result is one check's outcome.
type result struct {
	state     string
	err       error
	refused   *Refusal
	unchecked string // the warning of a check that cannot be made
}

func (m *Monitor) run(ctx context.Context, c Check) result {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	err := c.Call(ctx)
	if err == nil {
		return result{state: OK}
	}
	if r := c.Refused(err); r != nil {
		state := r.State
		if state == "" {
			state = refused + shortReason(err)
		}
		return result{state: state, err: err, refused: r}
	}
	if c.Unchecked != nil {
		if warning, ok := c.Unchecked(err); ok {
			return result{state: Unchecked, err: err, unchecked: warning}
		}
	}
	return result{state: unreachable + shortReason(err), err: err}
}

// Start checks every dependency at once. One that refuses the settings is
// the error, a *Refusal (the service stops); one that is unreachable is a
// warning, since a Q2 outage must not crash-loop every replica, and copies
// of deliveries already answered need no outside API.
func (m *Monitor) Start(ctx context.Context) error {
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
		c := m.checks[i]
		m.set(c.Name, r.state)
		switch {
		case r.unchecked != "":
			m.giveUp(c.Name)
			m.log.Warn(r.unchecked, zap.String("api", c.Name))
		case r.err != nil:
			m.log.Warn(c.Title+" is unreachable at start: deliveries that need it answer 503 until it is back (copies of answered deliveries are still answered); /readyz shows its state",
				zap.String("api", c.Name), zap.Error(r.err))
		}
	}
	m.log.Info("outside APIs checked", zap.Any("outside", m.State()))
	return nil
}

// Watch checks every dependency again every period, in the background,
// until stop is called; stop waits for it.
func (m *Monitor) Watch(every time.Duration) (stop func()) {
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

func (m *Monitor) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range m.checks {
			if m.update(ctx, c); ctx.Err() != nil {
				return
			}
		}
	}
}

// Recheck runs the checks meant for every readiness probe (Redis's
// policy) now, so that /readyz and the log follow them between the
// periodic checks.
func (m *Monitor) Recheck(ctx context.Context) {
	for _, c := range m.checks {
		if c.EveryProbe {
			m.update(ctx, c)
		}
	}
}

// update runs c and records its state, logging each change once: back to
// ok at info, unreachable at warn, refused (credentials revoked or rotated
// under the service; Redis set to evict) at error, a check found
// impossible at warn, once: it is given up, and not run again.
func (m *Monitor) update(ctx context.Context, c Check) {
	if m.givenUp(c.Name) {
		return
	}
	r := m.run(ctx, c)
	if ctx.Err() != nil {
		return // stopping: the cut check says nothing about the dependency
	}
	if before := m.set(c.Name, r.state); before == r.state {
		return
	}
	f := []zap.Field{zap.String("api", c.Name), zap.String("state", r.state)}
	switch {
	case r.unchecked != "":
		m.giveUp(c.Name)
		m.log.Warn(r.unchecked, f...)
	case r.refused != nil && c.Later != nil:
		m.log.Error(c.Later(r.refused), f...)
	case r.refused != nil:
		m.log.Error(c.Title+" now refuses the service's settings: "+r.refused.Settings+"; deliveries that need it fail until they are fixed", append(f, zap.Error(r.err))...)
	case r.err != nil:
		m.log.Warn(c.Title+" is unreachable", append(f, zap.Error(r.err))...)
	case c.Back != "":
		m.log.Info(c.Back, f...)
	default:
		m.log.Info(c.Title+" answers again", f...)
	}
}
