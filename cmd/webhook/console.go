package main

// This file gives the operator console (internal/console) what it reads
// and does: the records in Redis, each outside system's state, "settle
// now" over the provisioning service, and sessions in Redis so that every
// replica knows them.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/console"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/handlers"
	"github.com/banking-marketplace/webhook/internal/httpcall"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/outside"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/store"
)

var (
	_ console.Reader   = (*consoleReader)(nil)
	_ console.Actions  = (*consoleActions)(nil)
	_ console.Sessions = redisSessions{}
)

// newConsole is the operator console of the service, for the ops
// listener; nil without API_TOKENS (operators sign in with one of them),
// and then /console/ answers 404 naming the setting.
// marketplaces are the AppDirect door's (canonical base URLs; none when
// it is off): the search finds an event token's delivery from each.
func newConsole(cfg *config, db *store.Redis, monitor *outside.Monitor, seen *systems, service *provisioning.Service, marketplaces []string, log *zap.Logger) (http.Handler, error) {
	if len(cfg.APITokens) == 0 {
		return nil, nil
	}
	c, err := console.New(console.Config{
		Reader:   &consoleReader{db: db, monitor: monitor, seen: seen, marketplaces: marketplaces, now: time.Now},
		Actions:  &consoleActions{db: db, service: service, budget: cfg.ProcessTimeout},
		Tokens:   cfg.APITokens,
		Sessions: redisSessions{db},
		Logger:   log,
		Demo:     cfg.Demo,
		TraceURL: cfg.ConsoleTraceURL,
	})
	if err != nil {
		return nil, &configError{msg: err.Error()}
	}
	return c, nil
}

// consoleReader is the console's Reader over the records in Redis, the
// outside monitor's checks and the outside calls this replica made.
type consoleReader struct {
	db           *store.Redis
	monitor      *outside.Monitor
	seen         *systems
	marketplaces []string // AppDirect's, canonical: the keys of an event token (inbox.AppDirectKeys)
	now          func() time.Time
}

// The console's page sizes.
const (
	failuresPage      = 50
	recentOnOverview  = 11 // the overview shows 10, and says when there are more
	unsettledListSize = 500
)

// Overview is two round trips to Redis (store.Overview), whatever it
// finds.
func (r *consoleReader) Overview(ctx context.Context) (console.Overview, error) {
	now := r.now()
	rec, err := r.db.Overview(ctx, now, now.Add(-24*time.Hour), recentOnOverview)
	if err != nil {
		return console.Overview{}, err
	}
	ov := console.Overview{Hour: counts(rec.Hour), Day: counts(rec.Day), Unsettled: int(rec.Unsettled), Systems: r.systems()}
	if rec.Oldest.SubscriptionID != "" {
		ov.Oldest = console.RowOf(rec.Oldest)
	}
	for _, d := range rec.Failures {
		ov.RecentFailures = append(ov.RecentFailures, rowOf(d))
	}
	return ov, nil
}

func counts(m map[string]int) []console.OutcomeCount {
	out := make([]console.OutcomeCount, 0, len(m))
	for code, n := range m {
		out = append(out, console.OutcomeCount{Outcome: code, Count: n})
	}
	return out
}

func (r *consoleReader) Subscription(ctx context.Context, id string) (console.Subscription, error) {
	a, err := r.db.Account(ctx, id)
	if err != nil {
		return console.Subscription{}, err
	}
	s := console.SubscriptionOf(a)
	ds, err := r.db.Deliveries(ctx, id)
	if err != nil {
		return console.Subscription{}, err
	}
	for _, d := range ds {
		s.Deliveries = append(s.Deliveries, deliveryOf(d))
	}
	return s, nil
}

func (r *consoleReader) Delivery(ctx context.Context, key string) (console.Delivery, error) {
	d, err := r.db.DeliveryByKey(ctx, key)
	if err != nil {
		return console.Delivery{}, err
	}
	return deliveryOf(d), nil
}

