package store

import (
	"errors"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// Rule: an OAuth 1.0a nonce is accepted once per consumer key within its
// ttl, by every replica (one SET NX).
func TestSeen(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		for i, tc := range []struct {
			key, nonce string
			want       bool
		}{
			{"k", "n1", false},
			{"k", "n1", true},   // replayed
			{"k2", "n1", false}, // another consumer's nonce
			{"k", "n2", false},
		} {
			if seen, err := b.r.Seen(ctx, tc.key, tc.nonce, time.Minute); err != nil || seen != tc.want {
				t.Errorf("%d: Seen(%s, %s) = %v, %v; want %v", i, tc.key, tc.nonce, seen, err, tc.want)
			}
		}
	})
}

// go-redis sends a command again after a lost reply: the nonce recorded
// by the first run must not make the genuine notification a replay, and
// any other call with the nonce still is one.
func TestSeenRetriedIsNotAReplay(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		const token = "0123456789abcdef0123456789abcdef"
		for run := range 2 {
			if seen, err := b.r.seen(ctx, "k", "retried", time.Minute, token); err != nil || seen {
				t.Errorf("run %d of one call: seen %v, %v; want not seen", run+1, seen, err)
			}
		}
		if seen, err := b.r.Seen(ctx, "k", "retried", time.Minute); err != nil || !seen {
			t.Errorf("another call with the nonce: seen %v, %v; want a replay", seen, err)
		}
	})
}

