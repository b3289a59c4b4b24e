package logctx

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/logctx/logtest"
)

func TestFieldsFollowTheContext(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	base := zap.New(core)
	ctx := With(context.Background(), zap.String("request_id", "r1"))
	ctx = With(ctx, zap.String("key", "id:k"), zap.String("subscription", "s"))
	Logger(ctx, base).Info("q2 call")
	Logger(context.Background(), base).Info("no delivery")
	entries := logs.All()
	if len(entries) != 2 {
		t.Fatalf("%d entries", len(entries))
	}
	got := entries[0].ContextMap()
	if got["request_id"] != "r1" || got["key"] != "id:k" || got["subscription"] != "s" {
		t.Errorf("fields %v", got)
	}
	if len(entries[1].Context) != 0 {
		t.Errorf("a context without fields added %v", entries[1].Context)
	}
}

// jsonLogger writes JSON lines, as the service does, into a buffer.
func jsonLogger() (*zap.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zap.DebugLevel)), &buf
}

// Issue 21: the use cases log "key" and "subscription" that the context
// carries too, and the JSON line had each twice. The line's own field
// replaces the context's, wherever it comes from.
func TestNoKeyTwice(t *testing.T) {
	t.Parallel()
	ctx := With(context.Background(), zap.String("request_id", "r1"), zap.String("key", "id:ctx"), zap.String("subscription", "s-ctx"))
	ctx = With(ctx, zap.String("key", "id:again")) // With replaces, too
	tests := []struct {
		name string
		log  func(l *zap.Logger)
		want map[string]any
	}{
		{"the call's field", func(l *zap.Logger) { l.Warn("m", zap.String("key", "id:call")) },
			map[string]any{"request_id": "r1", "key": "id:call", "subscription": "s-ctx"}},
		{"the same value again", func(l *zap.Logger) { l.Warn("m", zap.String("subscription", "s-ctx"), zap.Int("n", 1)) },
			map[string]any{"request_id": "r1", "key": "id:again", "subscription": "s-ctx", "n": 1.0}},
		{"With on the logger", func(l *zap.Logger) {
			l.With(zap.String("subscription", "s-with")).Info("m", zap.String("target", "q2"))
		},
			map[string]any{"request_id": "r1", "key": "id:again", "subscription": "s-with", "target": "q2"}},
		{"twice in the call", func(l *zap.Logger) { l.Info("m", zap.String("target", "a"), zap.String("target", "b")) },
			map[string]any{"request_id": "r1", "key": "id:again", "subscription": "s-ctx", "target": "b"}},
		{"a namespace keeps its own keys", func(l *zap.Logger) { l.Info("m", zap.Namespace("call"), zap.String("key", "inner")) },
			map[string]any{"request_id": "r1", "key": "id:again", "subscription": "s-ctx", "call": map[string]any{"key": "inner"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base, buf := jsonLogger()
			tt.log(Logger(ctx, base))
			line := bytes.TrimSpace(buf.Bytes())
			if err := logtest.CheckLine(line); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if w, _ := json.Marshal(v); !bytes.Equal(must(json.Marshal(got[k])), w) {
					t.Errorf("%s = %v, want %v in %s", k, got[k], v, line)
				}
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestCut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 8192)
	tests := []struct {
		name, in string
		want     string // "" : as given
	}{
		{name: "short", in: "my-product"},
		{name: "the longest valid key", in: "id:" + strings.Repeat("k", 256)},
		{name: "exactly the limit", in: strings.Repeat("a", MaxValue)},
		{name: "8 KB", in: long, want: strings.Repeat("x", MaxValue) + "…(8192 bytes)"},
		{name: "cut inside a character", in: strings.Repeat("a", MaxValue-1) + "é" + long, want: strings.Repeat("a", MaxValue-1) + "…(8493 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := tt.want
			if want == "" {
				want = tt.in
			}
			got := Cut(tt.in)
			if got != want {
				t.Errorf("Cut = %q (%d bytes), want %q", got[:min(len(got), 40)], len(got), want[:min(len(want), 40)])
			}
			if !utf8.ValidString(got) {
				t.Error("Cut made invalid UTF-8")
			}
		})
	}
}

// A line written under a span leads to its trace: trace_id and span_id,
// beside the delivery's fields; without a span (tracing off) it has
// neither, and a context with only a span still gets them.
func TestTraceFields(t *testing.T) {
	t.Parallel()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	delivery := With(context.Background(), zap.String("key", "id:k"))
	tests := []struct {
		name string
		ctx  context.Context
		want map[string]any
	}{
		{"delivery and span", trace.ContextWithSpanContext(delivery, sc),
			map[string]any{"key": "id:k", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}},
		{"span only", trace.ContextWithSpanContext(context.Background(), sc),
			map[string]any{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}},
		{"no span", delivery, map[string]any{"key": "id:k"}},
		{"an invalid span context", trace.ContextWithSpanContext(delivery, trace.SpanContext{}), map[string]any{"key": "id:k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log, buf := jsonLogger()
			Logger(tt.ctx, log).Info("m")
			if err := logtest.CheckLine(bytes.TrimSpace(buf.Bytes())); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"level", "ts", "msg", "caller"} {
				delete(got, k)
			}
			if len(got) != len(tt.want) {
				t.Errorf("fields %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}
