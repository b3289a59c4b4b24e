package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// attemptAt is a processed copy's outcome at a given time, with a call.
func attemptAt(at time.Time, kind events.Kind, code, reason string) inbox.Result {
	return inbox.Result{Subscription: "sub-1", Kind: kind, Body: []byte(`{}`), Code: code, Duration: 30 * time.Millisecond,
		Attempt: inbox.Attempt{At: at, Status: 503, Reason: reason, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
			Calls: []events.Call{{System: "q2", Action: "Enrollment", Status: 503, Duration: 12 * time.Millisecond, RequestID: "req-1"}}}}
}

// process claims key and records one attempt at it.
func process(t *testing.T, b *backend, key string, res inbox.Result) {
	t.Helper()
	c := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
	if res.Kind == events.Final {
		mustComplete(t, b, key, c.Token, res)
		return
	}
	if err := b.r.Release(ctxT(t), key, c.Token, res); err != nil {
		t.Fatal(err)
	}
}

// Each processed attempt joins the delivery's history with what it sent,
// why and the calls it made; copies answered from the record do not. The
// history keeps the latest AttemptsKept and counts the others, and lives
// as long as the record.
func TestAttemptHistory(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		const key = "id:history"
		t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		for i := range 3 {
			process(t, b, key, attemptAt(t0.Add(time.Duration(i)*time.Second), events.Transient, "TRANSPORT_ERROR", "q2.provision: HTTP 503"))
		}
		ok := attemptAt(t0.Add(3*time.Second), events.Final, "SUCCESS", "")
		ok.Attempt.Status, ok.Attempt.Calls[0].Status, ok.Attempt.TraceID = 200, 200, ""
		process(t, b, key, ok)
		mustClaim(t, b, claimReq(key, fpA), inbox.ClaimDone) // a copy: not an attempt

		d, err := b.r.DeliveryByKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if d.Attempts != 4 || d.Copies != 1 || len(d.History) != 4 || d.Dropped != 0 || d.Code != "SUCCESS" {
			t.Fatalf("delivery %+v: want 4 attempts kept, 1 copy", d)
		}
		first, last := d.History[0], d.History[3]
		wantFirst := inbox.Attempt{At: t0.UTC(), Duration: 30 * time.Millisecond, Status: 503, Code: "TRANSPORT_ERROR", Kind: events.Transient,
			Reason: "q2.provision: HTTP 503", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
			Calls: []events.Call{{System: "q2", Action: "Enrollment", Status: 503, Duration: 12 * time.Millisecond, RequestID: "req-1"}}}
		if fmt.Sprint(first) != fmt.Sprint(wantFirst) {
			t.Errorf("first attempt\n got %+v\nwant %+v", first, wantFirst)
		}
		if last.Code != "SUCCESS" || last.Kind != events.Final || last.Status != 200 || last.Reason != "" || last.TraceID != "" {
			t.Errorf("last attempt %+v", last)
		}
		rec, _ := b.r.keys.delivery(key)
		if hist, rttl := b.pttl(t, b.r.keys.attempts(key)), b.pttl(t, rec); hist <= 0 || rttl-hist > time.Second || hist-rttl > time.Second {
			t.Errorf("history PTTL %v, record's %v: want the same", hist, rttl)
		}

		const busy = "id:busy-history"
		for i := range inbox.AttemptsKept + 3 {
			process(t, b, busy, attemptAt(t0.Add(time.Duration(i)*time.Second), events.Transient, "TRANSPORT_ERROR", fmt.Sprint("attempt ", i)))
		}
		d, err = b.r.DeliveryByKey(ctx, busy)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.History) != inbox.AttemptsKept || d.Dropped != 3 || d.History[0].Reason != "attempt 3" ||
			d.History[inbox.AttemptsKept-1].Reason != fmt.Sprint("attempt ", inbox.AttemptsKept+2) {
			t.Errorf("after %d attempts: %d kept (first %q), %d dropped; want the latest %d and 3 dropped",
				inbox.AttemptsKept+3, len(d.History), d.History[0].Reason, d.Dropped, inbox.AttemptsKept)
		}

		if _, err := b.r.DeliveryByKey(ctx, "id:never"); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("an unknown delivery: %v, want ErrNotFound", err)
		}
	})
}

