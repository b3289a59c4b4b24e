package qbdsandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// harness is the part mounted on a ServeMux through a wrap that counts
// calls per route name, as internal/sandbox does.
type harness struct {
	sb  *Sandbox
	mux *http.ServeMux

	mu    sync.Mutex
	calls map[string]int
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{sb: New(), mux: http.NewServeMux(), calls: map[string]int{}}
	h.sb.now = func() time.Time { return time.Date(2025, 3, 4, 23, 0, 0, 0, time.FixedZone("x", -5*3600)) }
	h.sb.Register(h.mux, func(route string, next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			h.calls[route]++
			h.mu.Unlock()
			next(w, r)
		}
	})
	return h
}

// do sends a request to /qbdconnect-api/v1 + path; body "" sends none.
func (h *harness) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, "/qbdconnect-api/v1"+path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.mux.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusMethodNotAllowed && ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return rec.Code, rec.Body.Bytes()
}

// call sends a request, wants status, and decodes the reply.
func (h *harness) call(t *testing.T, method, path, body string, status int) map[string]any {
	t.Helper()
	code, b := h.do(t, method, path, body)
	if code != status {
		t.Fatalf("%s %s = %d %s, want %d", method, path, code, b, status)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: reply is not a JSON object: %s", method, path, b)
	}
	return out
}

// try is call for other goroutines: it reports with t.Errorf.
func (h *harness) try(t *testing.T, method, path, body string, status int) map[string]any {
	code, b := h.do(t, method, path, body)
	var out map[string]any
	if code != status || json.Unmarshal(b, &out) != nil {
		t.Errorf("%s %s = %d %s, want %d", method, path, code, b, status)
	}
	return out
}

func (h *harness) list(t *testing.T, path string) []any {
	t.Helper()
	code, b := h.do(t, "GET", path, "")
	var out []any
	if code != 200 || json.Unmarshal(b, &out) != nil || out == nil {
		t.Fatalf("GET %s = %d %s, want 200 and an array", path, code, b)
	}
	return out
}

func (h *harness) stats(t *testing.T) Stats {
	t.Helper()
	st, ok := h.sb.Stats().(Stats)
	if !ok {
		t.Fatalf("Stats() is %T", h.sb.Stats())
	}
	return st
}

const (
	customerBody = `{"name":"Acme","gatewayCustomerId":"cus_1",
		"address":{"street1":"1 Main St","city":"Albany","state":"NY","postalCode":"12207"},
		"primaryBillingContact":{"firstName":"Ann","lastName":"Lee","email":"ann@example.com"}}`
	contactJSON = `{"firstName":"Ann","lastName":"Lee","email":"ann@example.com"}`
)

func (h *harness) customer(t *testing.T, gateway string) string {
	t.Helper()
	c := h.call(t, "POST", "/customers", strings.Replace(customerBody, "cus_1", gateway, 1), 201)
	return c["id"].(string)
}

func (h *harness) instance(t *testing.T, customerID string) map[string]any {
	t.Helper()
	return h.call(t, "POST", "/instances", fmt.Sprintf(`{"name":"Books","customerId":%q,"contact":%s}`, customerID, contactJSON), 201)
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestRoutes: every route is mounted under its name, any v<digits>
// version works, and others get 404 in the error shape.
func TestRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	names := h.sb.Routes()
	if len(names) != 14 || h.sb.Name() != "qbd" {
		t.Fatalf("Name %q, Routes %v", h.sb.Name(), names)
	}
	for _, name := range names {
		method, path, _ := strings.Cut(strings.TrimPrefix(name, "qbd."), " ")
		path = strings.ReplaceAll(path, "{id}", "x")
		req := httptest.NewRequest(method, "/qbdconnect-api/v12"+path, strings.NewReader("{}"))
		h.mux.ServeHTTP(httptest.NewRecorder(), req)
		if h.calls[name] != 1 {
			t.Errorf("%s %s: counted %v, want one call of %q", method, path, h.calls, name)
		}
	}
	for _, v := range []string{"x1", "v", "V1", "v1a"} {
		req := httptest.NewRequest("GET", "/qbdconnect-api/"+v+"/products", nil)
		rec := httptest.NewRecorder()
		h.mux.ServeHTTP(rec, req)
		var e apiError
		if rec.Code != 404 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Status != 404 || !strings.Contains(e.Message, "version") {
			t.Errorf("version %q: %d %s, want 404 naming the version", v, rec.Code, rec.Body)
		}
	}
}

func TestCustomerValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		status     int
		want       []string // in the message
	}{
		{"valid", customerBody, 201, nil},
		{"only an email", `{"primaryBillingContact":{"email":"a@example.com"}}`, 201, nil},
		{"no billing contact", `{"name":"Acme"}`, 400, []string{"primaryBillingContact is required"}},
		{"null billing contact", `{"primaryBillingContact":null}`, 400, []string{"primaryBillingContact is required"}},
		{"no email", `{"primaryBillingContact":{"firstName":"Ann"}}`, 400, []string{"primaryBillingContact.email is required"}},
		{"state too long", `{"primaryBillingContact":{"email":"a@x"},"address":{"street1":"1","city":"A","state":"NYC","postalCode":"1"}}`, 400,
			[]string{"address.state must be at most 2 characters (got 3)"}},
		{"state of 2 runes in 4 bytes", `{"primaryBillingContact":{"email":"a@x"},"address":{"street1":"1","city":"A","state":"ÖÜ","postalCode":"1"}}`, 201, nil},
		{"postal code too long", `{"primaryBillingContact":{"email":"a@x"},"address":{"street1":"1","city":"A","state":"NY","postalCode":"12345-67890"}}`, 400,
			[]string{"address.postalCode must be at most 10 characters (got 11)"}},
		{"address incomplete", `{"primaryBillingContact":{"email":"a@x"},"address":{"street2":"x"}}`, 400,
			[]string{"address.street1 is required", "address.city is required", "address.state is required", "address.postalCode is required"}},
		{"instances inline", `{"primaryBillingContact":{"email":"a@x"},"qbdInstances":[{"name":"x"}]}`, 400, []string{"qbdInstances", "POST /instances"}},
		{"wrong type", `{"primaryBillingContact":{"email":"a@x"},"name":5}`, 400, []string{"name must be a string (got number)"}},
		{"nested wrong type", `{"primaryBillingContact":{"email":["a"]}}`, 400, []string{"primaryBillingContact.email must be a string (got array)"}},
		{"array body", `[]`, 400, []string{"must be a JSON object"}},
		{"empty body", ``, 400, []string{"must be a JSON object"}},
		{"broken JSON", `{"name":`, 400, []string{"not valid JSON"}},
		{"trailing data", `{"primaryBillingContact":{"email":"a@x"}} {}`, 400, []string{"not valid JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			out := h.call(t, "POST", "/customers", tc.body, tc.status)
			if tc.status != 400 {
				return
			}
			msg, _ := out["message"].(string)
			if out["status"] != float64(400) || out["error"] != "Bad Request" {
				t.Errorf("error shape %v", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not say %q", msg, w)
				}
			}
			if st := h.stats(t); st.Customers != 0 {
				t.Errorf("a refused customer was stored: %+v", st)
			}
		})
	}
}

func TestCustomerLookups(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	first := h.customer(t, "cus_1")
	second := h.customer(t, "cus_2")
	c := h.call(t, "GET", "/customers/"+first, "", 200)
	if c["id"] != first || c["gatewayCustomerId"] != "cus_1" || !uuidRE.MatchString(first) || first == second {
		t.Errorf("customer %v (ids %q, %q)", c, first, second)
	}
	if got := h.list(t, "/customers?gatewayCustomerId=cus_2"); len(got) != 1 || got[0].(map[string]any)["id"] != second {
		t.Errorf("by gatewayCustomerId: %v", got)
	}
	if got := h.list(t, "/customers?gatewayCustomerId=cus_none"); len(got) != 0 {
		t.Errorf("unknown gatewayCustomerId: %v", got)
	}
	if got := h.list(t, "/customers"); len(got) != 2 || got[0].(map[string]any)["id"] != first || got[1].(map[string]any)["id"] != second {
		t.Errorf("all customers, in creation order: %v", got)
	}
	h.call(t, "GET", "/customers?gatewayCustomerId=", "", 400)
	h.call(t, "GET", "/customers/nope", "", 404)
	dup := h.call(t, "POST", "/customers", customerBody, 409)
	if msg := dup["message"].(string); !strings.Contains(msg, "gatewayCustomerId") || !strings.Contains(msg, first) {
		t.Errorf("duplicate gatewayCustomerId: %q", msg)
	}
	if st := h.stats(t); st.Customers != 2 {
		t.Errorf("stats %+v, want 2 customers", st)
	}
}

func TestInstanceValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string // %s is a customer id
		status     int
		want       []string
	}{
		{"valid", `{"name":"B","customerId":%q,"contact":` + contactJSON + `}`, 201, nil},
		{"nothing", `{}`, 400, []string{"name is required", "customerId is required", "contact is required"}},
		{"contact incomplete", `{"name":"B","customerId":%q,"contact":{"phone":"1"}}`, 400,
			[]string{"contact.firstName is required", "contact.lastName is required", "contact.email is required"}},
		{"unknown customer", `{"name":"B","customerId":"c-none","contact":` + contactJSON + `}`, 400, []string{`customerId: no customer "c-none"`}},
		{"frequency 0", `{"name":"B","customerId":%q,"contact":` + contactJSON + `,"frequencyInMinutes":0}`, 400, []string{"frequencyInMinutes must be at least 1 (got 0)"}},
		{"frequency 1.5", `{"name":"B","customerId":%q,"contact":` + contactJSON + `,"frequencyInMinutes":1.5}`, 400, []string{"frequencyInMinutes must be an integer (got number 1.5)"}},
		{"sla incomplete", `{"name":"B","customerId":%q,"contact":` + contactJSON + `,"sla":{"supportHours":0}}`, 400,
			[]string{"sla.transactionLimit is required", "sla.defaultHourlyRate is required"}},
		{"sla limit not an integer", `{"name":"B","customerId":%q,"contact":` + contactJSON + `,"sla":{"supportHours":1,"transactionLimit":2.5,"defaultHourlyRate":3}}`, 400,
			[]string{"sla.transactionLimit must be an integer"}},
		{"validated not a bool", `{"name":"B","customerId":%q,"contact":` + contactJSON + `,"validated":"yes"}`, 400, []string{"validated must be true or false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			body := tc.body
			if strings.Contains(body, "%q") {
				body = fmt.Sprintf(body, h.customer(t, "cus_1"))
			}
			out := h.call(t, "POST", "/instances", body, tc.status)
			for _, w := range tc.want {
				if msg, _ := out["message"].(string); !strings.Contains(msg, w) {
					t.Errorf("message %q does not say %q", msg, w)
				}
			}
			if want := map[bool]int{true: 1}[tc.status == 201]; h.stats(t).Instances != want {
				t.Errorf("stats %+v, want %d instances", h.stats(t), want)
			}
		})
	}
}

func TestInstanceLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cust := h.customer(t, "cus_1")
	in := h.call(t, "POST", "/instances", fmt.Sprintf(`{"name":"Books","customerId":%q,"contact":%s,"instanceId":"mine","fileId":"mine","dateCreated":"1999-01-01"}`, cust, contactJSON), 201)
	id, _ := in["instanceId"].(string)
	if !uuidRE.MatchString(id) || !uuidRE.MatchString(in["fileId"].(string)) || in["fileId"] == id ||
		in["dateCreated"] != "2025-03-05" || in["frequencyInMinutes"] != float64(60) || in["validated"] != false {
		t.Errorf("created %v: want generated ids, today's UTC date, frequency 60", in)
	}
	other := h.instance(t, cust)
	if other["fileId"] == in["fileId"] {
		t.Errorf("two instances share fileId %v", in["fileId"])
	}
	if got := h.call(t, "GET", "/instances/"+id, "", 200); !reflect.DeepEqual(got, in) {
		t.Errorf("GET %v, want %v", got, in)
	}
	if got := h.list(t, "/instances?customerId="+cust); len(got) != 2 || got[0].(map[string]any)["instanceId"] != id {
		t.Errorf("list %v", got)
	}
	if got := h.list(t, "/instances?customerId=c-none"); len(got) != 0 {
		t.Errorf("unknown customer's list %v", got)
	}
	h.call(t, "GET", "/instances", "", 400)
	if c := h.call(t, "GET", "/customers/"+cust, "", 200); len(c["qbdInstances"].([]any)) != 2 {
		t.Errorf("customer's qbdInstances %v", c["qbdInstances"])
	}

	// PUT replaces name, password, qbdPath and frequency; the password is never shown.
	put := h.call(t, "PUT", "/instances/"+id, `{"name":"Ledger","password":"pw-s3cr3t","qbdPath":"C:\\q.qbw","frequencyInMinutes":15}`, 200)
	if put["name"] != "Ledger" || put["qbdPath"] != `C:\q.qbw` || put["frequencyInMinutes"] != float64(15) || put["fileId"] != in["fileId"] {
		t.Errorf("after PUT %v", put)
	}
	h.call(t, "PUT", "/instances/"+id, `{"name":"Ledger","contact":{}}`, 400)
	h.call(t, "PUT", "/instances/"+id, `{"qbdPath":"x"}`, 400)
	h.call(t, "PUT", "/instances/"+id, `{"name":"L","frequencyInMinutes":0}`, 400)
	h.call(t, "PUT", "/instances/nope", `{"name":"L"}`, 404)

	// PATCH merges; read-only fields and required ones stay.
	patched := h.call(t, "PATCH", "/instances/"+id, `{"validated":true,"contact":{"phone":"555"},"region":"us-east"}`, 200)
	contact := patched["contact"].(map[string]any)
	if patched["validated"] != true || contact["phone"] != "555" || contact["email"] != "ann@example.com" || patched["region"] != "us-east" || patched["name"] != "Ledger" {
		t.Errorf("after PATCH %v", patched)
	}
	for body, want := range map[string]string{
		`{"instanceId":"other"}`:           "instanceId cannot change",
		`{"customerId":null}`:              "customerId cannot change",
		`{"contact":{"email":null}}`:       "contact.email is required",
		`{"name":""}`:                      "name is required",
		`{"Name":"x"}`:                     "case-sensitive",
		`{"frequencyInMinutes":"often"}`:   "frequencyInMinutes must be an integer",
		`["not an object"]`:                "JSON object",
		`{"sla":{"supportHours":1}}`:       "sla.transactionLimit is required",
		`{"fileId":"f","dateCreated":"x"}`: "fileId cannot change; dateCreated cannot change",
	} {
		if out := h.call(t, "PATCH", "/instances/"+id, body, 400); !strings.Contains(out["message"].(string), want) {
			t.Errorf("PATCH %s: %v, want a message saying %q", body, out["message"], want)
		}
	}
	h.call(t, "PATCH", "/instances/"+id, `{"instanceId":`+fmt.Sprintf("%q", id)+`,"region":null,"frequencyInMinutes":null}`, 200)
	got := h.call(t, "GET", "/instances/"+id, "", 200)
	if _, ok := got["region"]; ok || got["frequencyInMinutes"] != float64(60) {
		t.Errorf("null did not remove region or reset the frequency: %v", got)
	}
	for _, b := range [][]byte{mustDo(t, h, "GET", "/instances/"+id), mustDo(t, h, "GET", "/customers/"+cust), mustDo(t, h, "GET", "/instances?customerId="+cust)} {
		if strings.Contains(string(b), "pw-s3cr3t") || strings.Contains(string(b), "password") {
			t.Errorf("a reply shows the password: %s", b)
		}
	}
	if st := h.stats(t); st.Instances != 2 {
		t.Errorf("stats %+v, want 2 instances", st)
	}

	// DELETE removes it; a second DELETE finds nothing.
	if out := h.call(t, "DELETE", "/instances/"+id+"?projectId=p1", "", 200); out["deleted"] != true || out["instanceId"] != id {
		t.Errorf("DELETE %v", out)
	}
	h.call(t, "GET", "/instances/"+id, "", 404)
	h.call(t, "DELETE", "/instances/"+id, "", 404)
	h.call(t, "PATCH", "/instances/"+id, `{}`, 404)
	if got := h.list(t, "/instances?customerId="+cust); len(got) != 1 {
		t.Errorf("list after DELETE %v", got)
	}
	if st := h.stats(t); st.Instances != 1 {
		t.Errorf("stats %+v, want 1 instance", st)
	}
}

