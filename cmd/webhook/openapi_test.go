package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/banking-marketplace/webhook/docs"
)

// The end-to-end tests of this package talk to the service through
// client (helpers_test.go) and http.DefaultClient. TestMain records every
// exchange they make and, once they pass, checks each one against
// docs/openapi.yaml: a request or a reply that the description does not
// describe fails the run, so the description cannot drift from the
// service.
func TestMain(m *testing.M) {
	rec := &recorder{}
	client.Transport = rec.wrap(client.Transport)
	http.DefaultClient.Transport = rec.wrap(http.DefaultTransport)
	code := m.Run()
	if code == 0 {
		if err := rec.check(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: docs/openapi.yaml does not describe what the end-to-end tests sent and got:\n"+err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// exchange is one request to the service and its reply, as sent and read.
type exchange struct {
	method, url string
	reqHeader   http.Header
	reqBody     []byte
	status      int
	respHeader  http.Header
	respBody    []byte
}

func (x exchange) String() string {
	return fmt.Sprintf("%s %s → %d %s", x.method, x.url, x.status, clip(x.respBody))
}

// recorder keeps every exchange that got a whole reply.
type recorder struct {
	mu        sync.Mutex
	exchanges []exchange
}

func (r *recorder) wrap(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return recording{r, next}
}

func (r *recorder) add(x exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exchanges = append(r.exchanges, x)
}

type recording struct {
	rec  *recorder
	next http.RoundTripper
}

// RoundTrip sends a copy of req with the same body and reads the whole
// reply before handing it back, so that what is checked is exactly what
// the test saw.
func (rt recording) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := rt.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	// A reply cut short (a process killed mid-reply) is the test's to
	// judge; only whole replies are checked.
	resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(respBody), errReader{err}))
	if err == nil {
		rt.rec.add(exchange{method: req.Method, url: req.URL.String(), reqHeader: req.Header.Clone(), reqBody: body,
			status: resp.StatusCode, respHeader: resp.Header.Clone(), respBody: respBody})
	}
	return resp, nil
}

// errReader ends a body with err (io.EOF when err is nil).
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
}

// check validates every exchange against the description and reports
// each way the description fails to describe one, once.
func (r *recorder) check() error {
	spec, err := loadSpec()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.exchanges) == 0 {
		if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
			return nil // a few tests chosen with -run may send nothing through the recorder
		}
		return errors.New("no exchange was recorded: the recording transport is not in the tests' path")
	}
	seen := map[string]bool{}
	var problems []string
	for _, x := range r.exchanges {
		if err := spec.check(x); err != nil {
			msg := clipText(err.Error(), 2000)
			if !seen[msg] {
				seen[msg] = true
				problems = append(problems, fmt.Sprintf("- %s\n  %s", x, strings.ReplaceAll(msg, "\n", "\n  ")))
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// spec is docs/openapi.yaml, loaded and routed.
type spec struct {
	doc    *openapi3.T
	router routers.Router
}

func loadSpec() (*spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docs.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml: routing: %w", err)
	}
	return &spec{doc: doc, router: router}, nil
}

// check validates one exchange. A request the description calls invalid
// (a bad body, no credentials) is described only when the service refused
// it with a 4xx that the operation lists; a reply is described when its
// status is listed and its headers and body match.
func (s *spec) check(x exchange) error {
	req, err := http.NewRequest(x.method, x.url, bytes.NewReader(x.reqBody))
	if err != nil {
		return err
	}
	req.Header = x.reqHeader.Clone()
	if len(x.reqBody) > 0 && req.Header.Get("Content-Type") == "" {
		// The service reads a body sent without a Content-Type as JSON, as
		// the description of the extension URL says.
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("the description has no operation %s %s (%v)", x.method, pathOf(x.url), err)
	}
	if route.Operation.Responses.Status(x.status) == nil {
		return fmt.Errorf("operation %s lists no reply %d", route.Operation.OperationID, x.status)
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: credentialsPresent}}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && (x.status < 400 || x.status >= 500) {
		return fmt.Errorf("the request is not one the description allows, yet the service answered %d: %v", x.status, err)
	}
	// The reply is checked against the request as sent, whatever the
	// request's own validity.
	req.Body = io.NopCloser(bytes.NewReader(x.reqBody))
	in.Request = req
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.status, Header: x.respHeader,
		Options: &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true}}
	out.SetBodyBytes(x.respBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("the reply does not match the description: %v", err)
	}
	return nil
}

