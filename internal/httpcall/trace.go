package httpcall

import (
	"context"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the attempts' spans.
const tracerName = "github.com/banking-marketplace/webhook/internal/httpcall"

// Span attributes of an attempt beside HTTP's own (method, status, server,
// resend count): the outside system, the bounded name of the call, and the
// system's id of the request. Never a URL, a query, a header or a body.
const (
	attrSystem    = attribute.Key("outside.system")
	attrAction    = attribute.Key("outside.action")
	attrRequestID = attribute.Key("outside.request_id")
)

// startSpan begins the client span of one attempt, "q2 Enrollment", as a
// child of the span ctx carries, from that span's provider. Without one
// (tracing off, or work that belongs to no traced delivery or pass: a
// token fetch serving many calls, a start-up check) there is no span and
// nothing is allocated: ctx is returned as it is, with its no-op span.
func (c *Client) startSpan(ctx context.Context, r *Request, attempt int) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent
	}
	attrs := []attribute.KeyValue{
		attrSystem.String(c.system), attrAction.String(r.Action),
		semconv.HTTPRequestMethodKey.String(r.Method), semconv.ServerAddress(c.base.Hostname()),
	}
	if port := serverPort(c.base.Scheme, c.base.Port()); port > 0 {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	if attempt > 1 {
		attrs = append(attrs, semconv.HTTPRequestResendCount(attempt-1))
	}
	return parent.TracerProvider().Tracer(tracerName).Start(ctx, c.system+" "+r.Action,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endSpan records how the attempt went and ends its span: the status and
// the system's request id when it answered; for a failure, an error status
// whose text hides the system's own words as the logs do (ErrorField).
func endSpan(span trace.Span, a Attempt) {
	if span.IsRecording() {
		if a.Status != 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(a.Status))
		}
		if a.RequestID != "" {
			span.SetAttributes(attrRequestID.String(a.RequestID))
		}
		if a.Err != nil {
			typ := "no reply"
			if a.Status != 0 {
				typ = strconv.Itoa(a.Status)
			}
			span.SetAttributes(semconv.ErrorTypeKey.String(typ))
			span.SetStatus(codes.Error, errorText(a.Err))
		}
	}
	span.End()
}

// inject puts the W3C traceparent (and tracestate) of the span ctx
// carries on req, so that the outside system's own traces join ours;
// nothing when ctx carries none.
func inject(ctx context.Context, h http.Header) {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}

// serverPort is the port a request to a base URL goes to: its own, or the
// scheme's.
func serverPort(scheme, port string) int {
	if p, err := strconv.Atoi(port); err == nil {
		return p
	}
	switch scheme {
	case "https":
		return 443
	case "http":
		return 80
	}
	return 0
}
