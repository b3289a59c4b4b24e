package store

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/redis/go-redis/v9"
)

const (
	fpA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	fpB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	// testLease is long enough never to run out by accident on a slow CI
	// machine; shortLease is short so that real-Redis tests can wait for
	// it to run out (miniredis fast-forwards past it).
	testLease  = time.Minute
	shortLease = 100 * time.Millisecond
	testTTL    = time.Hour
)

func claimReq(key, fp string) inbox.ClaimRequest {
	return inbox.ClaimRequest{Key: key, Fingerprint: fp, Lease: testLease, TTL: testTTL,
		EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-1"}
}

// shortClaimReq is a claim whose lease the test lets run out.
func shortClaimReq(key, fp string) inbox.ClaimRequest {
	req := claimReq(key, fp)
	req.Lease = shortLease
	return req
}

// mustClaim claims and checks the state.
func mustClaim(t *testing.T, b *backend, req inbox.ClaimRequest, want inbox.ClaimState) inbox.Claim {
	t.Helper()
	c, err := b.r.Claim(ctxT(t), req)
	if err != nil {
		t.Fatalf("Claim(%q): %v", req.Key, err)
	}
	if c.State != want {
		t.Fatalf("Claim(%q) = %v, want %v", req.Key, c.State, want)
	}
	return c
}

func mustComplete(t *testing.T, b *backend, key, token string, res inbox.Result) {
	t.Helper()
	if err := b.r.Complete(ctxT(t), key, token, res, testTTL); err != nil {
		t.Fatalf("Complete(%q): %v", key, err)
	}
}

var okResult = inbox.Result{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"42"}`), Code: "SUCCESS", Duration: 120 * time.Millisecond}

func TestClaim(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, b *backend, key string)
		fp    string
		want  inbox.ClaimState
	}{
		{name: "new delivery", fp: fpA, want: inbox.ClaimFresh},
		{
			name: "done, same body",
			setup: func(t *testing.T, b *backend, key string) {
				c := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
				mustComplete(t, b, key, c.Token, okResult)
			},
			fp: fpA, want: inbox.ClaimDone,
		},
		{
			name: "done, other body",
			setup: func(t *testing.T, b *backend, key string) {
				c := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
				mustComplete(t, b, key, c.Token, okResult)
			},
			fp: fpB, want: inbox.ClaimConflict,
		},
		{
			name:  "processing, same body",
			setup: func(t *testing.T, b *backend, key string) { mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh) },
			fp:    fpA, want: inbox.ClaimBusy,
		},
		{
			name:  "processing, other body",
			setup: func(t *testing.T, b *backend, key string) { mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh) },
			fp:    fpB, want: inbox.ClaimConflict,
		},
		{
			name: "released, same body",
			setup: func(t *testing.T, b *backend, key string) {
				c := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
				if err := b.r.Release(ctxT(t), key, c.Token, inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: time.Second}); err != nil {
					t.Fatal(err)
				}
			},
			fp: fpA, want: inbox.ClaimFresh,
		},
		{
			name: "released, other body",
			setup: func(t *testing.T, b *backend, key string) {
				c := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
				if err := b.r.Release(ctxT(t), key, c.Token, inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: time.Second}); err != nil {
					t.Fatal(err)
				}
			},
			fp: fpB, want: inbox.ClaimConflict,
		},
		{
			name: "holder crashed, lease expired: takeover",
			setup: func(t *testing.T, b *backend, key string) {
				mustClaim(t, b, shortClaimReq(key, fpA), inbox.ClaimFresh)
				b.advance(shortLease)
			},
			fp: fpA, want: inbox.ClaimFresh,
		},
	}
	forEachBackend(t, func(t *testing.T, b *backend) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if b.mr == nil {
					t.Parallel() // FastForward would move other subtests' clocks
				}
				key := "id:" + tt.name
				if tt.setup != nil {
					tt.setup(t, b, key)
				}
				c := mustClaim(t, b, claimReq(key, tt.fp), tt.want)
				switch c.State {
				case inbox.ClaimFresh:
					if len(c.Token) != 32 {
						t.Errorf("token %q: want 128-bit hex", c.Token)
					}
				case inbox.ClaimDone:
					if !bytes.Equal(c.Body, okResult.Body) {
						t.Errorf("done = %q, want %q", c.Body, okResult.Body)
					}
				case inbox.ClaimBusy:
					if c.RetryIn <= 0 || c.RetryIn > testLease {
						t.Errorf("RetryIn = %v, want in (0, %v]", c.RetryIn, testLease)
					}
				}
			})
		}
	})
}

func TestClaimTokensAreUnique(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		seen := map[string]bool{}
		for i := range 20 {
			c := mustClaim(t, b, claimReq(fmt.Sprint("id:", i), fpA), inbox.ClaimFresh)
			if seen[c.Token] {
				t.Fatalf("token %q given twice", c.Token)
			}
			seen[c.Token] = true
		}
	})
}

func TestDoneReplaysBodyByteForByte(t *testing.T) {
	t.Parallel()
	bodies := map[string][]byte{
		"json":           []byte(`{"success": false, "errorCode": "ACCOUNT_NOT_FOUND", "message": "no such account"}` + "\n"),
		"empty":          {},
		"binary":         {0x00, 0xff, 0xfe, '\r', '\n', 0x80, '"', '\\', 0x00},
		"invalid utf-8":  []byte("caf\xe9 \xc3\x28"),
		"large":          bytes.Repeat([]byte("0123456789abcdef"), 64<<10), // 1 MiB
		"lua-ish quotes": []byte(`]] '; return {'fresh'} --`),
	}
	forEachBackend(t, func(t *testing.T, b *backend) {
		for name, body := range bodies {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				key := "id:" + name
				c := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
				mustComplete(t, b, key, c.Token, inbox.Result{Kind: events.Final, Body: body, Code: "INVALID_RESPONSE"})
				for range 2 {
					got := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimDone)
					if !bytes.Equal(got.Body, body) {
						t.Fatalf("replayed %d bytes; want %d bytes, identical", len(got.Body), len(body))
					}
				}
			})
		}
	})
}

