package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// The read API's indexes are written in the same step as what they
// describe: one round trip writes the account and its user index (and a
// delivery's record and its log entry), so the answer is right the moment
// an event is answered, even if the process dies right after. On Cluster
// the indexes live in other slots (keys.go), so each is its own step, in
// order, before the call returns: the answer is still right the moment the
// event is answered.
func TestIndexesAreWrittenInOneStep(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		a := testAccount("sub-u1", "501")
		a.UserID = 77
		token, unlock, err := b.r.Lock(ctx, a.SubscriptionID, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		if err := b.r.SaveAccount(ctx, token, a); err != nil { // loads the script
			t.Fatal(err)
		}
		trips := countRoundTrips(b.r, "")
		a.Status = events.AccountCancelled
		if err := b.r.SaveAccount(ctx, token, a); err != nil {
			t.Fatal(err)
		}
		// Cluster: the account, then the identifier index, then the
		// user index, each in its slot.
		want := int64(1)
		if b.r.cluster() {
			want = 3
		}
		if n := trips.n.Load(); n != want {
			t.Errorf("SaveAccount took %d round trips, want %d (account and indexes in one script where one slot holds them)", n, want)
		}
		got, err := b.r.AccountsOfUser(ctx, 77)
		if err != nil || len(got) != 1 || got[0].Status != events.AccountCancelled {
			t.Fatalf("AccountsOfUser right after the save = %+v, %v", got, err)
		}
		if by, err := b.r.AccountByIdentifier(ctx, "501"); err != nil || by.SubscriptionID != "sub-u1" {
			t.Fatalf("AccountByIdentifier = %+v, %v", by, err)
		}

		req := claimReq("id:one-step", fpA)
		req.Subscription = "sub-u1"
		c := mustClaim(t, b, req, inbox.ClaimFresh)
		for _, s := range []*redis.Script{completeScript, failedScript, countScript} {
			if err := s.Load(ctx, b.r.client).Err(); err != nil {
				t.Fatal(err)
			}
		}
		trips = countRoundTrips(b.r, "")
		mustComplete(t, b, req.Key, c.Token, inbox.Result{Subscription: "sub-u1", Kind: events.Final, Body: []byte(`{}`), Code: "SUCCESS",
			Attempt: inbox.Attempt{Status: 200, Calls: []events.Call{{System: "q2", Action: "Enrollment", Status: 200}}}})
		// The record, its history, the recent failures and the counters
		// in one script where one slot holds them; on Cluster the record
		// script, then, once it applied the outcome, the others in one
		// pipeline.
		want = 1
		if b.r.cluster() {
			want = 2
		}
		if n := trips.n.Load(); n != want {
			t.Errorf("Complete took %d round trips, want %d", n, want)
		}
		log, err := b.r.Deliveries(ctx, "sub-u1")
		if err != nil || len(log) != 1 || log[0].State != "done" || log[0].Code != "SUCCESS" ||
			len(log[0].History) != 1 || len(log[0].History[0].Calls) != 1 || log[0].History[0].Status != 200 {
			t.Fatalf("Deliveries right after Complete = %+v, %v", log, err)
		}
		hour, day, err := b.r.OutcomeCounts(ctx, time.Now())
		if err != nil || hour["SUCCESS"] != 1 || day["SUCCESS"] != 1 {
			t.Fatalf("OutcomeCounts right after Complete = %v, %v, %v", hour, day, err)
		}
	})
}

func TestAccountsOfUser(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		for i, product := range []string{"Plus", "Desk"} {
			a := testAccount(fmt.Sprintf("sub-user-%d", i), fmt.Sprint(600+i))
			a.UserID, a.Product = 88, product
			a.CreatedAt = a.CreatedAt.Add(time.Duration(i) * time.Hour)
			if err := saveLocked(ctx, b.r, a); err != nil {
				t.Fatal(err)
			}
		}
		got, err := b.r.AccountsOfUser(ctx, 88)
		if err != nil || len(got) != 2 || got[0].Product != "Plus" || got[1].Product != "Desk" {
			t.Fatalf("AccountsOfUser = %+v, %v; want Plus then Desk", got, err)
		}
		if none, err := b.r.AccountsOfUser(ctx, 89); err != nil || len(none) != 0 {
			t.Fatalf("unknown user: %+v, %v", none, err)
		}
	})
}

