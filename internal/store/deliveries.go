package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// DeliveryRecord is the history of one delivery, for operators and tests.
type DeliveryRecord struct {
	Key, EventType, Subscription, State, Code string
	Kind                                      events.Kind // of the latest attempt's outcome
	Attempts                                  int         // copies processed (claimed fresh)
	Copies                                    int         // copies answered from the stored outcome
	FirstSeen, LastSeen                       time.Time
	Duration                                  time.Duration
}

// indexLua maintains a subscription's delivery index (for the read API's
// delivery log) from a delivery record: a hash of summaries by delivery
// hash, and a sorted set of the same hashes by first-seen time that caps
// the index at the newest DeliveriesPerSubscription. Each record script
// ends with indexed(): with mode "inline" it writes the index in the same
// atomic step (single node, Sentinel); otherwise it returns the summary for
// the caller to write to the index's own slot (Cluster).
const indexLua = `
local function summary(rec)
  local f = redis.call('HMGET', rec, 'key', 'type', 'sub', 'state', 'code', 'kind', 'attempts', 'copies', 'first', 'last', 'duration_ms')
  local first = tonumber(f[9]) or 0
  return cjson.encode({key = f[1] or '', event_type = f[2] or '', subscription = f[3] or '', state = f[4] or '',
    code = f[5] or '', kind = f[6] or '', attempts = tonumber(f[7]) or 0, copies = tonumber(f[8]) or 0,
    first = first, last = tonumber(f[10]) or 0, duration_ms = tonumber(f[11]) or 0}), first
end
local function index(idx, ord, h, s, first, cap, ttl)
  redis.call('HSET', idx, h, s)
  redis.call('ZADD', ord, 'NX', first, h)
  local over = redis.call('ZCARD', ord) - cap
  if over > 0 then
    local old = redis.call('ZRANGE', ord, 0, over - 1)
    redis.call('ZREMRANGEBYRANK', ord, 0, over - 1)
    redis.call('HDEL', idx, unpack(old))
  end
  if tonumber(ttl) > 0 then
    redis.call('PEXPIRE', idx, ttl)
    redis.call('PEXPIRE', ord, ttl)
  end
end
local function indexed(rec, h, mode, cap, ttl)
  local s, first = summary(rec)
  if mode == 'inline' then index(KEYS[3], KEYS[4], h, s, first, tonumber(cap), ttl) end
  return s
end
`

// indexScript writes one summary to a subscription's delivery index, on
// Cluster, where the index lives in another slot than the record. KEYS:
// index, order. ARGV: hash, summary, first ms, cap, ttl ms.
var indexScript = redis.NewScript(indexLua + `
index(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
return 1
`)

// claimScript decides a delivery's fate in one round trip, so that two
// copies can never both see "free". KEYS: record, lease, [index, order].
// ARGV: fp, token, lease ms, ttl ms, now ms, type, sub, key, hash, index
// mode, cap.
//
// A Busy answer leaves the record alone: the copy was not processed and
// not answered from the record. A lease that already holds this claim's
// token means go-redis retried the script after a lost reply: the first run
// won, so the answer is Fresh again, without counting a second attempt.
var claimScript = redis.NewScript(indexLua + `
local rec, lease = KEYS[1], KEYS[2]
local fp, token, now = ARGV[1], ARGV[2], ARGV[5]
local h, mode, cap = ARGV[9], ARGV[10], ARGV[11]
local cur = redis.call('HMGET', rec, 'state', 'fp', 'body')
local state = cur[1]
if state and cur[2] ~= fp then
  return {'conflict'}
end
if state == 'done' then
  redis.call('HINCRBY', rec, 'copies', 1)
  redis.call('HSET', rec, 'last', now)
  return {'done', cur[3] or '', indexed(rec, h, mode, cap, 0)}
end
local holder = redis.call('GET', lease)
if holder == token then
  return {'fresh'}
end
if holder then
  return {'busy', redis.call('PTTL', lease)}
end
redis.call('SET', lease, token, 'PX', ARGV[3])
if not state then
  redis.call('HSET', rec, 'key', ARGV[8], 'fp', fp, 'first', now, 'type', ARGV[6], 'sub', ARGV[7])
end
redis.call('HSET', rec, 'state', 'processing', 'token', token, 'last', now)
redis.call('HINCRBY', rec, 'attempts', 1)
redis.call('PEXPIRE', rec, ARGV[4])
return {'fresh', indexed(rec, h, mode, cap, ARGV[4])}
`)

