package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// NoEviction is the only maxmemory-policy under which Redis keeps every
// key: full, it refuses writes (the delivery answers 503 and is sent
// again) instead of deleting keys. Any other policy may delete a delivery
// record, and the next copy of that event is then processed again.
const NoEviction = "noeviction"

// ErrPolicyHidden means Redis refuses both ways of reading its
// maxmemory-policy (CONFIG GET and INFO memory), as some managed Redis
// services do: the policy is unknown, not wrong.
var ErrPolicyHidden = errors.New("redis refuses CONFIG and INFO: its maxmemory-policy cannot be read")

// MaxmemoryPolicy reads Redis's maxmemory-policy: CONFIG GET, else the
// maxmemory_policy line of INFO memory. On a Redis Cluster every master
// is read and the first policy that is not NoEviction is returned (with
// the master's address), since one evicting shard is enough to lose
// records. The embedded Redis never evicts: NoEviction. Errors:
// ErrPolicyHidden when both commands are refused, events.ErrUnavailable when
// Redis does not answer.
func (r *Redis) MaxmemoryPolicy(ctx context.Context) (string, error) {
	if r.mini != nil {
		return NoEviction, nil
	}
	cluster, ok := r.client.(*redis.ClusterClient)
	if !ok {
		return maxmemoryPolicy(ctx, r.client)
	}
	var (
		mu     sync.Mutex
		policy = NoEviction
	)
	err := cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		p, err := maxmemoryPolicy(ctx, c)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if p != NoEviction && policy == NoEviction {
			policy = fmt.Sprintf("%s (on %s)", p, c.Options().Addr)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return policy, nil
}

// maxmemoryPolicy reads the policy of the node (or Sentinel-followed
// master) that c talks to.
func maxmemoryPolicy(ctx context.Context, c redis.Cmdable) (string, error) {
	cfg, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err == nil && cfg["maxmemory-policy"] != "" {
		return cfg["maxmemory-policy"], nil
	}
	if err != nil && !isServerError(err) {
		return "", unavailable("config get", err)
	}
	// CONFIG refused or renamed away (managed Redis): INFO often remains.
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		if isServerError(err) {
			return "", ErrPolicyHidden
		}
		return "", unavailable("info", err)
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "maxmemory_policy:"); ok && v != "" {
			return v, nil
		}
	}
	return "", ErrPolicyHidden
}

// isServerError is an error reply of Redis (it answered, and said no),
// rather than a network failure.
func isServerError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && !errors.Is(err, redis.Nil)
}
