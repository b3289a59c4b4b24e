package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/redis/go-redis/v9"
)

// Account loads the account of a subscription; events.ErrNotFound when there is
// none. Cancelled accounts are returned too: the caller decides.
func (r *Redis) Account(ctx context.Context, subscriptionID string) (events.Account, error) {
	if subscriptionID == "" {
		return events.Account{}, fmt.Errorf("account: empty subscription id: %w", events.ErrNotFound)
	}
	if u := unitOf(ctx, subscriptionID); u != nil {
		if a, ok, err := u.prefetched(); ok {
			return a, err
		}
	}
	b, err := r.client.Get(ctx, r.keys.account(subscriptionID)).Result()
	if errors.Is(err, redis.Nil) {
		return events.Account{}, fmt.Errorf("account %q: %w", subscriptionID, events.ErrNotFound)
	}
	if err != nil {
		return events.Account{}, unavailable("account", err)
	}
	return decodeAccount(subscriptionID, b)
}

// AccountByIdentifier loads an account by its accountIdentifier (the Q2
// UserID) through the index key; events.ErrNotFound when the index or the account
// is missing, or when the account no longer carries that identifier (a
// stale index entry).
func (r *Redis) AccountByIdentifier(ctx context.Context, accountIdentifier string) (events.Account, error) {
	if accountIdentifier == "" {
		return events.Account{}, fmt.Errorf("account: empty account identifier: %w", events.ErrNotFound)
	}
	sub, err := r.client.Get(ctx, r.keys.accountIndex(accountIdentifier)).Result()
	if errors.Is(err, redis.Nil) {
		return events.Account{}, fmt.Errorf("account identifier %q: %w", accountIdentifier, events.ErrNotFound)
	}
	if err != nil {
		return events.Account{}, unavailable("account index", err)
	}
	a, err := r.Account(ctx, sub)
	if err != nil {
		return events.Account{}, err
	}
	if a.AccountIdentifier != accountIdentifier {
		return events.Account{}, fmt.Errorf("account identifier %q (stale index): %w", accountIdentifier, events.ErrNotFound)
	}
	return a, nil
}

