package testredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterMasters is how many masters a test Cluster has: three, the
// fewest Redis Cluster accepts for a production layout, so that keys of
// one test land on different nodes and a script that touches keys of two
// slots fails as it would in production (CROSSSLOT).
const clusterMasters = 3

// clusterTimeout bounds how long a Cluster may take to agree on its
// layout (cluster_state:ok on every node); on a healthy machine it takes
// about a second of gossip.
const clusterTimeout = 30 * time.Second

// Cluster is a Redis Cluster of three masters (no replicas), each a
// redis-server process on a loopback port, without persistence.
type Cluster struct {
	nodes []*process
	dirs  []string
}

// StartCluster returns a running Cluster that t owns, stopped when t ends.
// It skips t (fails it under CI=true) when redis-server is not on PATH.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	c, err := startCluster(bin, dir)
	if err != nil {
		t.Fatalf("testredis: %v", err)
	}
	t.Cleanup(c.stop)
	return c
}

// Addrs are the masters' host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// URL is a redis:// URL that names every master, as REDIS_URL does with
// REDIS_CLUSTER=true.
func (c *Cluster) URL() string { return "redis://" + strings.Join(c.Addrs(), ",") }

func (c *Cluster) stop() {
	for _, n := range c.nodes {
		n.stop()
	}
}

// startCluster starts three cluster-enabled redis-server processes with
// their files under dir, gives each a third of the slots, joins them, and
// waits until every node says cluster_state:ok.
func startCluster(bin, dir string) (*Cluster, error) {
	c := &Cluster{}
	for i := range clusterMasters {
		d := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		p, _, err := startOnPort(freeClusterPort, bin, d,
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(d, "nodes.conf"),
			"--cluster-node-timeout", "5000")
		if err != nil {
			c.stop()
			return nil, fmt.Errorf("starting cluster node %d: %w", i+1, err)
		}
		c.nodes, c.dirs = append(c.nodes, p), append(c.dirs, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := c.form(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// form does what `redis-cli --cluster create` does, without needing
// redis-cli: distinct config epochs, a third of the 16384 slots to each
// master, then MEET from the first to the others.
func (c *Cluster) form(ctx context.Context) error {
	clients := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.addr, MaxRetries: -1})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, cl := range clients {
		if err := cl.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("cluster node %s: CLUSTER SET-CONFIG-EPOCH: %w", c.nodes[i].addr, err)
		}
		lo, hi := i*slots/len(clients), (i+1)*slots/len(clients)-1
		if err := cl.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			return fmt.Errorf("cluster node %s: CLUSTER ADDSLOTS %d..%d: %w", c.nodes[i].addr, lo, hi, err)
		}
	}
	for _, n := range c.nodes[1:] {
		host, port, _ := net.SplitHostPort(n.addr)
		if err := clients[0].ClusterMeet(ctx, host, port).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s: %w", n.addr, err)
		}
	}
	for {
		ready := 0
		var last string
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(clients))+"\r\n") {
				ready++
				continue
			}
			last = fmt.Sprintf("node %s: %v %q", c.nodes[i].addr, err, firstLines(info, 3))
		}
		if ready == len(clients) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster did not reach cluster_state:ok within %v (%s)", clusterTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\r\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " ")
}

// freeClusterPort is a free loopback port whose cluster bus port (the port
// plus 10000) is free too.
func freeClusterPort() (string, error) {
	for range 20 {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		p, _ := strconv.Atoi(port)
		if p+10000 > 65535 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return "", errors.New("finding a free port whose cluster bus port (port+10000) is free too: none in 20 tries")
}

// clusterChoice is the Cluster a test binary's tests share, started by the
// first SharedClusterURL and stopped by Main.
type clusterChoice struct {
	mu      sync.Mutex
	decided bool
	c       *Cluster
	dir     string
	skip    string
	err     error
}

// SharedClusterURL returns the URL of a three-master Redis Cluster that
// the package's tests share (see Cluster.URL): started by the first call,
// stopped by Main. It skips t (fails it under CI=true) when redis-server
// is not on PATH, and fails it when the Cluster does not form. Tests
// sharing it must keep to their own keys.
func SharedClusterURL(t testing.TB) string {
	t.Helper()
	if !shared.running() {
		t.Fatal(errNoMain)
	}
	c, skip, err := shared.cluster.get(shared.lookPath)
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		missing(t, skip)
	}
	return c.URL()
}

func (cc *clusterChoice) get(lookPath func(string) (string, error)) (*Cluster, string, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.decided {
		return cc.c, cc.skip, cc.err
	}
	cc.decided = true
	bin, err := lookPath("redis-server")
	if err != nil {
		cc.skip = noRedisServer
		return nil, cc.skip, nil
	}
	if cc.dir, err = os.MkdirTemp("", "testredis-cluster-"); err != nil {
		cc.err = fmt.Errorf("testredis: a directory for the cluster: %w", err)
		return nil, "", cc.err
	}
	if cc.c, err = startCluster(bin, cc.dir); err != nil {
		cc.err = fmt.Errorf("testredis: %w", err)
	}
	return cc.c, "", cc.err
}

func (cc *clusterChoice) stop() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.c != nil {
		cc.c.stop()
		cc.c = nil
	}
	if cc.dir != "" {
		_ = os.RemoveAll(cc.dir)
		cc.dir = ""
	}
}
