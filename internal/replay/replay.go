// Package replay is the `webhook replay` command: it sends fixture files
// (SubscriptionEvents as a marketplace would post them) to a running
// receiver, signed the Standard Webhooks way, checks each reply against the
// expectation file beside the fixture, and reports one line per fixture and
// a summary.
//
// It is a test and demo tool for people: it favours clear one-line reasons
// over exhaustive output, and stays within bounded memory on large runs
// (fixtures are listed up front, read one at a time when their turn comes,
// and only what the summary needs is kept).
//
// # Order and placeholders
//
// A fixture may hold {{accounts.NAME}} anywhere (in the fixture or its
// expectation file): it is replaced by the accountIdentifier that the
// fixture NAME (file name without .json) received earlier in the run. Two
// rules keep the order right when --concurrency is above 1:
//
//   - A folder in which any fixture or expectation holds a placeholder is a
//     story: its fixtures are sent one after another, in name order, by one
//     worker (a story's later steps depend on more than the fixture they
//     name: a change after a cancel must follow the cancel). Folders without
//     placeholders, and single files, are sent concurrently.
//   - A fixture whose placeholder names a fixture of another PATH waits until
//     that fixture has finished. Only fixtures earlier in the run can be
//     named, so waiting never deadlocks; a name with no earlier fixture, or
//     one that got no accountIdentifier, fails the fixture with the reason.
//
// So to replay a story concurrently with other traffic, pass its folder;
// listing its files one by one sends them concurrently.
//
// # Skipped fixtures
//
// Once a fixture of a story did not pass (failed or mismatched), the later
// fixtures of that story are not sent: they are reported as skipped, "an
// earlier event of this story failed", and counted apart, so the summary
// points at the one failure instead of a cascade of them. A fixture whose
// placeholder names a fixture of another PATH that did not pass is skipped
// the same way.
//
// # Fresh subscriptions
//
// A receiver that keeps its state remembers a story's subscription: a second
// run's ORDER meets a cancelled subscription and is refused. With --fresh,
// each subscription_id (the top-level field, which the receiver keys
// everything on) is sent as a new random UUID, the same for every fixture of
// the run that names the same original, so a story stays one subscription
// and is new to the receiver on every run. The accountIdentifier of later
// events follows through the placeholders above; webhook-id is random per
// request, or with --keep-ids derived from the body sent, which holds the
// fresh id.
package replay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/banking-marketplace/webhook/internal/signature"
)

// ExitError is an error that asks for a particular process exit status:
// 1 when a delivery failed or a reply did not match, 2 for bad arguments.
// Its message is one line, for stderr.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit status the error asks for.
func (e *ExitError) ExitCode() int { return e.Code }

// Exit statuses.
const (
	ExitFailed = 1 // a delivery failed, a reply mismatched, or a dry-run found a bad fixture
	ExitUsage  = 2 // bad arguments
)

func usageError(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf("replay: "+format, args...)}
}

// Defaults of the flags.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 1
)

// config is the parsed command line.
type config struct {
	url         *url.URL
	secret      string
	basicUser   string // with basicPass: HTTP Basic credentials, for WEBHOOK_AUTH=basic
	basicPass   string
	extension   string
	concurrency int
	dryRun      bool
	timeout     time.Duration
	format      string
	keepIDs     bool
	fresh       bool
	marketplace *url.URL // the sandbox marketplace raw AppDirect events go through
	paths       []string
}

// Run is `webhook replay`: args are the arguments after the subcommand name,
// getenv reads the environment (WEBHOOK_SECRETS, WEBHOOK_BASIC_AUTH). Per-fixture lines and the
// summary go to stdout, the progress bar (on a terminal) to stderr. It
// returns nil for exit status 0, else an *ExitError whose one-line message
// the caller prints to stderr.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseArgs(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	p, err := plan(cfg.paths, !cfg.dryRun)
	if err != nil {
		return err
	}
	if cfg.dryRun {
		return dryRun(p, cfg, stdout)
	}
	return send(ctx, p, cfg, stdout, stderr)
}

const usageText = `Usage: webhook replay --url URL [flags] PATH...

Sends fixture files to a running receiver at URL/marketplace/{extension}.
Each PATH is a .json file holding one SubscriptionEvent, or a folder whose
.json files (other than *.expect.json) are sent in name order. Where
NAME.expect.json stands beside NAME.json, the reply must match the fields
given there (success, errorCode, accountIdentifier, message, status).
{{accounts.NAME}} in a fixture is replaced by the accountIdentifier fixture
NAME received earlier in the run. A folder using placeholders is a story:
it is sent in order even with --concurrency above 1, and once one of its
fixtures fails, the later ones are skipped. --fresh gives every
subscription_id a new id for this run, so a story can be replayed against
the same receiver again and again.

A raw AppDirect event (a JSON object with "type" and no "event_type", as
AppDirect itself sends it) goes through the sandbox's marketplace
(--marketplace): registered there, then notified to URL/appdirect/events by
the sandbox, signed as AppDirect signs; when the service answers 202 (its
results asynchronous), the result the sandbox then receives is the reply.

Each line reads: file, HTTP status, outcome ("(replayed)" when the receiver
answered from its store, Idempotent-Replayed: true), duration, verdict.

Exit status: 0 all good, 1 a delivery failed (connection error, non-JSON
reply, 5xx) or a reply did not match (with --dry-run: a fixture is
invalid), 2 bad arguments.

Flags:
`

