package appdirect

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRFC5849Example: the worked example of RFC 5849 §3.1, §3.4.1: the
// parameters gathered from the query, the form body and the header (realm
// left out), the base string exactly as the RFC prints it, and the
// HMAC-SHA1 of it. The RFC's printed signature (bYT5CMsGcbgUdFHObYMEfcx6bsw=)
// does not match its own inputs; r6/TJjbCOr97/+UU0NsvSne7s5g= is what the
// key "j49sk3j29djd&dh893hdasih9" gives (Python's hmac and openssl agree).
func TestRFC5849Example(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodPost, "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b", strings.NewReader("c2&a3=2+q"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", `OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", `+
		`oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131201", `+
		`oauth_nonce="7d8f3e4a", oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D"`)
	params, proto, err := collect(req)
	if err != nil {
		t.Fatal(err)
	}
	uri, err := (&Verifier{}).uri(req)
	if err != nil {
		t.Fatal(err)
	}
	const wantBase = "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
	base := baseString(req.Method, uri, params)
	if base != wantBase {
		t.Errorf("base string\n got %s\nwant %s", base, wantBase)
	}
	if got := proto["oauth_signature"]; len(got) != 1 || got[0] != "bYT5CMsGcbgUdFHObYMEfcx6bsw=" {
		t.Errorf("oauth_signature read from the header = %q", got)
	}
	if got := signature(base, "j49sk3j29djd", "dh893hdasih9"); got != "r6/TJjbCOr97/+UU0NsvSne7s5g=" {
		t.Errorf("signature = %s, want r6/TJjbCOr97/+UU0NsvSne7s5g=", got)
	}
	// The body is still there for the handler.
	if err := req.ParseForm(); err != nil || req.PostForm.Get("a3") != "2 q" {
		t.Errorf("form after collect = %v, %v", req.PostForm, err)
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":              "",
		"AZaz09-._~":    "AZaz09-._~",
		"a b":           "a%20b",
		"a+b":           "a%2Bb",
		"=%&*/:?@!'()":  "%3D%25%26%2A%2F%3A%3F%40%21%27%28%29",
		"é":             "%C3%A9",
		"\x00\x7f\xff":  "%00%7F%FF",
		"dh893hdasih9?": "dh893hdasih9%3F",
	} {
		if got := encode(in); got != want {
			t.Errorf("encode(%q) = %q, want %q", in, got, want)
		}
	}
}

// naive is a second OAuth 1.0a signer, written from RFC 5849 without
// looking at the package's: url.QueryEscape with the three differences of
// §3.6 patched, sort.Slice over the encoded pairs, and the URL built by
// string concatenation.
type naive struct {
	method, scheme, host, port, path string // host as given (any case); port "" for none
	query, form                      [][2]string
}

func naiveEncode(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	e = strings.ReplaceAll(e, "*", "%2A")
	return strings.ReplaceAll(e, "%7E", "~")
}

func (n naive) base(oauth [][2]string) string {
	var pairs []string
	for _, set := range [][][2]string{n.query, n.form, oauth} {
		for _, p := range set {
			pairs = append(pairs, naiveEncode(p[0])+"="+naiveEncode(p[1]))
		}
	}
	sort.Slice(pairs, func(i, j int) bool { // by name, then by value: compare the two parts
		ni, vi, _ := strings.Cut(pairs[i], "=")
		nj, vj, _ := strings.Cut(pairs[j], "=")
		if ni != nj {
			return ni < nj
		}
		return vi < vj
	})
	uri := strings.ToLower(n.scheme) + "://" + strings.ToLower(n.host)
	if n.port != "" && !(n.scheme == "http" && n.port == "80") && !(n.scheme == "https" && n.port == "443") {
		uri += ":" + n.port
	}
	uri += n.path
	return strings.ToUpper(n.method) + "&" + naiveEncode(uri) + "&" + naiveEncode(strings.Join(pairs, "&"))
}

