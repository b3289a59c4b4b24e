package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The phases, in the order they run.
const (
	phaseNew    = "new"    // new ORDERs, each its own subscription
	phaseCopies = "copies" // copies of the answered ORDERs
	phaseStorm  = "storm"  // copies of ONE new ORDER at once
	phaseConns  = "conns"  // copies of the answered ORDERs over many connections
	phaseBA     = "ba"     // new Business Access ORDERs (Q2, then Helix)
	phaseQBD    = "qbd"    // new QBD Connect ORDERs
	phaseBurst  = "burst"  // ORDERs of new subscriptions, once, to the service only
)

var phaseNames = []string{phaseNew, phaseCopies, phaseStorm, phaseConns, phaseBA, phaseQBD}

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

// products are the ORDER templates of a run, one per product measured.
type products struct{ q2, ba, qbd *template }

// bench is a run's programs and templates, ready to send traffic.
type bench struct {
	cfg   config
	st    *stack
	tmpl  products
	close func()
}

// setUp reads the templates, builds the programs and starts them; close
// stops them and removes the work folder (unless --keep-logs).
func setUp(ctx context.Context, cfg config, stderr io.Writer) (*bench, error) {
	q2, err := loadTemplate(cfg.Fixture)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(cfg.RedisServer); err != nil {
		return nil, fmt.Errorf("--redis-server %q: not found (install it, e.g. apt-get install redis-server, or give its path): %w", cfg.RedisServer, err)
	}
	module, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.Profile != "" {
		if err := os.MkdirAll(cfg.Profile, 0o755); err != nil {
			return nil, &UsageError{Msg: fmt.Sprintf("--profile %s: %v", cfg.Profile, err)}
		}
	}
	b := &bench{cfg: cfg, tmpl: products{q2: q2}}
	if b.tmpl.ba, err = loadModuleTemplate(module, businessAccessFixture); err != nil {
		return nil, err
	}
	if b.tmpl.qbd, err = loadModuleTemplate(module, qbdFixture); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "webhook-loadtest-")
	if err != nil {
		return nil, fmt.Errorf("making a work folder: %w", err)
	}
	removeDir := func() {
		if cfg.KeepLogs {
			fmt.Fprintln(stderr, "logs and binaries kept in", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}
	fmt.Fprintln(stderr, "building ./cmd/webhook and the floor ...")
	bins, err := build(ctx, module, dir, cfg.Profile != "")
	if err != nil {
		removeDir()
		return nil, err
	}
	fmt.Fprintln(stderr, "starting redis-server, the sandbox, the service and the floor on 127.0.0.1 ...")
	if b.st, err = startStack(ctx, cfg, module, dir, bins); err != nil {
		removeDir()
		return nil, err
	}
	b.close = func() { b.st.stop(); removeDir() }
	return b, nil
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
	b, err := setUp(ctx, cfg, stderr)
	if err != nil {
		return nil, stopped(err)
	}
	defer b.close()

	var counts []countRow
	if cfg.Counts > 0 {
		fmt.Fprintf(stderr, "counting: %d ORDERs of each product and a copy of each, one by one, Redis MONITOR on ...\n", cfg.Counts)
		counts, err = b.count(ctx)
	}
	var rows []row
	if err == nil {
		rows, err = b.rounds(ctx, stderr)
	}
	var burst *burstResult
	if err == nil && cfg.Burst.N > 0 {
		burst, err = b.burst(ctx, stderr)
		if burst != nil {
			rows = append(rows, burst.row)
		}
	}
	fmt.Fprintf(stdout, "Load: new %d@%d, copies %d@%d, storm %d@%d, conns %d@%d, ba %d@%d, qbd %d@%d, burst %d@%d (requests@concurrency); %d round(s), service then floor; MAX_IN_FLIGHT %d; GOMEMLIMIT %s; GODEBUG %s; %d CPUs (GOMAXPROCS %d)\n\n",
		cfg.New.N, cfg.New.C, cfg.Copies.N, cfg.Copies.C, cfg.Storm.N, cfg.Storm.C, cfg.Conns.N, cfg.Conns.C,
		cfg.BA.N, cfg.BA.C, cfg.QBD.N, cfg.QBD.C, cfg.Burst.N, cfg.Burst.C,
		cfg.Rounds, cfg.MaxInFlight, orUnset(cfg.GoMemLimit), orUnset(cfg.GoDebug), runtime.NumCPU(), runtime.GOMAXPROCS(0))
	if len(counts) > 0 {
		fmt.Fprintln(stdout, "Per request, sent one by one (medians over the ORDERs; outside calls by route, the token fetch left out; Redis round trips are commands sent, a MULTI…EXEC once; commands include those scripts ran):")
		printCounts(stdout, counts)
		fmt.Fprintln(stdout)
	}
	printRows(stdout, rows)
	fmt.Fprintln(stdout, "\nService / floor, means over the rounds:")
	printRatios(stdout, rows, phaseNames)
	printPeaks(stdout, rows)
	if burst != nil {
		fmt.Fprintln(stdout)
		burst.print(stdout)
	}
	if err != nil {
		return rows, stopped(err)
	}
	return rows, nil
}

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

// phase is one phase's traffic in a round.
type phase struct {
	name      string
	load      load
	bodies    [][]byte
	extension string
	// freshSandbox: the sandbox is emptied before the phase (Business
	// Access numbers its customers from 1; see maxBA).
	freshSandbox bool
}

// rounds runs every phase against each target in turn (service, floor,
// service, floor, ...), from an empty Redis and sandbox each time. Both
// targets of a round get the same ORDERs.
func (b *bench) rounds(ctx context.Context, stderr io.Writer) ([]row, error) {
	cfg, st, tm := b.cfg, b.st, b.tmpl
	var rows []row
	for round := 1; round <= cfg.Rounds; round++ {
		orders := tm.q2.orders(cfg.New.N)
		phases := []phase{
			{name: phaseNew, load: cfg.New, bodies: orders, extension: tm.q2.extension},
			{name: phaseCopies, load: cfg.Copies, bodies: orders, extension: tm.q2.extension},
			{name: phaseStorm, load: cfg.Storm, bodies: [][]byte{tm.q2.order()}, extension: tm.q2.extension},
			{name: phaseConns, load: cfg.Conns, bodies: orders, extension: tm.q2.extension},
			{name: phaseBA, load: cfg.BA, bodies: tm.ba.orders(cfg.BA.N), extension: tm.ba.extension, freshSandbox: true},
			{name: phaseQBD, load: cfg.QBD, bodies: tm.qbd.orders(cfg.QBD.N), extension: tm.qbd.extension},
		}
		for _, t := range st.targets {
			if err := st.reset(ctx); err != nil {
				return rows, err
			}
			for _, ph := range phases {
				if ph.load.N == 0 {
					continue
				}
				if ph.freshSandbox {
					if err := st.resetSandbox(ctx); err != nil {
						return rows, err
					}
				}
				r, err := b.runPhase(ctx, t, ph, shot{})
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

// runPhase sends one phase to one target and measures it; with is the
// shot's settings beyond the phase's own (resend).
func (b *bench) runPhase(ctx context.Context, t target, ph phase, with shot) (row, error) {
	st := b.st
	r := row{Target: t.name, Phase: ph.name, Load: ph.load}
	before, err := st.calls(ctx)
	if err != nil {
		return r, err
	}
	if err := st.resetRedisStats(ctx); err != nil {
		return r, err
	}
	s := sample(t.proc.pid())
	redis0, redisErr := cpuTime(st.redis.pid())
	with.url, with.bodies, with.n, with.c, with.timeout = t.url+"/marketplace/"+ph.extension, ph.bodies, ph.load.N, ph.load.C, b.cfg.RequestTimeout
	var profiled sync.WaitGroup
	if b.cfg.Profile != "" && t.pprof != "" {
		with.halfway = func() {
			profiled.Go(func() { b.profile(ctx, t, ph.name) })
		}
	}
	r.outcome = fire(ctx, with)
	profiled.Wait()
	r.PeakRSSKB, r.CPU = s.finish()
	if redis1, err := cpuTime(st.redis.pid()); err == nil && redisErr == nil { // else unknown: 0
		r.RedisCPU = redis1 - redis0
	}
	r.AnonKB, r.FileKB = s.split()
	if err := st.alive(); err != nil {
		return r, err
	}
	// The counters are read even when ctx has ended: the phase's row is kept.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	stats, err := commandStats(cctx, st.redisAddr)
	if err != nil {
		return r, err
	}
	r.Redis = useOf(stats)
	after, err := st.calls(cctx)
	if err != nil {
		return r, err
	}
	r.Calls = delta(before, after)
	r.Enrollments = r.Calls["Enrollment"]
	return r, nil
}

// delta is after - before, per route, without the routes that did not move.
func delta(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for route, n := range after {
		if d := n - before[route]; d != 0 {
			out[route] = d
		}
	}
	return out
}

// burstResult is the burst phase and what it left behind.
type burstResult struct {
	row
	subscriptions int
	users         int      // Q2 users the sandbox holds afterwards
	redisBytes    int64    // Redis used_memory grown by the burst (0: unknown)
	inactive      []string // subscriptions not active after the burst
	checkErr      error    // the read API could not be asked
}

// burst sends ORDERs of new subscriptions to the service alone, 503s
// resent after their Retry-After as the marketplace does, then asks the
// read API whether every subscription is active.
func (b *bench) burst(ctx context.Context, stderr io.Writer) (*burstResult, error) {
	st, svc := b.st, b.st.targets[0]
	if err := st.reset(ctx); err != nil {
		return nil, err
	}
	// One ORDER first, so that the service holds a token the sandbox
	// knows: the burst's Enrollment calls are then each one subscription's.
	client := &http.Client{Timeout: b.cfg.RequestTimeout}
	warm := b.tmpl.q2.order()
	if err := send(ctx, client, svc.url+"/marketplace/"+b.tmpl.q2.extension, warm, false); err != nil {
		return nil, fmt.Errorf("burst: the first ORDER: %w", err)
	}
	client.CloseIdleConnections()
	base, err := st.stats(ctx)
	if err != nil {
		return nil, err
	}
	memBefore, memErr := usedMemory(ctx, st.redisAddr)
	bodies, subs := b.tmpl.q2.ordersOf(b.cfg.Burst.N)
	fmt.Fprintf(stderr, "burst: %d ORDERs of new subscriptions at %d to the service ...\n", b.cfg.Burst.N, b.cfg.Burst.C)
	r, err := b.runPhase(ctx, svc, phase{name: phaseBurst, load: b.cfg.Burst, bodies: bodies, extension: b.tmpl.q2.extension}, shot{resend: true})
	r.Round = 1
	res := &burstResult{row: r, subscriptions: len(subs)}
	fmt.Fprintf(stderr, "burst: %d sent in %.2fs; checking every subscription through the read API ...\n", r.Sent, r.Elapsed.Seconds())
	if err != nil {
		return res, err
	}
	res.inactive, res.checkErr = b.inactive(ctx, svc.url, subs)
	after, err := st.stats(ctx)
	if err != nil {
		return res, err
	}
	res.users = after.Users - base.Users
	if memAfter, err := usedMemory(ctx, st.redisAddr); err == nil && memErr == nil {
		res.redisBytes = memAfter - memBefore
	}
	return res, nil
}

// inactive returns the subscriptions the read API does not show active.
func (b *bench) inactive(ctx context.Context, serviceURL string, subs []string) ([]string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer client.CloseIdleConnections()
	var (
		next     atomic.Int64
		mu       sync.Mutex
		inactive []string
		firstErr error
		wg       sync.WaitGroup
	)
	for range 32 {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(subs) {
					return
				}
				ok, err := b.st.subscriptionActive(ctx, client, serviceURL, subs[i])
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if !ok {
					inactive = append(inactive, subs[i])
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return inactive, firstErr
}

// print writes the burst's verdicts: the bar is a sustained rate,
// its p99, no non-2xx but 503s with Retry-After, none lost, one Enrollment
// per subscription.
func (res *burstResult) print(w io.Writer) {
	r := res.row
	other := r.Sent - r.count2xx() - r.count(503, 503)
	fmt.Fprintf(w, "Burst: %d ORDERs of new subscriptions at %d concurrent to the service: %.0f ORDERs/s sustained (%.1fs), p99 %s\n",
		res.subscriptions, r.Load.C, float64(res.subscriptions)/r.Elapsed.Seconds(), r.Elapsed.Seconds(), ms(percentile(r.Latencies, .99)))
	fmt.Fprintf(w, "  replies: %d 2xx, %d 503 (%d without Retry-After; %d resent), %d other non-2xx; %d ORDERs never answered 2xx\n",
		r.count2xx(), r.count(503, 503), r.NoRetryAfter, r.Resent, other, r.Unanswered)
	lost := fmt.Sprintf("%d of %d subscriptions not active afterwards (read API)", len(res.inactive), res.subscriptions)
	if res.checkErr != nil {
		lost += "; the read API failed: " + res.checkErr.Error()
	}
	fmt.Fprintf(w, "  lost: %s\n", lost)
	fmt.Fprintf(w, "  Enrollment calls: %d, Q2 users created: %d, for %d subscriptions (%s); CPU/req %s; peak RSS %s\n",
		r.Enrollments, res.users, res.subscriptions, verdict(r.Enrollments == res.subscriptions && res.users == res.subscriptions),
		us(r.cpuPerRequest()), mib(r.PeakRSSKB))
	if res.redisBytes > 0 && res.subscriptions > 0 {
		fmt.Fprintf(w, "  Redis: used_memory grew %s, %d bytes per subscription (everything its ORDER wrote, allocator overhead included)\n",
			mib(res.redisBytes/1024), res.redisBytes/int64(res.subscriptions))
	}
}

func verdict(ok bool) string {
	if ok {
		return "one each"
	}
	return "NOT one each"
}

// profile saves the target's heap profile, its goroutines, its MemStats
// and 2 s of its CPU profile in the --profile folder, as
// <target>-<phase>-<n>.heap, .txt, .memstats and .cpu (n counts the
// rounds). Failures are said on the file, not fatal: a profile is a
// look, not a measurement.
func (b *bench) profile(ctx context.Context, t target, phase string) {
	base := filepath.Join(b.cfg.Profile, fmt.Sprintf("%s-%s-", t.name, phase))
	n := 1
	for ; ; n++ {
		if _, err := os.Stat(base + strconv.Itoa(n) + ".heap"); err != nil {
			break
		}
	}
	base += strconv.Itoa(n)
	client := &http.Client{Timeout: 20 * time.Second}
	get := func(path, file string) {
		var out []byte
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.pprof+path, nil)
		if err == nil {
			var resp *http.Response
			if resp, err = client.Do(req); err == nil {
				out, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
		}
		if err != nil {
			out = []byte("the profile could not be read: " + err.Error() + "\n")
		}
		_ = os.WriteFile(file, out, 0o644)
	}
	get("/debug/pprof/heap", base+".heap")
	get("/debug/pprof/goroutine?debug=1", base+".txt")
	get("/debug/pprof/profile?seconds=2", base+".cpu")
	get("/debug/pprof/heap?debug=1", base+".memstats")
	// Of the text heap profile, only its runtime.MemStats lines ("# Stack = ...").
	if b, err := os.ReadFile(base + ".memstats"); err == nil {
		var keep []byte
		for line := range bytes.Lines(b) {
			if bytes.HasPrefix(line, []byte("# ")) && !bytes.HasPrefix(line, []byte("# 0x")) {
				keep = append(keep, line...)
			}
		}
		_ = os.WriteFile(base+".memstats", keep, 0o644)
	}
}
