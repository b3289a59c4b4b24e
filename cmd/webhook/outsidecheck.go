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

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
	"github.com/banking-marketplace/webhook/internal/store"
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

// The states of an outside API, and of Redis's eviction policy, in
// /readyz's "outside" object.
const (
	stateOK          = "ok"
	stateSandbox     = "sandbox"   // demo mode: the embedded sandbox serves it, nothing to check
	stateEmbedded    = "embedded"  // demo mode's Redis: in the process, it never evicts
	stateUnchecked   = "unchecked" // no cheap call tells (Helix has only writes; a managed Redis hides its policy)
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
	// unchecked, when set, recognizes an answer that makes the check
	// impossible for good (a managed Redis refusing CONFIG and INFO): the
	// state is "unchecked", warning is logged once at start, and the
	// check is not run again.
	unchecked func(err error) (warning string, ok bool)
	// later is the error log line of a refusal found after start; nil: the
	// outside APIs' "now refuses the service's settings".
	later func(r *refusedError) string
	// back is the log line of a return to ok; empty: "<title> answers
	// again".
	back string
	// everyProbe: also run on each /readyz, not only every recheckEvery
	// (Redis's policy: one cheap command to a server the probe pings
	// anyway; an outside API's check costs a call to someone else).
	everyProbe bool
}

// refusedError is an outside API refusing the service's settings at start:
// the configuration parses, the outside world says no. It exits with
// status 1, as 2 is for settings that do not parse.
type refusedError struct {
	settings string // what to fix: "Q2_CLIENT_ID/Q2_CLIENT_SECRET"
	what     string // "Q2 refused the client credentials"
	fix      string // "set the OAuth2 client credentials Q2 gave you"
	err      error
	state    string // /readyz's state; empty: "refused: " and a short reason
}

func (e *refusedError) Error() string {
	detail := strings.Join(strings.Fields(e.err.Error()), " ") // one line, whatever the API wrote
	return fmt.Sprintf("%s: %s (%s); %s", e.settings, e.what, detail, e.fix)
}

func (e *refusedError) Unwrap() error { return e.err }
func (e *refusedError) ExitCode() int { return 1 }

// q2Check fetches a token: it proves the client credentials, the base URL
// and the API version in one request.
func q2Check(c *q2api.Client) outsideCheck {
	return outsideCheck{name: "q2", title: "Q2", call: c.CheckToken, refused: func(err error) *refusedError {
		switch {
		case errors.Is(err, q2api.ErrTransient):
			return nil
		case errors.Is(err, q2api.ErrNotFound), errors.Is(err, q2api.ErrInvalidResponse):
			return &refusedError{"Q2_BASE_URL/Q2_API_VERSION", "Q2's token endpoint is not there", "set the base URL and API version of your Q2 API", err, ""}
		}
		return &refusedError{"Q2_CLIENT_ID/Q2_CLIENT_SECRET", "Q2 refused the client credentials", "set the OAuth2 client credentials Q2 gave you (and Q2_SCOPE if it names scopes)", err, ""}
	}}
}

// qbdCheck lists the products, the cheapest read of QBD Connect, with the
// token.
func qbdCheck(c *qbdapi.Client) outsideCheck {
	call := func(ctx context.Context) error {
		_, err := c.ListProducts(ctx)
		return err
	}
	return outsideCheck{name: "qbd_connect", title: "QBD Connect", call: call, refused: func(err error) *refusedError {
		switch {
		case errors.Is(err, qbdapi.ErrTransient):
			return nil
		case errors.Is(err, qbdapi.ErrUnauthorized):
			return &refusedError{"QBD_TOKEN", "QBD Connect refused the token", "set the bearer token QBD Connect gave you", err, ""}
		}
		return &refusedError{"QBD_BASE_URL/QBD_API_VERSION", "QBD Connect did not answer GET /products", "set the part of the URL before /qbdconnect-api/ and its version", err, ""}
	}}
}

