package store

// This file reads and writes what operators ask of the deliveries: each
// one's attempt history, a subscription's deliveries, the recent failures
// and the outcome counters (the key layout is in keys.go).

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// attemptDoc is an attempt as the history stores it: one line of JSON
// with short names, since every delivery keeps up to ten. Durations are
// whole milliseconds, rounded up: a call that took 0.3 ms shows 1 ms, not
// nothing.
type attemptDoc struct {
	At           int64     `json:"at"` // Unix ms
	MS           int64     `json:"ms"`
	Status       int       `json:"st,omitempty"`
	Code         string    `json:"o"`
	Kind         string    `json:"k,omitempty"` // "" is final, the most common
	Reason       string    `json:"r,omitempty"`
	Trace        string    `json:"t,omitempty"`
	Calls        []callDoc `json:"c,omitempty"`
	CallsDropped int       `json:"cd,omitempty"`
}

type callDoc struct {
	System    string `json:"s"`
	Action    string `json:"a"`
	Status    int    `json:"st,omitempty"`
	Error     string `json:"e,omitempty"`
	MS        int64  `json:"ms,omitempty"`
	RequestID string `json:"id,omitempty"`
}

// attemptOf is res's attempt, its zero fields taken from res (and At from
// the clock).
func attemptOf(res inbox.Result) inbox.Attempt {
	a := res.Attempt
	if a.At.IsZero() {
		a.At = time.Now()
	}
	a.Duration = cmp.Or(a.Duration, res.Duration)
	a.Code = cmp.Or(a.Code, res.Code)
	if a.Kind == 0 {
		a.Kind = res.Kind
	}
	return a
}

func encodeAttempt(a inbox.Attempt) string {
	d := attemptDoc{At: a.At.UnixMilli(), MS: millis(a.Duration), Status: a.Status, Code: a.Code,
		Reason: a.Reason, Trace: a.TraceID, CallsDropped: a.CallsDropped}
	if a.Kind != events.Final {
		d.Kind = a.Kind.String()
	}
	for _, c := range a.Calls {
		d.Calls = append(d.Calls, callDoc{System: c.System, Action: c.Action, Status: c.Status, Error: c.Error,
			MS: millis(c.Duration), RequestID: c.RequestID})
	}
	b, _ := json.Marshal(d) // cannot fail: strings and numbers
	return string(b)
}

func decodeAttempt(line string) (inbox.Attempt, bool) {
	var d attemptDoc
	if err := json.Unmarshal([]byte(line), &d); err != nil {
		return inbox.Attempt{}, false
	}
	a := inbox.Attempt{At: time.UnixMilli(d.At).UTC(), Duration: time.Duration(d.MS) * time.Millisecond, Status: d.Status,
		Code: d.Code, Kind: events.Final, Reason: d.Reason, TraceID: d.Trace, CallsDropped: d.CallsDropped}
	if d.Kind != "" {
		a.Kind = events.ParseKind(d.Kind)
	}
	for _, c := range d.Calls {
		a.Calls = append(a.Calls, events.Call{System: c.System, Action: c.Action, Status: c.Status, Error: c.Error,
			Duration: time.Duration(c.MS) * time.Millisecond, RequestID: c.RequestID})
	}
	return a, true
}

// summaryOf is a delivery as its record (HGETALL) and its history say;
// ok is false when the record is gone.
func summaryOf(m map[string]string, history string) (inbox.DeliverySummary, bool) {
	if len(m) == 0 || m["key"] == "" {
		return inbox.DeliverySummary{}, false
	}
	num := func(f string) int64 {
		n, _ := strconv.ParseInt(m[f], 10, 64)
		return n
	}
	d := inbox.DeliverySummary{Key: m["key"], EventType: m["type"], Subscription: m["sub"], State: m["state"], Kind: m["kind"],
		Code: m["code"], Attempts: int(num("attempts")), Copies: int(num("copies")), First: num("first"), Last: num("last"),
		DurationMS: num("duration_ms"), Dropped: int(num("dropped"))}
	for line := range strings.SplitSeq(history, "\n") {
		if a, ok := decodeAttempt(line); ok && line != "" {
			d.History = append(d.History, a)
		}
	}
	return d, true
}

