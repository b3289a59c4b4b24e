package qbdsandbox

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
)

// prefix is the seed's path prefix; {version} is v1, v2, ...
const prefix = "/qbdconnect-api/{version}"

// maxBody bounds every request body.
const maxBody = 1 << 20

// Stats counts what is live: customers (none are ever deleted),
// subscriptions that are not canceled and their summed quantity, and
// instances not deleted.
type Stats struct {
	Customers     int   `json:"customers"`
	Subscriptions int   `json:"subscriptions"`
	Instances     int   `json:"instances"`
	Quantity      int64 `json:"quantity"`
}

// Sandbox is the in-memory QBD Connect API. It is safe for concurrent use;
// every lookup by id or gatewayCustomerId is a map lookup.
type Sandbox struct {
	now func() time.Time // for dateCreated

	mu            sync.Mutex
	seq           uint64                          // creation order, for lists
	customers     map[string]*customer            // by id
	byGateway     map[string]*customer            // by gatewayCustomerId
	instances     map[string]*instance            // by instanceId
	byCustomer    map[string]map[string]*instance // customerId → instanceId → instance
	subscriptions map[string]*subscription        // by subscriptionId
	products      map[string]product              // by id, fixed
}

// New returns an empty sandbox with its fixed products.
func New() *Sandbox {
	s := &Sandbox{now: time.Now}
	s.Reset()
	return s
}

// Name is the part's prefix in route names.
func (s *Sandbox) Name() string { return "qbd" }

type route struct {
	method, path string // path under prefix
	handle       func(*Sandbox, http.ResponseWriter, *http.Request)
}

var routes = []route{
	{"GET", "/customers", (*Sandbox).listCustomers},
	{"POST", "/customers", (*Sandbox).createCustomer},
	{"GET", "/customers/{id}", (*Sandbox).getCustomer},
	{"GET", "/instances", (*Sandbox).listInstances},
	{"POST", "/instances", (*Sandbox).createInstance},
	{"GET", "/instances/{id}", (*Sandbox).getInstance},
	{"PUT", "/instances/{id}", (*Sandbox).putInstance},
	{"PATCH", "/instances/{id}", (*Sandbox).patchInstance},
	{"DELETE", "/instances/{id}", (*Sandbox).deleteInstance},
	{"POST", "/subscriptions", (*Sandbox).createSubscription},
	{"GET", "/subscriptions/{id}", (*Sandbox).getSubscription},
	{"PUT", "/subscriptions/{id}", (*Sandbox).putSubscription},
	{"GET", "/products", (*Sandbox).listProducts},
	{"GET", "/products/{id}", (*Sandbox).getProduct},
}

func (rt route) name() string { return "qbd." + rt.method + " " + rt.path }

// Routes names every route as the sandbox's call counters and faults know
// it: "qbd.POST /customers", "qbd.GET /customers/{id}", ...
func (s *Sandbox) Routes() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.name()
	}
	return out
}

// Register mounts every route on mux under /qbdconnect-api/{version},
// each wrapped by wrap with its name. An unknown version gets 404.
func (s *Sandbox) Register(mux *http.ServeMux, wrap func(route string, h http.HandlerFunc) http.HandlerFunc) {
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+prefix+rt.path, wrap(rt.name(), func(w http.ResponseWriter, r *http.Request) {
			if v := r.PathValue("version"); !validVersion(v) {
				writeError(w, http.StatusNotFound, fmt.Sprintf("unknown API version %q: want v1, v2, ...", v))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			rt.handle(s, w, r)
		}))
	}
}

func validVersion(v string) bool {
	rest, ok := strings.CutPrefix(v, "v")
	return ok && rest != "" && strings.Trim(rest, "0123456789") == ""
}

// Stats returns a Stats.
func (s *Sandbox) Stats() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Customers: len(s.customers), Instances: len(s.instances)}
	for _, sub := range s.subscriptions {
		if sub.Status != "canceled" {
			st.Subscriptions++
			st.Quantity += sub.Quantity
		}
	}
	return st
}

