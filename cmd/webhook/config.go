package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/banking-marketplace/webhook/internal/appdirect"
	"github.com/banking-marketplace/webhook/internal/console"
	"github.com/banking-marketplace/webhook/internal/products"
	"github.com/banking-marketplace/webhook/internal/signature"
	"github.com/banking-marketplace/webhook/internal/store"
)

// config is the service's configuration, read once from the environment
// and the flags of `serve` (a flag wins over its variable), through the
// settings table: each value parsed and checked once, here.
type config struct {
	Addr    string
	OpsAddr string // empty: one listener

	RedisURL            string // empty: demo mode's embedded Redis
	RedisSentinelMaster string
	RedisCluster        bool
	RedisWaitReplicas   int
	RedisWaitTimeout    time.Duration

	Q2BaseURL      string // empty: not used, or demo mode's sandbox
	Q2APIVersion   string
	Q2ClientID     string
	Q2ClientSecret string
	Q2Scope        string

	QBDBaseURL    string // empty: not used, or demo mode's sandbox
	QBDAPIVersion string
	QBDToken      string

	HelixBaseURL   string // empty: not used, or demo mode's sandbox
	HelixAPIKey    string
	HelixAPISecret string

	SandboxAddr string // where demo mode's embedded sandbox listens

	Auth      string // signature, basic or none
	Secrets   []string
	Verifier  *signature.Verifier // of Secrets; nil without secrets
	BasicUser string
	BasicPass string

	EventTTL        time.Duration
	ProcessTimeout  time.Duration
	AbandonAfter    time.Duration
	ShutdownDelay   time.Duration
	ShutdownTimeout time.Duration
	MaxInFlight     int
	CancelDeletes   string
	ProductsFile    string
	Catalog         *products.Catalog // the products file's, or the default product
	APITokens       []string
	ConsoleTraceURL string // the console's link from a trace id to a tracing UI; empty: none

	// The AppDirect door (APPDIRECT_*): on when Marketplaces is set, or in
	// demo mode (the embedded sandbox plays the marketplace).
	AppDirect appDirectConfig

	LogLevel  zapcore.Level
	LogFormat string // auto, json or console

	// Tracing is where spans go, from the standard OTEL_* variables
	// (readTracing), not the settings table; off unless an endpoint is set.
	Tracing tracingConfig

	// Demo is demo mode: no setting that only a real deployment sets
	// (see setting.production) is set. The embedded Redis and the
	// embedded sandbox serve only then; otherwise everything the products
	// use must be configured, and nothing is embedded.
	Demo bool
	// production names the settings that made it production, for messages.
	production []string
}

// appDirectConfig is the AppDirect door's settings.
type appDirectConfig struct {
	Marketplaces    []string // base URLs an eventUrl may point into
	ConsumerKey     string   // OAuth 1.0a (shared credentials)
	ConsumerSecrets []string // the first signs; any verifies (rotation)
	NotifyTokens    []string // separate credentials: a notification's bearer token
	NotifyBasic     []string // or its Basic user:password
	ClientID        string   // separate credentials: OAuth 2.0 for the fetch and the result
	ClientSecret    string
	Async           bool
	PublicURL       string // the service's scheme://host as AppDirect reaches it
	Product         string // the product AppDirect's events provision
}

// On reports whether the door is served.
func (a appDirectConfig) On() bool { return len(a.Marketplaces) > 0 }

// setting is one configuration value: its variable, its flag, its
// default, what it means, and how it is read.
type setting struct {
	env, flag, def, usage string
	// production: only a real deployment sets it (an outside API's base
	// URL or credentials, REDIS_URL, a marketplace's secret); setting it
	// leaves demo mode.
	production bool
	// read parses v (trimmed, the default def when empty) into c, or
	// says what is wrong and the fix, without the setting's name (the
	// caller adds it). An error joining several (errors.Join) is several
	// lines.
	read func(c *config, v, def string) error
}

