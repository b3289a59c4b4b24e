package appdirect

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The reasons a notification's OAuth 1.0a signature is refused, matched
// with errors.Is. The door answers each with 401 and logs which it was.
var (
	// ErrNotSigned: the request carries no OAuth 1.0a parameters at all
	// (no "Authorization: OAuth" header, no oauth_signature parameter). In
	// the separate-credentials mode, try CredentialVerifier then.
	ErrNotSigned = errors.New("no OAuth 1.0a signature")
	// ErrMalformed: OAuth parameters that cannot be read: a required one
	// missing or given twice, a timestamp that is not a number, a nonce too
	// long, a token (only two-legged OAuth is accepted), an Authorization
	// header that does not parse, a query with a bad escape.
	ErrMalformed = errors.New("malformed OAuth 1.0a parameters")
	// ErrUnsupported: oauth_version other than "1.0", or a signature method
	// other than HMAC-SHA1.
	ErrUnsupported = errors.New("unsupported OAuth 1.0a version or signature method")
	// ErrUnknownKey: oauth_consumer_key is none of the configured keys.
	ErrUnknownKey = errors.New("unknown OAuth consumer key")
	// ErrBadSignature: the signature does not match the request under any
	// secret of its key: a wrong secret, or a request changed after it was
	// signed (a parameter added, another URL).
	ErrBadSignature = errors.New("OAuth 1.0a signature does not match")
	// ErrStale: oauth_timestamp is older than the window.
	ErrStale = errors.New("OAuth 1.0a timestamp too old")
	// ErrFuture: oauth_timestamp is further in the future than the window.
	ErrFuture = errors.New("OAuth 1.0a timestamp in the future")
	// ErrReplayed: the nonce was seen before for this key within the window.
	ErrReplayed = errors.New("OAuth 1.0a nonce already used")
)

// DefaultWindow is how far a notification's timestamp may be from now, in
// either direction. AppDirect's SDK only refuses timestamps older than
// twelve hours; five minutes is the usual OAuth provider's window, and
// nonces are remembered for as long as a timestamp can be accepted.
const DefaultWindow = 5 * time.Minute

// minSweep is the number of remembered nonces below which MemoryNonces
// does not sweep.
const minSweep = 1024

// maxNonce bounds the nonce kept in the nonce store.
const maxNonce = 128

// Nonces remembers the nonces of accepted notifications. The service
// implements it in Redis (SET key NX PX ttl, one atomic step, so that two
// replicas never both accept one nonce). Seen records (key, nonce) for ttl
// and returns false the first time; it returns true when the pair is
// already recorded. An error refuses the notification (the door answers it
// as a temporary failure: the signature was good).
type Nonces interface {
	Seen(ctx context.Context, key, nonce string, ttl time.Duration) (bool, error)
}

// Consumer is one OAuth 1.0a consumer key and secret. Several with one key
// are that key's secrets during a rotation: each is tried.
type Consumer struct {
	Key, Secret string
}

