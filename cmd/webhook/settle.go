package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/metrics"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/settler"
	"github.com/banking-marketplace/webhook/internal/store"
)

// newService is the provisioning use case of the configured products,
// on the store and the outside APIs' clients.
func newService(cfg *config, clients targets, db *store.Redis, m *metrics.Metrics, log *zap.Logger) (*provisioning.Service, error) {
	plans, err := plans(cfg.Catalog, clients, cfg)
	if err != nil {
		return nil, &configError{msg: err.Error()}
	}
	service, err := provisioning.New(db, plans, provisioning.Config{
		LockLease:    inbox.Lease(cfg.ProcessTimeout),
		LockWait:     cfg.ProcessTimeout / 3,
		AbandonAfter: cfg.AbandonAfter,
		Observer:     m,
	}, log)
	if err != nil {
		return nil, &configError{msg: "PRODUCTS_FILE: " + err.Error()}
	}
	return service, nil
}

// newSettler is the settle queue's worker; with tp (tracing on), each
// pass is a trace of its own.
func newSettler(cfg *config, db *store.Redis, service *provisioning.Service, tp trace.TracerProvider, log *zap.Logger, m *metrics.Metrics) *settler.Worker {
	var s settler.Settler = service
	if tp != nil {
		s = tracedSettler{Settler: service, tracer: tp.Tracer(tracerName)}
	}
	return settler.New(db, s, settler.Config{Pass: cfg.ProcessTimeout, Lease: inbox.Lease(cfg.ProcessTimeout)},
		log.Named("settler"), m)
}

// runSettle is `webhook settle [--subscription ID]`: one settle pass now,
// on every queued subscription (due or not) or on one, against the Redis
// and outside APIs the environment configures (as for serve), printing
// what it did.
func runSettle(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("webhook settle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	only := fs.String("subscription", "", "settle only this subscription")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: webhook settle [--subscription ID]\n\nRuns one settle pass now on every subscription of the settle queue (or on one),\nwith the configuration of `webhook serve` (its environment variables), and\nprints what it did.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &configError{msg: err.Error() + " (see webhook settle --help)"}
	}
	cfg, err := loadConfig(nil, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	defer func() { _ = log.Sync() }()
	m := metrics.New()
	o := cfg.storeOptions()
	o.Logger = log
	db, err := store.Open(ctx, o)
	switch {
	case errors.Is(err, events.ErrUnavailable):
		return fmt.Errorf("opening redis: %w", err)
	case err != nil:
		return &configError{msg: err.Error()}
	}
	defer db.Close()
	clients, stopSandbox, err := outsideAPIs(cfg, log, m, nil)
	if err != nil {
		return err
	}
	defer stopSandbox()
	service, err := newService(cfg, clients, db, m, log)
	if err != nil {
		return err
	}
	tp, stopTracing, err := startTracing(ctx, cfg.Tracing, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	results, err := newSettler(cfg, db, service, tp, log, nil).Once(ctx, *only)
	if err != nil {
		return fmt.Errorf("reading the settle queue: %w", err)
	}
	return printSettled(stdout, results)
}

// printSettled prints one line per subscription and a summary; an error
// when a subscription could not be worked on.
func printSettled(w io.Writer, results []settler.Result) error {
	var settled, unsettled, failed int
	for _, r := range results {
		rep := r.Report
		switch {
		case errors.Is(r.Err, events.ErrBusy):
			failed++
			fmt.Fprintf(w, "%s  busy: another replica or event holds it; try again\n", rep.Subscription)
		case r.Err != nil:
			failed++
			fmt.Fprintf(w, "%s  error: %v\n", rep.Subscription, r.Err)
		case rep.Missing:
			fmt.Fprintf(w, "%s  no account: dropped from the queue\n", rep.Subscription)
		case rep.Settled:
			settled++
			fmt.Fprintf(w, "%s  %s, settled%s  %s\n", rep.Subscription, rep.Intent, abandoned(rep), steps(rep.Steps))
		default:
			unsettled++
			fmt.Fprintf(w, "%s  %s, not settled%s: %s; next try %s  %s\n", rep.Subscription, rep.Intent, abandoned(rep),
				rep.Waiting, rep.Due.UTC().Format(time.RFC3339), steps(rep.Steps))
		}
	}
	fmt.Fprintf(w, "%d subscription(s): %d settled, %d not settled, %d not worked on\n", len(results), settled, unsettled, failed)
	if failed > 0 {
		return fmt.Errorf("%d subscription(s) could not be worked on", failed)
	}
	return nil
}

func abandoned(r provisioning.Report) string {
	if r.Abandoned {
		return " (given up after ABANDON_AFTER)"
	}
	return ""
}

func steps(st []events.Step) string {
	parts := make([]string, 0, len(st))
	for _, s := range st {
		parts = append(parts, s.Target+" "+string(s.State))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
