package loadtest

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"time"
)

// The phases, in the order they run.
const (
	phaseNew    = "new"    // new ORDERs, each its own subscription
	phaseCopies = "copies" // copies of the answered ORDERs
	phaseStorm  = "storm"  // copies of ONE new ORDER at once
	phaseConns  = "conns"  // copies of the answered ORDERs over many connections
)

var phaseNames = []string{phaseNew, phaseCopies, phaseStorm, phaseConns}

// Run is the load benchmark: args are its flags (see --help). It prints
// progress on stderr and the results on stdout, and stops every program it
// started before it returns, also when ctx ends (Ctrl-C) or its --timeout
// runs out. A bad flag is a *UsageError; --help returns flag.ErrHelp.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	_, err = run(ctx, cfg, stdout, stderr)
	return err
}

// run is Run after the flags; it returns the rows it measured, also when it
// stopped early.
func run(parent context.Context, cfg config, stdout, stderr io.Writer) ([]row, error) {
	ctx, cancel := context.WithTimeout(parent, cfg.Timeout)
	defer cancel()
	// Whatever stops the run, say why in words.
	stopped := func(err error) error {
		switch {
		case parent.Err() != nil:
			return fmt.Errorf("interrupted: %w", err)
		case ctx.Err() != nil:
			return fmt.Errorf("the --timeout of %s ran out (raise it or lower the counts): %w", cfg.Timeout, err)
		}
		return err
	}

	tmpl, err := loadTemplate(cfg.Fixture)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(cfg.RedisServer); err != nil {
		return nil, fmt.Errorf("--redis-server %q: not found (install it, e.g. apt-get install redis-server, or give its path): %w", cfg.RedisServer, err)
	}
	module, err := moduleRoot(ctx)
	if err != nil {
		return nil, stopped(err)
	}
	dir, err := os.MkdirTemp("", "webhook-loadtest-")
	if err != nil {
		return nil, fmt.Errorf("making a work folder: %w", err)
	}
	defer func() {
		if cfg.KeepLogs {
			fmt.Fprintln(stderr, "logs and binaries kept in", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()

	fmt.Fprintln(stderr, "building ./cmd/webhook and the floor ...")
	bins, err := build(ctx, module, dir)
	if err != nil {
		return nil, stopped(err)
	}
	fmt.Fprintln(stderr, "starting redis-server, the Q2 sandbox, the service and the floor on 127.0.0.1 ...")
	st, err := startStack(ctx, cfg, dir, bins)
	if err != nil {
		return nil, stopped(err)
	}
	defer st.stop()

	rows, err := rounds(ctx, cfg, st, tmpl, stderr)
	fmt.Fprintf(stdout, "Load: new %d@%d, copies %d@%d, storm %d@%d, conns %d@%d (requests@concurrency); %d round(s), service then floor; MAX_IN_FLIGHT %d; %d CPUs (GOMAXPROCS %d)\n\n",
		cfg.New.N, cfg.New.C, cfg.Copies.N, cfg.Copies.C, cfg.Storm.N, cfg.Storm.C, cfg.Conns.N, cfg.Conns.C,
		cfg.Rounds, cfg.MaxInFlight, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	printRows(stdout, rows)
	fmt.Fprintln(stdout, "\nService / floor, means over the rounds:")
	printRatios(stdout, rows, phaseNames)
	if err != nil {
		return rows, stopped(err)
	}
	return rows, nil
}

// phase is one phase's traffic in a round.
type phase struct {
	name   string
	load   load
	bodies [][]byte
}

// rounds runs every phase against each target in turn (service, floor,
// service, floor, ...), from an empty Redis and sandbox each time. Both
// targets of a round get the same ORDERs.
func rounds(ctx context.Context, cfg config, st *stack, tmpl *template, stderr io.Writer) ([]row, error) {
	var rows []row
	for round := 1; round <= cfg.Rounds; round++ {
		orders := tmpl.orders(cfg.New.N)
		phases := []phase{
			{phaseNew, cfg.New, orders},
			{phaseCopies, cfg.Copies, orders},
			{phaseStorm, cfg.Storm, [][]byte{tmpl.order()}},
			{phaseConns, cfg.Conns, orders},
		}
		for _, t := range st.targets {
			if err := st.reset(ctx); err != nil {
				return rows, err
			}
			for _, ph := range phases {
				if ph.load.N == 0 {
					continue
				}
				r, err := runPhase(ctx, cfg, st, t, tmpl.extension, ph)
				r.Round = round
				rows = append(rows, r)
				fmt.Fprintf(stderr, "round %d %-7s %-6s %6d sent in %6.2fs: %6.0f req/s, p99 %s, non-2xx %s\n",
					round, t.name, ph.name, r.Sent, r.Elapsed.Seconds(), r.rps(), ms(percentile(r.Latencies, .99)), r.non2xx())
				if err != nil {
					return rows, err
				}
				if ctx.Err() != nil {
					return rows, ctx.Err()
				}
			}
		}
	}
	return rows, nil
}

// runPhase sends one phase to one target and measures it.
func runPhase(ctx context.Context, cfg config, st *stack, t target, extension string, ph phase) (row, error) {
	r := row{Target: t.name, Phase: ph.name, Load: ph.load}
	before, err := st.calls(ctx)
	if err != nil {
		return r, err
	}
	s := sample(t.proc.pid())
	r.outcome = fire(ctx, shot{url: t.url + "/marketplace/" + extension, bodies: ph.bodies, n: ph.load.N, c: ph.load.C, timeout: cfg.RequestTimeout})
	r.PeakRSSKB, r.CPU = s.finish()
	if err := st.alive(); err != nil {
		return r, err
	}
	// The counters are read even when ctx has ended: the phase's row is kept.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	after, err := st.calls(cctx)
	if err != nil {
		return r, err
	}
	for route, n := range after {
		r.Q2Calls += n - before[route]
	}
	r.Enrollments = after["Enrollment"] - before["Enrollment"]
	return r, nil
}
