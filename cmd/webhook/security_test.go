package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// signed returns Standard Webhooks headers for body, computed here rather
// than by the production code: HMAC-SHA256 over "id.timestamp.body" with
// the base64 key of a whsec_ secret.
func signed(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts.Unix())
	mac.Write(body)
	return http.Header{
		"Webhook-Id":        {id},
		"Webhook-Timestamp": {strconv.FormatInt(ts.Unix(), 10)},
		"Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))},
	}
}

const (
	oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	newSecret = "whsec_c2VjcmV0LWtleS1mb3ItdGhlLXJvdGF0aW9uLXRlc3Q="
)

// Every row of the contract's authentication part, with signatures
// computed independently of the production code.
func TestSignatures(t *testing.T) {
	t.Parallel()
	redis := testredis.Start(t)
	_, sandboxURL := startSandbox(t, q2sandbox.Config{})
	// Two secrets configured: rotation without downtime.
	svc := startService(t, with(q2Env(sandboxURL, redis.URL()), "WEBHOOK_AUTH", "signature", "WEBHOOK_SECRETS", oldSecret+" "+newSecret))
	url := svc.url + "/marketplace/p"
	body := readFixture(t, "subscription-order.json")
	now := time.Now()

	tests := []struct {
		name   string
		header http.Header
		body   []byte
		status int
		code   events.ErrorCode
	}{
		{"signed with the old secret", signed(t, oldSecret, "msg_a", now, body), body, 200, ""},
		{"signed with the new secret", signed(t, newSecret, "msg_b", now, body), body, 200, ""},
		{"unsigned", nil, body, 401, events.Unauthorized},
		{"wrong secret", signed(t, "whsec_"+base64.StdEncoding.EncodeToString([]byte("not the secret")), "msg_c", now, body), body, 401, events.Unauthorized},
		{"tampered body", signed(t, oldSecret, "msg_d", now, body), append(bytes.Clone(body), ' '), 401, events.Unauthorized},
		{"too old", signed(t, oldSecret, "msg_e", now.Add(-6*time.Minute), body), body, 401, events.Unauthorized},
		{"too new", signed(t, oldSecret, "msg_f", now.Add(6*time.Minute), body), body, 401, events.Unauthorized},
		{"just inside the tolerance", signed(t, oldSecret, "msg_g", now.Add(-4*time.Minute), body), body, 200, ""},
		{"id swapped after signing", func() http.Header {
			h := signed(t, oldSecret, "msg_h", now, body)
			h.Set("Webhook-Id", "msg_other")
			return h
		}(), body, 401, events.Unauthorized},
		{"one of several signatures matches", func() http.Header {
			h := signed(t, newSecret, "msg_i", now, body)
			h.Set("Webhook-Signature", "v1,bm90IGl0 v1a,whatever "+h.Get("Webhook-Signature"))
			return h
		}(), body, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, url, tt.body, tt.header)
			rep := wantReply(t, r, tt.status, tt.code)
			if tt.status == 401 && strings.Contains(rep.Message, "whsec") {
				t.Error("the 401 message mentions secrets")
			}
		})
	}

	// A webhook-id sent again with the same body is a replay; with another
	// body it is refused.
	again := post(t, url, body, signed(t, oldSecret, "msg_a", now, body))
	if again.status != 200 || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("same id, same body: %d replayed=%q", again.status, again.header.Get("Idempotent-Replayed"))
	}
	other := withSubscription(t, "subscription-order.json", "sub-other", "")
	wantReply(t, post(t, url, other, signed(t, oldSecret, "msg_a", now, other)), 422, events.InvalidResponse)
}