func mustDo(t *testing.T, h *harness, method, path string) []byte {
	t.Helper()
	_, b := h.do(t, method, path, "")
	return b
}

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cust := h.customer(t, "cus_1")
	sub := h.call(t, "POST", "/subscriptions", fmt.Sprintf(`{"subscriptionId":"sub_A","productId":"prod_qbd","quantity":3,"customerId":%q}`, cust), 201)
	if sub["status"] != "active" || sub["quantity"] != float64(3) || sub["dateCreated"] != "2025-03-05" {
		t.Errorf("created %v", sub)
	}
	if st := h.stats(t); st.Subscriptions != 1 || st.Quantity != 3 {
		t.Errorf("stats %+v, want 1 subscription of quantity 3", st)
	}
	gen := h.call(t, "POST", "/subscriptions", `{"quantity":1}`, 201)
	if id, _ := gen["subscriptionId"].(string); !regexp.MustCompile(`^sub_[0-9a-f]{24}$`).MatchString(id) {
		t.Errorf("generated id %q", id)
	}
	for body, want := range map[string]string{
		`{"subscriptionId":"sub_A"}`:                      "exists already",
		`{"productId":"prod_none"}`:                       `productId: no product "prod_none"`,
		`{"customerId":"c-none"}`:                         `customerId: no customer "c-none"`,
		`{"quantity":-1}`:                                 "quantity must be at least 0",
		`{"quantity":"3"}`:                                "quantity must be an integer",
		`{"status":"gone"}`:                               `status "gone" is not one of`,
		`{"sla":{"supportHours":1,"transactionLimit":1}}`: "sla.defaultHourlyRate is required",
	} {
		status := 400
		if want == "exists already" {
			status = 409
		}
		if out := h.call(t, "POST", "/subscriptions", body, status); !strings.Contains(out["message"].(string), want) {
			t.Errorf("POST %s: %v, want %q", body, out["message"], want)
		}
	}

	// A change of quantity, then the cancel: status canceled, quantity 0.
	h.call(t, "PUT", "/subscriptions/sub_A", fmt.Sprintf(`{"productId":"prod_qbd","quantity":5,"customerId":%q}`, cust), 200)
	if st := h.stats(t); st.Subscriptions != 2 || st.Quantity != 6 {
		t.Errorf("after the change %+v, want 2 subscriptions of quantity 6", st)
	}
	canceled := h.call(t, "PUT", "/subscriptions/sub_A", fmt.Sprintf(`{"subscriptionId":"sub_A","productId":"prod_qbd","quantity":0,"status":"canceled","customerId":%q}`, cust), 200)
	if canceled["status"] != "canceled" || canceled["quantity"] != float64(0) || canceled["dateCreated"] != "2025-03-05" {
		t.Errorf("canceled %v", canceled)
	}
	if got := h.call(t, "GET", "/subscriptions/sub_A", "", 200); !reflect.DeepEqual(got, canceled) {
		t.Errorf("GET %v, want %v", got, canceled)
	}
	if st := h.stats(t); st.Subscriptions != 1 || st.Quantity != 1 {
		t.Errorf("after the cancel %+v, want 1 subscription of quantity 1", st)
	}
	h.call(t, "PUT", "/subscriptions/sub_A", `{"subscriptionId":"sub_B"}`, 400)
	h.call(t, "PUT", "/subscriptions/sub_none", `{}`, 404)
	h.call(t, "PUT", "/subscriptions/sub_A", `{"productId":"prod_none"}`, 400)
	h.call(t, "GET", "/subscriptions/sub_none", "", 404)
}

func TestProducts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	list := h.list(t, "/products")
	var ids []string
	for _, p := range list {
		ids = append(ids, p.(map[string]any)["id"].(string))
	}
	if want := []string{"prod_qbd", "prod_qbd_legacy", "prod_qbd_support"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("products %v, want %v", ids, want)
	}
	if p := h.call(t, "GET", "/products/prod_qbd", "", 200); p["name"] != "QBD Connect" || p["active"] != true {
		t.Errorf("prod_qbd %v", p)
	}
	h.call(t, "GET", "/products/prod_none", "", 404)
}

