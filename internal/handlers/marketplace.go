package handlers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/canonjson"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/logctx"
)

type marketplace struct {
	receiver Receiver
	products Products
	auth     Authenticator
	bodies   *bodies
	inFlight slots // deliveries being processed: taken only once authenticated
	obs      Observer
}

// receive is POST /marketplace/:extension. The order matters: nothing
// scarce is held by a sender who has not finished sending and proved who
// it is, and nothing about the request is looked up before that, so an
// unauthenticated sender learns nothing (an unknown extension and a known
// one answer the same 401). The body is read under a deadline, a cap on
// readers and a memory budget (the signature covers it); the processing
// slot is taken only after authentication.
func (m *marketplace) receive(c echo.Context) error {
	req := c.Request()
	log := deliveryOf(c)
	if err := checkContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		c.Response().Header().Set(echo.HeaderConnection, "close") // the body is not read
		return err
	}
	b, err := m.bodies.read(c)
	if err != nil {
		return err
	}
	defer b.release()
	body := b.Bytes()
	if m.auth != nil {
		if err := m.auth.Authenticate(req, body); err != nil {
			return &Error{Status: http.StatusUnauthorized, Code: events.Unauthorized,
				Message: "the request is not signed by the marketplace", Cause: err}
		}
	}
	b.doneReading()
	product, ok := m.products.Lookup(c.Param("extension"))
	if !ok {
		return &Error{Status: http.StatusNotFound, Code: events.ConfigurationError,
			Message: "no product answers on extension " + strconv.Quote(logctx.Cut(c.Param("extension"))) + "; check the products file (PRODUCTS_FILE)"}
	}
	log.product = product.Name

	// Most copies are byte-identical to an answered delivery: answer them
	// from the stored outcome before any JSON work, without a processing
	// slot (the cap protects processing, not stored replies).
	copyKey := copyKeyOf(product.Name, req.Header.Get("webhook-id"), body)
	if answer, cp, ok := m.receiver.Copy(req.Context(), copyKey); ok {
		log.key, log.eventType, log.subscription = cp.Key, cp.EventType, cp.Subscription
		log.outcome, log.replayed = answer.Code, true
		c.Response().Header().Set("Idempotent-Replayed", "true")
		return c.Blob(StatusOf(answer.Kind), echo.MIMEApplicationJSON, answer.Body)
	}

	if !m.inFlight.take() {
		return busy("the service is at capacity; send the delivery again shortly")
	}
	m.obs.InFlight(1)
	defer func() { m.obs.InFlight(-1); m.inFlight.release() }()

	key, err := deliveryKey(req.Header.Get("webhook-id"))
	if err != nil {
		return err
	}
	ev, err := events.Decode(body)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Code: events.InvalidResponse, Message: err.Error()}
	}
	fingerprint, err := canonjson.Fingerprint(body)
	var dup *canonjson.DuplicateKeyError
	switch {
	case errors.As(err, &dup):
		return &Error{Status: http.StatusBadRequest, Code: events.InvalidResponse, Message: dup.Error()}
	case err != nil: // Decode accepted the body, so it is JSON
		return err
	}
	if key == "" {
		key = "sha256:" + fingerprint
	}

	log.key, log.eventType, log.subscription = key, string(ev.EventType), ev.SubscriptionID
	if ev.ProductIdentifier != "" && product.ProductID != "" && ev.ProductIdentifier != product.ProductID {
		// The event was sent to another product's extension: answered, not
		// stored, so a copy sent after the products file is fixed succeeds.
		log.outcome = string(events.ConfigurationError)
		return c.JSON(http.StatusOK, events.Failure(events.ConfigurationError, fmt.Sprintf(
			"product_identifier %q is not the product of extension %q (%q, product_id %q)",
			ev.ProductIdentifier, logctx.Cut(c.Param("extension")), product.Name, product.ProductID)))
	}
	// Every log line of this delivery, the outside API calls' included,
	// carries its request id, webhook-id, key and subscription.
	ctx := logctx.With(req.Context(), zap.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
		logctx.String("webhook_id", log.webhookID), logctx.String("key", key), logctx.String("subscription", ev.SubscriptionID))
	answer, err := m.receiver.Receive(ctx, inbox.Delivery{Key: key, Fingerprint: fingerprint, Event: ev, Product: product.Name, CopyKey: copyKey})
	if err != nil {
		return err
	}
	log.outcome, log.replayed, log.calls, log.reason = answer.Code, answer.Replayed, answer.Calls, answer.Reason

	h := c.Response().Header()
	if answer.Replayed {
		h.Set("Idempotent-Replayed", "true")
	}
	setRetryAfter(h, answer.RetryAfter)
	return c.Blob(StatusOf(answer.Kind), echo.MIMEApplicationJSON, answer.Body)
}

// copyKeyOf names a copy's exact bytes: its product (the extension it was
// sent to), webhook-id and raw body, hashed. Two copies share it only when
// they are byte for byte the same request as far as the delivery is
// concerned; the same bytes sent to another product's extension take the
// whole path, where that product's checks decide.
func copyKeyOf(product, webhookID string, body []byte) string {
	h := sha256.New()
	h.Write([]byte("v2\n"))
	h.Write([]byte(product))
	h.Write([]byte("\n"))
	h.Write([]byte(webhookID))
	h.Write([]byte("\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// statuses is the one table from an outcome's kind to the HTTP status the
// marketplace sees.
var statuses = map[events.Kind]int{
	events.Final:     http.StatusOK,                 // stored; copies get the same bytes
	events.NotStored: http.StatusOK,                 // a document the marketplace acts on (DO_NOT_CANCEL), not stored
	events.Transient: http.StatusServiceUnavailable, // nothing final; send again after Retry-After
	events.Busy:      http.StatusConflict,           // PENDING; send again after Retry-After
	events.Conflict:  http.StatusUnprocessableEntity,
	events.Accepted:  http.StatusAccepted, // AppDirect asynchronous: the result is posted later
}

// StatusOf is the HTTP status the doors send for an outcome of kind k
// (the inbox records it in the delivery's attempt history).
func StatusOf(k events.Kind) int {
	if s, ok := statuses[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// checkContentType accepts no Content-Type or a JSON one.
func checkContentType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &Error{Status: http.StatusUnsupportedMediaType, Code: events.InvalidResponse,
		Message: "Content-Type must be application/json"}
}

// maxWebhookID bounds the webhook-id header.
const maxWebhookID = 256

// deliveryKey is "id:<webhook-id>" for a delivery that names itself, else ""
// (the caller then keys it by its canonical body).
func deliveryKey(id string) (string, error) {
	if id == "" {
		return "", nil
	}
	if len(id) > maxWebhookID || strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return "", &Error{Status: http.StatusBadRequest, Code: events.InvalidResponse,
			Message: "webhook-id must be at most 256 printable ASCII characters without spaces"}
	}
	return "id:" + id, nil
}

func setRetryAfter(h http.Header, d time.Duration) {
	if s := d.Seconds(); s > 0 {
		h.Set("Retry-After", strconv.Itoa(int(s+0.999)))
	}
}
