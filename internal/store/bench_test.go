package store

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// Benchmarks run on real Redis where there is one (REDIS_URL, else a
// redis-server on PATH, started for the run), else on miniredis:
//
//	go test -bench . -run '^$' ./internal/store/
//
// Round trips per op are counted by a go-redis hook and reported as
// "roundtrips/op": a new delivery (claim + complete) is 2, a duplicate
// (one claim answered from the record) is 1. EVALSHA falls back to EVAL
// once per script per server (NOSCRIPT), which rounds away.
func benchBackend(b *testing.B) *Redis {
	b.Helper()
	if testredis.SharedAvailable() {
		return newRealBackend(b).r
	}
	return newMiniBackend(b).r
}

func BenchmarkClaimComplete(b *testing.B) {
	r := benchBackend(b)
	rt := countRoundTrips(r, "")
	ctx := b.Context()
	res := inbox.Result{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"123456"}`), Code: "SUCCESS", Duration: 50 * time.Millisecond}
	for i := 0; b.Loop(); i++ {
		key := "id:msg_" + strconv.Itoa(i)
		c, err := r.Claim(ctx, inbox.ClaimRequest{Key: key, Fingerprint: fpA, Lease: 5 * time.Second, TTL: time.Hour,
			EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-1"})
		if err != nil || c.State != inbox.ClaimFresh {
			b.Fatalf("Claim = %+v, %v", c, err)
		}
		if err := r.Complete(ctx, key, c.Token, res, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
}

func BenchmarkClaimDone(b *testing.B) {
	r := benchBackend(b)
	ctx := b.Context()
	req := inbox.ClaimRequest{Key: "id:dup", Fingerprint: fpA, Lease: 5 * time.Second, TTL: time.Hour}
	c, err := r.Claim(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Complete(ctx, req.Key, c.Token, inbox.Result{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"123456"}`)}, time.Hour); err != nil {
		b.Fatal(err)
	}
	rt := countRoundTrips(r, "")
	for b.Loop() {
		c, err := r.Claim(ctx, req)
		if err != nil || c.State != inbox.ClaimDone {
			b.Fatalf("Claim = %+v, %v", c, err)
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkGate is the read API's gate (GET /v1/subscriptions/{id}): one
// GET of the account.
func BenchmarkGate(b *testing.B) {
	r := benchBackend(b)
	ctx := context.Background()
	a := testAccount("sub-gate", "700")
	a.UserID = 70
	if err := saveLocked(ctx, r, a); err != nil {
		b.Fatal(err)
	}
	rt := countRoundTrips(r, "")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Account(ctx, "sub-gate"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkDeliveryLog is GET /v1/deliveries for a subscription with 20
// deliveries: one HGETALL.
func BenchmarkDeliveryLog(b *testing.B) {
	r := benchBackend(b)
	ctx := context.Background()
	for i := range 20 {
		req := inbox.ClaimRequest{Key: "id:log-" + strconv.Itoa(i), Fingerprint: "fp", Lease: time.Minute, TTL: time.Hour,
			EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-bench-log"}
		if _, err := r.Claim(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	rt := countRoundTrips(r, "")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if d, err := r.Deliveries(ctx, "sub-bench-log"); err != nil || len(d) != 20 {
			b.Fatal(len(d), err)
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
}

// BenchmarkCopy is a byte-identical copy answered from its copy key: one
// EVALSHA that also counts the copy in the record and the delivery log.
func BenchmarkCopy(b *testing.B) {
	r := benchBackend(b)
	ctx := b.Context()
	req := inbox.ClaimRequest{Key: "id:copy-bench", Fingerprint: fpA, Lease: 5 * time.Second, TTL: time.Hour,
		EventType: "SUBSCRIPTION_ORDER", Subscription: "sub-copy-bench"}
	c, err := r.Claim(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	res := inbox.Result{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"123456"}`), Code: "SUCCESS",
		Subscription: req.Subscription, EventType: req.EventType, CopyKey: "copy-bench"}
	if err := r.Complete(ctx, req.Key, c.Token, res, time.Hour); err != nil {
		b.Fatal(err)
	}
	if _, ok, err := r.Copy(ctx, "copy-bench"); !ok || err != nil { // loads the script
		b.Fatalf("Copy = %t, %v", ok, err)
	}
	rt := countRoundTrips(r, "")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := r.Copy(ctx, "copy-bench"); !ok || err != nil {
			b.Fatalf("Copy = %t, %v", ok, err)
		}
	}
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
}