// Fail answers a fault in QBD Connect's error shape; code is unused (QBD
// Connect has no error codes of its own).
func (s *Sandbox) Fail(w http.ResponseWriter, status, _ int) {
	writeError(w, status, fmt.Sprintf("sandbox fault: this call answers %d", status))
}

// Reset forgets every customer, instance and subscription.
func (s *Sandbox) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq = 0
	s.customers = map[string]*customer{}
	s.byGateway = map[string]*customer{}
	s.instances = map[string]*instance{}
	s.byCustomer = map[string]map[string]*instance{}
	s.subscriptions = map[string]*subscription{}
	s.products = map[string]product{}
	for _, p := range []product{
		{ID: "prod_qbd", Name: "QBD Connect", Description: "QuickBooks Desktop connections; the quantity is the number of instances", Active: true},
		{ID: "prod_qbd_support", Name: "QBD Connect Support Hours", Description: "Support hours beyond the SLA", Active: true},
		{ID: "prod_qbd_legacy", Name: "QBD Connect (legacy plan)", Description: "No longer sold", Active: false},
	} {
		s.products[p.ID] = p
	}
}

// --- customers ---

func (s *Sandbox) listCustomers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filtered, gateway := q.Has("gatewayCustomerId"), q.Get("gatewayCustomerId")
	if filtered && gateway == "" {
		writeError(w, http.StatusBadRequest, "gatewayCustomerId must not be empty: give a Stripe customer id, or leave the parameter out to list every customer")
		return
	}
	s.respond(w, func() (int, any) {
		var list []*customer
		switch {
		case !filtered:
			list = sorted(s.customers, func(c *customer) uint64 { return c.seq })
		case s.byGateway[gateway] != nil:
			list = []*customer{s.byGateway[gateway]}
		}
		out := make([]customer, len(list))
		for i, c := range list {
			out[i] = s.view(c)
		}
		return http.StatusOK, out
	})
}

func (s *Sandbox) createCustomer(w http.ResponseWriter, r *http.Request) {
	var c customer
	if !decodeBody(w, r, &c) {
		return
	}
	var p problems
	p.customer(&c)
	if len(p) > 0 {
		writeProblems(w, p)
		return
	}
	s.respond(w, func() (int, any) {
		if old := s.byGateway[c.GatewayCustomerID]; c.GatewayCustomerID != "" && old != nil {
			return errorReply(http.StatusConflict, fmt.Sprintf("gatewayCustomerId %q belongs to customer %s already", c.GatewayCustomerID, old.ID))
		}
		s.seq++
		c.ID, c.QBDInstances, c.seq = newUUID(), nil, s.seq
		s.customers[c.ID] = &c
		if c.GatewayCustomerID != "" {
			s.byGateway[c.GatewayCustomerID] = &c
		}
		return http.StatusCreated, s.view(&c)
	})
}

func (s *Sandbox) getCustomer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.respond(w, func() (int, any) {
		c := s.customers[id]
		if c == nil {
			return errorReply(http.StatusNotFound, fmt.Sprintf("no customer %q", id))
		}
		return http.StatusOK, s.view(c)
	})
}

// view is a customer as replies show it, with its instances. Call with
// s.mu held.
func (s *Sandbox) view(c *customer) customer {
	out := *c
	out.QBDInstances = []instance{}
	for _, in := range sorted(s.byCustomer[c.ID], func(in *instance) uint64 { return in.seq }) {
		out.QBDInstances = append(out.QBDInstances, in.public())
	}
	return out
}

// --- instances ---

func (s *Sandbox) listInstances(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("customerId")
	if id == "" {
		writeError(w, http.StatusBadRequest, "customerId is required: GET /instances?customerId=<customer id>")
		return
	}
	s.respond(w, func() (int, any) {
		out := []instance{}
		for _, in := range sorted(s.byCustomer[id], func(in *instance) uint64 { return in.seq }) {
			out = append(out, in.public())
		}
		return http.StatusOK, out
	})
}

