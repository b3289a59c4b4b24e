package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// recordLua is what the record scripts share.
//
// indexed puts a delivery in its subscription's index: a sorted set of
// record hashes by first seen, the newest cap kept, for EVENT_TTL.
//
// remember appends an attempt (one line of JSON) to the delivery's
// history, a string beside the record in its slot: the latest cap lines,
// oldest first; older ones are counted in the record's 'dropped'. It
// lives as long as the record, and returns the attempt it follows (false
// for the first).
//
// failed keeps the recent failures: a delivery whose latest attempt failed
// is listed by that attempt's time, one that succeeded is taken off; at
// most cap, none older than keep ms.
//
// counted counts an attempt's outcome in the per-minute and per-hour
// counters and takes the attempt it follows (prev) out of its own, so a
// delivery counts once, under its latest outcome. prev's counters are
// reached by name (single node and Sentinel only).
//
// outcome is the end of the complete and release scripts: the history,
// then, with mode "inline", the failures and the counters in the same
// atomic step; otherwise (Cluster, where they live in other slots) the
// caller writes them, and gets the previous attempt to count out.
var recordLua = luaIndexed + luaRemember + luaFailed + luaUncount + luaCounted + luaOutcome + luaLeaseLost

const luaIndexed = `
local function indexed(order, h, first, cap, ttl)
  redis.call('ZADD', order, 'NX', first, h)
  local over = redis.call('ZCARD', order) - cap
  if over > 0 then redis.call('ZREMRANGEBYRANK', order, 0, over - 1) end
  redis.call('PEXPIRE', order, ttl)
end
`

const luaRemember = `
local function remember(rec, hist, line, cap)
  local cur = redis.call('GET', hist)
  local lines, prev = {}, false
  if cur then
    for l in string.gmatch(cur, '[^\n]+') do lines[#lines + 1] = l end
    prev = lines[#lines] or false
  end
  lines[#lines + 1] = line
  local over = #lines - cap
  if over > 0 then
    redis.call('HINCRBY', rec, 'dropped', over)
    lines = {unpack(lines, over + 1)}
  end
  local ttl = redis.call('PTTL', rec)
  if ttl > 0 then
    redis.call('SET', hist, table.concat(lines, '\n'), 'PX', ttl)
  else
    redis.call('SET', hist, table.concat(lines, '\n'))
  end
  return prev
end
`

const luaFailed = `
local function failed(key, h, code, at, cap, keep)
  if code == 'SUCCESS' then
    redis.call('ZREM', key, h)
    return
  end
  redis.call('ZADD', key, at, h)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%d', at - keep))
  local over = redis.call('ZCARD', key) - cap
  if over > 0 then redis.call('ZREMRANGEBYRANK', key, 0, over - 1) end
end
`

const luaUncount = `
local function count(key, code, ttl)
  -- A counter's lifetime is set when a code's count becomes 1 (first
  -- counted, or again after a retry took it to 0), not for every count:
  -- counts land only in the current minute or hour, so it stays the one
  -- the counter needs.
  if redis.call('HINCRBY', key, code, 1) == 1 then redis.call('PEXPIRE', key, ttl) end
end
local function uncount(key, code)
  local n = tonumber(redis.call('HGET', key, code) or '0') or 0
  if n > 0 then redis.call('HINCRBY', key, code, -1) end
end
`

var luaCounted = fmt.Sprintf(`
local function counted(prefix, prev, mkey, hkey, code)
  if prev then
    local ok, p = pcall(cjson.decode, prev)
    if ok and type(p) == 'table' and tonumber(p.at) and p.o then
      local m = math.floor(tonumber(p.at) / 60000)
      uncount(prefix .. '{stats}:m:' .. string.format('%%d', m), p.o)
      uncount(prefix .. '{stats}:h:' .. string.format('%%d', math.floor(m / 60)), p.o)
    end
  end
  count(mkey, code, %d)
  count(hkey, code, %d)
end
`, minuteCounterTTL.Milliseconds(), hourCounterTTL.Milliseconds())

