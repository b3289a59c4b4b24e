package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/appdirect/appdirectsandbox"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix/helixapi"
	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/httpcall"
	"github.com/banking-marketplace/webhook/internal/logctx"
	"github.com/banking-marketplace/webhook/internal/metrics"
	"github.com/banking-marketplace/webhook/internal/products"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdsandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
)

// defaultSandboxAddr is SANDBOX_ADDR's default: a fixed port, so that a
// demo's sandbox can be found at the same address every time.
const defaultSandboxAddr = "127.0.0.1:9090"

// sandboxConfig is the credentials the sandbox's parts accept.
type sandboxConfig struct {
	q2                    q2sandbox.Config
	helixKey, helixSecret string
	appDirect             appdirectsandbox.Config
}

// newSandbox is the in-memory sandbox of every outside API: Q2, QBD
// Connect, Helix and an AppDirect marketplace, each a part of the frame.
func newSandbox(cfg sandboxConfig) (*sandbox.Sandbox, error) {
	ad, err := appdirectsandbox.New(cfg.appDirect)
	if err != nil {
		return nil, err
	}
	return sandbox.New(q2sandbox.New(cfg.q2), qbdsandbox.New(), helixsandbox.New(cfg.helixKey, cfg.helixSecret), ad), nil
}

// outsideAPIs returns the clients of the outside systems. In demo mode one
// embedded sandbox, on SANDBOX_ADDR with credentials made up at start,
// serves every outside API, and the start says "demo mode" in one line;
// stop shuts it down. Otherwise each API is called at its base URL, only
// those configured get a client (the configuration has made sure that
// every API a product uses is), and the start line lists each product's
// targets and hosts.
func outsideAPIs(cfg *config, log *zap.Logger, m *metrics.Metrics, seen *systems) (c targets, stop func(), err error) {
	at := endpointsOf(cfg)
	stop = func() {}
	if cfg.Demo {
		if at, stop, err = demoEndpoints(cfg, log); err != nil {
			return c, nil, err
		}
	}
	if c, err = newClients(cfg, at, log, m, seen); err != nil {
		stop()
		return c, nil, err
	}
	c.sandbox = at.sandbox
	if !cfg.Demo {
		log.Info("production mode", zap.Any("products", productTargets(cfg, "")))
	}
	return c, stop, nil
}

// endpoints are where the outside APIs are called, and with what
// credentials.
type endpoints struct {
	sandbox                    string // demo mode's embedded sandbox, "" otherwise
	q2Base, qbdBase, helixBase string
	q2ID, q2Secret             string
	q2Scopes                   []string
	helixKey, helixSecret      string
}

// endpointsOf are the configured endpoints.
func endpointsOf(cfg *config) endpoints {
	return endpoints{
		q2Base: cfg.Q2BaseURL, qbdBase: cfg.QBDBaseURL, helixBase: cfg.HelixBaseURL,
		q2ID: cfg.Q2ClientID, q2Secret: cfg.Q2ClientSecret, q2Scopes: strings.Fields(cfg.Q2Scope),
		helixKey: cfg.HelixAPIKey, helixSecret: cfg.HelixAPISecret,
	}
}

// demoEndpoints starts the embedded sandbox and says "demo mode": every
// outside API is called there, with the credentials made up at start.
func demoEndpoints(cfg *config, log *zap.Logger) (endpoints, func(), error) {
	base, stop, err := startEmbeddedSandbox(cfg, log)
	if err != nil {
		return endpoints{}, nil, err
	}
	log.Warn("demo mode: an embedded Redis (nothing survives a restart) and an embedded sandbox of Q2, QBD Connect, Helix and an AppDirect marketplace; unsigned requests are accepted. "+
		"For production set REDIS_URL, each outside API the products use and WEBHOOK_SECRETS (docs/configuration.md)",
		zap.String("sandbox", base), zap.String("stats", base+"/_sandbox/stats"), zap.Any("products", productTargets(cfg, base)))
	return endpoints{
		sandbox: base,
		q2Base:  base, qbdBase: base, helixBase: base,
		q2ID: q2sandbox.DefaultClientID, q2Secret: embeddedQ2Secret,
		helixKey: helixsandbox.DefaultKey, helixSecret: embeddedHelixSecret,
	}, stop, nil
}

