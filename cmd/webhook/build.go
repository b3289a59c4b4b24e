package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/handlers"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/metrics"
	"github.com/banking-marketplace/webhook/internal/outside"
	"github.com/banking-marketplace/webhook/internal/settler"
	"github.com/banking-marketplace/webhook/internal/store"
)

// app is the service built from its configuration: the parts that
// serveAndDrain serves, and what close stops.
type app struct {
	cfg       *config
	log       *zap.Logger
	db        *store.Redis
	monitor   *outside.Monitor
	inbox     *inbox.Inbox
	seen      *systems            // each outside system's state, from this replica's calls
	console   http.Handler        // nil without API_TOKENS
	appDirect *handlers.AppDirect // nil: no AppDirect door
	listeners listeners           // bound, not yet serving
	draining  atomic.Bool         // set when the drain starts: /readyz answers 503

	tracer trace.TracerProvider // nil: tracing off

	stopSandbox func() // demo mode's embedded sandbox
	stopMonitor func() // the monitor's periodic checks
	stopSettler func() // the settle queue's worker
	stopTracing func() // exports the last spans
}

// build starts tracing (when an OTLP endpoint is set), opens Redis, makes
// the outside APIs' clients and checks them, builds the provisioning
// service, starts the settler and binds the listeners. Credentials an outside API or Redis refuses stop it (exit 1);
// an API that does not answer is a warning, and /readyz shows its state.
// On an error, what it had started is stopped again.
func build(ctx context.Context, cfg *config, log *zap.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log}
	fail := func(err error) (*app, error) {
		a.close()
		return nil, err
	}
	var err error
	if a.tracer, a.stopTracing, err = startTracing(ctx, cfg.Tracing, log); err != nil {
		return nil, err
	}
	m := metrics.New()
	db, err := openStore(ctx, cfg, log, m)
	if err != nil {
		return fail(err)
	}
	a.db = db
	a.seen = newSystems(time.Now)
	clients, stopSandbox, err := outsideAPIs(cfg, log, m, a.seen)
	if err != nil {
		return fail(err)
	}
	a.stopSandbox = stopSandbox
	a.monitor = outsideMonitor(cfg, clients, db, log)
	if err := a.monitor.Start(ctx); err != nil {
		return fail(err)
	}
	a.stopMonitor = a.monitor.Watch(recheckEvery)

	if cfg.Auth == "none" && !cfg.Demo { // demo mode's line says so
		log.Warn("WEBHOOK_AUTH=none: requests are accepted without authentication")
	}
	service, err := newService(cfg, clients, db, m, log)
	if err != nil {
		return fail(err)
	}
	in := inbox.New(db, service, inbox.Config{ProcessTimeout: cfg.ProcessTimeout, TTL: cfg.EventTTL, StatusOf: handlers.StatusOf}, log)
	a.inbox = in
	// AppDirect's results answered later: by the replica that answered
	// 202, at once, and by every replica's settler from the queue; each
	// pass a trace of its own.
	answer := func(ctx context.Context, token string) error { return in.AnswerLater(ctx, token, cfg.EventTTL) }
	if a.tracer != nil {
		answer = tracedAnswer(a.tracer.Tracer(tracerName), answer)
	}
	if a.appDirect, err = appDirectDoor(cfg, clients.sandbox, db, in, answer, log, m, a.seen); err != nil {
		return fail(err)
	}
	var marketplaces []string
	if a.appDirect != nil {
		marketplaces = a.appDirect.Marketplaces
	}
	if a.console, err = newConsole(cfg, db, a.monitor, a.seen, service, marketplaces, log); err != nil {
		return fail(err)
	}
	// Every replica works the settle queue: what a reply left unsettled,
	// the settler finishes, whether or not the marketplace asks again;
	// and AppDirect's results answered later, until each is accepted.
	w := newSettler(cfg, db, service, a.tracer, log, m)
	if a.appDirect != nil {
		w.WithResults(settler.Results{TakeDue: db.TakeDueResults, Answer: answer, Pending: db.PendingResults})
	}
	a.stopSettler = startSettler(ctx, w)
	if a.listeners, err = listen(cfg, a.routes(in, m), log); err != nil {
		return fail(err)
	}
	return a, nil
}

