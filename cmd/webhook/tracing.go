package main

import (
	"context"
	"fmt"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/logctx"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/settler"
)

// Tracing is configured by OpenTelemetry's standard variables, not by
// rows of the settings table: the service reads the few that decide
// whether spans are exported and where (tracingVariables), and the SDK
// reads the rest from the process environment (the sampler, the
// resource, the exporter's headers, timeout, compression and TLS, the
// batching). docs/configuration.md lists them below the table.
var tracingVariables = []string{
	"OTEL_SDK_DISABLED",
	"OTEL_TRACES_EXPORTER",
	"OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
}

// sdkVariables are the OTEL_* variables the SDK reads by itself that
// docs/configuration.md names (TestConfigurationDocNamesSettings knows
// them so).
var sdkVariables = []string{
	"OTEL_SERVICE_NAME",
	"OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_SAMPLER",
	"OTEL_TRACES_SAMPLER_ARG",
	"OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TIMEOUT",
	"OTEL_EXPORTER_OTLP_COMPRESSION",
	"OTEL_EXPORTER_OTLP_CERTIFICATE",
	"OTEL_BSP_SCHEDULE_DELAY",
	"OTEL_BSP_MAX_QUEUE_SIZE",
}

// tracingConfig is where spans go; the zero value is tracing off.
type tracingConfig struct {
	Endpoint string // the OTLP traces endpoint, a URL; empty: off
	Protocol string // "http/protobuf" or "grpc"
	from     string // the variable Endpoint came from, for messages
}

// On reports whether spans are made and exported.
func (t tracingConfig) On() bool { return t.Endpoint != "" }

const (
	protocolHTTP = "http/protobuf"
	protocolGRPC = "grpc"
)

// readTracing reads the variables that turn tracing on: an OTLP endpoint
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, or
// OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces added for HTTP), unless
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. Without an endpoint
// tracing is off, although the SDK's own default would be localhost:
// nothing is dialled that was not asked for. Problems are one line each,
// naming the variable and the fix.
func readTracing(getenv func(string) string) (tracingConfig, []string) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	var problems []string
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return tracingConfig{}, nil
	}
	switch exp := env("OTEL_TRACES_EXPORTER"); strings.ToLower(exp) {
	case "", "otlp":
	case "none":
		return tracingConfig{}, nil
	default:
		problems = append(problems, fmt.Sprintf("OTEL_TRACES_EXPORTER: %q is not supported; use otlp (with OTEL_EXPORTER_OTLP_ENDPOINT), or none for no traces", exp))
	}
	t := tracingConfig{Protocol: protocolHTTP}
	protoVar := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	p := env(protoVar)
	if p == "" {
		protoVar, p = "OTEL_EXPORTER_OTLP_PROTOCOL", env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch p {
	case "", protocolHTTP:
	case protocolGRPC:
		t.Protocol = protocolGRPC
	default:
		problems = append(problems, fmt.Sprintf("%s: %q is not supported; use http/protobuf (port 4318) or grpc (port 4317)", protoVar, p))
	}
	t.from, t.Endpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if t.Endpoint == "" {
		t.from, t.Endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT", env("OTEL_EXPORTER_OTLP_ENDPOINT")
		if t.Endpoint != "" && t.Protocol == protocolHTTP {
			t.Endpoint = strings.TrimSuffix(t.Endpoint, "/") + "/v1/traces"
		}
	}
	if t.Endpoint == "" {
		return tracingConfig{}, problems
	}
	if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		problems = append(problems, fmt.Sprintf("%s: must be an http:// or https:// URL of the OTLP collector without credentials, like http://otel-collector:4318 (headers go in OTEL_EXPORTER_OTLP_HEADERS)", t.from))
	}
	return t, problems
}

// exporterKey carries a test's span exporter, used instead of OTLP when
// tracing is on.
type exporterKey struct{}

// withSpanExporter makes the service started with ctx export its spans
// to exp (tracetest's in-memory exporter) when tracing is on.
func withSpanExporter(ctx context.Context, exp sdktrace.SpanExporter) context.Context {
	return context.WithValue(ctx, exporterKey{}, exp)
}

