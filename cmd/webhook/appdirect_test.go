package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/appdirect"
	"github.com/banking-marketplace/webhook/internal/appdirect/appdirectsandbox"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdsandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testplan"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// The AppDirect door's end-to-end tests: the service as the event URL of a
// marketplace (the sandbox's), in AppDirect's raw event shapes.

const adAPIToken = "appdirect-test-token-0123456789"

// market is the sandbox with its AppDirect marketplace at hand.
type market struct {
	testplan.Sandbox
	ad  *appdirectsandbox.Marketplace
	url string
}

// startMarket runs the sandbox of every outside API, with an AppDirect
// marketplace of cfg whose notifications go through the recording client
// (openapi_test.go checks them against docs/openapi.yaml).
func startMarket(t *testing.T, cfg appdirectsandbox.Config) *market {
	t.Helper()
	cfg.HTTPClient = &http.Client{Transport: http.DefaultClient.Transport, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ad, err := appdirectsandbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sb := sandbox.New(q2sandbox.New(q2sandbox.Config{}), qbdsandbox.New(), helixsandbox.New("", ""), ad)
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return &market{Sandbox: testplan.Sandbox{Sandbox: sb}, ad: ad, url: srv.URL}
}

// adEnv is a production environment whose AppDirect door trusts the
// market's marketplace, with shared credentials (OAuth 1.0a).
func adEnv(m *market, redisURL string, async bool) map[string]string {
	env := q2Env(m.url, redisURL)
	env["API_TOKENS"] = adAPIToken
	env["APPDIRECT_MARKETPLACES"] = m.url
	env["APPDIRECT_CONSUMER_KEY"] = appdirectsandbox.DefaultConsumerKey
	env["APPDIRECT_CONSUMER_SECRET"] = appdirectsandbox.DefaultConsumerSecret
	env["APPDIRECT_ASYNC"] = fmt.Sprint(async)
	return env
}

// The raw events of a subscription's life, as AppDirect sends them: nulls,
// quantities as strings, blocks that are there or not.
func adOrder(flag string, users int) string {
	f := "null"
	if flag != "" {
		f = `"` + flag + `"`
	}
	return fmt.Sprintf(`{"type":"SUBSCRIPTION_ORDER","marketplace":{"partner":"Q2TOTALACCESS","baseUrl":"x"},"applicationUuid":null,"flag":%s,
"creator":{"uuid":"4fc5fb4b-9809-49b5-abc5-7dab4544e685","email":"jdoe@example.com","firstName":"John","lastName":"Doe","language":"en","address":null},
"payload":{"user":null,"company":{"uuid":"6c9832df-a5f2-40dc-9fe6-823ac2c4f143","name":"Doe Holdings","country":"US"},"account":null,
"order":{"editionCode":"BASIC","pricingDuration":"MONTHLY","items":[{"unit":"USER","quantity":"%d"}]},"notice":null,"configuration":{}},"links":[]}`, f, users)
}

func adAccount(typ, account, rest string) string {
	return fmt.Sprintf(`{"type":%q,"marketplace":{"partner":"Q2TOTALACCESS","baseUrl":"x"},"flag":null,
"creator":{"uuid":"4fc5fb4b-9809-49b5-abc5-7dab4544e685","email":"jdoe@example.com","firstName":"John","lastName":"Doe"},
"payload":{"account":{"accountIdentifier":%q,"status":"ACTIVE"}%s}}`, typ, account, rest)
}

func adChange(account string, users int) string {
	return adAccount("SUBSCRIPTION_CHANGE", account,
		fmt.Sprintf(`,"order":{"editionCode":"PREMIUM","pricingDuration":"MONTHLY","items":[{"unit":"USER","quantity":"%d"}]}`, users))
}

func adNotice(account, notice string) string {
	return adAccount("SUBSCRIPTION_NOTICE", account, fmt.Sprintf(`,"notice":{"type":%q,"message":null}`, notice))
}

func adUser(typ, account, uuid string) string {
	return adAccount(typ, account, fmt.Sprintf(`,"user":{"uuid":%q,"email":"ann.smith@example.com","firstName":"Ann","lastName":"Smith"},"configuration":[]`, uuid))
}

// adReply is what the marketplace learnt of one event: the notification's
// status and, for an event answered later, the result posted.
type adReply struct {
	token  string
	status int
	reply  events.Reply
	raw    []byte
}

// notify registers doc at the marketplace and has it notify the service;
// an event answered 202 is waited for until its result is posted.
func (m *market) notify(t *testing.T, serviceURL, doc string) adReply {
	t.Helper()
	token, _, err := m.ad.AddEvent(m.url, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return m.renotify(t, serviceURL, token)
}

// renotify sends the notification of an event already registered.
func (m *market) renotify(t *testing.T, serviceURL, token string) adReply {
	t.Helper()
	r, err := m.ad.Notify(context.Background(), serviceURL+"/appdirect/events", token)
	if err != nil {
		t.Fatalf("notify: %v", err)
	}
	out := adReply{token: token, status: r.Status, raw: r.Body}
	if r.Status == http.StatusAccepted {
		eventually(t, 20*time.Second, "the result of "+token+" to be posted", func() bool { return len(m.ad.Results(token)) > 0 })
		out.raw = m.ad.Results(token)[0]
	}
	if err := json.Unmarshal(out.raw, &out.reply); err != nil {
		t.Fatalf("reply %d %s: %v", r.Status, out.raw, err)
	}
	return out
}

// subscriptionOfOrder is the subscription id the service gives an
// AppDirect ORDER: derived from the marketplace and the event token.
func subscriptionOfOrder(marketplace, token string) string {
	sum := sha256.Sum256([]byte(marketplace + "\n" + token))
	return "ad-" + hex.EncodeToString(sum[:16])
}

// readSubscription asks the read API.
func readSubscription(t *testing.T, opsURL, sub string) adSubscription {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, opsURL+"/v1/subscriptions/"+sub, nil)
	req.Header.Set("Authorization", "Bearer "+adAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v adSubscription
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &v) != nil {
		t.Fatalf("GET /v1/subscriptions/%s: %d %s", sub, resp.StatusCode, b)
	}
	return v
}

type adSubscription struct {
	Status  string `json:"status"`
	Edition string `json:"edition"`
	Users   []struct {
		User     string `json:"user"`
		Assigned bool   `json:"assigned"`
		State    string `json:"state"`
	} `json:"users"`
}

func (v adSubscription) assigned() []string {
	var out []string
	for _, u := range v.Users {
		if u.Assigned && u.State == "live" {
			out = append(out, u.User)
		}
	}
	return out
}

// A subscription's whole life through the AppDirect door, synchronous and
// asynchronous: every event type, in AppDirect's raw shapes, each answered
// as the contract says, each with its effect in Q2 exactly once, each
// result posted exactly once, and a redelivered notification answered
// again without a second effect.
func TestAppDirectStory(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprintf("async=%v", async), func(t *testing.T) {
			t.Parallel()
			m := startMarket(t, appdirectsandbox.Config{})
			svc := startService(t, adEnv(m, testredis.Start(t).URL(), async))
			calls := func(route string) int { return m.Stats().Calls[route] }

			order := m.notify(t, svc.url, adOrder("", 2))
			if !order.reply.Success || order.reply.AccountIdentifier == "" {
				t.Fatalf("ORDER: %d %s", order.status, order.raw)
			}
			acct := order.reply.AccountIdentifier
			sub := subscriptionOfOrder(m.url, order.token)
			if acct != sub {
				t.Errorf("the ORDER's accountIdentifier %q, want the subscription's own id %q", acct, sub)
			}
			if again := m.renotify(t, svc.url, order.token); string(again.raw) != string(order.raw) || calls("Enrollment") != 1 {
				t.Fatalf("the ORDER notified again: %s, %d enrollments; want %s and 1", again.raw, calls("Enrollment"), order.raw)
			}

			steps := []struct {
				name  string
				doc   string
				code  events.ErrorCode // "" success
				users int              // live Q2 users after it
				check func(t *testing.T, v adSubscription)
			}{
				{"assign u1", adUser("USER_ASSIGNMENT", acct, "u-1"), "", 2, func(t *testing.T, v adSubscription) {
					if got := v.assigned(); len(got) != 1 || got[0] != "u-1" {
						t.Errorf("users %v, want [u-1]", got)
					}
				}},
				{"assign u1 again", adUser("USER_ASSIGNMENT", acct, "u-1"), events.UserAlreadyExists, 2, nil},
				{"assign u2 past 2 users", adUser("USER_ASSIGNMENT", acct, "u-2"), events.MaxUsersReached, 2, nil},
				{"change to 3 users", adChange(acct, 3), "", 2, func(t *testing.T, v adSubscription) {
					if v.Edition != "PREMIUM" {
						t.Errorf("edition %q, want PREMIUM", v.Edition)
					}
				}},
				{"assign u2", adUser("USER_ASSIGNMENT", acct, "u-2"), "", 3, nil},
				{"deactivated", adNotice(acct, "DEACTIVATED"), "", 3, func(t *testing.T, v adSubscription) {
					if v.Status != "suspended" {
						t.Errorf("status %q, want suspended", v.Status)
					}
				}},
				{"reactivated", adNotice(acct, "REACTIVATED"), "", 3, func(t *testing.T, v adSubscription) {
					if v.Status != "active" {
						t.Errorf("status %q, want active", v.Status)
					}
				}},
				{"upcoming invoice", adNotice(acct, "UPCOMING_INVOICE"), "", 3, nil},
				{"unassign u1", adUser("USER_UNASSIGNMENT", acct, "u-1"), "", 2, func(t *testing.T, v adSubscription) {
					if got := v.assigned(); len(got) != 1 || got[0] != "u-2" {
						t.Errorf("users %v, want [u-2]", got)
					}
				}},
				{"unassign u1 again", adUser("USER_UNASSIGNMENT", acct, "u-1"), events.UserNotFound, 2, nil},
				{"assign u1 back", adUser("USER_ASSIGNMENT", acct, "u-1"), "", 3, func(t *testing.T, v adSubscription) {
					if got := v.assigned(); len(got) != 2 {
						t.Errorf("users %v, want u-1 and u-2", got)
					}
				}},
				{"a type it does not handle", adUser("USER_UPDATED", acct, "u-2"), events.ConfigurationError, 3, nil},
				{"a stateless ORDER", adOrder("STATELESS", 1), "", 3, nil},
				{"closed", adNotice(acct, "CLOSED"), "", 0, func(t *testing.T, v adSubscription) {
					if v.Status != "cancelled" {
						t.Errorf("status %q, want cancelled", v.Status)
					}
				}},
			}
			for _, st := range steps {
				r := m.notify(t, svc.url, st.doc)
				if st.code == "" && !r.reply.Success || st.code != "" && r.reply.ErrorCode != st.code {
					t.Fatalf("%s: %d %s; want %q", st.name, r.status, r.raw, st.code)
				}
				if st.code == events.ConfigurationError && !strings.Contains(r.reply.Message, "USER_UPDATED") {
					t.Errorf("%s: message %q does not name the type", st.name, r.reply.Message)
				}
				if strings.Contains(st.doc, "STATELESS") && (r.reply.AccountIdentifier == "" || r.reply.AccountIdentifier == acct ||
					r.reply.AccountIdentifier != subscriptionOfOrder(m.url, r.token)) {
					t.Errorf("%s: accountIdentifier %q; want the ping's own subscription id, neither empty nor the ORDER's %q", st.name, r.reply.AccountIdentifier, acct)
				}
				if async && r.status != http.StatusAccepted && !strings.Contains(st.doc, "SUBSCRIPTION_NOTICE") && !strings.Contains(st.doc, "STATELESS") {
					t.Errorf("%s: answered %d, want 202 (asynchronous)", st.name, r.status)
				}
				if strings.Contains(st.doc, "SUBSCRIPTION_NOTICE") && r.status != http.StatusOK {
					t.Errorf("%s: a notice answered %d, want 200 (always synchronous)", st.name, r.status)
				}
				if u := m.Stats().Users; u != st.users {
					t.Errorf("%s: %d live Q2 users, want %d", st.name, u, st.users)
				}
				if st.check != nil {
					st.check(t, readSubscription(t, svc.opsURL, sub))
				}
			}
			if n := calls("Enrollment"); n != 4 {
				t.Errorf("%d enrollments over the story, want 4 (the ORDER's user, u-1, u-2, u-1 again)", n)
			}
			// Each result posted once at most (the ORDER was notified
			// twice); none for an event answered at once.
			for tok, n := range m.resultCounts(t) {
				if n > 1 || !async && n != 0 {
					t.Errorf("event %s: %d results posted", tok, n)
				}
			}
		})
	}
}

