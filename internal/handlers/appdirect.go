package handlers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/logctx"
)

// appdirectRoute is AppDirect's notification URL: the service is then the
// event URL of an AppDirect marketplace called directly.
const appdirectRoute = "/appdirect/events"

// Notifier receives an AppDirect notification whose sender and event URL
// the door has checked (the inbox).
type Notifier interface {
	Notify(ctx context.Context, n inbox.Notification) (inbox.Answer, inbox.Copy, error)
}

// NotifyAuth checks who sent a notification: AppDirect's OAuth 1.0a
// signature (shared credentials), or its bearer token or Basic
// credentials (separate credentials). who names the caller for the log,
// never a secret.
type NotifyAuth interface {
	Verify(ctx context.Context, r *http.Request) (who string, err error)
}

// EventURLs checks an eventUrl against the configured marketplaces: the
// event's token and the marketplace it is in, or an error (nothing is
// fetched from it).
type EventURLs func(raw string) (token, marketplace string, err error)

// AppDirect configures the AppDirect door; nil Config.AppDirect: no such
// route.
type AppDirect struct {
	Notifier Notifier
	Auth     NotifyAuth
	Check    EventURLs
	Product  string // the product AppDirect's events provision
	Async    bool   // APPDIRECT_ASYNC
	// Marketplaces are the configured marketplaces' base URLs, canonical
	// (as Check returns them): the read API finds an event token's
	// deliveries under each (inbox.AppDirectKeys).
	Marketplaces []string
}

type appdirectDoor struct {
	cfg      AppDirect
	inFlight slots
	obs      Observer
}

// notify is GET /appdirect/events?eventUrl=URL. Its order: no body (400),
// then who sent it (401; 503 when the nonce store cannot be reached), then
// where the event URL points (403, and no request is made to a URL outside
// the configured marketplaces), then a processing slot, then the event,
// fetched, received like any delivery, and answered with the same
// documents (AppDirect reads a failure as a 200 with success false; 202
// when the result is posted later).
func (d *appdirectDoor) notify(c echo.Context) error {
	req := c.Request()
	log := deliveryOf(c)
	if req.ContentLength != 0 {
		// AppDirect's notification has no body. The OAuth verifier would
		// read a form body (RFC 5849 signs it) before any check, and this
		// door has none of the Q2 door's caps on bodies being read.
		return &Error{Status: http.StatusBadRequest, Code: events.InvalidResponse,
			Message: "the notification is a GET without a body"}
	}
	if _, err := d.cfg.Auth.Verify(req.Context(), req); err != nil {
		if errors.Is(err, events.ErrUnavailable) { // the nonce store: the signature may well be good
			return &Error{Status: http.StatusServiceUnavailable, Code: events.TransportError, RetryAfter: 5 * time.Second,
				Message: "the record store is unavailable; nothing was done, send the notification again", Cause: err}
		}
		return &Error{Status: http.StatusUnauthorized, Code: events.Unauthorized,
			Message: "the notification is not signed by the marketplace", Cause: err}
	}
	raw := req.URL.Query().Get("eventUrl")
	if raw == "" {
		raw = req.URL.Query().Get("url") // the name some of AppDirect's pages use
	}
	token, market, err := d.cfg.Check(raw)
	if err != nil {
		return &Error{Status: http.StatusForbidden, Code: events.Forbidden,
			Message: "eventUrl must point at an event of a configured marketplace; nothing was fetched", Cause: err}
	}
	log.eventToken, log.product = token, d.cfg.Product
	if !d.inFlight.take() {
		return busy("the service is at capacity; send the notification again shortly")
	}
	d.obs.InFlight(1)
	defer func() { d.obs.InFlight(-1); d.inFlight.release() }()

	ctx := logctx.With(req.Context(), zap.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
		zap.String("event_token", logctx.Cut(token)))
	reply, info, err := d.cfg.Notifier.Notify(ctx, inbox.Notification{EventURL: raw, Token: token, Marketplace: market,
		Product: d.cfg.Product, Async: d.cfg.Async})
	if err != nil {
		return err
	}
	log.key, log.eventType, log.subscription = info.Key, info.EventType, info.Subscription
	log.outcome, log.replayed, log.calls, log.reason = reply.Code, reply.Replayed, reply.Calls, reply.Reason
	h := c.Response().Header()
	if reply.Replayed {
		setReplayed(h)
	}
	setRetryAfter(h, reply.RetryAfter)
	return c.Blob(StatusOf(reply.Kind), echo.MIMEApplicationJSON, reply.Body)
}
