// Package appdirectsandbox is the AppDirect part of the sandbox: a
// marketplace in memory that holds events, serves them to a signed fetch,
// records the results posted to it, and sends AppDirect's notification to
// the service, so that the service's AppDirect door can be run and tested
// without AppDirect.
//
// It implements the sandbox's Part interface, declared in internal/sandbox
// (not imported: a part uses only standard-library types):
//
//	type Part interface {
//		Name() string     // "appdirect"
//		Routes() []string // "appdirect.fetch", "appdirect.result", "appdirect.token"
//		Register(mux *http.ServeMux, wrap func(route string, h http.HandlerFunc) http.HandlerFunc) // wrap counts the call and plays faults
//		Stats() any                                   // {"events": N, "results": M}
//		Fail(w http.ResponseWriter, status, code int) // a fault's answer
//		Reset()
//	}
//
// Routes, beside the frame's:
//
//	POST /_sandbox/events                              a raw AppDirect event (a JSON object) → {"token", "eventUrl"}
//	GET  /api/integration/v1/events/{token}            the event, to a request signed with the consumer key and secret
//	                                                   (OAuth 1.0a) or carrying a token of /oauth2/token; 401 otherwise;
//	                                                   JSON with "Accept: application/json", else XML, as AppDirect does
//	POST /api/integration/v1/events/{token}/result     records the result document (authenticated the same way)
//	GET  /_sandbox/results/{token}                     the last result posted, 404 until there is one; the header
//	                                                   X-Sandbox-Result-Posts says how many were posted
//	POST /_sandbox/notify                              {"url", "token"}: sends GET {url}?eventUrl=… to the service,
//	                                                   signed, and answers {"status", "body"} of its reply
//	POST /oauth2/token                                 client credentials (form or HTTP Basic) → a bearer token
//
// Like AppDirect, a registered event's marketplace.baseUrl is set to the
// marketplace's own base URL, when the event has a marketplace object.
// Errors are {"code": "UNAUTHORIZED", "message": "…"}; that shape is the
// sandbox's own (AppDirect documents none for these routes).
package appdirectsandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/banking-marketplace/webhook/internal/appdirect"
)

// Defaults of Config.
const (
	DefaultConsumerKey    = "appdirect-sandbox"
	DefaultConsumerSecret = "appdirect-sandbox-secret"
	DefaultClientID       = "appdirect-sandbox"
	DefaultClientSecret   = "appdirect-sandbox-client-secret"
	DefaultTokenTTL       = time.Hour
	DefaultNotifyTimeout  = 30 * time.Second
)

// The routes whose calls the frame counts and on which it plays faults.
const (
	RouteFetch  = "appdirect.fetch"
	RouteResult = "appdirect.result"
	RouteToken  = "appdirect.token"
)

const (
	maxBody      = 1 << 20 // every request body, and the service's reply kept by notify
	eventPattern = "/api/integration/v1/events/{token}"
)

// Config is the marketplace's credentials and addresses; zero fields take
// the defaults.
type Config struct {
	// ConsumerKey and ConsumerSecret sign and check OAuth 1.0a: the
	// notification it sends, the fetch and the result post it takes.
	ConsumerKey, ConsumerSecret string
	// ClientID and ClientSecret are the client credentials its
	// /oauth2/token takes (separate-credentials mode); TokenTTL is the
	// tokens' lifetime.
	ClientID, ClientSecret string
	TokenTTL               time.Duration
	// NotifyToken, when set, makes the notification carry "Authorization:
	// Bearer NotifyToken" instead of an OAuth 1.0a signature; NotifyBasic
	// ("user:password"), HTTP Basic. At most one of them.
	NotifyToken, NotifyBasic string
	// BaseURL is the marketplace's own base URL as the service reaches it
	// (scheme://host[:port]): the start of each eventUrl, and the URL the
	// OAuth 1.0a signatures it checks are computed over. Empty: taken from
	// each request's Host (http, or https over TLS).
	BaseURL string
	// HTTPClient sends the notifications (default: one with a
	// DefaultNotifyTimeout timeout). No redirect is followed.
	HTTPClient *http.Client
}

// Marketplace is the sandbox's AppDirect marketplace. It is safe for
// concurrent use.
type Marketplace struct {
	cfg    Config
	verify *appdirect.Verifier
	nonces *appdirect.MemoryNonces
	client *http.Client

	mu      sync.Mutex
	events  map[string]*event
	posts   int                  // result posts recorded, all tokens
	tokens  map[string]time.Time // access token → expiry
	sweepAt int
}

type event struct {
	doc      []byte
	eventURL string
	results  [][]byte // every result posted, in order
}

