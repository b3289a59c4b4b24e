package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

// In embedded mode the clock moves by itself: a crashed holder's lock runs
// out, as it would on a real Redis.
func TestEmbeddedLeasesRunOut(t *testing.T) {
	t.Parallel()
	r, err := Open(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if _, _, err := r.Lock(ctx, "embedded", 300*time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Lock(ctx, "embedded", time.Second, 0); !errors.Is(err, events.ErrBusy) {
		t.Fatalf("second Lock while held: %v, want ErrBusy", err)
	}
	if _, _, err := r.Lock(ctx, "embedded", time.Second, 3*time.Second); err != nil {
		t.Fatalf("Lock after the lease ran out: %v", err)
	}
}