// lease_lost is the record scripts' fence: nil while the lease holds
// token; else their reply, {0} when another holder took over, and when
// this token's outcome (state) is recorded already (go-redis retried the
// call after a lost reply): {1} with mode "inline", whose first run wrote
// everything; else (Cluster) {1, prev, 'again'}, prev the attempt before
// this one in the history (hist), so that the caller writes what its lost
// reply kept it from writing (outcomeApart, the copy key).
const luaLeaseLost = `
local function lease_lost(rec, lease, token, state, hist, mode)
  if redis.call('GET', lease) == token then return nil end
  local cur = redis.call('HMGET', rec, 'state', 'token')
  if cur[1] ~= state or cur[2] ~= token then return {0} end
  if mode == 'inline' then return {1} end
  local lines = {}
  for l in string.gmatch(redis.call('GET', hist) or '', '[^\n]+') do lines[#lines + 1] = l end
  return {1, lines[#lines - 1] or '', 'again'}
end
`

const luaOutcome = `
local function outcome(line, code, h, at, mode, prefix, hcap, fcap, keep)
  local prev = remember(KEYS[1], KEYS[3], line, tonumber(hcap))
  if mode ~= 'inline' then return {1, prev or ''} end
  failed(KEYS[4], h, code, tonumber(at), tonumber(fcap), tonumber(keep))
  counted(prefix, prev, KEYS[5], KEYS[6], code)
  return {1, ''}
end
`

// The outcome counters' lifetimes: a minute's counter serves the last
// hour, an hour's the last day.
const (
	minuteCounterTTL = 2 * time.Hour
	hourCounterTTL   = 26 * time.Hour
)

// indexScript puts a delivery in its subscription's index, on Cluster,
// where the index lives in another slot than the record. KEYS: order.
// ARGV: hash, first ms, cap, ttl ms.
var indexScript = redis.NewScript(luaIndexed + `
indexed(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
return 1
`)

// failedScript is failed() on Cluster, where the recent failures live in
// another slot than the record. KEYS: failures. ARGV: hash, code, at ms,
// cap, keep ms.
var failedScript = redis.NewScript(luaFailed + `
failed(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
return 1
`)

// countScript moves the outcome counters on Cluster. KEYS: minute, hour
// counter. ARGV: code, "1" to count an attempt, "-1" to take one out
// (never below 0, never creating a counter).
var countScript = redis.NewScript(luaUncount + fmt.Sprintf(`
if ARGV[2] == '1' then
  count(KEYS[1], ARGV[1], %d)
  count(KEYS[2], ARGV[1], %d)
else
  uncount(KEYS[1], ARGV[1])
  uncount(KEYS[2], ARGV[1])
end
return 1
`, minuteCounterTTL.Milliseconds(), hourCounterTTL.Milliseconds()))

// claimScript decides a delivery's fate in one round trip, so that two
// copies can never both see "free". KEYS: record, lease, history,
// [order, [lock, account]]. ARGV: fp, token, lease ms, ttl ms, now ms,
// type, sub, key, hash, index mode, cap, lock token ("" for none).
//
// A Busy answer leaves the record alone: the copy was not processed and
// not answered from the record. A lease that already holds this claim's
// token means go-redis retried the script after a lost reply: the first run
// won, so the answer is Fresh again, without counting a second attempt.
// A Fresh claim with a lock token also takes the subscription's lock, if
// it is free (or already this token's), for as long as the lease, and
// answers {'fresh', 1, account or false} (unit.go); {'fresh', 0} when
// another holds it (a retried claim finds the lock its own, and leaves its
// time as the first run set it, as it does the lease). Without a lock
// token (Cluster, or no subscription) it answers {'fresh', 0, false,
// false, first}: the record's first time seen, which the subscription's
// index is sorted by (indexApart). With a primed account too (KEYS from 7: identifier
// index, user index, settle due, settle since; ARGV from 13:
// saveAccountLua's), it writes that account when the subscription has
// none, under the lock it just took, and answers {'fresh', 1, false,
// 'primed'}.
var claimScript = redis.NewScript(recordLua + luaSaveAccount + luaTakeLock + `
local rec, lease, hist = KEYS[1], KEYS[2], KEYS[3]
local fp, token, now = ARGV[1], ARGV[2], ARGV[5]
local function fresh()
  if ARGV[12] == '' then return {'fresh', 0, false, false, redis.call('HGET', rec, 'first')} end
  if not take_lock(KEYS[5], ARGV[12], ARGV[3]) then return {'fresh', 0} end
  local acct = redis.call('GET', KEYS[6])
  if not acct and ARGV[13] then
    save_account(KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], ARGV[13], ARGV[14], ARGV[15], ARGV[16], ARGV[17], ARGV[18])
    return {'fresh', 1, false, 'primed'}
  end
  return {'fresh', 1, acct}
end
local cur = redis.call('HMGET', rec, 'state', 'fp', 'body')
local state = cur[1]
if state and cur[2] ~= fp then
  return {'conflict'}
end
if state == 'done' then
  redis.call('HINCRBY', rec, 'copies', 1)
  redis.call('HSET', rec, 'last', now)
  return {'done', cur[3] or ''}
end
local holder = redis.call('GET', lease)
if holder == token then
  return fresh()
end
if holder then
  return {'busy', redis.call('PTTL', lease)}
end
redis.call('SET', lease, token, 'PX', ARGV[3])
local first = now
if not state then
  -- A new record: no history either (it never outlives its record).
  redis.call('HSET', rec, 'key', ARGV[8], 'fp', fp, 'first', now, 'type', ARGV[6], 'sub', ARGV[7],
    'state', 'processing', 'token', token, 'last', now, 'attempts', 1)
else
  redis.call('HSET', rec, 'state', 'processing', 'token', token, 'last', now)
  redis.call('HINCRBY', rec, 'attempts', 1)
  if redis.call('EXISTS', hist) == 1 then redis.call('PEXPIRE', hist, ARGV[4]) end
  first = redis.call('HGET', rec, 'first')
end
redis.call('PEXPIRE', rec, ARGV[4])
if ARGV[10] == 'inline' then
  indexed(KEYS[4], ARGV[9], tonumber(first), tonumber(ARGV[11]), ARGV[4])
end
return fresh()
`)