func (s *Sandbox) createInstance(w http.ResponseWriter, r *http.Request) {
	var in instance
	if !decodeBody(w, r, &in) {
		return
	}
	var p problems
	p.instance(&in)
	if len(p) > 0 {
		writeProblems(w, p)
		return
	}
	s.respond(w, func() (int, any) {
		if s.customers[in.CustomerID] == nil {
			return errorReply(http.StatusBadRequest, fmt.Sprintf("customerId: no customer %q", in.CustomerID))
		}
		s.seq++
		in.InstanceID, in.FileID, in.DateCreated, in.seq = newUUID(), newUUID(), s.today(), s.seq
		if in.FrequencyInMinutes == nil {
			in.FrequencyInMinutes = ptr(int64(defaultFrequency))
		}
		s.putInstanceLocked(&in)
		return http.StatusCreated, in.public()
	})
}

func (s *Sandbox) getInstance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.respond(w, func() (int, any) {
		in := s.instances[id]
		if in == nil {
			return errorReply(http.StatusNotFound, fmt.Sprintf("no instance %q", id))
		}
		return http.StatusOK, in.public()
	})
}

// updateFields are the properties PUT /instances/{id} takes.
var updateFields = []string{"name", "password", "qbdPath", "frequencyInMinutes"}

func (s *Sandbox) putInstance(w http.ResponseWriter, r *http.Request) {
	var keys map[string]json.RawMessage
	var u instanceUpdate
	body, ok := readBody(w, r)
	if !ok || !decodeInto(w, body, &keys) || !decodeInto(w, body, &u) {
		return
	}
	var p problems
	for k := range keys {
		if !slices.Contains(updateFields, k) {
			p.add("%s is not a property of an instance update (%s)", k, strings.Join(updateFields, ", "))
		}
	}
	if u.Name == nil || *u.Name == "" {
		p.add("name is required")
	}
	p.frequency(u.FrequencyInMinutes)
	if len(p) > 0 {
		writeProblems(w, p)
		return
	}
	id := r.PathValue("id")
	s.respond(w, func() (int, any) {
		cur := s.instances[id]
		if cur == nil {
			return errorReply(http.StatusNotFound, fmt.Sprintf("no instance %q", id))
		}
		next := *cur
		next.Name, next.Password, next.QBDPath = *u.Name, deref(u.Password), deref(u.QBDPath)
		next.FrequencyInMinutes = cmp.Or(u.FrequencyInMinutes, ptr(int64(defaultFrequency)))
		s.putInstanceLocked(&next)
		return http.StatusOK, next.public()
	})
}

// readOnly are the instance properties a PATCH cannot change.
var readOnly = []string{"instanceId", "customerId", "fileId", "dateCreated"}

// patchInstance applies the body as a JSON merge patch (RFC 7396) to the
// instance's JSON (password included), then checks the result as a whole.
func (s *Sandbox) patchInstance(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var patch map[string]any
	if !decodeInto(w, body, &patch) {
		return
	}
	var p problems
	names := fieldNames(reflect.TypeFor[instance]())
	for k := range patch {
		if names[strings.ToLower(k)] && !slices.Contains(jsonKeys[instance](), k) {
			p.add("%s: properties are case-sensitive here; use the seed's spelling", k)
		}
	}
	if len(p) > 0 {
		writeProblems(w, p)
		return
	}
	id := r.PathValue("id")
	s.respond(w, func() (int, any) {
		cur := s.instances[id]
		if cur == nil {
			return errorReply(http.StatusNotFound, fmt.Sprintf("no instance %q", id))
		}
		var doc map[string]any
		if b, err := json.Marshal(cur); err != nil || decodeNumbers(b, &doc) != nil {
			return errorReply(http.StatusInternalServerError, "sandbox: the stored instance does not encode")
		}
		var p problems
		for _, k := range readOnly {
			if v, ok := patch[k]; ok && !reflect.DeepEqual(v, doc[k]) {
				p.add("%s cannot change", k)
			}
		}
		if len(p) > 0 {
			return problemReply(p)
		}
		merged, _ := json.Marshal(mergePatch(doc, patch)) // values decoded from JSON always encode
		var next instance
		if msg := decodeProblem(merged, &next); msg != "" {
			return errorReply(http.StatusBadRequest, msg)
		}
		if next.FrequencyInMinutes == nil {
			next.FrequencyInMinutes = ptr(int64(defaultFrequency))
		}
		if p.instance(&next); len(p) > 0 {
			return problemReply(p)
		}
		next.seq = cur.seq
		s.putInstanceLocked(&next)
		return http.StatusOK, next.public()
	})
}

