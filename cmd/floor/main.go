// Command floor is the load benchmark's lower bound: a minimal receiver of
// the marketplace extension URL that does only the I/O a correct service
// cannot avoid, so that the benchmark can say how far the service is from
// it. For a copy of an answered delivery: read the body, one Redis GET of the
// stored reply (keyed by the SHA-256 of the raw body), write it. For a new
// delivery: claim it with SET NX (with a TTL), the outside calls of its
// product (below) with a Q2 token fetched once and cached, store the reply
// (SET), answer it. Copies that reach the process while their delivery is
// being processed wait for it in memory.
//
// The outside calls are the ones the service makes on a first attempt, by
// extension, as products.example.yaml plans them: any extension, Q2
// Enrollment then LookupUser (Enrollment answers no ids; the reply's
// accountIdentifier is the user id, as the service's); business-access,
// those and Helix addEntitlement for the enrolled customer; qbd-connect,
// QBD Connect GET /customers?gatewayCustomerId=, POST /customers and POST
// /subscriptions.
//
// It understands just enough of a SubscriptionEvent for the benchmark's
// ORDERs (subscription_id, creator or company, the creator's email and
// address, payload.configuration): it is not a second implementation of
// the service. It imports go-redis directly, which the service's own
// layering keeps inside internal/store: this program is a benchmark, never
// deployed.
//
//	floor --addr 127.0.0.1:8081 --redis-url redis://127.0.0.1:6379/0 \
//	      --q2-base-url http://127.0.0.1:9090 --q2-client-id sandbox --q2-client-secret sandbox-secret \
//	      --helix-key helix-sandbox --helix-secret helix-sandbox-secret
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// errUsage marks a bad flag: exit status 2.
var errUsage = errors.New("bad usage")

// run serves until ctx ends, then shuts down within a few seconds.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	redisURL := fs.String("redis-url", "", "redis:// URL of the Redis to use (required)")
	var cfg config
	fs.StringVar(&cfg.Q2BaseURL, "q2-base-url", "", "Q2 (sandbox) base URL (required)")
	fs.StringVar(&cfg.ClientID, "q2-client-id", "", "OAuth2 client id (required)")
	fs.StringVar(&cfg.ClientSecret, "q2-client-secret", "", "OAuth2 client secret (required)")
	fs.StringVar(&cfg.HelixBaseURL, "helix-base-url", "", "Helix (sandbox) base URL, for business-access (default: --q2-base-url)")
	fs.StringVar(&cfg.HelixKey, "helix-key", "", "Helix HTTP Basic user")
	fs.StringVar(&cfg.HelixSecret, "helix-secret", "", "Helix HTTP Basic password")
	fs.StringVar(&cfg.QBDBaseURL, "qbd-base-url", "", "QBD Connect (sandbox) base URL, before /qbdconnect-api/, for qbd-connect (default: --q2-base-url)")
	fs.StringVar(&cfg.QBDProductID, "qbd-product-id", "prod_qbd", "the QBD Connect product of qbd-connect subscriptions")
	fs.DurationVar(&cfg.EventTTL, "event-ttl", 72*time.Hour, "how long stored replies are kept")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 256, "deliveries at once; past it, 503 (the service's MAX_IN_FLIGHT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("%w: --redis-url %q: %v (want redis://host:port/db)", errUsage, *redisURL, err)
	}
	// The service's store timeouts, so that both wait on Redis alike.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = 2*time.Second, time.Second, time.Second, 2*time.Second
	opts.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("connecting to redis at %s: %w", opts.Addr, err)
	}

	// Keep-alive connections to Q2 for every delivery in flight: a correct
	// service does not open a connection per call.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = cfg.MaxInFlight, cfg.MaxInFlight
	f, err := newFloor(cfg, rdb, &http.Client{Transport: tr, Timeout: processTimeout})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("%w: --addr: cannot listen on %q: %v", errUsage, *addr, err)
	}
	srv := &http.Server{
		Handler:           f.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      processTimeout + 15*time.Second,
		IdleTimeout:       60 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "floor listening on %s\n", ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	return srv.Shutdown(sctx)
}
