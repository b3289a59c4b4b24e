package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// Reader answers the read API from the records, each in one round trip.
type Reader interface {
	Account(ctx context.Context, subscriptionID string) (events.Account, error)
	AccountsOfUser(ctx context.Context, userID int64) ([]events.Account, error)
	// Unsettled is the subscriptions whose intent is not settled yet,
	// oldest first.
	Unsettled(ctx context.Context, limit int) ([]events.Account, error)
	Deliveries(ctx context.Context, subscriptionID string) ([]inbox.DeliverySummary, error)
}

// readAPI is GET /v1/...: the subscription gate for bank extensions and the
// delivery log for operators, behind bearer tokens. Its answers hold ids,
// codes, statuses, times and counts, never personal data.
type readAPI struct {
	reader Reader
	tokens [][32]byte // SHA-256 of each API token
	log    *zap.Logger
}

func newReadAPI(r Reader, tokens []string, log *zap.Logger) *readAPI {
	a := &readAPI{reader: r, log: log}
	for _, t := range tokens {
		a.tokens = append(a.tokens, sha256.Sum256([]byte(t)))
	}
	return a
}

func (a *readAPI) routes(e *echo.Echo) {
	g := e.Group("/v1", a.authenticate)
	g.GET("/subscriptions/:id", a.subscription)
	g.GET("/subscriptions", a.subscriptionsOfUser)
	g.GET("/deliveries", a.deliveries)
}

