package q2api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
)

// startSandbox serves an in-process sandbox and returns a client of it.
func startSandbox(t *testing.T, cfg q2sandbox.Config, opts ...Option) (*Client, *sandbox.Sandbox) {
	t.Helper()
	sb := sandbox.New(q2sandbox.New(cfg))
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	opts = append([]Option{
		WithCredentials(q2sandbox.DefaultClientID, q2sandbox.DefaultClientSecret, "users", "accounts"),
		WithRetry(3, time.Millisecond, 5*time.Millisecond),
	}, opts...)
	c, err := New(srv.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, sb
}

func TestSandboxLifecycle(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			c, sb := startSandbox(t, q2sandbox.Config{}, WithAPIVersion(version))
			ctx := context.Background()
			enr := Enrollment{
				LogonName: "sub-42", FirstName: "Ada", LastName: "Lovelace", SSN: "123456789",
				Password: "pass123", UserInfo: "webhook:sub-42", PrimaryCIF: "0123456",
				Emails: []Email{{EmailAddress: "ada@example.com"}}, UserData: map[string]string{"Plan": "gold"},
				Addresses: []Address{{Address1: "1 Main St", City: "Austin", State: "TX", Zip: "78750", AddressType: "Home"}},
				Phones:    []Phone{{Phone: "5121234567", PhoneType: "Mobile"}},
			}
			if err := c.Enroll(ctx, enr); err != nil {
				t.Fatalf("Enroll: %v", err)
			}
			if err := c.Enroll(ctx, enr); !errors.Is(err, ErrAlreadyExists) {
				t.Fatalf("second Enroll = %v, want ErrAlreadyExists", err)
			}
			users, err := c.LookupUser(ctx, UserQuery{LoginName: "sub-42"})
			if err != nil || len(users) != 1 {
				t.Fatalf("LookupUser = %v, %v", users, err)
			}
			u := users[0]
			if u.UserInfo != "webhook:sub-42" || u.FirstName != "Ada" || u.UserStatus != "ACTIVE" || u.LogonIDMapping["sub-42"] == "" {
				t.Errorf("user = %+v", u)
			}
			custs, err := c.LookupCustomer(ctx, CustomerQuery{LoginName: "sub-42", IncludeAddress: true, IncludePhone: true, IncludeCustomerData: true})
			if err != nil || len(custs) != 1 || custs[0].CustomerID != u.CustomerID {
				t.Fatalf("LookupCustomer = %+v, %v", custs, err)
			}
			if cu := custs[0]; cu.Address == nil || cu.Address.PostalCode != "78750" || len(cu.Phones) != 1 || len(cu.Data) != 1 {
				t.Errorf("customer = %+v", cu)
			}
			res, err := c.AddExternalAccount(ctx,
				ExternalAccount{ABA: "022222222", Account: "123456", AccountType: "Checking", LogonName: "sub-42", AllowDeposit: true},
				ExternalAccount{ABA: "088888888", Account: "999", AccountType: "Savings", LogonName: "nobody"})
			if err != nil || len(res) != 2 || !res[0].Success || res[1].Success {
				t.Fatalf("AddExternalAccount = %+v, %v", res, err)
			}
			for _, q := range []AccountListQuery{{Username: "sub-42"}, {UserID: u.UserID}, {CustomerID: u.CustomerID}} {
				accts, err := c.GetAccountList(ctx, q)
				if err != nil || len(accts) != 1 || accts[0].AccountNumber != "123456" || !accts[0].IsExternal {
					t.Errorf("GetAccountList(%+v) = %+v, %v", q, accts, err)
				}
			}
			if err := c.DeleteUser(ctx, u.UserID); err != nil {
				t.Fatalf("DeleteUser: %v", err)
			}
			if err := c.DeleteUser(ctx, u.UserID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second DeleteUser = %v, want ErrNotFound", err)
			}
			// Q2 marks a deleted user: it is still found, with DeletedDate set.
			if users, err := c.LookupUser(ctx, UserQuery{LoginName: "sub-42"}); err != nil || len(users) != 1 || users[0].DeletedDate == "" {
				t.Fatalf("LookupUser after delete = %+v, %v; want the user with DeletedDate set", users, err)
			}
			if custs, err := c.LookupCustomer(ctx, CustomerQuery{CustomerID: u.CustomerID}); err != nil || len(custs) != 1 || custs[0].DeletedDate != "" {
				t.Fatalf("LookupCustomer after DeleteUser = %+v, %v; want the customer, not deleted", custs, err)
			}
			if err := c.DeleteCustomer(ctx, u.CustomerID); err != nil {
				t.Fatalf("DeleteCustomer: %v", err)
			}
			if err := c.DeleteCustomer(ctx, u.CustomerID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second DeleteCustomer = %v, want ErrNotFound", err)
			}
			if custs, err := c.LookupCustomer(ctx, CustomerQuery{LoginName: "sub-42"}); err != nil || len(custs) != 1 || custs[0].DeletedDate == "" {
				t.Fatalf("LookupCustomer after delete = %+v, %v; want the customer with DeletedDate set", custs, err)
			}
			if err := c.Enroll(ctx, enr); !errors.Is(err, ErrAlreadyExists) {
				t.Fatalf("Enroll of a deleted user's logon = %v, want ErrAlreadyExists", err)
			}
			st := sb.Stats()
			q2 := st.Parts[q2sandbox.Name].(q2sandbox.Stats)
			if st.Calls["token"] != 1 || st.Calls["Enrollment"] != 3 || q2.Users != 0 || q2.Customers != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestSandboxFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("retried 503 on delete", func(t *testing.T) {
		t.Parallel()
		c, sb := startSandbox(t, q2sandbox.Config{})
		mustEnroll(t, c, "f1")
		if err := sb.SetFault(sandbox.Fault{Route: "DeleteUser", Status: 503, Times: 2}); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteUser(ctx, 1); err != nil {
			t.Fatalf("DeleteUser = %v, want success on the third attempt", err)
		}
		if n := sb.Stats().Calls["DeleteUser"]; n != 3 {
			t.Errorf("DeleteUser calls = %d, want 3", n)
		}
	})

	t.Run("no retry of Enrollment on 503", func(t *testing.T) {
		t.Parallel()
		c, sb := startSandbox(t, q2sandbox.Config{})
		_ = sb.SetFault(sandbox.Fault{Route: "Enrollment", Status: 503, Times: 1})
		err := c.Enroll(ctx, Enrollment{LogonName: "f2", FirstName: "A", LastName: "B"})
		if !errors.Is(err, ErrTransient) {
			t.Fatalf("Enroll = %v, want ErrTransient", err)
		}
		if n := sb.Stats().Calls["Enrollment"]; n != 1 {
			t.Errorf("Enrollment calls = %d, want 1", n)
		}
	})

	t.Run("token endpoint down, Enrollment retried", func(t *testing.T) {
		t.Parallel()
		c, sb := startSandbox(t, q2sandbox.Config{})
		_ = sb.SetFault(sandbox.Fault{Route: "token", Status: 503, Times: 1})
		mustEnroll(t, c, "f3")
		if st := sb.Stats(); st.Calls["token"] != 2 || st.Calls["Enrollment"] != 1 {
			t.Errorf("calls = %v", st.Calls)
		}
	})

	t.Run("delay past the caller's deadline; the work still happens", func(t *testing.T) {
		t.Parallel()
		c, sb := startSandbox(t, q2sandbox.Config{})
		mustEnroll(t, c, "warm-up") // fetch the token first
		_ = sb.SetFault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 300})
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := c.Enroll(dctx, Enrollment{LogonName: "f4", FirstName: "A", LastName: "B"})
		if !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Enroll = %v, want ErrTransient and DeadlineExceeded", err)
		}
		// The caller looks its logon up, as after any lost reply.
		deadline := time.Now().Add(10 * time.Second) // generous: a loaded machine, not a slow sandbox
		for {
			_, err := c.LookupUser(ctx, UserQuery{LoginName: "f4"})
			if err == nil {
				break
			}
			if !errors.Is(err, ErrNotFound) || time.Now().After(deadline) {
				t.Fatalf("LookupUser = %v, want the delayed enrollment done", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("per-attempt timeout retried for lookups", func(t *testing.T) {
		t.Parallel()
		// A per-attempt timeout far above what a lookup takes, even on a
		// loaded machine, and a delay far above it: the first attempt is
		// cut, a later one answers.
		c, sb := startSandbox(t, q2sandbox.Config{}, WithHTTPClient(&http.Client{Timeout: time.Second}))
		mustEnroll(t, c, "f5")
		_ = sb.SetFault(sandbox.Fault{Route: "LookupUser", Times: 1, DelayMS: 3000})
		if _, err := c.LookupUser(ctx, UserQuery{LoginName: "f5"}); err != nil {
			t.Fatalf("LookupUser = %v", err)
		}
		if n := sb.Stats().Calls["LookupUser"]; n < 2 {
			t.Errorf("LookupUser calls = %d, want the cut attempt and a retry", n)
		}
	})
}

func TestSandboxTokenExpiry(t *testing.T) {
	t.Parallel()
	// A TTL under a second is reported as expires_in 0 ("no expiry"), so
	// the client keeps the token and meets the sandbox's 401.
	c, sb := startSandbox(t, q2sandbox.Config{TokenTTL: 100 * time.Millisecond})
	ctx := context.Background()
	mustEnroll(t, c, "e1")
	time.Sleep(150 * time.Millisecond)
	if _, err := c.LookupUser(ctx, UserQuery{LoginName: "e1"}); err != nil {
		t.Fatalf("LookupUser after expiry = %v", err)
	}
	if st := sb.Stats(); st.Calls["token"] != 2 || st.Calls["LookupUser"] != 2 {
		t.Errorf("calls = %v, want 2 token and 2 LookupUser (one refused)", st.Calls)
	}
}

func TestSandboxWrongCredentials(t *testing.T) {
	t.Parallel()
	c, sb := startSandbox(t, q2sandbox.Config{ClientSecret: "other"})
	err := c.Enroll(context.Background(), Enrollment{LogonName: "x", FirstName: "A", LastName: "B"})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Enroll = %v, want ErrUnauthorized", err)
	}
	if st := sb.Stats(); st.Calls["token"] != 1 || st.Calls["Enrollment"] != 0 {
		t.Errorf("calls = %v, want one token request and no Enrollment", st.Calls)
	}
}

func mustEnroll(t *testing.T, c *Client, logon string) {
	t.Helper()
	if err := c.Enroll(context.Background(), Enrollment{LogonName: logon, FirstName: "A", LastName: "B"}); err != nil {
		t.Fatalf("Enroll %s: %v", logon, err)
	}
}
