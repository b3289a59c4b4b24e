package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

type notifyAuth struct{ err error }

func (a notifyAuth) Verify(_ context.Context, r *http.Request) (string, error) {
	if r.ContentLength != 0 { // the door must refuse a body before anyone reads it
		return "", errors.New("the verifier was given a body")
	}
	return "bearer", a.err
}

// notifier answers every notification with reply and remembers them.
type notifier struct {
	mu    sync.Mutex
	got   []inbox.Notification
	reply inbox.Answer
}

func (n *notifier) Notify(_ context.Context, x inbox.Notification) (inbox.Answer, inbox.Copy, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, x)
	return n.reply, inbox.Copy{Key: "appdirect:" + x.Token}, nil
}

// The AppDirect door's statuses, in its order: who sent it, then where
// eventUrl points, then the inbox's answer. A nonce store that cannot be
// reached is an outage (503, sent again), not a bad signature: the
// signature may well be good, and a 401 tells AppDirect the credentials
// are wrong.
func TestAppDirectDoorStatuses(t *testing.T) {
	t.Parallel()
	storeDown := fmt.Errorf("appdirect: checking the OAuth nonce: redis appdirect nonce: %w: dial tcp: connection refused", events.ErrUnavailable)
	for _, tc := range []struct {
		name      string
		auth      error
		check     error
		status    int
		code      events.ErrorCode // "" for the notifier's reply
		wantRetry string
		body      string
	}{
		{name: "answered", status: 200},
		{name: "bad signature", auth: errors.New("OAuth 1.0a signature does not match"), status: 401, code: events.Unauthorized},
		{name: "nonce store down", auth: storeDown, status: 503, code: events.TransportError, wantRetry: "5"},
		{name: "foreign eventUrl", check: errors.New("eventUrl is not an event URL of a configured marketplace"), status: 403, code: events.Forbidden},
		// AppDirect's notification is a GET without a body. The OAuth
		// verifier reads a form body for its parameters (RFC 5849), up to
		// 1 MiB, before any check: unauthenticated requests holding such
		// bodies would hold that memory, with none of the Q2 door's caps.
		{name: "a body", body: "a=" + strings.Repeat("x", 1<<10), status: 400, code: events.InvalidResponse},
		{name: "bad signature and foreign eventUrl", auth: errors.New("no OAuth 1.0a signature"), check: errors.New("foreign"), status: 401, code: events.Unauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := &notifier{reply: okReply}
			h := New(Config{Receiver: &fakeReceiver{}, AppDirect: &AppDirect{Notifier: n, Auth: notifyAuth{tc.auth},
				Check: func(string) (string, string, error) { return "tok", "https://market.example", tc.check }}})
			var hdr http.Header
			if tc.body != "" {
				hdr = http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			}
			rec := do(t, h, http.MethodGet, "/appdirect/events?eventUrl=https%3A%2F%2Fmarket.example%2Fapi%2Fintegration%2Fv1%2Fevents%2Ftok", []byte(tc.body), hdr)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.wantRetry {
				t.Errorf("Retry-After %q, want %q", got, tc.wantRetry)
			}
			if tc.code == "" {
				if rec.Body.String() != string(okReply.Body) || len(n.got) != 1 || n.got[0].Token != "tok" {
					t.Errorf("body %s, notifications %+v; want the notifier's reply to one notification of tok", rec.Body, n.got)
				}
				return
			}
			if r := failure(t, rec); r.ErrorCode != tc.code || strings.Contains(r.Message, "connection refused") {
				t.Errorf("reply %+v, want %s without the cause", r, tc.code)
			}
			if len(n.got) != 0 {
				t.Errorf("a refused notification reached the inbox: %+v", n.got)
			}
		})
	}
}

// The event's URL is read from eventUrl, else from url (the name some of
// AppDirect's pages give it): that is what the marketplace check sees.
func TestAppDirectEventURLParameter(t *testing.T) {
	t.Parallel()
	const a, b = "https://market.example/api/integration/v1/events/a", "https://market.example/api/integration/v1/events/b"
	for _, tc := range []struct {
		name, query, want string
	}{
		{"eventUrl", "eventUrl=" + a, a},
		{"url", "url=" + b, b},
		{"both: eventUrl first", "url=" + b + "&eventUrl=" + a, a},
		{"neither", "other=" + a, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var checked []string
			var mu sync.Mutex
			h := New(Config{Receiver: &fakeReceiver{}, AppDirect: &AppDirect{Notifier: &notifier{reply: okReply}, Auth: notifyAuth{},
				Check: func(raw string) (string, string, error) {
					mu.Lock()
					checked = append(checked, raw)
					mu.Unlock()
					if raw == "" {
						return "", "", errors.New("no eventUrl")
					}
					return "tok", "https://market.example", nil
				}}})
			rec := do(t, h, http.MethodGet, "/appdirect/events?"+tc.query, nil, nil)
			if len(checked) != 1 || checked[0] != tc.want {
				t.Errorf("checked %q, want %q (status %d)", checked, tc.want, rec.Code)
			}
		})
	}
}
