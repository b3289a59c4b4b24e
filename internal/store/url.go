package store

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// parseURL turns Options.URL (the service's REDIS_URL) into go-redis
// UniversalOptions. It is written
// here rather than left to redis.ParseURL because that accepts one host
// only, and Sentinel and Cluster need several:
//
//	redis://[user:password@]host[:port][,host[:port]...][/db][?query]
//	rediss://...                     (TLS 1.2+, each host verified by its own name)
//
// Examples:
//
//	redis://127.0.0.1:6379/0                       one node, database 0
//	redis://:secret@10.0.0.1:6379,10.0.0.2:6379    cluster seed nodes (REDIS_CLUSTER=true,
//	                                               or implied by several hosts)
//	redis://:secret@s1:26379,s2:26379,s3:26379/0   Sentinels, with REDIS_SENTINEL_MASTER=mymaster
//
// The port defaults to 6379. The user and password are those of the data
// nodes; with Sentinel, the Sentinels' own credentials, if any, go in the
// query parameters sentinel_username and sentinel_password. No other query
// parameter is accepted, so that a typo is an error rather than ignored.
// Cluster has database 0 only.
func parseURL(raw string) (*redis.UniversalOptions, error) {
	bad := func(format string, args ...any) error {
		return &OptionError{Option: "URL", Problem: "is not valid: " + fmt.Sprintf(format, args...) +
			"; use redis://[user:password@]host:port[,host:port...][/db], or rediss:// for TLS"}
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, bad("no scheme")
	}
	scheme = strings.ToLower(scheme)
	if scheme != "redis" && scheme != "rediss" {
		return nil, bad("scheme %q is not redis or rediss", scheme)
	}
	// The authority ends at the first '/', '?' or '#'.
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	if strings.Contains(tail, "#") {
		return nil, bad("a fragment (#...) has no meaning")
	}
	o := &redis.UniversalOptions{}
	hostlist := authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		hostlist = authority[i+1:]
		// Let net/url decode the user info (percent-escapes).
		u, err := url.Parse("redis://" + authority[:i+1] + "h")
		if err != nil {
			// The error would quote the password: say only where.
			return nil, bad("the user:password part is not valid (percent-encode reserved characters)")
		}
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	for _, h := range strings.Split(hostlist, ",") {
		addr, err := hostPort(h)
		if err != nil {
			return nil, bad("host %q: %v", h, err)
		}
		o.Addrs = append(o.Addrs, addr)
	}

	path, query, _ := strings.Cut(tail, "?")
	path = strings.Trim(path, "/")
	if path != "" {
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return nil, bad("path %q is not a database number", path)
		}
		o.DB = db
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, bad("query: %v", err)
	}
	for name, vs := range q {
		v := vs[len(vs)-1]
		switch name {
		case "sentinel_username":
			o.SentinelUsername = v
		case "sentinel_password":
			o.SentinelPassword = v
		default:
			return nil, bad("unknown query parameter %q (only sentinel_username and sentinel_password are accepted)", name)
		}
	}
	if scheme == "rediss" {
		// No ServerName: crypto/tls takes it from each address dialled, so
		// every cluster node or Sentinel is verified by its own name.
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// hostPort validates one host of the list and adds the default port.
func hostPort(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("empty host")
	}
	u, err := url.Parse("redis://" + h)
	if err != nil {
		return "", err
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" {
		return "", fmt.Errorf("not a host[:port]")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return "", fmt.Errorf("empty host")
	}
	if port == "" {
		port = "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q out of range", port)
	}
	return net.JoinHostPort(host, port), nil
}