// The recent failures list the deliveries whose latest attempt failed,
// newest first, in pages that follow each other without a gap or a
// repeat (ties on one millisecond included); a later success takes a
// delivery off; since bounds the list; a forged cursor is refused.
func TestFailures(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Millisecond)
		var want []string // newest first
		for i := range 7 {
			key := fmt.Sprintf("id:fail-%d", i)
			at := t0.Add(time.Duration(i/2) * time.Second) // pairs on one millisecond
			process(t, b, key, attemptAt(at, events.Final, "FORBIDDEN", "order: subscription cancelled"))
			want = append([]string{key}, want...)
		}
		process(t, b, "id:fail-old", attemptAt(t0.Add(-2*time.Hour), events.Transient, "TRANSPORT_ERROR", ""))
		process(t, b, "id:recovered", attemptAt(t0, events.Transient, "TRANSPORT_ERROR", ""))
		process(t, b, "id:recovered", attemptAt(t0.Add(time.Minute), events.Final, "SUCCESS", ""))

		var got []string
		cursor, pages := "", 0
		for {
			page, next, err := b.r.Failures(ctx, t0.Add(-time.Minute), cursor, 3)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, d := range page {
				got = append(got, d.Key)
			}
			if next == "" || pages > 10 {
				break
			}
			cursor = next
		}
		// Ties come in the store's order; the set must be whole and once.
		if len(got) != len(want) || strings.Join(sortedCopy(got), ",") != strings.Join(sortedCopy(want), ",") {
			t.Fatalf("pages gave %v, want %v", got, want)
		}
		if got[0] != "id:fail-6" && got[0] != "id:fail-5" && got[0] != "id:fail-4" {
			t.Errorf("newest first: got %v", got)
		}
		if pages != 3 {
			t.Errorf("%d pages of 3 for 7 failures, want 3", pages)
		}
		if n, err := b.r.client.ZCard(ctx, b.r.keys.failures()).Result(); err != nil || n != 8 {
			t.Errorf("the failures set holds %d, %v; want 8 (a success takes its delivery off)", n, err)
		}
		all, _, err := b.r.Failures(ctx, t0.Add(-3*time.Hour), "", 100)
		if err != nil || len(all) != 8 {
			t.Errorf("since 3 h ago: %d failures, %v; want 8 (the old one too)", len(all), err)
		}
		if _, _, err := b.r.Failures(ctx, t0, "not-a-cursor", 3); !errors.Is(err, inbox.ErrBadCursor) {
			t.Errorf("a forged cursor: %v, want ErrBadCursor", err)
		}
	})
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// The outcome counters count a delivery once, under its latest outcome:
// a retried delivery leaves its earlier attempt's counters.
func TestOutcomeCounts(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		now := time.Now()
		process(t, b, "id:c1", attemptAt(now.Add(-3*time.Minute), events.Transient, "TRANSPORT_ERROR", ""))
		process(t, b, "id:c1", attemptAt(now.Add(-2*time.Minute), events.Transient, "TRANSPORT_ERROR", ""))
		process(t, b, "id:c1", attemptAt(now.Add(-time.Minute), events.Final, "SUCCESS", ""))
		process(t, b, "id:c2", attemptAt(now, events.Final, "FORBIDDEN", ""))
		process(t, b, "id:c3", attemptAt(now.Add(-3*time.Hour), events.Final, "SUCCESS", ""))
		hour, day, err := b.r.OutcomeCounts(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(hour) != "map[FORBIDDEN:1 SUCCESS:1]" || fmt.Sprint(day) != "map[FORBIDDEN:1 SUCCESS:2]" {
			t.Errorf("hour %v, day %v; want FORBIDDEN 1 and SUCCESS 1 over the hour, SUCCESS 2 over the day", hour, day)
		}
	})
}

