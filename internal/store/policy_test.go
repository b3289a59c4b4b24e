package store

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// adminClient is a plain client of s, for a test to configure the server.
func adminClient(t *testing.T, s *testredis.Server) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// The policy is read by CONFIG GET, by INFO memory where CONFIG is
// refused, and is ErrPolicyHidden where both are (as on some managed
// Redis services), on a real redis-server whose ACL users stand for them.
func TestMaxmemoryPolicy(t *testing.T) {
	t.Parallel()
	s := testredis.Real(t)
	admin := adminClient(t, s)
	ctx := t.Context()
	for _, acl := range [][]any{
		{"ACL", "SETUSER", "noconfig", "on", ">pw", "~*", "&*", "+@all", "-config"},
		{"ACL", "SETUSER", "managed", "on", ">pw", "~*", "&*", "+@all", "-config", "-info"},
	} {
		if err := admin.Do(ctx, acl...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	open := func(user string) (*Redis, *atomic.Int32) {
		url := s.URL()
		if user != "" {
			url = strings.Replace(url, "redis://", "redis://"+user+":pw@", 1)
		}
		var failed atomic.Int32
		r, err := Open(ctx, Options{URL: url, OnError: func(string) { failed.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r, &failed
	}
	tests := []struct {
		name, user, policy string
		wantErr            error
	}{
		{"CONFIG GET", "", NoEviction, nil},
		{"INFO memory where CONFIG is refused", "noconfig", NoEviction, nil},
		{"both refused", "managed", "", ErrPolicyHidden},
	}
	for _, tt := range tests {
		r, failed := open(tt.user)
		policy, err := r.MaxmemoryPolicy(ctx)
		if policy != tt.policy || !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: MaxmemoryPolicy = %q, %v; want %q, %v", tt.name, policy, err, tt.policy, tt.wantErr)
		}
		if n := failed.Load(); n != 0 {
			t.Errorf("%s: %d refused commands counted as Redis errors", tt.name, n)
		}
	}

	// An evicting policy is seen both ways.
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"", "noconfig"} {
		r, _ := open(user)
		if policy, err := r.MaxmemoryPolicy(ctx); policy != "allkeys-lru" || err != nil {
			t.Errorf("user %q: MaxmemoryPolicy = %q, %v; want allkeys-lru", user, policy, err)
		}
	}
}

// miniredis has neither CONFIG nor INFO memory: like a managed Redis that
// refuses both. The embedded Redis never evicts. A Redis that does not
// answer is events.ErrUnavailable, not hidden.
func TestMaxmemoryPolicyMiniredis(t *testing.T) {
	t.Parallel()
	m := miniredis.RunT(t)
	var failed atomic.Int32
	r := openTest(t, Options{URL: "redis://" + m.Addr(), OnError: func(string) { failed.Add(1) }})
	if policy, err := r.MaxmemoryPolicy(t.Context()); !errors.Is(err, ErrPolicyHidden) {
		t.Errorf("miniredis: %q, %v; want ErrPolicyHidden", policy, err)
	}
	if failed.Load() != 0 {
		t.Error("the refused CONFIG or INFO counted as a Redis error")
	}
	m.Close()
	if _, err := r.MaxmemoryPolicy(t.Context()); !errors.Is(err, events.ErrUnavailable) || errors.Is(err, ErrPolicyHidden) {
		t.Errorf("miniredis down: %v, want ErrUnavailable", err)
	}

	embedded, err := Open(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer embedded.Close()
	if policy, err := embedded.MaxmemoryPolicy(t.Context()); policy != NoEviction || err != nil {
		t.Errorf("embedded: %q, %v", policy, err)
	}
}