// completeScript stores a final outcome if the lease still holds the token.
// KEYS: record, lease, [index, order]. ARGV: token, kind, body, code,
// duration ms, ttl ms, hash, index mode, cap, copy key ("" for none; not on
// Cluster, where it is written in a second step). Returns {1, summary} when
// written, {1} when already written by this token (a retried call), {0}
// when the lease is lost.
var completeScript = redis.NewScript(indexLua + `
local rec, lease, token = KEYS[1], KEYS[2], ARGV[1]
if redis.call('GET', lease) ~= token then
  local cur = redis.call('HMGET', rec, 'state', 'token')
  if cur[1] == 'done' and cur[2] == token then return {1} end
  return {0}
end
redis.call('HSET', rec, 'state', 'done', 'kind', ARGV[2], 'body', ARGV[3], 'code', ARGV[4], 'duration_ms', ARGV[5])
redis.call('PEXPIRE', rec, ARGV[6])
redis.call('DEL', lease)
if ARGV[10] ~= '' then
  redis.call('SET', ARGV[10], ARGV[7], 'PX', ARGV[6])
end
return {1, indexed(rec, ARGV[7], ARGV[8], ARGV[9], ARGV[6])}
`)

// copyScript answers a byte-identical copy of an answered delivery from
// its copy key, in one round trip, and counts it in the delivery's record
// and log as the claim script would. The copy key holds only the record's
// hash: the reply, the delivery key, type and subscription are read from
// the record, so they are stored once (a copy key written by an earlier
// version holds JSON with the hash as "h"). The record is reached through
// a key not declared: single node and Sentinel only; on Cluster the copy
// key holds the whole answer (inbox.Copy as JSON), a plain GET answers
// and the counters are not moved. A copy whose record is gone or no longer
// done is a miss: the slow path decides.
// KEYS: copy. ARGV: key prefix, now ms, cap. Returns {key, type, sub,
// reply} or nil.
var copyScript = redis.NewScript(indexLua + `
local h = redis.call('GET', KEYS[1])
if not h then return false end
if string.sub(h, 1, 1) == '{' then h = cjson.decode(h).h end
local rec = ARGV[1] .. 'delivery:{' .. h .. '}'
local f = redis.call('HMGET', rec, 'state', 'key', 'type', 'sub', 'body')
if f[1] ~= 'done' then return false end
redis.call('HINCRBY', rec, 'copies', 1)
redis.call('HSET', rec, 'last', ARGV[2])
local sub = f[4] or ''
if sub ~= '' then
  local idx = ARGV[1] .. 'deliveries:{' .. sub .. '}'
  local s, first = summary(rec)
  index(idx, idx .. ':order', h, s, first, tonumber(ARGV[3]), 0)
end
return {f[2] or '', f[3] or '', sub, f[5] or ''}
`)