// TestAdditionalProperties: properties the seed does not name come back
// as sent, at every level that allows them.
func TestAdditionalProperties(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := h.call(t, "POST", "/customers", `{"tier":"gold","tags":["a",1,{"b":null}],
		"address":{"street1":"1","city":"A","state":"NY","postalCode":"1","county":"Albany"},
		"primaryBillingContact":{"email":"a@x","title":"CFO"}}`, 201)
	c = h.call(t, "GET", "/customers/"+c["id"].(string), "", 200)
	if c["tier"] != "gold" || !reflect.DeepEqual(c["tags"], []any{"a", float64(1), map[string]any{"b": nil}}) ||
		c["address"].(map[string]any)["county"] != "Albany" || c["primaryBillingContact"].(map[string]any)["title"] != "CFO" {
		t.Errorf("customer %v", c)
	}
	in := h.call(t, "POST", "/instances", fmt.Sprintf(`{"name":"B","customerId":%q,"region":"eu","contact":{"firstName":"A","lastName":"L","email":"e","mobile":"1"},
		"sla":{"supportHours":1,"transactionLimit":2,"defaultHourlyRate":3.5,"tier":"gold"}}`, c["id"]), 201)
	in = h.call(t, "GET", "/instances/"+in["instanceId"].(string), "", 200)
	if in["region"] != "eu" || in["contact"].(map[string]any)["mobile"] != "1" || in["sla"].(map[string]any)["tier"] != "gold" || in["sla"].(map[string]any)["defaultHourlyRate"] != 3.5 {
		t.Errorf("instance %v", in)
	}
	h.call(t, "POST", "/subscriptions", `{"subscriptionId":"sub_X","cancelAt":1700000000,"metadata":{"k":"v"}}`, 201)
	s := h.call(t, "GET", "/subscriptions/sub_X", "", 200)
	if s["cancelAt"] != float64(1700000000) || !reflect.DeepEqual(s["metadata"], map[string]any{"k": "v"}) {
		t.Errorf("subscription %v", s)
	}
}

func TestStatsAndReset(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.customer(t, "cus_a"), h.customer(t, "cus_b")
	h.instance(t, a)
	h.instance(t, b)
	gone := h.instance(t, b)
	h.call(t, "DELETE", "/instances/"+gone["instanceId"].(string), "", 200)
	h.call(t, "POST", "/subscriptions", `{"quantity":3}`, 201)
	h.call(t, "POST", "/subscriptions", `{"quantity":2,"status":"past_due"}`, 201)
	h.call(t, "POST", "/subscriptions", `{"quantity":5,"status":"canceled"}`, 201)
	if st, want := h.stats(t), (Stats{Customers: 2, Subscriptions: 2, Instances: 2, Quantity: 5}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	b2, _ := json.Marshal(h.sb.Stats())
	if string(b2) != `{"customers":2,"subscriptions":2,"instances":2,"quantity":5}` {
		t.Errorf("stats JSON %s", b2)
	}
	h.sb.Reset()
	if st := h.stats(t); st != (Stats{}) {
		t.Errorf("after Reset %+v", st)
	}
	h.call(t, "GET", "/customers/"+a, "", 404)
	h.call(t, "GET", "/products/prod_qbd", "", 200)
	h.customer(t, "cus_a") // the gatewayCustomerId index was reset too
}

func TestFail(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	New().Fail(rec, 503, 42)
	var e apiError
	if rec.Code != 503 || rec.Header().Get("Content-Type") != "application/json" || json.Unmarshal(rec.Body.Bytes(), &e) != nil ||
		e.Status != 503 || e.Error != "Service Unavailable" || e.Message == "" {
		t.Errorf("Fail: %d %s", rec.Code, rec.Body)
	}
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	big := `{"primaryBillingContact":{"email":"a@x"},"pad":"` + strings.Repeat("x", maxBody) + `"}`
	if code, b := h.do(t, "POST", "/customers", big); code != 413 {
		t.Errorf("a body over %d bytes: %d %s, want 413", maxBody, code, b)
	}
}

// TestConcurrent: parallel writers and readers; -race checks the locking.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const n = 32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// t.Fatal must not run here: try reports with t.Errorf.
			c := h.try(t, "POST", "/customers", strings.Replace(customerBody, "cus_1", fmt.Sprintf("cus_%d", i), 1), 201)
			id, _ := c["id"].(string)
			in := h.try(t, "POST", "/instances", fmt.Sprintf(`{"name":"B","customerId":%q,"contact":%s}`, id, contactJSON), 201)
			inID, _ := in["instanceId"].(string)
			h.try(t, "PATCH", "/instances/"+inID, `{"validated":true}`, 200)
			h.try(t, "POST", "/subscriptions", fmt.Sprintf(`{"customerId":%q,"quantity":1}`, id), 201)
			if code, _ := h.do(t, "GET", "/customers", ""); code != 200 {
				t.Errorf("list: %d", code)
			}
			_ = h.sb.Stats()
		})
	}
	wg.Wait()
	if st, want := h.stats(t), (Stats{Customers: n, Subscriptions: n, Instances: n, Quantity: n}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}
