package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/appdirect/appdirectsandbox"
	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/replay"
)

// runReplay is `webhook replay`: see internal/replay.
func runReplay(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return replay.Run(ctx, args, getenv, stdout, stderr)
}

// runSandbox is `webhook sandbox` (alias q2-sandbox): the sandbox of every
// outside API (Q2, QBD Connect, Helix, an AppDirect marketplace) alone, until ctx ends.
func runSandbox(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("webhook sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9090", "listen address")
	ttl := fs.Duration("token-ttl", time.Hour, "lifetime of the access tokens it issues")
	id := fs.String("client-id", q2sandbox.DefaultClientID, "OAuth2 client id it accepts")
	secret := fs.String("client-secret", q2sandbox.DefaultClientSecret, "OAuth2 client secret it accepts")
	helixKey := fs.String("helix-key", helixsandbox.DefaultKey, "Helix HTTP Basic user it accepts")
	helixSecret := fs.String("helix-secret", helixsandbox.DefaultSecret, "Helix HTTP Basic password it accepts")
	var ad appdirectsandbox.Config
	fs.StringVar(&ad.ConsumerKey, "consumer-key", appdirectsandbox.DefaultConsumerKey, "AppDirect OAuth 1.0a consumer key: signs notifications, checks the fetch and the result post")
	fs.StringVar(&ad.ConsumerSecret, "consumer-secret", appdirectsandbox.DefaultConsumerSecret, "AppDirect OAuth 1.0a consumer secret")
	fs.StringVar(&ad.ClientID, "appdirect-client-id", appdirectsandbox.DefaultClientID, "AppDirect OAuth 2.0 client id its /oauth2/token accepts")
	fs.StringVar(&ad.ClientSecret, "appdirect-client-secret", appdirectsandbox.DefaultClientSecret, "AppDirect OAuth 2.0 client secret")
	fs.StringVar(&ad.NotifyToken, "notify-token", "", "AppDirect notifications carry Authorization: Bearer TOKEN instead of an OAuth 1.0a signature")
	fs.StringVar(&ad.NotifyBasic, "notify-basic", "", "AppDirect notifications carry HTTP Basic user:password instead of an OAuth 1.0a signature")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: webhook sandbox [flags]   (alias: q2-sandbox)\n\nServes in-memory Q2, QBD Connect, Helix and AppDirect marketplace APIs for tests and demos (see README).\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &configError{msg: err.Error() + " (see webhook sandbox --help)"}
	}
	if *ttl <= 0 {
		return &configError{msg: "--token-ttl: must be more than zero, like 1h"}
	}
	log := newLogger(stdout, zap.InfoLevel, "auto")
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return &configError{msg: fmt.Sprintf("--addr: cannot listen on %q: %v", *addr, err)}
	}
	sb, err := newSandbox(sandboxConfig{q2: q2sandbox.Config{ClientID: *id, ClientSecret: *secret, TokenTTL: *ttl},
		helixKey: *helixKey, helixSecret: *helixSecret, appDirect: ad})
	if err != nil {
		_ = ln.Close()
		return &configError{msg: err.Error()}
	}
	srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 5 * time.Second}
	log.Info("sandbox listening: Q2, QBD Connect, Helix, AppDirect", zap.String("addr", ln.Addr().String()), zap.String("client_id", *id),
		zap.String("helix_key", *helixKey), zap.String("appdirect_consumer_key", ad.ConsumerKey), zap.Duration("token_ttl", *ttl))
	if err := serveUntil(ctx, srv, ln); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
