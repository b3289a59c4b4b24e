package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

func testAccount(sub, id string) events.Account {
	created := time.Date(2021, 12, 6, 15, 27, 32, 636332000, time.UTC)
	return events.Account{
		SubscriptionID:    sub,
		AccountIdentifier: id,
		UserID:            42,
		Product:           "default",
		Steps:             []events.Step{{Target: "q2", State: events.StepLive, Rev: 1, ID: id, Data: map[string]string{"customer_id": "7"}}},
		Intent: events.Intent{State: events.IntentActive, Rev: 1, By: events.SubscriptionOrder, Promised: true,
			Edition: "PREMIUM", PricingDuration: "MONTHLY", Items: []events.Item{{Unit: "USER", Quantity: 5}}, At: created, LastCopy: created},
		Status:    events.AccountActive,
		CreatedAt: created,
		UpdatedAt: created,
	}
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		a := testAccount("sub-1", "42")
		if err := saveLocked(ctx, b.r, a); err != nil {
			t.Fatal(err)
		}
		got, err := b.r.Account(ctx, "sub-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Errorf("Account\n got %+v\nwant %+v", got, a)
		}
		got, err = b.r.AccountByIdentifier(ctx, "42")
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("AccountByIdentifier = %+v, %v; want %+v", got, err, a)
		}

		// Cancel: the record is kept and updated in place.
		cancelled := a
		at := a.CreatedAt.Add(time.Hour)
		cancelled.Status, cancelled.CancelledAt, cancelled.UpdatedAt = events.AccountCancelled, &at, at
		if err := saveLocked(ctx, b.r, cancelled); err != nil {
			t.Fatal(err)
		}
		if got, err := b.r.Account(ctx, "sub-1"); err != nil || !reflect.DeepEqual(got, cancelled) {
			t.Errorf("after cancel: %+v, %v; want %+v", got, err, cancelled)
		}

		// The system of record has no TTL, nor its index.
		for _, key := range []string{b.r.keys.account("sub-1"), b.r.keys.accountIndex("42")} {
			if d := b.pttl(t, key); d != noTTL {
				t.Errorf("%s: PTTL %v, want no TTL", key, d)
			}
		}
	})
}

func TestAccountNotFound(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		// An account whose identifier changed leaves a stale index entry.
		moved := testAccount("sub-moved", "100")
		if err := saveLocked(ctx, b.r, moved); err != nil {
			t.Fatal(err)
		}
		moved.AccountIdentifier = "101"
		if err := saveLocked(ctx, b.r, moved); err != nil {
			t.Fatal(err)
		}
		// An index written just before a crash, its account never saved.
		if err := b.r.client.Set(ctx, b.r.keys.accountIndex("200"), "sub-never-saved", 0).Err(); err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			name string
			load func() (events.Account, error)
		}{
			{"unknown subscription", func() (events.Account, error) { return b.r.Account(ctx, "sub-unknown") }},
			{"empty subscription", func() (events.Account, error) { return b.r.Account(ctx, "") }},
			{"unknown identifier", func() (events.Account, error) { return b.r.AccountByIdentifier(ctx, "999") }},
			{"empty identifier", func() (events.Account, error) { return b.r.AccountByIdentifier(ctx, "") }},
			{"stale index", func() (events.Account, error) { return b.r.AccountByIdentifier(ctx, "100") }},
			{"index without account", func() (events.Account, error) { return b.r.AccountByIdentifier(ctx, "200") }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := tt.load(); !errors.Is(err, events.ErrNotFound) {
					t.Errorf("err = %v, want ErrNotFound", err)
				}
			})
		}
		if got, err := b.r.AccountByIdentifier(ctx, "101"); err != nil || got.SubscriptionID != "sub-moved" {
			t.Errorf("new identifier: %+v, %v", got, err)
		}
	})
}

func TestSaveAccountWithoutIdentifier(t *testing.T) {
	t.Parallel()
	b := newMiniBackend(t)
	ctx := ctxT(t)
	if err := b.r.SaveAccount(ctx, "token", events.Account{}); err == nil {
		t.Error("SaveAccount without a subscription id: want an error")
	}
	a := testAccount("sub-pending", "")
	if err := saveLocked(ctx, b.r, a); err != nil {
		t.Fatal(err)
	}
	if keys := b.mr.Keys(); len(keys) != 2 || !strings.Contains(keys[0]+keys[1], ":user:{42}") {
		t.Errorf("keys %v: want only the account and its user's index, no identifier index for an empty identifier", keys)
	}
}

// Rule: an accountIdentifier names one subscription. A save never points
// the index at itself over another subscription's; ClaimIdentifier
// claims it when free, keeps it for its owner, and moves it only from the
// owner the caller names.
func TestClaimIdentifier(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		claim := func(sub, displace, want string) {
			t.Helper()
			if owner, err := b.r.ClaimIdentifier(ctx, "4001:77", sub, displace); err != nil || owner != want {
				t.Fatalf("ClaimIdentifier(%s, displace %q) = %q, %v; want %q", sub, displace, owner, err, want)
			}
		}
		claim("sub-a", "", "sub-a")
		claim("sub-a", "", "sub-a")
		claim("sub-b", "", "sub-a")
		// The former owner's save does not take it back once moved, nor
		// does another's save take it.
		other := testAccount("sub-b", "4001:77")
		if err := saveLocked(ctx, b.r, other); err != nil {
			t.Fatal(err)
		}
		if a, err := b.r.AccountByIdentifier(ctx, "4001:77"); err == nil {
			t.Fatalf("sub-b's save took sub-a's identifier: %+v", a)
		}
		claim("sub-b", "sub-x", "sub-a")
		claim("sub-b", "sub-a", "sub-b")
		if err := saveLocked(ctx, b.r, testAccount("sub-a", "4001:77")); err != nil {
			t.Fatal(err)
		}
		if a, err := b.r.AccountByIdentifier(ctx, "4001:77"); err != nil || a.SubscriptionID != "sub-b" {
			t.Fatalf("after sub-a's save the identifier names %+v, %v; want sub-b", a, err)
		}
	})
}