// settings is every setting of `webhook serve`, in the order of --help
// and docs/configuration.md (TestConfigurationDoc keeps the two equal).
var settings = []setting{
	{"WEBHOOK_ADDR", "addr", ":8080", "listen address of the marketplace routes (and of everything else when OPS_ADDR is empty)", false, listenAddr(func(c *config) *string { return &c.Addr }, false)},
	{"OPS_ADDR", "ops-addr", "", "listen address of /metrics, /healthz, /readyz, the read API (/v1/...), the console (/console/) and /openapi.yaml, which then leave WEBHOOK_ADDR; empty: one listener", false, listenAddr(func(c *config) *string { return &c.OpsAddr }, true)},
	{"REDIS_URL", "redis-url", "", "redis:// or rediss:// URL, several hosts comma-separated for Sentinel or Cluster; its Redis must have maxmemory-policy noeviction. Required outside demo mode; empty in demo mode: an embedded Redis that keeps nothing across a restart", true, text(func(c *config) *string { return &c.RedisURL })},
	{"REDIS_SENTINEL_MASTER", "redis-sentinel-master", "", "Sentinel master name: REDIS_URL's hosts are Sentinels", false, text(func(c *config) *string { return &c.RedisSentinelMaster })},
	{"REDIS_CLUSTER", "redis-cluster", "false", "true: REDIS_URL's hosts are Redis Cluster seed nodes", false, boolean(func(c *config) *bool { return &c.RedisCluster })},
	{"REDIS_WAIT_REPLICAS", "redis-wait-replicas", "0", "after each account write, wait until this many replicas have it (Redis WAIT); set it to the number of replicas to keep acknowledged accounts through a failover", false,
		wholeNumber(func(c *config) *int { return &c.RedisWaitReplicas }, 0, "a whole number of 0 or more (0: do not wait; 1: one replica)")},
	{"REDIS_WAIT_TIMEOUT", "redis-wait-timeout", "500ms", "the longest wait for REDIS_WAIT_REPLICAS; past it the event answers 503 and is sent again", false,
		duration(func(c *config) *time.Duration { return &c.RedisWaitTimeout }, 10*time.Second, false)},
	{"Q2_BASE_URL", "q2-base-url", "", "Q2 API base URL; required outside demo mode when a product provisions in q2 (the default product does)", true, baseURL(func(c *config) *string { return &c.Q2BaseURL }, "https://api.q2.example", false)},
	{"Q2_API_VERSION", "q2-api-version", "v2", "path prefix of every Q2 call (v1 or v2)", false, q2Version},
	{"Q2_CLIENT_ID", "q2-client-id", "", "OAuth2 client id; required with Q2_BASE_URL", true, text(func(c *config) *string { return &c.Q2ClientID })},
	{"Q2_CLIENT_SECRET", "q2-client-secret", "", "OAuth2 client secret; required with Q2_BASE_URL", true, text(func(c *config) *string { return &c.Q2ClientSecret })},
	{"Q2_SCOPE", "q2-scope", "", "OAuth2 scopes, space-separated", false, text(func(c *config) *string { return &c.Q2Scope })},
	{"QBD_BASE_URL", "qbd-base-url", "", "QBD Connect API base URL (the part before /qbdconnect-api/); required outside demo mode when a product provisions in qbd_connect", true,
		baseURL(func(c *config) *string { return &c.QBDBaseURL }, "https://qbd.example", true)},
	{"QBD_API_VERSION", "qbd-api-version", "v1", "the {version} path segment of QBD Connect calls", false, qbdVersion},
	{"QBD_TOKEN", "qbd-token", "", "sent to QBD Connect as Authorization: Bearer when set (optional)", true, oneLineText(func(c *config) *string { return &c.QBDToken })},
	{"HELIX_BASE_URL", "helix-base-url", "", "Helix API base URL; required outside demo mode when a product provisions in helix", true,
		baseURL(func(c *config) *string { return &c.HelixBaseURL }, "https://sandbox-api.helix.q2.com", false)},
	{"HELIX_API_KEY", "helix-api-key", "", "Helix HTTP Basic user (the API key); required with HELIX_BASE_URL", true, text(func(c *config) *string { return &c.HelixAPIKey })},
	{"HELIX_API_SECRET", "helix-api-secret", "", "Helix HTTP Basic password (the API secret); required with HELIX_BASE_URL", true, text(func(c *config) *string { return &c.HelixAPISecret })},
	{"SANDBOX_ADDR", "sandbox-addr", defaultSandboxAddr, "where demo mode's embedded sandbox listens, for /_sandbox/stats and /_sandbox/faults (127.0.0.1:0: any free port; the default, when taken, falls back to a free port with a warning); unused outside demo mode", false,
		listenAddr(func(c *config) *string { return &c.SandboxAddr }, false)},
	{"WEBHOOK_AUTH", "auth", "signature", "who may call: signature, basic or none", false, oneOf(func(c *config) *string { return &c.Auth }, "signature", "basic", "none")},
	{"WEBHOOK_SECRETS", "secrets", "", "space-separated signing secrets (whsec_ + base64 of 24 or more bytes), several for rotation; required with WEBHOOK_AUTH=signature outside demo mode", true, readSecrets},
	{"WEBHOOK_BASIC_AUTH", "basic-auth", "", "user:password, with WEBHOOK_AUTH=basic", true, readBasicAuth},
	{"EVENT_TTL", "event-ttl", "72h", "how long delivery records (and their replies) are kept", false, duration(func(c *config) *time.Duration { return &c.EventTTL }, 0, false)},
	{"PROCESS_TIMEOUT", "process-timeout", "4s", "deadline for handling one event (marketplaces wait about 5s; at most 5m)", false, duration(func(c *config) *time.Duration { return &c.ProcessTimeout }, 5*time.Minute, false)},
	{"ABANDON_AFTER", "abandon-after", "24h", "how long a partly provisioned ORDER that was answered 503 waits for its next copy before it is undone and recorded refused; must be longer than PROCESS_TIMEOUT", false,
		duration(func(c *config) *time.Duration { return &c.AbandonAfter }, 0, false)},
	{"SHUTDOWN_DELAY", "shutdown-delay", "0s", "after SIGTERM, how long /readyz answers 503 before the listener closes (for load balancers)", false,
		duration(func(c *config) *time.Duration { return &c.ShutdownDelay }, 5*time.Minute, true)},
	{"SHUTDOWN_TIMEOUT", "shutdown-timeout", "15s", "how long in-flight requests may finish after SIGTERM; past it connections are cut, and Redis closes only after their handlers returned", false,
		duration(func(c *config) *time.Duration { return &c.ShutdownTimeout }, 10*time.Minute, false)},
	{"MAX_IN_FLIGHT", "max-in-flight", "256", "deliveries processed at once; past it 503 with Retry-After", false,
		wholeNumber(func(c *config) *int { return &c.MaxInFlight }, 1, "a whole number of 1 or more, like 256")},
	{"CANCEL_DELETES", "cancel-deletes", "user", "what a CANCEL deletes in Q2 (user or customer), for products that do not say", false,
		oneOf(func(c *config) *string { return &c.CancelDeletes }, "user", "customer")},
	{"APPDIRECT_MARKETPLACES", "appdirect-marketplaces", "", "space-separated base URLs of the AppDirect marketplaces that call GET /appdirect/events directly; an eventUrl outside them is refused (403); empty: no such door outside demo mode (in demo mode the embedded sandbox plays one)", true, readMarketplaces},
	{"APPDIRECT_CONSUMER_KEY", "appdirect-consumer-key", "", "OAuth 1.0a consumer key (shared credentials): notifications are signed with it, and the fetch and the result post sign with it", true, text(func(c *config) *string { return &c.AppDirect.ConsumerKey })},
	{"APPDIRECT_CONSUMER_SECRET", "appdirect-consumer-secret", "", "OAuth 1.0a consumer secret(s), space-separated for rotation: any verifies a notification, the first signs", true, fields(func(c *config) *[]string { return &c.AppDirect.ConsumerSecrets })},
	{"APPDIRECT_NOTIFY_TOKEN", "appdirect-notify-token", "", "separate credentials: bearer token(s) a notification may carry, space-separated", true, fields(func(c *config) *[]string { return &c.AppDirect.NotifyTokens })},
	{"APPDIRECT_NOTIFY_BASIC", "appdirect-notify-basic", "", "separate credentials: user:password pair(s) a notification may carry as HTTP Basic, space-separated", true, fields(func(c *config) *[]string { return &c.AppDirect.NotifyBasic })},
	{"APPDIRECT_CLIENT_ID", "appdirect-client-id", "", "separate credentials: OAuth 2.0 client id for {marketplace}/oauth2/token, used to fetch events and post results", true, text(func(c *config) *string { return &c.AppDirect.ClientID })},
	{"APPDIRECT_CLIENT_SECRET", "appdirect-client-secret", "", "separate credentials: OAuth 2.0 client secret", true, text(func(c *config) *string { return &c.AppDirect.ClientSecret })},
	{"APPDIRECT_ASYNC", "appdirect-async", "false", "true: answer AppDirect 202 once the event is recorded, and post its result later from a durable queue (SUBSCRIPTION_NOTICE stays synchronous)", false, boolean(func(c *config) *bool { return &c.AppDirect.Async })},
	{"APPDIRECT_PUBLIC_URL", "appdirect-public-url", "", "scheme://host[:port] AppDirect reaches the service at, when a proxy in front changes it: OAuth 1.0a signatures cover that URL; empty: the request's own", false, text(func(c *config) *string { return &c.AppDirect.PublicURL })},
	{"APPDIRECT_PRODUCT", "appdirect-product", "", "the product (its name in PRODUCTS_FILE) AppDirect's events provision; empty: the only product", false, text(func(c *config) *string { return &c.AppDirect.Product })},
	{"API_TOKENS", "api-tokens", "", "space-separated bearer tokens of the read API (/v1/...) and of the operator console (/console/, where an operator signs in with one), several for rotation; empty: those routes answer 404", false, readAPITokens},
	{"CONSOLE_TRACE_URL", "console-trace-url", "", "the operator console links each attempt's trace id there: an absolute http(s) URL with {trace_id} in it, like https://tempo.example/trace/{trace_id}; empty: trace ids are shown without a link", false, readTraceURL},
	{"PRODUCTS_FILE", "products-file", "", "the products file (YAML or JSON); empty: one product on every extension, provisioning a Q2 user", false, readProducts},
	{"LOG_LEVEL", "log-level", "info", "debug, info, warn or error", false, readLogLevel},
	{"LOG_FORMAT", "log-format", "auto", "json, console, or auto: console on a terminal, JSON otherwise", false,
		oneOf(func(c *config) *string { return &c.LogFormat }, "json", "console", "auto")},
}