func (n naive) sign(oauth [][2]string, secret string) string {
	mac := hmac.New(sha1.New, []byte(naiveEncode(secret)+"&"))
	mac.Write([]byte(n.base(oauth)))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// target is the request URL as a client sends it, the query encoded one
// of two ways (spaces as "+" or "%20").
func (n naive) target(r *rand.Rand) string {
	u := n.scheme + "://" + n.host
	if n.port != "" {
		u += ":" + n.port
	}
	u += n.path
	var q []string
	for _, p := range n.query {
		enc := url.QueryEscape
		if r.IntN(2) == 0 {
			enc = naiveEncode
		}
		q = append(q, enc(p[0])+"="+enc(p[1]))
	}
	if len(q) > 0 {
		u += "?" + strings.Join(q, "&")
	}
	return u
}

func (n naive) body() string {
	var q []string
	for _, p := range n.form {
		q = append(q, url.QueryEscape(p[0])+"="+url.QueryEscape(p[1]))
	}
	return strings.Join(q, "&")
}

// request is n as the server sees it, the oauth parameters in the header.
func (n naive) request(r *rand.Rand, oauth [][2]string, sig string) *http.Request {
	var body *strings.Reader
	if n.form != nil {
		body = strings.NewReader(n.body())
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(n.method, n.target(r), body)
	if n.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	h := []string{`realm="ignored"`}
	for _, p := range append(oauth, [2]string{"oauth_signature", sig}) {
		h = append(h, naiveEncode(p[0])+`="`+naiveEncode(p[1])+`"`)
	}
	r.Shuffle(len(h), func(i, j int) { h[i], h[j] = h[j], h[i] })
	req.Header.Set("Authorization", "OAuth "+strings.Join(h, ","+strings.Repeat(" ", r.IntN(2))))
	return req
}

var pieces = []string{"a", "B", "z9", " ", "+", "%", "&", "=", "~", "*", ";", "/", "?", "é", "日本", "-._", "", "eventUrl", "https://m.example/api/integration/v1/events/x"}

func randomString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(4) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

func randomPairs(r *rand.Rand) [][2]string {
	var out [][2]string
	for range r.IntN(5) {
		name := randomString(r)
		if name == "" || strings.HasPrefix(name, "oauth_") {
			name = "p" + name
		}
		out = append(out, [2]string{name, randomString(r)})
		if r.IntN(4) == 0 { // the same name twice
			out = append(out, [2]string{name, randomString(r)})
		}
	}
	return out
}

func randomNaive(r *rand.Rand) naive {
	n := naive{method: []string{"GET", "POST", "DELETE"}[r.IntN(3)], scheme: []string{"http", "https"}[r.IntN(2)]}
	n.host = []string{"vendor.example", "Vendor.EXAMPLE", "127.0.0.1", "[::1]"}[r.IntN(4)]
	n.port = []string{"", "80", "443", "8443"}[r.IntN(4)]
	n.path = []string{"/", "/appdirect/events", "/a%20b/c~d", "/x/%7Ey"}[r.IntN(4)]
	n.query = randomPairs(r)
	if n.method == "POST" && r.IntN(2) == 0 {
		n.form = randomPairs(r)
		if n.form == nil {
			n.form = [][2]string{}
		}
	}
	return n
}

// TestAgainstNaiveSigner: over random requests, what the naive signer
// signs the Verifier accepts, and what Sign signs the naive signer
// computes too.
func TestAgainstNaiveSigner(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1_700_000_000, 0)
	for i := range 500 {
		n := randomNaive(r)
		secret := "s3cr&t " + randomString(r)
		ts := strconv.FormatInt(now.Unix(), 10)
		nonce := fmt.Sprintf("nonce-%d", i)
		oauth := [][2]string{
			{"oauth_consumer_key", "key " + strconv.Itoa(i)},
			{"oauth_nonce", nonce}, {"oauth_signature_method", "HMAC-SHA1"}, {"oauth_timestamp", ts},
		}
		if r.IntN(2) == 0 {
			oauth = append(oauth, [2]string{"oauth_version", "1.0"})
		}
		v, err := NewVerifier(VerifierConfig{Consumers: []Consumer{{"key " + strconv.Itoa(i), secret}}, Nonces: &MemoryNonces{}, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		req := n.request(r, oauth, n.sign(oauth, secret))
		if _, err := v.Verify(context.Background(), req); err != nil {
			t.Fatalf("request %d (%s %s): Verify of the naive signature: %v\nnaive base: %s", i, n.method, n.target(r), err, n.base(oauth))
		}

		// The other way: Sign, then the naive signer reads the header.
		out, err := http.NewRequest(n.method, n.target(r), strings.NewReader(n.body()))
		if err != nil {
			t.Fatal(err)
		}
		if n.form != nil {
			out.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if err := Sign(out, "key", secret, now, nonce); err != nil {
			t.Fatal(err)
		}
		got, sig := readHeader(t, out.Header.Get("Authorization"))
		if want := n.sign(got, secret); sig != want {
			t.Fatalf("request %d: Sign gave %s, the naive signer %s\nnaive base: %s", i, sig, want, n.base(got))
		}
		if body := readAll(t, out); body != n.body() {
			t.Fatalf("request %d: the form body after Sign is %q, want %q", i, body, n.body())
		}
	}
}

// readHeader splits an Authorization header the simplest way: the oauth
// parameters but the signature, and the signature.
func readHeader(t *testing.T, h string) (params [][2]string, sig string) {
	t.Helper()
	rest, ok := strings.CutPrefix(h, "OAuth ")
	if !ok {
		t.Fatalf("Authorization %q is not OAuth", h)
	}
	for _, kv := range strings.Split(rest, ", ") {
		name, quoted, _ := strings.Cut(kv, "=")
		v, err := url.PathUnescape(strings.Trim(quoted, `"`))
		if err != nil {
			t.Fatal(err)
		}
		if name == "oauth_signature" {
			sig = v
			continue
		}
		params = append(params, [2]string{name, v})
	}
	return params, sig
}

func readAll(t *testing.T, r *http.Request) string {
	t.Helper()
	if r.Body == nil {
		return ""
	}
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// signedNotification is AppDirect's notification to the door, signed by
// the naive signer with the usual oauth parameters and the extra ones.
func signedNotification(t *testing.T, target, key, secret string, at time.Time, nonce string, extra ...[2]string) *http.Request {
	t.Helper()
	oauth := [][2]string{
		{"oauth_consumer_key", key}, {"oauth_nonce", nonce}, {"oauth_signature_method", "HMAC-SHA1"},
		{"oauth_timestamp", strconv.FormatInt(at.Unix(), 10)}, {"oauth_version", "1.0"},
	}
	return signedWith(t, target, secret, append(oauth, extra...))
}

// signedWith is a GET of target signed by the naive signer with exactly
// the oauth parameters given.
func signedWith(t *testing.T, target, secret string, oauth [][2]string) *http.Request {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	n := naive{method: "GET", scheme: u.Scheme, host: u.Hostname(), port: u.Port(), path: u.EscapedPath()}
	for k, vs := range u.Query() {
		for _, v := range vs {
			n.query = append(n.query, [2]string{k, v})
		}
	}
	return n.request(rand.New(rand.NewPCG(3, 4)), oauth, n.sign(oauth, secret))
}

const notifyURL = "https://vendor.example/appdirect/events?eventUrl=https%3A%2F%2Fmarket.example%2Fapi%2Fintegration%2Fv1%2Fevents%2Fabc-123"

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	consumers := []Consumer{{"key", "new-secret"}, {"key", "old-secret"}, {"other", "other-secret"}}
	nonce := 0
	fresh := func() string { nonce++; return fmt.Sprintf("n%d", nonce) }
	signed := func(secret string, at time.Time) func(*testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			return signedNotification(t, notifyURL, "key", secret, at, fresh())
		}
	}
	withHeader := func(h string) func(*testing.T) *http.Request {
		return func(t *testing.T) *http.Request {
			r := httptest.NewRequest("GET", notifyURL, nil)
			r.Header.Set("Authorization", h)
			return r
		}
	}
	tests := []struct {
		name    string
		req     func(*testing.T) *http.Request
		wantKey string
		wantErr error
	}{
		{"current secret", signed("new-secret", now), "key", nil},
		{"old secret during rotation", signed("old-secret", now), "key", nil},
		{"another consumer", func(t *testing.T) *http.Request {
			return signedNotification(t, notifyURL, "other", "other-secret", now, fresh())
		}, "other", nil},
		{"wrong secret", signed("guess", now), "", ErrBadSignature},
		{"the other key's secret", signed("other-secret", now), "", ErrBadSignature},
		{"unknown key", func(t *testing.T) *http.Request {
			return signedNotification(t, notifyURL, "stranger", "new-secret", now, fresh())
		}, "", ErrUnknownKey},
		{"at the edge of the past", signed("new-secret", now.Add(-DefaultWindow)), "key", nil},
		{"stale", signed("new-secret", now.Add(-DefaultWindow-time.Second)), "", ErrStale},
		{"12 hours old, which the SDK accepts", signed("new-secret", now.Add(-11*time.Hour)), "", ErrStale},
		{"at the edge of the future", signed("new-secret", now.Add(DefaultWindow)), "key", nil},
		{"future", signed("new-secret", now.Add(DefaultWindow+time.Second)), "", ErrFuture},
		{"parameter added after signing", func(t *testing.T) *http.Request {
			r := signedNotification(t, notifyURL, "key", "new-secret", now, fresh())
			r.URL.RawQuery += "&extra=1"
			return r
		}, "", ErrBadSignature},
		{"eventUrl changed after signing", func(t *testing.T) *http.Request {
			r := signedNotification(t, notifyURL, "key", "new-secret", now, fresh())
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "abc-123", "abc-124", 1)
			return r
		}, "", ErrBadSignature},
		{"path changed after signing", func(t *testing.T) *http.Request {
			r := signedNotification(t, notifyURL, "key", "new-secret", now, fresh())
			r.URL.Path = "/appdirect/other"
			return r
		}, "", ErrBadSignature},
		{"oauth parameters in the query", func(t *testing.T) *http.Request {
			r := signedNotification(t, notifyURL, "key", "new-secret", now, fresh())
			_, proto, err := collect(r)
			if err != nil {
				t.Fatal(err)
			}
			q := r.URL.Query()
			for k, v := range proto {
				q.Set(k, v[0])
			}
			r.URL.RawQuery = q.Encode()
			r.Header.Del("Authorization")
			return r
		}, "key", nil},
		{"oauth_version 2.0", func(t *testing.T) *http.Request {
			return signedWith(t, notifyURL, "new-secret", [][2]string{
				{"oauth_consumer_key", "key"}, {"oauth_nonce", fresh()}, {"oauth_signature_method", "HMAC-SHA1"},
				{"oauth_timestamp", strconv.FormatInt(now.Unix(), 10)}, {"oauth_version", "2.0"},
			})
		}, "", ErrUnsupported},
		{"no oauth_version", func(t *testing.T) *http.Request {
			return signedWith(t, notifyURL, "new-secret", [][2]string{
				{"oauth_consumer_key", "key"}, {"oauth_nonce", fresh()}, {"oauth_signature_method", "HMAC-SHA1"},
				{"oauth_timestamp", strconv.FormatInt(now.Unix(), 10)},
			})
		}, "key", nil},
		{"PLAINTEXT", withHeader(`OAuth oauth_consumer_key="key", oauth_nonce="x", oauth_signature_method="PLAINTEXT", oauth_timestamp="1700000000", oauth_signature="new-secret%26"`), "", ErrUnsupported},
		{"a token", func(t *testing.T) *http.Request {
			return signedNotification(t, notifyURL, "key", "new-secret", now, fresh(), [2]string{"oauth_token", "tok"})
		}, "", ErrMalformed},
		{"no Authorization", withHeader(""), "", ErrNotSigned},
		{"Bearer", withHeader("Bearer abc"), "", ErrNotSigned},
		{"no nonce", withHeader(`OAuth oauth_consumer_key="key", oauth_signature_method="HMAC-SHA1", oauth_timestamp="1700000000", oauth_signature="AAAA"`), "", ErrMalformed},
		{"timestamp not a number", withHeader(`OAuth oauth_consumer_key="key", oauth_nonce="x", oauth_signature_method="HMAC-SHA1", oauth_timestamp="soon", oauth_signature="AAAA"`), "", ErrMalformed},
		{"parameter twice", withHeader(`OAuth oauth_consumer_key="key", oauth_consumer_key="key", oauth_nonce="x", oauth_signature_method="HMAC-SHA1", oauth_timestamp="1700000000", oauth_signature="AAAA"`), "", ErrMalformed},
		{"unterminated header", withHeader(`OAuth oauth_consumer_key="key`), "", ErrMalformed},
		{"signature not base64", withHeader(`OAuth oauth_consumer_key="key", oauth_nonce="x", oauth_signature_method="HMAC-SHA1", oauth_timestamp="1700000000", oauth_signature="%21%21"`), "", ErrBadSignature},
	}
	v, err := NewVerifier(VerifierConfig{Consumers: consumers, Nonces: &MemoryNonces{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := v.Verify(context.Background(), tt.req(t))
			if !errors.Is(err, tt.wantErr) || key != tt.wantKey {
				t.Errorf("Verify = %q, %v; want %q, %v", key, err, tt.wantKey, tt.wantErr)
			}
		})
	}
}

// TestReplay: a nonce is accepted once per key within the window, even
// from another replica sharing the store; a request refused before its
// signature was checked records nothing.
func TestReplay(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	store := &MemoryNonces{Now: clock}
	cfg := VerifierConfig{Consumers: []Consumer{{"key", "secret"}, {"k2", "s2"}}, Nonces: store, Now: clock}
	a, _ := NewVerifier(cfg)
	b, _ := NewVerifier(cfg)
	ctx := context.Background()
	if _, err := a.Verify(ctx, signedNotification(t, notifyURL, "key", "wrong", now, "n1")); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("bad signature: %v", err)
	}
	if _, err := a.Verify(ctx, signedNotification(t, notifyURL, "key", "secret", now, "n1")); err != nil {
		t.Fatalf("first use after a refused forgery: %v", err)
	}
	if _, err := b.Verify(ctx, signedNotification(t, notifyURL, "key", "secret", now, "n1")); !errors.Is(err, ErrReplayed) {
		t.Fatalf("second use: %v, want ErrReplayed", err)
	}
	if _, err := a.Verify(ctx, signedNotification(t, notifyURL, "k2", "s2", now, "n1")); err != nil {
		t.Fatalf("the same nonce for another key: %v", err)
	}
}

// TestReplayWindow: the nonce is kept as long as its timestamp can pass:
// twice the window.
func TestReplayWindow(t *testing.T) {
	t.Parallel()
	var rec recordingNonces
	now := time.Unix(1_700_000_000, 0)
	v, _ := NewVerifier(VerifierConfig{Consumers: []Consumer{{"key", "secret"}}, Nonces: &rec, Window: time.Minute, Now: func() time.Time { return now }})
	if _, err := v.Verify(context.Background(), signedNotification(t, notifyURL, "key", "secret", now, "n1")); err != nil {
		t.Fatal(err)
	}
	if rec.key != "key" || rec.nonce != "n1" || rec.ttl != 2*time.Minute {
		t.Errorf("Seen(%q, %q, %s), want (key, n1, 2m)", rec.key, rec.nonce, rec.ttl)
	}
	rec.err = errors.New("redis down")
	if _, err := v.Verify(context.Background(), signedNotification(t, notifyURL, "key", "secret", now, "n2")); !errors.Is(err, rec.err) {
		t.Errorf("store failure: %v", err)
	}
}

type recordingNonces struct {
	key, nonce string
	ttl        time.Duration
	err        error
}

func (r *recordingNonces) Seen(_ context.Context, key, nonce string, ttl time.Duration) (bool, error) {
	r.key, r.nonce, r.ttl = key, nonce, ttl
	return false, r.err
}

func TestMemoryNoncesExpire(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	m := &MemoryNonces{Now: func() time.Time { return now }}
	ctx := context.Background()
	for i := range 3000 {
		if seen, _ := m.Seen(ctx, "k", strconv.Itoa(i), time.Minute); seen {
			t.Fatalf("nonce %d seen before its first use", i)
		}
	}
	if seen, _ := m.Seen(ctx, "k", "7", time.Minute); !seen {
		t.Fatal("nonce 7 not seen again")
	}
	now = now.Add(time.Minute)
	if seen, _ := m.Seen(ctx, "k", "7", time.Minute); seen {
		t.Fatal("nonce 7 still seen after its ttl")
	}
	m.mu.Lock()
	n := len(m.seen)
	m.mu.Unlock()
	if seen, _ := m.Seen(ctx, "k", "new", time.Minute); seen || n > 3001 {
		t.Fatalf("entries = %d", n)
	}
}

// TestPublicURL: behind a proxy the request arrives at another host and
// scheme than AppDirect signed; the configured public URL is what counts.
func TestPublicURL(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	inner := func(t *testing.T) *http.Request {
		r := signedNotification(t, notifyURL, "key", "secret", now, "n1")
		r.Host, r.TLS = "10.0.0.7:8080", nil // as the proxy's hop arrives
		return r
	}
	for _, tt := range []struct {
		public string
		want   error
	}{
		{"https://vendor.example", nil},
		{"https://VENDOR.example:443/", nil},
		{"", ErrBadSignature},
		{"http://vendor.example", ErrBadSignature},
		{"https://vendor.example:8443", ErrBadSignature},
	} {
		v, err := NewVerifier(VerifierConfig{Consumers: []Consumer{{"key", "secret"}}, PublicURL: tt.public, Nonces: &MemoryNonces{}, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), inner(t)); !errors.Is(err, tt.want) {
			t.Errorf("PublicURL %q: %v, want %v", tt.public, err, tt.want)
		}
	}
}

// TestParsePublicURL: scheme://host[:port] alone; the configuration
// checks APPDIRECT_PUBLIC_URL with it, as NewVerifier does.
func TestParsePublicURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		raw, scheme, host string // scheme "": refused
	}{
		{"https://vendor.example", "https", "vendor.example"},
		{"https://vendor.example/", "https", "vendor.example"},
		{"HTTP://vendor.example:8080", "http", "vendor.example:8080"},
		{"https://[2001:db8::1]:8443", "https", "[2001:db8::1]:8443"},
		{"vendor.example", "", ""},
		{"https://vendor.example/base", "", ""},
		{"https://vendor.example?x=1", "", ""},
		{"https://vendor.example?", "", ""},
		{"https://vendor.example#top", "", ""},
		{"https://me@vendor.example", "", ""},
		{"https://vendor.example:", "", ""},
		{"https://:443", "", ""},
		{"ftp://vendor.example", "", ""},
		{"https:vendor.example", "", ""},
		{"https://vendor.example:http", "", ""},
	} {
		scheme, host, err := ParsePublicURL(tt.raw)
		switch {
		case tt.scheme == "" && (err == nil || !strings.Contains(err.Error(), "is not scheme://host[:port] alone")):
			t.Errorf("ParsePublicURL(%q) = %q, %q, %v; want refused", tt.raw, scheme, host, err)
		case tt.scheme != "" && (err != nil || scheme != tt.scheme || host != tt.host):
			t.Errorf("ParsePublicURL(%q) = %q, %q, %v; want %q, %q", tt.raw, scheme, host, err, tt.scheme, tt.host)
		}
	}
}

