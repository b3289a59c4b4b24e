package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/events"
)

// queue puts a subscription on the settle queue at dueMS and on the
// unsettled list since sinceMS, or takes it off where they are "".
func (r *Redis) queue(ctx context.Context, sub, dueMS, sinceMS string) error {
	due, since := r.keys.settle()
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if dueMS == "" {
			p.ZRem(ctx, due, sub)
		} else {
			p.ZAdd(ctx, due, redis.Z{Score: atof(dueMS), Member: sub})
		}
		if sinceMS == "" {
			p.ZRem(ctx, since, sub)
		} else {
			p.ZAdd(ctx, since, redis.Z{Score: atof(sinceMS), Member: sub})
		}
		return nil
	})
	if err != nil {
		return unavailable("settle queue", err)
	}
	return nil
}

func atof(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// takeDueScript takes up to ARGV[2] subscriptions due at ARGV[1] (Unix ms)
// and pushes each to ARGV[3] (ms), so that another replica does not take
// it meanwhile; the settle pass then writes its real next time.
// KEYS: settle due.
var takeDueScript = redis.NewScript(`
local subs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, s in ipairs(subs) do redis.call('ZADD', KEYS[1], 'XX', ARGV[3], s) end
return subs
`)

// TakeDue returns up to limit subscriptions whose settle time has come,
// oldest due first, and pushes each lease ahead: a replica that takes one
// and dies leaves it to be taken again then.
func (r *Redis) TakeDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]string, error) {
	due, _ := r.keys.settle()
	subs, err := takeDueScript.Run(ctx, r.client, []string{due},
		now.UnixMilli(), limit, now.Add(lease).UnixMilli()).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("settle queue", err)
	}
	return subs, nil
}

// Queued returns up to limit subscriptions on the settle queue, soonest
// due first, whether due or not (the settle command's "every unsettled
// subscription").
func (r *Redis) Queued(ctx context.Context, limit int) ([]string, error) {
	due, _ := r.keys.settle()
	subs, err := r.client.ZRange(ctx, due, 0, int64(limit)-1).Result()
	if err != nil {
		return nil, unavailable("settle queue", err)
	}
	return subs, nil
}

// Unqueue takes a subscription off the settle queue and the unsettled
// list: for an entry whose account is gone.
func (r *Redis) Unqueue(ctx context.Context, subscriptionID string) error {
	return r.queue(ctx, subscriptionID, "", "")
}

// Unsettled returns up to limit unsettled subscriptions' accounts, oldest
// first (the read API's ?state=unsettled), in two round trips.
func (r *Redis) Unsettled(ctx context.Context, limit int) ([]events.Account, error) {
	_, since := r.keys.settle()
	subs, err := r.client.ZRange(ctx, since, 0, int64(limit)-1).Result()
	if err != nil {
		return nil, unavailable("unsettled list", err)
	}
	return r.accounts(ctx, subs) // one more round trip, not one per account
}

// SettleStats is how many subscriptions are unsettled, and since when the
// oldest one is (zero when none), for the metrics.
func (r *Redis) SettleStats(ctx context.Context) (n int64, oldest time.Time, err error) {
	_, since := r.keys.settle()
	var card *redis.IntCmd
	var first *redis.ZSliceCmd
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		card = p.ZCard(ctx, since)
		first = p.ZRangeWithScores(ctx, since, 0, 0)
		return nil
	})
	if err != nil {
		return 0, time.Time{}, unavailable("unsettled list", err)
	}
	if zs := first.Val(); len(zs) > 0 {
		oldest = time.UnixMilli(int64(zs[0].Score))
	}
	return card.Val(), oldest, nil
}
