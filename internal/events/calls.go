package events

import (
	"context"
	"sync/atomic"
)

// Calls counts the outside API calls (every attempt, retries included) made
// while one delivery is processed, for its log line. The inbox puts one in
// the processing context; the clients' observers add to it.
type Calls struct{ n atomic.Int32 }

type callsKey struct{}

// WithCalls returns ctx carrying a new counter.
func WithCalls(ctx context.Context) (context.Context, *Calls) {
	c := &Calls{}
	return context.WithValue(ctx, callsKey{}, c), c
}

// CountCall adds one call to ctx's counter, if it has one.
func CountCall(ctx context.Context) {
	if c, ok := ctx.Value(callsKey{}).(*Calls); ok {
		c.n.Add(1)
	}
}

// N is the number of calls counted.
func (c *Calls) N() int { return int(c.n.Load()) }