// openRedis opens the store of cfg's Redis settings, saying in one line
// what went wrong: Redis refusing the password in REDIS_URL (exit 1: the
// settings parse, Redis says no), or Redis not answering (exit 1).
func openRedis(ctx context.Context, cfg *config, log *zap.Logger, onError func(string)) (*store.Redis, error) {
	o := cfg.storeOptions()
	o.Logger, o.OnError = log, onError
	db, err := store.Open(ctx, o)
	var auth *store.AuthError
	switch {
	case errors.As(err, &auth):
		return nil, &refusedError{
			settings: "REDIS_URL", what: "Redis refused the credentials: " + auth.Problem,
			fix: "the password in REDIS_URL is wrong or missing; set redis://:PASSWORD@host:port (redis://USER:PASSWORD@host:port for an ACL user)",
			err: auth.Unwrap(),
		}
	case errors.Is(err, events.ErrUnavailable):
		return nil, fmt.Errorf("REDIS_URL: cannot reach Redis; check the address and that Redis is up: %w", err)
	case err != nil: // loadConfig checked the options: not expected
		return nil, &configError{msg: "REDIS_URL: " + err.Error()}
	}
	return db, nil
}

// evictingError is a Redis whose maxmemory-policy lets it delete keys.
type evictingError struct{ policy string }

func (e *evictingError) Error() string { return fmt.Sprintf("maxmemory-policy is %s", e.policy) }

// redisCheck reads Redis's maxmemory-policy. Anything but noeviction lets
// Redis delete keys when its memory is full, delivery records included,
// and an event whose record was deleted is processed again when a copy
// comes: that stops the start, and found later it is an error line and
// the "redis" state of /readyz. A managed Redis that hides the policy
// (CONFIG and INFO refused) is a warning at start, then left alone.
func redisCheck(db *store.Redis) outsideCheck {
	call := func(ctx context.Context) error {
		policy, err := db.MaxmemoryPolicy(ctx)
		if err == nil && policy != store.NoEviction {
			return &evictingError{policy}
		}
		return err
	}
	return outsideCheck{name: "redis", title: "Redis", call: call, everyProbe: true,
		refused: func(err error) *refusedError {
			var ev *evictingError
			if !errors.As(err, &ev) {
				return nil
			}
			return &refusedError{
				settings: "Redis maxmemory-policy",
				what:     "Redis may delete keys when its memory is full, delivery records included, and an event whose record is gone is processed twice",
				fix:      "set it to noeviction: CONFIG SET maxmemory-policy noeviction (and in redis.conf), or the maxmemory-policy of the managed Redis's parameter group",
				err:      err,
				state:    "evicting: " + err.Error(),
			}
		},
		unchecked: func(err error) (string, bool) {
			if !errors.Is(err, store.ErrPolicyHidden) {
				return "", false
			}
			return "Redis refuses CONFIG and INFO (a managed Redis?), so its maxmemory-policy cannot be checked: make sure it is noeviction (the managed Redis's parameter group), " +
				"or Redis may delete delivery records when full and events are processed twice", true
		},
		later: func(r *refusedError) string {
			return "Redis's " + r.err.Error() + ", not noeviction: " + r.what + "; " + r.fix
		},
		back: "Redis's maxmemory-policy is noeviction again",
	}
}

