package outside_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/outside"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/store"
)

// After start, the state follows the API: the re-check records each change
// and logs it once, at the level it deserves.
func TestMonitorWatch(t *testing.T) {
	t.Parallel()
	var answer atomic.Pointer[error] // the check's next answer
	store := func(err error) { answer.Store(&err) }
	store(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	refusal := &q2api.APIError{Endpoint: "token", Status: http.StatusUnauthorized}
	check := outside.Check{Name: "q2", Title: "Q2",
		Call: func(context.Context) error { return *answer.Load() },
		Refused: func(err error) *outside.Refusal {
			if errors.Is(err, refusal) {
				return &outside.Refusal{Advice: outside.Advice{Settings: "Q2_CLIENT_ID/Q2_CLIENT_SECRET", Fix: "fix it"}, What: "refused", Err: err}
			}
			return nil
		},
	}
	core, logs := observer.New(zapcore.DebugLevel)
	m := outside.NewMonitor(map[string]string{"helix": outside.Unchecked}, []outside.Check{check}, time.Second, zap.New(core))
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := m.State(); got["q2"] != "unreachable: network error" || got["helix"] != outside.Unchecked {
		t.Fatalf("state after start %v", got)
	}
	stop := m.Watch(time.Millisecond)
	defer stop()

	steps := []watchStep{
		{nil, outside.OK, zapcore.InfoLevel, "Q2 answers again"},
		{refusal, "refused: HTTP 401", zapcore.ErrorLevel, "Q2 now refuses the service's settings: Q2_CLIENT_ID/Q2_CLIENT_SECRET"},
		{nil, outside.OK, zapcore.InfoLevel, "Q2 answers again"},
	}
	for i, s := range steps {
		store(s.answer)
		eventually(t, 10*time.Second, "state "+s.state, func() bool { return m.State()["q2"] == s.state })
		eventually(t, 10*time.Second, "the log line "+s.msg, func() bool {
			return logs.FilterMessageSnippet(s.msg).FilterLevelExact(s.level).Len() >= countMsg(steps[:i+1], s.msg)
		})
	}
	stop()
	for _, s := range steps {
		if n := logs.FilterMessageSnippet(s.msg).Len(); n != countMsg(steps, s.msg) {
			t.Errorf("%q logged %d times, want once per change", s.msg, n)
		}
	}
}

// watchStep is what the API answers next, and what the monitor should make
// of it.
type watchStep struct {
	answer error
	state  string
	level  zapcore.Level
	msg    string
}

func countMsg(steps []watchStep, msg string) int {
	n := 0
	for _, s := range steps {
		if s.msg == msg {
			n++
		}
	}
	return n
}

// A check that gets no answer ends at the monitor's timeout.
func TestCheckTimeout(t *testing.T) {
	t.Parallel()
	hang := outside.Check{Name: "q2", Title: "Q2",
		Call:    func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
		Refused: func(error) *outside.Refusal { return nil }}
	m := outside.NewMonitor(nil, []outside.Check{hang}, 20*time.Millisecond, zap.NewNop())
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := m.State()["q2"]; got != "unreachable: no answer in time" {
		t.Errorf("state %q", got)
	}
}

// A check that turns out impossible (a managed Redis hiding its policy),
// at start or later, is "unchecked", said once at warn, and not run again.
func TestMonitorGivesUpUnchecked(t *testing.T) {
	t.Parallel()
	answers := []error{events.ErrUnavailable, store.ErrPolicyHidden}
	calls := 0
	check := outside.RedisPolicy(nil)
	check.Call = func(context.Context) error {
		calls++
		return answers[min(calls, len(answers))-1]
	}
	core, logs := observer.New(zapcore.DebugLevel)
	m := outside.NewMonitor(nil, []outside.Check{check}, time.Second, zap.New(core))
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := m.State()["redis"]; got != "unreachable: no answer" {
		t.Fatalf("state after start %q", got)
	}
	for range 3 {
		m.Recheck(context.Background())
	}
	if got := m.State()["redis"]; got != outside.Unchecked || calls != 2 {
		t.Errorf("state %q after %d calls, want unchecked after 2", got, calls)
	}
	if n := logs.FilterMessageSnippet("Redis refuses CONFIG and INFO").FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Errorf("%d warnings that the policy cannot be checked, want 1: %v", n, logs.All())
	}
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A refusal is one line: the settings, what was refused, the dependency's
// own words flattened, and the fix.
func TestRefusalIsOneLine(t *testing.T) {
	t.Parallel()
	r := &outside.Refusal{Advice: outside.Advice{Settings: "QBD_TOKEN", Fix: "set the token"}, What: "QBD Connect refused the token",
		Err: errors.New("qbd GET /products: HTTP 401:\n  no\ttoken ")}
	const want = "QBD_TOKEN: QBD Connect refused the token (qbd GET /products: HTTP 401: no token); set the token"
	if got := r.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var coded interface{ ExitCode() int }
	if !errors.As(error(r), &coded) || coded.ExitCode() != 1 {
		t.Error("a refusal does not exit with status 1")
	}
}