// configError is a bad flag or configuration: the command exits with
// status 2. msg has one line per problem, each naming its setting.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }
func (e *configError) ExitCode() int { return 2 }

// loadConfig reads the settings from args (the flags of serve) and getenv,
// and reports every problem at once: one line each, naming the setting and
// the fix.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("webhook serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: webhook serve [flags]\n\nRuns the receiver. Every flag can also be set by its environment variable; the flag wins.\nThe full table: docs/configuration.md.\n\nFlags:")
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
	raw := make(map[string]string, len(settings))
	for _, s := range settings {
		v := getenv(s.env)
		if set[s.flag] {
			v = *flags[s.env]
		}
		raw[s.env] = strings.TrimSpace(v)
	}
	c, err := parseConfig(raw)
	tracing, problems := readTracing(getenv)
	if len(problems) > 0 { // said with the table's problems, all at once
		var ce *configError
		if errors.As(err, &ce) {
			problems = append([]string{ce.msg}, problems...)
		}
		return nil, &configError{msg: strings.Join(problems, "\n")}
	}
	if err != nil {
		return nil, err
	}
	c.Tracing = tracing
	return c, nil
}

// problems collects the configuration's problems, one line each, in the
// order found, at most one line per setting for a missing value.
type problems struct {
	lines []string
	bad   map[string]bool // settings already reported
}