// Copy answers a byte-identical copy of an answered delivery from its copy
// key (see inbox.Result.CopyKey): ok is false when there is none, and the
// caller takes the slow path (decode, key, claim).
func (r *Redis) Copy(ctx context.Context, copyKey string) (c inbox.Copy, ok bool, err error) {
	key := r.keys.copy(copyKey)
	if r.cluster() {
		v, err := r.client.Get(ctx, key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return c, false, nil
		case err != nil:
			return c, false, unavailable("copy", err)
		}
		if err := json.Unmarshal([]byte(v), &c); err != nil {
			return c, false, nil // not ours to trust: the slow path decides
		}
		return c, true, nil
	}
	f, err := copyScript.Run(ctx, r.client, []string{key}, r.keys.prefix, time.Now().UnixMilli(), DeliveriesPerSubscription).StringSlice()
	switch {
	case errors.Is(err, redis.Nil):
		return c, false, nil
	case err != nil:
		return c, false, unavailable("copy", err)
	case len(f) != 4:
		return c, false, nil // not ours to trust: the slow path decides
	}
	return inbox.Copy{Key: f[0], EventType: f[1], Subscription: f[2], Body: f[3]}, true, nil
}

// releaseScript gives a claim up after an outcome that is not final if the
// lease still holds the token. KEYS: record, lease, [index, order]. ARGV:
// token, code, duration ms, kind, hash, index mode, cap. The record keeps
// its TTL and its fingerprint, so a later copy with the same body claims
// Fresh and one with another body is still a conflict.
var releaseScript = redis.NewScript(indexLua + `
local rec, lease, token = KEYS[1], KEYS[2], ARGV[1]
if redis.call('GET', lease) ~= token then
  local cur = redis.call('HMGET', rec, 'state', 'token')
  if cur[1] == 'released' and cur[2] == token then return {1} end
  return {0}
end
redis.call('HSET', rec, 'state', 'released', 'code', ARGV[2], 'duration_ms', ARGV[3], 'kind', ARGV[4])
redis.call('DEL', lease)
return {1, indexed(rec, ARGV[5], ARGV[6], ARGV[7], 0)}
`)

// Claim decides, in one round trip, what to do with a delivery:
//   - a done record with the same fingerprint: Done, with the stored status
//     and body (attempts and last-seen are updated);
//   - any record with another fingerprint: Conflict;
//   - the lease free (new delivery, released one, or a crashed holder's
//     lease expired): Fresh with a new fencing token; the record is marked
//     processing and kept for TTL;
//   - the lease held by another: Busy, with the time left on it.
func (r *Redis) Claim(ctx context.Context, c inbox.ClaimRequest) (inbox.Claim, error) {
	switch {
	case c.Key == "":
		return inbox.Claim{}, errors.New("store: claim: empty delivery key")
	case c.Fingerprint == "":
		return inbox.Claim{}, errors.New("store: claim: empty fingerprint")
	case c.Lease <= 0 || c.TTL <= 0:
		return inbox.Claim{}, fmt.Errorf("store: claim: lease %v and ttl %v must be positive", c.Lease, c.TTL)
	}
	token := newToken()
	keys, h, mode := r.deliveryKeys(c.Key, c.Subscription)
	ttl := millis(max(c.TTL, c.Lease))
	res, err := claimScript.Run(ctx, r.client, keys,
		c.Fingerprint, token, millis(c.Lease), ttl,
		time.Now().UnixMilli(), c.EventType, c.Subscription, c.Key, h, mode, DeliveriesPerSubscription).Slice()
	if err != nil {
		return inbox.Claim{}, unavailable("claim", err)
	}
	if n := len(res); n > 0 && ((res[0] == "fresh" && n == 2) || (res[0] == "done" && n == 3)) {
		if err := r.indexLater(ctx, c.Subscription, h, mode, res[n-1], ttl); err != nil {
			return inbox.Claim{}, err
		}
	}
	bad := func() (inbox.Claim, error) {
		return inbox.Claim{}, fmt.Errorf("redis claim: %w: unexpected script reply %v", events.ErrUnavailable, res)
	}
	if len(res) == 0 {
		return bad()
	}
	switch res[0] {
	case "fresh":
		return inbox.Claim{State: inbox.ClaimFresh, Token: token}, nil
	case "conflict":
		return inbox.Claim{State: inbox.ClaimConflict}, nil
	case "busy":
		if len(res) < 2 {
			return bad()
		}
		pttl, _ := res[1].(int64)
		return inbox.Claim{State: inbox.ClaimBusy, RetryIn: time.Duration(max(pttl, 0)) * time.Millisecond}, nil
	case "done":
		if len(res) < 2 {
			return bad()
		}
		body, _ := res[1].(string)
		return inbox.Claim{State: inbox.ClaimDone, Body: []byte(body)}, nil
	}
	return bad()
}

