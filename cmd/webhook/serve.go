package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/handlers"
)

// serve is `webhook serve`: the configuration, the app built from it,
// then serving until ctx ends and the drain. It returns an error when the
// start fails (settings, Redis, an outside API refusing the credentials,
// a listener), when serving fails, or when the drain outlasts
// SHUTDOWN_TIMEOUT (the requests still running are cut); nil after a
// clean drain.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.LogLevel, cfg.LogFormat)
	defer func() { _ = log.Sync() }()
	for _, w := range cfg.warnings() {
		log.Warn(w)
	}
	a, err := build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	return serveAndDrain(ctx, a)
}

// serveAndDrain serves a's listeners until ctx ends, then drains: /readyz
// answers 503 for SHUTDOWN_DELAY, the listeners stop accepting, the
// requests in flight finish within SHUTDOWN_TIMEOUT (the signal does not
// cancel their work) or are cut, and it returns only once every handler
// has returned, so that a.close never closes Redis under one.
func serveAndDrain(ctx context.Context, a *app) error {
	cfg, log, ls := a.cfg, a.log, a.listeners
	addrs := ls.addrs()
	log.Info("listening", append(addrs.logFields(), zap.String("version", versionString()),
		zap.String("mode", cfg.mode()), zap.Bool("embedded_redis", a.db.Embedded()), zap.String("auth", cfg.Auth))...)
	onListening(ctx)(addrs)

	if err := ls.serveUntil(ctx); err != nil {
		ls.close()
		a.waitForHandlers()
		return err
	}

	a.draining.Store(true)
	log.Info("shutting down: /readyz answers 503, then in-flight requests drain",
		zap.Duration("delay", cfg.ShutdownDelay), zap.Duration("timeout", cfg.ShutdownTimeout))
	time.Sleep(cfg.ShutdownDelay) // let load balancers see /readyz fail before the listeners close
	err := ls.shutdown(cfg.ShutdownTimeout)
	if err != nil {
		log.Error("shutdown timed out; the requests still running were cut", zap.Error(err))
	}
	a.waitForHandlers()
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info("stopped")
	return nil
}

// waitForHandlers returns once every handler has returned. The listeners
// have stopped, but srv.Close cuts a request's connection, not its
// handler, which runs on to its own deadline: Redis and the clients must
// stay open until then. Past the longest a handler runs, it gives up and
// says so: Redis then closes under the handlers left.
func (a *app) waitForHandlers() {
	if err := a.listeners.wait(handlerLimit(a.cfg)); err != nil {
		a.log.Error("requests still running after the drain; Redis closes under them", zap.Error(err))
	}
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