// DeliveryByKey reads one delivery with its attempt history, in one round
// trip; events.ErrNotFound when there is none (never seen, or older than
// EVENT_TTL).
func (r *Redis) DeliveryByKey(ctx context.Context, key string) (inbox.DeliverySummary, error) {
	rec, _ := r.keys.delivery(key)
	var all *redis.MapStringStringCmd
	var hist *redis.StringCmd
	err := pipelined(ctx, r.client, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, rec)
		hist = p.Get(ctx, r.keys.attempts(key))
		return nil
	})
	if err != nil {
		return inbox.DeliverySummary{}, unavailable("delivery", err)
	}
	d, ok := summaryOf(all.Val(), hist.Val())
	if !ok {
		return inbox.DeliverySummary{}, fmt.Errorf("delivery %q: %w", key, events.ErrNotFound)
	}
	return d, nil
}

// loadScript reads deliveries listed in a sorted set of record hashes,
// newest first, with their records and histories, in one round trip.
// The records are reached through keys not declared: single node and
// Sentinel only (see loadSorted for Cluster). KEYS: the sorted set. ARGV:
// key prefix, "rank" (ARGV 3 and 4: start and stop) or "score" (max,
// min, and ARGV 5: count). Returns hash, score, record fields, history
// for each.
var loadScript = redis.NewScript(`
local hs
if ARGV[2] == 'rank' then
  hs = redis.call('ZREVRANGE', KEYS[1], ARGV[3], ARGV[4], 'WITHSCORES')
else
  hs = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[3], ARGV[4], 'WITHSCORES', 'LIMIT', 0, ARGV[5])
end
local out = {}
for i = 1, #hs, 2 do
  local rec = ARGV[1] .. 'delivery:{' .. hs[i] .. '}'
  out[#out + 1] = hs[i]
  out[#out + 1] = hs[i + 1]
  out[#out + 1] = redis.call('HGETALL', rec)
  out[#out + 1] = redis.call('GET', rec .. ':attempts') or ''
end
return out
`)

// span is which entries of a sorted set of record hashes to read, newest
// first: the ranks start to stop, or, when byScore, the scores from max
// down to min ("+inf" or Unix ms), count at most.
type span struct {
	byScore     bool
	start, stop int64
	max, min    string
	count       int64
}

// byRank is the entries ranked start to stop, newest first.
func byRank(start, stop int64) span { return span{start: start, stop: stop} }

// byScore is at most count entries scored max down to min.
func byScore(max, min string, count int64) span {
	return span{byScore: true, max: max, min: min, count: count}
}

// scriptArgs are loadScript's ARGV for s.
func (s span) scriptArgs(prefix string) []any {
	if s.byScore {
		return []any{prefix, "score", s.max, s.min, s.count}
	}
	return []any{prefix, "rank", s.start, s.stop}
}

// rangeOf queues the read of s's entries with their scores (Cluster).
func rangeOf(ctx context.Context, c redis.Cmdable, set string, s span) *redis.ZSliceCmd {
	if s.byScore {
		return c.ZRevRangeByScoreWithScores(ctx, set, &redis.ZRangeBy{Max: s.max, Min: s.min, Count: s.count})
	}
	return c.ZRevRangeWithScores(ctx, set, s.start, s.stop)
}

// sorted is one delivery read through a sorted set: its hash and score,
// and the delivery (ok false when its record is gone).
type sorted struct {
	h     string
	score int64
	d     inbox.DeliverySummary
	ok    bool
}