func (s *Sandbox) deleteInstance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id") // ?projectId= names a support project: nothing to do here
	s.respond(w, func() (int, any) {
		in := s.instances[id]
		if in == nil {
			return errorReply(http.StatusNotFound, fmt.Sprintf("no instance %q", id))
		}
		delete(s.instances, id)
		delete(s.byCustomer[in.CustomerID], id)
		if len(s.byCustomer[in.CustomerID]) == 0 {
			delete(s.byCustomer, in.CustomerID)
		}
		return http.StatusOK, map[string]any{"instanceId": id, "deleted": true}
	})
}

// putInstanceLocked stores in under both indexes; call with s.mu held.
func (s *Sandbox) putInstanceLocked(in *instance) {
	s.instances[in.InstanceID] = in
	if s.byCustomer[in.CustomerID] == nil {
		s.byCustomer[in.CustomerID] = map[string]*instance{}
	}
	s.byCustomer[in.CustomerID][in.InstanceID] = in
}

// --- subscriptions ---

func (s *Sandbox) createSubscription(w http.ResponseWriter, r *http.Request) {
	var sub subscription
	if !decodeBody(w, r, &sub) {
		return
	}
	sub.Status = cmp.Or(sub.Status, "active")
	var p problems
	if p.subscription(&sub); len(p) > 0 {
		writeProblems(w, p)
		return
	}
	s.respond(w, func() (int, any) {
		if old := s.subscriptions[sub.SubscriptionID]; old != nil {
			return errorReply(http.StatusConflict, fmt.Sprintf("subscription %q exists already: change it with PUT /subscriptions/%s", old.SubscriptionID, old.SubscriptionID))
		}
		if p := s.references(&sub); len(p) > 0 {
			return problemReply(p)
		}
		for sub.SubscriptionID == "" || s.subscriptions[sub.SubscriptionID] != nil {
			sub.SubscriptionID = "sub_" + randomHex(12)
		}
		sub.DateCreated = s.today()
		s.subscriptions[sub.SubscriptionID] = &sub
		return http.StatusCreated, sub
	})
}

func (s *Sandbox) getSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.respond(w, func() (int, any) {
		sub := s.subscriptions[id]
		if sub == nil {
			return errorReply(http.StatusNotFound, fmt.Sprintf("no subscription %q", id))
		}
		return http.StatusOK, *sub
	})
}

// putSubscription replaces the subscription; its id and dateCreated stay.
func (s *Sandbox) putSubscription(w http.ResponseWriter, r *http.Request) {
	var sub subscription
	if !decodeBody(w, r, &sub) {
		return
	}
	id := r.PathValue("id")
	sub.Status = cmp.Or(sub.Status, "active")
	var p problems
	if sub.SubscriptionID != "" && sub.SubscriptionID != id {
		p.add("subscriptionId %q differs from the path's %q: a subscription's id cannot change", sub.SubscriptionID, id)
	}
	if p.subscription(&sub); len(p) > 0 {
		writeProblems(w, p)
		return
	}
	s.respond(w, func() (int, any) {
		cur := s.subscriptions[id]
		if cur == nil {
			return errorReply(http.StatusNotFound, fmt.Sprintf("no subscription %q: create it with POST /subscriptions", id))
		}
		if p := s.references(&sub); len(p) > 0 {
			return problemReply(p)
		}
		sub.SubscriptionID, sub.DateCreated = id, cur.DateCreated
		s.subscriptions[id] = &sub
		return http.StatusOK, sub
	})
}