// outsideMonitorFor checks the APIs the service calls and, outside demo
// mode, Redis's eviction policy. In demo mode nothing is checked: the
// sandbox serves every API ("sandbox") and the embedded Redis never
// evicts ("embedded"). Helix is "unchecked": it has no call without an
// effect.
func outsideMonitorFor(cfg *config, t targets, db *store.Redis, log *zap.Logger) *outsideMonitor {
	if cfg.Demo {
		fixed := map[string]string{"q2": stateSandbox, "qbd_connect": stateSandbox, "helix": stateSandbox, "redis": stateEmbedded}
		return newOutsideMonitor(fixed, nil, checkTimeout, log)
	}
	fixed := map[string]string{}
	checks := []outsideCheck{redisCheck(db)}
	if t.q2 != nil {
		checks = append(checks, q2Check(t.q2))
	}
	if t.qbd != nil {
		checks = append(checks, qbdCheck(t.qbd))
	}
	if t.helix != nil {
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
	given map[string]bool // checks given up at start (unchecked): not run again
}

func newOutsideMonitor(fixed map[string]string, checks []outsideCheck, timeout time.Duration, log *zap.Logger) *outsideMonitor {
	state := make(map[string]string, len(fixed)+len(checks))
	maps.Copy(state, fixed)
	return &outsideMonitor{checks: checks, timeout: timeout, log: log, state: state, given: map[string]bool{}}
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
	state     string
	err       error
	refused   *refusedError
	unchecked string // the warning of a check that cannot be made
}

func (m *outsideMonitor) run(ctx context.Context, c outsideCheck) result {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	err := c.call(ctx)
	if err == nil {
		return result{state: stateOK}
	}
	if refused := c.refused(err); refused != nil {
		state := refused.state
		if state == "" {
			state = stateRefused + shortReason(err)
		}
		return result{state: state, err: err, refused: refused}
	}
	if c.unchecked != nil {
		if warning, ok := c.unchecked(err); ok {
			return result{state: stateUnchecked, err: err, unchecked: warning}
		}
	}
	return result{state: stateUnreachable + shortReason(err), err: err}
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
		if r.unchecked != "" {
			m.mu.Lock()
			m.given[m.checks[i].name] = true
			m.mu.Unlock()
			m.log.Warn(r.unchecked, zap.String("api", m.checks[i].name))
			continue
		}
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

// watch checks every API again every period until ctx ends (see update).
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
			if m.update(ctx, c); ctx.Err() != nil {
				return
			}
		}
	}
}

// recheck runs the checks meant for every readiness probe (Redis's
// policy) now, so that /readyz and the log follow them between the
// periodic checks.
func (m *outsideMonitor) recheck(ctx context.Context) {
	for _, c := range m.checks {
		if c.everyProbe {
			m.update(ctx, c)
		}
	}
}

// update runs c and records its state, logging each change once: back to
// ok at info, unreachable at warn, refused (credentials revoked or rotated
// under the service; Redis set to evict) at error, a check found
// impossible at warn, once: it is given up, and not run again.
func (m *outsideMonitor) update(ctx context.Context, c outsideCheck) {
	m.mu.Lock()
	given := m.given[c.name]
	m.mu.Unlock()
	if given {
		return
	}
	r := m.run(ctx, c)
	if ctx.Err() != nil {
		return // stopping: the cut check says nothing about the API
	}
	if before := m.set(c.name, r.state); before == r.state {
		return
	}
	f := []zap.Field{zap.String("api", c.name), zap.String("state", r.state)}
	switch {
	case r.unchecked != "":
		m.mu.Lock()
		m.given[c.name] = true
		m.mu.Unlock()
		m.log.Warn(r.unchecked, f...)
	case r.refused != nil && c.later != nil:
		m.log.Error(c.later(r.refused), f...)
	case r.refused != nil:
		m.log.Error(c.title+" now refuses the service's settings: "+r.refused.settings+"; deliveries that need it fail until they are fixed", append(f, zap.Error(r.err))...)
	case r.err != nil:
		m.log.Warn(c.title+" is unreachable", append(f, zap.Error(r.err))...)
	case c.back != "":
		m.log.Info(c.back, f...)
	default:
		m.log.Info(c.title+" answers again", f...)
	}
}

// shortReason says in a few words why a check failed, for /readyz, which
// anyone who reaches the pod can read: no addresses, no message from the
// API. The log line has the whole error.
func shortReason(err error) string {
	var q2e *q2api.APIError
	var qbde *qbdapi.APIError
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
	case errors.Is(err, q2api.ErrInvalidResponse), errors.Is(err, qbdapi.ErrInvalidResponse):
		return "not the API's answer"
	case errors.Is(err, events.ErrUnavailable):
		return "no answer"
	}
	return "network error"
}
