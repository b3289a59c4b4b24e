package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/redis/go-redis/v9"
)

// Account loads the account of a subscription; ErrNotFound when there is
// none. Cancelled accounts are returned too: the caller decides.
func (r *Redis) Account(ctx context.Context, subscriptionID string) (events.Account, error) {
	if subscriptionID == "" {
		return events.Account{}, fmt.Errorf("account: empty subscription id: %w", ErrNotFound)
	}
	b, err := r.client.Get(ctx, r.keys.account(subscriptionID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return events.Account{}, fmt.Errorf("account %q: %w", subscriptionID, ErrNotFound)
	}
	if err != nil {
		return events.Account{}, unavailable("account", err)
	}
	var a events.Account
	if err := json.Unmarshal(b, &a); err != nil {
		return events.Account{}, fmt.Errorf("decoding account %q: %w", subscriptionID, err)
	}
	return a, nil
}

// AccountByIdentifier loads an account by its accountIdentifier (the Q2
// UserID) through the index key; ErrNotFound when the index or the account
// is missing, or when the account no longer carries that identifier (a
// stale index entry).
func (r *Redis) AccountByIdentifier(ctx context.Context, accountIdentifier string) (events.Account, error) {
	if accountIdentifier == "" {
		return events.Account{}, fmt.Errorf("account: empty account identifier: %w", ErrNotFound)
	}
	sub, err := r.client.Get(ctx, r.keys.accountIndex(accountIdentifier)).Result()
	if errors.Is(err, redis.Nil) {
		return events.Account{}, fmt.Errorf("account identifier %q: %w", accountIdentifier, ErrNotFound)
	}
	if err != nil {
		return events.Account{}, unavailable("account index", err)
	}
	a, err := r.Account(ctx, sub)
	if err != nil {
		return events.Account{}, err
	}
	if a.AccountIdentifier != accountIdentifier {
		return events.Account{}, fmt.Errorf("account identifier %q (stale index): %w", accountIdentifier, ErrNotFound)
	}
	return a, nil
}

// SaveAccount stores an account as JSON, without TTL (it is the system of
// record, see keys.go), and indexes it by accountIdentifier when it has one.
//
// The index is written first, then the account, in two commands: on Redis
// Cluster the two keys are in different slots (the index is keyed by the
// identifier, the account by the subscription), so no script or MULTI can
// cover both. In this order a crash in between leaves an index without an
// account, which reads as not found (AccountByIdentifier checks the account
// it points to), never an account that its identifier cannot find.
func (r *Redis) SaveAccount(ctx context.Context, a events.Account) error {
	if a.SubscriptionID == "" {
		return errors.New("store: save account: empty subscription id")
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding account %q: %w", a.SubscriptionID, err)
	}
	if a.AccountIdentifier != "" {
		if err := r.client.Set(ctx, r.keys.accountIndex(a.AccountIdentifier), a.SubscriptionID, 0).Err(); err != nil {
			return unavailable("save account index", err)
		}
	}
	if err := r.client.Set(ctx, r.keys.account(a.SubscriptionID), b, 0).Err(); err != nil {
		return unavailable("save account", err)
	}
	return nil
}