func TestNewVerifierErrors(t *testing.T) {
	t.Parallel()
	ok := []Consumer{{"k", "s"}}
	for _, tt := range []struct {
		cfg  VerifierConfig
		want string
	}{
		{VerifierConfig{Nonces: &MemoryNonces{}}, "Consumers is empty"},
		{VerifierConfig{Consumers: []Consumer{{"k", ""}}, Nonces: &MemoryNonces{}}, "consumer 1 has an empty"},
		{VerifierConfig{Consumers: ok}, "Nonces is nil"},
		{VerifierConfig{Consumers: ok, Nonces: &MemoryNonces{}, PublicURL: "https://vendor.example/base"}, "PublicURL"},
		{VerifierConfig{Consumers: ok, Nonces: &MemoryNonces{}, PublicURL: "vendor.example"}, "PublicURL"},
		{VerifierConfig{Consumers: ok, Nonces: &MemoryNonces{}, Window: -time.Second}, "Window"},
	} {
		if _, err := NewVerifier(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewVerifier(%+v) = %v, want an error with %q", tt.cfg, err, tt.want)
		}
	}
}

// TestSignHeader: the header Sign writes, field by field.
func TestSignHeader(t *testing.T) {
	t.Parallel()
	req, _ := http.NewRequest("GET", "https://Market.example:443/api/integration/v1/events/t1", nil)
	if err := Sign(req, "my key", "secret", time.Unix(1_700_000_000, 0), "abc"); err != nil {
		t.Fatal(err)
	}
	h := req.Header.Get("Authorization")
	for _, want := range []string{`OAuth oauth_consumer_key="my%20key"`, `oauth_nonce="abc"`, `oauth_signature_method="HMAC-SHA1"`, `oauth_timestamp="1700000000"`, `oauth_version="1.0"`, `oauth_signature="`} {
		if !strings.Contains(h, want) {
			t.Errorf("Authorization %s lacks %s", h, want)
		}
	}
	params, sig := readHeader(t, h)
	n := naive{method: "GET", scheme: "https", host: "market.example", path: "/api/integration/v1/events/t1"}
	if want := n.sign(params, "secret"); sig != want {
		t.Errorf("signature %s, want %s", sig, want)
	}
	// An empty nonce is made up, differently each time.
	a, _ := http.NewRequest("GET", "https://market.example/", nil)
	b, _ := http.NewRequest("GET", "https://market.example/", nil)
	_ = Sign(a, "k", "s", time.Unix(0, 0), "")
	_ = Sign(b, "k", "s", time.Unix(0, 0), "")
	if a.Header.Get("Authorization") == b.Header.Get("Authorization") {
		t.Error("two signatures with empty nonces are equal")
	}
	if err := Sign(a, "", "s", time.Now(), ""); err == nil {
		t.Error("Sign without a key succeeded")
	}
}
