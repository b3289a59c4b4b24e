package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helixclient"
	"github.com/banking-marketplace/webhook/internal/httpcall"
	"github.com/banking-marketplace/webhook/internal/logctx"
	"github.com/banking-marketplace/webhook/internal/metrics"
	"github.com/banking-marketplace/webhook/internal/q2client"
	"github.com/banking-marketplace/webhook/internal/qbdclient"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	helixsandbox "github.com/banking-marketplace/webhook/internal/sandbox/helix"
	qbdsandbox "github.com/banking-marketplace/webhook/internal/sandbox/qbdconnect"
)

// defaultSandboxAddr is SANDBOX_ADDR's default.
const defaultSandboxAddr = "127.0.0.1:9090"

// newSandbox is the in-memory sandbox of every outside API: Q2, with QBD
// Connect and Helix as parts.
func newSandbox(cfg sandbox.Config, helixKey, helixSecret string) *sandbox.Sandbox {
	return sandbox.New(cfg, qbdsandbox.New(), helixsandbox.New(helixKey, helixSecret))
}

// outsideAPIs returns the clients of the outside systems. Each API whose
// base URL is empty is served by one embedded sandbox, on SANDBOX_ADDR,
// with credentials made up at start; stop shuts it down.
func outsideAPIs(cfg *config, log *zap.Logger, m *metrics.Metrics) (c targets, stop func(), err error) {
	stop = func() {}
	q2Base, qbdBase, helixBase := cfg.Q2BaseURL, cfg.QBDBaseURL, cfg.HelixBaseURL
	q2ID, q2Secret, helixKey, helixSecret := cfg.Q2ClientID, cfg.Q2ClientSecret, cfg.HelixAPIKey, cfg.HelixAPISecret
	var scopes []string
	if q2Base != "" {
		scopes = strings.Fields(cfg.Q2Scope)
	}
	if q2Base == "" || qbdBase == "" || helixBase == "" {
		sandboxQ2ID, sandboxQ2Secret := sandbox.DefaultClientID, rand.Text()
		sandboxKey, sandboxSecret := helixsandbox.DefaultKey, rand.Text()
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
			return c, nil, &configError{msg: fmt.Sprintf("SANDBOX_ADDR: cannot listen on %q: %v%s", cfg.SandboxAddr, err, hint)}
		}
		sb := newSandbox(sandbox.Config{ClientID: sandboxQ2ID, ClientSecret: sandboxQ2Secret}, sandboxKey, sandboxSecret)
		srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		stop = func() { _ = srv.Close() }
		base := "http://" + ln.Addr().String()
		var embedded []string
		if q2Base == "" {
			q2Base, q2ID, q2Secret = base, sandboxQ2ID, sandboxQ2Secret
			embedded = append(embedded, "Q2")
		}
		if qbdBase == "" {
			qbdBase = base
			embedded = append(embedded, "QBD Connect")
		}
		if helixBase == "" {
			helixBase, helixKey, helixSecret = base, sandboxKey, sandboxSecret
			embedded = append(embedded, "Helix")
		}
		log.Warn("sandbox mode: calls to "+strings.Join(embedded, ", ")+" go to an embedded in-memory sandbox; set Q2_BASE_URL, QBD_BASE_URL and HELIX_BASE_URL to use the real APIs",
			zap.String("sandbox", base), zap.String("stats", base+"/_sandbox/stats"))
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	// One pool for the three clients: without it each would use
	// http.DefaultTransport, which keeps 2 idle connections per host, so
	// under MAX_IN_FLIGHT concurrent deliveries most Q2 calls opened (and
	// left in TIME_WAIT) a new connection.
	hc := &http.Client{Transport: outsideTransport(cfg.MaxInFlight)}
	if c.q2, err = q2client.New(q2Base,
		q2client.WithHTTPClient(hc),
		q2client.WithAPIVersion(cfg.Q2APIVersion),
		q2client.WithCredentials(q2ID, q2Secret, scopes...),
		q2client.WithLogger(log.Named("q2")),
		q2client.WithObserver(observeCalls(log.Named("q2"), m)),
	); err != nil {
		return c, nil, &configError{msg: "Q2_BASE_URL: " + err.Error()}
	}
	if c.qbd, err = qbdclient.New(qbdBase,
		qbdclient.WithHTTPClient(&http.Client{Transport: hc.Transport, Timeout: 10 * time.Second}),
		qbdclient.WithAPIVersion(cfg.QBDAPIVersion),
		qbdclient.WithToken(cfg.QBDToken),
		qbdclient.WithLogger(log.Named("qbd_connect")),
		qbdclient.WithObserver(observeCalls(log.Named("qbd_connect"), m)),
	); err != nil {
		return c, nil, &configError{msg: "QBD_BASE_URL: " + err.Error()}
	}
	if c.helix, err = helixclient.New(helixBase,
		helixclient.WithHTTPClient(hc),
		helixclient.WithCredentials(helixKey, helixSecret),
		helixclient.WithLogger(log.Named("helix")),
		helixclient.WithObserver(observeCalls(log.Named("helix"), m)),
	); err != nil {
		return c, nil, &configError{msg: "HELIX_BASE_URL: " + err.Error()}
	}
	return c, stop, nil
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
// deliveries), in the delivery's call count, and is logged at debug level
// with the delivery's fields and the system's request id, so that a
// support ticket with the bank can quote it.
func observeCalls(log *zap.Logger, m *metrics.Metrics) httpcall.Observer {
	return func(ctx context.Context, a httpcall.Attempt) {
		m.OutsideCall(a)
		if a.Action != httpcall.TokenAction {
			events.CountCall(ctx)
		}
		logctx.Logger(ctx, log).Debug(a.System+" call", a.LogFields()...)
	}
}
