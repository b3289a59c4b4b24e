package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdsandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testplan"
)

// rig is a floor on miniredis and the in-memory Q2 sandbox.
type rig struct {
	floor   *floor
	base    string // the extension URL without the extension
	url     string // the extension URL of a Q2 product
	sandbox testplan.Sandbox
	redis   *miniredis.Miniredis
	q2      *q2api.Client // the sandbox's Q2, to look at what the floor enrolled
}

func newRig(t *testing.T, maxInFlight int, waitForOther time.Duration) *rig {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	sb := sandbox.New(q2sandbox.New(q2sandbox.Config{ClientID: "floor", ClientSecret: "floor-secret"}),
		qbdsandbox.New(), helixsandbox.New(helixsandbox.DefaultKey, helixsandbox.DefaultSecret))
	q2 := httptest.NewServer(sb.Handler())
	t.Cleanup(q2.Close)
	f, err := newFloor(config{
		Q2BaseURL: q2.URL, ClientID: "floor", ClientSecret: "floor-secret",
		HelixKey: helixsandbox.DefaultKey, HelixSecret: helixsandbox.DefaultSecret, QBDProductID: "prod_qbd",
		EventTTL: time.Hour, MaxInFlight: maxInFlight, WaitForOther: waitForOther,
	}, rdb, q2.Client())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	api, err := q2api.New(q2.URL, q2api.WithCredentials("floor", "floor-secret"))
	if err != nil {
		t.Fatal(err)
	}
	return &rig{floor: f, q2: api, base: srv.URL + "/marketplace/", url: srv.URL + "/marketplace/my-product-name", sandbox: testplan.Sandbox{Sandbox: sb}, redis: mr}
}

func orderBody(subscription string) []byte {
	return fmt.Appendf(nil, `{"subscription_id":%q,"event_type":"SUBSCRIPTION_ORDER","event":{"creator":{"firstName":"John","lastName":"Doe"},"payload":{"company":{"name":"Doe Holdings"}}}}`, subscription)
}

type got struct {
	status   int
	body     []byte
	replayed bool
	doc      reply
}

func post(t *testing.T, url string, body []byte) got {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	g := got{status: resp.StatusCode, body: b, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	if err := json.Unmarshal(b, &g.doc); err != nil {
		t.Fatalf("reply %q is not a reply document: %v", b, err)
	}
	return g
}

// postAtOnce sends n copies of body at once and returns their replies.
func postAtOnce(t *testing.T, url string, body []byte, n int) []got {
	t.Helper()
	replies := make([]got, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { replies[i] = post(t, url, body) })
	}
	wg.Wait()
	return replies
}

