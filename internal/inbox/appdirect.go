package inbox

// This file is the inbox's door for AppDirect's own notifications: a
// notification names an event by its URL; the event is fetched, read as a
// SubscriptionEvent and received like any delivery, keyed by its event
// token. With asynchronous results, the notification is answered 202 once
// the event is recorded, and the result is posted to AppDirect later from
// a durable queue (Later), retried until AppDirect accepts it.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/canonjson"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/logctx"
)

// Marketplace is what the inbox needs of an AppDirect marketplace.
type Marketplace interface {
	// FetchEvent fetches the event a notification names.
	FetchEvent(ctx context.Context, eventURL string) ([]byte, error)
	// PostResult posts the result document of event token.
	PostResult(ctx context.Context, marketplace, token string, result []byte) error
}

// The failures of FetchEvent the inbox tells apart; the wiring makes the
// marketplace client's errors match them (errors.Is). Any other failure
// is transient: nothing was done, the notification is answered 503.
var (
	// ErrEventRefused: the marketplace refused to give the event (a 404,
	// another 4xx): answered CONFIGURATION_ERROR, not stored.
	ErrEventRefused = errors.New("the marketplace refused to give the event")
	// ErrEventUnreadable: what the marketplace answered is no event (not
	// JSON, too large, a redirect): answered INVALID_RESPONSE, not stored.
	ErrEventUnreadable = errors.New("the marketplace's reply is not an event")
	// ErrCredentialsRefused: the marketplace refused the service's own
	// credentials (401, 403): the service's setup, answered 503 until it
	// is fixed, as every refusal of our own setup is.
	ErrCredentialsRefused = errors.New("the marketplace refused the service's credentials")
	// ErrResultRefused: PostResult's failure when the marketplace itself
	// will not take the result whatever the retries (a 4xx on its result
	// route other than 401, 403, 408 and 429): the job ends refused, off
	// the queue, instead of being posted again for ever. A refusal of our
	// own setup is not this: it is retried until fixed.
	ErrResultRefused = errors.New("the marketplace refused the result")
)

// Owners finds the subscription an accountIdentifier names.
type Owners interface {
	AccountByIdentifier(ctx context.Context, accountIdentifier string) (events.Account, error)
}