// Search tries q as every id an operator may hold: a delivery key, a
// webhook-id, an AppDirect event token, a subscription id, an account
// identifier and a Q2 user id. Exact matches only; two round trips to
// Redis (store.Lookup), however many ids q may be.
func (r *consoleReader) Search(ctx context.Context, q string) ([]console.Hit, error) {
	type asked struct{ key, field string }
	var deliveries []asked
	for _, prefix := range []string{"id:", "sha256:", "appdirect:"} {
		if strings.HasPrefix(q, prefix) {
			deliveries = append(deliveries, asked{q, "delivery key"})
		}
	}
	deliveries = append(deliveries, asked{"id:" + q, "webhook-id"})
	for _, key := range inbox.AppDirectKeys(r.marketplaces, q) {
		deliveries = append(deliveries, asked{key, "event token"})
	}
	keys := make([]string, len(deliveries))
	for i, d := range deliveries {
		keys[i] = d.key
	}
	var user int64
	if uid, err := strconv.ParseInt(q, 10, 64); err == nil && uid > 0 {
		user = uid
	}
	found, err := r.db.Lookup(ctx, keys, q, q, user)
	if err != nil {
		return nil, err
	}
	var hits []console.Hit
	seen := map[string]bool{}
	add := func(h console.Hit) {
		if id := h.Kind + "\x00" + h.ID; !seen[id] {
			seen[id] = true
			hits = append(hits, h)
		}
	}
	for _, a := range deliveries {
		if d, ok := found.Deliveries[a.key]; ok {
			add(console.Hit{Kind: console.HitDelivery, ID: d.Key, Field: a.field, Subscription: d.Subscription, EventType: d.EventType,
				State: d.Code, At: time.UnixMilli(d.Last).UTC()})
		}
	}
	subscription := func(a events.Account, field string) {
		add(console.Hit{Kind: console.HitSubscription, ID: a.SubscriptionID, Field: field, State: strings.ToLower(string(a.Status)), At: a.UpdatedAt})
	}
	if found.Account != nil {
		subscription(*found.Account, "subscription id")
	}
	if found.ByIdentifier != nil {
		subscription(*found.ByIdentifier, "account identifier")
	}
	for _, a := range found.OfUser {
		subscription(a, "Q2 user id")
	}
	return hits, nil
}

func (r *consoleReader) Failures(ctx context.Context, since time.Time, cursor string) ([]console.DeliveryRow, string, error) {
	page, next, err := r.db.Failures(ctx, since, cursor, failuresPage)
	if errors.Is(err, inbox.ErrBadCursor) { // a link from another window or version: the first page
		page, next, err = r.db.Failures(ctx, since, "", failuresPage)
	}
	if err != nil {
		return nil, "", err
	}
	rows := make([]console.DeliveryRow, 0, len(page))
	for _, d := range page {
		rows = append(rows, rowOf(d))
	}
	return rows, next, nil
}

func (r *consoleReader) Unsettled(ctx context.Context) ([]console.SubscriptionRow, error) {
	accounts, err := r.db.Unsettled(ctx, unsettledListSize)
	if err != nil {
		return nil, err
	}
	rows := make([]console.SubscriptionRow, 0, len(accounts))
	for _, a := range accounts {
		rows = append(rows, console.RowOf(a))
	}
	return rows, nil
}

// deliveryOf is a delivery record as the console shows it; what it
// derives (the ids in the key, the status last answered) is inbox's,
// which the read API answers too.
func deliveryOf(d inbox.DeliverySummary) console.Delivery {
	status, _ := d.Answered(handlers.StatusOf)
	out := console.Delivery{Key: d.Key, WebhookID: d.WebhookID(), EventToken: d.EventToken(), EventType: d.EventType,
		Subscription: d.Subscription, State: d.State, Outcome: d.Code, Status: status, Copies: d.Copies,
		First: time.UnixMilli(d.First).UTC(), Last: time.UnixMilli(d.Last).UTC(), Dropped: d.Dropped}
	for _, a := range d.History {
		ca := console.Attempt{At: a.At, Duration: a.Duration, Status: a.Status, Outcome: a.Code, Kind: a.Kind.String(),
			Reason: a.Reason, TraceID: a.TraceID}
		for _, c := range a.Calls {
			ca.Calls = append(ca.Calls, console.Call{System: c.System, Action: c.Action, Status: c.Status, Error: c.Error,
				Duration: c.Duration, RequestID: c.RequestID})
		}
		out.Attempts = append(out.Attempts, ca)
	}
	return out
}

// rowOf is a delivery record as a row of a list.
func rowOf(d inbox.DeliverySummary) console.DeliveryRow {
	status, reason := d.Answered(handlers.StatusOf)
	return console.DeliveryRow{Key: d.Key, EventType: d.EventType, Subscription: d.Subscription, State: d.State, Outcome: d.Code,
		Reason: reason, Status: status, Attempts: d.Attempts, Last: time.UnixMilli(d.Last).UTC()}
}

// systemOrder is the order the overview lists the outside systems in.
var systemOrder = []string{"q2", "qbd_connect", "helix", "appdirect"}