// routes are the handlers' configuration: the inbox and the readers
// behind the routes, and what /readyz asks.
func (a *app) routes(in *inbox.Inbox, m *metrics.Metrics) handlers.Config {
	return handlers.Config{
		Receiver:    in,
		Products:    a.cfg.Catalog,
		Reader:      a.db,
		Observer:    m,
		Metrics:     m.Handler(),
		APITokens:   a.cfg.APITokens,
		Auth:        authenticator(a.cfg),
		MaxInFlight: a.cfg.MaxInFlight,
		Logger:      a.log,
		Outside:     a.monitor.State,
		AppDirect:   a.appDirect,
		Console:     a.console,
		// A nil interface when off, so that the handlers install nothing.
		TracerProvider: a.tracer,
		Ready: func(ctx context.Context) error {
			if a.draining.Load() {
				return &handlers.NotReadyError{Reason: "shutting down"}
			}
			if err := a.db.Ping(ctx); err != nil { // the detail names addresses: the log's, not the reply's
				return &handlers.NotReadyError{Reason: "redis: unavailable", Cause: err}
			}
			a.monitor.Recheck(ctx) // Redis's eviction policy: "outside" and the log follow it
			return nil
		},
	}
}

// close stops what build started, users before what they use: the
// settler (it writes to Redis and calls the outside APIs) and the
// AppDirect results being answered in the background, then the monitor
// (it reads Redis and calls them), then the embedded sandbox, the tracer
// provider (the last spans exported, every span being ended) and Redis.
// The listeners' handlers use them too: serveAndDrain has waited for
// every one to return before. Safe after a build that failed half-way.
func (a *app) close() {
	for _, stop := range []func(){a.stopSettler, a.waitInbox, a.stopMonitor, a.stopSandbox, a.stopTracing} {
		if stop != nil {
			stop()
		}
	}
	if a.db != nil {
		_ = a.db.Close()
	}
}

// startSettler runs w until stop is called, detached from ctx's end (the
// drain decides when it stops); stop waits for it.
func startSettler(ctx context.Context, w *settler.Worker) (stop func()) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(wctx)
	}()
	return func() { cancel(); <-done }
}

// openStore opens Redis within the start's bound: a start must not hang
// forever on an unreachable Redis. go-redis logs through one process-wide
// logger, muted meanwhile: the ping's failure is said once, as the error.
func openStore(ctx context.Context, cfg *config, log *zap.Logger, m *metrics.Metrics) (*store.Redis, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	setGoRedisLogger(log.Named("redis"))
	unmute := muteGoRedis()
	defer unmute()
	return openRedis(ctx, cfg, log, m.RedisError)
}

// openRedis opens the store of cfg's Redis settings, saying in one line
// what went wrong: Redis refusing the password in REDIS_URL (exit 1: the
// settings parse, Redis says no), or Redis not answering (exit 1).
func openRedis(ctx context.Context, cfg *config, log *zap.Logger, onError func(string)) (*store.Redis, error) {
	o := cfg.storeOptions()
	o.Logger, o.OnError = log, onError
	db, err := store.Open(ctx, o)
	var auth *store.AuthError
	switch {
	case errors.As(err, &auth):
		return nil, &outside.Refusal{
			Advice: outside.Advice{Settings: "REDIS_URL",
				Fix: "the password in REDIS_URL is wrong or missing; set redis://:PASSWORD@host:port (redis://USER:PASSWORD@host:port for an ACL user)"},
			What: "Redis refused the credentials: " + auth.Problem,
			Err:  auth.Unwrap(),
		}
	case errors.Is(err, events.ErrUnavailable):
		return nil, fmt.Errorf("REDIS_URL: cannot reach Redis; check the address and that Redis is up: %w", err)
	case err != nil: // loadConfig checked the options: not expected
		return nil, &configError{msg: "REDIS_URL: " + err.Error()}
	}
	return db, nil
}

// waitInbox waits for the AppDirect results the inbox is answering in the
// background.
func (a *app) waitInbox() {
	if a.inbox != nil {
		a.inbox.Wait()
	}
}