// The delivery log counts attempts (processings) and copies (answered from
// the stored outcome), says final or released, lists newest first, and is
// bounded: a storm of one subscription's events keeps the newest
// DeliveriesPerSubscription, each no longer than EVENT_TTL.
func TestDeliveryLog(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		req := func(key string) inbox.ClaimRequest {
			r := claimReq(key, fpA)
			r.Subscription = "sub-log"
			return r
		}
		first := req("id:log-1")
		c := mustClaim(t, b, first, inbox.ClaimFresh)
		if err := b.r.Release(ctx, first.Key, c.Token, inbox.Result{Subscription: "sub-log", Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: time.Second}); err != nil {
			t.Fatal(err)
		}
		log, _ := b.r.Deliveries(ctx, "sub-log")
		if len(log) != 1 || log[0].State != "released" || log[0].Kind != "transient" || log[0].Attempts != 1 {
			t.Fatalf("after a transient outcome: %+v", log)
		}
		c = mustClaim(t, b, first, inbox.ClaimFresh)
		mustComplete(t, b, first.Key, c.Token, inbox.Result{Subscription: "sub-log", Kind: events.Final, Body: []byte(`{}`), Code: "SUCCESS", Duration: 40 * time.Millisecond})
		mustClaim(t, b, first, inbox.ClaimDone)
		mustClaim(t, b, first, inbox.ClaimDone)
		b.advance(5 * time.Millisecond)
		second := req("id:log-2")
		mustClaim(t, b, second, inbox.ClaimFresh)

		log, err := b.r.Deliveries(ctx, "sub-log")
		if err != nil || len(log) != 2 {
			t.Fatalf("Deliveries = %+v, %v", log, err)
		}
		if log[0].Key != "id:log-2" || log[0].State != "processing" {
			t.Errorf("newest first: %+v", log[0])
		}
		want := inbox.DeliverySummary{Key: "id:log-1", EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-log", State: "done",
			Kind: "final", Code: "SUCCESS", Attempts: 2, Copies: 2, DurationMS: 40}
		got := log[1]
		got.First, got.Last = 0, 0
		if len(got.History) != 2 || got.History[0].Code != "TRANSPORT_ERROR" || got.History[1].Code != "SUCCESS" {
			t.Errorf("the answered delivery's history: %+v, want its two attempts", got.History)
		}
		got.History = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("the answered delivery:\n got %+v\nwant %+v", got, want)
		}

		for i := range DeliveriesPerSubscription + 5 {
			mustClaim(t, b, req(fmt.Sprintf("id:storm-%d", i)), inbox.ClaimFresh)
		}
		log, _ = b.r.Deliveries(ctx, "sub-log")
		if len(log) != DeliveriesPerSubscription {
			t.Errorf("after a storm the log holds %d deliveries, want the cap %d", len(log), DeliveriesPerSubscription)
		}
		ord := b.r.keys.deliveryIndex("sub-log")
		if d := b.pttl(t, ord); d <= 0 || d > testTTL {
			t.Errorf("%s: PTTL %v, want within EVENT_TTL", ord, d)
		}
	})
}

