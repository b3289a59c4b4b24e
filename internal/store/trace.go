package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// instrument gives every Redis command (and pipeline, and dial) run under
// a traced context a client span, through go-redis's own instrumentation:
// named by the command ("evalsha", "redis.pipeline get set"), with the
// server's address and no statement: a command's arguments are keys and
// values (subscription ids, stored replies), and a span keeps none of
// them. A command with no span in its context (the settler's polls, the
// probes, the monitor's checks) makes no trace of its own: a poll a
// second must not be a trace a second.
func instrument(c redis.UniversalClient) error {
	if err := redisotel.InstrumentTracing(c,
		redisotel.WithTracerProvider(childSpans{}),
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false), // a stack walk per command, for a file and line of the store
	); err != nil {
		return fmt.Errorf("tracing redis: %w", err)
	}
	return nil
}

// childSpans is a TracerProvider whose spans exist only as children: made
// by the provider of the span the context carries, and none (the context
// as it is) when it carries none.
type childSpans struct{ embedded.TracerProvider }

func (childSpans) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childTracer{name: name, opts: opts}
}

type childTracer struct {
	embedded.Tracer
	name string
	opts []trace.TracerOption
}

func (t childTracer) Start(ctx context.Context, spanName string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(t.name, t.opts...).Start(ctx, spanName, opts...)
}
