package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// On Cluster, a node that cannot be reached while the others answer:
// Lookup's first pipeline fails the reads queued for that node, and that
// is an error (the console's search answers 503), never "not found".
// go-redis's Pipelined returns the first failed command's error in queue
// order, and a key missing before it (redis.Nil) hid it (see pipelined).
func TestLookupOfANodeDownIsAnError(t *testing.T) {
	c := testredis.StartCluster(t)
	b := &backend{r: openTest(t, Options{URL: c.URL(), Cluster: true})}
	ctx := ctxT(t)
	cc := b.r.client.(*redis.ClusterClient)
	node := func(key string) string {
		rec, _ := b.r.keys.delivery(key)
		m, err := cc.MasterForKey(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		return m.Options().Addr
	}
	missing := "id:none"
	var present string
	for i := 0; ; i++ {
		if k := fmt.Sprintf("id:there-%d", i); node(k) != node(missing) {
			present = k
			break
		}
	}
	process(t, b, present, attemptAt(time.Now(), events.Final, "FORBIDDEN", "order: cancelled"))
	if f, err := b.r.Lookup(ctx, []string{missing, present}, "", "", 0); err != nil || len(f.Deliveries) != 1 {
		t.Fatalf("before: %+v, %v", f, err)
	}
	// The node of the present delivery goes away (the others still answer
	// for cluster-node-timeout).
	dead := node(present)
	_ = redis.NewClient(&redis.Options{Addr: dead}).ShutdownNoSave(context.Background()).Err()
	time.Sleep(200 * time.Millisecond)
	lctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	f, err := b.r.Lookup(lctx, []string{missing, present}, "", "", 0)
	if err == nil {
		t.Errorf("Lookup with %s's node down: %d deliveries, no error; want an error (the store unavailable), not \"not found\"", present, len(f.Deliveries))
	}
}
