package appdirect

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" // HMAC-SHA1 is what OAuth 1.0a and AppDirect use; RFC 5849 §3.4.2
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SignatureMethod is the only OAuth 1.0a signature method AppDirect uses,
// and the only one this package signs or accepts.
const SignatureMethod = "HMAC-SHA1"

// maxFormBody bounds a form body read for its parameters (RFC 5849
// §3.4.1.3.1: an application/x-www-form-urlencoded body is signed).
const maxFormBody = 1 << 20

// param is one name/value pair of the signature base string, decoded.
type param struct{ name, value string }

// Sign signs req with OAuth 1.0a, HMAC-SHA1, two-legged (consumer key and
// secret, no token), and sets its Authorization header: "OAuth
// oauth_consumer_key=…, oauth_nonce=…, oauth_signature=…,
// oauth_signature_method="HMAC-SHA1", oauth_timestamp=…,
// oauth_version="1.0"". The signature covers the method, the URL (scheme,
// host, non-default port and path of req.URL; req.Host when set), every
// query parameter and, for an application/x-www-form-urlencoded body,
// every form parameter (RFC 5849 §3.4.1). A form body is read and put
// back; any other body is not signed, as the RFC says. An empty nonce is
// replaced by a random one, so that a request hook can pass "".
func Sign(req *http.Request, key, secret string, now time.Time, nonce string) error {
	if req == nil || req.URL == nil {
		return errors.New("appdirect: Sign needs a request with a URL")
	}
	if key == "" || secret == "" {
		return errors.New("appdirect: Sign needs a consumer key and a consumer secret")
	}
	if nonce == "" {
		nonce = rand.Text()
	}
	params, err := requestParams(req)
	if err != nil {
		return err
	}
	oauth := []param{
		{"oauth_consumer_key", key},
		{"oauth_nonce", nonce},
		{"oauth_signature_method", SignatureMethod},
		{"oauth_timestamp", strconv.FormatInt(now.Unix(), 10)},
		{"oauth_version", "1.0"},
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	uri, err := baseURI(req.URL.Scheme, host, req.URL.EscapedPath())
	if err != nil {
		return err
	}
	sig := signature(baseString(req.Method, uri, append(params, oauth...)), secret, "")
	var h strings.Builder
	h.WriteString("OAuth ")
	for i, p := range slices.Insert(oauth, 2, param{"oauth_signature", sig}) {
		if i > 0 {
			h.WriteString(", ")
		}
		fmt.Fprintf(&h, `%s="%s"`, p.name, encode(p.value))
	}
	req.Header.Set("Authorization", h.String())
	return nil
}

// encode is RFC 5849 §3.6 percent-encoding: the unreserved characters
// A-Z a-z 0-9 - . _ ~ stay, every other byte becomes %XX in upper case (a
// space is %20, never "+", which is where url.QueryEscape differs).
func encode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// baseString is RFC 5849 §3.4.1.1: the method in upper case, the base
// string URI and the normalised parameters, each encoded, joined by "&".
// The parameters are encoded, sorted by name and then by value, and
// joined as name=value pairs by "&" (§3.4.1.3.2).
func baseString(method, uri string, params []param) string {
	pairs := make([]param, len(params))
	for i, p := range params {
		pairs[i] = param{encode(p.name), encode(p.value)}
	}
	slices.SortFunc(pairs, func(a, b param) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	var n strings.Builder
	for i, p := range pairs {
		if i > 0 {
			n.WriteByte('&')
		}
		n.WriteString(p.name + "=" + p.value)
	}
	return strings.ToUpper(method) + "&" + encode(uri) + "&" + encode(n.String())
}

// baseURI is RFC 5849 §3.4.1.2: scheme and host in lower case, the port
// only when it is not the scheme's default, and the path as it was sent
// (escaped), "/" when empty; no query, no fragment.
func baseURI(scheme, host, escapedPath string) (string, error) {
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("appdirect: OAuth 1.0a needs an http or https URL, not scheme %q", scheme)
	}
	if host == "" {
		return "", errors.New("appdirect: OAuth 1.0a needs the request's host")
	}
	host = strings.ToLower(host)
	if h, port, ok := cutPort(host); ok && (scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		host = h
	}
	if escapedPath == "" {
		escapedPath = "/"
	}
	return scheme + "://" + host + escapedPath, nil
}

// cutPort splits "host:port" and "[v6]:port"; ok is false without a port.
func cutPort(hostport string) (host, port string, ok bool) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.LastIndexByte(hostport, ']') > i {
		return hostport, "", false
	}
	return hostport[:i], hostport[i+1:], true
}

// signature is RFC 5849 §3.4.2: HMAC-SHA1 of the base string, keyed by the
// encoded consumer secret and token secret joined by "&", in base64.
func signature(base, consumerSecret, tokenSecret string) string {
	mac := hmac.New(sha1.New, []byte(encode(consumerSecret)+"&"+encode(tokenSecret)))
	mac.Write([]byte(base))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// requestParams are the request's query parameters and, for a form body,
// its form parameters, decoded (RFC 5849 §3.4.1.3.1). A form body is read
// through a limit and put back for the handler.
func requestParams(req *http.Request) ([]param, error) {
	params, err := parseForm(req.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("appdirect: the query: %w", err)
	}
	if req.Body == nil || req.Body == http.NoBody {
		return params, nil
	}
	if ct, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || ct != "application/x-www-form-urlencoded" {
		return params, nil
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxFormBody+1))
	req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(body))
	switch {
	case err != nil:
		return nil, fmt.Errorf("appdirect: reading the form body: %w", err)
	case len(body) > maxFormBody:
		return nil, fmt.Errorf("appdirect: the form body is larger than %d bytes", maxFormBody)
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	form, err := parseForm(string(body))
	if err != nil {
		return nil, fmt.Errorf("appdirect: the form body: %w", err)
	}
	return append(params, form...), nil
}

// parseForm decodes an application/x-www-form-urlencoded string into its
// pairs, in order, duplicates kept: "+" is a space, a name without "=" has
// an empty value, empty pieces are skipped. Unlike url.ParseQuery it keeps
// ";" as an ordinary character, as the signer does.
func parseForm(s string) ([]param, error) {
	var out []param
	for piece := range strings.SplitSeq(s, "&") {
		if piece == "" {
			continue
		}
		name, value, _ := strings.Cut(piece, "=")
		n, err := url.QueryUnescape(name)
		if err != nil {
			return nil, err
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			return nil, err
		}
		out = append(out, param{n, v})
	}
	return out, nil
}
