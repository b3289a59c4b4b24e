package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// The key layout, all of it. Every key starts with the prefix (Options.Prefix,
// "webhook:" by default). Keys that one script touches share a {hash tag},
// so that on Redis Cluster they live in one slot.
//
//	webhook:delivery:{<h>}        hash, one per delivery; TTL = EVENT_TTL, set by
//	                              each fresh claim (never below the lease) and
//	                              by Complete; a duplicate answered from the
//	                              record does not extend it
//	    key          the delivery key as the caller gave it ("id:..." / "sha256:...")
//	    fp           hex sha256 of the canonical body: a same key with another fp is a conflict
//	    state        processing | released | done
//	    token        fencing token of the latest claim (lets a retried Complete or
//	                 Release by that holder be recognised as already applied)
//	    status, body the stored reply when done, body byte for byte
//	    code         outcome code of the latest attempt ("SUCCESS", "TRANSPORT_ERROR", ...)
//	    type, sub    event type and subscription id, for the history
//	    attempts     copies that claimed fresh (were processed)
//	    copies       copies answered from the record (done), without processing
//	    first, last  first and last time seen, Unix milliseconds
//	    duration_ms  processing time of the latest attempt
//	    kind         what the latest outcome meant (events.Kind's words)
//	    dropped      attempts no longer kept in the history (absent: none)
//	webhook:delivery:{<h>}:attempts  string, the delivery's attempt history:
//	                              one line of JSON per processed attempt (time,
//	                              duration, status sent, outcome, kind, reason
//	                              code, trace id, outside calls), oldest first,
//	                              the latest 10 kept; ids and codes only. Same
//	                              slot and TTL as the record, written by the same
//	                              script as its outcome
//	webhook:delivery:{<h>}:lease  string, the holder's fencing token; PX = the
//	                              lease (a little over PROCESS_TIMEOUT), so a
//	                              crashed holder frees it by itself
//	webhook:account:{<sub>}       string, events.Account as JSON. NO TTL: this is
//	                              the system of record of which Q2 user belongs to
//	                              which subscription; losing it would enrol twice
//	                              or leave cancelled users behind. Cancelled
//	                              accounts are kept, so a late ORDER is refused.
//	webhook:account-id:<id>       string, accountIdentifier -> subscription id.
//	                              NO TTL: an index of the record above, living as
//	                              long as it does. Another slot than the account
//	                              on Cluster (see SaveAccount).
//	webhook:copy:{<c>}            string, the record hash <h> of a final outcome,
//	                              under the copy key <c> (hex SHA-256 of "v2\n" +
//	                              product + "\n" + webhook-id + "\n" + raw body); the reply is read
//	                              from the record, so it is stored once. On
//	                              Cluster, where the record is in another slot,
//	                              JSON {k, t, s, b}: the delivery key, type,
//	                              subscription and stored reply.
//	                              PX = EVENT_TTL. Lets a byte-identical copy be
//	                              answered before any JSON work.
//	webhook:deliveries:{<sub>}:order  sorted set, a subscription's deliveries:
//	                              record hashes by first seen (Unix ms), the
//	                              newest 100; PX = EVENT_TTL. Written by a fresh
//	                              claim (its script; on Cluster a second round
//	                              trip after it); the summaries are read from
//	                              the records. (A hash
//	                              webhook:deliveries:{<sub>} of summaries, written
//	                              by earlier versions, is no longer read and
//	                              expires by itself.)
//	webhook:{deliveries}:failed   sorted set, the recent failures: record hashes of
//	                              the deliveries whose latest attempt failed, by
//	                              that attempt's time (Unix ms); a success takes
//	                              one off. The newest 10,000, none older than 7
//	                              days; NO TTL (bounded). Written with the outcome
//	                              (its script; on Cluster a pipeline once the
//	                              record script applied it)
//	webhook:{stats}:m:<minute>    hash, outcome code → deliveries whose latest
//	webhook:{stats}:h:<hour>      attempt was in that minute (hour) since the Unix
//	                              epoch; PX 2 h (26 h). A retried delivery is moved
//	                              from its earlier attempt's counters to the
//	                              latest's, so it counts once. Written with the
//	                              outcome, like the failures (on Cluster in the
//	                              same pipeline as they are: an attempt whose
//	                              lease was lost is not counted)
//	webhook:console-session:<s>   string, a console session (JSON: operator label,
//	                              form token, times); <s> is the hex SHA-256 of the
//	                              cookie's id, never the id. PX = the session's
//	                              idle timeout, cut at its absolute one
//	webhook:user:{<user_id>}      hash, a marketplace user's subscriptions:
//	                              subscription id → "1" (the accounts are read
//	                              from their own keys; earlier versions wrote the
//	                              account JSON here, which is not read). NO TTL
//	webhook:{settle}:due          sorted set, the settle queue: subscription id →
//	                              when the settler next works on it (Unix ms).
//	                              Written with the account (SaveAccount); a
//	                              settler taking an entry pushes it a lease ahead,
//	                              so replicas do not take it at once. NO TTL
//	webhook:{settle}:since        sorted set, the unsettled subscriptions:
//	                              subscription id → since when (Unix ms), oldest
//	                              first for the read API and the age metric. NO TTL.
//	                              Both share a hash tag: one slot on Cluster
//	webhook:lock:{<sub>}          string, the holder's random token; PX = lease.
//	                              Same hash tag as the account: SaveAccount checks
//	                              the token and writes the account in one script.
//	                              An AppDirect result job's lock is
//	                              webhook:lock:{appdirect-result/<id>}
//	webhook:{settle}:result:<id>  string, an AppDirect result job (inbox.ResultJob
//	                              as JSON) under its id, "<token>@<marketplace>"
//	                              (inbox.JobID; a job queued by an earlier version:
//	                              its token alone). NO TTL while pending; PX =
//	                              EVENT_TTL once posted or refused
//	webhook:{settle}:results      sorted set, the result jobs to post: id → due
//	                              (Unix ms); the settlers push an entry a lease
//	                              ahead when they take it. NO TTL
//	webhook:appdirect-nonce:<n>   string, an OAuth 1.0a nonce seen (<n>: hex of
//	                              half the SHA-256 of consumer key and nonce);
//	                              PX = the timestamp window
//
// <h> is the hex SHA-256 of the delivery key: the key may hold any bytes
// (it comes from a header), the hash is short, fixed and brace-free.
// <sub> is a subscription id, printable ASCII without spaces or
// braces (validated upstream), used as they are so an operator can find them.
type keys struct {
	prefix string
}