// Stats is the part's block of /_sandbox/stats.
type Stats struct {
	Events  int `json:"events"`  // events registered
	Results int `json:"results"` // result posts recorded, a result posted twice counted twice
}

// New returns an empty marketplace. Its errors name the field.
func New(cfg Config) (*Marketplace, error) {
	cfg.ConsumerKey = or(cfg.ConsumerKey, DefaultConsumerKey)
	cfg.ConsumerSecret = or(cfg.ConsumerSecret, DefaultConsumerSecret)
	cfg.ClientID = or(cfg.ClientID, DefaultClientID)
	cfg.ClientSecret = or(cfg.ClientSecret, DefaultClientSecret)
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	switch {
	case cfg.NotifyToken != "" && cfg.NotifyBasic != "":
		return nil, errors.New("appdirectsandbox: give NotifyToken or NotifyBasic, not both")
	case cfg.NotifyBasic != "" && !strings.Contains(cfg.NotifyBasic, ":"):
		return nil, errors.New("appdirectsandbox: NotifyBasic must be user:password")
	case strings.ContainsAny(cfg.NotifyToken, " \t\r\n"):
		return nil, errors.New("appdirectsandbox: NotifyToken must hold no white space")
	}
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("appdirectsandbox: BaseURL %q must be scheme://host[:port], such as http://localhost:8081", cfg.BaseURL)
		}
		cfg.BaseURL = u.Scheme + "://" + u.Host
	}
	m := &Marketplace{cfg: cfg, nonces: &appdirect.MemoryNonces{}}
	var err error
	m.verify, err = appdirect.NewVerifier(appdirect.VerifierConfig{
		Consumers: []appdirect.Consumer{{Key: cfg.ConsumerKey, Secret: cfg.ConsumerSecret}},
		PublicURL: cfg.BaseURL,
		Nonces:    m.nonces,
	})
	if err != nil {
		return nil, fmt.Errorf("appdirectsandbox: %w", err)
	}
	hc := &http.Client{Timeout: DefaultNotifyTimeout}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	m.client = hc
	m.Reset()
	return m, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Name is the part's name in the sandbox's stats.
func (m *Marketplace) Name() string { return "appdirect" }

// Routes names the routes whose calls are counted and take faults.
func (m *Marketplace) Routes() []string { return []string{RouteFetch, RouteResult, RouteToken} }

// Register adds the marketplace's routes to mux; wrap (the frame's: it
// counts the call and plays faults) goes around the fetch, the result
// post and the token route, outside authentication.
func (m *Marketplace) Register(mux *http.ServeMux, wrap func(route string, h http.HandlerFunc) http.HandlerFunc) {
	mux.HandleFunc("GET "+eventPattern, wrap(RouteFetch, m.authed(m.fetch)))
	mux.HandleFunc("POST "+eventPattern+"/result", wrap(RouteResult, m.authed(m.result)))
	mux.HandleFunc("POST /oauth2/token", wrap(RouteToken, m.token))
	mux.HandleFunc("POST /_sandbox/events", m.addEvent)
	mux.HandleFunc("GET /_sandbox/results/{token}", m.lastResult)
	mux.HandleFunc("POST /_sandbox/notify", m.notify)
}

// Stats returns the counts, as a Stats.
func (m *Marketplace) Stats() any {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Events: len(m.events), Results: m.posts}
}

// Reset forgets every event, result and token.
func (m *Marketplace) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events, m.posts = map[string]*event{}, 0
	m.tokens, m.sweepAt = map[string]time.Time{}, 1024
}

// Fail answers a fault: status (400 when 0) with the sandbox's error
// document; AppDirect has no numeric error codes, so code is only quoted
// in the message.
func (m *Marketplace) Fail(w http.ResponseWriter, status, code int) {
	if status == 0 {
		status = http.StatusBadRequest
	}
	msg := fmt.Sprintf("sandbox fault: HTTP %d", status)
	if code != 0 {
		msg += fmt.Sprintf(" (code %d)", code)
	}
	fail(w, status, msg)
}

// AddEvent registers an event as POST /_sandbox/events does, with base
// the marketplace's base URL (Config.BaseURL when set). It returns the
// token and the eventUrl.
func (m *Marketplace) AddEvent(base string, doc []byte) (token, eventURL string, err error) {
	base = or(m.cfg.BaseURL, strings.TrimSuffix(base, "/"))
	doc, err = withBaseURL(doc, base)
	if err != nil {
		return "", "", err
	}
	token = strings.ToLower(rand.Text())
	eventURL = base + appdirect.EventsPath + token
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events[token] = &event{doc: doc, eventURL: eventURL}
	return token, eventURL, nil
}

