package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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
// holds the writer's token (they share a hash tag), and with it, in the
// same atomic step where the keys allow it (not on Cluster), the account's
// indexes: accountIdentifier → subscription and the user's accounts. A
// retry of the same write after a lost reply writes the same bytes again.
// KEYS: lock, account, [identifier index, user index]. ARGV: token,
// account JSON, [subscription id, identifier]. Returns 1 when written, 0
// when the lock is lost.
var saveAccountScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
if KEYS[3] and ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[3]) end
if KEYS[4] then redis.call('HSET', KEYS[4], ARGV[3], ARGV[2]) end
return 1
`)

// SaveAccount stores an account as JSON, without TTL (it is the system of
// record, see keys.go), with its indexes: by accountIdentifier, and among
// its marketplace user's accounts (for the read API). The write is fenced:
// it happens only while the subscription's lock holds lockToken (from
// Lock), else ErrLeaseLost and nothing is written. A holder that stalled
// past its lease can thus never overwrite what the next holder wrote (a
// CHANGE bringing back "active" after a CANCEL).
//
// On a single node or Sentinel the account and its indexes are one atomic
// step, so the read API is right the moment the event is answered, even if
// the process dies right after. On Cluster the indexes live in other slots:
// the identifier index is written before the account (a crash in between
// leaves an index that reads as not found, never an account its identifier
// cannot find) and the user index after it (a crash in between leaves the
// user's list one write behind until the event's next copy).
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
	keys := []string{r.keys.lock(a.SubscriptionID), r.keys.account(a.SubscriptionID)}
	args := []any{lockToken, b}
	if !r.cluster() {
		keys = append(keys, r.keys.accountIndex(a.AccountIdentifier))
		if a.UserID > 0 {
			keys = append(keys, r.keys.userIndex(a.UserID))
		}
		args = append(args, a.SubscriptionID, a.AccountIdentifier)
	} else if a.AccountIdentifier != "" {
		if err := r.client.Set(ctx, r.keys.accountIndex(a.AccountIdentifier), a.SubscriptionID, 0).Err(); err != nil {
			return unavailable("save account index", err)
		}
	}
	if r.waitReplicas > 0 {
		err = r.saveReplicated(ctx, keys, args, a.SubscriptionID)
	} else {
		var n int
		if n, err = saveAccountScript.Run(ctx, r.client, keys, args...).Int(); err != nil {
			err = unavailable("save account", err)
		} else {
			err = saved(n, a.SubscriptionID)
		}
	}
	if err != nil || !r.cluster() || a.UserID <= 0 {
		return err
	}
	if err := r.client.HSet(ctx, r.keys.userIndex(a.UserID), a.SubscriptionID, b).Err(); err != nil {
		return unavailable("save user index", err)
	}
	return nil
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
func (r *Redis) saveReplicated(ctx context.Context, keys []string, args []any, subscriptionID string) error {
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
		write = saveAccountScript.Eval(ctx, p, keys, args...)
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

// AccountsOfUser returns the accounts of a marketplace user (user_id), in
// one round trip; none is not an error.
func (r *Redis) AccountsOfUser(ctx context.Context, userID int64) ([]events.Account, error) {
	m, err := r.client.HGetAll(ctx, r.keys.userIndex(userID)).Result()
	if err != nil {
		return nil, unavailable("user index", err)
	}
	out := make([]events.Account, 0, len(m))
	for sub, b := range m {
		var a events.Account
		if err := json.Unmarshal([]byte(b), &a); err != nil {
			return nil, fmt.Errorf("decoding account %q of user %d: %w", sub, userID, err)
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b events.Account) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}
