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

// saveAccountScript writes the account only while the subscription's lock
// holds the writer's token (they share a hash tag). A retry of the same
// write after a lost reply writes the same bytes again. KEYS: lock, account.
// ARGV: token, account JSON. Returns 1 when written, 0 when the lock is lost.
var saveAccountScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)

// SaveAccount stores an account as JSON, without TTL (it is the system of
// record, see keys.go), and indexes it by accountIdentifier when it has one.
// The write is fenced: it happens only while the subscription's lock holds
// lockToken (from Lock), else ErrLeaseLost and the account is untouched. A
// holder that stalled past its lease can thus never overwrite what the next
// holder wrote (a CHANGE bringing back "active" after a CANCEL).
//
// The index is written first, then the account: on Redis Cluster the two
// keys are in different slots (the index is keyed by the identifier, the
// account by the subscription), so no script or MULTI can cover both. In
// this order a crash in between leaves an index without an account, which
// reads as not found (AccountByIdentifier checks the account it points to),
// never an account that its identifier cannot find.
func (r *Redis) SaveAccount(ctx context.Context, lockToken string, a events.Account) error {
	if a.SubscriptionID == "" {
		return errors.New("store: save account: empty subscription id")
	}
	if lockToken == "" {
		return errors.New("store: save account: empty lock token; take the subscription's lock first")
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
	keys := []string{r.keys.lock(a.SubscriptionID), r.keys.account(a.SubscriptionID)}
	if r.waitReplicas > 0 {
		return r.saveReplicated(ctx, keys, lockToken, b, a.SubscriptionID)
	}
	n, err := saveAccountScript.Run(ctx, r.client, keys, lockToken, b).Int()
	if err != nil {
		return unavailable("save account", err)
	}
	return saved(n, a.SubscriptionID)
}

func saved(n int, subscriptionID string) error {
	if n != 1 {
		return fmt.Errorf("saving account %q: the subscription's lock is no longer held: %w", subscriptionID, ErrLeaseLost)
	}
	return nil
}

// saveReplicated writes the account and WAITs for r.waitReplicas replicas
// on the same connection (WAIT counts the writes of its own connection),
// so a failover right after the reply cannot lose what was acknowledged.
// On Cluster the pipeline goes to the master of the account's slot.
func (r *Redis) saveReplicated(ctx context.Context, keys []string, token string, account []byte, subscriptionID string) error {
	var node redis.Cmdable = r.client
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, keys[1])
		if err != nil {
			return unavailable("save account", err)
		}
		node = m
	}
	var write *redis.Cmd
	var wait *redis.IntCmd
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT.
		write = saveAccountScript.Eval(ctx, p, keys, token, account)
		wait = redis.NewIntCmd(ctx, "wait", r.waitReplicas, r.waitTimeout.Milliseconds())
		return p.Process(ctx, wait)
	})
	if err != nil {
		return unavailable("save account", err)
	}
	n, _ := write.Int()
	if err := saved(n, subscriptionID); err != nil {
		return err
	}
	if got := wait.Val(); got < int64(r.waitReplicas) {
		return fmt.Errorf("saving account %q: %d of %d replicas have it after %v: %w: %w",
			subscriptionID, got, r.waitReplicas, r.waitTimeout, ErrUnavailable, ErrNotReplicated)
	}
	return nil
}