// references checks that the customer and product a subscription names
// exist; call with s.mu held.
func (s *Sandbox) references(sub *subscription) problems {
	var p problems
	if sub.CustomerID != "" && s.customers[sub.CustomerID] == nil {
		p.add("customerId: no customer %q", sub.CustomerID)
	}
	if _, ok := s.products[sub.ProductID]; sub.ProductID != "" && !ok {
		p.add("productId: no product %q", sub.ProductID)
	}
	return p
}

// --- products ---

func (s *Sandbox) listProducts(w http.ResponseWriter, r *http.Request) {
	s.respond(w, func() (int, any) {
		out := make([]product, 0, len(s.products))
		for _, p := range s.products {
			out = append(out, p)
		}
		slices.SortFunc(out, func(a, b product) int { return strings.Compare(a.ID, b.ID) })
		return http.StatusOK, out
	})
}

func (s *Sandbox) getProduct(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.respond(w, func() (int, any) {
		p, ok := s.products[id]
		if !ok {
			return errorReply(http.StatusNotFound, fmt.Sprintf("no product %q", id))
		}
		return http.StatusOK, p
	})
}

// --- plumbing ---

// respond runs f with s.mu held and encodes its reply before releasing the
// lock (the reply shares nested objects with the store), then writes it.
func (s *Sandbox) respond(w http.ResponseWriter, f func() (int, any)) {
	s.mu.Lock()
	status, v := f()
	b, err := json.Marshal(v)
	s.mu.Unlock()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "sandbox: encoding the reply: "+err.Error())
		return
	}
	writeBytes(w, status, b)
}

func (s *Sandbox) today() string { return s.now().UTC().Format(time.DateOnly) }

// apiError is QBD Connect's error shape, as the sandbox answers it.
type apiError struct {
	Status  int    `json:"status"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

func errorReply(status int, msg string) (int, any) {
	return status, apiError{Status: status, Error: http.StatusText(status), Message: msg}
}

func problemReply(p problems) (int, any) {
	return errorReply(http.StatusBadRequest, strings.Join(p, "; "))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	_, v := errorReply(status, msg)
	b, _ := json.Marshal(v) // strings and ints always encode
	writeBytes(w, status, b)
}

func writeProblems(w http.ResponseWriter, p problems) {
	writeError(w, http.StatusBadRequest, strings.Join(p, "; "))
}

func writeBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // the caller may be gone; nothing to do
}

// readBody reads the body under the MaxBytesReader that Register installed.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxBody))
		} else {
			writeError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		}
		return nil, false
	}
	return b, true
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, ok := readBody(w, r)
	return ok && decodeInto(w, b, v)
}

func decodeInto(w http.ResponseWriter, b []byte, v any) bool {
	if msg := decodeProblem(b, v); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return false
	}
	return true
}

// decodeProblem decodes a JSON object into v and says what is wrong, naming
// the field, when it cannot ("" when it can).
func decodeProblem(b []byte, v any) string {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return "the body must be a JSON object"
	}
	err := decodeNumbers(b, v)
	if err == nil {
		return ""
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("%s must be %s (got %s)", cmp.Or(te.Field, "the body"), kind(te.Type), te.Value)
	}
	return "the body is not valid JSON: " + err.Error()
}

// decodeNumbers is json.Unmarshal keeping numbers in untyped values as
// json.Number (so that a merge patch does not round integers), and
// refusing data after the value.
func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

func kind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// jsonKeys are the exact JSON names of T's fields.
func jsonKeys[T any]() []string {
	t := reflect.TypeFor[T]()
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); f.IsExported() && name != "-" && name != "" {
			out = append(out, name)
		}
	}
	return out
}

// mergePatch applies patch to target as RFC 7396 says: objects merge
// key by key, null removes, anything else replaces.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
		} else {
			t[k] = mergePatch(t[k], v)
		}
	}
	return t
}

// sorted returns m's values in the order key gives.
func sorted[T any](m map[string]*T, key func(*T) uint64) []*T {
	out := make([]*T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *T) int { return cmp.Compare(key(a), key(b)) })
	return out
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// newUUID is a random UUID (version 4), as the seed's uuid() makes.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
