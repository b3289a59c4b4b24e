package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The targets a plan is made of, named as in the products file.
const (
	targetQ2    = "q2"
	targetHelix = "helix"
	targetQBD   = "qbd_connect"
)

// planOf is what an extension provisions, as products.example.yaml says
// (the load benchmark starts the service with it): business-access a Q2
// user then a Helix entitlement for its customer, qbd-connect a QBD
// Connect customer and subscription, any other extension a Q2 user.
func planOf(extension string) []string {
	switch extension {
	case "business-access":
		return []string{targetQ2, targetHelix}
	case "qbd-connect":
		return []string{targetQBD}
	}
	return []string{targetQ2}
}

// check refuses, before any claim, an order that names no one to enroll:
// the service refuses it too (USER_NOT_FOUND) without an outside call.
func (f *floor) check(plan []string, o *order) (answer, bool) {
	if _, _, ok := o.names(); !ok {
		return failure(http.StatusOK, "USER_NOT_FOUND", "the order names no creator and no company"), false
	}
	if plan[0] == targetQBD && (o.Event.Creator == nil || o.Event.Creator.Email == "" || o.Event.Creator.Address == nil) {
		return failure(http.StatusOK, "CONFIGURATION_ERROR", "QBD Connect needs event.creator.email and event.creator.address"), false
	}
	return answer{}, true
}

// provision makes the outside calls of the plan, in order, and returns
// the accountIdentifier: the first step's id, as the service answers.
func (f *floor) provision(ctx context.Context, plan []string, o *order) (string, error) {
	var id string
	var customer int64 // the Q2 customer, for the Helix entitlement
	for i, t := range plan {
		var stepID string
		var err error
		switch t {
		case targetQ2:
			var user int64
			user, customer, err = f.enrollQ2(ctx, o)
			stepID = strconv.FormatInt(user, 10)
		case targetHelix:
			err = f.entitle(ctx, o, customer)
		case targetQBD:
			stepID, err = f.qbdCustomer(ctx, o)
		}
		if err != nil {
			return "", err
		}
		if i == 0 {
			id = stepID
		}
	}
	return id, nil
}

// logonName is derived from the subscription alone, as the service's is, so
// that a second enrollment of one subscription is refused by Q2.
func logonName(subscription string) string {
	sum := sha256.Sum256([]byte("q2-marketplace-subscription:" + subscription))
	return "mp" + hex.EncodeToString(sum[:10])
}

// marker is the UserInfo of the users the floor enrolls: the service's, to
// tell its own user of a logon from another's.
func marker(subscription string) string { return "marketplace-subscription:" + subscription }

// enrollment is the body of Q2's POST /v2/Enrollment, the fields the floor sets.
type enrollment struct {
	LogonName, FirstName, LastName, Password, UserInfo string
}

// errQ2 is an outside reply the floor cannot use.
type errQ2 struct {
	Endpoint string
	Status   int
}

func (e *errQ2) Error() string { return fmt.Sprintf("%s answered HTTP %d", e.Endpoint, e.Status) }

