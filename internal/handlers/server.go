// Package handlers is the HTTP side of the service (echo). The public
// routes are the marketplace extension URL; the ops routes are the probes,
// /metrics, the read API and the routes the wiring adds (New serves both
// on one listener, Split on two). On the extension URL it reads the raw
// body under the limits of hostile traffic (size, deadline, readers,
// memory), checks who sent it before anything about the request is looked
// up, takes a processing slot, computes the delivery key, decodes the event
// and hands it to the inbox; then it writes the reply document. Every
// error it meets becomes a contract document in one place (errorHandler),
// and every request is one log line with the status really sent
// (requestLogger). It decides one outcome itself, where the routing is
// done: an event whose product_identifier is not the product of its
// extension is answered 200 CONFIGURATION_ERROR and not stored, so that a
// copy sent after the products file is fixed succeeds (marketplace.go).
package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/docs"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/products"
)

// Receiver takes a decoded delivery and answers it; Copy answers a
// byte-identical copy of an answered one before any decoding.
type Receiver interface {
	Receive(ctx context.Context, d inbox.Delivery) (inbox.Answer, error)
	Copy(ctx context.Context, copyKey string) (inbox.Answer, inbox.Copy, bool)
}

// Observer is told of every delivery answered (on the extension URL) and
// of processing slots taken and given back: the metrics.
type Observer interface {
	Delivered(eventType, outcome string, replayed bool, d time.Duration)
	InFlight(delta int)
}

type nobody struct{}

func (nobody) Delivered(string, string, bool, time.Duration) {}
func (nobody) InFlight(int)                                  {}

// Products finds the product of an extension.
type Products interface {
	Lookup(extension string) (*products.Product, bool)
}

// Config is what the handlers need. Zero limits take their defaults.
type Config struct {
	Receiver  Receiver
	Products  Products                        // the product of each extension; nil: one product on every extension
	Reader    Reader                          // the read API's records; with APITokens
	APITokens []string                        // bearer tokens of the read API (/v1/...); none: its routes answer 404 naming API_TOKENS
	Auth      Authenticator                   // nil accepts every request (WEBHOOK_AUTH=none)
	Ready     func(ctx context.Context) error // nil: always ready; see NotReadyError
	Logger    *zap.Logger
	Observer  Observer     // told of every delivery and processing slot; nil: nobody
	Metrics   http.Handler // served at GET /metrics; nil: no such route
	// Console is the operator console, served at /console/ beside the read
	// API (on the ops listener when there is one); nil: those paths answer
	// 404 naming API_TOKENS, which turns it on.
	Console http.Handler

	MaxInFlight     int           // authenticated deliveries processed at once; 0 = 256
	MaxBodyReaders  int           // requests reading their bodies at once; 0 = DefaultMaxBodyReaders
	BodyMemory      int64         // bytes of bodies held at once; 0 = DefaultBodyMemory
	BodyReadTimeout time.Duration // how long a body may take to arrive; 0 = DefaultBodyReadTimeout

	// AppDirect, when set, serves AppDirect's notifications at
	// GET /appdirect/events (a public route).
	AppDirect *AppDirect

	// TracerProvider, when set, makes each delivery a trace (see traced);
	// nil: tracing is off, and no middleware runs for it.
	TracerProvider trace.TracerProvider

	// Outside is the outside APIs' last known state ("q2": "ok", ...),
	// shown in /readyz's body under "outside". It never changes the status,
	// which is about Redis (Ready): an outside API down must not take every
	// replica out of the Service. nil: left out.
	Outside func() map[string]string
}

// NotReadyError is why the service is not ready: Reason is said in /readyz's
// body ("redis: unavailable"), Cause goes to the log only, since it may name
// internal addresses.
type NotReadyError struct {
	Reason string
	Cause  error
}

func (e *NotReadyError) Error() string {
	if e.Cause == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Cause.Error()
}

func (e *NotReadyError) Unwrap() error { return e.Cause }

// New returns the service's HTTP handler with every route, for one
// listener (OPS_ADDR empty). Serve it with an http.Server whose
// MaxHeaderBytes is ServerMaxHeaderBytes, so that every header limit is
// answered by this handler in JSON.
func New(cfg Config) *echo.Echo {
	e, _ := newHandler(cfg)
	return e
}

// Split returns the handlers of two listeners (OPS_ADDR set): public
// serves only the marketplace routes, and every other path is 404 there;
// ops serves the rest (probes, metrics, /openapi.yaml, the read API, the
// console). They
// share the processing slots and body limits. Serve both as New says.
func Split(cfg Config) (public, ops *echo.Echo) {
	s := newServer(cfg)
	public, ops = s.echo(), s.echo()
	s.publicRoutes(public)
	s.opsRoutes(ops)
	return public, ops
}

// newHandler is New, with the marketplace for tests that look inside.
func newHandler(cfg Config) (*echo.Echo, *marketplace) {
	s := newServer(cfg)
	e := s.echo()
	s.publicRoutes(e)
	s.opsRoutes(e)
	return e, s.m
}