func (p *problems) add(env, format string, args ...any) {
	p.lines = append(p.lines, env+": "+fmt.Sprintf(format, args...))
	p.bad[env] = true
}

// addErr adds err, one line per joined error, each prefixed with env.
func (p *problems) addErr(env string, err error) {
	for _, e := range splitErrors(err) {
		p.add(env, "%s", strings.Join(strings.Fields(e.Error()), " "))
	}
}

// splitErrors is the errors an errors.Join holds, or err alone.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// parseConfig reads raw (each setting's value as given, trimmed; empty
// when unset) through the table, then checks the settings against each
// other, the mode and the products.
func parseConfig(raw map[string]string) (*config, error) {
	c := &config{}
	p := &problems{bad: map[string]bool{}}
	for _, s := range settings {
		v := raw[s.env]
		if strings.Contains(strings.ToUpper(v), placeholder) {
			p.add(s.env, "still the placeholder %s from the example manifest; set the real value", placeholder)
			continue
		}
		if s.production && v != "" {
			c.production = append(c.production, s.env)
		}
		if v == "" {
			v = s.def
		}
		if err := s.read(c, v, s.def); err != nil {
			p.addErr(s.env, err)
		}
	}
	c.Demo = len(c.production) == 0
	c.checkTogether(p)
	if len(p.lines) > 0 {
		return nil, &configError{msg: strings.Join(p.lines, "\n")}
	}
	return c, nil
}

