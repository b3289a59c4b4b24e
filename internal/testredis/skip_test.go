package testredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// tb records what a test helper asked of its test, without stopping it.
type tb struct {
	testing.TB
	fatal, skip string
}

func (r *tb) Helper() {}
func (r *tb) Fatalf(format string, args ...any) {
	if r.fatal == "" {
		r.fatal = fmt.Sprintf(format, args...)
	}
}
func (r *tb) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *tb) Skip(args ...any)  { r.skip = fmt.Sprint(args...) }

// Issue 21: without redis-server, 25 real-Redis tests skipped and go test
// still said ok. With CI=true they fail; otherwise they skip, and main
// says in one line how many and why.
func TestMissingRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ci        string
		noMain    bool
		skips     int
		reasons   []string // the reason of each skip; noRedisServer when nil
		wantFatal string   // "" : skips
		wantLine  string   // main's line; "" for none
	}{
		{name: "CI=true fails", ci: "true", skips: 2, wantFatal: "CI=true: real-Redis tests must run in CI"},
		{name: "CI=1 fails", ci: "1", skips: 1, wantFatal: "CI=true"},
		{name: "elsewhere one skips", skips: 1, wantLine: "testredis: 1 real-Redis test skipped: redis-server is not on PATH (install redis-server"},
		{name: "elsewhere many skip", ci: "false", skips: 25, wantLine: "testredis: 25 real-Redis tests skipped: redis-server is not on PATH"},
		{name: "none skip", wantLine: ""},
		{name: "a skip without Main fails", noMain: true, skips: 1, wantFatal: "TestMain must call testredis.Main"},
		{name: "two reasons, one line", skips: 3, reasons: []string{"a", "b", "b"}, wantLine: "testredis: 3 real-Redis tests skipped: a (1); b (2) (install"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			p := &pool{getenv: env(nil), lookPath: notFound, out: &out}
			getenv := env(map[string]string{"CI": tt.ci})
			var got []*tb
			run := func() int {
				for i := range tt.skips {
					r := &tb{TB: t}
					why := noRedisServer
					if tt.reasons != nil {
						why = tt.reasons[i]
					}
					missingIn(r, why, getenv, p)
					got = append(got, r)
				}
				return 0
			}
			if tt.noMain {
				run()
			} else {
				p.main(runner(run))
			}
			for i, r := range got {
				switch {
				case tt.wantFatal != "" && (!strings.Contains(r.fatal, tt.wantFatal) || r.skip != ""):
					t.Errorf("test %d: fatal %q, skip %q; want it failed with %q", i, r.fatal, r.skip, tt.wantFatal)
				case tt.wantFatal == "" && (r.fatal != "" || r.skip == ""):
					t.Errorf("test %d: fatal %q, skip %q; want it skipped", i, r.fatal, r.skip)
				}
			}
			line := out.String()
			switch {
			case tt.wantLine == "" && line != "":
				t.Errorf("main said %q, want nothing", line)
			case tt.wantLine != "" && (strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, tt.wantLine)):
				t.Errorf("main said %q, want one line starting %q", line, tt.wantLine)
			}
		})
	}
}

// A Cluster of three masters: keys spread over the three, every node
// agrees, and a script over two slots is refused as in production.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)
	if len(c.Addrs()) != 3 {
		t.Fatalf("%d masters, want 3", len(c.Addrs()))
	}
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	for i := range 30 {
		if err := cc.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET k%d: %v", i, err)
		}
	}
	var holding atomic.Int32 // ForEachMaster calls at once
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if n > 0 {
			holding.Add(1)
		}
		return err
	})
	if err != nil || holding.Load() != 3 {
		t.Errorf("%d masters hold keys (%v), want all 3", holding.Load(), err)
	}
	err = cc.Eval(ctx, "return redis.call('GET', KEYS[1]) .. redis.call('GET', KEYS[2])", []string{"k1", "k2"}).Err()
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("a script over two slots: %v, want CROSSSLOT", err)
	}
	if err := cc.Eval(ctx, "return redis.call('GET', KEYS[1])", []string{"{t}a"}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Errorf("a script over one slot: %v", err)
	}
}

// SharedClusterURL gives every test of the binary the same Cluster.
func TestSharedCluster(t *testing.T) {
	t.Parallel()
	a, b := SharedClusterURL(t), SharedClusterURL(t)
	if a != b || strings.Count(a, ",") != 2 {
		t.Fatalf("SharedClusterURL = %q then %q, want one URL naming three nodes", a, b)
	}
}