// A final outcome is also kept under its copy key: a byte-identical copy is
// answered in one round trip and counted in the record and the log like a
// copy answered by a claim; a transient outcome keeps nothing there.
func TestCopyKey(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		req := claimReq("id:copy-1", fpA)
		req.Subscription = "sub-copy"
		if _, ok, err := b.r.Copy(ctx, "copy-key-1"); ok || err != nil {
			t.Fatalf("before any outcome: %v %v", ok, err)
		}
		c := mustClaim(t, b, req, inbox.ClaimFresh)
		if err := b.r.Release(ctx, req.Key, c.Token, inbox.Result{Subscription: "sub-copy", CopyKey: "copy-key-1", Kind: events.Transient, Code: "TRANSPORT_ERROR"}); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := b.r.Copy(ctx, "copy-key-1"); ok {
			t.Fatal("a transient outcome was kept under the copy key")
		}
		c = mustClaim(t, b, req, inbox.ClaimFresh)
		mustComplete(t, b, req.Key, c.Token, inbox.Result{Subscription: "sub-copy", CopyKey: "copy-key-1", EventType: "SUBSCRIPTION_ORDER",
			Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"9"}`), Code: "SUCCESS"})
		trips := countRoundTrips(b.r, "")
		got, ok, err := b.r.Copy(ctx, "copy-key-1")
		if err != nil || !ok || got.Body != `{"success":true,"accountIdentifier":"9"}` || got.Key != "id:copy-1" || got.Subscription != "sub-copy" {
			t.Fatalf("Copy = %+v %v %v", got, ok, err)
		}
		if n := trips.n.Load(); n > 2 { // EVALSHA, and EVAL the first time
			t.Errorf("Copy took %d round trips", n)
		}
		if b.r.cluster() {
			// On Cluster the record is in another slot than the copy key:
			// the copy key holds the whole answer, a plain GET answers,
			// and the record's counters are not moved (keys.go).
			var stored inbox.Copy
			v, _ := b.r.client.Get(ctx, b.r.keys.copy("copy-key-1")).Result()
			if err := json.Unmarshal([]byte(v), &stored); err != nil || stored != got {
				t.Errorf("the copy key holds %q, want the answer %+v as JSON", v, got)
			}
		} else {
			if rec, _ := b.r.Delivery(ctx, req.Key); rec.Copies != 1 {
				t.Errorf("the record counts %d copies, want 1", rec.Copies)
			}
			// The reply is stored once, in the record: the copy key holds
			// the record's hash. One written by the previous version (JSON
			// with the hash as "h") is still answered, from the record.
			if v, _ := b.r.client.Get(ctx, b.r.keys.copy("copy-key-1")).Result(); v != deliveryHash(req.Key) {
				t.Errorf("the copy key holds %q, want the record hash %q", v, deliveryHash(req.Key))
			}
			old := `{"k":"id:copy-1","t":"SUBSCRIPTION_ORDER","s":"sub-copy","b":"stale","h":"` + deliveryHash(req.Key) + `"}`
			if err := b.r.client.Set(ctx, b.r.keys.copy("copy-key-old"), old, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if got, ok, err := b.r.Copy(ctx, "copy-key-old"); err != nil || !ok || got.Body != `{"success":true,"accountIdentifier":"9"}` {
				t.Errorf("Copy of a copy key in the previous layout = %+v %v %v", got, ok, err)
			}
			if log, _ := b.r.Deliveries(ctx, "sub-copy"); len(log) != 1 || log[0].Copies != 2 {
				t.Errorf("the log: %+v", log)
			}
		}
		if _, ok, _ := b.r.Copy(ctx, "copy-key-other-bytes"); ok {
			t.Error("another copy key found the outcome")
		}
		// The record gone (EVENT_TTL): the copy is a miss, the slow path
		// decides. On Cluster the copy key expires with it (the same TTL)
		// and answers alone until then.
		rec, _ := b.r.keys.delivery(req.Key)
		if err := b.r.client.Del(ctx, rec).Err(); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := b.r.Copy(ctx, "copy-key-1"); ok != b.r.cluster() {
			t.Errorf("a copy whose record is gone: answered %v", ok)
		}
	})
}

// DeliveriesByKeys reads several deliveries in one round trip: those
// found, in the order asked.
func TestDeliveriesByKeys(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		for _, key := range []string{"id:by-keys-1", "id:by-keys-2"} {
			c := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
			mustComplete(t, b, key, c.Token, okResult)
		}
		trips := countRoundTrips(b.r, "")
		got, err := b.r.DeliveriesByKeys(ctx, []string{"id:by-keys-2", "id:nobody", "id:by-keys-1"})
		if err != nil || len(got) != 2 || got[0].Key != "id:by-keys-2" || got[1].Key != "id:by-keys-1" || got[0].State != "done" {
			t.Fatalf("DeliveriesByKeys = %+v, %v; want by-keys-2 then by-keys-1, done", got, err)
		}
		if n := trips.n.Load(); n != 1 {
			t.Errorf("%d round trips, want 1", n)
		}
	})
}
