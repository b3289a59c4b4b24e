package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/redis/go-redis/v9"
)

// DeliveryRecord is the history of one delivery, as the tests read it (Delivery).
type DeliveryRecord struct {
	Key, EventType, Subscription, State, Code string
	Kind                                      events.Kind // of the latest attempt's outcome
	Attempts                                  int         // copies processed (claimed fresh)
	Copies                                    int         // copies answered from the stored outcome
	FirstSeen, LastSeen                       time.Time
	Duration                                  time.Duration
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

// OutcomeCounts is how many deliveries had their latest attempt in the
// last hour (the current minute and the 59 before it) and the last day
// (the current hour and the 23 before it), by outcome code; one round trip. The tests read the counters with it
// (the console reads them with its overview, Overview).
func (r *Redis) OutcomeCounts(ctx context.Context, now time.Time) (hour, day map[string]int, err error) {
	var counts counters
	err = pipelined(ctx, r.client, func(p redis.Pipeliner) error {
		counts = r.queueCounters(ctx, p, now)
		return nil
	})
	if err != nil {
		return nil, nil, unavailable("outcome counters", err)
	}
	hour, day = counts.sums()
	return hour, day, nil
}