func deliveryHash(deliveryKey string) string {
	sum := sha256.Sum256([]byte(deliveryKey))
	return hex.EncodeToString(sum[:])
}

// delivery returns the record and lease keys of one delivery.
func (k keys) delivery(deliveryKey string) (record, lease string) {
	record = k.record(deliveryHash(deliveryKey))
	return record, record + ":lease"
}

// record is the key of the delivery record of hash h (deliveryHash), as
// the indexes hold it.
func (k keys) record(h string) string { return k.prefix + "delivery:{" + h + "}" }

func (k keys) account(subscriptionID string) string {
	return k.prefix + "account:{" + subscriptionID + "}"
}

func (k keys) accountIndex(accountIdentifier string) string {
	return k.prefix + "account-id:" + accountIdentifier
}

// copy is where a final outcome is also kept under its copy key (a hash
// of the copy's webhook-id and raw body), so that a byte-identical copy is
// answered before any JSON work. TTL: EVENT_TTL, like the record.
func (k keys) copy(copyKey string) string {
	return k.prefix + "copy:{" + copyKey + "}"
}

// attempts is a delivery's attempt history, in its record's slot.
func (k keys) attempts(deliveryKey string) string {
	rec, _ := k.delivery(deliveryKey)
	return rec + ":attempts"
}

// failures is the recent failures (sorted set: record hash by the time of
// the failed attempt).
func (k keys) failures() string { return k.prefix + "{deliveries}:failed" }

// counters are the outcome counters of the minute and the hour of at.
func (k keys) counters(at time.Time) (minute, hour string) {
	m := at.UnixMilli() / 60000
	return k.minuteCounter(m), k.hourCounter(m / 60)
}

func (k keys) minuteCounter(minute int64) string {
	return k.prefix + "{stats}:m:" + strconv.FormatInt(minute, 10)
}

func (k keys) hourCounter(hour int64) string {
	return k.prefix + "{stats}:h:" + strconv.FormatInt(hour, 10)
}

// session is a console session, by the hash of its id.
func (k keys) session(key string) string { return k.prefix + "console-session:" + key }

// deliveryIndex is a subscription's delivery index (sorted set: delivery
// hash by first seen), in the subscription's slot.
func (k keys) deliveryIndex(subscriptionID string) string {
	return k.prefix + "deliveries:{" + subscriptionID + "}:order"
}

// userIndex is a marketplace user's subscriptions (hash: subscription id
// → "1"), for GET /v1/subscriptions?user_id=N.
func (k keys) userIndex(userID int64) string {
	return k.prefix + "user:{" + strconv.FormatInt(userID, 10) + "}"
}

// settle returns the settle queue (due times) and the unsettled list
// (since when), in one slot.
func (k keys) settle() (due, since string) {
	return k.prefix + "{settle}:due", k.prefix + "{settle}:since"
}

func (k keys) lock(subscriptionID string) string {
	return k.prefix + "lock:{" + subscriptionID + "}"
}

// result returns an AppDirect result job's record key and the results
// queue, in the settle queue's slot. id is the job's Key: its marketplace
// and token (inbox.JobID), or, for a job queued before jobs were keyed by
// marketplace, its token alone; the queue's entries are these ids.
func (k keys) result(id string) (record, queue string) {
	return k.prefix + "{settle}:result:" + id, k.prefix + "{settle}:results"
}

// nonce is the key of an OAuth 1.0a nonce seen for a consumer key.
func (k keys) nonce(consumerKey, nonce string) string {
	sum := sha256.Sum256([]byte(consumerKey + "\x00" + nonce))
	return k.prefix + "appdirect-nonce:" + hex.EncodeToString(sum[:16])
}
