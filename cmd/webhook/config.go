package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// config is the service's configuration, read once from the environment
// and the flags of `serve` (a flag wins over its variable).
type config struct {
	Addr string

	RedisURL            string
	RedisSentinelMaster string
	RedisCluster        bool
	RedisWaitReplicas   int
	RedisWaitTimeout    time.Duration

	Q2BaseURL      string // empty: sandbox mode
	Q2APIVersion   string
	Q2ClientID     string
	Q2ClientSecret string
	Q2Scope        string

	QBDBaseURL    string // empty: the embedded sandbox's QBD Connect
	QBDAPIVersion string
	QBDToken      string

	HelixBaseURL   string // empty: the embedded sandbox's Helix
	HelixAPIKey    string
	HelixAPISecret string

	SandboxAddr string // where the embedded sandbox listens

	Auth      string // signature, basic or none
	Secrets   []string
	BasicUser string
	BasicPass string

	EventTTL        time.Duration
	ProcessTimeout  time.Duration
	ShutdownDelay   time.Duration
	ShutdownTimeout time.Duration
	AbandonAfter    time.Duration
	MaxInFlight     int
	CancelDeletes   string
	ProductsFile    string
	APITokens       []string
	LogLevel        zapcore.Level
	LogFormat       string // auto, json or console
}

// SandboxMode reports whether Q2 calls go to the embedded sandbox.
func (c *config) SandboxMode() bool { return c.Q2BaseURL == "" }

// setting is one configuration value: its variable, its flag, its default.
type setting struct {
	env, flag, def, usage string
}

var settings = []setting{
	{"WEBHOOK_ADDR", "addr", ":8080", "listen address"},
	{"REDIS_URL", "redis-url", "", "redis:// or rediss:// URL; several hosts comma-separated; empty: embedded, not durable"},
	{"REDIS_SENTINEL_MASTER", "redis-sentinel-master", "", "Sentinel master name: REDIS_URL's hosts are Sentinels"},
	{"REDIS_CLUSTER", "redis-cluster", "false", "true: REDIS_URL's hosts are Redis Cluster seed nodes"},
	{"REDIS_WAIT_REPLICAS", "redis-wait-replicas", "0", "after each account write, wait until this many replicas have it (Redis WAIT); set it to the number of replicas to keep acknowledged accounts through a failover"},
	{"REDIS_WAIT_TIMEOUT", "redis-wait-timeout", "500ms", "the longest wait for REDIS_WAIT_REPLICAS; past it the event answers 503 and is sent again"},
	{"Q2_BASE_URL", "q2-base-url", "", "Q2 API base URL; empty: sandbox mode (an embedded Q2 sandbox)"},
	{"Q2_API_VERSION", "q2-api-version", "v2", "path prefix of every Q2 call (v1 or v2)"},
	{"Q2_CLIENT_ID", "q2-client-id", "", "OAuth2 client id (required with Q2_BASE_URL)"},
	{"Q2_CLIENT_SECRET", "q2-client-secret", "", "OAuth2 client secret (required with Q2_BASE_URL)"},
	{"Q2_SCOPE", "q2-scope", "", "OAuth2 scopes, space-separated"},
	{"QBD_BASE_URL", "qbd-base-url", "", "QBD Connect API base URL (the part before /qbdconnect-api/); empty: the embedded sandbox's"},
	{"QBD_API_VERSION", "qbd-api-version", "v1", "the {version} path segment of QBD Connect calls"},
	{"QBD_TOKEN", "qbd-token", "", "sent to QBD Connect as Authorization: Bearer when set"},
	{"HELIX_BASE_URL", "helix-base-url", "", "Helix API base URL; empty: the embedded sandbox's"},
	{"HELIX_API_KEY", "helix-api-key", "", "Helix HTTP Basic user (required with HELIX_BASE_URL)"},
	{"HELIX_API_SECRET", "helix-api-secret", "", "Helix HTTP Basic password (required with HELIX_BASE_URL)"},
	{"SANDBOX_ADDR", "sandbox-addr", defaultSandboxAddr, "where the embedded sandbox listens when an outside API's base URL is empty (127.0.0.1:0: any free port; the default, when taken, falls back to a free port with a warning)"},
	{"WEBHOOK_AUTH", "auth", "signature", "who may call: signature, basic or none"},
	{"WEBHOOK_SECRETS", "secrets", "", "space-separated signing secrets (whsec_ + base64), several for rotation"},
	{"WEBHOOK_BASIC_AUTH", "basic-auth", "", "user:password, with WEBHOOK_AUTH=basic"},
	{"EVENT_TTL", "event-ttl", "72h", "how long delivery records are kept"},
	{"PROCESS_TIMEOUT", "process-timeout", "4s", "deadline for handling one event"},
	{"SHUTDOWN_DELAY", "shutdown-delay", "0s", "after SIGTERM, how long /readyz answers 503 before the listener closes (for load balancers)"},
	{"SHUTDOWN_TIMEOUT", "shutdown-timeout", "15s", "how long in-flight requests may finish after SIGTERM"},
	{"ABANDON_AFTER", "abandon-after", "24h", "how long an ORDER (or CHANGE) answered 503 waits for its next copy before it is given up: undone and refused (a CHANGE rolled back)"},
	{"MAX_IN_FLIGHT", "max-in-flight", "256", "deliveries processed at once; past it 503 with Retry-After"},
	{"CANCEL_DELETES", "cancel-deletes", "user", "what a CANCEL deletes in Q2 (user or customer), for products that do not say"},
	{"API_TOKENS", "api-tokens", "", "space-separated bearer tokens of the read API (/v1/...), several for rotation; empty: those routes answer 404"},
	{"PRODUCTS_FILE", "products-file", "", "the products file (YAML or JSON); empty: one product on every extension, provisioning a Q2 user"},
	{"LOG_LEVEL", "log-level", "info", "debug, info, warn or error"},
	{"LOG_FORMAT", "log-format", "auto", "json, console, or auto: console on a terminal, JSON otherwise"},
}