// checkTogether checks what no setting can alone: Redis's settings as one
// (the store's own rules), times against each other, authentication, and
// what the mode and the products need.
func (c *config) checkTogether(p *problems) {
	redisOptions := map[string]string{"URL": "REDIS_URL", "MasterName": "REDIS_SENTINEL_MASTER", "Cluster": "REDIS_CLUSTER", "WaitReplicas": "REDIS_WAIT_REPLICAS"}
	if !p.bad["REDIS_URL"] && !p.bad["REDIS_WAIT_REPLICAS"] && !p.bad["REDIS_CLUSTER"] {
		err := c.storeOptions().Validate()
		for _, e := range splitErrors(err) {
			var oe *store.OptionError
			if errors.As(e, &oe) {
				p.add(redisOptions[oe.Option], "%s", oe.Problem)
			} else if e != nil {
				p.addErr("REDIS_URL", e)
			}
		}
	}
	if !p.bad["ABANDON_AFTER"] && !p.bad["PROCESS_TIMEOUT"] && c.AbandonAfter <= c.ProcessTimeout {
		p.add("ABANDON_AFTER", "%s is not longer than PROCESS_TIMEOUT (%s): a delivery still in progress would be abandoned; use hours, like 24h", c.AbandonAfter, c.ProcessTimeout)
	}
	if c.OpsAddr != "" && c.OpsAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
		p.add("OPS_ADDR", "is WEBHOOK_ADDR (%s): the two listeners need two addresses; use another port, like :9091, or leave it empty for one listener", c.Addr)
	}
	if c.Auth == "basic" && c.BasicUser == "" && !p.bad["WEBHOOK_BASIC_AUTH"] {
		p.add("WEBHOOK_BASIC_AUTH", "must be user:password with WEBHOOK_AUTH=basic")
	}
	if c.Catalog == nil && !p.bad["PRODUCTS_FILE"] {
		c.Catalog = products.Default(c.CancelDeletes)
	}
	c.checkOutsideAPIs(p)
	c.checkAppDirect(p)
	if c.Demo {
		return
	}
	because := c.productionBecause()
	if c.RedisURL == "" && !p.bad["REDIS_URL"] {
		p.add("REDIS_URL", "is required outside demo mode (%s); set the redis:// or rediss:// URL of a Redis whose maxmemory-policy is noeviction", because)
	}
	if c.Auth == "signature" && len(c.Secrets) == 0 && !p.bad["WEBHOOK_SECRETS"] {
		p.add("WEBHOOK_SECRETS", "is required with WEBHOOK_AUTH=signature outside demo mode (%s); set the marketplace's whsec_ signing secret(s), or WEBHOOK_AUTH=basic or none", because)
	}
}

// mode is "demo" or "production", for the start line.
func (c *config) mode() string {
	if c.Demo {
		return "demo"
	}
	return "production"
}

// productionBecause says which settings made the configuration
// production, for the lines that it requires.
func (c *config) productionBecause() string {
	names := c.production
	more := ""
	if len(names) > 3 {
		names, more = names[:3], ", ..."
	}
	verb := " is set"
	if len(c.production) > 1 {
		verb = " are set"
	}
	return strings.Join(names, ", ") + more + verb
}

// outsideAPI is an outside system a product target calls: its base URL
// setting and the credentials it needs.
type outsideAPI struct {
	target, title string
	base          string
	creds         []struct{ env, what string }
}

var outsideAPIList = []outsideAPI{
	{products.TargetQ2, "Q2", "Q2_BASE_URL", []struct{ env, what string }{
		{"Q2_CLIENT_ID", "the OAuth2 client id Q2 gave you"}, {"Q2_CLIENT_SECRET", "the OAuth2 client secret Q2 gave you"}}},
	{products.TargetQBDConnect, "QBD Connect", "QBD_BASE_URL", nil},
	{products.TargetHelix, "Helix", "HELIX_BASE_URL", []struct{ env, what string }{
		{"HELIX_API_KEY", "the API key Helix gave you"}, {"HELIX_API_SECRET", "the API secret Helix gave you"}}},
}