// loadSorted reads the deliveries of the entries s picks in a sorted
// set, newest first, in one round trip (loadScript). On Cluster, where
// the records live in other slots, the set is read first, then the
// records in one pipeline (two round trips).
func (r *Redis) loadSorted(ctx context.Context, set string, s span) ([]sorted, error) {
	if !r.cluster() {
		res, err := loadScript.Run(ctx, r.client, []string{set}, s.scriptArgs(r.keys.prefix)...).Slice()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		return scriptRows(res), nil
	}
	zs, err := rangeOf(ctx, r.client, set, s).Result()
	if err != nil || len(zs) == 0 {
		return nil, err
	}
	var recs records
	err = pipelined(ctx, r.client, func(p redis.Pipeliner) error {
		recs = r.queueRecords(ctx, p, zs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recs.rows(), nil
}

// scriptRows reads loadScript's reply.
func scriptRows(res []any) []sorted {
	var out []sorted
	for i := 0; i+3 < len(res); i += 4 {
		h, _ := res[i].(string)
		score, _ := strconv.ParseInt(fmt.Sprint(res[i+1]), 10, 64)
		hist, _ := res[i+3].(string)
		d, ok := summaryOf(pairs(res[i+2]), hist)
		out = append(out, sorted{h: h, score: score, d: d, ok: ok})
	}
	return out
}

// records are the reads of the deliveries a sorted set listed (Cluster),
// queued in a pipeline.
type records struct {
	zs    []redis.Z
	alls  []*redis.MapStringStringCmd
	hists []*redis.StringCmd
}

// queueRecords queues the record and history of each of zs's hashes.
func (r *Redis) queueRecords(ctx context.Context, p redis.Pipeliner, zs []redis.Z) records {
	recs := records{zs: zs, alls: make([]*redis.MapStringStringCmd, len(zs)), hists: make([]*redis.StringCmd, len(zs))}
	for i, z := range zs {
		rec := r.keys.record(fmt.Sprint(z.Member))
		recs.alls[i], recs.hists[i] = p.HGetAll(ctx, rec), p.Get(ctx, rec+":attempts")
	}
	return recs
}

// rows are the deliveries read, in the set's order.
func (recs records) rows() []sorted {
	out := make([]sorted, len(recs.zs))
	for i, z := range recs.zs {
		d, ok := summaryOf(recs.alls[i].Val(), recs.hists[i].Val())
		out[i] = sorted{h: fmt.Sprint(z.Member), score: int64(z.Score), d: d, ok: ok}
	}
	return out
}

// pairs reads an HGETALL reply from a script: field, value, ...
func pairs(v any) map[string]string {
	list, _ := v.([]any)
	m := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		m[k] = val
	}
	return m
}

// Deliveries returns a subscription's deliveries with their attempt
// histories, newest first: at most DeliveriesPerSubscription, none older
// than EVENT_TTL; none is not an error. One round trip (two on Cluster).
func (r *Redis) Deliveries(ctx context.Context, subscription string) ([]inbox.DeliverySummary, error) {
	order := r.keys.deliveryIndex(subscription)
	rows, err := r.loadSorted(ctx, order, byRank(0, DeliveriesPerSubscription-1))
	if err != nil {
		return nil, unavailable("delivery index", err)
	}
	out := make([]inbox.DeliverySummary, 0, len(rows))
	for _, row := range rows {
		if row.ok {
			out = append(out, row.d)
		}
	}
	slices.SortStableFunc(out, func(a, b inbox.DeliverySummary) int {
		return cmp.Or(cmp.Compare(b.First, a.First), cmp.Compare(b.Last, a.Last))
	})
	return out, nil
}

// Failures returns the deliveries whose latest attempt failed at or after
// since, newest first, at most limit, from the page cursor names ("" is
// the first page); next names the page after, "" on the last. A cursor
// that is not one Failures gave is inbox.ErrBadCursor.
func (r *Redis) Failures(ctx context.Context, since time.Time, cursor string, limit int) (page []inbox.DeliverySummary, next string, err error) {
	if limit < 1 {
		limit = 1
	}
	max, after := "+inf", ""
	if cursor != "" {
		score, h, ok := parseCursor(cursor)
		if !ok {
			return nil, "", inbox.ErrBadCursor
		}
		max, after = strconv.FormatInt(score, 10), h
	}
	read := failuresSpan(max, since, limit)
	rows, err := r.loadSorted(ctx, r.keys.failures(), read)
	if err != nil {
		return nil, "", unavailable("recent failures", err)
	}
	full := len(rows) == int(read.count)
	if after != "" {
		cut, _ := strconv.ParseInt(max, 10, 64)
		i := 0
		for i < len(rows) && rows[i].score == cut && rows[i].h >= after {
			i++
		}
		rows = rows[i:]
	}
	page, last, more := failed(rows, limit)
	if more || full { // full: more may follow what was read
		return page, formatCursor(last.score, last.h), nil
	}
	return page, "", nil
}

// failuresSpan is what a page of at most limit failures from max (the
// cursor's score, "+inf" for the first page) down to since reads of the
// failures set: past the page, since ties on the cursor's millisecond
// come first in the range and are read past (a few at most) to the
// cursor's own entry.
func failuresSpan(max string, since time.Time, limit int) span {
	const slack = 50
	return byScore(max, strconv.FormatInt(since.UnixMilli(), 10), int64(limit+1+slack))
}

// failed is the first limit failed deliveries of rows; more says rows go
// on past them; last is the last row looked at.
func failed(rows []sorted, limit int) (page []inbox.DeliverySummary, last sorted, more bool) {
	for _, row := range rows {
		if len(page) == limit {
			return page, last, true
		}
		last = row
		if row.ok && row.d.Code != "SUCCESS" {
			page = append(page, row.d)
		}
	}
	return page, last, false
}

func formatCursor(score int64, h string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("f1:" + strconv.FormatInt(score, 10) + ":" + h))
}

func parseCursor(c string) (score int64, h string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", false
	}
	parts := strings.Split(string(b), ":")
	if len(parts) != 3 || parts[0] != "f1" || len(parts[2]) != 64 {
		return 0, "", false
	}
	score, err = strconv.ParseInt(parts[1], 10, 64)
	return score, parts[2], err == nil
}

