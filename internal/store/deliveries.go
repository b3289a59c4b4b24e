package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/events"
)

// The claim types are the domain's (internal/events), so that the inbox
// names them without importing this package.
type (
	ClaimState   = events.ClaimState
	ClaimRequest = events.ClaimRequest
	Claim        = events.Claim
	Result       = events.Result
)

// Claim outcomes.
const (
	ClaimFresh    = events.ClaimFresh
	ClaimDone     = events.ClaimDone
	ClaimBusy     = events.ClaimBusy
	ClaimConflict = events.ClaimConflict
)

// DeliveryRecord is the history of one delivery, for operators and tests.
type DeliveryRecord struct {
	Key, EventType, Subscription, State, Code string
	Kind                                      events.Kind // of the latest attempt's outcome
	Attempts                                  int
	FirstSeen, LastSeen                       time.Time
	Duration                                  time.Duration
}

// claimScript decides a delivery's fate in one round trip, so that two
// copies can never both see "free". KEYS: record, lease. ARGV: fp, token,
// lease ms, ttl ms, now ms, type, sub, key.
//
// A Busy answer leaves the record alone: the copy was not processed and
// not answered from the record. A lease that already holds this claim's
// token means go-redis retried the script after a lost reply: the first run
// won, so the answer is Fresh again, without counting a second attempt.
var claimScript = redis.NewScript(`
local rec, lease = KEYS[1], KEYS[2]
local fp, token, now = ARGV[1], ARGV[2], ARGV[5]
local cur = redis.call('HMGET', rec, 'state', 'fp', 'body')
local state = cur[1]
if state and cur[2] ~= fp then
  return {'conflict'}
end
if state == 'done' then
  redis.call('HINCRBY', rec, 'attempts', 1)
  redis.call('HSET', rec, 'last', now)
  return {'done', cur[3] or ''}
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
return {'fresh'}
`)

// completeScript stores a final outcome if the lease still holds the token.
// KEYS: record, lease. ARGV: token, kind, body, code, duration ms, ttl ms.
// Returns 1 when written (or already written by this token: a retried
// call), 0 when the lease is lost.
var completeScript = redis.NewScript(`
local rec, lease, token = KEYS[1], KEYS[2], ARGV[1]
if redis.call('GET', lease) ~= token then
  local cur = redis.call('HMGET', rec, 'state', 'token')
  if cur[1] == 'done' and cur[2] == token then return 1 end
  return 0
end
redis.call('HSET', rec, 'state', 'done', 'kind', ARGV[2], 'body', ARGV[3], 'code', ARGV[4], 'duration_ms', ARGV[5])
redis.call('PEXPIRE', rec, ARGV[6])
redis.call('DEL', lease)
return 1
`)

// releaseScript gives a claim up after a transient outcome if the lease
// still holds the token. KEYS: record, lease. ARGV: token, code, duration
// ms, kind. The record keeps its TTL and its fingerprint, so a later copy with the
// same body claims Fresh and one with another body is still a conflict.
var releaseScript = redis.NewScript(`
local rec, lease, token = KEYS[1], KEYS[2], ARGV[1]
if redis.call('GET', lease) ~= token then
  local cur = redis.call('HMGET', rec, 'state', 'token')
  if cur[1] == 'released' and cur[2] == token then return 1 end
  return 0
end
redis.call('HSET', rec, 'state', 'released', 'code', ARGV[2], 'duration_ms', ARGV[3], 'kind', ARGV[4])
redis.call('DEL', lease)
return 1
`)