// Complete stores a final outcome (res.Kind is events.Final), fenced: only if the lease still holds
// token, else events.ErrLeaseLost and nothing is written (a newer holder owns the
// delivery, and its outcome must not be overwritten). One round trip. The
// record is kept for ttl from now; the lease is deleted.
func (r *Redis) Complete(ctx context.Context, key, token string, res inbox.Result, ttl time.Duration) error {
	if key == "" || token == "" || ttl <= 0 {
		return fmt.Errorf("store: complete: need a key, a token and a positive ttl")
	}
	keys, h, mode := r.deliveryKeys(key, res.Subscription)
	copyKey := ""
	if res.CopyKey != "" && !r.cluster() {
		copyKey = r.keys.copy(res.CopyKey)
	}
	out, err := completeScript.Run(ctx, r.client, keys,
		token, res.Kind.String(), res.Body, res.Code, res.Duration.Milliseconds(), millis(ttl), h, mode, DeliveriesPerSubscription, copyKey).Slice()
	if err != nil {
		return unavailable("complete", err)
	}
	if err := r.recorded(ctx, "completing", res.Subscription, h, mode, out, millis(ttl)); err != nil {
		return err
	}
	if res.CopyKey != "" && r.cluster() && len(out) > 1 {
		b, _ := json.Marshal(inbox.Copy{Key: key, EventType: res.EventType, Subscription: res.Subscription, Body: string(res.Body)})
		if err := r.client.Set(ctx, r.keys.copy(res.CopyKey), b, ttl).Err(); err != nil {
			return unavailable("copy", err)
		}
	}
	return nil
}

// recorded reads a fenced record script's reply ({1, summary}, {1} or {0})
// and, on Cluster, writes the summary to the subscription's index.
func (r *Redis) recorded(ctx context.Context, doing, subscription, h, mode string, out []any, ttl int64) error {
	if len(out) == 0 || out[0] != int64(1) {
		return fmt.Errorf("%s delivery: %w", doing, events.ErrLeaseLost)
	}
	if len(out) > 1 {
		return r.indexLater(ctx, subscription, h, mode, out[1], ttl)
	}
	return nil
}

// DeliveriesPerSubscription caps a subscription's delivery index: a storm
// of one subscription's events keeps only the newest this many (and each
// entry lives no longer than EVENT_TTL).
const DeliveriesPerSubscription = 100

// deliveryKeys are the keys a record script touches: the record and its
// lease, plus, when the index is written in the same step, the
// subscription's index and order. h is the delivery's hash; mode is
// "inline" or "later" (Cluster, or no subscription).
func (r *Redis) deliveryKeys(deliveryKey, subscription string) (keys []string, h, mode string) {
	rec, lease := r.keys.delivery(deliveryKey)
	h = deliveryHash(deliveryKey)
	if subscription == "" || r.cluster() {
		return []string{rec, lease}, h, "later"
	}
	idx, ord := r.keys.deliveryIndex(subscription)
	return []string{rec, lease, idx, ord}, h, "inline"
}

// indexLater writes a summary to the subscription's index in its own slot,
// on Cluster: a second step, so a crash in between leaves the index one
// write behind the record until the next copy.
func (r *Redis) indexLater(ctx context.Context, subscription, h, mode string, summary any, ttl int64) error {
	s, _ := summary.(string)
	if mode != "later" || subscription == "" || s == "" {
		return nil
	}
	var d struct {
		First int64 `json:"first"`
	}
	_ = json.Unmarshal([]byte(s), &d)
	idx, ord := r.keys.deliveryIndex(subscription)
	if err := indexScript.Run(ctx, r.client, []string{idx, ord}, h, s, d.First, DeliveriesPerSubscription, ttl).Err(); err != nil {
		return unavailable("delivery index", err)
	}
	return nil
}

