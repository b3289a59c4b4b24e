// Command loadtest runs the load benchmark (see internal/loadtest and
// BENCHMARKS.md): go run ./cmd/loadtest [--quick] [flags], or make loadtest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/banking-marketplace/webhook/internal/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := loadtest.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	fmt.Fprintln(os.Stderr, "loadtest:", err)
	var usage *loadtest.UsageError
	if errors.As(err, &usage) {
		os.Exit(usage.ExitCode())
	}
	os.Exit(1)
}
