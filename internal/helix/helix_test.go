package helix_test

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix"
	"github.com/banking-marketplace/webhook/internal/helix/helixapi"
	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/provisioning"
)

// The sandbox part's route names, as its wrap sees them.
const (
	routeAdd    = "helix.addEntitlement"
	routeEdit   = "helix.editEntitlement"
	routeRemove = "helix.removeEntitlement"
)

// fault is one injected answer: status and Helix code as the part's Fail
// writes them, with a Retry-After header when retryAfter is set.
type fault struct {
	status, code int
	retryAfter   string
}

// fakeHelix is the sandbox's Helix part behind real HTTP, wrapped so that a
// test can count calls per route and queue faults for the next calls.
type fakeHelix struct {
	part *helixsandbox.Sandbox
	url  string

	mu     sync.Mutex
	calls  map[string]int
	faults map[string][]fault
}

func startHelix(t *testing.T) *fakeHelix {
	t.Helper()
	h := &fakeHelix{part: helixsandbox.New("", ""), calls: map[string]int{}, faults: map[string][]fault{}}
	mux := http.NewServeMux()
	h.part.Register(mux, func(route string, next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			h.calls[route]++
			var f *fault
			if q := h.faults[route]; len(q) > 0 {
				f, h.faults[route] = &q[0], q[1:]
			}
			h.mu.Unlock()
			if f == nil {
				next(w, r)
				return
			}
			if f.retryAfter != "" {
				w.Header().Set("Retry-After", f.retryAfter)
			}
			h.part.Fail(w, f.status, f.code)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// failNext makes the next n calls of route answer f.
func (h *fakeHelix) failNext(route string, n int, f fault) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for range n {
		h.faults[route] = append(h.faults[route], f)
	}
}

func (h *fakeHelix) count(route string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[route]
}

func (h *fakeHelix) total() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.calls {
		n += c
	}
	return n
}

// level is the entitlement the sandbox holds, "" for none.
func (h *fakeHelix) level(account, target int64) string {
	l, _ := h.part.Entitlement(account, target)
	return l
}

// client is the real Helix client for the part: the sandbox's credentials,
// short backoff (a wait the part asks for above it fails the call at once).
func (h *fakeHelix) client(t *testing.T, opts ...helixapi.Option) *helixapi.Client {
	t.Helper()
	opts = append([]helixapi.Option{
		helixapi.WithCredentials(helixsandbox.DefaultKey, helixsandbox.DefaultSecret),
		helixapi.WithRetry(3, time.Millisecond, 5*time.Millisecond),
	}, opts...)
	c, err := helixapi.New(h.url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTarget(t *testing.T, api helix.API, s helix.Settings) *helix.Target {
	t.Helper()
	tg, err := helix.New(api, s)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// product are the settings of the README's "Business Access" product.
var product = helix.Settings{Entitlement: "RDONLY", Editions: map[string]string{"PREMIUM": "FULL"}}

// conf is a configuration naming account 4001, requester 5001 and, unless
// overridden, no target customer.
func conf(kv ...any) map[string]any {
	c := map[string]any{"accountId": float64(4001), "requestingCustomerId": "5001"}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// q2Step is what the q2 target records for a user of Q2 customer 77.
var q2Step = events.Step{Target: "q2", State: events.StepLive, ID: "12", Data: map[string]string{"customer_id": "77"}}

// job is an event of type typ with configuration c and edition (no order
// when edition is empty), after the given steps.
func job(typ events.EventType, c map[string]any, edition string, steps ...events.Step) *provisioning.Job {
	ev := &events.SubscriptionEvent{EventType: typ, SubscriptionID: "sub-1"}
	ev.Event.Type = typ
	ev.Event.Payload.Configuration = c
	if edition != "" {
		ev.Event.Payload.Order = &events.Order{EditionCode: edition}
	}
	return &provisioning.Job{Event: ev, Product: "business-access", Subscription: "sub-1", Steps: steps,
		Intent: events.Intent{State: events.IntentActive, Edition: edition}, Current: events.Step{Target: helix.Name}}
}

// wantFailure checks err is a *provisioning.Failure of kind and code whose
// message says each of says.
func wantFailure(t *testing.T, err error, kind provisioning.Kind, code events.ErrorCode, says ...string) *provisioning.Failure {
	t.Helper()
	var f *provisioning.Failure
	if !errors.As(err, &f) {
		t.Fatalf("err = %v, want a *provisioning.Failure", err)
	}
	if f.Kind != kind || f.Code != code {
		t.Fatalf("failure = %v %s (%q), want %v %s", f.Kind, f.Code, f.Message, kind, code)
	}
	for _, s := range says {
		if !strings.Contains(f.Message, s) {
			t.Errorf("message %q does not say %q", f.Message, s)
		}
	}
	return f
}

func TestNew(t *testing.T) {
	t.Parallel()
	h := startHelix(t)
	for i, tc := range []struct {
		name    string
		set     helix.Settings
		edition string
		want    string
	}{
		{"default level", helix.Settings{}, "BASIC", "RDONLY"},
		{"product level, any case", helix.Settings{Entitlement: " full "}, "BASIC", "FULL"},
		{"edition's level", helix.Settings{Editions: map[string]string{"PREMIUM": "rddb"}}, "PREMIUM", "RDDB"},
		{"edition without its own level", helix.Settings{Entitlement: "CRONLY", Editions: map[string]string{"PREMIUM": "FULL"}}, "BASIC", "CRONLY"},
		{"order without an edition", product, "", "RDONLY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTarget(t, h.client(t), tc.set)
			if tg.Name() != "helix" {
				t.Errorf("Name = %q", tg.Name())
			}
			target := int64(100 + i) // one entitlement per case
			s, err := provisionWith(tg, context.Background(), job(events.SubscriptionOrder, conf("targetCustomerId", float64(target)), tc.edition))
			if err != nil {
				t.Fatal(err)
			}
			if got := h.level(4001, target); got != tc.want || s.Data["entitlement"] != tc.want {
				t.Errorf("level granted %q, recorded %q; want %q", got, s.Data["entitlement"], tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		api  helix.API
		set  helix.Settings
		want string
	}{
		{"bad level", h.client(t), helix.Settings{Entitlement: "ALL"}, "helix.entitlement"},
		{"bad edition level", h.client(t), helix.Settings{Editions: map[string]string{"GOLD": "READ"}}, "helix.editions.GOLD"},
		{"no client", nil, helix.Settings{}, "client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helix.New(tc.api, tc.set)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming %s", err, tc.want)
			}
			if tc.api != nil && !errors.Is(err, helixapi.ErrInvalidLevel) {
				t.Errorf("err %v does not match ErrInvalidLevel", err)
			}
		})
	}
}

func TestProvision(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		conf       map[string]any
		steps      []events.Step
		edition    string
		wantTarget int64
		wantID     string
		wantLevel  string
	}{
		{"target is the q2 step's customer", conf(), []events.Step{q2Step}, "BASIC", 77, "4001:77", "RDONLY"},
		{"ids as numeric strings", conf("accountId", " 4001 ", "requestingCustomerId", "5001"), []events.Step{q2Step}, "PREMIUM", 77, "4001:77", "FULL"},
		{"target named by the configuration wins", conf("targetCustomerId", "88"), []events.Step{q2Step}, "BASIC", 88, "4001:88", "RDONLY"},
		{"target named, no q2 step", conf("targetCustomerId", float64(89)), nil, "BASIC", 89, "4001:89", "RDONLY"},
		{"an undone q2 step is not used", conf("targetCustomerId", float64(90)), []events.Step{{Target: "q2", ID: "1", State: events.StepUndone, Data: map[string]string{"customer_id": "91"}}}, "BASIC", 90, "4001:90", "RDONLY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHelix(t)
			tg := newTarget(t, h.client(t), product)
			j := job(events.SubscriptionOrder, tc.conf, tc.edition, tc.steps...)
			s, err := provisionWith(tg, context.Background(), j)
			if err != nil {
				t.Fatal(err)
			}
			want := events.Step{Target: "helix", ID: tc.wantID, Data: map[string]string{
				"account_id": "4001", "requesting_customer_id": "5001", "target_customer_id": strconv.FormatInt(tc.wantTarget, 10), "entitlement": tc.wantLevel}}
			if s.ID != want.ID || s.Target != want.Target || !maps.Equal(s.Data, want.Data) {
				t.Errorf("step = %+v, want %+v", s, want)
			}
			if got := h.level(4001, tc.wantTarget); got != tc.wantLevel {
				t.Errorf("Helix holds %q for target %d, want %q", got, tc.wantTarget, tc.wantLevel)
			}
			// Find names the same entitlement without asking Helix.
			found, presence, err := tg.Find(context.Background(), j)
			if err != nil || presence != provisioning.Unknown || found.ID != s.ID || !maps.Equal(found.Data, s.Data) {
				t.Errorf("Find = %+v, %v, %v; want Unknown with the provisioned step", found, presence, err)
			}
			// A copy (a lost reply, a Redis that forgot) meets 195110: done.
			if again, err := provisionWith(tg, context.Background(), j); err != nil || again.ID != s.ID {
				t.Errorf("second Provision = %+v, %v; want the same step", again, err)
			}
			if h.count(routeAdd) != 2 || h.part.Stats().(helixsandbox.Stats).Entitlements != 1 {
				t.Errorf("add calls %d, entitlements %+v; want 2 and 1", h.count(routeAdd), h.part.Stats())
			}
		})
	}
}

// TestIncompleteConfiguration: a missing or bad id is a final
// CONFIGURATION_ERROR naming each bad key, and Helix is not called; Find
// answers Absent for such an event.
func TestIncompleteConfiguration(t *testing.T) {
	t.Parallel()
	h := startHelix(t)
	tg := newTarget(t, h.client(t), product)
	const (
		account    = "payload.configuration.accountId"
		requesting = "payload.configuration.requestingCustomerId"
		target     = "payload.configuration.targetCustomerId"
	)
	for _, tc := range []struct {
		name  string
		conf  map[string]any
		steps []events.Step
		says  []string
	}{
		{"no accountId", conf("accountId", nil), []events.Step{q2Step}, []string{account + " is missing"}},
		{"no requestingCustomerId", conf("requestingCustomerId", nil), []events.Step{q2Step}, []string{requesting + " is missing"}},
		{"accountId null", map[string]any{"accountId": nil, "requestingCustomerId": "5001"}, []events.Step{q2Step}, []string{account + " is missing"}},
		{"accountId zero", conf("accountId", float64(0)), []events.Step{q2Step}, []string{account + " must be a whole number of 1 or more"}},
		{"accountId negative string", conf("accountId", "-4"), []events.Step{q2Step}, []string{account + " must be"}},
		{"accountId with a fraction", conf("accountId", 4001.5), []events.Step{q2Step}, []string{account + " must be"}},
		{"accountId beyond exact JSON numbers", conf("accountId", float64(1<<60)), []events.Step{q2Step}, []string{account + " must be"}},
		{"accountId a word", conf("accountId", "four"), []events.Step{q2Step}, []string{account + " must be"}},
		{"accountId a bool", conf("accountId", true), []events.Step{q2Step}, []string{account + " must be"}},
		{"target neither named nor enrolled", conf(), nil, []string{target + " is missing", "q2"}},
		{"target named but bad", conf("targetCustomerId", "x"), []events.Step{q2Step}, []string{target + " must be"}},
		{"q2 step without a customer", conf(), []events.Step{{Target: "q2", State: events.StepLive, ID: "12"}}, []string{"created a customer"}},
		{"no configuration", nil, nil, []string{account, requesting, target}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := job(events.SubscriptionOrder, tc.conf, "BASIC", tc.steps...)
			_, err := provisionWith(tg, context.Background(), j)
			f := wantFailure(t, err, provisioning.Refused, events.ConfigurationError, tc.says...)
			if strings.Contains(f.Message, "4001") || strings.Contains(f.Message, "5001") {
				t.Errorf("message %q repeats the configured ids", f.Message)
			}
			if _, presence, err := tg.Find(context.Background(), j); presence != provisioning.Absent || err != nil {
				t.Errorf("Find = %v, %v; want Absent", presence, err)
			}
		})
	}
	if n := h.total(); n != 0 {
		t.Errorf("%d Helix calls for incomplete orders, want none", n)
	}
}

// provisioned starts Helix and the target, and provisions the BASIC
// ORDER after q2Step: the step a CHANGE or CANCEL test starts from.
func provisioned(t *testing.T) (*fakeHelix, *helix.Target, events.Step) {
	t.Helper()
	h := startHelix(t)
	tg := newTarget(t, h.client(t), product)
	s, err := provisionWith(tg, context.Background(), job(events.SubscriptionOrder, conf(), "BASIC", q2Step))
	if err != nil {
		t.Fatal(err)
	}
	return h, tg, s
}

func TestChange(t *testing.T) {
	t.Parallel()
	h, tg, s := provisioned(t)
	ctx := context.Background()
	steps := []struct {
		name, edition string
		wantLevel     string
		wantEdits     int
	}{
		{"same level: nothing", "BASIC", "RDONLY", 0},
		{"another edition, the same level: nothing", "STANDARD", "RDONLY", 0},
		{"no order: nothing", "", "RDONLY", 0},
		{"to an edition with another level: edited", "PREMIUM", "FULL", 1},
		{"again: nothing", "PREMIUM", "FULL", 1},
		{"back down", "BASIC", "RDONLY", 2},
	}
	for _, st := range steps {
		before := maps.Clone(s.Data)
		changed, err := tg.Change(ctx, job(events.SubscriptionChange, nil, st.edition, q2Step), s)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !maps.Equal(s.Data, before) {
			t.Fatalf("%s: Change altered the step it was given: %v", st.name, s.Data)
		}
		if changed.ID != s.ID || changed.Data["entitlement"] != st.wantLevel || h.level(4001, 77) != st.wantLevel || h.count(routeEdit) != st.wantEdits {
			t.Fatalf("%s: step %+v, Helix %q, %d edits; want %s and %d edits", st.name, changed, h.level(4001, 77), h.count(routeEdit), st.wantLevel, st.wantEdits)
		}
		s = changed
	}
}

func TestDeprovision(t *testing.T) {
	t.Parallel()
	h, tg, s := provisioned(t)
	ctx := context.Background()
	if err := tg.Deprovision(ctx, job(events.SubscriptionCancel, nil, ""), s); err != nil {
		t.Fatal(err)
	}
	if _, held := h.part.Entitlement(4001, 77); held {
		t.Fatal("the entitlement survived Deprovision")
	}
	// Already removed (a copy of the CANCEL, an undo resumed): 195119, done.
	if err := tg.Deprovision(ctx, job(events.SubscriptionCancel, nil, ""), s); err != nil {
		t.Fatalf("second Deprovision = %v, want done", err)
	}
	if h.count(routeRemove) != 2 {
		t.Errorf("remove calls = %d, want 2", h.count(routeRemove))
	}
}

// TestBrokenStep: a recorded step without its ids is refused before any
// call, naming what is missing.
func TestBrokenStep(t *testing.T) {
	t.Parallel()
	h := startHelix(t)
	tg := newTarget(t, h.client(t), product)
	broken := events.Step{Target: "helix", ID: "4001:77", Data: map[string]string{"account_id": "4001", "target_customer_id": "77"}}
	err := tg.Deprovision(context.Background(), job(events.SubscriptionCancel, nil, ""), broken)
	wantFailure(t, err, provisioning.Refused, events.ConfigurationError, "requesting_customer_id")
	_, err = tg.Change(context.Background(), job(events.SubscriptionChange, nil, "PREMIUM"), broken)
	wantFailure(t, err, provisioning.Refused, events.ConfigurationError, "requesting_customer_id")
	if h.total() != 0 {
		t.Errorf("%d Helix calls for a broken step", h.total())
	}
}

// TestFailures: every Helix answer reaches the machinery as Classify says,
// as a *provisioning.Failure keeping the client's error as its cause.
func TestFailures(t *testing.T) {
	t.Parallel()
	type call func(tg *helix.Target, s events.Step) error
	var (
		provision call = func(tg *helix.Target, _ events.Step) error {
			_, err := provisionWith(tg, context.Background(), job(events.SubscriptionOrder, conf("targetCustomerId", float64(78)), "BASIC"))
			return err
		}
		change call = func(tg *helix.Target, s events.Step) error {
			_, err := tg.Change(context.Background(), job(events.SubscriptionChange, nil, "PREMIUM"), s)
			return err
		}
		deprovision call = func(tg *helix.Target, s events.Step) error {
			return tg.Deprovision(context.Background(), job(events.SubscriptionCancel, nil, ""), s)
		}
	)
	for _, tc := range []struct {
		name      string
		route     string
		fault     fault
		times     int
		do        call
		wantKind  provisioning.Kind
		wantCode  events.ErrorCode
		wantRetry time.Duration
		says      string
	}{
		{"account locked on add: final", routeAdd, fault{code: 195104}, 1, provision, provisioning.Refused, events.Forbidden, 0, "195104"},
		{"customer locked on add: refused", routeAdd, fault{code: 195114}, 1, provision, provisioning.Refused, events.Forbidden, 0, "195114"},
		{"invalid account on add: final", routeAdd, fault{code: 195109}, 1, provision, provisioning.Refused, events.AccountNotFound, 0, "195109"},
		{"customer unrelated on add: final", routeAdd, fault{code: 195117}, 1, provision, provisioning.Refused, events.Forbidden, 0, "195117"},
		{"5xx after the client's retries", routeAdd, fault{status: 503}, 3, provision, provisioning.Transient, events.TransportError, 0, ""},
		{"429 with Retry-After", routeAdd, fault{status: 429, retryAfter: "30"}, 1, provision, provisioning.Transient, events.TransportError, 30 * time.Second, ""},
		{"credentials refused", routeAdd, fault{status: 401}, 1, provision, provisioning.Misconfigured, events.Unauthorized, 0, "50401"},
		{"already entitled on edit: final", routeEdit, fault{code: 195110}, 1, change, provisioning.Refused, events.UserAlreadyExists, 0, "195110"},
		{"customer locked on remove: refused", routeRemove, fault{code: 60004}, 1, deprovision, provisioning.Refused, events.Forbidden, 0, "60004"},
		{"server code on remove", routeRemove, fault{code: 50502}, 3, deprovision, provisioning.Transient, events.TransportError, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startHelix(t)
			tg := newTarget(t, h.client(t), product)
			s, err := provisionWith(tg, context.Background(), job(events.SubscriptionOrder, conf(), "BASIC", q2Step))
			if err != nil {
				t.Fatal(err)
			}
			h.failNext(tc.route, tc.times, tc.fault)
			f := wantFailure(t, tc.do(tg, s), tc.wantKind, tc.wantCode, tc.says)
			if f.RetryAfter != tc.wantRetry {
				t.Errorf("RetryAfter = %v, want %v", f.RetryAfter, tc.wantRetry)
			}
			var ae *helixapi.APIError
			if !errors.As(f, &ae) || ae.RequestID == "" {
				t.Errorf("the failure %v does not keep Helix's error as its cause", f)
			}
		})
	}
	t.Run("edit of an entitlement removed behind our back", func(t *testing.T) {
		t.Parallel()
		h := startHelix(t)
		tg := newTarget(t, h.client(t), product)
		s, err := provisionWith(tg, context.Background(), job(events.SubscriptionOrder, conf(), "BASIC", q2Step))
		if err != nil {
			t.Fatal(err)
		}
		h.part.Reset()
		wantFailure(t, change(tg, s), provisioning.Refused, events.AccountNotFound, "195119")
	})
	t.Run("the caller's deadline", func(t *testing.T) {
		t.Parallel()
		h := startHelix(t)
		tg := newTarget(t, h.client(t), product)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := provisionWith(tg, ctx, job(events.SubscriptionOrder, conf(), "BASIC", q2Step))
		wantFailure(t, err, provisioning.Transient, events.TransportError)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v does not keep the context's error", err)
		}
	})
}

// provisionWith prepares the step, as the plan does before recording it
// "calling", then provisions it.
func provisionWith(tg *helix.Target, ctx context.Context, j *provisioning.Job) (events.Step, error) {
	prep, err := tg.Prepare(ctx, j)
	if err != nil {
		return events.Step{}, err
	}
	j.Current = prep
	return tg.Provision(ctx, j)
}
