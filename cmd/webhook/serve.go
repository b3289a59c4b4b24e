package main

import (
	"context"
	"errors"
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
	"github.com/banking-marketplace/webhook/internal/products"
	"github.com/banking-marketplace/webhook/internal/signature"
	"github.com/banking-marketplace/webhook/internal/store"
)

// serve runs the receiver until ctx ends, then drains: it stops accepting,
// lets in-flight deliveries finish (their work is not cancelled by the
// signal) within SHUTDOWN_TIMEOUT, and returns nil.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	auth, err := authenticator(cfg)
	if err != nil {
		return err
	}
	catalog := products.Default(cfg.CancelDeletes)
	if cfg.ProductsFile != "" {
		if catalog, err = products.Load(cfg.ProductsFile); err != nil {
			return &configError{msg: err.Error()}
		}
	}
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
	db, err := store.Open(startCtx, store.Options{
		URL: cfg.RedisURL, MasterName: cfg.RedisSentinelMaster, Cluster: cfg.RedisCluster, Logger: log,
		WaitReplicas: cfg.RedisWaitReplicas, WaitTimeout: cfg.RedisWaitTimeout,
		OnError: m.RedisError,
	})
	unmute()
	switch {
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("opening redis: %w", err)
	case err != nil: // a bad REDIS_URL or Redis setting
		return &configError{msg: err.Error()}
	}
	defer db.Close()

	clients, stopSandbox, err := outsideAPIs(cfg, log, m)
	if err != nil {
		return err
	}
	defer stopSandbox()
	// Credentials an outside API refuses stop the start (exit 1); an API
	// that does not answer is a warning, and /readyz shows its state.
	outside := outsideMonitorFor(cfg, clients, log)
	if err := outside.start(ctx); err != nil {
		return err
	}
	defer outside.watchInBackground(recheckEvery)()

	switch {
	case cfg.Auth == "none":
		log.Warn("WEBHOOK_AUTH=none: requests are accepted without authentication")
	case cfg.Auth == "signature" && len(cfg.Secrets) == 0:
		log.Warn("sandbox mode without WEBHOOK_SECRETS: unsigned requests are accepted; set WEBHOOK_SECRETS to require signatures")
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
	handler := handlers.New(handlers.Config{
		Receiver:    in,
		Products:    catalog,
		Reader:      db,
		Observer:    m,
		Metrics:     m.Handler(),
		APITokens:   cfg.APITokens,
		Auth:        auth,
		MaxInFlight: cfg.MaxInFlight,
		Logger:      log,
		Outside:     outside.State,
		Ready: func(ctx context.Context) error {
			if draining.Load() {
				return &handlers.NotReadyError{Reason: "shutting down"}
			}
			if err := db.Ping(ctx); err != nil { // the detail names addresses: the log's, not the reply's
				return &handlers.NotReadyError{Reason: "redis: unavailable", Cause: err}
			}
			return nil
		},
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return &configError{msg: fmt.Sprintf("WEBHOOK_ADDR: cannot listen on %q: %v", cfg.Addr, err)}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second, // a backstop: the extension URL cuts bodies at 2 s itself
		WriteTimeout:      cfg.ProcessTimeout + 15*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    handlers.ServerMaxHeaderBytes, // above what the handler answers 431 to, in JSON
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		// Requests do not inherit ctx: the signal must not cancel their work.
		BaseContext: func(net.Listener) context.Context { return context.Background() },
	}
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.String("version", versionString()),
		zap.Bool("sandbox_mode", cfg.SandboxMode()), zap.Bool("embedded_redis", db.Embedded()), zap.String("auth", cfg.Auth))

	if err := serveUntil(ctx, srv, ln); err != nil {
		return err
	}

	draining.Store(true)
	log.Info("shutting down: /readyz answers 503, then in-flight requests drain",
		zap.Duration("delay", cfg.ShutdownDelay), zap.Duration("timeout", cfg.ShutdownTimeout))
	time.Sleep(cfg.ShutdownDelay) // let load balancers see /readyz fail before the listener closes
	sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown timed out; some requests were cut", zap.Error(err))
		return fmt.Errorf("shutting down: %w", err)
	}
	log.Info("stopped")
	return nil
}

func authenticator(cfg *config) (handlers.Authenticator, error) {
	switch cfg.Auth {
	case "basic":
		return handlers.Basic(cfg.BasicUser, cfg.BasicPass), nil
	case "signature":
		if len(cfg.Secrets) == 0 {
			return nil, nil // sandbox mode only: loadConfig refuses it elsewhere
		}
		v, err := signature.NewVerifier(cfg.Secrets)
		if err != nil {
			return nil, &configError{msg: err.Error()}
		}
		return handlers.Signed(v), nil
	}
	return nil, nil
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
