package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// Reader answers the read API from the records, each in one round trip
// where the records share a node (two on Cluster for the lists).
type Reader interface {
	Account(ctx context.Context, subscriptionID string) (events.Account, error)
	// AccountByIdentifier is the account an accountIdentifier names;
	// events.ErrNotFound when none.
	AccountByIdentifier(ctx context.Context, accountIdentifier string) (events.Account, error)
	AccountsOfUser(ctx context.Context, userID int64) ([]events.Account, error)
	// Unsettled is the subscriptions whose intent is not settled yet,
	// oldest first.
	Unsettled(ctx context.Context, limit int) ([]events.Account, error)
	// Deliveries is a subscription's deliveries with their attempt
	// histories, newest first.
	Deliveries(ctx context.Context, subscriptionID string) ([]inbox.DeliverySummary, error)
	// ResultsPending is up to limit AppDirect results not posted yet.
	ResultsPending(ctx context.Context, limit int) ([]inbox.ResultJob, error)
	// DeliveryByKey is one delivery with its attempt history;
	// events.ErrNotFound when none.
	DeliveryByKey(ctx context.Context, key string) (inbox.DeliverySummary, error)
	// DeliveriesByKeys is the deliveries under keys, those found, in one
	// read however many keys there are.
	DeliveriesByKeys(ctx context.Context, keys []string) ([]inbox.DeliverySummary, error)
	// Failures is the deliveries whose latest attempt failed at or after
	// since, newest first, a page of at most limit from cursor ("" for
	// the first); next is "" on the last page. inbox.ErrBadCursor for a
	// cursor it did not give.
	Failures(ctx context.Context, since time.Time, cursor string, limit int) (page []inbox.DeliverySummary, next string, err error)
}

