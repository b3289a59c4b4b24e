package signature_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/signature"
)

// The published Standard Webhooks test vector, as in the reference libraries
// (standard-webhooks/standard-webhooks, libraries/go/webhook_test.go
// TestWebhookSign; the same values appear in the other libraries' tests).
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var specTime = time.Unix(specTimestamp, 0)

// secondSecret is another valid secret, for rotation tests.
const secondSecret = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="

// independentSign computes a v1 signature without the package's code: the
// vector test then checks two implementations against the published value.
func independentSign(t *testing.T, secret, id string, ts int64, body string) string {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("decoding test secret: %v", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func newVerifier(t *testing.T, secrets ...string) *signature.Verifier {
	t.Helper()
	v, err := signature.NewVerifier(secrets)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestSpecVector(t *testing.T) {
	t.Parallel()
	if got := independentSign(t, specSecret, specID, specTimestamp, specBody); got != specSignature {
		t.Fatalf("independent HMAC = %s, want the published %s", got, specSignature)
	}
	got, err := signature.Sign(specSecret, specID, specTime, []byte(specBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != specSignature {
		t.Fatalf("Sign = %s, want %s", got, specSignature)
	}
	// The secret without its prefix is the same key.
	if got, _ := signature.Sign(strings.TrimPrefix(specSecret, "whsec_"), specID, specTime, []byte(specBody)); got != specSignature {
		t.Fatalf("Sign without prefix = %s, want %s", got, specSignature)
	}

	h := http.Header{}
	h.Set("webhook-id", specID)
	h.Set("webhook-timestamp", strconv.Itoa(specTimestamp))
	h.Set("webhook-signature", specSignature)
	if err := newVerifier(t, specSecret).Verify(h, []byte(specBody), specTime); err != nil {
		t.Fatalf("Verify of the published vector: %v", err)
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	h, err := signature.Headers(specSecret, specID, specTime, []byte(specBody))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"webhook-id":        specID,
		"webhook-timestamp": "1614265330",
		"webhook-signature": specSignature,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(specBody)
	now := specTime
	// signed returns the headers of a delivery signed with secret at ts.
	signed := func(secret string, ts time.Time) http.Header {
		h, err := signature.Headers(secret, specID, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	with := func(h http.Header, key, value string) http.Header {
		h = h.Clone()
		if value == "" {
			h.Del(key)
		} else {
			h.Set(key, value)
		}
		return h
	}
	good := signed(specSecret, now)
	otherSig, _ := signature.Sign(secondSecret, specID, now, body)

	tests := []struct {
		name    string
		secrets []string
		header  http.Header
		body    string
		now     time.Time
		want    error
	}{
		{name: "valid", header: good},
		{name: "no headers at all", header: http.Header{}, want: signature.ErrNotSigned},
		{name: "missing id", header: with(good, "webhook-id", ""), want: signature.ErrNotSigned},
		{name: "missing timestamp", header: with(good, "webhook-timestamp", ""), want: signature.ErrNotSigned},
		{name: "missing signature", header: with(good, "webhook-signature", ""), want: signature.ErrNotSigned},
		{name: "timestamp not a number", header: with(good, "webhook-timestamp", "yesterday"), want: signature.ErrBadHeader},
		{name: "timestamp with sign", header: with(good, "webhook-timestamp", "+1614265330"), want: signature.ErrBadHeader},
		{name: "timestamp with leading zero", header: with(good, "webhook-timestamp", "01614265330"), want: signature.ErrBadHeader},
		{name: "timestamp in milliseconds overflowing", header: with(good, "webhook-timestamp", "99999999999999999999"), want: signature.ErrBadHeader},
		{name: "id too long", header: with(good, "webhook-id", strings.Repeat("a", 257)), want: signature.ErrBadHeader},
		{name: "signature header too long", header: with(good, "webhook-signature", strings.Repeat("v1,x ", 1000)), want: signature.ErrBadHeader},
		{name: "exactly tolerance old", header: signed(specSecret, now.Add(-signature.Tolerance))},
		{name: "a second past tolerance old", header: signed(specSecret, now.Add(-signature.Tolerance-time.Second)), want: signature.ErrTooOld},
		{name: "exactly tolerance new", header: signed(specSecret, now.Add(signature.Tolerance))},
		{name: "a second past tolerance new", header: signed(specSecret, now.Add(signature.Tolerance+time.Second)), want: signature.ErrTooNew},
		{name: "now a fraction past tolerance", header: good, now: now.Add(signature.Tolerance + time.Millisecond), want: signature.ErrTooOld},
		{name: "wrong secret", secrets: []string{secondSecret}, header: good, want: signature.ErrNoMatchingSignature},
		{name: "rotation: second secret matches", secrets: []string{secondSecret, specSecret}, header: good},
		{name: "rotation: sender signed with the new secret only", secrets: []string{specSecret, secondSecret}, header: with(good, "webhook-signature", otherSig)},
		{name: "several signatures, last matches", header: with(good, "webhook-signature",
			"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "+specSignature)},
		{name: "several signatures, none matches", header: with(good, "webhook-signature",
			"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "+otherSig), want: signature.ErrNoMatchingSignature},
		{name: "extra spaces between entries", header: with(good, "webhook-signature", "  v1,bm9wZQ==   "+specSignature+"  ")},
		{name: "v1a entry with our MAC is ignored", header: with(good, "webhook-signature", "v1a,"+strings.TrimPrefix(specSignature, "v1,")), want: signature.ErrNoMatchingSignature},
		{name: "malformed entries ignored", header: with(good, "webhook-signature", "garbage v1 v1, v1,!!!! ,"+strings.TrimPrefix(specSignature, "v1,")+" "+specSignature)},
		{name: "signature without padding is not ours", header: with(good, "webhook-signature", strings.TrimSuffix(specSignature, "=")), want: signature.ErrNoMatchingSignature},
		{name: "match beyond the entry cap is not examined", header: with(good, "webhook-signature",
			strings.Repeat("v1,bm9wZQ== ", signature.MaxSignatures)+specSignature), want: signature.ErrNoMatchingSignature},
		{name: "match at the entry cap", header: with(good, "webhook-signature",
			strings.Repeat("v1,bm9wZQ== ", signature.MaxSignatures-1)+specSignature)},
		{name: "tampered body", header: good, body: `{"test": 2432232315}`, want: signature.ErrNoMatchingSignature},
		{name: "body with extra whitespace", header: good, body: `{"test":  2432232314}`, want: signature.ErrNoMatchingSignature},
		{name: "tampered id", header: with(good, "webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJeK"), want: signature.ErrNoMatchingSignature},
		{name: "tampered timestamp", header: with(good, "webhook-timestamp", "1614265331"), want: signature.ErrNoMatchingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{specSecret}
			}
			b := body
			if tt.body != "" {
				b = []byte(tt.body)
			}
			at := now
			if !tt.now.IsZero() {
				at = tt.now
			}
			err := newVerifier(t, secrets...).Verify(tt.header, b, at)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewVerifierErrors(t *testing.T) {
	t.Parallel()
	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("short key"))
	tests := []struct {
		name    string
		secrets []string
		want    string
	}{
		{"none", nil, "no secrets"},
		{"empty", []string{""}, "secret 1 of 1 is empty"},
		{"prefix only", []string{"whsec_"}, "is empty"},
		{"not base64", []string{specSecret, "whsec_not*base64!"}, "secret 2 of 2 is not valid base64"},
		{"too short", []string{short}, "9-byte key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := signature.NewVerifier(tt.secrets)
			if err == nil {
				t.Fatal("NewVerifier succeeded, want an error")
			}
			msg := err.Error()
			if strings.Contains(msg, "WEBHOOK_SECRETS") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q should say %q, and leave naming the setting to the caller", msg, tt.want)
			}
			for _, s := range tt.secrets {
				if body := strings.TrimPrefix(s, "whsec_"); len(body) > 4 && strings.Contains(msg, body) {
					t.Errorf("error %q prints the secret", msg)
				}
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	t.Parallel()
	if _, err := signature.Sign("whsec_%%%", specID, specTime, nil); err == nil {
		t.Error("Sign with a bad secret succeeded")
	}
	if _, err := signature.Headers(specSecret, "", specTime, nil); err == nil {
		t.Error("Headers with an empty id succeeded")
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(specID, "1614265330", specSignature, []byte(specBody))
	f.Add("", "", "", []byte{})
	f.Add("msg_x", "-1", "v1,", []byte("{}"))
	f.Add("msg_x", "1614265330", "v1a,abc v1,==== v1,AAAA , ,,", []byte("x"))
	f.Add("a.b", "99999999999999999999", strings.Repeat("v1,", 50), []byte(nil))
	v, err := signature.NewVerifier([]string{specSecret, secondSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		err := v.Verify(h, body, specTime)
		if err == nil {
			// Only a real signature may pass.
			n, perr := strconv.ParseInt(ts, 10, 64)
			if perr != nil {
				t.Fatalf("accepted an unparsable timestamp %q", ts)
			}
			if !strings.Contains(sig, independentSign(t, specSecret, id, n, string(body))) &&
				!strings.Contains(sig, independentSign(t, secondSecret, id, n, string(body))) {
				t.Fatalf("accepted a signature that is not the HMAC: id=%q ts=%q sig=%q", id, ts, sig)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	body := []byte(strings.Repeat(`{"event_type":"SUBSCRIPTION_ORDER","user_id":12345}`, 40)) // about 2 KB, a typical event
	now := time.Now()
	h, err := signature.Headers(specSecret, specID, now, body)
	if err != nil {
		b.Fatal(err)
	}
	// During a rotation: two secrets, and the sender signs with the second.
	v, err := signature.NewVerifier([]string{secondSecret, specSecret})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(h, body, now); err != nil {
			b.Fatal(err)
		}
	}
}
