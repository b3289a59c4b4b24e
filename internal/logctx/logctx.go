// Package logctx carries a delivery's log fields (request id, delivery key,
// subscription) in its context, so that every log line written while the
// delivery is processed — the use cases' and the outside API calls' — can
// be found by any of them. A support ticket with the bank quotes one id;
// this finds the rest.
package logctx

import (
	"context"

	"go.uber.org/zap"
)

type key struct{}

// With returns ctx carrying fields, after any it carried already.
func With(ctx context.Context, fields ...zap.Field) context.Context {
	if len(fields) == 0 {
		return ctx
	}
	prev, _ := ctx.Value(key{}).([]zap.Field)
	all := make([]zap.Field, 0, len(prev)+len(fields))
	all = append(append(all, prev...), fields...)
	return context.WithValue(ctx, key{}, all)
}

// Logger returns base with the fields ctx carries.
func Logger(ctx context.Context, base *zap.Logger) *zap.Logger {
	if fields, ok := ctx.Value(key{}).([]zap.Field); ok {
		return base.With(fields...)
	}
	return base
}
