// Command webhook is the marketplace subscription webhook receiver: the
// extension URL that the Q2 marketplace calls when a subscription is ordered,
// changed or cancelled. Subcommands: serve (default), replay, sandbox,
// settle, version. Run `webhook COMMAND --help` for each one's flags. The
// load benchmark is its own program, cmd/loadtest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on stderr, once, each of its lines prefixed with
// "webhook: " (a bad configuration has one line per problem), and maps it
// to the exit status: 0 for none or --help, the error's own code when it
// has one (2 for a bad flag or setting), else 1.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(stderr, "webhook:", line)
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return 1
}

// version, when set at build time (-ldflags "-X main.version=1.2.3"),
// wins over the module version of the build info.
var version = ""

const usage = `Usage: webhook [COMMAND] [flags]

Commands:
  serve        run the receiver (the default; its settings: webhook serve --help)
  replay       send fixture files to a running receiver
  sandbox      run the sandbox alone: Q2, QBD Connect, Helix and an AppDirect marketplace in memory (alias: q2-sandbox)
  settle       run one settle pass now on the settle queue (or --subscription ID) and print what it did
  version      print the module version and the VCS revision it was built from
  help         print this list (also: webhook --help, webhook -h)

Run "webhook COMMAND --help" for a command's flags.
`

// run is the whole program, callable from tests: ctx ends it (as SIGINT or
// SIGTERM does), getenv stands for the environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h" || args[0] == "-help") {
		fmt.Fprint(stdout, usage) // the commands; `webhook serve --help` has serve's flags
		return nil
	}
	cmd := "serve"
	if len(args) > 0 && (args[0] == "" || args[0][0] != '-') {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "replay":
		return runReplay(ctx, args, getenv, stdout, stderr)
	case "sandbox", "q2-sandbox":
		return runSandbox(ctx, args, getenv, stdout, stderr)
	case "settle":
		return runSettle(ctx, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &configError{msg: fmt.Sprintf("unknown command %q", cmd)}
}

// versionString is the module version and the VCS revision the binary
// was built from, with "modified" when the tree had uncommitted changes,
// from the build info Go records: "webhook v1.2.0 (rev 82e1415…, modified)
// go1.26.0". go build inside a git checkout records the revision; go
// install module@version records the version; a test binary has neither.
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "webhook " + orDevel(version) + " (no build info)"
	}
	return buildVersion(version, info)
}

func buildVersion(override string, info *debug.BuildInfo) string {
	v := override
	if v == "" {
		v = info.Main.Version
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	vcs := "no VCS revision: built outside a git checkout or with -buildvcs=false"
	if rev != "" {
		vcs = "rev " + rev
		if modified == "true" {
			vcs += ", modified"
		}
	}
	return fmt.Sprintf("webhook %s (%s) %s", orDevel(v), vcs, info.GoVersion)
}

// orDevel is v, or "(devel)" for a build without a version, as Go says.
func orDevel(v string) string {
	if v == "" {
		return "(devel)"
	}
	return v
}
