package loadtest

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestQuickRun runs the whole benchmark with --quick: it builds the
// binaries, starts redis-server, the sandbox, the service and the floor,
// and checks what every phase measured. It takes tens of seconds (two
// builds), so CI skips it: set LOADTEST=1 to run it.
//
//	LOADTEST=1 go test -run TestQuickRun -v ./internal/loadtest
func TestQuickRun(t *testing.T) {
	if os.Getenv("LOADTEST") != "1" {
		t.Skip("set LOADTEST=1 to run the --quick benchmark (it builds and starts real processes)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	cfg, err := parseArgs([]string{"--quick", "--timeout", "3m"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var stdout, stderr strings.Builder
	rows, err := run(ctx, cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	if want := cfg.Rounds * 2 * len(phaseNames); len(rows) != want {
		t.Fatalf("%d rows; want %d (rounds × targets × phases)", len(rows), want)
	}
	for _, r := range rows {
		name := r.Target + " " + r.Phase
		switch {
		case r.Sent != r.Load.N || r.count2xx() != r.Sent || r.NotSuccess != 0:
			t.Errorf("%s: sent %d of %d, 2xx %d, not success %d; want every reply a 2xx success", name, r.Sent, r.Load.N, r.count2xx(), r.NotSuccess)
		case r.Phase == phaseNew && r.Enrollments < r.Load.N:
			t.Errorf("%s: %d Enrollment calls for %d new ORDERs", name, r.Enrollments, r.Load.N)
		case r.Phase == phaseCopies && (r.Enrollments != 0 || r.Replayed != r.Sent):
			t.Errorf("%s: %d Enrollment calls, %d of %d replayed; want none and all", name, r.Enrollments, r.Replayed, r.Sent)
		case r.Phase == phaseStorm && (r.Enrollments != 1 || r.Replayed != r.Sent-1):
			t.Errorf("%s: %d Enrollment calls, %d of %d replayed; want 1 and all but one", name, r.Enrollments, r.Replayed, r.Sent)
		case r.PeakRSSKB <= 0:
			t.Errorf("%s: no peak RSS measured", name)
		}
	}
	for _, want := range []string{"Service / floor", "req/s s/f", phaseStorm, phaseConns} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, stdout.String())
		}
	}
}
