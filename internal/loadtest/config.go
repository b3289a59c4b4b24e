package loadtest

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"time"
)

// UsageError is a bad flag; its message names the flag and the fix. Its
// exit status is 2, like the webhook command's configuration errors.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ExitCode is 2: the command was called wrongly.
func (e *UsageError) ExitCode() int { return 2 }

// load is one phase's size: N requests at concurrency C.
type load struct{ N, C int }

// config is one benchmark run, from flags.
type config struct {
	New, Copies, Storm, Conns load
	BA, QBD                   load // ORDERs of Business Access (Q2 + Helix) and QBD Connect
	Burst                     load // ORDERs of new subscriptions, once, to the service only; N 0: none
	Counts                    int  // ORDERs of each product sent one by one to count calls and round trips; 0: none
	Rounds                    int
	Timeout                   time.Duration // the whole run, build included
	RequestTimeout            time.Duration
	MaxInFlight               int
	Fixture                   string // "": the embedded ORDER
	RedisServer               string
	KeepLogs                  bool
	GoMemLimit                string // GOMEMLIMIT of the service and the floor; "": unset
	GoDebug                   string // GODEBUG of the service and the floor; "": unset
	// Profile, when set, is a folder: both targets are built with -tags
	// pprof, and halfway through each phase their heap profile,
	// goroutines, MemStats and 2 s of CPU profile are saved there.
	Profile string
}

// The phases' defaults and their --quick sizes.
var (
	defaults = config{
		New:    load{2000, 64},
		Copies: load{20000, 64},
		Storm:  load{10000, 256},
		Conns:  load{20000, 1000},
		BA:     load{1000, 64},
		QBD:    load{1000, 64},
		Burst:  load{0, 256},
		Counts: 5,
		Rounds: 2, Timeout: 5 * time.Minute, RequestTimeout: 30 * time.Second,
		MaxInFlight: 256, RedisServer: "redis-server",
	}
	quick = config{
		New:    load{40, 8},
		Copies: load{400, 8},
		Storm:  load{200, 32},
		Conns:  load{400, 100},
		BA:     load{40, 8},
		QBD:    load{40, 8},
	}
)

const usage = `Usage: loadtest [flags]

Builds ./cmd/webhook and the floor server, starts redis-server, the Q2
sandbox, the service (WEBHOOK_AUTH=none) and the floor on 127.0.0.1, sends
each phase to the service and to the floor in turn (service, floor, service,
floor, ...), and prints throughput, latency, statuses, CPU per request and
peak RSS of each, then the ratios service/floor. Everything it starts is
stopped when it ends, fails, times out or is interrupted.

Phases: new ORDERs; copies of answered ORDERs; a storm of copies of one new
ORDER; copies over many connections; new ORDERs of Business Access (Q2 then
Helix) and of QBD Connect (the service runs with products.example.yaml).
Before them, a few ORDERs of each product and a copy of each are sent one by
one with Redis MONITOR on, to count each one's outside calls, Redis round
trips and commands. --burst N ends the run: N ORDERs of new subscriptions to
the service alone, 503s sent again after their Retry-After, then every
subscription checked active through the read API.

Flags:
`

