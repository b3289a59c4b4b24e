// Package handlers is the HTTP side of the service (echo): the marketplace
// extension URL and the health routes. It reads the raw body under a size
// limit, checks who sent it, computes the delivery key, decodes the event and
// hands it to the inbox; then it writes the reply document. It decides no
// business outcome, and every error it meets becomes a contract document in
// one place (errorHandler).
package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/products"
)

// MaxBody is the largest body accepted (413 past it).
const MaxBody = 1 << 20

// Receiver takes a decoded delivery and answers it.
type Receiver interface {
	Receive(ctx context.Context, d inbox.Delivery) (inbox.Reply, error)
}

// Products finds the product of an extension.
type Products interface {
	Lookup(extension string) (*products.Product, bool)
}

// Config is what the handlers need.
type Config struct {
	Receiver    Receiver
	Products    Products
	Reader      Reader   // the read API's records; with APITokens
	APITokens   []string // bearer tokens of the read API (/v1/...); none: its routes answer 404
	Auth        Authenticator                   // nil accepts every request (WEBHOOK_AUTH=none)
	Ready       func(ctx context.Context) error // nil: always ready
	MaxInFlight int                             // deliveries processed at once; 0 = 256
	Logger      *zap.Logger
}

// New returns the service's HTTP handler.
func New(cfg Config) *echo.Echo {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Products == nil {
		cfg.Products = products.Default("")
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = errorHandler(cfg.Logger)
	e.Use(
		middleware.RequestID(),
		requestLogger(cfg.Logger),
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisablePrintStack: true}),
	)

	m := &marketplace{receiver: cfg.Receiver, products: cfg.Products, auth: cfg.Auth, log: cfg.Logger}
	e.POST("/marketplace/:extension", m.receive, limitInFlight(cfg.MaxInFlight))
	if len(cfg.APITokens) > 0 && cfg.Reader != nil {
		newReadAPI(cfg.Reader, cfg.APITokens, cfg.Logger).routes(e)
	}
	e.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	e.GET("/readyz", func(c echo.Context) error {
		if cfg.Ready != nil {
			ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
			defer cancel()
			if err := cfg.Ready(ctx); err != nil {
				cfg.Logger.Warn("not ready", zap.Error(err))
				return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	return e
}

// deliveryLog is what a delivery adds to its request's log line.
type deliveryLog struct {
	key, eventType, subscription, extension, product, outcome string
	replayed                                                  bool
	calls                                                     int
}

const deliveryLogKey = "delivery"

// requestLogger writes one line per request: method, route, status,
// duration, request id and, for a delivery, its key, type, subscription,
// outcome and Q2 calls. It never logs bodies or headers.
func requestLogger(log *zap.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod:    true,
		LogRoutePath: true,
		LogStatus:    true,
		LogLatency:   true,
		LogRequestID: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			fields := []zap.Field{
				zap.String("method", v.Method),
				zap.String("route", v.RoutePath),
				zap.Int("status", v.Status),
				zap.Duration("duration", v.Latency),
				zap.String("request_id", v.RequestID),
			}
			msg := "request"
			if d, ok := c.Get(deliveryLogKey).(*deliveryLog); ok {
				msg = "delivery"
				fields = append(fields,
					zap.String("key", d.key),
					zap.String("event_type", d.eventType),
					zap.String("subscription", d.subscription),
					zap.String("extension", d.extension),
					zap.String("product", d.product),
					zap.String("outcome", d.outcome),
					zap.Bool("replayed", d.replayed),
					zap.Int("calls", d.calls),
				)
			}
			log.Info(msg, fields...)
			return nil
		},
	})
}

// limitInFlight caps concurrent deliveries; past the cap a sender is told to
// come back rather than queued without bound.
func limitInFlight(n int) echo.MiddlewareFunc {
	slots := make(chan struct{}, n)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
				return next(c)
			default:
				return busy("the service is at capacity; send the delivery again shortly")
			}
		}
	}
}