// server is what the routes of both listeners share.
type server struct {
	cfg Config
	m   *marketplace
}

func newServer(cfg Config) *server {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.MaxBodyReaders <= 0 {
		cfg.MaxBodyReaders = DefaultMaxBodyReaders
	}
	if cfg.BodyMemory <= 0 {
		cfg.BodyMemory = DefaultBodyMemory
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Products == nil {
		cfg.Products = products.Default("")
	}
	if cfg.Observer == nil {
		cfg.Observer = nobody{}
	}
	return &server{cfg: cfg, m: &marketplace{
		receiver: cfg.Receiver,
		products: cfg.Products,
		auth:     cfg.Auth,
		bodies:   newBodies(cfg.MaxBodyReaders, cfg.BodyMemory, cfg.BodyReadTimeout),
		inFlight: newSlots(cfg.MaxInFlight),
		obs:      cfg.Observer,
	}}
}

// echo is a handler with no routes yet and the middleware every route has:
// request ids, a trace per delivery (when tracing is on), one log line per
// request, panics as errors, header limits, and every error as a contract
// document.
func (s *server) echo() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(s.cfg.Logger)
	e.Use(
		// The request id, a delivery's span (tracing on), a panic as the
		// request's error, the error's reply and one log line, in one
		// middleware (log.go).
		requestLogger(s.cfg.Logger, s.cfg.Observer, s.cfg.TracerProvider),
		limitHeaders(MaxHeaderBytes, MaxHeaderFields),
	)
	return e
}

// marketplaceRoute is the extension URL.
const marketplaceRoute = "/marketplace/:extension"

// publicRoutes are the routes the marketplaces call.
func (s *server) publicRoutes(e *echo.Echo) {
	e.POST(marketplaceRoute, s.m.receive)
	if a := s.cfg.AppDirect; a != nil {
		door := &appdirectDoor{cfg: *a, inFlight: s.m.inFlight, obs: s.m.obs}
		e.GET(appdirectRoute, door.notify)
	}
}

// opsRoutes are the routes of operators, orchestrators and bank
// extensions: one line each.
func (s *server) opsRoutes(e *echo.Echo) {
	e.GET("/healthz", healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/openapi.yaml", openAPI) // docs/openapi.yaml: every route, for clients and tests
	if s.cfg.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(s.cfg.Metrics))
	}
	if len(s.cfg.APITokens) > 0 && s.cfg.Reader != nil {
		api := newReadAPI(s.cfg.Reader, s.cfg.APITokens, s.cfg.Logger)
		if s.cfg.AppDirect != nil {
			api.marketplaces = s.cfg.AppDirect.Marketplaces
		}
		api.routes(e)
	} else {
		e.Any("/v1", readAPIOff)
		e.Any("/v1/*", readAPIOff)
	}
	if s.cfg.Console != nil {
		h := echo.WrapHandler(s.cfg.Console)
		e.Any("/console", h)
		e.Any("/console/*", h)
	} else {
		e.Any("/console", consoleOff)
		e.Any("/console/*", consoleOff)
	}
}

func openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", docs.OpenAPI)
}

func healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(c echo.Context) error {
	body := map[string]any{"status": "ready"}
	if s.cfg.Outside != nil {
		body["outside"] = s.cfg.Outside()
	}
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			reason := "unavailable"
			var nr *NotReadyError
			if errors.As(err, &nr) {
				reason = nr.Reason
			}
			setReason(c, err)
			body["status"], body["reason"] = "unavailable", reason
			return c.JSON(http.StatusServiceUnavailable, body)
		}
	}
	return c.JSON(http.StatusOK, body)
}

// The header limits. net/http answers requests whose headers exceed its
// Server.MaxHeaderBytes itself, in text/plain; with ServerMaxHeaderBytes
// there, everything between MaxHeaderBytes and it is answered here, in
// JSON, and only absurd requests meet net/http's answer.
const (
	MaxHeaderBytes       = 32 << 10 // request line and headers, counted as sent
	MaxHeaderFields      = 100      // header lines
	ServerMaxHeaderBytes = 64 << 10 // for http.Server.MaxHeaderBytes
)

// limitHeaders answers 431 to a request whose headers are larger than
// maxBytes or have more than maxFields lines.
func limitHeaders(maxBytes, maxFields int) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			// "METHOD URI PROTO\r\n", "Host: host\r\n", then "Key: value\r\n" each.
			size := len(req.Method) + len(req.RequestURI) + len(req.Proto) + 4 + len("Host: \r\n") + len(req.Host)
			fields := 1
			for k, vs := range req.Header {
				for _, v := range vs {
					size += len(k) + len(v) + 4
					fields++
				}
			}
			if size > maxBytes || fields > maxFields {
				c.Response().Header().Set(echo.HeaderConnection, "close")
				return &Error{Status: http.StatusRequestHeaderFieldsTooLarge, Code: events.InvalidResponse,
					Message: fmt.Sprintf("the request's headers are %d bytes in %d lines; at most %d bytes and %d lines are accepted", size, fields, maxBytes, maxFields)}
			}
			return next(c)
		}
	}
}