// parseArgs reads the flags. --quick sets small sizes for the phases whose
// flags are not given.
func parseArgs(args []string, stderr io.Writer) (config, error) {
	cfg := defaults
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.New.N, "new", cfg.New.N, "new ORDERs, each with its own subscription")
	fs.IntVar(&cfg.New.C, "new-c", cfg.New.C, "concurrency of the new ORDERs")
	fs.IntVar(&cfg.Copies.N, "copies", cfg.Copies.N, "copies of answered ORDERs (0 skips the phase)")
	fs.IntVar(&cfg.Copies.C, "copies-c", cfg.Copies.C, "concurrency of the copies")
	fs.IntVar(&cfg.Storm.N, "storm", cfg.Storm.N, "copies of ONE new ORDER sent at once (0 skips the phase)")
	fs.IntVar(&cfg.Storm.C, "storm-c", cfg.Storm.C, "concurrency of the storm")
	fs.IntVar(&cfg.Conns.N, "conns", cfg.Conns.N, "copies of answered ORDERs over many connections (0 skips the phase)")
	fs.IntVar(&cfg.Conns.C, "conns-c", cfg.Conns.C, "connections (and concurrency) of that phase")
	fs.IntVar(&cfg.BA.N, "ba", cfg.BA.N, "new Business Access ORDERs (Q2 then Helix; 0 skips the phase)")
	fs.IntVar(&cfg.BA.C, "ba-c", cfg.BA.C, "concurrency of the Business Access ORDERs")
	fs.IntVar(&cfg.QBD.N, "qbd", cfg.QBD.N, "new QBD Connect ORDERs (0 skips the phase)")
	fs.IntVar(&cfg.QBD.C, "qbd-c", cfg.QBD.C, "concurrency of the QBD Connect ORDERs")
	fs.IntVar(&cfg.Burst.N, "burst", cfg.Burst.N, "after the rounds, this many ORDERs of new subscriptions to the service alone, like 100000 (0: none)")
	fs.IntVar(&cfg.Burst.C, "burst-c", cfg.Burst.C, "concurrency of the burst")
	fs.IntVar(&cfg.Counts, "counts", cfg.Counts, "ORDERs of each product sent one by one, with a copy each, to count calls and Redis round trips (0: none)")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds; each runs every phase against the service, then against the floor")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on the whole run, build included")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "bound on one request")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "MAX_IN_FLIGHT of the service and of the floor")
	fs.StringVar(&cfg.Fixture, "fixture", "", "a SUBSCRIPTION_ORDER JSON file to build the ORDERs from (default: the embedded fixtures/story/01-order.json)")
	fs.StringVar(&cfg.RedisServer, "redis-server", cfg.RedisServer, "the redis-server program")
	fs.StringVar(&cfg.GoDebug, "godebug", "", "GODEBUG of the service and of the floor, like adaptivestackstart=0 (default: unset)")
	fs.StringVar(&cfg.GoMemLimit, "gomemlimit", "", "GOMEMLIMIT of the service and of the floor, like 48MiB (default: unset, the Go runtime's default)")
	fs.StringVar(&cfg.Profile, "profile", "", "a folder: build both targets with -tags pprof and save their heap, goroutine and CPU profiles halfway through each phase (where the bytes and the CPU go; it costs CPU)")
	fs.BoolVar(&cfg.KeepLogs, "keep-logs", false, "keep the processes' logs and binaries (their folder is printed)")
	isQuick := fs.Bool("quick", false, "tiny phases, for a smoke test (flags given explicitly still win)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, &UsageError{Msg: err.Error() + " (see loadtest --help)"}
	}
	if fs.NArg() > 0 {
		return cfg, &UsageError{Msg: fmt.Sprintf("unexpected argument %q: loadtest takes only flags (see loadtest --help)", fs.Arg(0))}
	}
	if *isQuick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		pick := func(name string, dst *int, v int) {
			if !set[name] {
				*dst = v
			}
		}
		pick("new", &cfg.New.N, quick.New.N)
		pick("new-c", &cfg.New.C, quick.New.C)
		pick("copies", &cfg.Copies.N, quick.Copies.N)
		pick("copies-c", &cfg.Copies.C, quick.Copies.C)
		pick("storm", &cfg.Storm.N, quick.Storm.N)
		pick("storm-c", &cfg.Storm.C, quick.Storm.C)
		pick("conns", &cfg.Conns.N, quick.Conns.N)
		pick("conns-c", &cfg.Conns.C, quick.Conns.C)
		pick("ba", &cfg.BA.N, quick.BA.N)
		pick("ba-c", &cfg.BA.C, quick.BA.C)
		pick("qbd", &cfg.QBD.N, quick.QBD.N)
		pick("qbd-c", &cfg.QBD.C, quick.QBD.C)
	}
	return cfg, cfg.validate()
}

// maxConcurrency bounds every -c flag: each is a connection, and a file
// descriptor in this process and in the server.
const maxConcurrency = 5000

// maxBA bounds the Business Access phase: the fixture's business customer
// is 5001, and Helix refuses it as a target.
const maxBA = 5001

// goMemLimit is what the Go runtime accepts in GOMEMLIMIT.
var goMemLimit = regexp.MustCompile(`^[0-9]+(B|KiB|MiB|GiB|TiB)?$`)

func (c config) validate() error {
	bad := func(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }
	if c.GoMemLimit != "" && !goMemLimit.MatchString(c.GoMemLimit) {
		return bad("--gomemlimit %q: want bytes with an optional unit, like 48MiB", c.GoMemLimit)
	}
	if c.New.N < 1 {
		return bad("--new %d: want at least 1, like 2000 (the copies phases copy these ORDERs)", c.New.N)
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"copies", c.Copies.N}, {"storm", c.Storm.N}, {"conns", c.Conns.N}, {"ba", c.BA.N}, {"qbd", c.QBD.N}, {"burst", c.Burst.N}} {
		if f.n < 0 {
			return bad("--%s %d: want 0 (skip the phase) or more", f.name, f.n)
		}
	}
	for _, f := range []struct {
		name string
		c    int
	}{{"new-c", c.New.C}, {"copies-c", c.Copies.C}, {"storm-c", c.Storm.C}, {"conns-c", c.Conns.C},
		{"ba-c", c.BA.C}, {"qbd-c", c.QBD.C}, {"burst-c", c.Burst.C}} {
		if f.c < 1 || f.c > maxConcurrency {
			return bad("--%s %d: want 1 to %d", f.name, f.c, maxConcurrency)
		}
	}
	switch {
	case c.BA.N >= maxBA:
		return bad("--ba %d: want fewer than %d (the fixture's requestingCustomerId is %d, and the sandbox numbers the phase's customers from 1)", c.BA.N, maxBA, maxBA)
	case c.Counts < 0 || c.Counts > 50:
		return bad("--counts %d: want 0 to 50, like 5", c.Counts)
	case c.Rounds < 1 || c.Rounds > 20:
		return bad("--rounds %d: want 1 to 20, like 2", c.Rounds)
	case c.Timeout <= 0:
		return bad("--timeout %s: want a positive duration, like 5m", c.Timeout)
	case c.RequestTimeout <= 0:
		return bad("--request-timeout %s: want a positive duration, like 30s", c.RequestTimeout)
	case c.MaxInFlight < 1:
		return bad("--max-in-flight %d: want at least 1, like 256", c.MaxInFlight)
	case c.RedisServer == "":
		return bad("--redis-server: give the redis-server program, like redis-server")
	}
	return nil
}
