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
)

// ClaimState is what Claim found for a delivery.
type ClaimState int

// Claim outcomes.
const (
	// ClaimFresh: the caller holds the lease and must process the delivery,
	// then Complete or Release it with the token.
	ClaimFresh ClaimState = iota + 1
	// ClaimDone: a final outcome is stored; answer it again, byte for byte.
	ClaimDone
	// ClaimBusy: another copy is being processed; wait or answer 409 PENDING.
	ClaimBusy
	// ClaimConflict: the key was seen with another body; answer 422.
	ClaimConflict
)

func (s ClaimState) String() string {
	switch s {
	case ClaimFresh:
		return "fresh"
	case ClaimDone:
		return "done"
	case ClaimBusy:
		return "busy"
	case ClaimConflict:
		return "conflict"
	}
	return "ClaimState(" + strconv.Itoa(int(s)) + ")"
}

// ClaimRequest asks for one delivery.
type ClaimRequest struct {
	// Key is the delivery key: "id:<webhook-id>" or "sha256:<hex of the
	// canonical body>". Any bytes; it is hashed into the Redis key.
	Key string
	// Fingerprint is the hex SHA-256 of the canonical body.
	Fingerprint string
	// Lease is how long the claim holds: a little longer than
	// PROCESS_TIMEOUT, so that a crashed holder frees it by itself.
	Lease time.Duration
	// TTL is EVENT_TTL, how long the record is kept. Never shorter than
	// Lease.
	TTL          time.Duration
	EventType    string // for the history record
	Subscription string // for the history record
}

// Claim is what Claim found.
type Claim struct {
	State   ClaimState
	Token   string        // when Fresh: the fencing token for Complete or Release
	Status  int           // when Done: the stored HTTP status
	Body    []byte        // when Done: the stored reply, exactly as stored
	RetryIn time.Duration // when Busy: time left on the holder's lease
}

// Result is a final outcome to store.
type Result struct {
	Status   int
	Body     []byte
	Code     string // outcome code for the history ("SUCCESS", "ACCOUNT_NOT_FOUND", ...)
	Duration time.Duration
}

// DeliveryRecord is the history of one delivery, for operators and tests.
type DeliveryRecord struct {
	Key, EventType, Subscription, State, Code string
	Attempts                                  int
	FirstSeen, LastSeen                       time.Time
	Duration                                  time.Duration
	Status                                    int
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
local cur = redis.call('HMGET', rec, 'state', 'fp', 'status', 'body')
local state = cur[1]
if state and cur[2] ~= fp then
  return {'conflict'}
end
if state == 'done' then
  redis.call('HINCRBY', rec, 'attempts', 1)
  redis.call('HSET', rec, 'last', now)
  return {'done', cur[3] or '0', cur[4] or ''}
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
// KEYS: record, lease. ARGV: token, status, body, code, duration ms, ttl ms.
// Returns 1 when written (or already written by this token: a retried
// call), 0 when the lease is lost.
var completeScript = redis.NewScript(`
local rec, lease, token = KEYS[1], KEYS[2], ARGV[1]
if redis.call('GET', lease) ~= token then
  local cur = redis.call('HMGET', rec, 'state', 'token')
  if cur[1] == 'done' and cur[2] == token then return 1 end
  return 0
end
redis.call('HSET', rec, 'state', 'done', 'status', ARGV[2], 'body', ARGV[3], 'code', ARGV[4], 'duration_ms', ARGV[5])
redis.call('PEXPIRE', rec, ARGV[6])
redis.call('DEL', lease)
return 1
`)

// releaseScript gives a claim up after a transient outcome if the lease
// still holds the token. KEYS: record, lease. ARGV: token, code, duration
// ms. The record keeps its TTL and its fingerprint, so a later copy with the
// same body claims Fresh and one with another body is still a conflict.
var releaseScript = redis.NewScript(`
local rec, lease, token = KEYS[1], KEYS[2], ARGV[1]
if redis.call('GET', lease) ~= token then
  local cur = redis.call('HMGET', rec, 'state', 'token')
  if cur[1] == 'released' and cur[2] == token then return 1 end
  return 0
end
redis.call('HSET', rec, 'state', 'released', 'code', ARGV[2], 'duration_ms', ARGV[3])
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
		if len(res) < 3 {
			return bad()
		}
		s, _ := res[1].(string)
		body, _ := res[2].(string)
		status, err := strconv.Atoi(s)
		if err != nil {
			return bad()
		}
		return Claim{State: ClaimDone, Status: status, Body: []byte(body)}, nil
	}
	return bad()
}

// Complete stores a final outcome, fenced: only if the lease still holds
// token, else ErrLeaseLost and nothing is written (a newer holder owns the
// delivery, and its outcome must not be overwritten). One round trip. The
// record is kept for ttl from now; the lease is deleted.
func (r *Redis) Complete(ctx context.Context, key, token string, res Result, ttl time.Duration) error {
	if key == "" || token == "" || ttl <= 0 {
		return fmt.Errorf("store: complete: need a key, a token and a positive ttl")
	}
	rec, lease := r.keys.delivery(key)
	n, err := completeScript.Run(ctx, r.client, []string{rec, lease},
		token, strconv.Itoa(res.Status), res.Body, res.Code, res.Duration.Milliseconds(), millis(ttl)).Int()
	if err != nil {
		return unavailable("complete", err)
	}
	if n != 1 {
		return fmt.Errorf("completing delivery: %w", ErrLeaseLost)
	}
	return nil
}

// Release gives up a claim after a transient outcome (Q2 unreachable, 5xx,
// timeout), fenced like Complete. The record shows state released with the
// code and duration, so the history keeps the attempt; the next Claim of
// the delivery is Fresh.
func (r *Redis) Release(ctx context.Context, key, token string, code string, d time.Duration) error {
	if key == "" || token == "" {
		return fmt.Errorf("store: release: need a key and a token")
	}
	rec, lease := r.keys.delivery(key)
	n, err := releaseScript.Run(ctx, r.client, []string{rec, lease}, token, code, d.Milliseconds()).Int()
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
		Status:       int(num("status")),
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