// completeScript stores a final outcome if the lease still holds the
// token, and the attempt in the history (see outcome). KEYS: record,
// lease, history, failures, minute and hour counters. ARGV: token, kind,
// body, code, duration ms, ttl ms, copy key ("" for none; not on Cluster,
// where it is written in a second step), attempt, hash, attempt ms, mode,
// key prefix, history cap, failures cap, failures kept ms, then the
// unit's (luaUnit: KEYS from 7, ARGV from 16). Returns {1, previous
// attempt} when written, {1} when already written by this token (a
// retried call), {0} when the lease (or the unit's lock) is lost.
var completeScript = redis.NewScript(recordLua + luaSaveAccount + luaUnit + `
local rec, lease, token = KEYS[1], KEYS[2], ARGV[1]
local lost = lease_lost(rec, lease, token, 'done', KEYS[3], ARGV[11])
if lost then return lost end
local holds, mine = unit_check(7, 16)
if not holds then return {0} end
unit_end(7, 16, mine)
redis.call('HSET', rec, 'state', 'done', 'kind', ARGV[2], 'body', ARGV[3], 'code', ARGV[4], 'duration_ms', ARGV[5])
redis.call('PEXPIRE', rec, ARGV[6])
redis.call('DEL', lease)
if ARGV[7] ~= '' then
  redis.call('SET', ARGV[7], ARGV[9], 'PX', ARGV[6])
end
return outcome(ARGV[8], ARGV[4], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15])
`)

// releaseScript gives a claim up after an outcome that is not final if
// the lease still holds the token, and records the attempt (see
// outcome). KEYS: as completeScript. ARGV: token, code, duration ms,
// kind, attempt, hash, attempt ms, mode, key prefix, history cap, failures
// cap, failures kept ms, then the unit's (luaUnit: KEYS from 7, ARGV from
// 13). The record keeps its TTL and its fingerprint, so a later copy with
// the same body claims Fresh and one with another body is still a
// conflict.
var releaseScript = redis.NewScript(recordLua + luaSaveAccount + luaUnit + `
local rec, lease, token = KEYS[1], KEYS[2], ARGV[1]
local lost = lease_lost(rec, lease, token, 'released', KEYS[3], ARGV[8])
if lost then return lost end
local holds, mine = unit_check(7, 13)
if not holds then return {0} end
unit_end(7, 13, mine)
redis.call('HSET', rec, 'state', 'released', 'code', ARGV[2], 'duration_ms', ARGV[3], 'kind', ARGV[4])
redis.call('DEL', lease)
return outcome(ARGV[5], ARGV[2], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12])
`)

