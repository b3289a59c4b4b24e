package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/handlers"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/metrics"
)

// serve runs the receiver until ctx ends, then drains: it stops accepting,
// lets in-flight deliveries finish (their work is not cancelled by the
// signal) within SHUTDOWN_TIMEOUT, and returns nil. It returns an error
// when the start fails (settings, Redis, an outside API refusing the
// credentials, a listener), when serving fails, or when the drain outlasts
// SHUTDOWN_TIMEOUT (the requests still running are cut).
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	auth := authenticator(cfg)
	catalog := cfg.Catalog
	log := newLogger(stdout, cfg.LogLevel, cfg.LogFormat)
	defer func() { _ = log.Sync() }()
	for _, w := range cfg.warnings() {
		log.Warn(w)
	}

	// Start-up steps must not hang forever on an unreachable dependency.
	startCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()

	m := metrics.New()
	// go-redis logs through one process-wide logger, muted while the start
	// ping's failure is about to be said once, as the error.
	setGoRedisLogger(log.Named("redis"))
	unmute := muteGoRedis()
	db, err := openRedis(startCtx, cfg, log, m.RedisError)
	unmute()
	if err != nil {
		return err
	}
	defer db.Close()

	clients, stopSandbox, err := outsideAPIs(cfg, log, m)
	if err != nil {
		return err
	}
	defer stopSandbox()
	// Credentials an outside API refuses stop the start (exit 1); an API
	// that does not answer is a warning, and /readyz shows its state.
	monitor := outsideMonitor(cfg, clients, db, log)
	if err := monitor.Start(ctx); err != nil {
		return err
	}
	defer monitor.Watch(recheckEvery)()

	if cfg.Auth == "none" && !cfg.Demo { // demo mode's line says so
		log.Warn("WEBHOOK_AUTH=none: requests are accepted without authentication")
	}

	service, err := newService(cfg, catalog, clients, db, m, log)
	if err != nil {
		return err
	}
	var draining atomic.Bool
	// Every replica works the settle queue: what a reply left unsettled,
	// the settler finishes, whether or not the marketplace asks again.
	settlerCtx, stopSettler := context.WithCancel(context.WithoutCancel(ctx))
	settlerDone := make(chan struct{})
	go func() {
		defer close(settlerDone)
		newSettler(cfg, db, service, log, m).Run(settlerCtx)
	}()
	defer func() { stopSettler(); <-settlerDone }()
	in := inbox.New(db, service, inbox.Config{ProcessTimeout: cfg.ProcessTimeout, TTL: cfg.EventTTL}, log)
	ls, err := listen(cfg, handlers.Config{
		Receiver:    in,
		Products:    catalog,
		Reader:      db,
		Observer:    m,
		Metrics:     m.Handler(),
		APITokens:   cfg.APITokens,
		Auth:        auth,
		MaxInFlight: cfg.MaxInFlight,
		Logger:      log,
		Outside:     monitor.State,
		Ready: func(ctx context.Context) error {
			if draining.Load() {
				return &handlers.NotReadyError{Reason: "shutting down"}
			}
			if err := db.Ping(ctx); err != nil { // the detail names addresses: the log's, not the reply's
				return &handlers.NotReadyError{Reason: "redis: unavailable", Cause: err}
			}
			monitor.Recheck(ctx) // Redis's eviction policy: "outside" and the log follow it
			return nil
		},
	}, log)
	if err != nil {
		return err
	}
	addrs := ls.addrs()
	log.Info("listening", append(addrs.logFields(), zap.String("version", versionString()),
		zap.String("mode", cfg.mode()), zap.Bool("embedded_redis", db.Embedded()), zap.String("auth", cfg.Auth))...)
	onListening(ctx)(addrs)

	if err := ls.serveUntil(ctx); err != nil {
		return err
	}

	draining.Store(true)
	log.Info("shutting down: /readyz answers 503, then in-flight requests drain",
		zap.Duration("delay", cfg.ShutdownDelay), zap.Duration("timeout", cfg.ShutdownTimeout))
	time.Sleep(cfg.ShutdownDelay) // let load balancers see /readyz fail before the listeners close
	if err := ls.shutdown(cfg.ShutdownTimeout); err != nil {
		log.Error("shutdown timed out; the requests still running were cut", zap.Error(err))
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info("stopped")
	return nil
}

func authenticator(cfg *config) handlers.Authenticator {
	switch {
	case cfg.Auth == "basic":
		return handlers.Basic(cfg.BasicUser, cfg.BasicPass)
	case cfg.Auth == "signature" && cfg.Verifier != nil:
		return handlers.Signed(cfg.Verifier)
	}
	return nil // none, or signature in demo mode without secrets (loadConfig refuses it elsewhere)
}

// serveUntil serves ln until ctx ends (nil) or serving fails (the error).
// The caller shuts srv down.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
		return nil
	}
}