// Console sessions live in Redis for their ttl, any replica reads them,
// and a deleted one is gone.
func TestSessions(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		const key = "5ead47c5e670a5fa7ec1e3389eb6270a802d5756cedd65cdd6faea7a13a0e4ff"
		if _, err := b.r.GetSession(ctx, key); !errors.Is(err, events.ErrNotFound) {
			t.Fatalf("a session never stored: %v, want ErrNotFound", err)
		}
		if err := b.r.PutSession(ctx, key, []byte(`{"operator":"sha256:0a1b2c3d"}`), time.Minute); err != nil {
			t.Fatal(err)
		}
		got, err := b.r.GetSession(ctx, key)
		if err != nil || string(got) != `{"operator":"sha256:0a1b2c3d"}` {
			t.Fatalf("GetSession = %q, %v", got, err)
		}
		if d := b.pttl(t, b.r.keys.session(key)); d <= 0 || d > time.Minute {
			t.Errorf("PTTL %v, want within the session's ttl", d)
		}
		if err := b.r.RefreshSession(ctx, key, []byte(`{"operator":"sha256:0a1b2c3d","seen":1}`), 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := b.r.GetSession(ctx, key); err != nil || !strings.Contains(string(got), `"seen":1`) {
			t.Errorf("after a refresh: %q, %v", got, err)
		}
		if err := b.r.DeleteSession(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := b.r.GetSession(ctx, key); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("a deleted session: %v, want ErrNotFound", err)
		}
		// A request that outlived the sign-out does not bring it back.
		if err := b.r.RefreshSession(ctx, key, []byte(`{}`), time.Minute); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("refreshing a deleted session: %v, want ErrNotFound", err)
		}
		if _, err := b.r.GetSession(ctx, key); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("a deleted session after a refresh: %v, want ErrNotFound", err)
		}
	})
}

// The console's overview is two round trips, on every deployment (it was
// five, one read after the other), and says what the reads it replaces
// say: the outcome counts, the unsettled count and oldest account, the
// first page of the recent failures.
func TestOverviewRoundTrips(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		now := time.Now().Truncate(time.Millisecond)
		// Nothing unsettled, no failure: one round trip.
		rt := countRoundTrips(b.r, "")
		ov, err := b.r.Overview(ctx, now, now.Add(-24*time.Hour), 11)
		if err != nil || ov.Unsettled != 0 || ov.Oldest.SubscriptionID != "" || len(ov.Failures) != 0 || len(ov.Hour) != 0 || rt.n.Load() != 1 {
			t.Errorf("an empty store: %+v, %v in %d round trips; want nothing in 1", ov, err, rt.n.Load())
		}
		for i := range 3 {
			process(t, b, fmt.Sprintf("id:ov-fail-%d", i), attemptAt(now.Add(-time.Duration(i)*time.Minute), events.Final, "FORBIDDEN", "order: cancelled"))
		}
		process(t, b, "id:ov-ok", attemptAt(now, events.Final, "SUCCESS", ""))
		for i := range 2 {
			a := testAccount(fmt.Sprintf("sub-ov-%d", i), fmt.Sprint(800+i))
			a.Settle = events.Settle{Since: now.Add(time.Duration(i) * time.Second).UTC(), Due: now.Add(time.Hour).UTC(), Waiting: "helix: HTTP 503"}
			if err := saveLocked(ctx, b.r, a); err != nil {
				t.Fatal(err)
			}
		}
		for _, limit := range []int{2, 11} {
			rt := countRoundTrips(b.r, "")
			ov, err := b.r.Overview(ctx, now, now.Add(-24*time.Hour), limit)
			if err != nil {
				t.Fatal(err)
			}
			if n := rt.n.Load(); n != 2 {
				t.Errorf("limit %d: the overview took %d round trips, want 2", limit, n)
			}
			hour, day, _ := b.r.OutcomeCounts(ctx, now)
			n, _, _ := b.r.SettleStats(ctx)
			oldest, _ := b.r.Unsettled(ctx, 1)
			failures, _, _ := b.r.Failures(ctx, now.Add(-24*time.Hour), "", limit)
			if fmt.Sprint(ov.Hour, ov.Day) != fmt.Sprint(hour, day) || ov.Unsettled != n || n != 2 ||
				len(oldest) != 1 || ov.Oldest.SubscriptionID != "sub-ov-0" || fmt.Sprint(ov.Oldest) != fmt.Sprint(oldest[0]) ||
				len(ov.Failures) != min(limit, 3) || fmt.Sprint(ov.Failures) != fmt.Sprint(failures) {
				t.Errorf("limit %d: overview %+v\nwant counts %v %v, %d unsettled, oldest %v, failures %v", limit, ov, hour, day, n, oldest, failures)
			}
		}
	})
}