// tracingFlushTimeout bounds the last export at the drain.
const tracingFlushTimeout = 5 * time.Second

// startTracing returns the tracer provider of t, batching its spans to
// the OTLP collector, and stop, which exports what is left and shuts it
// down (within tracingFlushTimeout). Off: a nil provider (the handlers
// then install nothing, and no span is made anywhere) and a stop that
// does nothing. Nothing is dialled here: the exporter connects on its
// first export, and a collector that is down costs a warning per failed
// export, never a delivery.
func startTracing(ctx context.Context, t tracingConfig, log *zap.Logger) (trace.TracerProvider, func(), error) {
	if !t.On() {
		return nil, func() {}, nil
	}
	exp, ok := ctx.Value(exporterKey{}).(sdktrace.SpanExporter)
	if !ok {
		var err error
		if t.Protocol == protocolGRPC {
			exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(t.Endpoint))
		} else {
			exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(t.Endpoint))
		}
		if err != nil {
			return nil, nil, &configError{msg: fmt.Sprintf("%s: %v", t.from, err)}
		}
	}
	// The service's name and version, unless OTEL_SERVICE_NAME or
	// OTEL_RESOURCE_ATTRIBUTES say otherwise (WithFromEnv comes last).
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("webhook"), semconv.ServiceVersion(serviceVersion())),
		resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		log.Warn("tracing: OTEL_RESOURCE_ATTRIBUTES is partly unreadable; the rest is used", zap.Error(err))
	}
	tlog := log.Named("tracing")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		tlog.Warn("exporting spans failed; deliveries go on untraced meanwhile", zap.Error(err))
	}))
	// The sampler is the SDK's: OTEL_TRACES_SAMPLER, parentbased_always_on
	// by default (a delivery sampled by its sender's traceparent).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("tracing on", zap.String("protocol", t.Protocol), zap.String("collector", hostOf(t.Endpoint)))
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			tlog.Warn("the last spans were not all exported at shutdown", zap.Error(err))
		}
	}
	return tp, stop, nil
}

// serviceVersion is the binary's version for the trace resource:
// "v1.2.0", or "(devel)".
func serviceVersion() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "" {
		v = info.Main.Version
	}
	return orDevel(v)
}

// tracerName is the instrumentation scope of the spans the wiring starts.
const tracerName = "github.com/banking-marketplace/webhook/cmd/webhook"

// tracedSettler makes each background settle pass of a subscription the
// root of a trace of its own ("settle"), so that its steps, Redis calls
// and outside calls are found together, and its log lines carry its
// trace_id.
type tracedSettler struct {
	settler.Settler
	tracer trace.Tracer
}

func (s tracedSettler) Settle(ctx context.Context, subscription string) (provisioning.Report, error) {
	ctx, span := s.tracer.Start(ctx, "settle", trace.WithNewRoot(),
		trace.WithAttributes(attribute.String("webhook.subscription", logctx.Cut(subscription))))
	defer span.End()
	rep, err := s.Settler.Settle(ctx, subscription)
	if err != nil {
		span.SetStatus(codes.Error, "not worked on")
	} else {
		span.SetAttributes(attribute.String("webhook.intent", string(rep.Intent)), attribute.Bool("webhook.settled", rep.Settled))
	}
	return rep, err
}

// tracedAnswer makes each AppDirect result answered later (the event
// processed if it must be, the result posted) the root of a trace of its
// own, "appdirect result". id is the job's (inbox.JobID: its token and
// marketplace).
func tracedAnswer(tracer trace.Tracer, answer func(ctx context.Context, id string) error) func(context.Context, string) error {
	return func(ctx context.Context, id string) error {
		ctx, span := tracer.Start(ctx, "appdirect result", trace.WithNewRoot(),
			trace.WithAttributes(attribute.String("webhook.event_token", logctx.Cut(inbox.JobToken(id)))))
		defer span.End()
		err := answer(ctx, id)
		if err != nil {
			span.SetStatus(codes.Error, "not answered yet")
		}
		return err
	}
}