func TestFencing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		const key = "id:fenced"
		old := mustClaim(t, b, shortClaimReq(key, fpA), inbox.ClaimFresh)
		b.advance(shortLease) // the old holder stalls past its lease
		cur := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
		if cur.Token == old.Token {
			t.Fatal("takeover reused the old token")
		}

		stale := inbox.Result{Kind: events.Final, Body: []byte(`{"stale":true}`), Code: "SUCCESS"}
		if err := b.r.Complete(ctx, key, old.Token, stale, testTTL); !errors.Is(err, events.ErrLeaseLost) {
			t.Errorf("late Complete by the expired holder: %v, want ErrLeaseLost", err)
		}
		if err := b.r.Release(ctx, key, old.Token, inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: 0}); !errors.Is(err, events.ErrLeaseLost) {
			t.Errorf("late Release by the expired holder: %v, want ErrLeaseLost", err)
		}
		// The newer owner still holds the delivery and is unaffected.
		mustClaim(t, b, claimReq(key, fpA), inbox.ClaimBusy)
		mustComplete(t, b, key, cur.Token, okResult)

		if err := b.r.Complete(ctx, key, old.Token, stale, testTTL); !errors.Is(err, events.ErrLeaseLost) {
			t.Errorf("Complete by the expired holder after the owner completed: %v, want ErrLeaseLost", err)
		}
		if err := b.r.Complete(ctx, key, "not-a-token", stale, testTTL); !errors.Is(err, events.ErrLeaseLost) {
			t.Errorf("Complete with a foreign token: %v, want ErrLeaseLost", err)
		}
		if err := b.r.Release(ctx, key, cur.Token, inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: 0}); !errors.Is(err, events.ErrLeaseLost) {
			t.Errorf("Release after Complete: %v, want ErrLeaseLost", err)
		}
		// A repeated Complete by the owner (a client retry after a lost
		// reply) is recognised as applied and changes nothing.
		if err := b.r.Complete(ctx, key, cur.Token, okResult, testTTL); err != nil {
			t.Errorf("repeated Complete by the owner: %v", err)
		}
		got := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimDone)
		if !bytes.Equal(got.Body, okResult.Body) {
			t.Errorf("stored body %q, want the owner's %q", got.Body, okResult.Body)
		}
		rec, err := b.r.Delivery(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if rec.State != "done" || rec.Code != "SUCCESS" {
			t.Errorf("record %+v, want done SUCCESS", rec)
		}
	})
}