// Rule: a result job is recorded once per token (a redelivered
// notification finds it), taken by one replica at a time (a lease), kept
// on the queue until it is posted, and once posted is off the queue and
// kept for its ttl, so that it is never posted again.
func TestResultJobs(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		now := time.Now().UTC().Truncate(time.Millisecond)
		j := inbox.ResultJob{Token: "tok-1", EventURL: "https://m.example/api/integration/v1/events/tok-1", Marketplace: "https://m.example",
			Product: "p", State: inbox.JobPending, Created: now, Updated: now, Due: now}
		for i, want := range []bool{true, false} {
			if created, err := b.r.EnqueueResult(ctx, j); err != nil || created != want {
				t.Fatalf("EnqueueResult %d = %v, %v; want %v", i, created, err, want)
			}
		}
		if _, err := b.r.Result(ctx, "nope"); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("Result of an unknown token: %v, want ErrNotFound", err)
		}
		if got, err := b.r.TakeDueResults(ctx, now, 10, time.Minute); err != nil || len(got) != 1 || got[0] != "tok-1" {
			t.Fatalf("TakeDueResults = %v, %v; want [tok-1]", got, err)
		}
		if got, err := b.r.TakeDueResults(ctx, now, 10, time.Minute); err != nil || len(got) != 0 {
			t.Errorf("TakeDueResults within the lease = %v, %v; want none", got, err)
		}
		// A failed post: due again later, still pending in the list.
		j.State, j.Result, j.Attempts, j.LastError, j.Due = inbox.JobAnswered, []byte(`{"success":true}`), 1, "HTTP 503", now.Add(10*time.Second)
		if err := b.r.SaveResult(ctx, j, time.Hour); err != nil {
			t.Fatal(err)
		}
		if n, err := b.r.PendingResults(ctx); err != nil || n != 1 {
			t.Errorf("PendingResults = %d, %v; want 1", n, err)
		}
		if list, err := b.r.ResultsPending(ctx, 10); err != nil || len(list) != 1 || list[0].State != inbox.JobAnswered || list[0].Attempts != 1 {
			t.Errorf("ResultsPending = %+v, %v; want tok-1 answered, 1 attempt", list, err)
		}
		if got, err := b.r.TakeDueResults(ctx, now.Add(11*time.Second), 10, time.Minute); err != nil || len(got) != 1 {
			t.Errorf("TakeDueResults when due again = %v, %v; want [tok-1]", got, err)
		}
		// Posted: off the queue, the record kept for its ttl.
		j.State, j.Due = inbox.JobPosted, time.Time{}
		if err := b.r.SaveResult(ctx, j, time.Hour); err != nil {
			t.Fatal(err)
		}
		if got, err := b.r.Result(ctx, "tok-1"); err != nil || got.State != inbox.JobPosted {
			t.Errorf("Result after the post = %+v, %v; want posted", got, err)
		}
		if n, err := b.r.PendingResults(ctx); err != nil || n != 0 {
			t.Errorf("PendingResults after the post = %d, %v; want 0", n, err)
		}
		if got, err := b.r.TakeDueResults(ctx, now.Add(time.Hour), 10, time.Minute); err != nil || len(got) != 0 {
			t.Errorf("TakeDueResults after the post = %v, %v; want none", got, err)
		}
		if created, err := b.r.EnqueueResult(ctx, j); err != nil || created {
			t.Errorf("a notification after the post: EnqueueResult = %v, %v; want the posted job kept, not queued again", created, err)
		}
		record, _ := b.r.keys.result("tok-1")
		if ttl := b.pttl(t, record); ttl <= 0 || ttl > time.Hour {
			t.Errorf("the posted job's ttl = %v, want at most 1h", ttl)
		}
		// Posted is for good: a pass that read the job before the post
		// (its lock ran out during a slow processing) and saves it late,
		// answered or pending, does not put it back on the queue, where
		// the next pass would post the result again.
		for _, state := range []string{inbox.JobAnswered, inbox.JobPending} {
			late := j
			late.State, late.Attempts, late.LastError, late.Due = state, 1, "context deadline exceeded", now.Add(10*time.Second)
			if err := b.r.SaveResult(ctx, late, time.Hour); err != nil {
				t.Fatal(err)
			}
			if got, err := b.r.Result(ctx, "tok-1"); err != nil || got.State != inbox.JobPosted {
				t.Errorf("a late save (%s) after the post: the job is %+v, %v; want posted", state, got, err)
			}
			if got, err := b.r.TakeDueResults(ctx, now.Add(time.Hour), 10, time.Minute); err != nil || len(got) != 0 {
				t.Errorf("a late save (%s) after the post: TakeDueResults = %v, %v; want none", state, got, err)
			}
		}
		// A record that cannot be read (it may say "posted") is not
		// written over, nor queued: the save is an error.
		bad := j
		bad.Token, bad.State, bad.Due = "tok-unreadable", inbox.JobAnswered, now
		badRecord, _ := b.r.keys.result("tok-unreadable")
		if err := b.r.client.Set(ctx, badRecord, `{"token":"tok-unreadable","state":"posted"`, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
		if err := b.r.SaveResult(ctx, bad, time.Hour); err == nil {
			t.Error("a save over an unreadable record: no error")
		}
		if v, _ := b.r.client.Get(ctx, badRecord).Result(); v != `{"token":"tok-unreadable","state":"posted"` {
			t.Errorf("the unreadable record was written over: %s", v)
		}
		if got, err := b.r.TakeDueResults(ctx, now.Add(time.Hour), 10, time.Minute); err != nil || len(got) != 0 {
			t.Errorf("a save over an unreadable record: TakeDueResults = %v, %v; want none", got, err)
		}
		// Refused is over too: off the queue, kept, never written again.
		r := j
		r.Token, r.State, r.Due = "tok-2", inbox.JobPending, now
		if _, err := b.r.EnqueueResult(ctx, r); err != nil {
			t.Fatal(err)
		}
		r.State, r.LastError = inbox.JobRefused, "HTTP 400"
		if err := b.r.SaveResult(ctx, r, time.Hour); err != nil {
			t.Fatal(err)
		}
		late := r
		late.State = inbox.JobAnswered
		if err := b.r.SaveResult(ctx, late, time.Hour); err != nil {
			t.Fatal(err)
		}
		if got, err := b.r.Result(ctx, "tok-2"); err != nil || got.State != inbox.JobRefused {
			t.Errorf("a refused job after a late save: %+v, %v; want refused", got, err)
		}
		if got, err := b.r.TakeDueResults(ctx, now.Add(time.Hour), 10, time.Minute); err != nil || len(got) != 0 {
			t.Errorf("a refused job: TakeDueResults = %v, %v; want none", got, err)
		}
	})
}
