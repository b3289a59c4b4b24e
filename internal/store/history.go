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
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		all = p.HGetAll(ctx, rec)
		hist = p.Get(ctx, r.keys.attempts(key))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
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
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		recs = r.queueRecords(ctx, p, zs)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
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
		rec := r.keys.prefix + "delivery:{" + fmt.Sprint(z.Member) + "}"
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
	_, order := r.keys.deliveryIndex(subscription)
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
	// Ties on the cursor's millisecond come first in the range: read past
	// them (a few at most) to the cursor's own entry.
	const slack = 50
	rows, err := r.loadSorted(ctx, r.keys.failures(), byScore(max, strconv.FormatInt(since.UnixMilli(), 10), int64(limit+1+slack)))
	if err != nil {
		return nil, "", unavailable("recent failures", err)
	}
	full := len(rows) == limit+1+slack
	if after != "" {
		cut, _ := strconv.ParseInt(max, 10, 64)
		i := 0
		for i < len(rows) && rows[i].score == cut && rows[i].h >= after {
			i++
		}
		rows = rows[i:]
	}
	var last sorted
	for _, row := range rows {
		if len(page) == limit {
			return page, formatCursor(last.score, last.h), nil
		}
		last = row
		if row.ok && row.d.Code != "SUCCESS" {
			page = append(page, row.d)
		}
	}
	if full { // more may follow what was read
		return page, formatCursor(last.score, last.h), nil
	}
	return page, "", nil
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

// OutcomeCounts is how many deliveries had their latest attempt in the
// last hour (the current minute and the 59 before it) and the last day
// (the current hour and the 23 before it), by outcome code; one round trip.
func (r *Redis) OutcomeCounts(ctx context.Context, now time.Time) (hour, day map[string]int, err error) {
	minute := now.UnixMilli() / 60000
	var mins, hours []*redis.MapStringStringCmd
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range int64(60) {
			mins = append(mins, p.HGetAll(ctx, r.keys.minuteCounter(minute-i)))
		}
		for i := range int64(24) {
			hours = append(hours, p.HGetAll(ctx, r.keys.hourCounter(minute/60-i)))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, unavailable("outcome counters", err)
	}
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
	return sum(mins), sum(hours), nil
}