// ResultJob is an event answered 202: where to fetch it again, and its
// result once known, to post until AppDirect accepts it. It holds ids and
// the result document, nothing personal (the event is fetched again when
// it is processed).
type ResultJob struct {
	// ID is the job's id, JobID of its marketplace and token: its record
	// and its entry on the queue. Empty in a job queued before jobs were
	// keyed by marketplace: its id is then its token (Key).
	ID          string    `json:"id,omitempty"`
	Token       string    `json:"token"`
	EventURL    string    `json:"eventUrl"`
	Marketplace string    `json:"marketplace"` // the configured base URL the event URL matched
	Product     string    `json:"product"`
	State       string    `json:"state"`            // JobPending, JobAnswered, JobPosted or JobRefused
	Result      []byte    `json:"result,omitempty"` // the result document, once known
	Attempts    int       `json:"attempts,omitempty"`
	LastError   string    `json:"lastError,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	Due         time.Time `json:"due,omitzero"`
}

// The states of a ResultJob.
const (
	JobPending  = "pending"  // the event is to be processed
	JobAnswered = "answered" // its result is known, to be posted
	JobPosted   = "posted"   // AppDirect accepted the result: never posted again
	JobRefused  = "refused"  // AppDirect will not take the result: never posted again
)

// Done reports a job that is over: off the queue, never written again.
func (j ResultJob) Done() bool { return j.State == JobPosted || j.State == JobRefused }

// Key is the job's id: its record and its entry on the queue (ID, or
// the token alone for a job queued before jobs had an ID).
func (j ResultJob) Key() string {
	if j.ID != "" {
		return j.ID
	}
	return j.Token
}

// JobID is the id of the job of an AppDirect event: its token and the
// marketplace that gave it (the configured base URL, canonical, without
// "https://"), as "token@acme.appdirect.com". Two marketplaces may give
// the same token: each event is a job of its own.
func JobID(marketplace, token string) string {
	return token + "@" + strings.TrimPrefix(marketplace, "https://")
}

// JobToken is the event token of a job id (JobID, or a token alone).
func JobToken(id string) string {
	token, _, _ := strings.Cut(id, "@") // no token holds "@"
	return token
}

// AppDirectKey is the delivery key of an AppDirect event:
// "appdirect:" and its JobID. Its token alone ("appdirect:<token>") keyed
// the deliveries before, and still keys those of the jobs queued then.
func AppDirectKey(marketplace, token string) string {
	return appdirectPrefix + JobID(marketplace, token)
}

const appdirectPrefix = "appdirect:"

// AppDirectKeys is every delivery key an event token may have, one per
// marketplace (canonical base URLs), and the token's alone (a delivery
// recorded before keys named the marketplace): the read API's and the
// console's search by event token. None for a "token" holding "@": no
// token does, and "x@acme.appdirect.com" alone would be token x's key.
func AppDirectKeys(marketplaces []string, token string) []string {
	if strings.Contains(token, "@") {
		return nil
	}
	keys := make([]string, 0, len(marketplaces)+1)
	for _, m := range marketplaces {
		keys = append(keys, AppDirectKey(m, token))
	}
	return append(keys, appdirectPrefix+token)
}

// AppDirectToken is the event token of an AppDirect delivery key; ok is
// false for a key of the Q2 door.
func AppDirectToken(key string) (token string, ok bool) {
	rest, ok := strings.CutPrefix(key, appdirectPrefix)
	return JobToken(rest), ok
}

// Jobs keeps the results to post later (the store), each under its
// Key.
type Jobs interface {
	// EnqueueResult records a job and queues it, unless its key has one,
	// or, for a job with an ID, a job an earlier version queued under its
	// token alone from the same marketplace is there (the same event).
	EnqueueResult(ctx context.Context, j ResultJob) (created bool, err error)
	// Result is the job of id (a ResultJob's Key).
	Result(ctx context.Context, id string) (ResultJob, error)
	// SaveResult writes a job: due again, or posted and kept for ttl.
	SaveResult(ctx context.Context, j ResultJob, ttl time.Duration) error
	// Lock serialises the work on one job across replicas.
	Lock(ctx context.Context, name string, lease, wait time.Duration) (token string, unlock func(), err error)
}

// Notification is an AppDirect notification the door has authenticated
// and whose event URL it has checked against the configured marketplaces.
type Notification struct {
	EventURL    string
	Token       string // the event's token, the last segment of EventURL
	Marketplace string // the configured base URL EventURL is in
	Product     string // the product AppDirect's events provision
	Async       bool   // APPDIRECT_ASYNC: answer 202 now, post the result later

	key string // the delivery key; "": AppDirectKey (a job queued before sets its own)
}

// deliveryKey is the key n's event is received under.
func (n Notification) deliveryKey() string {
	if n.key != "" {
		return n.key
	}
	return AppDirectKey(n.Marketplace, n.Token)
}

// AppDirect is what the inbox needs for AppDirect's notifications; set by
// WithAppDirect.
type AppDirect struct {
	Marketplace Marketplace
	Owners      Owners
	Jobs        Jobs // the asynchronous results' queue
	// Answer works one queued result, as the settler does (nil:
	// AnswerLater with the inbox's TTL); the wiring may wrap it, to trace
	// each result as a trace of its own.
	Answer func(ctx context.Context, id string) error
	// MaxAtOnce bounds the results worked at once in the background,
	// right after their 202 (the service gives MAX_IN_FLIGHT, the bound
	// of the deliveries); past it, a job is left to the settlers, due at
	// once. 0: DefaultMaxAtOnce.
	MaxAtOnce int

	soon chan struct{} // a slot per pass under way in the background
}

// DefaultMaxAtOnce is AppDirect.MaxAtOnce when not set (MAX_IN_FLIGHT's
// default).
const DefaultMaxAtOnce = 256

// WithAppDirect returns in, able to receive AppDirect's notifications.
func (in *Inbox) WithAppDirect(a AppDirect) *Inbox {
	if a.MaxAtOnce <= 0 {
		a.MaxAtOnce = DefaultMaxAtOnce
	}
	a.soon = make(chan struct{}, a.MaxAtOnce)
	in.appdirect = &a
	return in
}

// Notify receives one AppDirect notification: the event is fetched and
// received as a delivery keyed by its token (every redelivery rule holds),
// or, asynchronously, recorded and answered 202.
func (in *Inbox) Notify(ctx context.Context, n Notification) (Answer, Copy, error) {
	var info Copy
	if in.appdirect == nil {
		return answerOf(events.Refusal(events.ConfigurationError, "AppDirect notifications are not configured")), info, nil
	}
	d, reply, ok := in.fetch(ctx, n)
	if !ok {
		return reply, info, nil
	}
	info = Copy{Key: d.Key, EventType: string(d.Event.EventType), Subscription: d.Event.SubscriptionID}
	if n.Async && d.Event.EventType != events.SubscriptionNotice && !d.Event.Stateless() {
		return in.later(ctx, n), info, nil
	}
	r, err := in.Receive(ctx, d)
	return r, info, err
}

// fetch fetches the event of n and reads it as a delivery. ok is false
// with the reply when there is none to receive.
func (in *Inbox) fetch(ctx context.Context, n Notification) (Delivery, Answer, bool) {
	log := logctx.Logger(ctx, in.log)
	// PROCESS_TIMEOUT bounds the fetch as it bounds processing: AppDirect
	// waits about 5 s for a reply, and the fetch's own attempts (several
	// of 10 s) would outlast the server's write timeout.
	fctx, cancel := context.WithTimeout(ctx, in.cfg.ProcessTimeout)
	defer cancel()
	body, err := in.appdirect.Marketplace.FetchEvent(fctx, n.EventURL)
	switch {
	case errors.Is(err, ErrCredentialsRefused):
		log.Error("the marketplace refused the service's credentials for the event; check APPDIRECT_*", zap.Error(err))
		return Delivery{}, answerOf(events.Outage("the marketplace refused the service's credentials; nothing was done, send the notification again", 30*time.Second)), false
	case errors.Is(err, ErrEventRefused):
		log.Warn("the marketplace refused to give the event", zap.Error(err))
		return Delivery{}, notStored(events.ConfigurationError, "the marketplace refused to give the event; nothing was done"), false
	case errors.Is(err, ErrEventUnreadable):
		log.Warn("the marketplace's reply is not an event", zap.Error(err))
		return Delivery{}, notStored(events.InvalidResponse, "what the marketplace answered for the event is not an event; nothing was done"), false
	case err != nil:
		log.Warn("fetching the event failed", zap.Error(err))
		return Delivery{}, answerOf(events.Outage("the event could not be fetched from the marketplace; nothing was done, send the notification again", 5*time.Second)), false
	}
	ev, err := events.DecodeAppDirect(body)
	if err != nil {
		return Delivery{}, notStored(events.InvalidResponse, "the event cannot be read: "+err.Error()), false
	}
	if ev.SubscriptionID, err = in.subscriptionOf(ctx, n, ev); err != nil {
		log.Warn("finding the event's subscription failed", zap.Error(err))
		return Delivery{}, outage("the account store is unavailable; nothing was done, send the notification again"), false
	}
	if err := events.Validate(ev); err != nil {
		return Delivery{}, notStored(events.InvalidResponse, "the event is not valid: "+err.Error()), false
	}
	fp, err := canonjson.Fingerprint(body)
	if err != nil {
		return Delivery{}, notStored(events.InvalidResponse, "the event cannot be read: "+err.Error()), false
	}
	return Delivery{Key: n.deliveryKey(), Fingerprint: fp, Event: ev, Product: n.Product}, Answer{}, true
}

// subscriptionOf is the subscription an AppDirect event is about. AppDirect
// names none: an ORDER's is derived from its marketplace and event token
// (a redelivery of it is the same subscription, and no one who has not
// seen the ORDER's reply can guess it), and is what the ORDER answers as
// its accountIdentifier; a later event names it as its accountIdentifier,
// so it is found even when Redis has forgotten the subscription. An older
// record's identifier (a target's id) is found through its index, if an
// AppDirect ORDER made it. An event naming anything else gets an id of
// its own (derived the same way), under which nothing exists: an
// identifier of a subscription the Q2 door made (a Q2 UserID: a small
// number, easily guessed) is not this event's, and provisioning's owner
// check refuses it, unchanged.
func (in *Inbox) subscriptionOf(ctx context.Context, n Notification, ev *events.SubscriptionEvent) (string, error) {
	if id := ev.AccountIdentifier(); id != "" && ev.EventType != events.SubscriptionOrder {
		if isSubscriptionID(id) { // the accountIdentifier the ORDER answered: the id itself
			return id, nil
		}
		// An older record's identifier (a target's id): its index.
		a, err := in.appdirect.Owners.AccountByIdentifier(ctx, id)
		switch {
		case err == nil && strings.HasPrefix(a.SubscriptionID, subscriptionPrefix):
			return a.SubscriptionID, nil
		case err == nil:
			logctx.Logger(ctx, in.log).Warn("an AppDirect event names the account of a subscription the Q2 door made; it is refused",
				zap.String("named_subscription", a.SubscriptionID))
		case !errors.Is(err, events.ErrNotFound):
			return "", err
		}
	}
	sum := sha256.Sum256([]byte(n.Marketplace + "\n" + n.Token))
	return subscriptionPrefix + hex.EncodeToString(sum[:16]), nil
}

// subscriptionPrefix starts the id of every subscription an AppDirect
// ORDER made, and of no other.
const subscriptionPrefix = "ad-"

// isSubscriptionID reports whether id is one subscriptionOf derives:
// subscriptionPrefix and 32 lowercase hex digits.
func isSubscriptionID(id string) bool {
	h, ok := strings.CutPrefix(id, subscriptionPrefix)
	if !ok || len(h) != 32 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// later records the event's job and answers 202; a redelivered
// notification finds its job and is answered 202 again.
func (in *Inbox) later(ctx context.Context, n Notification) Answer {
	// With a background slot, due once this replica's own pass
	// (answerSoon) could have finished: the queue's settler takes it only
	// if that pass did not (a crash). Without one (MaxAtOnce passes under
	// way), due now: the settlers take it at their next look, one pass at
	// a time each, so that a flood of notifications is not as many
	// passes at once.
	now := time.Now().UTC()
	soon := in.appdirect.takeSlot()
	due := now
	if soon {
		due = now.Add(passLease(in.cfg.ProcessTimeout))
	}
	j := ResultJob{ID: JobID(n.Marketplace, n.Token), Token: n.Token, EventURL: n.EventURL, Marketplace: n.Marketplace,
		Product: n.Product, State: JobPending, Created: now, Updated: now, Due: due}
	created, err := in.appdirect.Jobs.EnqueueResult(ctx, j)
	switch {
	case err != nil:
		in.appdirect.releaseSlot(soon)
		logctx.Logger(ctx, in.log).Warn("recording an event to answer later failed", zap.Error(err))
		return outage("the event could not be recorded; nothing was done, send the notification again")
	case created && soon:
		in.answerSoon(ctx, j.ID)
	default:
		in.appdirect.releaseSlot(soon)
	}
	return Answer{Kind: events.Accepted, Body: []byte(`{"success":true}`), Code: "ACCEPTED"}
}

// takeSlot takes a background pass's slot, if one is free; it never waits.
func (a *AppDirect) takeSlot() bool {
	select {
	case a.soon <- struct{}{}:
		return true
	default:
		return false
	}
}

// releaseSlot gives back the slot taken (taken false: none).
func (a *AppDirect) releaseSlot(taken bool) {
	if taken {
		<-a.soon
	}
}

// answerSoon works a job just queued at once, in the background, instead
// of at the settler's next look at the queue, holding the slot later took
// until it is done. The queue stays the record: if this process dies
// first, any replica's settler answers it.
func (in *Inbox) answerSoon(ctx context.Context, id string) {
	in.soon.Add(1)
	go func() {
		defer in.soon.Done()
		defer in.appdirect.releaseSlot(true)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.ProcessTimeout)
		defer cancel()
		answer := in.appdirect.Answer
		if answer == nil {
			answer = func(ctx context.Context, id string) error { return in.AnswerLater(ctx, id, in.cfg.TTL) }
		}
		if err := answer(ctx, id); err != nil && !errors.Is(err, events.ErrBusy) {
			logctx.Logger(ctx, in.log).Warn("answering an event at once failed; the settler answers it later", zap.Error(err))
		}
	}()
}

// Wait waits for the results being answered at once (answerSoon): the
// drain calls it before Redis closes.
func (in *Inbox) Wait() { in.soon.Wait() }

// AnswerLater works on one queued result, by its id (a ResultJob's Key:
// the settler calls it with each id due on the queue): the event is
// processed as a delivery (fetched again, received: stored, deduped),
// then its result posted until AppDirect accepts it. Under a lock per
// job, so two replicas never post one result at once; a result AppDirect
// accepted is marked posted and never posted again.
func (in *Inbox) AnswerLater(ctx context.Context, id string, ttl time.Duration) error {
	jobs := in.appdirect.Jobs
	_, unlock, err := jobs.Lock(ctx, "appdirect-result/"+id, passLease(in.cfg.ProcessTimeout), 0)
	if err != nil {
		return err
	}
	defer unlock()
	j, err := jobs.Result(ctx, id)
	if err != nil {
		return err
	}
	log := logctx.Logger(ctx, in.log).With(zap.String("event_token", j.Token), zap.String("marketplace", j.Marketplace))
	now := time.Now().UTC()
	// What this pass did is recorded even when its time ran out doing it
	// (a post accepted at the deadline must be marked posted, or the next
	// pass posts it again), as process records an outcome.
	save := func(j ResultJob) error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeBudget)
		defer cancel()
		return jobs.SaveResult(sctx, j, ttl)
	}
	if j.State == JobPending {
		n := Notification{EventURL: j.EventURL, Token: j.Token, Marketplace: j.Marketplace, Product: j.Product}
		if j.ID == "" { // queued before jobs were keyed by marketplace: its delivery has the token's key
			n.key = appdirectPrefix + j.Token
		}
		d, reply, ok := in.fetch(ctx, n)
		var eventType, subscription string
		if ok { // else there is no event: fetch logged why, and reply says it
			d.later = true
			if reply, err = in.Receive(ctx, d); err != nil {
				return err
			}
			eventType, subscription = string(d.Event.EventType), d.Event.SubscriptionID
		}
		log.Info("delivery answered later", zap.String("key", n.deliveryKey()), zap.String("event_type", eventType),
			zap.String("subscription", subscription), zap.String("outcome", reply.Code), zap.String("reason", reply.Reason), zap.Bool("replayed", reply.Replayed))
		switch reply.Kind {
		case events.Final, events.NotStored:
			j.State, j.Result, j.Attempts, j.LastError = JobAnswered, reply.Body, 0, ""
		default: // not settled now: processed again later
			j.Attempts++
			j.LastError, j.Due, j.Updated = reply.Code, now.Add(laterIn(j.Attempts)), now
			return save(j)
		}
	}
	if j.State != JobAnswered {
		return nil
	}
	// The post has a budget of its own, not what processing left of the
	// pass: a post cut short may have been accepted, and is posted again.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.ProcessTimeout)
	defer cancel()
	if err := in.appdirect.Marketplace.PostResult(pctx, j.Marketplace, j.Token, j.Result); errors.Is(err, ErrResultRefused) {
		// Posting it again gets the same answer: it ends here, kept for
		// EVENT_TTL to be looked at, and said at error level.
		j.Attempts++
		j.State, j.LastError, j.Due, j.Updated = JobRefused, err.Error(), time.Time{}, now
		log.Error("AppDirect refused a result; it is not posted again", zap.Int("attempts", j.Attempts), zap.Error(err))
		return save(j)
	} else if err != nil {
		j.Attempts++
		j.LastError, j.Due, j.Updated = err.Error(), now.Add(laterIn(j.Attempts)), now
		log.Warn("posting a result failed; it is posted again later", zap.Int("attempts", j.Attempts), zap.Error(err))
		return save(j)
	}
	j.State, j.Updated, j.Due = JobPosted, now, time.Time{}
	log.Info("result posted")
	return save(j)
}

// passLease is how long one pass of AnswerLater may take, and so how long
// its lock holds and how long a job just queued waits for the pass begun
// at once: the fetch (PROCESS_TIMEOUT), the delivery (PROCESS_TIMEOUT,
// then storeBudget to record it), the post (PROCESS_TIMEOUT of its own)
// and the job's save (storeBudget), and a second. A shorter lease let a
// second pass start while the first was still posting: two posts.
func passLease(processTimeout time.Duration) time.Duration {
	return 3*processTimeout + 2*storeBudget + time.Second
}

// laterIn is how long a job that could not be done now waits: about 10 s,
// doubling, up to an hour.
func laterIn(attempts int) time.Duration {
	d := time.Hour
	if shift := attempts - 1; shift >= 0 && shift < 16 {
		d = min(10*time.Second<<shift, time.Hour)
	}
	return d
}

// notStored is a failure answered as it is, not stored: a later copy of
// the notification is processed again.
func notStored(code events.ErrorCode, message string) Answer {
	return answerOf(events.Outcome{Kind: events.NotStored, Reply: events.Failure(code, message)})
}