func TestExpiredHolderWithoutTakeoverIsFenced(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		const key = "id:lapsed"
		c := mustClaim(t, b, shortClaimReq(key, fpA), inbox.ClaimFresh)
		b.advance(shortLease)
		if err := b.r.Complete(ctxT(t), key, c.Token, okResult, testTTL); !errors.Is(err, events.ErrLeaseLost) {
			t.Errorf("Complete after the lease ran out: %v, want ErrLeaseLost", err)
		}
		if rec, err := b.r.Delivery(ctxT(t), key); err != nil || rec.State != "processing" {
			t.Errorf("record %+v, %v: want still processing, nothing written", rec, err)
		}
		mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
	})
}

func TestTTLs(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		within := func(t *testing.T, what string, got, max time.Duration) {
			t.Helper()
			// Real Redis counts down while the test runs.
			if got <= 0 || got > max || (b.mr != nil && got != max) || got < max-5*time.Second {
				t.Errorf("%s PTTL = %v, want about %v", what, got, max)
			}
		}
		const key = "id:ttl"
		rec, lease := b.r.keys.delivery(key)
		req := claimReq(key, fpA)
		req.Lease = 10 * time.Second
		req.TTL = 72 * time.Hour
		c := mustClaim(t, b, req, inbox.ClaimFresh)
		within(t, "record after claim", b.pttl(t, rec), 72*time.Hour)
		within(t, "lease after claim", b.pttl(t, lease), 10*time.Second)

		if err := b.r.Release(ctx, key, c.Token, inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: time.Second}); err != nil {
			t.Fatal(err)
		}
		within(t, "record after release", b.pttl(t, rec), 72*time.Hour)
		if got := b.pttl(t, lease); got != noKey {
			t.Errorf("lease after release: PTTL %v, want deleted", got)
		}

		c = mustClaim(t, b, req, inbox.ClaimFresh)
		if err := b.r.Complete(ctx, key, c.Token, okResult, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		within(t, "record after complete", b.pttl(t, rec), 24*time.Hour)
		if got := b.pttl(t, lease); got != noKey {
			t.Errorf("lease after complete: PTTL %v, want deleted", got)
		}
		// A replayed copy does not extend the record: EVENT_TTL runs from the outcome.
		mustClaim(t, b, req, inbox.ClaimDone)
		within(t, "record after a duplicate", b.pttl(t, rec), 24*time.Hour)

		// A TTL shorter than the lease would drop a record while it is processed.
		short := claimReq("id:short-ttl", fpA)
		short.Lease, short.TTL = 10*time.Second, time.Second
		mustClaim(t, b, short, inbox.ClaimFresh)
		rec2, _ := b.r.keys.delivery(short.Key)
		within(t, "record with ttl < lease", b.pttl(t, rec2), 10*time.Second)

		// The record lives out its TTL and then is gone.
		if b.mr != nil {
			b.advance(24 * time.Hour)
			if _, err := b.r.Delivery(ctx, key); !errors.Is(err, events.ErrNotFound) {
				t.Errorf("record after EVENT_TTL: %v, want ErrNotFound", err)
			}
			mustClaim(t, b, req, inbox.ClaimFresh)
		}
	})
}