// Results returns every result document posted for token, in order.
func (m *Marketplace) Results(token string) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.events[token]; e != nil {
		return append([][]byte(nil), e.results...)
	}
	return nil
}

// EachEvent calls f with each event's token and how many results were
// posted for it.
func (m *Marketplace) EachEvent(f func(token string, results int)) {
	m.mu.Lock()
	counts := make(map[string]int, len(m.events))
	for tok, e := range m.events {
		counts[tok] = len(e.results)
	}
	m.mu.Unlock()
	for tok, n := range counts {
		f(tok, n)
	}
}

// withBaseURL checks that doc is a JSON object and sets
// marketplace.baseUrl to base when marketplace is an object; the rest is
// kept as it came.
func withBaseURL(doc []byte, base string) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil || top == nil {
		return nil, errors.New("the event must be a JSON object")
	}
	var mp map[string]json.RawMessage
	if raw, ok := top["marketplace"]; !ok || json.Unmarshal(raw, &mp) != nil || mp == nil {
		return doc, nil
	}
	mp["baseUrl"], _ = json.Marshal(base)
	top["marketplace"], _ = json.Marshal(mp)
	return json.Marshal(top)
}

// baseOf is the marketplace's base URL for a request that reached it.
func (m *Marketplace) baseOf(r *http.Request) string {
	if m.cfg.BaseURL != "" {
		return m.cfg.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (m *Marketplace) addEvent(w http.ResponseWriter, r *http.Request) {
	doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		fail(w, http.StatusRequestEntityTooLarge, "the event is larger than 1 MiB")
		return
	}
	token, eventURL, err := m.AddEvent(m.baseOf(r), doc)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": token, "eventUrl": eventURL})
}

// authed lets through a request signed with the consumer credentials or
// carrying a live token of /oauth2/token.
func (m *Marketplace) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			m.mu.Lock()
			exp, known := m.tokens[tok]
			m.mu.Unlock()
			if known && time.Now().Before(exp) {
				h(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			fail(w, http.StatusUnauthorized, "unknown or expired bearer token")
			return
		}
		if _, err := m.verify.Verify(r.Context(), r); err != nil {
			w.Header().Set("WWW-Authenticate", `OAuth realm="appdirect-sandbox"`)
			fail(w, http.StatusUnauthorized, "OAuth 1.0a: "+err.Error())
			return
		}
		h(w, r)
	}
}

func (m *Marketplace) lookup(w http.ResponseWriter, token string) *event {
	m.mu.Lock()
	e := m.events[token]
	m.mu.Unlock()
	if e == nil {
		fail(w, http.StatusNotFound, "no event with this token")
	}
	return e
}

func (m *Marketplace) fetch(w http.ResponseWriter, r *http.Request) {
	e := m.lookup(w, r.PathValue("token"))
	if e == nil {
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "application/json") {
		doc, err := toXML(e.doc)
		if err != nil {
			fail(w, http.StatusInternalServerError, "the event cannot be shown as XML: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusOK)
		w.Write(doc)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(e.doc)
}

func (m *Marketplace) result(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if m.lookup(w, token) == nil {
		return
	}
	doc, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		fail(w, http.StatusRequestEntityTooLarge, "the result is larger than 1 MiB")
		return
	}
	var res struct {
		Success *bool `json:"success"`
	}
	if json.Unmarshal(doc, &res) != nil || res.Success == nil {
		fail(w, http.StatusBadRequest, `the result must be a JSON object with a boolean "success"`)
		return
	}
	m.mu.Lock()
	e := m.events[token]
	if e != nil {
		e.results = append(e.results, doc)
		m.posts++
	}
	m.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (m *Marketplace) lastResult(w http.ResponseWriter, r *http.Request) {
	results := m.Results(r.PathValue("token"))
	if len(results) == 0 {
		fail(w, http.StatusNotFound, "no result posted for this token")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Sandbox-Result-Posts", strconv.Itoa(len(results)))
	w.WriteHeader(http.StatusOK)
	w.Write(results[len(results)-1])
}

type oauthError struct {
	Error string `json:"error"`
}

// token is the OAuth 2.0 client-credentials grant; the credentials come
// as HTTP Basic or in the form.
func (m *Marketplace) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request"})
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(m.cfg.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(m.cfg.ClientSecret)) != 1 {
		writeJSON(w, http.StatusUnauthorized, oauthError{"invalid_client"})
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, oauthError{"unsupported_grant_type"})
		return
	}
	tok, now := rand.Text(), time.Now()
	m.mu.Lock()
	if len(m.tokens) >= m.sweepAt { // doubling keeps the sweeps' cost per token flat
		for t, exp := range m.tokens {
			if !now.Before(exp) {
				delete(m.tokens, t)
			}
		}
		m.sweepAt = max(2*len(m.tokens), 1024)
	}
	m.tokens[tok] = now.Add(m.cfg.TokenTTL)
	m.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "bearer", "expires_in": int64(m.cfg.TokenTTL / time.Second),
		"scope": r.PostForm.Get("scope"),
	})
}