// resultCounts is how many results were posted per event token.
func (m *market) resultCounts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	m.ad.EachEvent(func(token string, results int) { out[token] = results })
	return out
}

// A foreign eventUrl is refused (403 FORBIDDEN) before any request is
// made: a listener at every address it names receives nothing.
func TestAppDirectForeignEventURL(t *testing.T) {
	t.Parallel()
	m := startMarket(t, appdirectsandbox.Config{})
	svc := startService(t, adEnv(m, miniRedisURL(t), false))

	var hits atomic.Int32
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer trap.Close()
	mu, _ := url.Parse(m.url)
	tu, _ := url.Parse(trap.URL)
	_, marketPort, _ := net.SplitHostPort(mu.Host)
	_, trapPort, _ := net.SplitHostPort(tu.Host)
	for _, eventURL := range []string{
		trap.URL + appdirect.EventsPath + "tok",                                         // another port
		"http://localhost:" + marketPort + appdirect.EventsPath + "tok",                 // another host name for it
		"http://127.0.0.2:" + marketPort + appdirect.EventsPath + "tok",                 // another host
		"https://" + mu.Host + appdirect.EventsPath + "tok",                             // another scheme
		m.url + "/api/integration/v1/other/tok",                                         // a path outside the prefix
		m.url + appdirect.EventsPath + "../../../../_sandbox/stats",                     // dot segments
		m.url + appdirect.EventsPath + "%2e%2e/%2e%2e/x",                                // escaped dot segments
		"http://" + mu.Host + "@127.0.0.1:" + trapPort + appdirect.EventsPath + "tok",   // userinfo that looks like the host
		"http://user:pass@" + mu.Host + appdirect.EventsPath + "tok",                    // userinfo on the right host
		m.url + appdirect.EventsPath + "tok/result",                                     // a token with a path
		m.url + appdirect.EventsPath,                                                    // no token
		"//" + mu.Host + appdirect.EventsPath + "tok",                                   // no scheme
		"http://127.0.0.1:" + trapPort + "#" + mu.Host + appdirect.EventsPath + "tok",   // a fragment
		"http://127.0.0.1:" + trapPort + "\\@" + mu.Host + appdirect.EventsPath + "tok", // a backslash
		m.url + appdirect.EventsPath + "tok?redirect=" + url.QueryEscape(trap.URL),      // a query
		"http://[::1]:" + trapPort + appdirect.EventsPath + "tok",                       // IPv6 loopback
	} {
		req, _ := http.NewRequest(http.MethodGet, svc.url+"/appdirect/events?eventUrl="+url.QueryEscape(eventURL), nil)
		if err := appdirect.Sign(req, appdirectsandbox.DefaultConsumerKey, appdirectsandbox.DefaultConsumerSecret, time.Now(), ""); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var rep events.Reply
		_ = json.Unmarshal(b, &rep)
		if resp.StatusCode != http.StatusForbidden || rep.ErrorCode != events.Forbidden {
			t.Errorf("eventUrl %s: %d %s, want 403 FORBIDDEN", eventURL, resp.StatusCode, b)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the trap listener received %d requests, want 0", n)
	}
	if n := m.Stats().Calls[appdirectsandbox.RouteFetch]; n != 0 {
		t.Errorf("the marketplace received %d fetches, want 0", n)
	}
}

// An AppDirect event never touches a subscription the Q2 door made, though
// it names that subscription's accountIdentifier (a Q2 UserID: a small
// number any marketplace can guess): refused FORBIDDEN, the Q2 user left
// as it was, every event type that finds its subscription that way.
func TestAppDirectCannotTouchQ2DoorSubscription(t *testing.T) {
	t.Parallel()
	m := startMarket(t, appdirectsandbox.Config{})
	svc := startService(t, adEnv(m, miniRedisURL(t), false))
	const sub = "3f8f2b0e-q2-door-subscription"
	order := wantReply(t, post(t, svc.url+"/marketplace/my-product-name", withSubscription(t, "subscription-order.json", sub, ""), nil), 200, "")
	acct := order.AccountIdentifier
	for _, doc := range []string{
		adAccount("SUBSCRIPTION_CANCEL", acct, ""),
		adNotice(acct, "CLOSED"),
		adNotice(acct, "DEACTIVATED"),
		adChange(acct, 9),
		adUser("USER_ASSIGNMENT", acct, "u-intruder"),
	} {
		r := m.notify(t, svc.url, doc)
		if r.reply.Success || r.reply.ErrorCode != events.Forbidden {
			t.Errorf("%.40s…: %d %s, want FORBIDDEN", doc, r.status, r.raw)
		}
	}
	if u, calls := m.Stats().Users, m.Stats().Calls; u != 1 || calls["DeleteUser"]+calls["DeleteCustomer"] != 0 || calls["Enrollment"] != 1 {
		t.Errorf("%d live Q2 users, calls %v; want the Q2 door's one user untouched", u, calls)
	}
	if v := readSubscription(t, svc.opsURL, sub); v.Status != "active" || v.Edition != "BASIC" || len(v.Users) != 0 {
		t.Errorf("the Q2 door's subscription %+v, want it active as ordered", v)
	}
}

// Results answered later survive the process: the service is killed
// (SIGKILL) while its post of a result is under way, restarted, its post
// refused again, and the result is posted once the marketplace recovers:
// exactly once, with the event processed once.
func TestAppDirectResultSurvivesCrash(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	redis := testredis.Start(t)
	m := startMarket(t, appdirectsandbox.Config{})
	env := adEnv(m, redis.URL(), true)
	env["PROCESS_TIMEOUT"] = "2s" // the queued result is due 3.5s after its 202
	// Two slow refusals: the first is cut by the kill, the second is the
	// restarted service's; a refused post records nothing.
	if err := m.SetFault(sandbox.Fault{Route: appdirectsandbox.RouteResult, Status: 503, Times: 2, DelayMS: 1500}); err != nil {
		t.Fatal(err)
	}
	first := startBinary(t, bin, env)
	token, _, err := m.ad.AddEvent(m.url, []byte(adOrder("", 1)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.ad.Notify(context.Background(), first.url+"/appdirect/events", token)
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("notify: %+v %v; want 202", r, err)
	}
	eventually(t, 20*time.Second, "the result's post to reach the marketplace", func() bool { return m.Stats().Calls[appdirectsandbox.RouteResult] >= 1 })
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()

	second := startBinary(t, bin, env)
	eventually(t, 60*time.Second, "the result to be posted after the restart", func() bool { return len(m.ad.Results(token)) > 0 })
	if n := m.Stats().Calls[appdirectsandbox.RouteResult]; n < 3 {
		t.Errorf("%d posts, want the two refused and the accepted one", n)
	}
	time.Sleep(2 * time.Second) // a second post would come at the settler's next look
	if got := m.ad.Results(token); len(got) != 1 || !strings.Contains(string(got[0]), `"success":true`) {
		t.Errorf("results %q, want one success", got)
	}
	if n := m.Stats().Calls["Enrollment"]; n != 1 {
		t.Errorf("%d enrollments, want 1", n)
	}
	if !strings.Contains(second.logs.String(), `"msg":"result posted"`) {
		t.Errorf("the restarted service did not log the post")
	}
}

// Two replicas on one Redis, every notification sent to both at once:
// each event is processed once and its result posted once.
func TestAppDirectTwoReplicas(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	m := startMarket(t, appdirectsandbox.Config{})
	env := adEnv(m, redis.URL(), true)
	a, b := startService(t, env), startService(t, env)
	// Slow posts: the replicas' passes overlap.
	if err := m.SetFault(sandbox.Fault{Route: appdirectsandbox.RouteResult, Times: 10, DelayMS: 300}); err != nil {
		t.Fatal(err)
	}
	const n = 10
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range tokens {
		tok, _, err := m.ad.AddEvent(m.url, []byte(adOrder("", 1)))
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tok
		for _, svc := range []*service{a, b} {
			wg.Go(func() {
				r, err := m.ad.Notify(context.Background(), svc.url+"/appdirect/events", tok)
				if err != nil || (r.Status != http.StatusAccepted && r.Status != http.StatusConflict) {
					t.Errorf("notify %s: %+v %v; want 202 (or 409 while the other replica records it)", tok, r, err)
				}
			})
		}
	}
	wg.Wait()
	for _, tok := range tokens {
		eventually(t, 30*time.Second, "the result of "+tok, func() bool { return len(m.ad.Results(tok)) > 0 })
	}
	time.Sleep(2 * time.Second) // room for a second post, if one were coming
	for _, tok := range tokens {
		if got := len(m.ad.Results(tok)); got != 1 {
			t.Errorf("event %s: %d results posted, want 1", tok, got)
		}
	}
	if got := m.Stats().Calls["Enrollment"]; got != n {
		t.Errorf("%d enrollments, want %d", got, n)
	}
}

// Separate credentials (AppDirect's current mode): the notification
// carries a bearer token, the fetch and the result post an OAuth 2.0
// client-credentials token from the marketplace's /oauth2/token.
func TestAppDirectSeparateCredentials(t *testing.T) {
	t.Parallel()
	m := startMarket(t, appdirectsandbox.Config{NotifyToken: "notify-token-0123456789"})
	env := adEnv(m, miniRedisURL(t), true)
	delete(env, "APPDIRECT_CONSUMER_KEY")
	delete(env, "APPDIRECT_CONSUMER_SECRET")
	env["APPDIRECT_NOTIFY_TOKEN"] = "old-token-0123456789 notify-token-0123456789" // rotation: either
	env["APPDIRECT_CLIENT_ID"] = appdirectsandbox.DefaultClientID
	env["APPDIRECT_CLIENT_SECRET"] = appdirectsandbox.DefaultClientSecret
	svc := startService(t, env)

	order := m.notify(t, svc.url, adOrder("", 1))
	if order.status != http.StatusAccepted || !order.reply.Success || order.reply.AccountIdentifier == "" {
		t.Fatalf("ORDER: %d %s", order.status, order.raw)
	}
	if n := m.Stats().Calls[appdirectsandbox.RouteToken]; n < 1 {
		t.Errorf("%d token requests, want the client-credentials token fetched", n)
	}
	for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic " + "bm90aWZ5OnRva2Vu"} {
		req, _ := http.NewRequest(http.MethodGet, svc.url+"/appdirect/events?eventUrl="+url.QueryEscape(m.url+appdirect.EventsPath+order.token), nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, resp.StatusCode)
		}
	}
}

