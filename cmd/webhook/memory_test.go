package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// The ceilings of what one subscription costs in Redis once its ORDER is
// answered: MEMORY USAGE of every key the ORDER wrote for it, its delivery
// record, reply, attempt history and indexes included. They guard against
// growth; issue 25's goal is 1,536 bytes, out of reach for this set of
// keys whatever their encoding (docs/redis.md, "Bytes per subscription").

// withHelixConfiguration is an ORDER fixture with what a Business Access
// ORDER must carry for Helix (payload.configuration).
func withHelixConfiguration(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	payload := m["event"].(map[string]any)["payload"].(map[string]any)
	payload["configuration"] = map[string]any{"requestingCustomerId": "9001", "accountId": "4242"}
	b, _ := json.Marshal(m)
	return b
}

// The Redis bytes of one subscription after its ORDER, on a real
// redis-server of the test's own: MEMORY USAGE of every key the ORDER
// wrote, printed per key. Each product's ORDER is measured on its own
// (Redis is flushed between them). The structures every delivery shares
// (the per-minute and per-hour outcome counters, the recent failures) are
// printed apart: they do not grow with the subscriptions.
func TestRedisBytesPerOrder(t *testing.T) {
	t.Parallel()
	srv := testredis.Real(t)
	_, url := startSandbox(t, q2sandbox.Config{})
	env := q2Env(url, srv.URL())
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	svc := startService(t, env)
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(srv.URL(), "redis://"), "/0")})
	defer rdb.Close()
	ctx := context.Background()

	for _, tc := range []struct {
		name, extension, subscription string
		helix                         bool
		ceiling                       int64
	}{
		{"Online Banking Plus (q2)", "my-product-name", "a3c9c831-e550-428f-b89c-43c5e7b338b9", false, 2400},
		{"Business Access (q2, helix)", "business-access", "b3c9c831-e550-428f-b89c-43c5e7b338b9", true, 2800},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Flush()
			body := withSubscription(t, "subscription-order.json", tc.subscription, "")
			if tc.helix {
				body = withHelixConfiguration(t, body)
			}
			wantReply(t, post(t, svc.url+"/marketplace/"+tc.extension, body, http.Header{"Webhook-Id": {"msg_2Nf8kQ1bXz7Yp0aLmC4rT9vE"}}), 200, "")
			keys, err := rdb.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			var b strings.Builder
			own, shared := int64(0), int64(0)
			for _, k := range keys {
				n, err := rdb.MemoryUsage(ctx, k, 0).Result()
				if err != nil {
					t.Fatal(err)
				}
				typ, _ := rdb.Type(ctx, k).Result()
				ttl, _ := rdb.PTTL(ctx, k).Result()
				what := "subscription"
				if strings.Contains(k, "{stats}") || strings.Contains(k, "{deliveries}") || strings.Contains(k, "{settle}") {
					what, shared = "shared", shared+n
				} else {
					own += n
				}
				fmt.Fprintf(&b, "  %5d  %-12s %-6s ttl=%-5v %s\n", n, what, typ, ttl > 0, k)
				if strings.HasSuffix(k, ":attempts") {
					v, _ := rdb.Get(ctx, k).Result()
					fmt.Fprintf(&b, "         its attempt history, %d bytes: %s\n", len(v), v)
				}
			}
			t.Logf("Redis bytes after one ORDER of %s: %d for the subscription, %d shared, in %d keys\n%s",
				tc.name, own, shared, len(keys), b.String())
			if own > tc.ceiling {
				t.Errorf("one ORDER costs %d bytes of Redis, over the ceiling of %d", own, tc.ceiling)
			}
		})
	}
}
