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
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/canonjson"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/logctx"
	"github.com/banking-marketplace/webhook/internal/products"
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
	b, product, err := m.admit(c)
	if err != nil {
		return err
	}
	defer b.release()
	log := deliveryOf(c)
	log.product = product.Name
	// Most copies are byte-identical to an answered delivery: answer them
	// from the stored outcome before any JSON work, without a processing
	// slot (the cap protects processing, not stored replies).
	copyKey := copyKeyOf(product.Name, log.webhookID, b.Bytes())
	if answered, err := m.replay(c, log, copyKey); answered {
		return err
	}
	return m.process(c, log, product, b.Bytes(), copyKey)
}

// admit reads the body of an authenticated request to a known extension:
// the caller must release the body.
func (m *marketplace) admit(c echo.Context) (*body, *products.Product, error) {
	req := c.Request()
	if err := checkContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		c.Response().Header().Set(echo.HeaderConnection, "close") // the body is not read
		return nil, nil, err
	}
	b, err := m.bodies.read(c)
	if err != nil {
		return nil, nil, err
	}
	if m.auth != nil {
		if err := m.auth.Authenticate(req, b.Bytes()); err != nil {
			b.release()
			return nil, nil, &Error{Status: http.StatusUnauthorized, Code: events.Unauthorized,
				Message: "the request is not signed by the marketplace", Cause: err}
		}
	}
	b.doneReading()
	product, ok := m.products.Lookup(c.Param("extension"))
	if !ok {
		b.release()
		return nil, nil, &Error{Status: http.StatusNotFound, Code: events.ConfigurationError,
			Message: "no product answers on extension " + strconv.Quote(logctx.Cut(c.Param("extension"))) + "; check the products file (PRODUCTS_FILE)"}
	}
	return b, product, nil
}

// replay answers a byte-identical copy of an answered delivery from its
// stored outcome; answered is false when there is none.
func (m *marketplace) replay(c echo.Context, log *deliveryLog, copyKey string) (answered bool, err error) {
	answer, cp, ok := m.receiver.Copy(c.Request().Context(), copyKey)
	if !ok {
		return false, nil
	}
	log.key, log.eventType, log.subscription = cp.Key, cp.EventType, cp.Subscription
	log.outcome, log.replayed = answer.Code, true
	setReplayed(c.Response().Header())
	return true, c.Blob(StatusOf(answer.Kind), echo.MIMEApplicationJSON, answer.Body)
}

// process is the whole path of a delivery that no stored outcome
// answered: a processing slot, the delivery key, the decoded event, the
// inbox. It is receive's second half in a function of its own (as admit
// is its first), so that receive's stack frame stays small: a copy
// answered from its copy key then fits in 8 KiB of goroutine stack,
// go-redis included, and a thousand connections of copies do not each
// hold 16 KiB (TestCopyPathStack).
func (m *marketplace) process(c echo.Context, log *deliveryLog, product *products.Product, body []byte, copyKey string) error {
	req := c.Request()
	if !m.inFlight.take() {
		return busy("the service is at capacity; send the delivery again shortly")
	}
	m.obs.InFlight(1)
	defer func() { m.obs.InFlight(-1); m.inFlight.release() }()

	key, err := deliveryKey(log.webhookID)
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
		setReplayed(h)
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
	// One SHA-256 of the parts laid end to end in a pooled buffer: the
	// streaming hash.Hash would escape to the heap with its sum, and its
	// hex string is the one allocation left.
	bp := keyBuffers.Get().(*[]byte)
	b := append((*bp)[:0], "v2\n"...)
	b = append(append(append(append(b, product...), '\n'), webhookID...), '\n')
	b = append(b, body...)
	sum := sha256.Sum256(b)
	if cap(b) <= maxPooled {
		*bp = b[:0]
		keyBuffers.Put(bp)
	}
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// keyBuffers are the buffers copyKeyOf lays a copy's parts out in.
var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, firstBuffer); return &b }}

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
	if ct == "" || ct == echo.MIMEApplicationJSON { // the usual one, without parsing
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
	if !validID(id) {
		return "", &Error{Status: http.StatusBadRequest, Code: events.InvalidResponse,
			Message: "webhook-id must be at most 256 printable ASCII characters without spaces"}
	}
	return "id:" + id, nil
}

// validID reports whether id can be a webhook-id (or an event token):
// 1 to maxWebhookID printable ASCII characters without spaces.
func validID(id string) bool { return printableID(id, maxWebhookID) }

// printableID reports whether id is 1 to max printable ASCII characters
// without spaces: what the service takes as an id from a header or a
// query, to log and echo it.
func printableID(id string, max int) bool {
	if id == "" || len(id) > max {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func setRetryAfter(h http.Header, d time.Duration) {
	if s := d.Seconds(); s > 0 {
		h.Set("Retry-After", strconv.Itoa(int(s+0.999)))
	}
}