// authenticate wants a bearer token from API_TOKENS, compared in constant
// time against every configured token (hashed first, so lengths leak
// nothing either).
func (a *readAPI) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		got := sha256.Sum256([]byte(tok))
		match := 0
		for _, want := range a.tokens {
			match |= subtle.ConstantTimeCompare(got[:], want[:])
		}
		if !ok || match != 1 {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="webhook"`)
			return apiError(c, http.StatusUnauthorized, "a valid bearer token is required: Authorization: Bearer TOKEN, TOKEN one of API_TOKENS")
		}
		return next(c)
	}
}

// subscriptionDoc is a subscription as the read API answers it.
type subscriptionDoc struct {
	SubscriptionID    string    `json:"subscription_id"`
	Product           string    `json:"product"`
	Status            string    `json:"status"` // active, suspended, cancelled (provisioning while an ORDER is under way)
	Edition           string    `json:"edition"`
	Items             []itemDoc `json:"items"`
	UserID            int64     `json:"user_id"`
	AccountIdentifier string    `json:"account_identifier"`
	Created           time.Time `json:"created"`
	Updated           time.Time `json:"updated"`
	// Intent is what the marketplace asked last (active, cancelled,
	// refused), Settled whether every step is there yet; Steps say where
	// each step stands in its outside system.
	Intent  string    `json:"intent"`
	Settled bool      `json:"settled"`
	Steps   []stepDoc `json:"steps"`
	// Unsettled: since when, why, and when the settler tries next.
	UnsettledSince *time.Time `json:"unsettled_since,omitempty"`
	Waiting        string     `json:"waiting,omitempty"`
	NextAttempt    *time.Time `json:"next_attempt,omitempty"`
}

// stepDoc is one step of a subscription's plan: its outside system, its
// state there, the id it has there, and its last failure.
type stepDoc struct {
	Target    string `json:"target"`
	State     string `json:"state"` // pending, calling, live, undone, unknown
	ID        string `json:"id,omitempty"`
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

type itemDoc struct {
	Unit     string `json:"unit"`
	Quantity int64  `json:"quantity"`
}

func subscriptionOf(a events.Account) subscriptionDoc {
	d := subscriptionDoc{SubscriptionID: a.SubscriptionID, Product: a.Product, Status: strings.ToLower(string(a.Status)),
		Edition: a.Intent.Edition, Items: []itemDoc{}, UserID: a.UserID, AccountIdentifier: a.AccountIdentifier,
		Created: a.CreatedAt, Updated: a.UpdatedAt, Intent: string(a.Intent.State), Settled: a.Settled(), Steps: []stepDoc{}}
	for _, it := range a.Intent.Items {
		d.Items = append(d.Items, itemDoc{Unit: it.Unit, Quantity: int64(it.Quantity)})
	}
	for _, st := range a.Steps {
		d.Steps = append(d.Steps, stepDoc{Target: st.Target, State: string(st.State), ID: st.ID, Attempts: st.Attempts, LastError: st.LastError})
	}
	if s := a.Settle; !s.Since.IsZero() {
		d.UnsettledSince, d.Waiting = &s.Since, s.Waiting
		if !s.Due.IsZero() {
			d.NextAttempt = &s.Due
		}
	}
	return d
}

// subscription is GET /v1/subscriptions/{id}: may this subscription be used
// now? (status active).
func (a *readAPI) subscription(c echo.Context) error {
	acct, err := a.reader.Account(c.Request().Context(), c.Param("id"))
	switch {
	case errors.Is(err, events.ErrNotFound):
		return apiError(c, http.StatusNotFound, "no subscription "+strconv.Quote(c.Param("id")))
	case err != nil:
		return a.unavailable(c, err)
	}
	return c.JSON(http.StatusOK, subscriptionOf(acct))
}

// maxUnsettled bounds the unsettled list answered at once.
const maxUnsettled = 500

// subscriptionsOfUser is GET /v1/subscriptions?user_id=N[&product=NAME],
// or ?state=unsettled: the subscriptions not settled yet, oldest first.
func (a *readAPI) subscriptionsOfUser(c echo.Context) error {
	switch c.QueryParam("state") {
	case "":
	case "unsettled":
		accounts, err := a.reader.Unsettled(c.Request().Context(), maxUnsettled)
		if err != nil {
			return a.unavailable(c, err)
		}
		out := []subscriptionDoc{}
		for _, acct := range accounts {
			out = append(out, subscriptionOf(acct))
		}
		return c.JSON(http.StatusOK, map[string]any{"subscriptions": out})
	default:
		return apiError(c, http.StatusBadRequest, "state must be unsettled: /v1/subscriptions?state=unsettled")
	}
	uid, err := strconv.ParseInt(c.QueryParam("user_id"), 10, 64)
	if err != nil || uid < 1 {
		return apiError(c, http.StatusBadRequest, "user_id must be a whole number of 1 or more: /v1/subscriptions?user_id=12345")
	}
	accounts, err := a.reader.AccountsOfUser(c.Request().Context(), uid)
	if err != nil {
		return a.unavailable(c, err)
	}
	product := c.QueryParam("product")
	out := []subscriptionDoc{}
	for _, acct := range accounts {
		if product == "" || acct.Product == product {
			out = append(out, subscriptionOf(acct))
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"subscriptions": out})
}

// deliveryDoc is one delivery of a subscription's log.
type deliveryDoc struct {
	Key        string    `json:"key"`
	EventType  string    `json:"event_type"`
	Outcome    string    `json:"outcome"`         // SUCCESS or the error code of the latest attempt
	Status     *int      `json:"status"`          // the HTTP status answered; null while processing
	Final      bool      `json:"final"`           // stored and replayed to every copy; false: released, a later copy is processed again
	State      string    `json:"state"`           // processing, released or done
	Attempts   int       `json:"attempts"`        // copies that were processed
	Copies     int       `json:"copies_answered"` // copies answered from the stored outcome
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	DurationMS int64     `json:"duration_ms"`
}

// deliveries is GET /v1/deliveries?subscription_id=S, newest first.
func (a *readAPI) deliveries(c echo.Context) error {
	sub := c.QueryParam("subscription_id")
	if sub == "" {
		return apiError(c, http.StatusBadRequest, "subscription_id is required: /v1/deliveries?subscription_id=...")
	}
	log, err := a.reader.Deliveries(c.Request().Context(), sub)
	if err != nil {
		return a.unavailable(c, err)
	}
	out := make([]deliveryDoc, 0, len(log))
	for _, d := range log {
		doc := deliveryDoc{Key: d.Key, EventType: d.EventType, Outcome: d.Code, State: d.State,
			Final: d.State == "done", Attempts: d.Attempts, Copies: d.Copies,
			FirstSeen: time.UnixMilli(d.First).UTC(), LastSeen: time.UnixMilli(d.Last).UTC(), DurationMS: d.DurationMS}
		if k := events.ParseKind(d.Kind); k != 0 && d.State != "processing" {
			s := StatusOf(k)
			doc.Status = &s
		}
		out = append(out, doc)
	}
	return c.JSON(http.StatusOK, map[string]any{"deliveries": out})
}

func (a *readAPI) unavailable(c echo.Context, err error) error {
	a.log.Warn("read API: the record store is unavailable", zap.String("route", c.Path()), zap.Error(err))
	c.Response().Header().Set("Retry-After", "5")
	return apiError(c, http.StatusServiceUnavailable, "the record store is unavailable; try again shortly")
}

// readAPIOff answers every /v1 path when API_TOKENS is empty: the read API
// is off, and the reply says which setting turns it on rather than "no
// such route".
func readAPIOff(c echo.Context) error {
	return apiError(c, http.StatusNotFound, "the read API is off: set API_TOKENS (space-separated bearer tokens, at least 16 characters each) to turn it on")
}

func apiError(c echo.Context, status int, message string) error {
	return c.JSON(status, map[string]string{"message": message})
}