// configError is a bad flag or setting: the command exits with status 2.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }
func (e *configError) ExitCode() int { return 2 }

func badSetting(s setting, format string, args ...any) error {
	return &configError{msg: s.env + ": " + fmt.Sprintf(format, args...)}
}

// loadConfig reads the settings from args (the flags of serve) and getenv.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("webhook serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: webhook serve [flags]\n\nRuns the receiver. Every flag can also be set by its environment variable; the flag wins.\n\nFlags:")
		fs.PrintDefaults()
	}
	flags := make(map[string]*string, len(settings))
	for _, s := range settings {
		flags[s.env] = fs.String(s.flag, "", fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &configError{msg: err.Error() + " (see webhook serve --help)"}
	}
	if fs.NArg() > 0 {
		return nil, &configError{msg: fmt.Sprintf("unexpected argument %q (see webhook serve --help)", fs.Arg(0))}
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	values := make(map[string]string, len(settings))
	bySetting := make(map[string]setting, len(settings))
	for _, s := range settings {
		v := getenv(s.env)
		if set[s.flag] {
			v = *flags[s.env]
		}
		if strings.TrimSpace(v) == "" {
			v = s.def
		}
		values[s.env] = strings.TrimSpace(v)
		bySetting[s.env] = s
	}
	return parseConfig(values, bySetting)
}

var apiVersion = regexp.MustCompile(`^v[0-9]+$`)

func parseConfig(v map[string]string, s map[string]setting) (*config, error) {
	if err := placeholders(v); err != nil {
		return nil, err
	}
	c := &config{
		Addr:                v["WEBHOOK_ADDR"],
		RedisURL:            v["REDIS_URL"],
		RedisSentinelMaster: v["REDIS_SENTINEL_MASTER"],
		Q2BaseURL:           strings.TrimRight(v["Q2_BASE_URL"], "/"),
		Q2APIVersion:        v["Q2_API_VERSION"],
		Q2ClientID:          v["Q2_CLIENT_ID"],
		Q2ClientSecret:      v["Q2_CLIENT_SECRET"],
		Q2Scope:             v["Q2_SCOPE"],
		QBDBaseURL:          strings.TrimRight(v["QBD_BASE_URL"], "/"),
		QBDAPIVersion:       v["QBD_API_VERSION"],
		QBDToken:            v["QBD_TOKEN"],
		HelixBaseURL:        strings.TrimRight(v["HELIX_BASE_URL"], "/"),
		HelixAPIKey:         v["HELIX_API_KEY"],
		HelixAPISecret:      v["HELIX_API_SECRET"],
		SandboxAddr:         v["SANDBOX_ADDR"],
		Auth:                strings.ToLower(v["WEBHOOK_AUTH"]),
		Secrets:             strings.Fields(v["WEBHOOK_SECRETS"]),
		CancelDeletes:       strings.ToLower(v["CANCEL_DELETES"]),
		ProductsFile:        v["PRODUCTS_FILE"],
		APITokens:           strings.Fields(v["API_TOKENS"]),
		LogFormat:           strings.ToLower(v["LOG_FORMAT"]),
	}
	var err error
	if c.RedisCluster, err = strconv.ParseBool(v["REDIS_CLUSTER"]); err != nil {
		return nil, badSetting(s["REDIS_CLUSTER"], "%q is not true or false", v["REDIS_CLUSTER"])
	}
	if c.RedisCluster && c.RedisSentinelMaster != "" {
		return nil, badSetting(s["REDIS_CLUSTER"], "cannot be combined with REDIS_SENTINEL_MASTER; set one of them")
	}
	if (c.RedisCluster || c.RedisSentinelMaster != "") && c.RedisURL == "" {
		return nil, badSetting(s["REDIS_URL"], "is required with REDIS_CLUSTER or REDIS_SENTINEL_MASTER; set the nodes' URL")
	}
	durations := []struct {
		env    string
		dst    *time.Duration
		max    time.Duration
		zeroOK bool
	}{
		{"EVENT_TTL", &c.EventTTL, 0, false},
		{"PROCESS_TIMEOUT", &c.ProcessTimeout, 5 * time.Minute, false},
		{"SHUTDOWN_DELAY", &c.ShutdownDelay, 5 * time.Minute, true},
		{"SHUTDOWN_TIMEOUT", &c.ShutdownTimeout, 10 * time.Minute, false},
		{"REDIS_WAIT_TIMEOUT", &c.RedisWaitTimeout, 10 * time.Second, false},
		{"ABANDON_AFTER", &c.AbandonAfter, 0, false},
	}
	for _, d := range durations {
		parsed, err := time.ParseDuration(v[d.env])
		switch {
		case err != nil:
			return nil, badSetting(s[d.env], "%q is not a duration like %s", v[d.env], s[d.env].def)
		case parsed < 0 || (parsed == 0 && !d.zeroOK):
			return nil, badSetting(s[d.env], "%q must be more than zero, like %s", v[d.env], s[d.env].def)
		case d.max > 0 && parsed > d.max:
			return nil, badSetting(s[d.env], "%q is longer than %s; use something like %s", v[d.env], d.max, s[d.env].def)
		}
		*d.dst = parsed
	}
	if c.AbandonAfter <= c.ProcessTimeout {
		return nil, badSetting(s["ABANDON_AFTER"], "%s is not longer than PROCESS_TIMEOUT (%s); an ORDER must have time for its copies, use something like 24h", c.AbandonAfter, c.ProcessTimeout)
	}
	if c.MaxInFlight, err = strconv.Atoi(v["MAX_IN_FLIGHT"]); err != nil || c.MaxInFlight < 1 {
		return nil, badSetting(s["MAX_IN_FLIGHT"], "%q is not a whole number of 1 or more, like 256", v["MAX_IN_FLIGHT"])
	}
	if c.RedisWaitReplicas, err = strconv.Atoi(v["REDIS_WAIT_REPLICAS"]); err != nil || c.RedisWaitReplicas < 0 {
		return nil, badSetting(s["REDIS_WAIT_REPLICAS"], "%q is not a whole number of 0 or more (0: do not wait; 1: one replica)", v["REDIS_WAIT_REPLICAS"])
	}
	if c.RedisWaitReplicas > 0 && c.RedisURL == "" {
		return nil, badSetting(s["REDIS_WAIT_REPLICAS"], "the embedded Redis has no replicas; set REDIS_URL, or REDIS_WAIT_REPLICAS=0")
	}
	if c.LogLevel, err = zapcore.ParseLevel(v["LOG_LEVEL"]); err != nil {
		return nil, badSetting(s["LOG_LEVEL"], "%q is not a level; use debug, info, warn or error", v["LOG_LEVEL"])
	}
	if c.LogFormat != "auto" && c.LogFormat != "json" && c.LogFormat != "console" {
		return nil, badSetting(s["LOG_FORMAT"], "%q is not json, console or auto", v["LOG_FORMAT"])
	}
	if c.CancelDeletes != "user" && c.CancelDeletes != "customer" {
		return nil, badSetting(s["CANCEL_DELETES"], "%q is not user or customer", v["CANCEL_DELETES"])
	}
	if c.Q2APIVersion != "v1" && c.Q2APIVersion != "v2" {
		return nil, badSetting(s["Q2_API_VERSION"], "%q is not a version Q2 serves; use v1 or v2", c.Q2APIVersion)
	}
	if !apiVersion.MatchString(c.QBDAPIVersion) {
		return nil, badSetting(s["QBD_API_VERSION"], "%q is not a version like v1", c.QBDAPIVersion)
	}
	apis := []struct {
		base, example string
		required      []string
		why           string
	}{
		{"Q2_BASE_URL", "https://api.q2.example", []string{"Q2_CLIENT_ID", "Q2_CLIENT_SECRET"}, "the OAuth2 client credentials Q2 gave you"},
		{"QBD_BASE_URL", "https://qbd.example", nil, ""},
		{"HELIX_BASE_URL", "https://sandbox-api.helix.q2.com", []string{"HELIX_API_KEY", "HELIX_API_SECRET"}, "the API key and secret Helix gave you"},
	}
	for _, api := range apis {
		base := strings.TrimRight(v[api.base], "/")
		if base == "" {
			continue
		}
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, badSetting(s[api.base], "%q is not an http(s) URL like %s", base, api.example)
		}
		for _, env := range api.required {
			if v[env] == "" {
				return nil, badSetting(s[env], "is required when %s is set; set %s", api.base, api.why)
			}
		}
	}
	for _, tok := range c.APITokens {
		if len(tok) < 16 {
			return nil, badSetting(s["API_TOKENS"], "a token is shorter than 16 characters; use long random tokens (openssl rand -hex 24)")
		}
	}
	switch c.Auth {
	case "signature":
		if len(c.Secrets) == 0 && !c.SandboxMode() {
			return nil, badSetting(s["WEBHOOK_SECRETS"], "is required with WEBHOOK_AUTH=signature outside sandbox mode; set the marketplace's whsec_ signing secret(s), or WEBHOOK_AUTH=none to accept unsigned requests")
		}
	case "basic":
		user, pass, ok := strings.Cut(v["WEBHOOK_BASIC_AUTH"], ":")
		if !ok || user == "" || pass == "" {
			return nil, badSetting(s["WEBHOOK_BASIC_AUTH"], "must be user:password with WEBHOOK_AUTH=basic")
		}
		c.BasicUser, c.BasicPass = user, pass
	case "none":
	default:
		return nil, badSetting(s["WEBHOOK_AUTH"], "%q is not signature, basic or none", v["WEBHOOK_AUTH"])
	}
	return c, nil
}

