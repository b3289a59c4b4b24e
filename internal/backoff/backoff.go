// Package backoff is the one way this service waits before trying again:
// the outside API clients between attempts (through internal/httpcall, the
// request core they all stand on), the inbox while another replica holds a
// copy's claim, the store while a lock is held, the settler between
// passes; and provisioning spreads the settle queue's due times with Half.
// Each caller keeps its own rule of what to retry and for how long; the
// arithmetic and the waiting live here. Waits that are not a retry keep
// their own timers: the inbox's wait for a copy this replica is already
// processing (it ends when that copy does), tickers, the shutdown delay.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Full is "full jitter" over base·2^(attempt-1), capped at max: a random
// wait in [0, min(base·2^(attempt-1), max)], so that callers retrying at
// once do not retry in step. attempt counts from 1.
func Full(attempt int, base, max time.Duration) time.Duration {
	d := max
	if shift := attempt - 1; shift >= 0 && shift < 32 {
		d = min(base<<shift, max)
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// Half spreads d over [d/2, d]: a wait that is never much shorter than d,
// for pollers that must not all poll in step.
func Half(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d, or until ctx ends (its error then).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
