package logctx

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
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