// Redis that forgot everything: the events after the ORDER name the
// subscription by the accountIdentifier the ORDER answered, its own id, so
// a CLOSED notice still finds the subscription's Q2 user and deletes it;
// and an AppDirect event never acts on a subscription the Q2 door made.
func TestAppDirectRedisForgot(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	m := startMarket(t, appdirectsandbox.Config{})
	svc := startService(t, adEnv(m, redis.URL(), false))

	order := m.notify(t, svc.url, adOrder("", 2))
	assign := m.notify(t, svc.url, adUser("USER_ASSIGNMENT", order.reply.AccountIdentifier, "u-1"))
	if !order.reply.Success || !assign.reply.Success || m.Stats().Users != 2 {
		t.Fatalf("ORDER %s, assignment %s, %d users", order.raw, assign.raw, m.Stats().Users)
	}
	redis.Flush()
	closed := m.notify(t, svc.url, adNotice(order.reply.AccountIdentifier, "CLOSED"))
	if !closed.reply.Success {
		t.Fatalf("CLOSED after Redis forgot: %d %s", closed.status, closed.raw)
	}
	// The ORDER's user is found again (its logon is derived from the
	// subscription); the assigned user's record was lost with Redis.
	if u := m.Stats().Users; u != 1 {
		t.Errorf("%d live Q2 users after CLOSED, want 1 (the assigned user, whose record Redis lost)", u)
	}

	// A Q2-door ORDER's identifier, named by an AppDirect CANCEL: refused,
	// nothing changed.
	q2 := post(t, svc.url+"/marketplace/p", withSubscription(t, "subscription-order.json", "q2-door-sub", ""), nil)
	q2rep := wantReply(t, q2, 200, "")
	cancel := m.notify(t, svc.url, adAccount("SUBSCRIPTION_CANCEL", q2rep.AccountIdentifier, ""))
	if cancel.reply.Success || m.Stats().Users != 2 {
		t.Errorf("an AppDirect CANCEL naming a Q2-door account: %s, %d users; want a failure and the user kept", cancel.raw, m.Stats().Users)
	}
}