func (r *Redis) cluster() bool {
	_, ok := r.client.(*redis.ClusterClient)
	return ok
}

// Release gives up a claim after an outcome that is not final (an outside
// API unreachable, a deadline, DO_NOT_CANCEL), fenced like Complete. The
// record shows state released with the code, kind and duration, so the
// history keeps the attempt; the next Claim of the delivery is Fresh.
func (r *Redis) Release(ctx context.Context, key, token string, res inbox.Result) error {
	if key == "" || token == "" {
		return fmt.Errorf("store: release: need a key and a token")
	}
	keys, h, mode := r.deliveryKeys(key, res.Subscription)
	out, err := releaseScript.Run(ctx, r.client, keys, token, res.Code, res.Duration.Milliseconds(), res.Kind.String(), h, mode, DeliveriesPerSubscription).Slice()
	if err != nil {
		return unavailable("release", err)
	}
	return r.recorded(ctx, "releasing", res.Subscription, h, mode, out, 0)
}

// Delivery reads the history record of a delivery; events.ErrNotFound when there
// is none (never seen, or older than EVENT_TTL).
func (r *Redis) Delivery(ctx context.Context, key string) (DeliveryRecord, error) {
	rec, _ := r.keys.delivery(key)
	m, err := r.client.HGetAll(ctx, rec).Result()
	if err != nil {
		return DeliveryRecord{}, unavailable("delivery", err)
	}
	if len(m) == 0 {
		return DeliveryRecord{}, fmt.Errorf("delivery record: %w", events.ErrNotFound)
	}
	num := func(f string) int64 {
		n, _ := strconv.ParseInt(m[f], 10, 64)
		return n
	}
	at := func(f string) time.Time {
		if m[f] == "" {
			return time.Time{}
		}
		return time.UnixMilli(num(f))
	}
	d := DeliveryRecord{
		Key:          key,
		EventType:    m["type"],
		Subscription: m["sub"],
		State:        m["state"],
		Code:         m["code"],
		Attempts:     int(num("attempts")),
		Copies:       int(num("copies")),
		FirstSeen:    at("first"),
		LastSeen:     at("last"),
		Duration:     time.Duration(num("duration_ms")) * time.Millisecond,
		Kind:         events.ParseKind(m["kind"]),
	}
	return d, nil
}

// Deliveries returns a subscription's delivery log, newest first, in one
// round trip: at most DeliveriesPerSubscription, none older than
// EVENT_TTL; none is not an error.
func (r *Redis) Deliveries(ctx context.Context, subscription string) ([]inbox.DeliverySummary, error) {
	idx, _ := r.keys.deliveryIndex(subscription)
	m, err := r.client.HGetAll(ctx, idx).Result()
	if err != nil {
		return nil, unavailable("delivery index", err)
	}
	out := make([]inbox.DeliverySummary, 0, len(m))
	for h, s := range m {
		var d inbox.DeliverySummary
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			return nil, fmt.Errorf("decoding delivery %s of subscription %q: %w", h, subscription, err)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b inbox.DeliverySummary) int {
		if c := cmp.Compare(b.First, a.First); c != 0 {
			return c
		}
		return cmp.Compare(b.Last, a.Last)
	})
	return out, nil
}

// newToken returns a random 128-bit token, unique per claim or lock.
// crypto/rand.Read never fails (it aborts the program instead).
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// millis converts a duration to whole milliseconds for PX/PEXPIRE, rounding
// up so that a positive duration never becomes 0 (which Redis rejects).
func millis(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
