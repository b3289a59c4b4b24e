package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// A unit is one delivery's Redis work in as few round trips as its rules
// allow, on a single node or Sentinel (one script may touch every key
// there; on Cluster the delivery and its subscription live in different
// slots, and every call makes its own round trip):
//
//   - the claim script also takes the subscription's lock, with a token of
//     its own, and reads its account (when the lock is free: else the
//     processing waits for it as always), so the processing's Lock and
//     first Account read cost nothing;
//   - for an ORDER of a subscription without a record, the claim script
//     also writes the account the processing would write before its first
//     outside call (provisioning's Prime: the intent, the first step
//     "calling"), and the processing goes on from it (events.Account's
//     Primed);
//   - the last save of the processing (provisioning's SaveFinal: the one
//     the reply rests on) is written by the Complete or Release script,
//     with the outcome, and the lock is dropped there too.
//
// Every other save before an outside call (an intent, a step "calling")
// is written at once, as without a unit. A reply never rests on a write that
// did not happen: when the record script with the joined save fails, or
// its fences (the claim's lease, the lock) no longer hold, Complete and
// Release return inbox.ErrUnsaved and the delivery is answered 503.
//
// The inbox binds the unit to the processing's context (inbox.Claim's
// Bind); the store's account methods find it there, for its subscription
// only.
type unit struct {
	sub  string
	lock string // the lock's token (no unit is bound when the claim could not take it)

	mu      sync.Mutex
	account []byte // prefetched by the claim; nil: none
	// primed is the account the claim wrote (inbox.ClaimRequest.Primed),
	// handed to the first read marked Primed; nil after it.
	primed *events.Account
	stale  bool // the unit saved the account since: account is not it
	save   *finalSave
}

// finalSave is a SaveFinal held for the outcome's record script: the
// arguments of saveAccountLua.
type finalSave struct {
	account []byte   // the account's JSON (args[0])
	keys    []string // identifier index, user index, settle due, settle since
	args    []any    // account JSON, subscription, identifier, user flag, due ms, since ms
}

type unitKey struct{}

// bind is the inbox.Claim Bind of a unit.
func (u *unit) bind(ctx context.Context) context.Context {
	return context.WithValue(ctx, unitKey{}, u)
}

// unitOf is the unit bound to ctx for subscription, with its lock held;
// nil when there is none.
func unitOf(ctx context.Context, subscription string) *unit {
	u, _ := ctx.Value(unitKey{}).(*unit)
	if u == nil || u.sub != subscription {
		return nil
	}
	return u
}

// prefetched is the account the claim read, until the unit saves one:
// every write of an account is fenced by its lock, which the unit holds,
// so nothing else changes it meanwhile. ok is false once it is stale (a
// read then goes to Redis).
func (u *unit) prefetched() (a events.Account, ok bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	b := u.account
	switch {
	case u.save != nil: // held for the record script: the account as it will be
		b = u.save.account
	case u.stale:
		return events.Account{}, false, nil
	case u.primed != nil:
		a, u.primed = *u.primed, nil
		a.Primed = true
		return a, true, nil
	}
	if b == nil {
		return events.Account{}, true, fmt.Errorf("account %q: %w", u.sub, events.ErrNotFound)
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return events.Account{}, true, fmt.Errorf("decoding account %q: %w", u.sub, err)
	}
	return a, true, nil
}

// saved marks the prefetched account as no longer the stored one, and
// drops a held save: a save written since supersedes it.
func (u *unit) saved() {
	u.mu.Lock()
	u.stale, u.save = true, nil
	u.mu.Unlock()
}

// hold keeps s for the record script.
func (u *unit) hold(s *finalSave) {
	u.mu.Lock()
	u.save, u.stale = s, true
	u.mu.Unlock()
}

// recordArgs are the unit's keys and arguments of the Complete and
// Release scripts (see luaUnit); for no unit, one empty argument.
func (r *Redis) unitArgs(ctx context.Context) (keys []string, args []any, saving bool) {
	u, _ := ctx.Value(unitKey{}).(*unit)
	if u == nil {
		return nil, []any{""}, false
	}
	u.mu.Lock()
	s := u.save
	u.mu.Unlock()
	keys = []string{r.keys.lock(u.sub), r.keys.account(u.sub)}
	if s == nil {
		return keys, []any{u.lock, ""}, false
	}
	return append(keys, s.keys...), append([]any{u.lock, "1"}, s.args...), true
}

// unlockUnit frees the unit's lock after a record script that did not
// run or did not write: the lock must not wait for its lease with nobody
// working under it. Fenced by the token: a no-op when the script did drop
// it, or another holder has it.
func (r *Redis) unlockUnit(ctx context.Context) {
	if u, _ := ctx.Value(unitKey{}).(*unit); u != nil {
		r.unlock(context.WithoutCancel(ctx), u.sub, r.keys.lock(u.sub), u.lock)
	}
}

// recorded reports whether the delivery record rec is in state with the
// fencing token: after a record script whose reply was lost, whether it
// ran. Asked on a budget of its own (the caller's may be what ran out).
func (r *Redis) recorded(ctx context.Context, rec, state string, token any) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
	defer cancel()
	f, err := r.client.HMGet(ctx, rec, "state", "token").Result()
	return err == nil && len(f) == 2 && f[0] == state && f[1] == token
}

// unsaved is the error of a record call that failed with the unit's save
// joined to it: the reply must not rest on it.
func unsaved(saving bool, err error) error {
	if saving && err != nil {
		return fmt.Errorf("%w: %w", inbox.ErrUnsaved, err)
	}
	return err
}

// luaUnit is the unit's part of the Complete and Release scripts. Its
// keys start at KEYS[k] (lock, account, identifier index, user index,
// settle due, settle since), its arguments at ARGV[a] (lock token, "1"
// when there is a save, then saveAccountLua's arguments); a lock token ""
// is no unit.
//
// unit_check: whether the unit's fence holds, and whether the lock is
// still the unit's. Without a save to make, a lost lock changes nothing;
// with one, the save must be fenced like any other.
// unit_end: the save, and the lock dropped, when the lock is the unit's.
const luaUnit = `
local function unit_check(k, a)
  if ARGV[a] == '' then return true, false end
  local mine = redis.call('GET', KEYS[k]) == ARGV[a]
  return mine or ARGV[a + 1] ~= '1', mine
end
local function unit_end(k, a, mine)
  if not mine then return end
  if ARGV[a + 1] == '1' then
    save_account(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5],
      ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7])
  end
  redis.call('DEL', KEYS[k])
end
`
