package qbdapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// setup starts a fake QBD Connect serving handler and returns its URL with
// a path prefix, to check that the client keeps the part before
// /qbdconnect-api/.
func setup(t *testing.T, handler http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv.URL + "/base"
}

// newClient returns a client whose retries wait at most 5ms.
func newClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	// A transport of its own: httptest.Server.Close closes the idle
	// connections of http.DefaultTransport, which would cut the parallel
	// tests' connections from under them.
	own := WithHTTPClient(&http.Client{Transport: &http.Transport{}})
	c, err := New(url, append([]Option{own, WithRetry(3, time.Millisecond, 5*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		opts []Option
		want string
	}{
		{"", nil, "base URL"},
		{"qbd.example.com", nil, "base URL"},
		{"ftp://qbd.example.com", nil, "base URL"},
		{"https://", nil, "base URL"},
		{"https://qbd.example.com?x=1", nil, "no query"},
		{"https://qbd.example.com/qbdconnect-api/v1", nil, "part before"},
		{"https://qbd.example.com", []Option{WithAPIVersion("")}, "API version"},
		{"https://qbd.example.com", []Option{WithAPIVersion("v1/x")}, "API version"},
		{"https://qbd.example.com", []Option{WithToken("a\nb")}, "token"},
		{"https://qbd.example.com", []Option{WithHTTPClient(nil)}, "WithHTTPClient"},
		{"https://qbd.example.com", []Option{WithLogger(nil)}, "WithLogger"},
		{"https://qbd.example.com", []Option{WithRetry(0, 0, 0)}, "WithRetry"},
		{"https://qbd.example.com", []Option{WithRetry(3, time.Second, time.Millisecond)}, "WithRetry"},
	} {
		t.Run(tc.url+tc.want, func(t *testing.T) {
			_, err := New(tc.url, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || envName.MatchString(err.Error()) {
				t.Errorf("New(%q) = %v, want an error naming %s", tc.url, err, tc.want)
			}
		})
	}
	if _, err := New("https://qbd.example.com/api/", WithAPIVersion("v2"), WithRetry(1, 0, 0)); err != nil {
		t.Errorf("New: %v", err)
	}
}

const (
	customerJSON = `{"id":"c1","organizationId":"o1","gatewayCustomerId":"cus_1","subscriptionId":"sub_1","name":"Acme",
		"address":{"street1":"1 Main St","city":"Albany","state":"NY","postalCode":"12207"},
		"primaryBillingContact":{"firstName":"Ann","lastName":"Lee","email":"ann@example.com"},
		"qbdInstances":[]}`
	instanceJSON = `{"instanceId":"i1","name":"Books","customerId":"c1",
		"contact":{"firstName":"Ann","lastName":"Lee","email":"ann@example.com"},
		"frequencyInMinutes":60,"fileId":"f-1","validated":false,"sla":{"supportHours":2,"transactionLimit":1000,"defaultHourlyRate":95.5},
		"dateCreated":"2025-01-02"}`
	subscriptionJSON = `{"subscriptionId":"sub_1","productId":"prod_qbd","quantity":3,"customerId":"c1","status":"active","dateCreated":"2025-01-02"}`
	productJSON      = `{"id":"prod_qbd","name":"QBD Connect","active":true}`
)

var (
	customer = Customer{
		ID: "c1", OrganizationID: "o1", GatewayCustomerID: "cus_1", SubscriptionID: "sub_1", Name: "Acme",
		Address:               &Address{Street1: "1 Main St", City: "Albany", State: "NY", PostalCode: "12207"},
		PrimaryBillingContact: BillingContact{FirstName: "Ann", LastName: "Lee", Email: "ann@example.com"},
		QBDInstances:          []Instance{},
	}
	instance = Instance{
		InstanceID: "i1", Name: "Books", CustomerID: "c1",
		Contact:            Contact{FirstName: "Ann", LastName: "Lee", Email: "ann@example.com"},
		FrequencyInMinutes: 60, FileID: "f-1",
		SLA:         &SLA{SupportHours: 2, TransactionLimit: 1000, DefaultHourlyRate: 95.5},
		DateCreated: "2025-01-02",
	}
	subscription = Subscription{SubscriptionID: "sub_1", ProductID: "prod_qbd", Quantity: 3, CustomerID: "c1", Status: StatusActive, DateCreated: "2025-01-02"}
	product      = Product{ID: "prod_qbd", Name: "QBD Connect", Active: true}
)

// TestRoutes checks each call's request (method, escaped path, query,
// headers, body) and its decoding of the reply.
func TestRoutes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, method, path, query string // path under /base/qbdconnect-api/v1
		wantBody, reply           string // wantBody "" means no body
		status                    int    // 0: 200
		call                      func(*Client) (any, error)
		want                      any
	}{
		{
			name: "ListCustomers", method: "GET", path: "/customers", query: "gatewayCustomerId=cus_1",
			reply: "[" + customerJSON + "]",
			call:  func(c *Client) (any, error) { return c.ListCustomers(ctx, CustomerQuery{GatewayCustomerID: "cus_1"}) },
			want:  []Customer{customer},
		},
		{
			name: "ListCustomers all", method: "GET", path: "/customers",
			reply: "[]",
			call:  func(c *Client) (any, error) { return c.ListCustomers(ctx, CustomerQuery{}) },
			want:  []Customer{},
		},
		{
			name: "ListCustomers single object", method: "GET", path: "/customers", query: "gatewayCustomerId=cus_1",
			reply: customerJSON,
			call:  func(c *Client) (any, error) { return c.ListCustomers(ctx, CustomerQuery{GatewayCustomerID: "cus_1"}) },
			want:  []Customer{customer},
		},
		{
			name: "FindCustomer", method: "GET", path: "/customers", query: "gatewayCustomerId=cus_1",
			reply: "[" + customerJSON + "]",
			call:  func(c *Client) (any, error) { return c.FindCustomer(ctx, "cus_1") },
			want:  &customer,
		},
		{
			name: "CreateCustomer", method: "POST", path: "/customers", status: 201,
			wantBody: `{"gatewayCustomerId":"cus_1","name":"Acme","primaryBillingContact":{"email":"ann@example.com"}}`,
			reply:    customerJSON,
			call: func(c *Client) (any, error) {
				return c.CreateCustomer(ctx, Customer{GatewayCustomerID: "cus_1", Name: "Acme", PrimaryBillingContact: BillingContact{Email: "ann@example.com"}})
			},
			want: &customer,
		},
		{
			name: "GetCustomer escapes the id", method: "GET", path: "/customers/c%2F1%20x",
			reply: customerJSON,
			call:  func(c *Client) (any, error) { return c.GetCustomer(ctx, "c/1 x") },
			want:  &customer,
		},
		{
			name: "ListInstances", method: "GET", path: "/instances", query: "customerId=c1",
			reply: "[" + instanceJSON + "]",
			call:  func(c *Client) (any, error) { return c.ListInstances(ctx, "c1") },
			want:  []Instance{instance},
		},
		{
			name: "CreateInstance", method: "POST", path: "/instances",
			wantBody: `{"name":"Books","customerId":"c1","contact":{"firstName":"Ann","lastName":"Lee","email":"ann@example.com"},
				"sla":{"supportHours":0,"transactionLimit":0,"defaultHourlyRate":0}}`,
			reply: instanceJSON,
			call: func(c *Client) (any, error) {
				return c.CreateInstance(ctx, Instance{Name: "Books", CustomerID: "c1", Contact: instance.Contact, SLA: &SLA{}})
			},
			want: &instance,
		},
		{
			name: "GetInstance", method: "GET", path: "/instances/i1",
			reply: instanceJSON,
			call:  func(c *Client) (any, error) { return c.GetInstance(ctx, "i1") },
			want:  &instance,
		},
		{
			name: "UpdateInstance", method: "PUT", path: "/instances/i1",
			wantBody: `{"name":"Books","password":"pw","qbdPath":"C:\\books.qbw","frequencyInMinutes":15}`,
			reply:    instanceJSON,
			call: func(c *Client) (any, error) {
				return c.UpdateInstance(ctx, "i1", InstanceUpdate{Name: "Books", Password: "pw", QBDPath: `C:\books.qbw`, FrequencyInMinutes: 15})
			},
			want: &instance,
		},
		{
			name: "PatchInstance", method: "PATCH", path: "/instances/i1", status: 204,
			wantBody: `{"validated":true,"frequencyInMinutes":30,"tier":null}`,
			call: func(c *Client) (any, error) {
				yes, every := true, 30
				return nil, c.PatchInstance(ctx, "i1", InstancePatch{Validated: &yes, FrequencyInMinutes: &every, Extra: map[string]json.RawMessage{"tier": nil}})
			},
		},
		{
			name: "DeleteInstance", method: "DELETE", path: "/instances/i1", query: "projectId=p9",
			reply: `{}`,
			call:  func(c *Client) (any, error) { return nil, c.DeleteInstance(ctx, "i1", "p9") },
		},
		{
			name: "DeleteInstance without project", method: "DELETE", path: "/instances/i1", status: 204,
			call: func(c *Client) (any, error) { return nil, c.DeleteInstance(ctx, "i1", "") },
		},
		{
			name: "CreateSubscription", method: "POST", path: "/subscriptions",
			wantBody: `{"subscriptionId":"sub_1","productId":"prod_qbd","quantity":3,"customerId":"c1"}`,
			reply:    subscriptionJSON,
			call: func(c *Client) (any, error) {
				return c.CreateSubscription(ctx, Subscription{SubscriptionID: "sub_1", ProductID: "prod_qbd", Quantity: 3, CustomerID: "c1"})
			},
			want: &subscription,
		},
		{
			name: "GetSubscription", method: "GET", path: "/subscriptions/sub_1",
			reply: subscriptionJSON,
			call:  func(c *Client) (any, error) { return c.GetSubscription(ctx, "sub_1") },
			want:  &subscription,
		},
		{
			name: "UpdateSubscription cancel sends quantity 0", method: "PUT", path: "/subscriptions/sub_1",
			wantBody: `{"subscriptionId":"sub_1","productId":"prod_qbd","quantity":0,"customerId":"c1","status":"canceled","dateCreated":"2025-01-02"}`,
			reply:    subscriptionJSON,
			call: func(c *Client) (any, error) {
				s := subscription
				s.Status, s.Quantity = StatusCanceled, 0
				return c.UpdateSubscription(ctx, "sub_1", s)
			},
			want: &subscription,
		},
		{
			name: "ListProducts", method: "GET", path: "/products",
			reply: "[" + productJSON + "]",
			call:  func(c *Client) (any, error) { return c.ListProducts(ctx) },
			want:  []Product{product},
		},
		{
			name: "GetProduct", method: "GET", path: "/products/prod_qbd",
			reply: productJSON,
			call:  func(c *Client) (any, error) { return c.GetProduct(ctx, "prod_qbd") },
			want:  &product,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			url := setup(t, func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				body, _ := io.ReadAll(r.Body)
				if r.Method != tc.method || r.URL.EscapedPath() != "/base/qbdconnect-api/v1"+tc.path || r.URL.RawQuery != tc.query {
					t.Errorf("request %s %s?%s, want %s /base/qbdconnect-api/v1%s?%s", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, tc.method, tc.path, tc.query)
				}
				if got := r.Header.Get("Authorization"); got != "Bearer tok-1" {
					t.Errorf("Authorization = %q", got)
				}
				if got := r.Header.Get("Accept"); got != "application/json" {
					t.Errorf("Accept = %q", got)
				}
				switch {
				case tc.wantBody == "" && len(body) != 0:
					t.Errorf("body %s, want none", body)
				case tc.wantBody != "" && !sameJSON(t, string(body), tc.wantBody):
					t.Errorf("body\n %s\nwant\n %s", body, tc.wantBody)
				case tc.wantBody != "" && r.Header.Get("Content-Type") != "application/json":
					t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
				}
				reply(w, cmp(tc.status, 200), tc.reply)
			})
			c := newClient(t, url, WithToken("tok-1"))
			got, err := tc.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n %+v\nwant\n %+v", got, tc.want)
			}
			if calls.Load() != 1 {
				t.Errorf("calls = %d, want 1", calls.Load())
			}
		})
	}
}

