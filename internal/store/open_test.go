package store

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	type want struct {
		addrs              []string
		user, pass         string
		db                 int
		tls                bool
		sentUser, sentPass string
	}
	tests := []struct {
		url  string
		want want
	}{
		{"redis://127.0.0.1:6379/0", want{addrs: []string{"127.0.0.1:6379"}}},
		{"redis://localhost", want{addrs: []string{"localhost:6379"}}},
		{"REDIS://h:7000/3", want{addrs: []string{"h:7000"}, db: 3}},
		{"redis://:s3cret@h:6380/", want{addrs: []string{"h:6380"}, pass: "s3cret"}},
		{"redis://app:p%40ss%2Cw@h1:6379,h2:6380,h3/0", want{addrs: []string{"h1:6379", "h2:6380", "h3:6379"}, user: "app", pass: "p@ss,w"}},
		{"rediss://[::1]:6379,10.0.0.2", want{addrs: []string{"[::1]:6379", "10.0.0.2:6379"}, tls: true}},
		{"redis://:pw@s1:26379,s2:26379/1?sentinel_password=sp&sentinel_username=su",
			want{addrs: []string{"s1:26379", "s2:26379"}, pass: "pw", db: 1, sentUser: "su", sentPass: "sp"}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			o, err := parseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			got := want{addrs: o.Addrs, user: o.Username, pass: o.Password, db: o.DB, tls: o.TLSConfig != nil,
				sentUser: o.SentinelUsername, sentPass: o.SentinelPassword}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// Every Options field Open refuses is an *OptionError naming the field,
// never an environment variable (the caller names its own settings), and
// never showing the password.
func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		o      Options
		option string
	}{
		{"no scheme", Options{URL: "127.0.0.1:6379"}, "URL"},
		{"wrong scheme", Options{URL: "http://127.0.0.1:6379"}, "URL"},
		{"unix socket", Options{URL: "unix:///tmp/redis.sock"}, "URL"},
		{"no host", Options{URL: "redis://"}, "URL"},
		{"empty host in list", Options{URL: "redis://h1:6379,,h2:6379"}, "URL"},
		{"bad port", Options{URL: "redis://h:99999"}, "URL"},
		{"port not a number", Options{URL: "redis://h:port"}, "URL"},
		{"db not a number", Options{URL: "redis://h:6379/zero"}, "URL"},
		{"db path too deep", Options{URL: "redis://h:6379/0/1"}, "URL"},
		{"unknown query parameter", Options{URL: "redis://h:6379/0?dial_timeout=3"}, "URL"},
		{"fragment", Options{URL: "redis://h:6379/0#x"}, "URL"},
		{"bad user info", Options{URL: "redis://user:pa%zzsecret@h:6379"}, "URL"},
		{"cluster with a db", Options{URL: "redis://h1:6379,h2:6379/2"}, "URL"},
		{"cluster flag with a db", Options{URL: "redis://h1:6379/2", Cluster: true}, "URL"},
		{"cluster and sentinel", Options{URL: "redis://h1:6379", Cluster: true, MasterName: "m"}, "Cluster"},
		{"sentinel without URL", Options{MasterName: "mymaster"}, "URL"},
		{"negative wait", Options{URL: "redis://h1:6379", WaitReplicas: -1}, "WaitReplicas"},
		{"wait on the embedded redis", Options{WaitReplicas: 1}, "WaitReplicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			r, err := Open(ctx, tt.o)
			if err == nil {
				_ = r.Close()
				t.Fatal("Open succeeded, want an error")
			}
			msg := err.Error()
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tt.option {
				t.Errorf("error %q (%T), want an *OptionError about %s", msg, err, tt.option)
			}
			if strings.Contains(msg, "REDIS_") {
				t.Errorf("error %q names an environment variable: the caller does", msg)
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("error %q shows the password", msg)
			}
			if errors.Is(err, events.ErrUnavailable) {
				t.Errorf("error %q is a configuration error, not ErrUnavailable", msg)
			}
			if err := tt.o.Validate(); err == nil || err.Error() != msg {
				t.Errorf("Validate = %v, want the error Open gave", err)
			}
		})
	}
}

