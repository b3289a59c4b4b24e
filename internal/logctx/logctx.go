// Package logctx carries a delivery's log fields (request id, webhook-id,
// delivery key, subscription) in its context, so that every log line
// written while the delivery is processed — the use cases' and the outside
// API calls' — can be found by any of them. A support ticket with the bank
// quotes one id; this finds the rest. When the context carries a trace
// span (tracing on), the line also carries its trace_id and span_id, read
// when the logger is made, so that a line leads to its trace and to the
// very step or outside call that wrote it.
//
// A line never carries a key twice: a field the call writes itself (a
// "key" or "subscription" that the context already carries) replaces the
// context's, so that strict JSON readers (many log pipelines keep only
// the first or reject the line) see one value.
package logctx

import (
	"context"
	"strconv"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type key struct{}

// With returns ctx carrying fields, after any it carried already; a field
// whose key ctx carries already replaces it.
func With(ctx context.Context, fields ...zap.Field) context.Context {
	if len(fields) == 0 {
		return ctx
	}
	prev, _ := ctx.Value(key{}).([]zap.Field)
	return context.WithValue(ctx, key{}, merge(prev, fields))
}

// Logger returns base with the fields ctx carries, and trace_id and
// span_id when ctx carries a valid span context. Fields given to the
// returned logger's calls (or to its With) replace context fields of the
// same key; base's own With fields are not seen, so callers must not give
// base the keys the context carries.
func Logger(ctx context.Context, base *zap.Logger) *zap.Logger {
	fields, _ := ctx.Value(key{}).([]zap.Field)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		fields = merge(fields, TraceFields(sc))
	}
	if len(fields) == 0 {
		return base
	}
	return base.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return &fieldsCore{inner: c, fields: fields}
	}))
}

// TraceFields are the fields that lead from a log line to its trace:
// trace_id and span_id, in W3C's hex form (what a trace viewer searches).
func TraceFields(sc trace.SpanContext) []zap.Field {
	return []zap.Field{zap.String("trace_id", sc.TraceID().String()), zap.String("span_id", sc.SpanID().String())}
}

// fieldsCore holds the context's fields (and any added by With) unencoded
// until a line is written, so that the line's own fields can replace them.
type fieldsCore struct {
	inner  zapcore.Core
	fields []zapcore.Field
}

func (c *fieldsCore) Enabled(l zapcore.Level) bool { return c.inner.Enabled(l) }

func (c *fieldsCore) With(fields []zapcore.Field) zapcore.Core {
	return &fieldsCore{inner: c.inner, fields: merge(c.fields, fields)}
}

func (c *fieldsCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *fieldsCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	return c.inner.Write(e, merge(c.fields, fields))
}

func (c *fieldsCore) Sync() error { return c.inner.Sync() }

// merge is base then more, where a field of more replaces base's field of
// the same key (in place, so the order of a line stays stable). Fields
// after a namespace belong to it and are kept as they are.
func merge(base, more []zapcore.Field) []zapcore.Field {
	out := make([]zapcore.Field, 0, len(base)+len(more))
	out = append(out, base...)
	top := len(out) // fields of out at the top level of the line
	for i, f := range out {
		if f.Type == zapcore.NamespaceType {
			top = i
			break
		}
	}
	inNamespace := top < len(out)
next:
	for _, f := range more {
		if !inNamespace && f.Type != zapcore.NamespaceType {
			for i := range out[:top] {
				if out[i].Key == f.Key {
					out[i] = f
					continue next
				}
			}
		}
		if f.Type == zapcore.NamespaceType {
			inNamespace = true
		}
		out = append(out, f)
		if !inNamespace {
			top = len(out)
		}
	}
	return out
}

// MaxValue is the most bytes of a value taken from a request (an extension
// name, a webhook-id, a subscription id, a delivery key) that a log line
// carries: the longest valid one (a 256-character webhook-id as a key,
// "id:" and the id) is whole, and a hostile 8 KB one does not make an 8 KB
// line.
const MaxValue = 300

// Cut returns s whole when it is at most MaxValue bytes, else its first
// bytes (whole UTF-8 characters) and how long it was: "abc…(8192 bytes)".
func Cut(s string) string {
	if len(s) <= MaxValue {
		return s
	}
	n := MaxValue
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// String is zap.String with the value cut (see Cut): for values that come
// from a request.
func String(key, value string) zap.Field { return zap.String(key, Cut(value)) }