func TestHistory(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		const key = "sha256:" + fpA
		if _, err := b.r.Delivery(ctx, key); !errors.Is(err, events.ErrNotFound) {
			t.Fatalf("Delivery of an unknown key: %v, want ErrNotFound", err)
		}
		start := time.Now().Add(-time.Second)
		req := claimReq(key, fpA)
		req.EventType, req.Subscription = "SUBSCRIPTION_CANCEL", "sub-77"

		check := func(t *testing.T, want DeliveryRecord) {
			t.Helper()
			got, err := b.r.Delivery(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if got.FirstSeen.Before(start) || got.LastSeen.Before(got.FirstSeen) || time.Since(got.LastSeen) > time.Minute {
				t.Errorf("first %v, last %v: want recent, first <= last", got.FirstSeen, got.LastSeen)
			}
			got.FirstSeen, got.LastSeen = time.Time{}, time.Time{}
			if got != want {
				t.Errorf("record\n got %+v\nwant %+v", got, want)
			}
		}
		want := DeliveryRecord{Key: key, EventType: "SUBSCRIPTION_CANCEL", Subscription: "sub-77"}

		c := mustClaim(t, b, req, inbox.ClaimFresh)
		want.State, want.Attempts = "processing", 1
		check(t, want)

		mustClaim(t, b, req, inbox.ClaimBusy) // a concurrent copy does not count
		check(t, want)

		if err := b.r.Release(ctx, key, c.Token, inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: 1500 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		want.State, want.Code, want.Duration, want.Kind = "released", "TRANSPORT_ERROR", 1500*time.Millisecond, events.Transient
		check(t, want)

		c = mustClaim(t, b, req, inbox.ClaimFresh)
		want.State, want.Attempts = "processing", 2
		check(t, want)

		mustComplete(t, b, key, c.Token, inbox.Result{Kind: events.Final, Body: []byte(`{"success":true}`), Code: "SUCCESS", Duration: 80 * time.Millisecond})
		want.State, want.Code, want.Duration, want.Kind = "done", "SUCCESS", 80*time.Millisecond, events.Final
		check(t, want)

		mustClaim(t, b, req, inbox.ClaimDone) // a copy answered from the record
		want.Copies = 1
		check(t, want)
	})
}

func TestClaimRejectsBadRequests(t *testing.T) {
	t.Parallel()
	b := newMiniBackend(t)
	for name, req := range map[string]inbox.ClaimRequest{
		"no key":         {Fingerprint: fpA, Lease: time.Second, TTL: time.Hour},
		"no fingerprint": {Key: "id:x", Lease: time.Second, TTL: time.Hour},
		"no lease":       {Key: "id:x", Fingerprint: fpA, TTL: time.Hour},
		"no ttl":         {Key: "id:x", Fingerprint: fpA, Lease: time.Second},
	} {
		if _, err := b.r.Claim(ctxT(t), req); err == nil || errors.Is(err, events.ErrUnavailable) {
			t.Errorf("%s: err = %v, want a plain error", name, err)
		}
	}
}

// Any number of concurrent copies of one delivery cause one processing.
func TestClaimConcurrentCopies(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		const n = 200
		req := claimReq("id:stampede", fpA)
		req.Lease = time.Minute
		ctx := ctxT(t)
		start := make(chan struct{})
		states := make([]inbox.ClaimState, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				c, err := b.r.Claim(ctx, req)
				states[i], errs[i] = c.State, err
			})
		}
		close(start)
		wg.Wait()
		count := map[inbox.ClaimState]int{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("claim %d: %v", i, errs[i])
			}
			count[states[i]]++
		}
		if count[inbox.ClaimFresh] != 1 || count[inbox.ClaimBusy] != n-1 {
			t.Errorf("states %v: want exactly one fresh and %d busy", count, n-1)
		}
	})
}