// newClients makes a client of each API that has a base URL.
func newClients(cfg *config, at endpoints, log *zap.Logger, m *metrics.Metrics, seen *systems) (c targets, err error) {
	// One pool for the three clients: without it each would use
	// http.DefaultTransport, which keeps 2 idle connections per host, so
	// under MAX_IN_FLIGHT concurrent deliveries most Q2 calls opened (and
	// left in TIME_WAIT) a new connection.
	hc := &http.Client{Transport: outsideTransport(cfg.MaxInFlight)}
	if at.q2Base != "" {
		if c.q2, err = q2api.New(at.q2Base,
			q2api.WithHTTPClient(hc),
			q2api.WithAPIVersion(cfg.Q2APIVersion),
			q2api.WithCredentials(at.q2ID, at.q2Secret, at.q2Scopes...),
			q2api.WithLogger(log.Named("q2")),
			q2api.WithObserver(observeCalls(log.Named("q2"), m, seen)),
		); err != nil {
			return c, &configError{msg: "Q2_BASE_URL: " + err.Error()}
		}
	}
	if at.qbdBase != "" {
		if c.qbd, err = qbdapi.New(at.qbdBase,
			qbdapi.WithHTTPClient(&http.Client{Transport: hc.Transport, Timeout: 10 * time.Second}),
			qbdapi.WithAPIVersion(cfg.QBDAPIVersion),
			qbdapi.WithToken(cfg.QBDToken),
			qbdapi.WithLogger(log.Named("qbd_connect")),
			qbdapi.WithObserver(observeCalls(log.Named("qbd_connect"), m, seen)),
		); err != nil {
			return c, &configError{msg: "QBD_BASE_URL: " + err.Error()}
		}
	}
	if at.helixBase != "" {
		if c.helix, err = helixapi.New(at.helixBase,
			helixapi.WithHTTPClient(hc),
			helixapi.WithCredentials(at.helixKey, at.helixSecret),
			helixapi.WithLogger(log.Named("helix")),
			helixapi.WithObserver(observeCalls(log.Named("helix"), m, seen)),
		); err != nil {
			return c, &configError{msg: "HELIX_BASE_URL: " + err.Error()}
		}
	}
	return c, nil
}

// The embedded sandbox's credentials, made up once per process: nothing
// outside the process can use them.
var (
	embeddedQ2Secret        = rand.Text()
	embeddedHelixSecret     = rand.Text()
	embeddedAppDirectSecret = rand.Text()
)

// startEmbeddedSandbox serves the sandbox of every outside API on
// SANDBOX_ADDR, for demo mode, and returns its base URL.
func startEmbeddedSandbox(cfg *config, log *zap.Logger) (base string, stop func(), err error) {
	ln, err := net.Listen("tcp", cfg.SandboxAddr)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) && cfg.SandboxAddr == defaultSandboxAddr {
		// The default address is taken (another webhook on this
		// machine): the service still starts, on any free port, and
		// says where; an address set on purpose is never moved.
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err == nil {
			log.Warn("SANDBOX_ADDR "+defaultSandboxAddr+" is taken (another webhook running?); the embedded sandbox listens on another port",
				zap.String("sandbox", ln.Addr().String()))
		}
	}
	if err != nil {
		hint := ""
		if errors.Is(err, syscall.EADDRINUSE) {
			hint = " (another webhook running? set SANDBOX_ADDR=127.0.0.1:0 for any free port)"
		}
		return "", nil, &configError{msg: fmt.Sprintf("SANDBOX_ADDR: cannot listen on %q: %v%s", cfg.SandboxAddr, err, hint)}
	}
	sb, err := newSandbox(sandboxConfig{
		q2:       q2sandbox.Config{ClientID: q2sandbox.DefaultClientID, ClientSecret: embeddedQ2Secret},
		helixKey: helixsandbox.DefaultKey, helixSecret: embeddedHelixSecret,
		appDirect: appdirectsandbox.Config{ConsumerKey: appdirectsandbox.DefaultConsumerKey, ConsumerSecret: embeddedAppDirectSecret,
			BaseURL: "http://" + ln.Addr().String()},
	})
	if err != nil {
		_ = ln.Close()
		return "", nil, err
	}
	srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// productTargets is, for the start line, each product's targets in order
// with the host each calls: "q2 api.q2.example, helix helix.example". In
// demo mode every target calls the sandbox at sandboxBase. Hosts only:
// never a path, a user or a password.
func productTargets(cfg *config, sandboxBase string) map[string]string {
	hosts := map[string]string{
		products.TargetQ2: hostOf(cfg.Q2BaseURL), products.TargetQBDConnect: hostOf(cfg.QBDBaseURL), products.TargetHelix: hostOf(cfg.HelixBaseURL),
	}
	out := make(map[string]string, len(cfg.Catalog.Products))
	for _, p := range cfg.Catalog.Products {
		parts := make([]string, len(p.Targets))
		for i, t := range p.Targets {
			host := hosts[t]
			if sandboxBase != "" {
				host = hostOf(sandboxBase)
			}
			parts[i] = t + " " + host
		}
		out[p.Name] = strings.Join(parts, ", ")
	}
	return out
}

// hostOf is the host[:port] of a base URL.
func hostOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return u.Host
}

// outsideTransport is http.DefaultTransport's settings with as many idle
// connections per host as deliveries may run at once (MAX_IN_FLIGHT), so
// that a burst reuses its connections to the outside APIs instead of
// opening one per call.
func outsideTransport(maxInFlight int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(maxInFlight, 2)
	t.MaxIdleConns = max(3*maxInFlight, t.MaxIdleConns)
	return t
}

// observeCalls is the one observer of the outside clients: each attempt
// counts in the metrics and, but for a token fetch (which serves many
// deliveries), joins the delivery's calls (its count, and the attempt
// history: system, action, status, duration, request id); it is logged at
// debug level with the delivery's fields and the system's request id, so
// that a support ticket with the bank can quote it; and it moves the
// system's state the console shows (seen; nil: none).
func observeCalls(log *zap.Logger, m *metrics.Metrics, seen *systems) httpcall.Observer {
	return func(ctx context.Context, a httpcall.Attempt) {
		m.OutsideCall(a)
		seen.observe(a)
		if a.Action != httpcall.TokenAction {
			events.RecordCall(ctx, callOf(a))
		}
		logctx.Logger(ctx, log).Debug(a.System+" call", a.LogFields()...)
	}
}