// NotifyReply is what the service answered a notification.
type NotifyReply struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"` // the reply's JSON, or a JSON string of its text
}

// Notify sends AppDirect's notification of the event token to the
// service's event URL serviceURL: GET serviceURL?eventUrl=…, signed with
// the consumer credentials (or carrying NotifyToken or NotifyBasic), and
// returns the service's reply. It follows no redirect.
func (m *Marketplace) Notify(ctx context.Context, serviceURL, token string) (NotifyReply, error) {
	m.mu.Lock()
	e := m.events[token]
	m.mu.Unlock()
	if e == nil {
		return NotifyReply{}, errNoEvent
	}
	u, err := url.Parse(serviceURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return NotifyReply{}, errBadURL
	}
	q := u.RawQuery
	if q != "" {
		q += "&"
	}
	u.RawQuery = q + "eventUrl=" + url.QueryEscape(e.eventURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return NotifyReply{}, err
	}
	switch {
	case m.cfg.NotifyToken != "":
		req.Header.Set("Authorization", "Bearer "+m.cfg.NotifyToken)
	case m.cfg.NotifyBasic != "":
		user, pass, _ := strings.Cut(m.cfg.NotifyBasic, ":")
		req.SetBasicAuth(user, pass)
	default:
		if err := appdirect.Sign(req, m.cfg.ConsumerKey, m.cfg.ConsumerSecret, time.Now(), ""); err != nil {
			return NotifyReply{}, err
		}
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return NotifyReply{}, fmt.Errorf("the service did not answer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return NotifyReply{}, fmt.Errorf("reading the service's reply: %w", err)
	}
	reply := NotifyReply{Status: resp.StatusCode, Body: body}
	if !json.Valid(body) {
		reply.Body, _ = json.Marshal(string(body))
	}
	return reply, nil
}

var (
	errNoEvent = errors.New("no event with this token")
	errBadURL  = errors.New("url must be the service's absolute http or https event URL")
)

func (m *Marketplace) notify(w http.ResponseWriter, r *http.Request) {
	var in struct {
		URL   string `json:"url"`
		Token string `json:"token"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fail(w, http.StatusBadRequest, `want {"url": SERVICE_EVENT_URL, "token": TOKEN}: `+err.Error())
		return
	}
	reply, err := m.Notify(r.Context(), in.URL, in.Token)
	switch {
	case errors.Is(err, errNoEvent):
		fail(w, http.StatusNotFound, err.Error())
	case errors.Is(err, errBadURL):
		fail(w, http.StatusBadRequest, err.Error())
	case err != nil:
		fail(w, http.StatusBadGateway, err.Error())
	default:
		writeJSON(w, http.StatusOK, reply)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fail answers the sandbox's error document, its code the status's name
// in AppDirect's style ("NOT_FOUND").
func fail(w http.ResponseWriter, status int, msg string) {
	code := strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_"))
	writeJSON(w, status, map[string]string{"code": code, "message": msg})
}

// toXML shows a JSON object as AppDirect's XML would: <event> holding an
// element per key, in order, an array as the key's element repeated.
func toXML(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if err := xmlValue(&b, dec, "event"); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func xmlValue(b *bytes.Buffer, dec *json.Decoder, name string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	name = xmlName(name)
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			for dec.More() {
				if err := xmlValue(b, dec, name); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		}
		b.WriteString("<" + name + ">")
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			if err := xmlValue(b, dec, k.(string)); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return err
		}
		b.WriteString("</" + name + ">")
	case nil:
		b.WriteString("<" + name + "/>")
	default:
		b.WriteString("<" + name + ">")
		xml.EscapeText(b, []byte(fmt.Sprint(t)))
		b.WriteString("</" + name + ">")
	}
	return nil
}

// xmlName keeps letters, digits, "_", "-" and "."; anything else is "_",
// and a name that would not start with a letter or "_" gets one.
func xmlName(s string) string {
	var b strings.Builder
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_':
		case (c >= '0' && c <= '9' || c == '-' || c == '.') && i > 0:
		case c >= '0' && c <= '9' || c == '-' || c == '.':
			b.WriteByte('_')
		default:
			c = '_'
		}
		b.WriteRune(c)
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