func cmp(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func TestNoTokenNoHeader(t *testing.T) {
	t.Parallel()
	url := setup(t, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Authorization"]; ok {
			t.Errorf("Authorization sent without WithToken")
		}
		reply(w, 200, "[]")
	})
	c := newClient(t, url, WithAPIVersion("v7"))
	if _, err := c.ListProducts(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFindCustomer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, reply string
		status      int
		want        error
	}{
		{"none", "[]", 200, ErrNotFound},
		{"404", `{"status":404,"message":"no customer"}`, 404, ErrNotFound},
		{"two", "[" + customerJSON + "," + customerJSON + "]", 200, ErrConflict},
		{"one", "[" + customerJSON + "]", 200, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := setup(t, func(w http.ResponseWriter, r *http.Request) { reply(w, tc.status, tc.reply) })
			c := newClient(t, url)
			cu, err := c.FindCustomer(context.Background(), "cus_1")
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var sc interface{ StatusCode() int }
			if err != nil && (!errors.As(err, &sc) || sc.StatusCode() != tc.status) {
				t.Errorf("err = %v, want its HTTP status %d through StatusCode", err, tc.status)
			}
			if err == nil && cu.ID != "c1" {
				t.Errorf("customer %+v", cu)
			}
		})
	}
}

// TestBadArguments: ids the server could misread are refused before
// anything is sent.
func TestBadArguments(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	url := setup(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	c := newClient(t, url)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"GetCustomer empty":   func() error { _, err := c.GetCustomer(ctx, ""); return err },
		"GetInstance dot-dot": func() error { _, err := c.GetInstance(ctx, ".."); return err },
		"DeleteInstance dot":  func() error { return c.DeleteInstance(ctx, ".", "") },
		"ListInstances empty": func() error { _, err := c.ListInstances(ctx, ""); return err },
		"FindCustomer empty":  func() error { _, err := c.FindCustomer(ctx, ""); return err },
		"UpdateSubscription":  func() error { _, err := c.UpdateSubscription(ctx, "", Subscription{}); return err },
		"GetProduct empty":    func() error { _, err := c.GetProduct(ctx, ""); return err },
		"PatchInstance empty": func() error { return c.PatchInstance(ctx, "", InstancePatch{}) },
		"GetSubscription ..":  func() error { _, err := c.GetSubscription(ctx, ".."); return err },
		"bad Extra not sent": func() error {
			_, err := c.CreateCustomer(ctx, Customer{Extra: map[string]json.RawMessage{"x": json.RawMessage("{")}})
			return err
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		} else if name != "bad Extra not sent" && !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: err = %v, want ErrBadRequest", name, err)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d requests sent, want none", calls.Load())
	}
}

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status  int
		body    string
		want    error
		message string
	}{
		{400, `{"status":400,"error":"Bad Request","message":"address.state: at most 2 characters"}`, ErrBadRequest, "address.state: at most 2 characters"},
		{422, `{"error":"primaryBillingContact.email is required"}`, ErrBadRequest, "primaryBillingContact.email is required"},
		{401, `Unauthorized`, ErrUnauthorized, "Unauthorized"},
		{403, ``, ErrUnauthorized, ""},
		{404, `{"status":404,"message":"no customer c9"}`, ErrNotFound, "no customer c9"},
		{409, `{"message":"exists"}`, ErrConflict, "exists"},
		{408, ``, ErrTransient, ""},
		{429, ``, ErrTransient, ""},
		{500, `<html>oops</html>`, ErrTransient, ""},
		{503, `{"message":"down"}`, ErrTransient, "down"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			t.Parallel()
			url := setup(t, func(w http.ResponseWriter, r *http.Request) { reply(w, tc.status, tc.body) })
			c := newClient(t, url, WithRetry(1, 0, 0))
			_, err := c.GetCustomer(context.Background(), "c9")
			var ae *APIError
			if !errors.As(err, &ae) || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want an *APIError matching %v", err, tc.want)
			}
			var sc interface{ StatusCode() int }
			if !errors.As(err, &sc) || sc.StatusCode() != tc.status {
				t.Errorf("err = %v, want its status %d through StatusCode", err, tc.status)
			}
			if ae.Status != tc.status || ae.Method != "GET" || ae.Path != "/customers/c9" || ae.Body != tc.body || ae.Message() != tc.message {
				t.Errorf("APIError %+v (message %q)", ae, ae.Message())
			}
			for _, other := range []error{ErrNotFound, ErrBadRequest, ErrUnauthorized, ErrConflict, ErrTransient} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err also matches %v", other)
				}
			}
			if !strings.Contains(err.Error(), "qbd GET /customers/c9: HTTP "+fmt.Sprint(tc.status)) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("Error() = %q", err)
			}
		})
	}
}

