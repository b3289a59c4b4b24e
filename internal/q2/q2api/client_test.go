package q2api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

const (
	testClientID = "client-id"
	testSecret   = "s3cr3t-client"
)

// server is a fake Q2: a token endpoint that counts its calls, and the
// handlers a test gives, keyed by ServeMux pattern.
type server struct {
	*httptest.Server
	tokens atomic.Int32
}

func setup(t *testing.T, routes map[string]http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	mux := http.NewServeMux()
	token := func(w http.ResponseWriter, r *http.Request) {
		n := s.tokens.Add(1)
		time.Sleep(20 * time.Millisecond) // let concurrent callers pile up
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"Bearer","expires_in":3600}`, n)
	}
	mux.HandleFunc("POST /v1/oauth2/token", token)
	mux.HandleFunc("POST /v2/oauth2/token", token)
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func newClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{
		WithCredentials(testClientID, testSecret, "a", "b"),
		WithRetry(3, time.Millisecond, 5*time.Millisecond),
	}, opts...)
	c, err := New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeEnvelope(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func testdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		opts []Option
		want string
	}{
		{"", nil, "base URL"},
		{"q2.example.com", nil, "base URL"},
		{"ftp://q2.example.com", nil, "base URL"},
		{"https://", nil, "base URL"},
		{"https://user:pw@%zz", nil, "base URL"},
		{"https://q2.example.com", []Option{WithCredentials("id", "")}, "client secret"},
		{"https://q2.example.com", []Option{WithAPIVersion("v2/x")}, "API version"},
		{"https://q2.example.com", []Option{WithRetry(0, 0, 0)}, "WithRetry"},
		{"https://q2.example.com", []Option{WithHTTPClient(nil)}, "WithHTTPClient"},
	} {
		_, err := New(tc.url, tc.opts...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || envName.MatchString(err.Error()) || strings.Contains(err.Error(), "pw") {
			t.Errorf("New(%q) = %v, want an error naming %s", tc.url, err, tc.want)
		}
	}
	if _, err := New("https://q2.example.com/api", WithAPIVersion("v1")); err != nil {
		t.Errorf("New: %v", err)
	}
}

// TestActions checks each action's request (method, path under both
// versions, headers, body) and its decoding of the seed's sample reply.
func TestActions(t *testing.T) {
	t.Parallel()
	type call func(context.Context, *Client) (any, error)
	for _, tc := range []struct {
		name, method, path  string // path after /{v}
		wantBody, wantQuery string
		reply               string
		call                call
		want                any
	}{
		{
			name: "Enroll", method: "POST", path: "/Enrollment",
			wantBody: `{"LogonName":"l","FirstName":"F","LastName":"L","UserData":{"k":"v"}}`,
			reply:    testdata(t, "enrollment-response.json"),
			call: func(ctx context.Context, c *Client) (any, error) {
				return nil, c.Enroll(ctx, Enrollment{LogonName: "l", FirstName: "F", LastName: "L", UserData: map[string]string{"k": "v"}})
			},
		},
		{
			name: "LookupUser", method: "POST", path: "/LookupUser",
			wantBody: `{"SSN":"123456789","IncludeAuthToken":true}`,
			reply:    testdata(t, "lookupuser-response.json"),
			call: func(ctx context.Context, c *Client) (any, error) {
				u, err := c.LookupUser(ctx, UserQuery{SSN: "123456789", IncludeAuthToken: true})
				if err != nil {
					return nil, err
				}
				return []any{u[0].UserID, u[0].UserStatus, u[0].LogonNames, u[0].LogonIDMapping["retail0"], u[0].AuthToken, u[0].DeletedDate}, nil
			},
			want: []any{int64(2), "ACTIVE", []string{"retail0", "test2"}, "2", "AuthTokenSerial", ""},
		},
		{
			name: "LookupCustomer", method: "POST", path: "/LookupCustomer",
			wantBody: `{"TaxID":"012345678","IncludePhone":true,"IncludeAddress":true,"IncludeCustomerData":true}`,
			reply:    testdata(t, "lookupcustomer-response.json"),
			call: func(ctx context.Context, c *Client) (any, error) {
				cs, err := c.LookupCustomer(ctx, CustomerQuery{TaxID: "012345678", IncludePhone: true, IncludeAddress: true, IncludeCustomerData: true})
				if err != nil {
					return nil, err
				}
				return []any{cs[0].CustomerID, cs[0].Address.PostalCode, len(cs[0].Phones), cs[0].Data[1].GTDataValue}, nil
			},
			want: []any{int64(2), "78750", 2, "2"},
		},
		{
			name: "DeleteUser", method: "DELETE", path: "/DeleteUser/7",
			reply: testdata(t, "deleteuser-response.json"),
			call:  func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteUser(ctx, 7) },
		},
		{
			name: "DeleteCustomer", method: "DELETE", path: "/DeleteCustomer/8",
			reply: testdata(t, "deletecustomer-response.json"),
			call:  func(ctx context.Context, c *Client) (any, error) { return nil, c.DeleteCustomer(ctx, 8) },
		},
		{
			name: "AddExternalAccount", method: "POST", path: "/AddExternalAccount",
			wantBody: `{"Account":[{"ABA":"022222222","Account":"123456","AccountType":"Checking","LogonName":"Test123","AllowDeposit":true,"AllowWithdrawal":false}]}`,
			reply:    testdata(t, "addexternalaccount-response.json"),
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.AddExternalAccount(ctx, ExternalAccount{ABA: "022222222", Account: "123456", AccountType: "Checking", LogonName: "Test123", AllowDeposit: true})
			},
			want: []ExternalAccountResult{{"022222222", "123456", true}, {"088888888", "12345678", true}},
		},
		{
			name: "GetAccountList", method: "GET", path: "/GetAccountList", wantQuery: "username=Test123",
			reply: `{"data":[{"AccountID":5,"AccountNumber":"123","AccountType":"Checking","Balance":10.50}],"success":true,"errors":[],"requestid":"r","status":200}`,
			call: func(ctx context.Context, c *Client) (any, error) {
				return c.GetAccountList(ctx, AccountListQuery{Username: "Test123"})
			},
			want: []AccountSummary{{AccountID: 5, AccountNumber: "123", AccountType: "Checking", Balance: "10.50"}},
		},
	} {
		for _, v := range []string{"v1", "v2"} {
			t.Run(tc.name+"/"+v, func(t *testing.T) {
				t.Parallel()
				srv := setup(t, map[string]http.HandlerFunc{
					"/": func(w http.ResponseWriter, r *http.Request) {
						body, _ := io.ReadAll(r.Body)
						switch {
						case r.Method != tc.method || r.URL.Path != "/"+v+tc.path || r.URL.RawQuery != tc.wantQuery:
							t.Errorf("request = %s %s?%s, want %s /%s%s?%s", r.Method, r.URL.Path, r.URL.RawQuery, tc.method, v, tc.path, tc.wantQuery)
						case r.Header.Get("Authorization") != "Bearer tok-1" || r.Header.Get("Accept") != "application/json":
							t.Errorf("headers = %v", r.Header)
						case tc.wantBody != "" && (string(body) != tc.wantBody || r.Header.Get("Content-Type") != "application/json"):
							t.Errorf("body = %s (%s), want %s", body, r.Header.Get("Content-Type"), tc.wantBody)
						case tc.wantBody == "" && len(body) != 0:
							t.Errorf("body = %s, want none", body)
						}
						writeEnvelope(w, http.StatusOK, tc.reply)
					},
				})
				c := newClient(t, srv.URL, WithAPIVersion(v))
				got, err := tc.call(context.Background(), c)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %#v, want %#v", got, tc.want)
				}
			})
		}
	}
}

// TestEnrollmentCoversSeed: every field of the seed's Enrollment sample
// round-trips (false flags are omitted on purpose).
func TestEnrollmentCoversSeed(t *testing.T) {
	t.Parallel()
	seed := testdata(t, "enrollment-request.json")
	dec := json.NewDecoder(strings.NewReader(seed))
	dec.DisallowUnknownFields()
	var e Enrollment
	if err := dec.Decode(&e); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(e)
	var got, want any
	_ = json.Unmarshal(b, &got)
	_ = json.Unmarshal([]byte(seed), &want)
	if want = dropFalse(want); !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %v\nwant %v", got, want)
	}
}

// dropFalse removes every false field of decoded JSON.
func dropFalse(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if x == false {
				delete(v, k)
			} else {
				v[k] = dropFalse(x)
			}
		}
	case []any:
		for i, x := range v {
			v[i] = dropFalse(x)
		}
	}
	return v
}

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	all := []error{ErrNotFound, ErrAlreadyExists, ErrUnauthorized, ErrForbidden, ErrRateLimited, ErrTransient, ErrInvalidResponse}
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   []error // every sentinel that must match; the others must not
		msgs   string  // rendered messages, for an *APIError
	}{
		{"envelope 409", 200, `{"data":{},"success":false,"errors":["Logon name x already exists"],"status":409,"requestid":"r1","log_ref_id":"l1"}`, []error{ErrAlreadyExists}, "Logon name x already exists"},
		{"http 409 objects", 409, `{"success":false,"errors":[{"code":"E9","message":"duplicate"}],"status":409}`, []error{ErrAlreadyExists}, "code: E9, message: duplicate"},
		{"already exists wording", 400, `{"success":false,"errors":{"LogonName":"already exists"},"status":400}`, []error{ErrAlreadyExists}, "LogonName: already exists"},
		{"http 404", 404, `{"data":{},"success":false,"errors":["User 3 not found"],"status":404}`, []error{ErrNotFound}, "User 3 not found"},
		{"not found wording on 200", 200, `{"success":false,"errors":{"message":"User 3 not found"},"status":200}`, []error{ErrNotFound}, "message: User 3 not found"},
		{"403", 403, `{"success":false,"errors":[],"status":403}`, []error{ErrForbidden}, ""},
		{"429", 429, `{"success":false,"errors":[],"status":429}`, []error{ErrRateLimited, ErrTransient}, ""},
		{"500 html", 500, `<html>oops</html>`, []error{ErrTransient}, ""},
		{"envelope 503 on 200", 200, `{"success":false,"errors":["down"],"status":503}`, []error{ErrTransient}, "down"},
		// The status decides before Q2's wording (issue 20, case 3).
		{"503 saying not found", 503, `{"success":false,"errors":["User 3 not found"],"status":503}`, []error{ErrTransient}, "User 3 not found"},
		{"envelope 502 saying already exists", 200, `{"success":false,"errors":["already exists"],"status":502}`, []error{ErrTransient}, "already exists"},
		{"408 saying not found", 408, `{"success":false,"errors":["not found"],"status":408}`, []error{ErrTransient}, "not found"},
		{"429 saying not found", 429, `{"success":false,"errors":["not found"],"status":429}`, []error{ErrRateLimited, ErrTransient}, "not found"},
		{"404 saying already exists", 404, `{"success":false,"errors":["already exists"],"status":404}`, []error{ErrNotFound}, "already exists"},
		{"400 other", 400, `{"success":false,"errors":["bad DOB"],"status":400}`, nil, "bad DOB"},
		{"not json", 200, `<html></html>`, []error{ErrInvalidResponse}, ""},
		{"no success", 200, `{"data":[]}`, []error{ErrInvalidResponse}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := setup(t, map[string]http.HandlerFunc{"DELETE /v2/DeleteUser/{id}": func(w http.ResponseWriter, r *http.Request) {
				writeEnvelope(w, tc.status, tc.body)
			}})
			err := newClient(t, srv.URL, WithRetry(1, 0, 0)).DeleteUser(context.Background(), 3)
			if err == nil {
				t.Fatal("no error")
			}
			for _, k := range all {
				if want := slicesContains(tc.want, k); errors.Is(err, k) != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, k, !want, want)
				}
			}
			var sc interface{ StatusCode() int }
			if !errors.As(err, &sc) || sc.StatusCode() != tc.status {
				t.Errorf("err = %v, want its HTTP status %d through StatusCode", err, tc.status)
			}
			var ae *APIError
			if errors.Is(err, ErrInvalidResponse) {
				return
			}
			if !errors.As(err, &ae) || ae.Status != tc.status || ae.Endpoint != "DeleteUser" {
				t.Fatalf("err = %#v, want an *APIError with status %d", err, tc.status)
			}
			if got := strings.Join(ae.Messages(), "; "); got != tc.msgs || !strings.Contains(err.Error(), tc.msgs) {
				t.Errorf("messages = %q in %q, want %q", got, err, tc.msgs)
			}
		})
	}
}

func slicesContains(list []error, e error) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

func TestLookupEmptyData(t *testing.T) {
	t.Parallel()
	for _, data := range []string{`[]`, `{}`, `null`} {
		srv := setup(t, map[string]http.HandlerFunc{"POST /v2/LookupUser": func(w http.ResponseWriter, r *http.Request) {
			writeEnvelope(w, 200, `{"data":`+data+`,"success":true,"errors":[],"status":200}`)
		}})
		_, err := newClient(t, srv.URL).LookupUser(context.Background(), UserQuery{LoginName: "x"})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("data %s: err = %v, want ErrNotFound", data, err)
		}
	}
	if _, err := newClient(t, "http://127.0.0.1:1").LookupUser(context.Background(), UserQuery{IncludeAuthToken: true}); err == nil {
		t.Error("empty UserQuery accepted")
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		statuses []int // answered in turn; the last repeats
		call     func(*Client) error
		calls    int32
		wantErr  error
	}{
		{"delete 503 503 200", []int{503, 503, 200}, deleteUser, 3, nil},
		{"delete 502 always", []int{502}, deleteUser, 3, ErrTransient},
		{"delete 429 then ok", []int{429, 200}, deleteUser, 2, nil},
		{"delete 500 retried", []int{500}, deleteUser, 3, ErrTransient},
		{"delete 404 not retried", []int{404}, deleteUser, 1, ErrNotFound},
		{"account list 504 then ok", []int{504, 200}, accountList, 2, nil},
		{"enroll 503 not retried", []int{503}, enroll, 1, ErrTransient},
		{"enroll 429 not retried", []int{429}, enroll, 1, ErrRateLimited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				st := tc.statuses[min(i, len(tc.statuses)-1)]
				writeEnvelope(w, st, fmt.Sprintf(`{"data":[],"success":%v,"errors":[],"status":%d}`, st == 200, st))
			}})
			err := tc.call(newClient(t, srv.URL))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d", n.Load(), tc.calls)
			}
		})
	}
}

func deleteUser(c *Client) error { return c.DeleteUser(context.Background(), 1) }
func enroll(c *Client) error {
	return c.Enroll(context.Background(), Enrollment{LogonName: "l", FirstName: "F", LastName: "L"})
}
func accountList(c *Client) error {
	_, err := c.GetAccountList(context.Background(), AccountListQuery{UserID: 1})
	return err
}

// roundTripper answers every request with err, counting them.
type roundTripper struct {
	n   atomic.Int32
	err error
}

func (rt *roundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	rt.n.Add(1)
	return nil, rt.err
}

func TestNetworkErrors(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name  string
		err   error
		call  func(*Client) error
		calls int32
	}{
		{"enroll retried on dial error", refused, enroll, 3},
		{"enroll not retried on reset", io.ErrUnexpectedEOF, enroll, 1},
		{"delete retried on reset", io.ErrUnexpectedEOF, deleteUser, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rt := &roundTripper{err: tc.err}
			c, err := New("http://q2.test", WithHTTPClient(&http.Client{Transport: rt}), WithRetry(3, time.Millisecond, time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(c)
			if !errors.Is(err, ErrTransient) || !errors.Is(err, tc.err) {
				t.Errorf("err = %v, want ErrTransient wrapping %v", err, tc.err)
			}
			if rt.n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d", rt.n.Load(), tc.calls)
			}
		})
	}
}

// TestRetryAfter: a Retry-After up to the backoff cap is waited and the
// call tried again; a longer one ends the call, and the APIError carries
// it, capped at httpcall.MaxRetryAfter: that is the value passed on to the
// marketplace.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, header string
		maxDelay     time.Duration
		calls        int32
		carried      time.Duration // the APIError's RetryAfter; 0: success
	}{
		{"within the cap: waited, then ok", "1", 2 * time.Second, 2, 0},
		{"over the cap: returned at once", "1", 20 * time.Millisecond, 1, time.Second},
		{"a day: returned, capped", "86400", 20 * time.Millisecond, 1, httpcall.MaxRetryAfter},
		{"a date eleven years out: returned, capped", time.Now().AddDate(11, 0, 0).UTC().Format(http.TimeFormat), 20 * time.Millisecond, 1, httpcall.MaxRetryAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", tc.header)
					writeEnvelope(w, 429, `{"success":false,"errors":["slow down"],"status":429}`)
					return
				}
				writeEnvelope(w, 200, `{"data":{},"success":true,"errors":[],"status":200}`)
			}})
			err := newClient(t, srv.URL, WithRetry(3, time.Millisecond, tc.maxDelay)).DeleteUser(ctx, 1)
			var ae *APIError
			switch {
			case tc.carried == 0 && err != nil:
				t.Errorf("err = %v, want success", err)
			case tc.carried != 0 && (!errors.Is(err, ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter != tc.carried):
				t.Errorf("err = %#v, want the 429 carrying %v", err, tc.carried)
			}
			if n.Load() != tc.calls {
				t.Errorf("calls = %d, want %d", n.Load(), tc.calls)
			}
		})
	}
	t.Run("never past the deadline", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.Header().Set("Retry-After", "60") // far past the caller's deadline
			writeEnvelope(w, 429, `{"success":false,"errors":["slow down"],"status":429}`)
		}})
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second) // generous: a loaded machine fetches the token slowly
		defer cancel()
		err := newClient(t, srv.URL, WithRetry(3, time.Millisecond, 90*time.Second)).DeleteUser(dctx, 1)
		// Waiting 60 s would pass the deadline: the 429 is answered at once,
		// not after sleeping until the deadline.
		if !errors.Is(err, ErrRateLimited) || n.Load() != 1 || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v after %d calls, want the 429 at once", err, n.Load())
		}
	})
}

// TestOutageSayingNotFound: a 503 whose text says "not found" is an
// outage, tried again, never an absence (issue 20, case 3): classifying by
// wording first made the caller believe a user was gone.
func TestOutageSayingNotFound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		call func(*Client) error
	}{
		{"DeleteUser", deleteUser},
		{"LookupUser", func(c *Client) error {
			_, err := c.LookupUser(context.Background(), UserQuery{LoginName: "x"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				writeEnvelope(w, 503, `{"data":null,"success":false,"errors":["User not found"],"status":503}`)
			}})
			err := tc.call(newClient(t, srv.URL))
			if !errors.Is(err, ErrTransient) || errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrTransient and not ErrNotFound", err)
			}
			if n.Load() != 3 {
				t.Errorf("calls = %d, want 3: an outage of a safe call is tried again", n.Load())
			}
		})
	}
}

// TestNoRedirect: Enrollment answered with a redirect is not followed (the
// token and the initial password never reach its target) and is an
// ErrInvalidResponse with its status: Q2 may or may not have enrolled.
func TestNoRedirect(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(target.Close)
	for _, status := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/v2/Enrollment", status)
			}})
			err := newClient(t, srv.URL).Enroll(context.Background(), Enrollment{LogonName: "l", FirstName: "F", LastName: "L", Password: "initial-pw"})
			var sc interface{ StatusCode() int }
			if !errors.Is(err, ErrInvalidResponse) || !errors.As(err, &sc) || sc.StatusCode() != status {
				t.Errorf("err = %v, want ErrInvalidResponse with status %d", err, status)
			}
			if !strings.Contains(err.Error(), strings.TrimPrefix(target.URL, "http://")) {
				t.Errorf("err %q does not name the redirect's host", err)
			}
		})
	}
	t.Run("token endpoint", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/steal", http.StatusTemporaryRedirect)
		}))
		t.Cleanup(srv.Close)
		err := newClient(t, srv.URL).CheckToken(context.Background())
		var sc interface{ StatusCode() int }
		if !errors.Is(err, ErrInvalidResponse) || !errors.As(err, &sc) || sc.StatusCode() != http.StatusTemporaryRedirect || strings.Contains(err.Error(), "steal") {
			t.Errorf("CheckToken = %v, want ErrInvalidResponse with status 307 naming the host only", err)
		}
	})
	t.Cleanup(func() {
		if elsewhere.Load() != 0 {
			t.Errorf("the redirect target received %d requests", elsewhere.Load())
		}
	})
}

func TestCallerDeadline(t *testing.T) {
	t.Parallel()
	srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		writeEnvelope(w, 200, `{"data":[],"success":true,"errors":[],"status":200}`)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
	defer cancel()
	_, err := newClient(t, srv.URL).LookupUser(ctx, UserQuery{UserID: 1})
	if !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want ErrTransient and context.DeadlineExceeded", err)
	}
}

func TestTooLargeReply(t *testing.T) {
	t.Parallel()
	srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, `{"data":"`+strings.Repeat("x", maxBody)+`","success":true}`)
	}})
	if err := deleteUser(newClient(t, srv.URL)); !errors.Is(err, ErrInvalidResponse) {
		t.Errorf("err = %v, want ErrInvalidResponse", err)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	ok := `{"data":{},"success":true,"errors":[],"status":200}`

	t.Run("form, caching and one request under 50 callers", func(t *testing.T) {
		t.Parallel()
		var form atomic.Value
		srv := setup(t, map[string]http.HandlerFunc{
			"/v2/": func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 200, ok) },
		})
		// Wrap the token endpoint to look at its form.
		inner := srv.Config.Handler
		srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/oauth2/token") {
				_ = r.ParseForm()
				form.Store(r.PostForm.Encode() + " basic=" + r.Header.Get("Authorization"))
			}
			inner.ServeHTTP(w, r)
		})
		c := newClient(t, srv.URL)
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if err := deleteUser(c); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if err := deleteUser(c); err != nil {
			t.Fatal(err)
		}
		if n := srv.tokens.Load(); n != 1 {
			t.Errorf("token requests = %d, want 1", n)
		}
		want := "client_id=client-id&client_secret=s3cr3t-client&grant_type=client_credentials&scope=a+b basic="
		if got := form.Load(); got != want {
			t.Errorf("token form = %q, want %q", got, want)
		}
	})

	t.Run("401 refreshes once and succeeds", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			if r.Header.Get("Authorization") == "Bearer tok-1" {
				writeEnvelope(w, 401, `{"success":false,"errors":["expired"],"status":401}`)
				return
			}
			writeEnvelope(w, 200, ok)
		}})
		if err := enroll(newClient(t, srv.URL)); err != nil {
			t.Fatal(err)
		}
		if srv.tokens.Load() != 2 || n.Load() != 2 {
			t.Errorf("tokens = %d, calls = %d, want 2 and 2", srv.tokens.Load(), n.Load())
		}
	})

	t.Run("401 twice is ErrUnauthorized", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			writeEnvelope(w, 401, `{"success":false,"errors":["no"],"status":401}`)
		}})
		err := deleteUser(newClient(t, srv.URL))
		if !errors.Is(err, ErrUnauthorized) || srv.tokens.Load() != 2 || n.Load() != 2 {
			t.Errorf("err = %v, tokens = %d, calls = %d; want ErrUnauthorized, 2, 2", err, srv.tokens.Load(), n.Load())
		}
	})

	t.Run("token wait ends with the caller's deadline", func(t *testing.T) {
		t.Parallel()
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
		t.Cleanup(func() { close(block); srv.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := newClient(t, srv.URL).DeleteUser(ctx, 1)
		if !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want ErrTransient and context.DeadlineExceeded", err)
		}
	})
}

// TestNoSecrets: error strings and logs hold no credentials, tokens,
// passwords, SSN or bodies.
func TestNoSecrets(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.DebugLevel)
	var token atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/token") {
			if token.Swap(true) {
				writeEnvelope(w, 401, `{"error":"invalid_client"}`)
				return
			}
			writeEnvelope(w, 200, `{"access_token":"tok-secret-value","token_type":"Bearer","expires_in":3600}`)
			return
		}
		writeEnvelope(w, 503, `{"success":false,"errors":["unavailable"],"status":503}`)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, WithLogger(zap.New(core)))
	ctx := context.Background()
	var msgs []string
	err := c.Enroll(ctx, Enrollment{LogonName: "l", FirstName: "F", LastName: "L", Password: "pass-word-9", SSN: "987654321", HostPwd: "hostpw-7"})
	msgs = append(msgs, fmt.Sprint(err))
	_, err = c.LookupUser(ctx, UserQuery{SSN: "987654321"})
	msgs = append(msgs, fmt.Sprint(err))
	// A second client meets the token endpoint refusing the credentials.
	err = enroll(newClient(t, srv.URL, WithLogger(zap.New(core))))
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("refused credentials: err = %v, want ErrUnauthorized", err)
	}
	msgs = append(msgs, fmt.Sprint(err))
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message+fmt.Sprint(e.ContextMap()))
	}
	if len(logs.All()) == 0 {
		t.Error("no retry was logged")
	}
	for _, m := range msgs {
		for _, secret := range []string{testSecret, "tok-secret-value", "pass-word-9", "987654321", "hostpw-7"} {
			if strings.Contains(m, secret) {
				t.Errorf("%q leaks %q", m, secret)
			}
		}
	}
}

// envName is an environment variable's name: the library takes values,
// and the wiring that read them names the setting.
var envName = regexp.MustCompile(`\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b`)