func hashOf(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

func TestNewThenCopy(t *testing.T) {
	r := newRig(t, 8, 0)
	body := orderBody("sub-1")
	first := post(t, r.url, body)
	if first.status != http.StatusOK || !first.doc.Success || first.replayed {
		t.Fatalf("first delivery = %d %s (replayed %t); want 200 success", first.status, first.body, first.replayed)
	}
	again := post(t, r.url, body)
	if again.status != http.StatusOK || !bytes.Equal(again.body, first.body) || !again.replayed {
		t.Fatalf("copy = %d %s (replayed %t); want the same bytes, replayed", again.status, again.body, again.replayed)
	}
	st := r.sandbox.Stats()
	if st.Calls["Enrollment"] != 1 || st.Calls["LookupUser"] != 1 || st.Calls["token"] != 1 || len(st.Calls) != 3 || st.Users != 1 {
		t.Fatalf("sandbox saw %v with %d users; want one token, one Enrollment, one LookupUser, one user", st.Calls, st.Users)
	}
	users, err := r.q2.LookupUser(context.Background(), q2api.UserQuery{LoginName: logonName("sub-1")})
	if err != nil || len(users) != 1 {
		t.Fatalf("the sandbox has %d users with the logon (%v); want 1", len(users), err)
	}
	if want := strconv.FormatInt(users[0].UserID, 10); first.doc.AccountIdentifier != want {
		t.Fatalf("accountIdentifier %q; want the user id %s, as the service answers", first.doc.AccountIdentifier, want)
	}
}

func TestStormOfOneNewDeliveryEnrollsOnce(t *testing.T) {
	r := newRig(t, 64, 0)
	body := orderBody("sub-storm")
	const copies = 40
	replies := postAtOnce(t, r.url, body, copies)
	replayed := 0
	for i, g := range replies {
		if g.status != http.StatusOK || !bytes.Equal(g.body, replies[0].body) {
			t.Fatalf("copy %d = %d %s; want 200 and the same bytes as copy 0 (%s)", i, g.status, g.body, replies[0].body)
		}
		if g.replayed {
			replayed++
		}
	}
	if replayed != copies-1 {
		t.Fatalf("%d of %d copies marked Idempotent-Replayed; want all but the one processed", replayed, copies)
	}
	if n := r.sandbox.Stats().Calls["Enrollment"]; n != 1 {
		t.Fatalf("%d Enrollment calls for %d copies; want 1", n, copies)
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"not JSON", []byte("{"), http.StatusBadRequest, "INVALID_RESPONSE"},
		{"no subscription", []byte(`{"event":{}}`), http.StatusBadRequest, "INVALID_RESPONSE"},
		{"nobody to enroll", []byte(`{"subscription_id":"s","event":{"creator":null,"payload":{}}}`), http.StatusOK, "USER_NOT_FOUND"},
		{"too large", append(append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), maxBody)...), `"}`...), http.StatusRequestEntityTooLarge, "INVALID_RESPONSE"},
	}
	r := newRig(t, 8, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := post(t, r.url, tt.body)
			if g.status != tt.status || g.doc.Success || g.doc.ErrorCode != tt.code {
				t.Fatalf("got %d %s; want %d %s", g.status, g.body, tt.status, tt.code)
			}
		})
	}
	if n := r.sandbox.Stats().Calls["Enrollment"]; n != 0 {
		t.Fatalf("%d Enrollment calls for refused deliveries; want 0", n)
	}
}