// readAPI is GET /v1/...: the subscription gate for bank extensions and the
// delivery log for operators, behind bearer tokens. Its answers hold ids,
// codes, statuses, times and counts, never personal data.
type readAPI struct {
	reader       Reader
	tokens       [][32]byte // SHA-256 of each API token
	log          *zap.Logger
	marketplaces []string // AppDirect's, canonical: the keys of an event token (inbox.AppDirectKeys)
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
	g.GET("/appdirect/results", a.resultsPending)
	g.GET("/deliveries/*", a.delivery)
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
	// Users are the users assigned beyond the ORDER's (AppDirect's
	// USER_ASSIGNMENT), by their marketplace uuid.
	Users []userDoc `json:"users,omitempty"`
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

// userDoc is a user assigned to a subscription: its marketplace uuid,
// whether it is assigned (the intent), its step's state and its id in the
// outside system (the Q2 user id).
type userDoc struct {
	User     string `json:"user"`
	Assigned bool   `json:"assigned"`
	State    string `json:"state"`
	ID       string `json:"id,omitempty"`
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
	for _, m := range a.Members {
		d.Users = append(d.Users, userDoc{User: m.User, Assigned: m.Assigned, State: string(m.Step.State), ID: m.Step.ID})
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

// deliveryDoc is one delivery with its attempt history.
type deliveryDoc struct {
	Key            string    `json:"key"`
	WebhookID      string    `json:"webhook_id,omitempty"`  // the Standard Webhooks webhook-id, when it came with one
	EventToken     string    `json:"event_token,omitempty"` // the AppDirect event token, when it came from AppDirect
	EventType      string    `json:"event_type"`
	SubscriptionID string    `json:"subscription_id"`
	Outcome        string    `json:"outcome"`         // SUCCESS or the error code of the latest attempt
	Reason         string    `json:"reason"`          // the latest attempt's reason code; "" when none
	Status         *int      `json:"status"`          // the HTTP status answered last; null while processing or when none was sent
	Final          bool      `json:"final"`           // stored and replayed to every copy; false: released, a later copy is processed again
	State          string    `json:"state"`           // processing, released or done
	Attempts       int       `json:"attempts"`        // copies that were processed
	Copies         int       `json:"copies_answered"` // copies answered from the stored outcome
	FirstSeen      time.Time `json:"first_seen"`
	LastSeen       time.Time `json:"last_seen"`
	DurationMS     int64     `json:"duration_ms"`
	// History is the attempts kept, oldest first (the latest 10);
	// AttemptsDropped counts the older ones.
	History         []attemptDoc `json:"attempt_history"`
	AttemptsDropped int          `json:"attempts_dropped"`
}

// attemptDoc is one processed copy of a delivery.
type attemptDoc struct {
	At           time.Time `json:"at"`
	DurationMS   int64     `json:"duration_ms"`
	Status       *int      `json:"status"` // the HTTP status sent; null when none was (a result posted later)
	Outcome      string    `json:"outcome"`
	Kind         string    `json:"kind"`     // final, unsettled, transient, busy, conflict, accepted
	Reason       string    `json:"reason"`   // which step or check decided it; "" when the outcome says it all
	TraceID      string    `json:"trace_id"` // W3C trace id; "" when not traced
	Calls        []callDoc `json:"calls"`
	CallsDropped int       `json:"calls_dropped"`
}

// callDoc is one outside call an attempt made.
type callDoc struct {
	System     string `json:"system"`
	Action     string `json:"action"`
	Status     *int   `json:"status"` // null when no answer came
	Error      string `json:"error"`  // how it failed, in a few words; "" on success
	DurationMS int64  `json:"duration_ms"`
	RequestID  string `json:"request_id"` // the outside system's id of the request; "" when none
}

func statusOrNull(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

// deliveryOfSummary is a delivery record as the read API answers it; what
// it derives (the ids in the key, the status and reason last answered) is
// inbox's, which the console shows too.
func deliveryOfSummary(d inbox.DeliverySummary) deliveryDoc {
	status, reason := d.Answered(StatusOf)
	doc := deliveryDoc{Key: d.Key, WebhookID: d.WebhookID(), EventToken: d.EventToken(), EventType: d.EventType,
		SubscriptionID: d.Subscription, Outcome: d.Code, Reason: reason, Status: statusOrNull(status), State: d.State,
		Final: d.State == "done", Attempts: d.Attempts, Copies: d.Copies,
		FirstSeen: time.UnixMilli(d.First).UTC(), LastSeen: time.UnixMilli(d.Last).UTC(), DurationMS: d.DurationMS,
		History: make([]attemptDoc, 0, len(d.History)), AttemptsDropped: d.Dropped}
	for _, a := range d.History {
		ad := attemptDoc{At: a.At.UTC(), DurationMS: a.Duration.Milliseconds(), Status: statusOrNull(a.Status), Outcome: a.Code,
			Kind: a.Kind.String(), Reason: a.Reason, TraceID: a.TraceID, Calls: make([]callDoc, 0, len(a.Calls)), CallsDropped: a.CallsDropped}
		for _, c := range a.Calls {
			ad.Calls = append(ad.Calls, callDoc{System: c.System, Action: c.Action, Status: statusOrNull(c.Status), Error: c.Error,
				DurationMS: c.Duration.Milliseconds(), RequestID: c.RequestID})
		}
		doc.History = append(doc.History, ad)
	}
	return doc
}

// deliverySelectors are the ways GET /v1/deliveries finds deliveries;
// a request gives exactly one.
var deliverySelectors = []string{"subscription_id", "webhook_id", "event_token", "account_identifier", "outcome"}

// Bounds of the recent failures' pages.
const (
	defaultFailuresPage = 50
	maxFailuresPage     = 200
)

// deliveries is GET /v1/deliveries: a subscription's deliveries
// (subscription_id, or account_identifier for the subscription it names),
// a delivery by its webhook-id or AppDirect event token, or the recent
// failures (outcome=failed, since, cursor, limit); each with its attempt
// history, newest first.
func (a *readAPI) deliveries(c echo.Context) error {
	q := c.QueryParams()
	var given []string
	for _, s := range deliverySelectors {
		if q.Has(s) {
			given = append(given, s)
		}
	}
	switch len(given) {
	case 0:
		return apiError(c, http.StatusBadRequest, "one of subscription_id, webhook_id, event_token, account_identifier or outcome=failed is required: /v1/deliveries?webhook_id=msg_2Nf8kQ1")
	case 1:
	default:
		return apiError(c, http.StatusBadRequest, "give one of subscription_id, webhook_id, event_token, account_identifier and outcome, not "+strings.Join(given, " and "))
	}
	sel, v := given[0], q.Get(given[0])
	if sel != "outcome" {
		for _, p := range []string{"since", "cursor", "limit"} {
			if q.Has(p) {
				return apiError(c, http.StatusBadRequest, p+" goes with outcome=failed only: /v1/deliveries?outcome=failed&"+p+"=...")
			}
		}
	}
	if v == "" && sel != "outcome" {
		return apiError(c, http.StatusBadRequest, sel+" is empty: give the id, as in /v1/deliveries?"+sel+"=...")
	}
	ctx := c.Request().Context()
	var list []inbox.DeliverySummary
	var err error
	switch sel {
	case "subscription_id":
		list, err = a.reader.Deliveries(ctx, v)
	case "webhook_id":
		if !validID(v) {
			return apiError(c, http.StatusBadRequest, "webhook_id must be at most 256 printable ASCII characters without spaces, as the webhook-id header is")
		}
		list, err = a.reader.DeliveriesByKeys(ctx, []string{"id:" + v})
	case "event_token": // its delivery from each marketplace that gave it
		if !validID(v) {
			return apiError(c, http.StatusBadRequest, "event_token must be at most 256 printable ASCII characters without spaces")
		}
		list, err = a.reader.DeliveriesByKeys(ctx, inbox.AppDirectKeys(a.marketplaces, v))
	case "account_identifier":
		var acct events.Account
		acct, err = a.reader.AccountByIdentifier(ctx, v)
		switch {
		case errors.Is(err, events.ErrNotFound):
			list, err = nil, nil
		case err == nil:
			list, err = a.reader.Deliveries(ctx, acct.SubscriptionID)
		}
	case "outcome":
		return a.failures(c)
	}
	if err != nil {
		return a.unavailable(c, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"deliveries": docsOf(list)})
}

func docsOf(list []inbox.DeliverySummary) []deliveryDoc {
	out := make([]deliveryDoc, 0, len(list))
	for _, d := range list {
		out = append(out, deliveryOfSummary(d))
	}
	return out
}

// failures is GET /v1/deliveries?outcome=failed[&since=][&cursor=][&limit=]:
// the deliveries whose latest attempt failed, newest first, a page at a
// time; next_cursor is there when a page follows.
func (a *readAPI) failures(c echo.Context) error {
	q := c.QueryParams()
	if o := q.Get("outcome"); o != "failed" {
		return apiError(c, http.StatusBadRequest, "outcome must be failed (the deliveries whose latest attempt failed): /v1/deliveries?outcome=failed&since=24h")
	}
	since, err := parseSince(q.Get("since"), time.Now())
	if err != nil {
		return apiError(c, http.StatusBadRequest, err.Error())
	}
	limit := defaultFailuresPage
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxFailuresPage {
			return apiError(c, http.StatusBadRequest, "limit must be a whole number from 1 to "+strconv.Itoa(maxFailuresPage)+" (the deliveries of one page; 50 when absent)")
		}
		limit = n
	}
	page, next, err := a.reader.Failures(c.Request().Context(), since, q.Get("cursor"), limit)
	switch {
	case errors.Is(err, inbox.ErrBadCursor):
		return apiError(c, http.StatusBadRequest, "cursor is not one this list gave: pass next_cursor of the page before, with the same since, or leave cursor out for the first page")
	case err != nil:
		return a.unavailable(c, err)
	}
	body := map[string]any{"deliveries": docsOf(page)}
	if next != "" {
		body["next_cursor"] = next
	}
	return c.JSON(http.StatusOK, body)
}

// parseSince reads since: an RFC 3339 time, or a duration back from now
// ("24h", "90m"); 24 hours back when empty.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return now.Add(-24 * time.Hour), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("since must be an RFC 3339 time (2026-12-05T14:00:00Z) or a duration back from now (24h, 90m)")
}

// delivery is GET /v1/deliveries/{key}: one delivery by its key
// (percent-encoded in the path: id%3Amsg_2Nf8kQ1), with its attempt
// history.
func (a *readAPI) delivery(c echo.Context) error {
	raw := strings.TrimPrefix(c.Request().URL.EscapedPath(), "/v1/deliveries/")
	key, err := url.PathUnescape(raw)
	if err != nil || key == "" {
		return apiError(c, http.StatusBadRequest, "the delivery key must be percent-encoded in the path: /v1/deliveries/id%3Amsg_2Nf8kQ1")
	}
	d, err := a.reader.DeliveryByKey(c.Request().Context(), key)
	switch {
	case errors.Is(err, events.ErrNotFound):
		return apiError(c, http.StatusNotFound, "no delivery "+strconv.Quote(key)+" (never received, or older than EVENT_TTL); a key is id:<webhook-id>, appdirect:<event token> or sha256:<hash of the body>")
	case err != nil:
		return a.unavailable(c, err)
	}
	return c.JSON(http.StatusOK, deliveryOfSummary(d))
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

// consoleOff answers /console/ when API_TOKENS is empty: operators sign
// in with one of the read API's tokens, so without them there is no
// console, and the reply says which setting turns it on.
func consoleOff(c echo.Context) error {
	return apiError(c, http.StatusNotFound, "the console is off: set API_TOKENS (space-separated tokens, at least 16 characters each); an operator signs in with one of them")
}

func apiError(c echo.Context, status int, message string) error {
	return c.JSON(status, map[string]string{"message": message})
}

// maxResults bounds the pending results answered at once.
const maxResults = 500

// resultDoc is an AppDirect result answered later and not accepted yet.
type resultDoc struct {
	EventToken  string     `json:"event_token"`
	Marketplace string     `json:"marketplace"` // the marketplace base URL that gave the token
	State       string     `json:"state"`       // pending (the event is to be processed) or answered (its result is to be posted)
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	Created     time.Time  `json:"created"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
}

// resultsPending is GET /v1/appdirect/results: the AppDirect results
// answered 202 and not yet accepted by the marketplace, the soonest due
// first.
func (a *readAPI) resultsPending(c echo.Context) error {
	jobs, err := a.reader.ResultsPending(c.Request().Context(), maxResults)
	if err != nil {
		return a.unavailable(c, err)
	}
	out := []resultDoc{}
	for _, j := range jobs {
		d := resultDoc{EventToken: j.Token, Marketplace: j.Marketplace, State: j.State, Attempts: j.Attempts, LastError: j.LastError, Created: j.Created}
		if !j.Due.IsZero() {
			d.NextAttempt = &j.Due
		}
		out = append(out, d)
	}
	return c.JSON(http.StatusOK, map[string]any{"results": out})
}