// counters are the reads of the outcome counters, queued in a pipeline:
// the last 60 minutes' and the last 24 hours'.
type counters struct{ mins, hours []*redis.MapStringStringCmd }

func (r *Redis) queueCounters(ctx context.Context, p redis.Pipeliner, now time.Time) counters {
	minute := now.UnixMilli() / 60000
	var c counters
	for i := range int64(60) {
		c.mins = append(c.mins, p.HGetAll(ctx, r.keys.minuteCounter(minute-i)))
	}
	for i := range int64(24) {
		c.hours = append(c.hours, p.HGetAll(ctx, r.keys.hourCounter(minute/60-i)))
	}
	return c
}

// sums are the counts of the last hour and the last day, by outcome code.
func (c counters) sums() (hour, day map[string]int) {
	sum := func(cmds []*redis.MapStringStringCmd) map[string]int {
		out := map[string]int{}
		for _, c := range cmds {
			for code, v := range c.Val() {
				if n, _ := strconv.Atoi(v); n > 0 {
					out[code] += n
				}
			}
		}
		return out
	}
	return sum(c.mins), sum(c.hours)
}

// Overview is what the operator console's front page shows of the
// records.
type Overview struct {
	Hour, Day map[string]int // as OutcomeCounts
	Unsettled int64          // subscriptions not settled yet
	// Oldest is the account of the one unsettled longest; its
	// SubscriptionID is "" when none is (or its account is gone).
	Oldest events.Account
	// Failures are the newest deliveries whose latest attempt failed at
	// or after since, at most limit (Failures' first page).
	Failures []inbox.DeliverySummary
}

// Overview reads in two round trips (on Cluster too) what OutcomeCounts,
// SettleStats, Unsettled and Failures read in five or more one after the
// other: the counters, the unsettled list's size and oldest entry, and the
// recent failures (on Cluster the failures set) in one pipeline; then the
// oldest's account (and on Cluster the failures' records) in another.
func (r *Redis) Overview(ctx context.Context, now, since time.Time, limit int) (Overview, error) {
	var ov Overview
	_, unsettled := r.keys.settle()
	read := failuresSpan("+inf", since, limit)
	var (
		counts counters
		card   *redis.IntCmd
		oldest *redis.StringSliceCmd
		script *redis.Cmd       // single node: the failures with their records
		listed *redis.ZSliceCmd // Cluster: the failures set only
	)
	err := pipelined(ctx, r.client, func(p redis.Pipeliner) error {
		counts = r.queueCounters(ctx, p, now)
		card, oldest = p.ZCard(ctx, unsettled), p.ZRange(ctx, unsettled, 0, 0)
		if r.cluster() {
			listed = rangeOf(ctx, p, r.keys.failures(), read)
		} else {
			script = loadScript.Eval(ctx, p, []string{r.keys.failures()}, read.scriptArgs(r.keys.prefix)...)
		}
		return nil
	})
	if err != nil {
		return ov, unavailable("overview", err)
	}
	ov.Hour, ov.Day = counts.sums()
	ov.Unsettled = card.Val()
	var rows []sorted
	if script != nil {
		res, _ := script.Slice()
		rows = scriptRows(res)
	}
	subs := oldest.Val()
	if len(subs) > 0 || (listed != nil && len(listed.Val()) > 0) {
		var acct *redis.StringCmd
		var recs records
		err = pipelined(ctx, r.client, func(p redis.Pipeliner) error {
			if len(subs) > 0 {
				acct = p.Get(ctx, r.keys.account(subs[0]))
			}
			if listed != nil {
				recs = r.queueRecords(ctx, p, listed.Val())
			}
			return nil
		})
		if err != nil {
			return ov, unavailable("overview", err)
		}
		if listed != nil {
			rows = recs.rows()
		}
		if len(subs) > 0 {
			a, err := accountOf(subs[0], acct)
			if err != nil {
				return ov, err
			}
			if a != nil {
				ov.Oldest = *a
			}
		}
	}
	ov.Failures, _, _ = failed(rows, limit)
	return ov, nil
}