// VerifierConfig is what a Verifier checks notifications against.
type VerifierConfig struct {
	// Consumers are the accepted (key, secret) pairs; at least one.
	Consumers []Consumer
	// PublicURL is the scheme and host (and port) AppDirect reaches the
	// service at, such as https://vendor.example: the URL AppDirect signs.
	// Behind a proxy or a load balancer the request's own Host and scheme
	// are the proxy's hop, not what was signed. Only its scheme and host
	// are used; the path is the request's. Empty: the request's Host, and
	// https when the request came over TLS, else http.
	PublicURL string
	// Window is how far a timestamp may be from now, either way
	// (DefaultWindow when 0).
	Window time.Duration
	// Nonces remembers nonces; required (MemoryNonces in a sandbox or a
	// test).
	Nonces Nonces
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Verifier checks the OAuth 1.0a signature of AppDirect's notifications
// (shared-credentials mode). It is safe for concurrent use.
type Verifier struct {
	secrets map[string][]string // key → its secrets
	scheme  string              // from PublicURL; "" when not configured
	host    string
	window  time.Duration
	nonces  Nonces
	now     func() time.Time
}

// NewVerifier checks cfg. Its errors name the field and the fix.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	v := &Verifier{secrets: map[string][]string{}, window: cfg.Window, nonces: cfg.Nonces, now: cfg.Now}
	if len(cfg.Consumers) == 0 {
		return nil, errors.New("appdirect: VerifierConfig.Consumers is empty; give at least one consumer key and secret")
	}
	for i, c := range cfg.Consumers {
		if c.Key == "" || c.Secret == "" {
			return nil, fmt.Errorf("appdirect: consumer %d has an empty key or secret; give both", i+1)
		}
		v.secrets[c.Key] = append(v.secrets[c.Key], c.Secret)
	}
	if cfg.PublicURL != "" {
		scheme, host, err := ParsePublicURL(cfg.PublicURL)
		if err != nil {
			return nil, fmt.Errorf("appdirect: VerifierConfig.PublicURL: %w", err)
		}
		v.scheme, v.host = scheme, host
	}
	switch {
	case v.window < 0:
		return nil, errors.New("appdirect: VerifierConfig.Window must not be negative")
	case v.window == 0:
		v.window = DefaultWindow
	}
	if v.nonces == nil {
		return nil, errors.New("appdirect: VerifierConfig.Nonces is nil; give the nonce store (MemoryNonces outside production)")
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// ParsePublicURL checks the URL AppDirect reaches the service at
// (APPDIRECT_PUBLIC_URL, VerifierConfig.PublicURL): scheme://host[:port]
// and nothing else (at most a trailing slash), the scheme http or https.
// It returns the scheme and the host (with its port, if given) that the
// signed URL is built from. The service's configuration and NewVerifier
// both call it, so that a value is accepted or refused the same way, with
// the same message.
func ParsePublicURL(raw string) (scheme, host string, err error) {
	u, perr := url.Parse(raw)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Opaque != "" || u.Hostname() == "" ||
		strings.HasSuffix(u.Host, ":") || u.User != nil || strings.Trim(u.Path, "/") != "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		// Not the value: it may hold a password (the caller shows it
		// redacted).
		return "", "", errors.New("is not scheme://host[:port] alone, like https://webhook.bank.example (http or https; no path, query, fragment or user)")
	}
	return u.Scheme, u.Host, nil
}

// Verify checks r's OAuth 1.0a signature and returns its consumer key. The
// parameters come from the Authorization header ("OAuth …"), the query
// and a form body, all of them signed (RFC 5849 §3.4.1.3); the URL signed
// is the configured PublicURL's scheme and host with r's path. The checks,
// in order: the parameters are there once each (ErrNotSigned,
// ErrMalformed), oauth_version is 1.0 when given and the method HMAC-SHA1
// (ErrUnsupported), the timestamp is within the window (ErrStale,
// ErrFuture), the key is known (ErrUnknownKey), the signature matches
// under one of its secrets, compared in constant time (ErrBadSignature),
// and only then the nonce is new (ErrReplayed), so that unsigned requests
// cannot fill the nonce store. A nonce is kept for twice the window: as
// long as a request with its timestamp could still be accepted.
func (v *Verifier) Verify(ctx context.Context, r *http.Request) (string, error) {
	base, proto, err := collect(r)
	if err != nil {
		return "", err
	}
	one := func(name string, required bool) (string, error) {
		vals := proto[name]
		switch {
		case len(vals) > 1:
			return "", fmt.Errorf("%w: %s given %d times", ErrMalformed, name, len(vals))
		case len(vals) == 0 && required:
			return "", fmt.Errorf("%w: %s missing", ErrMalformed, name)
		case len(vals) == 0:
			return "", nil
		}
		return vals[0], nil
	}
	var f [7]string
	for i, name := range []string{"oauth_consumer_key", "oauth_signature", "oauth_signature_method", "oauth_timestamp", "oauth_nonce", "oauth_version", "oauth_token"} {
		if f[i], err = one(name, i < 5); err != nil {
			return "", err
		}
	}
	key, sig, method, stamp, nonce, version, token := f[0], f[1], f[2], f[3], f[4], f[5], f[6]
	switch {
	case version != "" && version != "1.0":
		return "", fmt.Errorf("%w: oauth_version %q (want 1.0)", ErrUnsupported, version)
	case method != SignatureMethod:
		return "", fmt.Errorf("%w: oauth_signature_method %q (want %s)", ErrUnsupported, method, SignatureMethod)
	case token != "":
		return "", fmt.Errorf("%w: oauth_token given; AppDirect signs two-legged, without a token", ErrMalformed)
	case nonce == "" || len(nonce) > maxNonce:
		return "", fmt.Errorf("%w: oauth_nonce empty or longer than %d bytes", ErrMalformed, maxNonce)
	}
	ts, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil || ts < 0 {
		return "", fmt.Errorf("%w: oauth_timestamp %q is not seconds since 1970", ErrMalformed, stamp)
	}
	now := v.now()
	switch at := time.Unix(ts, 0); {
	case at.Before(now.Add(-v.window)):
		return "", fmt.Errorf("%w: %s old, the window is %s", ErrStale, now.Sub(at).Truncate(time.Second), v.window)
	case at.After(now.Add(v.window)):
		return "", fmt.Errorf("%w: %s ahead, the window is %s", ErrFuture, at.Sub(now).Truncate(time.Second), v.window)
	}
	secrets := v.secrets[key]
	if secrets == nil {
		return "", ErrUnknownKey
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return "", fmt.Errorf("%w: oauth_signature is not base64", ErrBadSignature)
	}
	uri, err := v.uri(r)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	bs := baseString(r.Method, uri, base)
	ok := false
	for _, s := range secrets {
		want, _ := base64.StdEncoding.DecodeString(signature(bs, s, ""))
		if hmac.Equal(got, want) {
			ok = true
		}
	}
	if !ok {
		return "", ErrBadSignature
	}
	seen, err := v.nonces.Seen(ctx, key, nonce, 2*v.window)
	if err != nil {
		return "", fmt.Errorf("appdirect: checking the OAuth nonce: %w", err)
	}
	if seen {
		return "", ErrReplayed
	}
	return key, nil
}

// collect gathers r's parameters (RFC 5849 §3.4.1.3.1): the query, a
// form body and the "Authorization: OAuth" header but its realm. base is
// what the signature covers (all but oauth_signature); proto holds the
// values of each oauth_ parameter, wherever it came from.
func collect(r *http.Request) (base []param, proto map[string][]string, err error) {
	params, err := requestParams(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	hdr, signed, err := headerParams(r.Header.Get("Authorization"))
	if err != nil {
		return nil, nil, err
	}
	params = append(params, hdr...)
	proto = map[string][]string{}
	for _, p := range params {
		if strings.HasPrefix(p.name, "oauth_") {
			proto[p.name] = append(proto[p.name], p.value)
		}
		if p.name != "oauth_signature" {
			base = append(base, p)
		}
	}
	if !signed && proto["oauth_signature"] == nil {
		return nil, nil, ErrNotSigned
	}
	return base, proto, nil
}

// uri is the base string URI of r as the signer saw it: PublicURL's scheme
// and host when configured, else the request's own; r's escaped path.
func (v *Verifier) uri(r *http.Request) (string, error) {
	scheme, host := v.scheme, v.host
	if scheme == "" {
		scheme, host = "http", r.Host
		if r.TLS != nil {
			scheme = "https"
		}
	}
	return baseURI(scheme, host, r.URL.EscapedPath())
}

// headerParams reads an "Authorization: OAuth …" header (RFC 5849
// §3.5.1): comma-separated name="value" pairs, the values percent-encoded,
// realm left out. ok is false when the header is absent or of another
// scheme (Bearer, Basic).
func headerParams(h string) (params []param, ok bool, err error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "OAuth") {
		return nil, false, nil
	}
	bad := func(why string) ([]param, bool, error) {
		return nil, true, fmt.Errorf("%w: Authorization header: %s", ErrMalformed, why)
	}
	seen := map[string]bool{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		name, after, found := strings.Cut(rest, "=")
		name = strings.TrimSpace(name)
		after = strings.TrimLeft(after, " \t")
		if !found || name == "" || !strings.HasPrefix(after, `"`) {
			return bad("want name=\"value\" pairs")
		}
		value, tail, closed := strings.Cut(after[1:], `"`)
		if !closed {
			return bad("unterminated quoted value")
		}
		tail = strings.TrimLeft(tail, " \t")
		if tail != "" {
			if tail[0] != ',' {
				return bad("want a comma between pairs")
			}
			tail = strings.TrimLeft(tail[1:], " \t")
		}
		rest = tail
		if name == "realm" {
			continue
		}
		if seen[name] {
			return bad(name + " given twice")
		}
		seen[name] = true
		n, err1 := url.PathUnescape(name)
		v, err2 := url.PathUnescape(value)
		if err1 != nil || err2 != nil {
			return bad("bad percent-encoding")
		}
		params = append(params, param{n, v})
	}
	return params, true, nil
}

// MemoryNonces is Nonces in memory, for the sandbox and tests: it is lost
// on restart and not shared between replicas. It is safe for concurrent
// use.
type MemoryNonces struct {
	Now func() time.Time // the clock; time.Now when nil

	mu      sync.Mutex
	seen    map[string]time.Time // key "\x00" nonce → expiry
	sweepAt int                  // sweep expired entries when there are this many
}

// Seen records (key, nonce) for ttl, reporting whether it was recorded
// and unexpired already. Expired entries are swept as it goes.
func (m *MemoryNonces) Seen(_ context.Context, key, nonce string, ttl time.Duration) (bool, error) {
	now := time.Now()
	if m.Now != nil {
		now = m.Now()
	}
	k := key + "\x00" + nonce
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen, m.sweepAt = map[string]time.Time{}, minSweep
	}
	if exp, ok := m.seen[k]; ok && now.Before(exp) {
		return true, nil
	}
	if len(m.seen) >= m.sweepAt { // doubling keeps the sweeps' cost per nonce flat
		for n, exp := range m.seen {
			if !now.Before(exp) {
				delete(m.seen, n)
			}
		}
		m.sweepAt = max(2*len(m.seen), minSweep)
	}
	m.seen[k] = now.Add(ttl)
	return false, nil
}

// Notifications checks a notification in either credential mode: an
// OAuth 1.0a signature (shared credentials) when OAuth is set and the
// request is signed, else the bearer token or Basic credentials
// (separate credentials) when Credentials is set.
type Notifications struct {
	OAuth       *Verifier
	Credentials *CredentialVerifier
}

// Verify returns who sent the notification (a consumer key, "bearer" or
// a Basic user name: never a secret), or why it is refused.
func (n Notifications) Verify(ctx context.Context, r *http.Request) (string, error) {
	if n.OAuth != nil {
		who, err := n.OAuth.Verify(ctx, r)
		if err == nil || !errors.Is(err, ErrNotSigned) || n.Credentials == nil {
			return who, err
		}
	}
	if n.Credentials != nil {
		return n.Credentials.Verify(ctx, r)
	}
	return "", ErrNotSigned
}