// systems is each outside system's state: the monitor's checks (at start
// and every 30 s) when they find it unreachable or refusing, else what
// this replica's own calls to it found last.
func (r *consoleReader) systems() []console.System {
	checked := map[string]string{}
	if r.monitor != nil {
		checked = r.monitor.State()
	}
	calls := r.seen.all()
	var out []console.System
	for _, name := range systemOrder {
		check, hasCheck := checked[name]
		call, hasCall := calls[name]
		if !hasCheck && !hasCall {
			continue
		}
		sys := console.System{Name: name}
		switch {
		case strings.HasPrefix(check, "refused"):
			sys.State, sys.Code = console.SystemRefused, strings.TrimSpace(strings.TrimPrefix(check, "refused:"))
		case strings.HasPrefix(check, "unreachable"):
			sys.State, sys.Code = console.SystemUnreachable, strings.TrimSpace(strings.TrimPrefix(check, "unreachable:"))
		case hasCall:
			sys.State, sys.Code, sys.Since = call.state, call.code, call.since
		case check == outside.OK || check == outside.Sandbox:
			sys.State = console.SystemOK
		}
		out = append(out, sys)
	}
	return out
}

// systems is the state of each outside system as this replica's calls
// found it: the latest call's, and since when it has been so. A nil
// *systems records nothing (the settle command).
type systems struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]systemState
}

type systemState struct {
	state, code string
	since       time.Time
}

func newSystems(now func() time.Time) *systems {
	return &systems{now: now, m: map[string]systemState{}}
}

// observe takes one attempt's result as its system's state: refused (401,
// 403: the service's credentials), unreachable (no answer, 429, 5xx) or
// ok (any other answer, a business refusal included).
func (s *systems) observe(a httpcall.Attempt) {
	if s == nil || a.System == "" {
		return
	}
	state, code := console.SystemOK, ""
	switch {
	case a.Status == http.StatusUnauthorized || a.Status == http.StatusForbidden:
		state, code = console.SystemRefused, "HTTP "+strconv.Itoa(a.Status)
	case a.Status == 0:
		state, code = console.SystemUnreachable, cmp.Or(errorClass(a.Err), "no answer")
	case a.Status == http.StatusTooManyRequests || a.Status >= 500:
		state, code = console.SystemUnreachable, "HTTP "+strconv.Itoa(a.Status)
	}
	if state == console.SystemUnreachable && errors.Is(a.Err, context.Canceled) {
		return // the caller went away: says nothing of the system
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.m[a.System]
	if cur.state != state {
		cur.since = s.now()
	}
	cur.state, cur.code = state, code
	s.m[a.System] = cur
}

func (s *systems) all() map[string]systemState {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]systemState, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// consoleActions is "settle now": one settle pass on the subscription,
// under its lock, as the settler would at its next attempt.
type consoleActions struct {
	db      *store.Redis
	service *provisioning.Service
	budget  time.Duration // PROCESS_TIMEOUT: the pass's deadline
}

func (a *consoleActions) SettleNow(ctx context.Context, subscription string) (console.SettleResult, error) {
	acct, err := a.db.Account(ctx, subscription)
	if err != nil {
		return console.SettleResult{}, err
	}
	if acct.Settle.Since.IsZero() {
		return console.SettleResult{}, console.ErrSettled
	}
	// The pass is not cut short by the operator's browser going away: it
	// records each step before its call, and ends within its deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.budget)
	defer cancel()
	rep, err := a.service.Settle(ctx, subscription)
	if err != nil {
		return console.SettleResult{}, err
	}
	if rep.Missing {
		return console.SettleResult{}, events.ErrNotFound
	}
	return console.SettleResult{Settled: rep.Settled, Waiting: rep.Waiting, Next: rep.Due}, nil
}

// redisSessions keeps the console's sessions in Redis, as JSON.
type redisSessions struct{ db *store.Redis }

func (s redisSessions) Put(ctx context.Context, key string, sess console.Session, ttl time.Duration) error {
	b, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	return s.db.PutSession(ctx, key, b, ttl)
}

func (s redisSessions) Refresh(ctx context.Context, key string, sess console.Session, ttl time.Duration) error {
	b, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	err = s.db.RefreshSession(ctx, key, b, ttl)
	if errors.Is(err, events.ErrNotFound) {
		return console.ErrNoSession
	}
	return err
}

func (s redisSessions) Get(ctx context.Context, key string) (console.Session, error) {
	b, err := s.db.GetSession(ctx, key)
	switch {
	case errors.Is(err, events.ErrNotFound):
		return console.Session{}, console.ErrNoSession
	case err != nil:
		return console.Session{}, err
	}
	var sess console.Session
	if err := json.Unmarshal(b, &sess); err != nil {
		return console.Session{}, console.ErrNoSession // not one we wrote: sign in again
	}
	return sess, nil
}

func (s redisSessions) Delete(ctx context.Context, key string) error {
	return s.db.DeleteSession(ctx, key)
}