// enrollQ2 calls Enrollment, then LookupUser: Q2's Enrollment answers no
// ids, so the user and customer ids the reply and the Helix step need
// come from the lookup after it (the seed's Enrollment reply forces it). A
// logon that exists (409) means an earlier attempt enrolled it; the lookup
// then finds it.
func (f *floor) enrollQ2(ctx context.Context, o *order) (user, customer int64, err error) {
	first, last, _ := o.names()
	logon := logonName(o.SubscriptionID)
	status, _, err := f.q2Call(ctx, "Enrollment", enrollment{
		LogonName: logon, FirstName: first, LastName: last, Password: rand.Text(), UserInfo: marker(o.SubscriptionID),
	})
	switch {
	case err != nil:
		return 0, 0, err
	case status != http.StatusOK && status != http.StatusConflict:
		return 0, 0, &errQ2{Endpoint: "q2 Enrollment", Status: status}
	}
	status, body, err := f.q2Call(ctx, "LookupUser", map[string]string{"LoginName": logon})
	switch {
	case err != nil:
		return 0, 0, err
	case status != http.StatusOK:
		return 0, 0, &errQ2{Endpoint: "q2 LookupUser", Status: status}
	}
	var env struct {
		Data []struct {
			UserID, CustomerID int64
			UserInfo           string
			DeletedDate        string
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return 0, 0, fmt.Errorf("q2 LookupUser: the reply is not an envelope of users: %w", err)
	}
	for _, u := range env.Data {
		if u.UserInfo == marker(o.SubscriptionID) && u.DeletedDate == "" {
			return u.UserID, u.CustomerID, nil
		}
	}
	return 0, 0, errors.New("q2 LookupUser: no live user of the subscription with its logon")
}

// q2Call POSTs payload to /v2/<endpoint> with the cached token; a refused
// token (the sandbox was reset) is fetched again and the call repeated once.
func (f *floor) q2Call(ctx context.Context, endpoint string, payload any) (int, []byte, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return 0, nil, fmt.Errorf("encoding the %s request: %w", endpoint, err)
	}
	for attempt := 0; ; attempt++ {
		tok, err := f.token(ctx)
		if err != nil {
			return 0, nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.Q2BaseURL+"/v2/"+endpoint, bytes.NewReader(b))
		if err != nil {
			return 0, nil, fmt.Errorf("building the %s request: %w", endpoint, err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		status, body, err := f.do(req)
		if err != nil {
			return 0, nil, fmt.Errorf("q2 %s: %w", endpoint, err)
		}
		if status == http.StatusUnauthorized && attempt == 0 {
			f.dropToken(tok)
			continue
		}
		return status, body, nil
	}
}

// entitle adds the Helix entitlement of the Business Access order: the
// account and requesting customer of payload.configuration, the Q2
// customer just enrolled, the default level. An entitlement already there
// (an earlier attempt) is done.
func (f *floor) entitle(ctx context.Context, o *order, customer int64) error {
	conf := o.Event.Payload.Configuration
	account, requesting := number(conf["accountId"]), number(conf["requestingCustomerId"])
	if account < 1 || requesting < 1 || customer < 1 {
		return errors.New("helix: the order's payload.configuration lacks accountId or requestingCustomerId")
	}
	b, _ := json.Marshal(map[string]any{"accountId": account, "requestingCustomerId": requesting,
		"targetCustomerId": customer, "entitlement": "RDONLY"}) // a map of numbers and a string always marshals
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.HelixBaseURL+"/account/addEntitlement", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("building the addEntitlement request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(f.cfg.HelixKey, f.cfg.HelixSecret)
	status, body, err := f.do(req)
	switch {
	case err != nil:
		return fmt.Errorf("helix addEntitlement: %w", err)
	case status == http.StatusOK, bytes.Contains(body, []byte("195110")): // already entitled
		return nil
	}
	return &errQ2{Endpoint: "helix addEntitlement", Status: status}
}

// number reads a JSON number or a numeric string; 0 when it is neither.
func number(raw json.RawMessage) int64 {
	var n int64
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, _ = strconv.ParseInt(s, 10, 64)
	}
	return n
}

// qbdDigest, qbdGateway and qbdSubscription are the service's ids derived
// from the subscription (qbdconnect.GatewayCustomerID, SubscriptionID).
func qbdDigest(subscription string) string {
	sum := sha256.Sum256([]byte("q2-marketplace-subscription:" + subscription))
	return hex.EncodeToString(sum[:12])
}

// qbdCustomer makes the QBD Connect calls of an ORDER, those the service
// makes on a first attempt: look the customer up by its derived
// gatewayCustomerId (none), create it, create its subscription. It returns
// the customer id.
func (f *floor) qbdCustomer(ctx context.Context, o *order) (string, error) {
	gateway, sid := "mp-"+qbdDigest(o.SubscriptionID), "mp-sub-"+qbdDigest(o.SubscriptionID)
	base := f.cfg.QBDBaseURL + "/qbdconnect-api/v1"
	status, body, err := f.qbdCall(ctx, http.MethodGet, base+"/customers?gatewayCustomerId="+url.QueryEscape(gateway), nil)
	if err != nil {
		return "", err
	}
	if id := customerID(status, body); id != "" {
		return id, nil // an earlier attempt created it; a benchmark's ORDERs are new
	}
	c, co := o.Event.Creator, o.Event.Payload.Company
	name := strings.TrimSpace(c.FirstName + " " + c.LastName)
	if co != nil && co.Name != "" {
		name = co.Name
	}
	state := c.Address.State
	if len(state) > 2 { // the fixture's "Colorado": enough for the benchmark
		state = strings.ToUpper(state[:2])
	}
	status, body, err = f.qbdCall(ctx, http.MethodPost, base+"/customers", map[string]any{
		"gatewayCustomerId": gateway, "subscriptionId": sid, "name": name,
		"address":               map[string]string{"street1": c.Address.Street1, "city": c.Address.City, "state": state, "postalCode": c.Address.Zip},
		"primaryBillingContact": map[string]string{"firstName": c.FirstName, "lastName": c.LastName, "email": c.Email},
	})
	if err != nil {
		return "", err
	}
	id := customerID(status, body)
	if id == "" {
		return "", &errQ2{Endpoint: "qbd POST /customers", Status: status}
	}
	quantity := 1
	if ord := o.Event.Payload.Order; ord != nil {
		for _, it := range ord.Items {
			if strings.EqualFold(it.Unit, "INSTANCE") && it.Quantity > 0 {
				quantity = int(it.Quantity)
			}
		}
	}
	status, _, err = f.qbdCall(ctx, http.MethodPost, base+"/subscriptions", map[string]any{
		"subscriptionId": sid, "productId": f.cfg.QBDProductID, "quantity": quantity,
		"customerId": id, "email": c.Email, "status": "active",
	})
	switch {
	case err != nil:
		return "", err
	case status/100 != 2:
		return "", &errQ2{Endpoint: "qbd POST /subscriptions", Status: status}
	}
	return id, nil
}

// customerID is the id of the one customer a 2xx QBD Connect reply holds
// (an object, or a list of one); "" for none.
func customerID(status int, body []byte) string {
	if status/100 != 2 {
		return ""
	}
	var one struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &one) == nil {
		return one.ID
	}
	var list []struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &list) == nil && len(list) == 1 {
		return list[0].ID
	}
	return ""
}

