package store

import (
	"context"
	"strconv"
	"strings"
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

// BenchmarkNewOrderUnit is a new ORDER's Redis work on one node, as the
// service does it: the claim that writes the primed account, then the
// outcome with the final save (unit.go). Besides round trips it reports
// the Redis server's own time per op ("redis-µs/op", INFO commandstats:
// the scripts' time, the commands they run included), on real Redis only.
func BenchmarkNewOrderUnit(b *testing.B) {
	if !testredis.SharedAvailable() {
		b.Skip("needs redis-server")
	}
	r := newRealBackend(b).r
	rt := countRoundTrips(r, "")
	ctx := b.Context()
	res := inbox.Result{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"123456"}`), Code: "SUCCESS",
		Duration: 50 * time.Millisecond, EventType: "SUBSCRIPTION_ORDER"}
	now := time.Now().UTC()
	acct := events.Account{SubscriptionID: "sub", Product: "default", UserID: 12345, CreatedAt: now, UpdatedAt: now,
		Intent: events.Intent{State: events.IntentActive, Rev: 1, By: events.SubscriptionOrder, At: now, LastCopy: now,
			Edition: "BASIC", Items: []events.Item{{Unit: "USER", Quantity: 10}}},
		Steps:  []events.Step{{Target: "q2", State: events.StepCalling, Rev: 1, Uncertain: &now}},
		Settle: events.Settle{Since: now, Due: now.Add(6 * time.Second)}}
	acct.Derive()
	if _, err := r.client.ConfigResetStat(ctx).Result(); err != nil {
		b.Fatal(err)
	}
	cpu0 := redisCPU(b, r)
	for i := 0; b.Loop(); i++ {
		sub, key := "sub-"+strconv.Itoa(i), "id:msg_"+strconv.Itoa(i)
		primed := acct
		primed.SubscriptionID = sub
		c, err := r.Claim(ctx, inbox.ClaimRequest{Key: key, Fingerprint: fpA, Lease: 5 * time.Second, TTL: time.Hour,
			EventType: "SUBSCRIPTION_ORDER", Subscription: sub, Primed: &primed})
		if err != nil || c.State != inbox.ClaimFresh || c.Bind == nil {
			b.Fatalf("Claim = %+v, %v", c, err)
		}
		uctx := c.Bind(ctx)
		done := primed
		done.Steps = []events.Step{{Target: "q2", State: events.StepLive, Rev: 1, ID: "4711"}}
		done.AccountIdentifier, done.Settle, done.Intent.Promised = "4711", events.Settle{}, true
		done.Derive()
		lock, _, err := r.Lock(uctx, sub, 5*time.Second, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.SaveFinal(uctx, lock, done); err != nil {
			b.Fatal(err)
		}
		res.Subscription, res.CopyKey = sub, "copy-"+strconv.Itoa(i)
		if err := r.Complete(uctx, key, c.Token, res, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((redisCPU(b, r)-cpu0).Microseconds())/float64(b.N), "redis-cpu-µs/op")
	b.ReportMetric(float64(rt.n.Load())/float64(b.N), "roundtrips/op")
	info, err := r.client.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var script float64
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for f := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				us, _ := strconv.ParseFloat(v, 64)
				if name == "cmdstat_evalsha" || name == "cmdstat_eval" {
					script += us
				}
				b.Logf("%s %.2f µs/op", strings.TrimPrefix(name, "cmdstat_"), us/float64(b.N))
			}
		}
	}
	b.ReportMetric(script/float64(b.N), "redis-µs/op")
}

// redisCPU is the Redis server's CPU time so far (INFO cpu: system and
// user, its main thread and the others).
func redisCPU(b *testing.B, r *Redis) time.Duration {
	b.Helper()
	info, err := r.client.Info(b.Context(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
