package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFull(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		attempt   int
		base, max time.Duration
		bound     time.Duration
	}{
		{1, 10 * time.Millisecond, time.Second, 10 * time.Millisecond},
		{3, 10 * time.Millisecond, time.Second, 40 * time.Millisecond},
		{40, 10 * time.Millisecond, time.Second, time.Second}, // shift past 32: the cap
		{0, 10 * time.Millisecond, time.Second, time.Second},
		{2, 0, 0, 0},
	} {
		for range 200 {
			if d := Full(tt.attempt, tt.base, tt.max); d < 0 || d > tt.bound {
				t.Fatalf("Full(%d, %v, %v) = %v, want in [0, %v]", tt.attempt, tt.base, tt.max, d, tt.bound)
			}
		}
	}
}

func TestHalf(t *testing.T) {
	t.Parallel()
	for range 200 {
		if d := Half(100 * time.Millisecond); d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("Half(100ms) = %v", d)
		}
	}
	if Half(0) != 0 {
		t.Error("Half(0) != 0")
	}
}

func TestSleepEndsWithTheContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want the ctx error", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