// qbdCall sends one QBD Connect request (no token: the sandbox needs none).
func (f *floor) qbdCall(ctx context.Context, method, u string, payload any) (int, []byte, error) {
	var body io.Reader
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return 0, nil, fmt.Errorf("encoding the QBD Connect request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, fmt.Errorf("building the QBD Connect request: %w", err)
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	status, b, err := f.do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("qbd %s: %w", method, err)
	}
	return status, b, nil
}

// token returns the cached access token, fetching it once.
func (f *floor) token(ctx context.Context) (string, error) {
	f.tokMu.Lock()
	defer f.tokMu.Unlock()
	if f.tok != "" {
		return f.tok, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {f.cfg.ClientID}, "client_secret": {f.cfg.ClientSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.Q2BaseURL+"/v2/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("building the token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, body, err := f.do(req)
	if err != nil {
		return "", fmt.Errorf("q2 token: %w", err)
	}
	if status != http.StatusOK {
		return "", &errQ2{Endpoint: "q2 token", Status: status}
	}
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return "", errors.New("q2 token: the reply holds no access_token")
	}
	f.tok = t.AccessToken
	return f.tok, nil
}

// dropToken forgets tok unless another caller replaced it already.
func (f *floor) dropToken(tok string) {
	f.tokMu.Lock()
	defer f.tokMu.Unlock()
	if f.tok == tok {
		f.tok = ""
	}
}

// do sends req and reads the whole reply, so that the connection is reused.
func (f *floor) do(req *http.Request) (int, []byte, error) {
	resp, err := f.q2.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxQ2Reply))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading the reply: %w", err)
	}
	return resp.StatusCode, body, nil
}