// go-redis retries a command whose reply was lost (MaxRetries), so each
// script may run twice with the same arguments; the second run must not
// turn a won claim into Busy, count an extra attempt, or report a lost lease.
func TestRetriedScriptsAreIdempotent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		const key = "id:retried"
		rec, lease := b.r.keys.delivery(key)
		const token = "0123456789abcdef0123456789abcdef"
		first := time.Now().UnixMilli()
		for i := range 2 {
			res, err := claimScript.Run(ctx, b.r.client, []string{rec, lease, b.r.keys.attempts(key)},
				fpA, token, 5000, 60000, first+int64(i), "SUBSCRIPTION_ORDER", "sub-1", key, deliveryHash(key), "split", 100, "").Slice()
			if err != nil {
				t.Fatal(err)
			}
			// No lock token: no unit, and the record's first time seen
			// (the first run's, also to the second).
			if len(res) != 5 || res[0] != "fresh" || res[1] != int64(0) || res[4] != strconv.FormatInt(first, 10) {
				t.Fatalf("run %d of the same claim = %v, want fresh, first seen %d", i+1, res, first)
			}
		}
		if d, err := b.r.Delivery(ctx, key); err != nil || d.Attempts != 1 {
			t.Errorf("record %+v, %v: want 1 attempt", d, err)
		}
		for i := range 2 {
			if err := b.r.Release(ctx, key, token, inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: time.Second}); err != nil {
				t.Errorf("release run %d: %v", i+1, err)
			}
		}
		mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
		if err := b.r.Release(ctx, key, token, inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: time.Second}); !errors.Is(err, events.ErrLeaseLost) {
			t.Errorf("release by the old token after a new claim: %v, want ErrLeaseLost", err)
		}
	})
}