// placeholder is the mark of a value the example manifests leave to fill in.
const placeholder = "CHANGE-ME"

// baseURLs are the outside APIs' base URL settings.
var baseURLs = []string{"Q2_BASE_URL", "QBD_BASE_URL", "HELIX_BASE_URL"}

// placeholders refuses the example manifests' unfilled values: any value
// holding CHANGE-ME, and a base URL on the .invalid top-level domain (such
// as q2.example.invalid), which is reserved never to resolve. A pod started
// with them then stops at once naming the setting, and never turns ready,
// rather than failing each delivery later.
func placeholders(v map[string]string) error {
	for _, s := range settings {
		if strings.Contains(strings.ToUpper(v[s.env]), placeholder) {
			return badSetting(s, "still the placeholder %s from the example manifest; set the real value", placeholder)
		}
	}
	for _, env := range baseURLs {
		u, err := url.Parse(v[env])
		if err != nil {
			continue // parseConfig names the bad URL
		}
		host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if host == "invalid" || strings.HasSuffix(host, ".invalid") {
			return &configError{msg: fmt.Sprintf("%s: %q is the example manifest's placeholder (a .invalid host never resolves); set the real base URL", env, v[env])}
		}
	}
	return nil
}

// processTimeoutWarning is where PROCESS_TIMEOUT starts to outlast the
// marketplace's patience: it stops waiting for a reply after about 5 s.
const processTimeoutWarning = 5 * time.Second

// warnings are settings that parse but probably do not do what was meant;
// the service logs each one at start.
func (c *config) warnings() []string {
	var out []string
	if len(c.Secrets) > 0 && c.Auth != "signature" {
		out = append(out, fmt.Sprintf("WEBHOOK_SECRETS is set but WEBHOOK_AUTH=%s ignores it: signatures are not checked; set WEBHOOK_AUTH=signature, or unset WEBHOOK_SECRETS", c.Auth))
	}
	if c.ProcessTimeout >= processTimeoutWarning {
		out = append(out, fmt.Sprintf("PROCESS_TIMEOUT=%s: the marketplace stops waiting for a reply after about 5s and sends the event again, so slower processing only makes copies; use 4s or less", c.ProcessTimeout))
	}
	return out
}