// checkOutsideAPIs: an API whose base URL is set needs its credentials;
// outside demo mode, every API a product uses needs its base URL too. The
// embedded sandbox never stands in for one.
func (c *config) checkOutsideAPIs(p *problems) {
	values := c.values()
	for _, api := range outsideAPIList {
		users := c.usersOf(api.target)
		var why string
		switch {
		case p.bad[api.base]:
			continue // said already
		case values[api.base] != "":
			why = "when " + api.base + " is set"
		case !c.Demo && users != "":
			why = "outside demo mode (" + c.productionBecause() + ") for " + users
			p.add(api.base, "is required %s; set the base URL of your %s API", why, api.title)
		default:
			continue
		}
		for _, cred := range api.creds {
			if values[cred.env] == "" && !p.bad[cred.env] {
				p.add(cred.env, "is required %s; set %s", why, cred.what)
			}
		}
	}
}

// usersOf says which products provision in target: `product "A"`, or ""
// for none.
func (c *config) usersOf(target string) string {
	if c.Catalog == nil {
		return "" // the products file is bad: its lines say so
	}
	var names []string
	for _, p := range c.Catalog.Products {
		if slices.Contains(p.Targets, target) {
			names = append(names, strconv.Quote(p.Name))
		}
	}
	switch {
	case len(names) == 0:
		return ""
	case c.Catalog.IsDefault():
		return "the default product (no PRODUCTS_FILE), which provisions in " + target
	case len(names) == 1:
		return "product " + names[0] + ", which provisions in " + target
	}
	return "products " + strings.Join(names, ", ") + ", which provision in " + target
}

// values are the settings that the checks of several settings read by name.
func (c *config) values() map[string]string {
	return map[string]string{
		"Q2_BASE_URL": c.Q2BaseURL, "Q2_CLIENT_ID": c.Q2ClientID, "Q2_CLIENT_SECRET": c.Q2ClientSecret,
		"QBD_BASE_URL":   c.QBDBaseURL,
		"HELIX_BASE_URL": c.HelixBaseURL, "HELIX_API_KEY": c.HelixAPIKey, "HELIX_API_SECRET": c.HelixAPISecret,
	}
}

// storeOptions are the Redis settings as the store takes them.
func (c *config) storeOptions() store.Options {
	return store.Options{
		URL: c.RedisURL, MasterName: c.RedisSentinelMaster, Cluster: c.RedisCluster,
		WaitReplicas: c.RedisWaitReplicas, WaitTimeout: c.RedisWaitTimeout,
		Trace: c.Tracing.On(),
	}
}

// The readers of the table.

func text(dst func(*config) *string) func(*config, string, string) error {
	return func(c *config, v, def string) error { *dst(c) = v; return nil }
}

func oneLineText(dst func(*config) *string) func(*config, string, string) error {
	return func(c *config, v, def string) error {
		if strings.ContainsAny(v, "\r\n") {
			return errors.New("must be one line")
		}
		*dst(c) = v
		return nil
	}
}

// readTraceURL reads CONSOLE_TRACE_URL: empty, or an absolute http(s) URL
// with {trace_id} in it.
func readTraceURL(c *config, v, _ string) error {
	if v == "" {
		return nil
	}
	if err := console.CheckTraceURL(v); err != nil {
		return fmt.Errorf("%q %w", redactURL(v), err)
	}
	c.ConsoleTraceURL = v
	return nil
}

func oneOf(dst func(*config) *string, values ...string) func(*config, string, string) error {
	return func(c *config, v, def string) error {
		v = strings.ToLower(v)
		if !slices.Contains(values, v) {
			return fmt.Errorf("%q is not %s or %s", v, strings.Join(values[:len(values)-1], ", "), values[len(values)-1])
		}
		*dst(c) = v
		return nil
	}
}

func boolean(dst func(*config) *bool) func(*config, string, string) error {
	return func(c *config, v, def string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*dst(c) = b
		return nil
	}
}

func wholeNumber(dst func(*config) *int, least int, what string) func(*config, string, string) error {
	return func(c *config, v, def string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < least {
			return fmt.Errorf("%q is not %s", v, what)
		}
		*dst(c) = n
		return nil
	}
}

