package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// Seen records an OAuth 1.0a nonce of a consumer key for ttl, and reports
// whether it was recorded before (a replayed notification), in one atomic
// step. The nonce comes from the request: it is hashed, so its length and
// bytes cannot shape the key.
func (r *Redis) Seen(ctx context.Context, key, nonce string, ttl time.Duration) (bool, error) {
	return r.seen(ctx, key, nonce, ttl, newToken())
}

// seen is Seen with the token this call records the nonce under: the
// lock's acquire script (set when absent, or already this token's), so
// that go-redis sending it again after a lost reply finds its own record,
// not a replay (a plain SET NX would refuse a genuine notification).
func (r *Redis) seen(ctx context.Context, key, nonce string, ttl time.Duration, token string) (bool, error) {
	n, err := lockScript.Run(ctx, r.client, []string{r.keys.nonce(key, nonce)}, token, millis(ttl)).Int()
	if err != nil {
		return false, unavailable("appdirect nonce", err)
	}
	return n != 1, nil
}

// enqueueScript records a job and queues it, unless its id has one
// already, or (KEYS[3], for a job with an id) an earlier version queued
// one under its token alone for the same marketplace (ARGV[4]). KEYS:
// record, queue[, the token's record]. ARGV: job JSON, due ms, id[,
// marketplace]. Returns 1 when created.
var enqueueScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if KEYS[3] then
  local old = redis.call('GET', KEYS[3])
  if old then
    local ok, j = pcall(cjson.decode, old)
    if ok and type(j) == 'table' and (j.id == nil or j.id == '') and j.marketplace == ARGV[4] then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
`)

// EnqueueResult records j (state pending) and queues it, due at j.Due, in
// one step, unless its Key has a job already (a redelivered
// notification), or, for a job with an ID, an earlier version queued one
// under its token alone from the same marketplace (a notification sent
// again after the upgrade finds that job): created is false then, and the
// job is as it was.
func (r *Redis) EnqueueResult(ctx context.Context, j inbox.ResultJob) (created bool, err error) {
	b, err := json.Marshal(j)
	if err != nil {
		return false, fmt.Errorf("encoding result job: %w", err)
	}
	record, queue := r.keys.result(j.Key())
	keys, args := []string{record, queue}, []any{b, j.Due.UnixMilli(), j.Key()}
	if j.ID != "" {
		old, _ := r.keys.result(j.Token)
		keys, args = append(keys, old), append(args, j.Marketplace)
	}
	n, err := enqueueScript.Run(ctx, r.client, keys, args...).Int()
	if err != nil {
		return false, unavailable("enqueue result", err)
	}
	return n == 1, nil
}

// Result loads the job of id (its Key); ErrNotFound when there is none.
func (r *Redis) Result(ctx context.Context, id string) (inbox.ResultJob, error) {
	record, _ := r.keys.result(id)
	b, err := r.client.Get(ctx, record).Bytes()
	if errors.Is(err, redis.Nil) {
		return inbox.ResultJob{}, fmt.Errorf("result job %q: %w", id, events.ErrNotFound)
	}
	if err != nil {
		return inbox.ResultJob{}, unavailable("result job", err)
	}
	var j inbox.ResultJob
	if err := json.Unmarshal(b, &j); err != nil {
		return inbox.ResultJob{}, fmt.Errorf("decoding result job %q: %w", id, err)
	}
	return j, nil
}

// saveResultScript writes a job and its place on the queue: due, or off
// the queue with the record kept ttl ms (posted, or refused). A job that
// is over is never written again: a pass whose lock ran out saves what it
// read before the post, and must not queue the result to be posted twice.
// A record it cannot read is not written over either (it may say
// "posted"). KEYS: record, queue. ARGV: job JSON, due ms ("" when over),
// id, ttl ms. Returns 0 when the job was over already, -1 when its record
// is not readable.
var saveResultScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, job = pcall(cjson.decode, cur)
  if not ok or type(job) ~= 'table' then return -1 end
  if job.state == 'posted' or job.state == 'refused' then return 0 end
end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
  redis.call('ZREM', KEYS[2], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
end
return 1
`)

// SaveResult writes j: due again at j.Due, or, over (posted or refused),
// off the queue and kept for ttl (EVENT_TTL), so that a redelivered
// notification is not queued again. A job recorded over stays so: j is
// then not written.
func (r *Redis) SaveResult(ctx context.Context, j inbox.ResultJob, ttl time.Duration) error {
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encoding result job: %w", err)
	}
	record, queue := r.keys.result(j.Key())
	due := ""
	if !j.Done() {
		due = fmt.Sprint(j.Due.UnixMilli())
	}
	n, err := saveResultScript.Run(ctx, r.client, []string{record, queue}, b, due, j.Key(), millis(ttl)).Int()
	if err != nil {
		return unavailable("save result job", err)
	}
	if n < 0 {
		return fmt.Errorf("result job %q: its record in Redis is not readable JSON; it is left as it is, not written over (it may say the result was posted)", j.Key())
	}
	return nil
}

// TakeDueResults returns up to limit ids of jobs that are due, pushing
// each lease ahead so that no other replica takes it meanwhile.
func (r *Redis) TakeDueResults(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]string, error) {
	_, queue := r.keys.result("")
	ids, err := takeDueScript.Run(ctx, r.client, []string{queue}, now.UnixMilli(), limit, now.Add(lease).UnixMilli()).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("results queue", err)
	}
	return ids, nil
}

// PendingResults is how many results wait to be posted.
func (r *Redis) PendingResults(ctx context.Context) (int64, error) {
	_, queue := r.keys.result("")
	n, err := r.client.ZCard(ctx, queue).Result()
	if err != nil {
		return 0, unavailable("results queue", err)
	}
	return n, nil
}

// ResultsPending is up to limit results not posted yet, the soonest due
// first, each with its state, attempts and last error.
func (r *Redis) ResultsPending(ctx context.Context, limit int) ([]inbox.ResultJob, error) {
	_, queue := r.keys.result("")
	ids, err := r.client.ZRange(ctx, queue, 0, int64(limit)-1).Result()
	if err != nil {
		return nil, unavailable("results queue", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	records := make([]string, len(ids))
	for i, id := range ids {
		records[i], _ = r.keys.result(id)
	}
	vals, err := r.client.MGet(ctx, records...).Result() // one slot: {settle}
	if err != nil {
		return nil, unavailable("result jobs", err)
	}
	out := make([]inbox.ResultJob, 0, len(vals))
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // posted and expired meanwhile
		}
		var j inbox.ResultJob
		if err := json.Unmarshal([]byte(s), &j); err != nil {
			return nil, fmt.Errorf("decoding result job %q: %w", ids[i], err)
		}
		out = append(out, j)
	}
	return out, nil
}