// credentialsPresent accepts a security scheme when the request carries
// its credentials; whether they are right is the service's to say (401).
func credentialsPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	switch in.SecuritySchemeName {
	case "webhookSignature":
		if h.Get("webhook-signature") != "" {
			return nil
		}
	case "basicAuth":
		if strings.HasPrefix(h.Get("Authorization"), "Basic ") {
			return nil
		}
	case "bearerAuth":
		if strings.HasPrefix(h.Get("Authorization"), "Bearer ") {
			return nil
		}
	case "appDirectOAuth1":
		if strings.HasPrefix(h.Get("Authorization"), "OAuth ") {
			return nil
		}
	default:
		return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
	}
	return fmt.Errorf("no %s credentials", in.SecuritySchemeName)
}

func pathOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Path
}

func clip(b []byte) string { return clipText(string(b), 300) }

func clipText(s string, most int) string {
	if len(s) > most {
		return s[:most] + "…"
	}
	return s
}

// TestOpenAPIServed: the service serves the description it embeds, and it
// lists every route the service answers on (the routes table below is
// what handlers.New registers).
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{"API_TOKENS": apiToken})
	resp, err := client.Get(svc.url + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, docs.OpenAPI) {
		t.Fatalf("GET /openapi.yaml = %d, %d bytes; want 200 and docs/openapi.yaml (%d bytes)", resp.StatusCode, len(b), len(docs.OpenAPI))
	}
	s, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range []struct{ method, path string }{
		{http.MethodPost, "/marketplace/{extension}"},
		{http.MethodGet, "/v1/subscriptions/{subscription_id}"},
		{http.MethodGet, "/v1/subscriptions"},
		{http.MethodGet, "/v1/deliveries"},
		{http.MethodGet, "/v1/deliveries/{key}"},
		{http.MethodGet, "/healthz"},
		{http.MethodGet, "/readyz"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/openapi.yaml"},
	} {
		if p := s.doc.Paths.Value(route.path); p == nil || p.GetOperation(route.method) == nil {
			t.Errorf("docs/openapi.yaml does not describe %s %s", route.method, route.path)
		}
	}
}

// TestSpecCheckRefuses: the checker itself fails what the description does
// not describe, so that TestMain's check cannot pass by accepting
// everything.
func TestSpecCheckRefuses(t *testing.T) {
	s, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	json := http.Header{"Content-Type": {"application/json"}}
	order := readFixture(t, "subscription-order.json")
	tests := []struct {
		name string
		x    exchange
		ok   bool
	}{
		{"an order answered success", exchange{method: "POST", url: "http://h/marketplace/p", reqHeader: json, reqBody: order,
			status: 200, respHeader: json, respBody: []byte(`{"success":true,"accountIdentifier":"1"}`)}, true},
		{"a bad body refused", exchange{method: "POST", url: "http://h/marketplace/p", reqHeader: json, reqBody: []byte(`{}`),
			status: 400, respHeader: json, respBody: []byte(`{"success":false,"errorCode":"INVALID_RESPONSE","message":"m"}`)}, true},
		{"a bad body answered success", exchange{method: "POST", url: "http://h/marketplace/p", reqHeader: json, reqBody: []byte(`{}`),
			status: 200, respHeader: json, respBody: []byte(`{"success":true,"accountIdentifier":"1"}`)}, false},
		{"a reply with a field too many", exchange{method: "POST", url: "http://h/marketplace/p", reqHeader: json, reqBody: order,
			status: 200, respHeader: json, respBody: []byte(`{"success":true,"accountIdentifier":"1","extra":1}`)}, false},
		{"an error code that does not exist", exchange{method: "POST", url: "http://h/marketplace/p", reqHeader: json, reqBody: order,
			status: 200, respHeader: json, respBody: []byte(`{"success":false,"errorCode":"OOPS","message":"m"}`)}, false},
		{"a status the operation does not list", exchange{method: "POST", url: "http://h/marketplace/p", reqHeader: json, reqBody: order,
			status: 418, respHeader: json, respBody: []byte(`{"success":false,"errorCode":"UNKNOWN_ERROR","message":"m"}`)}, false},
		{"a route that is not described", exchange{method: "GET", url: "http://h/nothing", status: 404, respHeader: json,
			respBody: []byte(`{"success":false,"errorCode":"CONFIGURATION_ERROR","message":"m"}`)}, false},
		{"the read API without a token answered 200", exchange{method: "GET", url: "http://h/v1/subscriptions/s", status: 200, respHeader: json,
			respBody: []byte(`{"subscription_id":"s"}`)}, false},
		{"a 401 without WWW-Authenticate", exchange{method: "GET", url: "http://h/v1/subscriptions/s", status: 401, respHeader: json,
			respBody: []byte(`{"message":"m"}`)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.x.reqHeader == nil {
				tt.x.reqHeader = http.Header{}
			}
			err := s.check(tt.x)
			if (err == nil) != tt.ok {
				t.Errorf("check = %v; want ok %v", err, tt.ok)
			}
		})
	}
}