// duration reads a Go duration, more than zero (or zero when zeroOK), at
// most most (when not 0); the messages quote the setting's default.
func duration(dst func(*config) *time.Duration, most time.Duration, zeroOK bool) func(*config, string, string) error {
	return func(c *config, v, def string) error {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return fmt.Errorf("%q is not a duration like %s", v, def)
		case d < 0 || (d == 0 && !zeroOK):
			return fmt.Errorf("%q must be more than zero, like %s", v, def)
		case most > 0 && d > most:
			return fmt.Errorf("%q is longer than %s; use something like %s", v, most, def)
		}
		*dst(c) = d
		return nil
	}
}

// listenAddr reads host:port, the port a number (0: any free port).
func listenAddr(dst func(*config) *string, emptyOK bool) func(*config, string, string) error {
	return func(c *config, v, def string) error {
		if v == "" && emptyOK {
			return nil
		}
		_, port, err := net.SplitHostPort(v)
		if err != nil {
			return fmt.Errorf("%q is not a listen address host:port, like :8080 or 127.0.0.1:8080", v)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%q: the port must be a number from 0 to 65535, like :8080", v)
		}
		*dst(c) = v
		return nil
	}
}

// baseURL reads an outside API's base URL: absolute http(s), no
// credentials, query or fragment, not the example manifests' .invalid
// placeholder; for QBD Connect, the part before /qbdconnect-api/. The
// clients take it as checked here.
func baseURL(dst func(*config) *string, example string, qbd bool) func(*config, string, string) error {
	return func(c *config, v, def string) error {
		if v == "" {
			return nil
		}
		base := strings.TrimRight(v, "/")
		u, err := url.Parse(base)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			return fmt.Errorf("%q is not an http(s) URL like %s", redactURL(base), example)
		case u.User != nil:
			return errors.New("must not hold credentials (user:password@); set them in their own settings")
		case u.RawQuery != "" || u.Fragment != "":
			return fmt.Errorf("%q must have no query or fragment; set the base URL, like %s", base, example)
		case isInvalidHost(u.Hostname()):
			return fmt.Errorf("%q is the example manifest's placeholder (a .invalid host never resolves); set the real base URL", base)
		case qbd && strings.Contains(u.Path, "/qbdconnect-api"):
			return errors.New("is the part before /qbdconnect-api/; drop /qbdconnect-api and what follows")
		}
		*dst(c) = base
		return nil
	}
}

// redactURL is raw without what could be a password.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	if i := strings.LastIndex(raw, "@"); i >= 0 {
		return "..." + raw[i:]
	}
	return raw
}

func isInvalidHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "invalid" || strings.HasSuffix(host, ".invalid")
}

func q2Version(c *config, v, _ string) error {
	if v != "v1" && v != "v2" {
		return fmt.Errorf("%q is not a version Q2 serves; use v1 or v2", v)
	}
	c.Q2APIVersion = v
	return nil
}

var apiVersion = regexp.MustCompile(`^v[0-9]+$`)

func qbdVersion(c *config, v, _ string) error {
	if !apiVersion.MatchString(v) {
		return fmt.Errorf("%q is not a version like v1", v)
	}
	c.QBDAPIVersion = v
	return nil
}

func readSecrets(c *config, v, _ string) error {
	c.Secrets = strings.Fields(v)
	if len(c.Secrets) == 0 {
		return nil
	}
	verifier, err := signature.NewVerifier(c.Secrets)
	if err != nil {
		return err
	}
	c.Verifier = verifier
	return nil
}

func fields(dst func(*config) *[]string) func(*config, string, string) error {
	return func(c *config, v, def string) error { *dst(c) = strings.Fields(v); return nil }
}

func readMarketplaces(c *config, v, _ string) error {
	var errs []error
	for _, m := range strings.Fields(v) {
		u, err := appdirect.ParseMarketplace(m)
		if err != nil && strings.Contains(m, "@") { // maybe a user:password: never echoed
			errs = append(errs, errors.New("a base URL holds '@' (credentials do not belong in it); give base URLs like https://marketplace.example.com"))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%q: %v; give base URLs like https://marketplace.example.com", m, err))
			continue
		}
		c.AppDirect.Marketplaces = append(c.AppDirect.Marketplaces, u.String())
	}
	return errors.Join(errs...)
}