func TestAtCapacity(t *testing.T) {
	r := newRig(t, 1, 0)
	r.floor.slots <- struct{}{} // the only slot is taken
	resp, err := http.Post(r.url, "application/json", bytes.NewReader(orderBody("sub-busy")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-r.floor.slots
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("at capacity: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if g := post(t, r.url, orderBody("sub-busy")); g.status != http.StatusOK {
		t.Fatalf("with a free slot: %d %s; want 200", g.status, g.body)
	}
}

// TestCopyNeedsNoSlot: a stored reply is answered with every slot taken,
// as the service answers a byte-identical copy from its copy key, so that
// the floor of the many-connections phase is the service's rule too.
func TestCopyNeedsNoSlot(t *testing.T) {
	r := newRig(t, 1, 0)
	body := orderBody("sub-copy")
	if g := post(t, r.url, body); g.status != http.StatusOK {
		t.Fatalf("first delivery: %d %s; want 200", g.status, g.body)
	}
	r.floor.slots <- struct{}{} // the only slot is taken
	defer func() { <-r.floor.slots }()
	if g := post(t, r.url, body); g.status != http.StatusOK || !g.replayed {
		t.Fatalf("copy at capacity: %d %s (replayed %t); want 200 replayed", g.status, g.body, g.replayed)
	}
}

func TestQ2FailureReleasesTheClaim(t *testing.T) {
	r := newRig(t, 8, 0)
	if err := r.sandbox.SetFault(sandbox.Fault{Route: "Enrollment", Status: 503, Times: 1}); err != nil {
		t.Fatal(err)
	}
	body := orderBody("sub-fault")
	if g := post(t, r.url, body); g.status != http.StatusServiceUnavailable || g.doc.ErrorCode != "TRANSPORT_ERROR" {
		t.Fatalf("Q2 down: %d %s; want 503 TRANSPORT_ERROR", g.status, g.body)
	}
	if g := post(t, r.url, body); g.status != http.StatusOK || !g.doc.Success || g.replayed {
		t.Fatalf("next copy: %d %s (replayed %t); want 200 success, processed again", g.status, g.body, g.replayed)
	}
	if n := r.sandbox.Stats().Calls["Enrollment"]; n != 2 {
		t.Fatalf("%d Enrollment calls; want 2 (the failed one and the retry)", n)
	}
}

func TestTokenRefusedAfterSandboxReset(t *testing.T) {
	r := newRig(t, 8, 0)
	if g := post(t, r.url, orderBody("sub-a")); g.status != http.StatusOK {
		t.Fatalf("first order: %d %s", g.status, g.body)
	}
	r.sandbox.Reset() // forgets the floor's token
	if g := post(t, r.url, orderBody("sub-b")); g.status != http.StatusOK || !g.doc.Success {
		t.Fatalf("after a reset: %d %s; want 200 success with a new token", g.status, g.body)
	}
	st := r.sandbox.Stats()
	if st.Calls["token"] != 1 || st.Calls["Enrollment"] != 2 {
		t.Fatalf("after a reset the sandbox saw %v; want one token and two Enrollment calls (refused, then accepted)", st.Calls)
	}
}

func TestClaimHeldElsewhere(t *testing.T) {
	tests := []struct {
		name   string
		answer bool // the other holder stores its reply
		status int
	}{
		{"holder answers", true, http.StatusOK},
		{"holder never answers", false, http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 8, 300*time.Millisecond)
			body := orderBody("sub-other")
			h := hashOf(body)
			rdb := redis.NewClient(&redis.Options{Addr: r.redis.Addr()})
			defer rdb.Close()
			ctx := context.Background()
			if err := rdb.Set(ctx, claimKey(h), "1", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if tt.answer {
				if err := rdb.Set(ctx, replyKey(h), `{"success":true,"accountIdentifier":"other"}`, time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
			}
			// process, not a POST: a POST would find the stored reply before
			// claiming; this is the copy whose GET missed just before the
			// other holder stored its reply.
			a := r.floor.process(ctx, "my-product-name", h, body)
			if a.status != tt.status || a.replayed != tt.answer {
				t.Fatalf("got %d %s (replayed %t); want %d (replayed %t)", a.status, a.body, a.replayed, tt.status, tt.answer)
			}
			if n := r.sandbox.Stats().Calls["Enrollment"]; n != 0 {
				t.Fatalf("%d Enrollment calls while another process held the claim; want 0", n)
			}
		})
	}
}

func TestNewFloorRefusesBadConfig(t *testing.T) {
	good := config{Q2BaseURL: "http://127.0.0.1:1", ClientID: "a", ClientSecret: "b", QBDProductID: "p", EventTTL: time.Hour, MaxInFlight: 1}
	tests := []struct {
		name string
		edit func(*config)
	}{
		{"relative URL", func(c *config) { c.Q2BaseURL = "127.0.0.1:1" }},
		{"no client id", func(c *config) { c.ClientID = "" }},
		{"no secret", func(c *config) { c.ClientSecret = "" }},
		{"no slots", func(c *config) { c.MaxInFlight = 0 }},
		{"no TTL", func(c *config) { c.EventTTL = 0 }},
		{"relative Helix URL", func(c *config) { c.HelixBaseURL = "helix" }},
		{"relative QBD URL", func(c *config) { c.QBDBaseURL = "qbd" }},
		{"no QBD product", func(c *config) { c.QBDProductID = "" }},
	}
	if _, err := newFloor(good, nil, http.DefaultClient); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			if _, err := newFloor(c, nil, http.DefaultClient); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestProductPlans: each extension makes the outside calls the service
// makes on a first attempt of its product (products.example.yaml), once,
// and a copy makes none: the floor of the Business Access and QBD Connect
// phases is fair.
func TestProductPlans(t *testing.T) {
	tests := []struct {
		extension, fixture string
		calls              map[string]int
	}{
		{"my-product-name", "story", map[string]int{"token": 1, "Enrollment": 1, "LookupUser": 1}},
		{"business-access", "business-access", map[string]int{"token": 1, "Enrollment": 1, "LookupUser": 1, "helix.addEntitlement": 1}},
		{"qbd-connect", "qbd-story", map[string]int{"qbd.GET /customers": 1, "qbd.POST /customers": 1, "qbd.POST /subscriptions": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.extension, func(t *testing.T) {
			r := newRig(t, 8, 0)
			body, err := os.ReadFile(filepath.Join("..", "..", "fixtures", tt.fixture, "01-order.json"))
			if err != nil {
				t.Fatal(err)
			}
			first := post(t, r.base+tt.extension, body)
			if first.status != http.StatusOK || !first.doc.Success || first.doc.AccountIdentifier == "" {
				t.Fatalf("ORDER = %d %s; want 200 success with an accountIdentifier", first.status, first.body)
			}
			if again := post(t, r.base+tt.extension, body); !again.replayed || !bytes.Equal(again.body, first.body) {
				t.Fatalf("copy = %d %s (replayed %t); want the same bytes, replayed", again.status, again.body, again.replayed)
			}
			got := r.sandbox.Stats().Calls
			if len(got) != len(tt.calls) {
				t.Fatalf("calls %v; want %v", got, tt.calls)
			}
			for route, n := range tt.calls {
				if got[route] != n {
					t.Fatalf("calls %v; want %v", got, tt.calls)
				}
			}
		})
	}
}

// panicking is a Q2 transport whose every call panics: a bug in the
// processing.
type panicking struct{}

func (panicking) RoundTrip(*http.Request) (*http.Response, error) { panic("a bug in the processing") }

// A panic in the processing is answered 500 UNKNOWN_ERROR with the reply
// document, not a dropped connection; the floor goes on serving, and the
// delivery's flight ends, so that no later copy waits on it.
func TestPanicIsAnswered(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	f, err := newFloor(config{Q2BaseURL: "http://q2.invalid", ClientID: "floor", ClientSecret: "floor-secret", QBDProductID: "prod_qbd",
		EventTTL: time.Hour, MaxInFlight: 8, WaitForOther: 10 * time.Millisecond}, rdb, &http.Client{Transport: panicking{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.handler())
	t.Cleanup(srv.Close)
	g := post(t, srv.URL+"/marketplace/my-product-name", orderBody("sub-panic"))
	if g.status != http.StatusInternalServerError || g.doc.Success || g.doc.ErrorCode != "UNKNOWN_ERROR" {
		t.Fatalf("a panicking delivery = %d %s; want 500 UNKNOWN_ERROR", g.status, g.body)
	}
	f.mu.Lock()
	left := len(f.flights)
	f.mu.Unlock()
	if left != 0 {
		t.Errorf("%d flights left after the panic, want none", left)
	}
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatalf("after the panic: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz after the panic: %d", resp.StatusCode)
	}
}

// Recovery sits on the measured path: it allocates nothing until a panic.
func TestRecoveringAllocatesNothing(t *testing.T) {
	e := echo.New()
	c := e.NewContext(httptest.NewRequest(http.MethodPost, "/marketplace/p", nil), httptest.NewRecorder())
	h := recovering(func(echo.Context) error { return nil })
	if n := testing.AllocsPerRun(100, func() { _ = h(c) }); n != 0 {
		t.Errorf("recovering allocates %v times a request, want 0", n)
	}
}

// The answer a flight holds in case its processing panics costs a new
// delivery nothing: it is built once.
func TestPanickedAnswerAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = panicked() }); n != 0 {
		t.Errorf("panicked() allocates %v times per call; want 0", n)
	}
}

// Copies that waited for a processing that failed get its 503, not marked
// Idempotent-Replayed: only a stored outcome is replayed.
func TestWaitersOfAFailureAreNotReplayed(t *testing.T) {
	r := newRig(t, 64, 0)
	if err := r.sandbox.SetFault(sandbox.Fault{Route: "Enrollment", Status: 503, Times: 1, DelayMS: 300}); err != nil {
		t.Fatal(err)
	}
	body := orderBody("sub-failed-flight")
	for i, g := range postAtOnce(t, r.url, body, 8) {
		if g.status != http.StatusServiceUnavailable || g.replayed {
			t.Errorf("copy %d = %d %s (replayed %t); want the 503, not replayed", i, g.status, g.body, g.replayed)
		}
	}
}