// saveAccountScript writes the account only while the subscription's lock
// holds the writer's token (they share a hash tag), and with it, in the
// same atomic step, its indexes (accountIdentifier → subscription, unless
// the identifier names another subscription already: only ClaimIdentifier
// moves it; and the user's subscriptions, by id only: the accounts are
// read from their own keys, so the index stays small) and its place on
// the settle queue. A retry of the same
// write after a lost reply writes the same bytes again.
// KEYS: lock, account, identifier index, user index, settle due, settle
// since. ARGV: token, account JSON, subscription id, identifier (” skips
// the identifier index), user flag ('1' writes the user index), due ms
// (” takes it off the queue), since ms (” takes it off the unsettled
// list). Returns 1 when written, 0 when the lock is lost.
var saveAccountScript = redis.NewScript(luaSaveAccount + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
save_account(KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
return 1
`)

// luaSaveAccount is saveAccountScript's write, unfenced: the caller
// checks the lock (the Complete and Release scripts write it too, see
// unit.go).
const luaSaveAccount = `
local function save_account(acct, ident, user, due, since, json, sub, id, userFlag, dueMS, sinceMS)
  redis.call('SET', acct, json)
  if id ~= '' then
    local owner = redis.call('GET', ident)
    if not owner then redis.call('SET', ident, sub) end
  end
  if userFlag == '1' then redis.call('HSET', user, sub, '1') end
  if dueMS == '' then redis.call('ZREM', due, sub) else redis.call('ZADD', due, dueMS, sub) end
  if sinceMS == '' then redis.call('ZREM', since, sub) else redis.call('ZADD', since, sinceMS, sub) end
end
`

// saveFencedScript is saveAccountScript's first two lines, for Cluster,
// where the indexes and the queue live in other slots.
var saveFencedScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)

// SaveAccount stores an account as JSON, without TTL (it is the system of
// record, see keys.go), with its indexes (by accountIdentifier, and among
// its marketplace user's accounts, for the read API) and its place on the
// settle queue (a.Settle: Due on the queue, Since on the unsettled list;
// zero takes it off). The write is fenced: it happens only while the
// subscription's lock holds lockToken (from Lock), else events.ErrLeaseLost and
// nothing is written. A holder that stalled past its lease can thus never
// overwrite what the next holder wrote.
//
// On a single node or Sentinel all of it is one atomic step, so the read
// API and the settle queue are right the moment the event is answered,
// even if the process dies right after. On Cluster the indexes and the
// queue live in other slots: what makes a crash in between harmless is
// written before the account (the identifier index, which reads as "not
// found" until the account carries the identifier; a queue entry, which
// the settler finds settled), the rest after it (the user index and a
// queue removal: one write behind until the next save).
func (r *Redis) SaveAccount(ctx context.Context, lockToken string, a events.Account) error {
	if a.SubscriptionID == "" {
		return errors.New("store: save account: empty subscription id")
	}
	if lockToken == "" {
		return errors.New("store: save account: empty lock token; take the subscription's lock first")
	}
	if u := unitOf(ctx, a.SubscriptionID); u != nil {
		u.saved()
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding account %q: %w", a.SubscriptionID, err)
	}
	dueMS, sinceMS := msOrEmpty(a.Settle.Due), msOrEmpty(a.Settle.Since)
	if r.cluster() {
		return r.saveCluster(ctx, lockToken, a, b, dueMS, sinceMS)
	}
	s := r.saveOf(a, b, dueMS, sinceMS)
	keys := append([]string{r.keys.lock(a.SubscriptionID), r.keys.account(a.SubscriptionID)}, s.keys...)
	return r.runSave(ctx, saveAccountScript, keys, append([]any{lockToken}, s.args...), a.SubscriptionID)
}

// saveOf is saveAccountLua's keys (after the account's) and arguments for
// account a, encoded as b.
func (r *Redis) saveOf(a events.Account, b []byte, dueMS, sinceMS string) *finalSave {
	due, since := r.keys.settle()
	user := ""
	if a.UserID > 0 {
		user = "1"
	}
	return &finalSave{
		account: b,
		keys:    []string{r.keys.accountIndex(a.AccountIdentifier), r.keys.userIndex(a.UserID), due, since},
		args:    []any{b, a.SubscriptionID, a.AccountIdentifier, user, dueMS, sinceMS},
	}
}

// SaveFinal is SaveAccount for the last save of a processing pass, the
// one its reply rests on. Under a delivery's unit (unit.go) it is held
// and written by the delivery's Complete or Release script, in the same
// round trip as the outcome, which then fails with inbox.ErrUnsaved if it
// could not be written; anywhere else (the settler, Cluster, writes that
// wait for replicas) it is SaveAccount.
func (r *Redis) SaveFinal(ctx context.Context, lockToken string, a events.Account) error {
	u := unitOf(ctx, a.SubscriptionID)
	if u == nil || lockToken != u.lock || r.waitReplicas > 0 || r.cluster() {
		return r.SaveAccount(ctx, lockToken, a)
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding account %q: %w", a.SubscriptionID, err)
	}
	u.hold(r.saveOf(a, b, msOrEmpty(a.Settle.Due), msOrEmpty(a.Settle.Since)))
	return nil
}

// saveCluster is SaveAccount on Cluster (see there for the order).
func (r *Redis) saveCluster(ctx context.Context, lockToken string, a events.Account, b []byte, dueMS, sinceMS string) error {
	due, since := r.keys.settle()
	// Before the account: what reads as "not found" or "settled" until the
	// account is written (one pipeline, the keys' nodes in parallel).
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		if a.AccountIdentifier != "" { // never over another subscription's (ClaimIdentifier moves it)
			p.SetNX(ctx, r.keys.accountIndex(a.AccountIdentifier), a.SubscriptionID, 0)
		}
		if dueMS != "" {
			p.ZAdd(ctx, due, redis.Z{Score: atof(dueMS), Member: a.SubscriptionID})
			if sinceMS != "" {
				p.ZAdd(ctx, since, redis.Z{Score: atof(sinceMS), Member: a.SubscriptionID})
			} else { // settled, queued only to be checked again for late work
				p.ZRem(ctx, since, a.SubscriptionID)
			}
		}
		return nil
	})
	if err != nil {
		return unavailable("save account index and queue", err)
	}
	keys := []string{r.keys.lock(a.SubscriptionID), r.keys.account(a.SubscriptionID)}
	if err := r.runSave(ctx, saveFencedScript, keys, []any{lockToken, b}, a.SubscriptionID); err != nil {
		return err
	}
	// After it: the user's list, and a settled account off the queue.
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		if dueMS == "" {
			p.ZRem(ctx, due, a.SubscriptionID)
			p.ZRem(ctx, since, a.SubscriptionID)
		}
		if a.UserID > 0 {
			p.HSet(ctx, r.keys.userIndex(a.UserID), a.SubscriptionID, "1")
		}
		return nil
	})
	if err != nil {
		return unavailable("save user index and queue", err)
	}
	return nil
}

// runSave runs a fenced save script, and WAITs for replicas when asked.
func (r *Redis) runSave(ctx context.Context, script *redis.Script, keys []string, args []any, subscriptionID string) error {
	if r.waitReplicas > 0 {
		return r.saveReplicated(ctx, script, keys, args, subscriptionID)
	}
	n, err := script.Run(ctx, r.client, keys, args...).Int()
	if err != nil {
		return unavailable("save account", err)
	}
	return saved(n, subscriptionID)
}

// Confirm makes an account answered as it was read as durable as a write:
// with REDIS_WAIT_REPLICAS it writes the account again and waits for the
// replicas, since WAIT only counts the writes of its own connection and a
// reply must never rest on a write a failover can lose (the copy of an
// event whose first write came up short). Without it, it does nothing.
func (r *Redis) Confirm(ctx context.Context, lockToken string, a events.Account) error {
	if r.waitReplicas <= 0 {
		return nil
	}
	return r.SaveAccount(ctx, lockToken, a)
}

func msOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// claimIdentifierScript points an identifier at a subscription when it names none,
// that one, or the one the caller displaces; it answers the subscription
// the identifier names afterwards. KEYS: identifier index. ARGV:
// subscription, displaced subscription (” for none).
var claimIdentifierScript = redis.NewScript(`
local owner = redis.call('GET', KEYS[1])
if not owner or owner == ARGV[1] or (ARGV[2] ~= '' and owner == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return owner
`)

// ClaimIdentifier points accountIdentifier at subscriptionID, atomically,
// when it names no subscription yet, this one, or displace (a former
// owner the caller found cancelled and settled); it returns the
// subscription the identifier names afterwards: subscriptionID when
// claimed, else the other owner. Two subscriptions racing for one
// identifier: one wins.
func (r *Redis) ClaimIdentifier(ctx context.Context, accountIdentifier, subscriptionID, displace string) (string, error) {
	owner, err := claimIdentifierScript.Run(ctx, r.client, []string{r.keys.accountIndex(accountIdentifier)}, subscriptionID, displace).Text()
	if err != nil {
		return "", unavailable("claim account identifier", err)
	}
	return owner, nil
}

func saved(n int, subscriptionID string) error {
	if n != 1 {
		return fmt.Errorf("saving account %q: the subscription's lock is no longer held: %w", subscriptionID, events.ErrLeaseLost)
	}
	return nil
}

// saveReplicated writes the account and WAITs for r.waitReplicas replicas
// on the same connection (WAIT counts the writes of its own connection),
// so a failover right after the reply cannot lose what was acknowledged.
// On Cluster the pipeline goes to the master of the account's slot.
func (r *Redis) saveReplicated(ctx context.Context, script *redis.Script, keys []string, args []any, subscriptionID string) error {
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
		write = script.Eval(ctx, p, keys, args...)
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
			subscriptionID, got, r.waitReplicas, r.waitTimeout, events.ErrUnavailable, ErrNotReplicated)
	}
	return nil
}

// userAccountsScript reads a user's accounts: the index's subscription
// ids (its values, the whole account in earlier versions, are not read),
// then each account from its own key, not declared: single node and
// Sentinel only. KEYS: user index. ARGV: key prefix. Returns id, account
// JSON (false when gone) for each.
var userAccountsScript = redis.NewScript(`
local out = {}
for _, sub in ipairs(redis.call('HKEYS', KEYS[1])) do
  out[#out + 1] = sub
  out[#out + 1] = redis.call('GET', ARGV[1] .. 'account:{' .. sub .. '}')
end
return out
`)

// AccountsOfUser returns the accounts of a marketplace user (user_id),
// oldest first, in one round trip (two on Cluster, where the accounts
// live in other slots than the index); none is not an error.
func (r *Redis) AccountsOfUser(ctx context.Context, userID int64) ([]events.Account, error) {
	idx := r.keys.userIndex(userID)
	var out []events.Account
	if r.cluster() {
		subs, err := r.client.HKeys(ctx, idx).Result()
		if err != nil {
			return nil, unavailable("user index", err)
		}
		if out, err = r.accounts(ctx, subs); err != nil {
			return nil, err
		}
	} else {
		res, err := userAccountsScript.Run(ctx, r.client, []string{idx}, r.keys.prefix).Slice()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, unavailable("user index", err)
		}
		if out, err = userAccounts(res); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b events.Account) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// userAccounts decodes userAccountsScript's reply: subscription, account
// JSON (false when it has none), and so on.
func userAccounts(res []any) ([]events.Account, error) {
	var out []events.Account
	for i := 0; i+1 < len(res); i += 2 {
		sub, _ := res[i].(string)
		if v, ok := res[i+1].(string); ok {
			a, err := decodeAccount(sub, v)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return out, nil
}

// accounts reads the accounts of subs in one pipeline (each node its own
// part on Cluster), in subs' order, leaving out those that have none.
func (r *Redis) accounts(ctx context.Context, subs []string) ([]events.Account, error) {
	if len(subs) == 0 {
		return nil, nil
	}
	gets := make([]*redis.StringCmd, len(subs))
	err := pipelined(ctx, r.client, func(p redis.Pipeliner) error {
		for i, sub := range subs {
			gets[i] = p.Get(ctx, r.keys.account(sub))
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("accounts", err)
	}
	out := make([]events.Account, 0, len(subs))
	for i, sub := range subs {
		v, err := gets[i].Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, unavailable("accounts", err)
		}
		a, err := decodeAccount(sub, v)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// decodeAccount decodes the stored account of subscription sub.
func decodeAccount(sub, v string) (events.Account, error) {
	var a events.Account
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		return events.Account{}, fmt.Errorf("decoding account %q: %w", sub, err)
	}
	return a, nil
}