// checkAppDirect: a door that is on needs one complete credential mode
// and a product to provision.
func (c *config) checkAppDirect(p *problems) {
	a := &c.AppDirect
	if !a.On() {
		if a.ConsumerKey != "" || len(a.ConsumerSecrets) > 0 || len(a.NotifyTokens) > 0 || len(a.NotifyBasic) > 0 || a.ClientID != "" || a.ClientSecret != "" {
			p.add("APPDIRECT_MARKETPLACES", "is required with the APPDIRECT_* credentials set: the base URLs of the marketplaces that call GET /appdirect/events")
		}
		return
	}
	shared := a.ConsumerKey != "" || len(a.ConsumerSecrets) > 0
	separate := len(a.NotifyTokens) > 0 || len(a.NotifyBasic) > 0 || a.ClientID != "" || a.ClientSecret != ""
	switch {
	case shared && (a.ConsumerKey == "" || len(a.ConsumerSecrets) == 0):
		p.add("APPDIRECT_CONSUMER_SECRET", "and APPDIRECT_CONSUMER_KEY go together: set both, the consumer key and secret AppDirect shows for the product")
	case !shared && !separate:
		p.add("APPDIRECT_CONSUMER_KEY", "is required with APPDIRECT_MARKETPLACES (shared credentials: with APPDIRECT_CONSUMER_SECRET), or set separate credentials: APPDIRECT_NOTIFY_TOKEN or APPDIRECT_NOTIFY_BASIC, with APPDIRECT_CLIENT_ID and APPDIRECT_CLIENT_SECRET")
	case !shared && (a.ClientID == "" || a.ClientSecret == ""):
		p.add("APPDIRECT_CLIENT_ID", "and APPDIRECT_CLIENT_SECRET are required with separate credentials: the OAuth 2.0 client AppDirect gave for fetching events and posting results")
	case !shared && len(a.NotifyTokens) == 0 && len(a.NotifyBasic) == 0:
		p.add("APPDIRECT_NOTIFY_TOKEN", "or APPDIRECT_NOTIFY_BASIC is required with separate credentials: what AppDirect's notifications carry")
	}
	for _, b := range a.NotifyBasic {
		if u, pw, ok := strings.Cut(b, ":"); !ok || u == "" || pw == "" {
			p.add("APPDIRECT_NOTIFY_BASIC", "each value must be user:password")
			break
		}
	}
	if a.PublicURL != "" {
		// The verifier's own check, so that what it would refuse is
		// refused here, once, naming the setting.
		if _, _, err := appdirect.ParsePublicURL(a.PublicURL); err != nil {
			p.add("APPDIRECT_PUBLIC_URL", "%q %s", redactURL(a.PublicURL), err)
		}
	}
	if c.Catalog == nil {
		return
	}
	switch {
	case a.Product == "" && len(c.Catalog.Products) == 1:
		a.Product = c.Catalog.Products[0].Name
	case a.Product == "":
		p.add("APPDIRECT_PRODUCT", "is required when the products file has several products: name the one AppDirect's events provision")
	case !slices.ContainsFunc(c.Catalog.Products, func(pr products.Product) bool { return pr.Name == a.Product }):
		p.add("APPDIRECT_PRODUCT", "%q is not a product of the products file", a.Product)
	}
}

func readBasicAuth(c *config, v, _ string) error {
	if v == "" {
		return nil
	}
	user, pass, ok := strings.Cut(v, ":")
	if !ok || user == "" || pass == "" {
		return errors.New("must be user:password")
	}
	c.BasicUser, c.BasicPass = user, pass
	return nil
}

func readAPITokens(c *config, v, _ string) error {
	c.APITokens = strings.Fields(v)
	for _, tok := range c.APITokens {
		if len(tok) < 16 {
			return errors.New("a token is shorter than 16 characters; use long random tokens (openssl rand -hex 24)")
		}
	}
	return nil
}

func readProducts(c *config, v, _ string) error {
	c.ProductsFile = v
	if v == "" {
		return nil // the default product, once CANCEL_DELETES is read
	}
	catalog, err := products.Load(v)
	if err != nil {
		return err
	}
	c.Catalog = catalog
	return nil
}

func readLogLevel(c *config, v, _ string) error {
	level, err := zapcore.ParseLevel(v)
	if err != nil {
		return fmt.Errorf("%q is not a level; use debug, info, warn or error", v)
	}
	c.LogLevel = level
	return nil
}

// placeholder is the mark of a value the example manifests leave to fill
// in: a pod started with one stops at once naming the setting, and never
// turns ready, rather than failing each delivery later.
const placeholder = "CHANGE-ME"

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