// Found is what the records hold under the ids of an operator's search.
type Found struct {
	// Deliveries are the deliveries found, by the key they were asked by.
	Deliveries map[string]inbox.DeliverySummary
	Account    *events.Account // the subscription's; nil when none
	// ByIdentifier is the account the account identifier names; nil when
	// none (or the index entry is stale).
	ByIdentifier *events.Account
	OfUser       []events.Account // the user's accounts, oldest first
}

// Lookup reads in two round trips (on Cluster too) what DeliveryByKey for
// each of keys, Account, AccountByIdentifier and AccountsOfUser read one
// after the other: every delivery record, the account, the identifier's
// index entry and the user's accounts (on Cluster the user's index) in one
// pipeline; then the account the index names (and on Cluster the user's
// accounts) in another. An empty subscription or identifier and a user 0
// are not read.
func (r *Redis) Lookup(ctx context.Context, keys []string, subscription, accountIdentifier string, user int64) (Found, error) {
	found := Found{Deliveries: map[string]inbox.DeliverySummary{}}
	alls := make([]*redis.MapStringStringCmd, len(keys))
	hists := make([]*redis.StringCmd, len(keys))
	var acct, index *redis.StringCmd
	var users *redis.Cmd               // single node: the user's accounts
	var userSubs *redis.StringSliceCmd // Cluster: the user's index
	err := pipelined(ctx, r.client, func(p redis.Pipeliner) error {
		for i, key := range keys {
			rec, _ := r.keys.delivery(key)
			alls[i], hists[i] = p.HGetAll(ctx, rec), p.Get(ctx, r.keys.attempts(key))
		}
		if subscription != "" {
			acct = p.Get(ctx, r.keys.account(subscription))
		}
		if accountIdentifier != "" {
			index = p.Get(ctx, r.keys.accountIndex(accountIdentifier))
		}
		switch {
		case user == 0:
		case r.cluster():
			userSubs = p.HKeys(ctx, r.keys.userIndex(user))
		default:
			users = userAccountsScript.Eval(ctx, p, []string{r.keys.userIndex(user)}, r.keys.prefix)
		}
		return nil
	})
	if err != nil {
		return found, unavailable("search", err)
	}
	for i, key := range keys {
		if d, ok := summaryOf(alls[i].Val(), hists[i].Val()); ok {
			found.Deliveries[key] = d
		}
	}
	if found.Account, err = accountOf(subscription, acct); err != nil {
		return found, err
	}
	if users != nil {
		res, _ := users.Slice()
		if found.OfUser, err = userAccounts(res); err != nil {
			return found, err
		}
	}
	named := ""
	if index != nil {
		named = index.Val()
	}
	var subs []string
	if userSubs != nil {
		subs = userSubs.Val()
	}
	if named != "" || len(subs) > 0 {
		var byID *redis.StringCmd
		gets := make([]*redis.StringCmd, len(subs))
		err = pipelined(ctx, r.client, func(p redis.Pipeliner) error {
			if named != "" {
				byID = p.Get(ctx, r.keys.account(named))
			}
			for i, sub := range subs {
				gets[i] = p.Get(ctx, r.keys.account(sub))
			}
			return nil
		})
		if err != nil {
			return found, unavailable("search", err)
		}
		a, err := accountOf(named, byID)
		if err != nil {
			return found, err
		}
		if a != nil && a.AccountIdentifier == accountIdentifier { // else a stale index entry
			found.ByIdentifier = a
		}
		for i, sub := range subs {
			a, err := accountOf(sub, gets[i])
			if err != nil {
				return found, err
			}
			if a != nil {
				found.OfUser = append(found.OfUser, *a)
			}
		}
	}
	slices.SortFunc(found.OfUser, func(a, b events.Account) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return found, nil
}

// DeliveriesByKeys is the deliveries under keys, in their order, those
// found only: one round trip (Lookup's first), however many keys.
func (r *Redis) DeliveriesByKeys(ctx context.Context, keys []string) ([]inbox.DeliverySummary, error) {
	found, err := r.Lookup(ctx, keys, "", "", 0)
	if err != nil {
		return nil, err
	}
	var list []inbox.DeliverySummary
	for _, key := range keys {
		if d, ok := found.Deliveries[key]; ok {
			list = append(list, d)
		}
	}
	return list, nil
}

// accountOf is the account a queued GET of sub's account read; nil when
// there was no read or no account.
func accountOf(sub string, get *redis.StringCmd) (*events.Account, error) {
	if get == nil {
		return nil, nil
	}
	v, err := get.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, unavailable("account", err)
	}
	a, err := decodeAccount(sub, v)
	if err != nil {
		return nil, err
	}
	return &a, nil
}