// copyScript answers a byte-identical copy of an answered delivery from
// its copy key, in one round trip, and counts it in the delivery's record
// as the claim script would. The copy key holds only the record's hash:
// the reply, the delivery key, type and subscription are read from the
// record, so they are stored once (a copy key written by an earlier
// version holds JSON with the hash as "h"). The record is reached through
// a key not declared: single node and Sentinel only; on Cluster the copy
// key holds the whole answer (inbox.Copy as JSON), a plain GET answers
// and the counters are not moved. A copy whose record is gone or no longer
// done is a miss: the slow path decides.
// KEYS: copy. ARGV: key prefix, now ms. Returns {key, type, sub, reply}
// or nil.
var copyScript = redis.NewScript(`
local h = redis.call('GET', KEYS[1])
if not h then return false end
if string.sub(h, 1, 1) == '{' then h = cjson.decode(h).h end
local rec = ARGV[1] .. 'delivery:{' .. h .. '}'
local f = redis.call('HMGET', rec, 'state', 'key', 'type', 'sub', 'body')
if f[1] ~= 'done' then return false end
redis.call('HINCRBY', rec, 'copies', 1)
redis.call('HSET', rec, 'last', ARGV[2])
return {f[2] or '', f[3] or '', f[4] or '', f[5] or ''}
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
	f, err := copyScript.Run(ctx, r.client, []string{key}, r.keys.prefix, time.Now().UnixMilli()).StringSlice()
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

// Claim decides, in one round trip, what to do with a delivery:
//   - a done record with the same fingerprint: Done, with the stored status
//     and body (copies and last-seen are updated);
//   - any record with another fingerprint: Conflict;
//   - the lease free (new delivery, released one, or a crashed holder's
//     lease expired): Fresh with a new fencing token; the record is marked
//     processing and kept for TTL, and listed in its subscription's index;
//   - the lease held by another: Busy, with the time left on it.
//
// On Cluster, where the subscription's index lives in another slot, a
// fresh claim lists its delivery there in a second round trip
// (indexApart): not one atomic step.
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
	now := time.Now().UnixMilli()
	lockToken := ""
	if mode == "inline" { // a single node: the subscription's lock and account join the claim (unit.go)
		lockToken = newToken()
		keys = append(keys, r.keys.lock(c.Subscription), r.keys.account(c.Subscription))
	}
	args := []any{c.Fingerprint, token, millis(c.Lease), ttl, now, c.EventType, c.Subscription, c.Key, h, mode, DeliveriesPerSubscription, lockToken}
	var primed []byte
	if lockToken != "" && c.Primed != nil && c.Primed.SubscriptionID == c.Subscription && r.waitReplicas == 0 {
		// Written by the claim only where a save would not wait for
		// replicas: the record before the first call must be as durable
		// as SaveAccount makes it.
		if b, err := json.Marshal(c.Primed); err == nil {
			primed = b
			s := r.saveOf(*c.Primed, b, msOrEmpty(c.Primed.Settle.Due), msOrEmpty(c.Primed.Settle.Since))
			keys, args = append(keys, s.keys...), append(args, s.args...)
		}
	}
	res, err := claimScript.Run(ctx, r.client, keys, args...).Slice()
	if err != nil {
		if lockToken != "" {
			// The script may have run before its reply was lost: the
			// subscription's lock must not wait for its lease with nobody
			// working under it (fenced by the token: a no-op otherwise).
			r.unlock(context.WithoutCancel(ctx), c.Subscription, r.keys.lock(c.Subscription), lockToken)
		}
		return inbox.Claim{}, unavailable("claim", err)
	}
	bad := func() (inbox.Claim, error) {
		return inbox.Claim{}, fmt.Errorf("redis claim: %w: unexpected script reply %v", events.ErrUnavailable, res)
	}
	if len(res) == 0 {
		return bad()
	}
	switch res[0] {
	case "fresh":
		claim := inbox.Claim{State: inbox.ClaimFresh, Token: token}
		if mode == "split" && c.Subscription != "" {
			first := now
			if len(res) >= 5 {
				if f, ok := res[4].(string); ok {
					if v, err := strconv.ParseInt(f, 10, 64); err == nil {
						first = v
					}
				}
			}
			r.indexApart(ctx, c.Subscription, h, first, ttl)
		}
		if len(res) >= 2 && res[1] == int64(1) {
			u := &unit{sub: c.Subscription, lock: lockToken}
			if len(res) >= 3 {
				if b, ok := res[2].(string); ok {
					u.account = []byte(b)
				}
			}
			if len(res) >= 4 && res[3] == "primed" {
				u.account, u.primed = primed, c.Primed
			}
			claim.Bind = u.bind
		}
		return claim, nil
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

// indexApart puts a delivery in its subscription's index on Cluster,
// where the index lives in another slot than the record: after its claim
// was fresh, so that only the subscription that claimed it lists it (in
// the claim's pipeline, a conflicting copy of another subscription's event
// was listed in its own), by its first time seen, as the single-node
// script lists it. The index is a view: if this write fails, a warning is
// logged and the delivery is processed all the same; it stays unlisted
// (a later fresh claim, after a transient outcome, lists it), and is
// found by its key or webhook-id.
func (r *Redis) indexApart(ctx context.Context, sub, h string, first, ttl int64) {
	order := r.keys.deliveryIndex(sub)
	if err := indexScript.Run(ctx, r.client, []string{order}, h, first, DeliveriesPerSubscription, ttl).Err(); err != nil {
		r.log.Warn("listing a delivery in its subscription's index failed; it is processed all the same",
			zap.String("subscription", sub), zap.Error(err))
	}
}

// scriptCall is one run of a script.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// runAll runs calls in one pipeline: one round trip, each node its own
// part, in parallel on Cluster. Each goes as EVALSHA and, the first time a
// node lacks it, is loaded and run once more. The first error fails it.
func (r *Redis) runAll(ctx context.Context, calls ...scriptCall) error {
	cmds := make([]*redis.Cmd, len(calls))
	_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = c.script.EvalSha(ctx, p, c.keys, c.args...)
		}
		return nil
	}) // each command's own error is read below
	for i, c := range calls {
		if isNoScript(cmds[i].Err()) {
			cmds[i] = c.script.Run(ctx, r.client, c.keys, c.args...)
		}
		if err := cmds[i].Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

// Complete stores a final outcome (res.Kind is events.Final), fenced: only if the lease still holds
// token, else events.ErrLeaseLost and nothing is written (a newer holder owns the
// delivery, and its outcome must not be overwritten). One round trip (on
// Cluster more: see recordOutcome). The record is kept for ttl from now;
// the lease is deleted. The attempt joins the delivery's history, the
// recent failures and the outcome counters in the same step.
func (r *Redis) Complete(ctx context.Context, key, token string, res inbox.Result, ttl time.Duration) error {
	if key == "" || token == "" || ttl <= 0 {
		return fmt.Errorf("store: complete: need a key, a token and a positive ttl")
	}
	copyKey := ""
	if res.CopyKey != "" && !r.cluster() {
		copyKey = r.keys.copy(res.CopyKey)
	}
	head := []any{token, res.Kind.String(), res.Body, res.Code, res.Duration.Milliseconds(), millis(ttl), copyKey}
	applied, err := r.recordOutcome(ctx, "completing", "done", completeScript, key, head, res)
	if err != nil {
		return err
	}
	if res.CopyKey != "" && r.cluster() && applied {
		b, _ := json.Marshal(inbox.Copy{Key: key, EventType: res.EventType, Subscription: res.Subscription, Body: string(res.Body)})
		if err := r.client.Set(ctx, r.keys.copy(res.CopyKey), b, ttl).Err(); err != nil {
			return unavailable("copy", err)
		}
	}
	return nil
}

// Release gives up a claim after an outcome that is not final (an outside
// API unreachable, a deadline, DO_NOT_CANCEL), fenced like Complete. The
// record shows state released with the code, kind and duration, and the
// attempt joins the history; the next Claim of the delivery is Fresh.
func (r *Redis) Release(ctx context.Context, key, token string, res inbox.Result) error {
	if key == "" || token == "" {
		return fmt.Errorf("store: release: need a key and a token")
	}
	head := []any{token, res.Code, res.Duration.Milliseconds(), res.Kind.String()}
	_, err := r.recordOutcome(ctx, "releasing", "released", releaseScript, key, head, res)
	return err
}

// recordOutcome runs a fenced record script (head: its own arguments)
// with the attempt of res: its history, and the recent failures and the
// outcome counters, in one atomic step on a single node or Sentinel. On
// Cluster those two live in other slots: they are written once the record
// script has applied the outcome (outcomeApart), so that a holder whose
// lease ran out neither counts its attempt nor lists a failure over the
// newer holder's outcome.
// applied reports that this call wrote the outcome, or on Cluster that
// it found it written by an earlier run of its own whose reply was lost
// (then what comes after the record is written now).
func (r *Redis) recordOutcome(ctx context.Context, doing, state string, script *redis.Script, key string, head []any, res inbox.Result) (applied bool, err error) {
	a := attemptOf(res)
	h := deliveryHash(key)
	rec, lease := r.keys.delivery(key)
	minute, hour := r.keys.counters(a.At)
	keys := []string{rec, lease, r.keys.attempts(key), r.keys.failures(), minute, hour}
	mode := "inline"
	if r.cluster() {
		mode, keys = "split", keys[:3]
	}
	args := append(head, encodeAttempt(a), h, a.At.UnixMilli(), mode, r.keys.prefix, inbox.AttemptsKept, FailuresKept, keepFailures.Milliseconds())
	ukeys, uargs, saving := r.unitArgs(ctx)
	keys, args = append(keys, ukeys...), append(args, uargs...)
	out, err := script.Run(ctx, r.client, keys, args...).Slice()
	if err != nil {
		if saving && r.recorded(ctx, rec, state, head[0]) {
			// The reply was lost, not the write: the record says this
			// token's outcome is in, and with it, in the same atomic
			// step, the save it carried.
			return true, nil
		}
		r.unlockUnit(ctx)
		return false, unsaved(saving, unavailable(doing+" delivery", err))
	}
	if len(out) == 0 || out[0] != int64(1) {
		r.unlockUnit(ctx)
		return false, unsaved(saving, fmt.Errorf("%s delivery: %w", doing, events.ErrLeaseLost))
	}
	if len(out) < 2 {
		return false, nil // a retried call: the first run wrote everything
	}
	if mode == "split" {
		prev, _ := out[1].(string)
		r.outcomeApart(ctx, h, a, prev)
	}
	return true, nil
}

// outcomeApart writes, on Cluster, what the record script writes with the
// outcome on one node: the recent failures and the outcome counters (the
// attempt counted in, the one it follows, prev, counted out), in one
// pipeline, after the outcome is recorded. They are the console's views:
// if the pipeline fails, a warning is logged and the outcome stands.
func (r *Redis) outcomeApart(ctx context.Context, h string, a inbox.Attempt, prev string) {
	minute, hour := r.keys.counters(a.At)
	calls := []scriptCall{
		{failedScript, []string{r.keys.failures()}, []any{h, a.Code, a.At.UnixMilli(), FailuresKept, keepFailures.Milliseconds()}},
		{countScript, []string{minute, hour}, []any{a.Code, "1"}},
	}
	if prev != "" {
		if p, ok := decodeAttempt(prev); ok {
			pm, ph := r.keys.counters(p.At)
			calls = append(calls, scriptCall{countScript, []string{pm, ph}, []any{p.Code, "-1"}})
		}
	}
	if err := r.runAll(ctx, calls...); err != nil {
		r.log.Warn("recording a delivery's outcome in the recent failures and counters failed; the outcome stands",
			zap.Error(err))
	}
}

// DeliveriesPerSubscription caps a subscription's delivery index: a storm
// of one subscription's events keeps only the newest this many (and each
// entry lives no longer than EVENT_TTL).
const DeliveriesPerSubscription = 100

// FailuresKept caps the recent failures: the newest this many deliveries
// whose latest attempt failed, none older than keepFailures.
const FailuresKept = 10000

// keepFailures is how far back the recent failures go; their records
// live EVENT_TTL (72h by default), so a longer window would list nothing
// more.
const keepFailures = 7 * 24 * time.Hour

// deliveryKeys are the keys the claim script touches: the record, its
// lease and its history, plus, when the index is written in the same
// step, the subscription's index. h is the delivery's hash; mode is
// "inline" or "split" (Cluster, or no subscription).
func (r *Redis) deliveryKeys(deliveryKey, subscription string) (keys []string, h, mode string) {
	rec, lease := r.keys.delivery(deliveryKey)
	h = deliveryHash(deliveryKey)
	keys = []string{rec, lease, r.keys.attempts(deliveryKey)}
	if subscription == "" || r.cluster() {
		return keys, h, "split"
	}
	order := r.keys.deliveryIndex(subscription)
	return append(keys, order), h, "inline"
}

func (r *Redis) cluster() bool {
	_, ok := r.client.(*redis.ClusterClient)
	return ok
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