// Claim decides, in one round trip, what to do with a delivery:
//   - a done record with the same fingerprint: Done, with the stored status
//     and body (attempts and last-seen are updated);
//   - any record with another fingerprint: Conflict;
//   - the lease free (new delivery, released one, or a crashed holder's
//     lease expired): Fresh with a new fencing token; the record is marked
//     processing and kept for TTL;
//   - the lease held by another: Busy, with the time left on it.
func (r *Redis) Claim(ctx context.Context, c ClaimRequest) (Claim, error) {
	switch {
	case c.Key == "":
		return Claim{}, errors.New("store: claim: empty delivery key")
	case c.Fingerprint == "":
		return Claim{}, errors.New("store: claim: empty fingerprint")
	case c.Lease <= 0 || c.TTL <= 0:
		return Claim{}, fmt.Errorf("store: claim: lease %v and ttl %v must be positive", c.Lease, c.TTL)
	}
	token := newToken()
	rec, lease := r.keys.delivery(c.Key)
	res, err := claimScript.Run(ctx, r.client, []string{rec, lease},
		c.Fingerprint, token, millis(c.Lease), millis(max(c.TTL, c.Lease)),
		time.Now().UnixMilli(), c.EventType, c.Subscription, c.Key).Slice()
	if err != nil {
		return Claim{}, unavailable("claim", err)
	}
	bad := func() (Claim, error) {
		return Claim{}, fmt.Errorf("redis claim: %w: unexpected script reply %v", ErrUnavailable, res)
	}
	if len(res) == 0 {
		return bad()
	}
	switch res[0] {
	case "fresh":
		return Claim{State: ClaimFresh, Token: token}, nil
	case "conflict":
		return Claim{State: ClaimConflict}, nil
	case "busy":
		if len(res) < 2 {
			return bad()
		}
		pttl, _ := res[1].(int64)
		return Claim{State: ClaimBusy, RetryIn: time.Duration(max(pttl, 0)) * time.Millisecond}, nil
	case "done":
		if len(res) < 2 {
			return bad()
		}
		body, _ := res[1].(string)
		return Claim{State: ClaimDone, Body: []byte(body)}, nil
	}
	return bad()
}

// Complete stores a final outcome (res.Kind is events.Final), fenced: only if the lease still holds
// token, else ErrLeaseLost and nothing is written (a newer holder owns the
// delivery, and its outcome must not be overwritten). One round trip. The
// record is kept for ttl from now; the lease is deleted.
func (r *Redis) Complete(ctx context.Context, key, token string, res Result, ttl time.Duration) error {
	if key == "" || token == "" || ttl <= 0 {
		return fmt.Errorf("store: complete: need a key, a token and a positive ttl")
	}
	rec, lease := r.keys.delivery(key)
	n, err := completeScript.Run(ctx, r.client, []string{rec, lease},
		token, res.Kind.String(), res.Body, res.Code, res.Duration.Milliseconds(), millis(ttl)).Int()
	if err != nil {
		return unavailable("complete", err)
	}
	if n != 1 {
		return fmt.Errorf("completing delivery: %w", ErrLeaseLost)
	}
	return nil
}

// Release gives up a claim after an outcome that is not final (an outside
// API unreachable, a deadline, DO_NOT_CANCEL), fenced like Complete. The
// record shows state released with the code, kind and duration, so the
// history keeps the attempt; the next Claim of the delivery is Fresh.
func (r *Redis) Release(ctx context.Context, key, token string, res Result) error {
	if key == "" || token == "" {
		return fmt.Errorf("store: release: need a key and a token")
	}
	rec, lease := r.keys.delivery(key)
	n, err := releaseScript.Run(ctx, r.client, []string{rec, lease}, token, res.Code, res.Duration.Milliseconds(), res.Kind.String()).Int()
	if err != nil {
		return unavailable("release", err)
	}
	if n != 1 {
		return fmt.Errorf("releasing delivery: %w", ErrLeaseLost)
	}
	return nil
}

// Delivery reads the history record of a delivery; ErrNotFound when there
// is none (never seen, or older than EVENT_TTL).
func (r *Redis) Delivery(ctx context.Context, key string) (DeliveryRecord, error) {
	rec, _ := r.keys.delivery(key)
	m, err := r.client.HGetAll(ctx, rec).Result()
	if err != nil {
		return DeliveryRecord{}, unavailable("delivery", err)
	}
	if len(m) == 0 {
		return DeliveryRecord{}, fmt.Errorf("delivery record: %w", ErrNotFound)
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
		FirstSeen:    at("first"),
		LastSeen:     at("last"),
		Duration:     time.Duration(num("duration_ms")) * time.Millisecond,
		Kind:         events.ParseKind(m["kind"]),
	}
	return d, nil
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