func TestErrorBodyLimited(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 3*maxErrorBody)
	url := setup(t, func(w http.ResponseWriter, r *http.Request) { reply(w, 400, `{"message":"`+big+`"}`) })
	c := newClient(t, url)
	_, err := c.GetProduct(context.Background(), "p")
	var ae *APIError
	if !errors.As(err, &ae) || len(ae.Body) != maxErrorBody {
		t.Fatalf("err = %.100v, want an APIError with a %d-byte body", err, maxErrorBody)
	}
	if len(err.Error()) > 2*maxMessage {
		t.Errorf("Error() is %d bytes long", len(err.Error()))
	}
}

func TestInvalidResponse(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"not json", "null", `{"id":3}`, ""} {
		t.Run(body, func(t *testing.T) {
			t.Parallel()
			url := setup(t, func(w http.ResponseWriter, r *http.Request) { reply(w, 200, body) })
			c := newClient(t, url)
			_, err := c.GetProduct(context.Background(), "p")
			var sc interface{ StatusCode() int }
			if !errors.Is(err, ErrInvalidResponse) || !errors.As(err, &sc) || sc.StatusCode() != 200 {
				t.Errorf("err = %v, want ErrInvalidResponse with status 200", err)
			}
		})
	}
}

// TestNoRedirect: a create answered with a redirect is not followed (the
// token and the body never reach its target) and is an ErrInvalidResponse
// with its status: the server may or may not have created the customer.
func TestNoRedirect(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(target.Close)
	for _, status := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			url := setup(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target.URL+"/customers", status) })
			_, err := newClient(t, url, WithToken("tok-1")).CreateCustomer(context.Background(), Customer{Name: "Acme"})
			var sc interface{ StatusCode() int }
			if !errors.Is(err, ErrInvalidResponse) || !errors.As(err, &sc) || sc.StatusCode() != status {
				t.Errorf("err = %v, want ErrInvalidResponse with status %d", err, status)
			}
			if !strings.Contains(err.Error(), strings.TrimPrefix(target.URL, "http://")) {
				t.Errorf("err %q does not name the redirect's host", err)
			}
		})
	}
	t.Cleanup(func() {
		if elsewhere.Load() != 0 {
			t.Errorf("the redirect target received %d requests", elsewhere.Load())
		}
	})
}

// envName is an environment variable's name: the library takes values,
// and the wiring that read them names the setting.
var envName = regexp.MustCompile(`\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b`)
