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
	cfg, err := parseArgs([]string{"--quick", "--timeout", "3m", "--burst", "100", "--burst-c", "32"}, io.Discard)
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
	if want := cfg.Rounds*2*len(phaseNames) + 1; len(rows) != want {
		t.Fatalf("%d rows; want %d (rounds × targets × phases, and the burst)", len(rows), want)
	}
	for _, r := range rows {
		name := r.Target + " " + r.Phase
		switch {
		case r.Sent != r.Load.N || r.count2xx() != r.Sent || r.NotSuccess != 0:
			t.Errorf("%s: sent %d of %d, 2xx %d, not success %d; want every reply a 2xx success", name, r.Sent, r.Load.N, r.count2xx(), r.NotSuccess)
		case (r.Phase == phaseNew || r.Phase == phaseBA || r.Phase == phaseBurst) && r.Enrollments < r.Load.N:
			t.Errorf("%s: %d Enrollment calls for %d new ORDERs", name, r.Enrollments, r.Load.N)
		case r.Phase == phaseQBD && r.Calls["qbd.POST /subscriptions"] != r.Load.N:
			t.Errorf("%s: %d QBD Connect subscriptions created for %d new ORDERs", name, r.Calls["qbd.POST /subscriptions"], r.Load.N)
		case r.Phase == phaseBA && r.Calls["helix.addEntitlement"] != r.Load.N:
			t.Errorf("%s: %d Helix entitlements added for %d new ORDERs", name, r.Calls["helix.addEntitlement"], r.Load.N)
		case r.Phase == phaseCopies && r.Redis.Scripts+r.Redis.Commands == 0:
			t.Errorf("%s: no Redis command counted", name)
		case r.Phase == phaseCopies && (r.Enrollments != 0 || r.Replayed != r.Sent):
			t.Errorf("%s: %d Enrollment calls, %d of %d replayed; want none and all", name, r.Enrollments, r.Replayed, r.Sent)
		case r.Phase == phaseStorm && (r.Enrollments != 1 || r.Replayed != r.Sent-1):
			t.Errorf("%s: %d Enrollment calls, %d of %d replayed; want 1 and all but one", name, r.Enrollments, r.Replayed, r.Sent)
		case r.PeakRSSKB <= 0:
			t.Errorf("%s: no peak RSS measured", name)
		}
	}
	for _, want := range []string{"Service / floor", "req/s s/f", phaseStorm, phaseConns, phaseBA, phaseQBD,
		"Per request, sent one by one", "Peak RSS over the rounds", "lost: 0 of 100", "(one each)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, stdout.String())
		}
	}
}

// The budgets of a new ORDER of a one-step Q2 product and of a copy, in
// Redis round trips. A copy is one (its copy script). A new ORDER is 3:
// the copy miss; the claim, which takes the subscription's lock, finds no
// account and writes the ORDER's first record (its intent, the step
// "calling") before Enrollment; and the outcome, which writes the account,
// its indexes and the delivery log and drops the lock (store/unit.go). It
// was 8, then 4 with the "calling" written on its own; the floor's is 3.
const (
	newOrderRoundTrips = 3
	copyRoundTrips     = 1
)

// TestCounts sends ORDERs of each product one by one to the service and
// to the floor and checks what each cost: outside calls per ORDER by
// route, none per copy, and Redis round trips within their budget. Counts
// only, never timings: they do not depend on the machine. It builds and
// starts real processes, so CI skips it:
//
//	LOADTEST=1 go test -run TestCounts -v ./internal/loadtest
func TestCounts(t *testing.T) {
	if os.Getenv("LOADTEST") != "1" {
		t.Skip("set LOADTEST=1 to run it (it builds and starts real processes)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	cfg, err := parseArgs([]string{"--counts", "5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stderr strings.Builder
	b, err := setUp(ctx, cfg, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	defer b.close()
	rows, err := b.count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	printCounts(&table, rows)
	t.Logf("\n%s", table.String())

	calls := map[string]map[string]int{ // the outside calls of a first ORDER, by product
		"q2":              {"Enrollment": 1, "LookupUser": 1},
		"business access": {"Enrollment": 1, "LookupUser": 1, "helix.addEntitlement": 1},
		"qbd connect":     {"qbd.GET /customers": 1, "qbd.POST /customers": 1, "qbd.POST /subscriptions": 1},
	}
	if len(rows) != 2*len(calls)*2 {
		t.Fatalf("%d rows; want targets × products × (new, copy)", len(rows))
	}
	for _, r := range rows {
		name := r.Target + " " + r.Product + " " + r.Kind
		want := calls[r.Product]
		if r.Kind == kindCopy {
			want = map[string]int{}
		}
		if got := r.calls(); callList(got) != callList(want) {
			t.Errorf("%s: outside calls %s; want %s", name, callList(got), callList(want))
		}
		rt, _, _ := r.roundTrips()
		budget := copyRoundTrips
		switch {
		case r.Kind == kindNew && r.Target == "floor":
			budget = 3 // GET, SET NX, SET
		case r.Kind == kindNew && r.Product == "business access":
			budget = newOrderRoundTrips + 1 // each further step: one Redis write
		case r.Kind == kindNew:
			budget = newOrderRoundTrips
		}
		if rt > budget {
			t.Errorf("%s: %d Redis round trips; the budget is %d", name, rt, budget)
		}
	}
}