// The claim and the outcome of a delivery with its unit (the
// subscription's lock, a held save) run twice with the same arguments,
// as go-redis retries them after a lost reply: the second claim is Fresh
// with the lock, the second Complete answers done, and the save is in.
func TestRetriedUnitScriptsAreIdempotent(t *testing.T) {
	b := newMiniBackend(t)
	ctx := ctxT(t)
	const key, sub = "id:retried-unit", "sub-unit"
	keys, h, mode := b.r.deliveryKeys(key, sub)
	keys = append(keys, b.r.keys.lock(sub), b.r.keys.account(sub))
	const token, lockToken = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	for i := range 2 {
		res, err := claimScript.Run(ctx, b.r.client, keys, fpA, token, 5000, 60000, time.Now().UnixMilli(),
			"SUBSCRIPTION_ORDER", sub, key, h, mode, 100, lockToken).Slice()
		if err != nil || len(res) < 2 || res[0] != "fresh" || res[1] != int64(1) {
			t.Fatalf("claim run %d = %v, %v: want fresh with the lock", i+1, res, err)
		}
	}
	u := &unit{sub: sub, lock: lockToken}
	uctx := u.bind(ctx)
	now := time.Now().UTC()
	if err := b.r.SaveFinal(uctx, lockToken, events.Account{SubscriptionID: sub, Product: "p", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := b.r.Complete(uctx, key, token, inbox.Result{Subscription: sub, Kind: events.Final, Body: []byte(`{}`), Code: "SUCCESS"}, time.Hour); err != nil {
			t.Errorf("complete run %d: %v", i+1, err)
		}
	}
	if _, err := b.r.Account(ctx, sub); err != nil {
		t.Errorf("account after the retried complete: %v", err)
	}
	if b.mr.Exists(b.r.keys.lock(sub)) {
		t.Error("the lock is still held")
	}
}

// A subscription's delivery index lists only the deliveries it claimed
// fresh, by their first time seen: a conflicting copy (another event
// under a used key, of another subscription) is not listed in its own
// subscription's log, and a delivery listed again (after its entry was
// trimmed, or its write on Cluster failed) keeps its place. On Cluster
// the index is written apart from the claim (indexApart).
func TestDeliveryIndexListsFreshClaims(t *testing.T) {
	t.Parallel()
	// The backends, and miniredis as a one-node Cluster: the split path
	// is tested where no redis-server is installed too.
	t.Run("miniredis-cluster", func(t *testing.T) {
		t.Parallel()
		mr := miniredis.RunT(t)
		deliveryIndexListsFreshClaims(t, &backend{r: openTest(t, Options{URL: "redis://" + mr.Addr(), Cluster: true}), mr: mr})
	})
	forEachBackend(t, deliveryIndexListsFreshClaims)
}

func deliveryIndexListsFreshClaims(t *testing.T, b *backend) {
	ctx := ctxT(t)
	const key = "id:reused"
	listed := func(sub string) []redis.Z {
		t.Helper()
		z, err := b.r.client.ZRangeWithScores(ctx, b.r.keys.deliveryIndex(sub), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	a := claimReq(key, fpA)
	a.Subscription = "sub-a"
	c := mustClaim(t, b, a, inbox.ClaimFresh)
	first := listed("sub-a")
	if len(first) != 1 || first[0].Member != deliveryHash(key) {
		t.Fatalf("sub-a lists %v, want its delivery", first)
	}
	other := a
	other.Fingerprint, other.Subscription = fpB, "sub-b"
	mustClaim(t, b, other, inbox.ClaimConflict)
	if got := listed("sub-b"); len(got) != 0 {
		t.Errorf("sub-b lists %v, want nothing: the conflicting copy is not its delivery", got)
	}
	if err := b.r.Release(ctx, key, c.Token, inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR"}); err != nil {
		t.Fatal(err)
	}
	if err := b.r.client.ZRem(ctx, b.r.keys.deliveryIndex("sub-a"), deliveryHash(key)).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // so that "now" is not the first time seen
	mustClaim(t, b, a, inbox.ClaimFresh)
	if again := listed("sub-a"); len(again) != 1 || again[0].Score != first[0].Score {
		t.Errorf("listed again as %v, want at its first time seen %v", again, first[0].Score)
	}
}

// A holder whose lease ran out, and whose delivery a newer holder took
// over and answered, records nothing of its late outcome: not in the
// record (fenced), and not in the views written beside it, the recent
// failures and the outcome counters (on Cluster written apart, after the
// fenced record script: outcomeApart).
func TestLateHolderIsNotCountedNorListed(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, b *backend) {
		ctx := ctxT(t)
		const key = "id:late-holder"
		late := mustClaim(t, b, shortClaimReq(key, fpA), inbox.ClaimFresh)
		b.advance(shortLease)
		newer := mustClaim(t, b, claimReq(key, fpA), inbox.ClaimFresh)
		mustComplete(t, b, key, newer.Token, okResult)
		at := time.Now()
		failed := inbox.Result{Kind: events.Transient, Code: "TRANSPORT_ERROR", Duration: time.Second, Attempt: inbox.Attempt{At: at}}
		if err := b.r.Release(ctx, key, late.Token, failed); !errors.Is(err, events.ErrLeaseLost) {
			t.Fatalf("the late holder's Release: %v, want ErrLeaseLost", err)
		}
		if listed, err := b.r.client.ZScore(ctx, b.r.keys.failures(), deliveryHash(key)).Result(); !errors.Is(err, redis.Nil) {
			t.Errorf("listed in the recent failures (score %v, %v) over the newer holder's success", listed, err)
		}
		minute, _ := b.r.keys.counters(at)
		if n, err := b.r.client.HGet(ctx, minute, "TRANSPORT_ERROR").Int(); !errors.Is(err, redis.Nil) || n != 0 {
			t.Errorf("the late attempt counted: %d, %v", n, err)
		}
	}
	t.Run("miniredis-cluster", func(t *testing.T) {
		t.Parallel()
		mr := miniredis.RunT(t)
		check(t, &backend{r: openTest(t, Options{URL: "redis://" + mr.Addr(), Cluster: true}), mr: mr})
	})
	forEachBackend(t, check)
}