// A search by one id is two round trips, on every deployment (it was up
// to seven, one read after the other), and finds what the reads it
// replaces find.
func TestLookupRoundTrips(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		now := time.Now().Truncate(time.Millisecond)
		process(t, b, "id:look-1", attemptAt(now, events.Final, "FORBIDDEN", "order: cancelled"))
		process(t, b, "appdirect:tok-look", attemptAt(now, events.Transient, "TRANSPORT_ERROR", "q2.provision: HTTP 503"))
		for i := range 2 {
			a := testAccount(fmt.Sprintf("sub-look-%d", i), fmt.Sprint(900+i))
			a.UserID, a.CreatedAt = 4242, a.CreatedAt.Add(time.Duration(2-i)*time.Hour) // the second is the older
			if err := saveLocked(ctx, b.r, a); err != nil {
				t.Fatal(err)
			}
		}
		keys := []string{"id:look-1", "appdirect:tok-look", "id:none"}
		rt := countRoundTrips(b.r, "")
		found, err := b.r.Lookup(ctx, keys, "sub-look-0", "901", 4242)
		if err != nil {
			t.Fatal(err)
		}
		if n := rt.n.Load(); n != 2 {
			t.Errorf("the lookup took %d round trips, want 2", n)
		}
		for _, key := range keys {
			d, err := b.r.DeliveryByKey(ctx, key)
			got, ok := found.Deliveries[key]
			if (err == nil) != ok || fmt.Sprint(got) != fmt.Sprint(d) {
				t.Errorf("delivery %s: found %v (%v), DeliveryByKey %v (%v)", key, got, ok, d, err)
			}
		}
		acct, _ := b.r.Account(ctx, "sub-look-0")
		byID, _ := b.r.AccountByIdentifier(ctx, "901")
		ofUser, _ := b.r.AccountsOfUser(ctx, 4242)
		if found.Account == nil || fmt.Sprint(*found.Account) != fmt.Sprint(acct) {
			t.Errorf("account %v, want %v", found.Account, acct)
		}
		if found.ByIdentifier == nil || found.ByIdentifier.SubscriptionID != "sub-look-1" || fmt.Sprint(*found.ByIdentifier) != fmt.Sprint(byID) {
			t.Errorf("by identifier %v, want %v", found.ByIdentifier, byID)
		}
		if len(found.OfUser) != 2 || found.OfUser[0].SubscriptionID != "sub-look-1" || fmt.Sprint(found.OfUser) != fmt.Sprint(ofUser) {
			t.Errorf("of the user %v, want %v", found.OfUser, ofUser)
		}

		rt = countRoundTrips(b.r, "")
		none, err := b.r.Lookup(ctx, []string{"id:nope"}, "nope", "nope", 4343)
		if err != nil || len(none.Deliveries) != 0 || none.Account != nil || none.ByIdentifier != nil || len(none.OfUser) != 0 || rt.n.Load() != 1 {
			t.Errorf("ids of nothing: %+v, %v in %d round trips; want nothing in 1", none, err, rt.n.Load())
		}
	})
}

// The outcome counters never outlive their window: a minute's counter and
// an hour's carry a lifetime from the first count in them, whatever codes
// are counted after (one with a code of its own, one counting a code again).
func TestCountersExpire(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		at := time.Now().Truncate(time.Millisecond)
		minute, hour := b.r.keys.counters(at)
		for i, res := range []inbox.Result{
			attemptAt(at, events.Transient, "TRANSPORT_ERROR", "q2.provision: HTTP 503"),
			attemptAt(at, events.Final, "SUCCESS", ""),
			attemptAt(at, events.Final, "SUCCESS", ""),
		} {
			process(t, b, "id:counted-"+strconv.Itoa(i), res)
			for _, c := range []struct {
				key string
				max time.Duration
			}{{minute, minuteCounterTTL}, {hour, hourCounterTTL}} {
				if d := b.pttl(t, c.key); d <= 0 || d > c.max {
					t.Errorf("after outcome %d: %s PTTL %v, want in (0, %v]", i, c.key, d, c.max)
				}
			}
		}
	})
}
