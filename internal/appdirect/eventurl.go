package appdirect

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrEventURL: the notification's eventUrl is not
// {a configured marketplace}/api/integration/v1/events/{token}. The door
// answers 403 FORBIDDEN and sends nothing anywhere.
var ErrEventURL = errors.New("eventUrl is not an event URL of a configured marketplace")

// EventsPath is the path of AppDirect's events under a marketplace base
// URL: the event is at EventsPath+token, its result at
// EventsPath+token+"/result".
const EventsPath = "/api/integration/v1/events/"

// MaxToken is the longest event token accepted.
const MaxToken = 128

// maxURL bounds an eventUrl or a marketplace URL.
const maxURL = 2048

// ValidToken reports whether token can be an event token: one path
// segment of 1 to MaxToken unreserved characters (A-Z a-z 0-9 - . _ ~),
// neither "." nor "..". AppDirect's tokens are UUIDs and the like.
func ValidToken(token string) bool {
	if token == "" || len(token) > MaxToken || token == "." || token == ".." {
		return false
	}
	for i := 0; i < len(token); i++ {
		if !unreserved(token[i]) {
			return false
		}
	}
	return true
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// origin is a URL's scheme and authority after normalisation: the scheme
// and host in lower case, an IPv6 literal in its canonical form, the port
// explicit. Two URLs reach the same server when their origins are equal.
type origin struct{ scheme, host, port string }

// canonicalHost is the host as a request should name it: the default port
// left out.
func (o origin) canonicalHost() string {
	h := o.host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if o.scheme == "http" && o.port == "80" || o.scheme == "https" && o.port == "443" {
		return h
	}
	return h + ":" + o.port
}

// parseStrict reads an absolute http(s) URL by hand, refusing everything a
// parser could read two ways: no userinfo, query, fragment, percent sign,
// backslash, white space or non-ASCII byte; a host that is a DNS name of
// letters, digits, "-" and "." (no empty label, no trailing dot) or an IP
// literal (IPv6 in brackets, no zone); a decimal port without a leading
// zero. It returns the origin and the raw path ("" or starting with "/").
func parseStrict(raw string) (origin, string, error) {
	var o origin
	if len(raw) > maxURL {
		return o, "", fmt.Errorf("longer than %d bytes", maxURL)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' || c == '%' || c == '?' || c == '#' || c == '@' {
			return o, "", fmt.Errorf("holds %q at byte %d (no userinfo, query, fragment, escape or white space)", c, i)
		}
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	o.scheme = strings.ToLower(scheme)
	if !ok || o.scheme != "http" && o.scheme != "https" {
		return o, "", errors.New("not an absolute http or https URL")
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return o, "", errors.New("unterminated IPv6 literal")
		}
		host, port = authority[1:end], authority[end+1:]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return o, "", errors.New("bad IPv6 literal")
		}
		o.host = a.String()
		if port != "" && port[0] != ':' {
			return o, "", errors.New("bad authority after the IPv6 literal")
		}
	} else {
		if i := strings.IndexByte(authority, ':'); i >= 0 {
			host, port = authority[:i], authority[i:]
		}
		if !dnsName(host) {
			return o, "", fmt.Errorf("host %q is not a plain DNS name or IP address (no trailing dot, no empty label)", host)
		}
		o.host = strings.ToLower(host)
	}
	switch {
	case port == "" && o.scheme == "http":
		o.port = "80"
	case port == "":
		o.port = "443"
	default:
		p := port[1:]
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || p[0] == '0' || strings.ContainsAny(p, "+-") {
			return o, "", fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		o.port = p
	}
	return o, path, nil
}

// dnsName reports letters, digits, "-" and "." in non-empty labels.
func dnsName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// marketplace is a configured marketplace base URL, normalised.
type marketplace struct {
	origin
	path string // "" or "/seg/seg", no trailing slash
}

// URL is the marketplace's base URL in its canonical form.
func (m marketplace) URL() *url.URL {
	return &url.URL{Scheme: m.scheme, Host: m.canonicalHost(), Path: m.path}
}

func (m marketplace) String() string { return m.URL().String() }

// parseMarketplace reads a marketplace base URL: parseStrict's rules, a
// path (optional) of unreserved segments, none "." or "..", and at most
// one trailing slash.
func parseMarketplace(raw string) (marketplace, error) {
	o, path, err := parseStrict(raw)
	if err != nil {
		return marketplace{}, err
	}
	path = strings.TrimSuffix(path, "/")
	if path != "" {
		for _, seg := range strings.Split(path[1:], "/") {
			if !ValidToken(seg) {
				return marketplace{}, fmt.Errorf("path segment %q is empty, a dot segment, or holds characters other than A-Z a-z 0-9 - . _ ~", seg)
			}
		}
	}
	return marketplace{o, path}, nil
}

// ParseMarketplace checks a marketplace base URL, as configured (such as
// https://marketplace.example.com), and returns it normalised: scheme and
// host in lower case, the default port left out, no trailing slash. The
// service calls it on each configured marketplace at start, so that a bad
// one is a configuration error, not a refused notification.
func ParseMarketplace(raw string) (*url.URL, error) {
	m, err := parseMarketplace(raw)
	if err != nil {
		return nil, fmt.Errorf("appdirect: marketplace base URL %q: %w", raw, err)
	}
	return m.URL(), nil
}

// matchEventURL checks the eventUrl of a notification against the
// marketplaces, and returns the one matched and the event token. It
// accepts only {marketplace}/api/integration/v1/events/{token}: the same
// scheme, host and port as one marketplace after normalisation (host in
// lower case, default ports explicit), the marketplace's path followed by
// EventsPath and one token segment (ValidToken), and nothing else: no
// userinfo, query or fragment, no percent-encoding, no dot segment and no
// double slash. An eventUrl that fails wraps ErrEventURL and names why,
// by host at most. The URL fetched is built from the marketplace
// (eventURL), never copied from raw.
func matchEventURL(raw string, ms []marketplace) (marketplace, string, error) {
	o, path, err := parseStrict(raw)
	if err != nil {
		return marketplace{}, "", fmt.Errorf("%w: %w", ErrEventURL, err)
	}
	sameOrigin := false
	for _, m := range ms {
		if m.origin != o {
			continue
		}
		sameOrigin = true
		token, ok := strings.CutPrefix(path, m.path+EventsPath)
		if ok && ValidToken(token) {
			return m, token, nil
		}
	}
	if !sameOrigin {
		return marketplace{}, "", fmt.Errorf("%w: %s://%s is not a configured marketplace", ErrEventURL, o.scheme, o.canonicalHost())
	}
	return marketplace{}, "", fmt.Errorf("%w: the path is not the marketplace's%s{token} (one segment of A-Z a-z 0-9 - . _ ~, at most %d)", ErrEventURL, EventsPath, MaxToken)
}

func (m marketplace) eventURL(token string) *url.URL {
	u := m.URL()
	u.Path += EventsPath + token
	return u
}

func (m marketplace) resultURL(token string) *url.URL {
	u := m.eventURL(token)
	u.Path += "/result"
	return u
}