func TestBasicAuthMode(t *testing.T) {
	t.Parallel()
	_, sandboxURL := startSandbox(t, q2sandbox.Config{})
	svc := startService(t, with(q2Env(sandboxURL, miniRedisURL(t)), "WEBHOOK_AUTH", "basic", "WEBHOOK_BASIC_AUTH", "market:pa55word"))
	body := readFixture(t, "subscription-order.json")
	req := func(user, pass string) int {
		r, _ := http.NewRequest(http.MethodPost, svc.url+"/marketplace/p", bytes.NewReader(body))
		if user != "" {
			r.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := req("market", "pa55word"); got != 200 {
		t.Errorf("right credentials: %d", got)
	}
	for _, c := range [][2]string{{"market", "wrong"}, {"other", "pa55word"}, {"", ""}} {
		if got := req(c[0], c[1]); got != 401 {
			t.Errorf("credentials %q: %d, want 401", c, got)
		}
	}
}

// A full lifecycle with known secrets and personal data: none of them may
// reach the logs, at debug level, whatever the outcome.
func TestLogsLeakNothing(t *testing.T) {
	t.Parallel()
	const (
		q2Secret = "q2-client-secret-7f3a9c"
		email    = "leak.check@example.org"
		first    = "Zebediah"
		last     = "Quarrington"
		street   = "742 Evergreen Terrace"
		phone    = "5550100199"
	)
	redis := testredis.Start(t)
	sb, q2 := startSandbox(t, q2sandbox.Config{ClientSecret: q2Secret})
	env := q2Env(q2, redis.URL())
	env["Q2_CLIENT_SECRET"] = q2Secret
	env["WEBHOOK_AUTH"] = "signature"
	env["WEBHOOK_SECRETS"] = newSecret
	env["LOG_LEVEL"] = "debug"
	svc := startService(t, env)
	url := svc.url + "/marketplace/p"

	personal := func(name, account string) []byte {
		var m map[string]any
		_ = json.Unmarshal(withSubscription(t, name, "sub-leak", account), &m)
		c := m["event"].(map[string]any)["creator"].(map[string]any)
		c["email"], c["firstName"], c["lastName"] = email, first, last
		a := c["address"].(map[string]any)
		a["street1"], a["phone"], a["firstName"], a["lastName"], a["fullName"] = street, phone, first, last, first+" "+last
		b, _ := json.Marshal(m)
		return b
	}
	var sigs []string
	send := func(body []byte, id string) response {
		h := signed(t, newSecret, id, time.Now(), body)
		sigs = append(sigs, h.Get("Webhook-Signature"))
		return post(t, url, body, h)
	}
	id := wantReply(t, send(personal("subscription-order.json", ""), "msg_1"), 200, "").AccountIdentifier
	wantReply(t, send(personal("subscription-change.json", id), "msg_2"), 200, "")
	_ = sb.SetFault(sandbox.Fault{Route: "DeleteUser", Status: 503, Times: 10})
	wantReply(t, send(personal("subscription-cancel.json", id), "msg_3"), 200, events.DoNotCancel)
	_ = sb.SetFault(sandbox.Fault{Route: "DeleteUser", Times: 0})
	wantReply(t, send(personal("subscription-cancel.json", id), "msg_4"), 200, "")
	wantReply(t, post(t, url, personal("subscription-order.json", ""), nil), 401, events.Unauthorized)
	bad := bytes.Replace(personal("subscription-order.json", ""), []byte(`"user_id":12345`), []byte(`"user_id":"`+email+`"`), 1)
	wantReply(t, send(bad, "msg_5"), 400, events.InvalidResponse)
	if err := svc.stop(t); err != nil {
		t.Fatal(err)
	}

	logs := svc.logs.String()
	if !strings.Contains(logs, `"msg":"delivery"`) {
		t.Fatal("no delivery was logged: the test would prove nothing")
	}
	secrets := append([]string{q2Secret, newSecret, strings.TrimPrefix(newSecret, "whsec_"), email, first, last, street, phone}, sigs...)
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain %q", s)
		}
	}
	if strings.Contains(logs, "Bearer ") || strings.Contains(strings.ToLower(logs), "password") {
		t.Error("the logs mention a token or a password")
	}
}

// The replay command against the running service: the story folder passes,
// signed, and fails unsigned against a service that requires signatures.
func TestReplayStory(t *testing.T) {
	t.Parallel()
	_, sandboxURL := startSandbox(t, q2sandbox.Config{})
	svc := startService(t, with(q2Env(sandboxURL, miniRedisURL(t)), "WEBHOOK_AUTH", "signature", "WEBHOOK_SECRETS", newSecret))
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"replay", "--url", svc.url, "--secret", newSecret, "../../fixtures/story"},
		func(string) string { return "" }, &out, &errOut)
	if err != nil {
		t.Fatalf("replay of the story: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "sent 4") {
		t.Errorf("summary missing: %s", out.String())
	}

	out.Reset()
	err = run(context.Background(), []string{"replay", "--url", svc.url, "--secret=", "../../fixtures/story/01-order.json"},
		func(string) string { return "" }, &out, &errOut)
	if code := exitCode(err, &bytes.Buffer{}); code != 1 {
		t.Errorf("unsigned replay against a signing service: exit %d, want 1\n%s", code, out.String())
	}
}