// Validate reports every bad field at once, so that a configuration is
// corrected in one go.
func TestValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	err := Options{MasterName: "m", Cluster: true, WaitReplicas: -1}.Validate()
	var options []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var oe *OptionError
		if !errors.As(e, &oe) {
			t.Fatalf("%v is not an *OptionError", e)
		}
		options = append(options, oe.Option)
	}
	if want := []string{"WaitReplicas", "Cluster", "URL"}; !reflect.DeepEqual(options, want) {
		t.Errorf("fields %v, want %v", options, want)
	}
	if err := (Options{URL: "redis://h:6379/0"}).Validate(); err != nil {
		t.Errorf("good options: %v", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Open(ctx, Options{URL: "redis://" + addr + "/0"})
	if !errors.Is(err, events.ErrUnavailable) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Open: %v, want ErrUnavailable naming the address", err)
	}
	var ae *AuthError
	if errors.As(err, &ae) {
		t.Errorf("Open: %v is not about credentials", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Open took %v to fail, want fast", d)
	}
}

// Credentials Redis refuses are an *AuthError saying which problem it is,
// not "unavailable", and never the password.
func TestOpenAuth(t *testing.T) {
	t.Parallel()
	const password = "s3cret-pw-4f1d"
	type server struct {
		name string
		url  func(t *testing.T, pass string) string // a Redis requiring password, with pass in the URL
	}
	servers := []server{
		{"miniredis", func(t *testing.T, pass string) string {
			m := miniredis.RunT(t)
			m.RequireAuth(password)
			return "redis://" + userinfo(pass) + m.Addr()
		}},
		{"redis-server", func(t *testing.T, pass string) string {
			s := testredis.Real(t)
			c := redis.NewClient(&redis.Options{Addr: strings.TrimSuffix(strings.TrimPrefix(s.URL(), "redis://"), "/0")})
			defer c.Close()
			if err := c.ConfigSet(t.Context(), "requirepass", password).Err(); err != nil {
				t.Fatal(err)
			}
			return strings.Replace(s.URL(), "redis://", "redis://"+userinfo(pass), 1)
		}},
	}
	tests := []struct {
		name, pass, problem string
	}{
		{"no password", "", "Redis requires a password and none was given"},
		{"wrong password", "not-" + password, "the user or password is wrong"},
	}
	for _, srv := range servers {
		for _, tt := range tests {
			t.Run(srv.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				url := srv.url(t, tt.pass)
				ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
				defer cancel()
				_, err := Open(ctx, Options{URL: url})
				var ae *AuthError
				if !errors.As(err, &ae) || ae.Problem != tt.problem {
					t.Fatalf("Open: %v, want an *AuthError %q", err, tt.problem)
				}
				if errors.Is(err, events.ErrUnavailable) || strings.Contains(err.Error(), password) {
					t.Errorf("Open: %q: unavailable, or shows the password", err)
				}
			})
		}
	}
}

func userinfo(pass string) string {
	if pass == "" {
		return ""
	}
	return ":" + pass + "@"
}

func TestOpenEmbedded(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.WarnLevel)
	r, err := Open(t.Context(), Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Embedded() {
		t.Error("Embedded() = false with an empty URL")
	}
	// The service says "demo mode" in one line of its own; the store adds
	// none.
	if logs.Len() != 0 {
		t.Errorf("want no log line, got %v", logs.All())
	}
	if !strings.HasPrefix(r.mini.Addr(), "127.0.0.1:") {
		t.Errorf("embedded Redis on %s, want loopback", r.mini.Addr())
	}
	if err := r.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Leases run out by the clock in embedded mode: nothing fast-forwards
	// it there, and a crashed holder must not block a delivery forever.
	req := inbox.ClaimRequest{Key: "id:embedded", Fingerprint: fpA, Lease: 20 * time.Millisecond, TTL: time.Hour}
	if c, err := r.Claim(t.Context(), req); err != nil || c.State != inbox.ClaimFresh {
		t.Fatalf("Claim = %+v, %v", c, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := r.Claim(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if c.State == inbox.ClaimFresh {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease still held after 2s: %+v", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.Close() != nil {
		t.Error("Close failed")
	}
}

func TestOpenNotEmbedded(t *testing.T) {
	t.Parallel()
	b := newMiniBackend(t)
	if b.r.Embedded() {
		t.Error("Embedded() = true with a URL")
	}
}

// The cluster code path (routing by hash tag, EVALSHA on the key's slot)
// against miniredis, which answers CLUSTER SLOTS as a one-node cluster.
func TestClusterMode(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	r := openTest(t, Options{URL: "redis://" + mr.Addr(), Cluster: true})
	if _, ok := r.client.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T, want a cluster client", r.client)
	}
	ctx := ctxT(t)
	req := inbox.ClaimRequest{Key: "id:cluster", Fingerprint: fpA, Lease: time.Second, TTL: time.Hour}
	c, err := r.Claim(ctx, req)
	if err != nil || c.State != inbox.ClaimFresh {
		t.Fatalf("Claim = %+v, %v", c, err)
	}
	if err := r.Complete(ctx, req.Key, c.Token, okResult, time.Hour); err != nil {
		t.Fatal(err)
	}
	if c, err := r.Claim(ctx, req); err != nil || c.State != inbox.ClaimDone {
		t.Fatalf("Claim = %+v, %v", c, err)
	}
	if err := saveLocked(ctx, r, testAccount("sub-c", "9")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AccountByIdentifier(ctx, "9"); err != nil {
		t.Fatal(err)
	}
}

// freeAddr returns a loopback address nobody listens on (at the moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestClientLogger(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.WarnLevel)
	// Not SetClientLogger: the go-redis logger is process-wide and other
	// tests run in parallel.
	clientLogger{zap.New(core).Sugar()}.Printf(t.Context(), "redis: failed to dial after %d attempts", 2)
	if logs.FilterMessage("redis: failed to dial after 2 attempts").Len() != 1 {
		t.Errorf("logged %v", logs.All())
	}
}