func parseArgs(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	var (
		cfg    config
		rawURL string
		fs     = flag.NewFlagSet("webhook replay", flag.ContinueOnError)
	)
	fs.SetOutput(io.Discard) // errors are returned as one line; --help goes to stdout
	fs.StringVar(&rawURL, "url", "", "base URL of the receiver, e.g. http://localhost:8080 (required unless --dry-run)")
	fs.StringVar(&cfg.secret, "secret", "", "signing secret (whsec_...); default: the first of WEBHOOK_SECRETS; --secret= sends unsigned")
	basicAuth := fs.String("basic-auth", "", "user:password sent as HTTP Basic credentials, for a receiver with WEBHOOK_AUTH=basic; default: WEBHOOK_BASIC_AUTH; --basic-auth= sends none")
	fs.StringVar(&cfg.extension, "extension", "", "extension path segment; default: the fixture's extension_name, else the last segment of its extension_url")
	fs.IntVar(&cfg.concurrency, "concurrency", DefaultConcurrency, "requests in flight at once")
	fs.BoolVar(&cfg.dryRun, "dry-run", false, "decode and validate the fixtures only; send nothing")
	fs.DurationVar(&cfg.timeout, "timeout", DefaultTimeout, "deadline of each request")
	fs.StringVar(&cfg.format, "format", "text", "output format: text, or json (one object per line)")
	fs.BoolVar(&cfg.keepIDs, "keep-ids", false, "derive webhook-id from the body sent instead of a fresh random one, so that a second run tests deduplication")
	fs.BoolVar(&cfg.fresh, "fresh", false, "send every subscription_id as a new random id, the same for the same original in this run, so that stories replay green on every run")
	rawMarket := fs.String("marketplace", "http://127.0.0.1:9090", "the sandbox whose AppDirect marketplace notifies the receiver of raw AppDirect events (demo mode's embedded sandbox by default)")

	// Flags may come before or after the paths: parse, take one path, repeat.
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, usageText)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return cfg, flag.ErrHelp
			}
			return cfg, usageError("%v (see webhook replay --help)", err)
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if consumed := len(rest) - len(left); consumed > 0 && rest[consumed-1] == "--" {
			cfg.paths = append(cfg.paths, left...) // after --, everything is a path
			break
		}
		cfg.paths = append(cfg.paths, left[0])
		rest = left[1:]
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["secret"] && getenv != nil {
		if fields := strings.Fields(getenv("WEBHOOK_SECRETS")); len(fields) > 0 {
			cfg.secret = fields[0]
		}
	}
	basicSource := "--basic-auth"
	if !set["basic-auth"] && getenv != nil {
		*basicAuth, basicSource = getenv("WEBHOOK_BASIC_AUTH"), "WEBHOOK_BASIC_AUTH"
	}

	switch {
	case len(cfg.paths) == 0:
		return cfg, usageError("no PATH given: name fixture files or folders, e.g. webhook replay --url http://localhost:8080 fixtures/story")
	case cfg.concurrency < 1:
		return cfg, usageError("--concurrency is %d: give 1 or more", cfg.concurrency)
	case cfg.format != "text" && cfg.format != "json":
		return cfg, usageError("--format %q is not supported: use text or json", cfg.format)
	case cfg.timeout <= 0:
		return cfg, usageError("--timeout is %s: give a positive duration such as 10s", cfg.timeout)
	case strings.ContainsAny(cfg.extension, "/?#"):
		return cfg, usageError("--extension %q must be one path segment, without / ? or #", cfg.extension)
	}
	if cfg.dryRun {
		return cfg, nil
	}
	if rawURL == "" {
		return cfg, usageError("--url is required: give the receiver's base URL, e.g. --url http://localhost:8080 (or use --dry-run)")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, usageError("--url %q is not an http(s) URL: give e.g. --url http://localhost:8080", rawURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	cfg.url = u
	if cfg.marketplace, err = url.Parse(strings.TrimSuffix(*rawMarket, "/")); err != nil ||
		(cfg.marketplace.Scheme != "http" && cfg.marketplace.Scheme != "https") || cfg.marketplace.Host == "" {
		return cfg, usageError("--marketplace %q is not an http(s) URL: give the sandbox's, e.g. --marketplace http://127.0.0.1:9090", *rawMarket)
	}
	if cfg.secret != "" {
		if _, err := signature.Sign(cfg.secret, "msg_check", time.Unix(0, 0), nil); err != nil {
			return cfg, usageError("--secret (or the first of WEBHOOK_SECRETS): %v", err)
		}
	}
	if *basicAuth != "" {
		user, pass, ok := strings.Cut(*basicAuth, ":")
		if !ok || user == "" || pass == "" {
			// The value is a password: name where it came from, never what it is.
			return cfg, usageError("%s must be user:password, both non-empty (or --basic-auth= to send no credentials)", basicSource)
		}
		cfg.basicUser, cfg.basicPass = user, pass
	}
	return cfg, nil
}

// isTerminal reports whether w is a terminal, for the progress bar.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && termIsTerminal(int(f.Fd()))
}
