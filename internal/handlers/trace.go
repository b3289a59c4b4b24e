package handlers

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/banking-marketplace/webhook/internal/logctx"
)

// tracerName is the instrumentation scope of the deliveries' spans.
const tracerName = "github.com/banking-marketplace/webhook/internal/handlers"

// startSpan makes a delivery (the marketplace's POST and AppDirect's
// notification) the root of one trace, or a child of the sender's span
// when the request carries a W3C traceparent: a server span named by the
// route's template ("POST /marketplace/{extension}"), never the path,
// whose ids are the extension and whose query holds AppDirect's eventUrl.
// Everything the delivery does (Redis, the plan's steps, the outside
// calls) is under it, and its log lines carry its trace_id (logctx).
// Other routes (probes, metrics, the read API) are not traced: nil.
func startSpan(tracer trace.Tracer, c echo.Context) trace.Span {
	route := c.Path()
	if !isDeliveryRoute(route) {
		return nil
	}
	req := c.Request()
	template, method, name := routeTemplate(route), req.Method, req.Method
	if !knownMethod(method) { // a 405 of any word the sender made up: bounded, as OpenTelemetry says
		method, name = "_OTHER", "HTTP"
	}
	ctx := propagation.TraceContext{}.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
	ctx, span := tracer.Start(ctx, name+" "+template, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.HTTPRoute(template)))
	c.SetRequest(req.WithContext(ctx))
	return span
}

// endSpan ends a delivery's span once the reply is sent and its line
// written: the status sent (none when the handler aborted before sending
// one: status 0, an error) and the ids of the delivery's log line
// (webhook-id or event token, key, type, subscription, product, outcome);
// ids and codes only, never a body, a header or a query.
func endSpan(span trace.Span, status int, d *deliveryLog) {
	if status != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	if d != nil {
		span.SetAttributes(d.spanAttributes()...)
		if status >= http.StatusInternalServerError || status == 0 {
			span.SetStatus(codes.Error, d.outcome)
		}
	}
	span.End()
}

// knownMethod reports one of HTTP's methods.
func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// routeTemplate is an echo route in the OpenAPI spelling of docs and trace
// viewers: "/marketplace/:extension" is "/marketplace/{extension}".
func routeTemplate(route string) string {
	parts := strings.Split(route, "/")
	for i, p := range parts {
		if name, ok := strings.CutPrefix(p, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// spanAttributes are the ids and codes of the delivery's log line, each
// value from the request cut as the log cuts it; an empty one is left out.
func (d *deliveryLog) spanAttributes() []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 10)
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, attribute.String(k, logctx.Cut(v)))
		}
	}
	add("webhook.id", d.webhookID)
	add("webhook.event_token", d.eventToken)
	add("webhook.key", d.key)
	add("webhook.event_type", d.eventType)
	add("webhook.subscription", d.subscription)
	add("webhook.extension", d.extension)
	add("webhook.product", d.product)
	add("webhook.outcome", d.outcome)
	return append(attrs, attribute.Bool("webhook.replayed", d.replayed), attribute.Int("webhook.calls", d.calls))
}
