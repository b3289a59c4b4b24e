package q2sandbox

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDeleteMarks follows Q2: a delete marks the user or customer, which
// lookups still return with DeletedDate set, whose logon stays taken, and
// which a second delete does not find.
func TestDeleteMarks(t *testing.T) {
	t.Parallel()
	sb, srv := start(t, Config{})
	tok := token(t, srv)
	for _, l := range []string{"keep", "gone", "cust"} { // users and customers 1, 2, 3
		if st, _ := call(t, srv, "POST", "/v2/Enrollment", tok, enrollBody(l)); st != 200 {
			t.Fatalf("enroll %s: %d", l, st)
		}
	}
	for _, path := range []string{"/v2/DeleteUser/2", "/v1/DeleteCustomer/3"} {
		if st, _ := call(t, srv, "DELETE", path, tok, ""); st != 200 {
			t.Fatalf("%s: %d", path, st)
		}
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		deleted            []bool // for a lookup: each record's DeletedDate set, in order
	}{
		{"POST", "/v2/LookupUser", `{"LoginName":"GONE"}`, 200, []bool{true}},
		{"POST", "/v2/LookupUser", `{"UserID":3}`, 200, []bool{true}}, // with its customer
		{"POST", "/v2/LookupUser", `{"CustomerID":2}`, 200, []bool{true}},
		{"POST", "/v2/LookupUser", `{"SSN":"123456789"}`, 200, []bool{false, true, true}},
		{"POST", "/v2/LookupUser", `{"LoginName":"keep"}`, 200, []bool{false}},
		{"POST", "/v2/LookupCustomer", `{"LoginName":"gone"}`, 200, []bool{false}}, // only its user was deleted
		{"POST", "/v2/LookupCustomer", `{"LoginName":"cust"}`, 200, []bool{true}},
		{"POST", "/v2/LookupCustomer", `{"PrimaryCIF":"C1"}`, 200, []bool{false, false, true}},
		{"POST", "/v2/Enrollment", enrollBody("Gone"), 409, nil},
		{"POST", "/v2/Enrollment", enrollBody("cust"), 409, nil},
		{"POST", "/v2/AddExternalAccount", `{"Account":{"ABA":"022222222","Account":"1","LogonName":"gone"}}`, 200, nil},
		{"GET", "/v2/GetAccountList?username=gone", "", 404, nil},
		{"GET", "/v2/GetAccountList?user_id=3", "", 404, nil},
		{"GET", "/v2/GetAccountList?customer_id=3", "", 404, nil},
		{"DELETE", "/v2/DeleteUser/2", "", 404, nil},
		{"DELETE", "/v2/DeleteUser/3", "", 404, nil},
		{"DELETE", "/v2/DeleteCustomer/3", "", 404, nil},
		{"DELETE", "/v2/DeleteCustomer/2", "", 200, nil}, // live, though its user is not
		{"DELETE", "/v2/DeleteCustomer/2", "", 404, nil},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			st, e := call(t, srv, tc.method, tc.path, tok, tc.body)
			if st != tc.status || e.Status != st || e.Success != (st == 200) {
				t.Fatalf("%d %+v, want %d", st, e, tc.status)
			}
			if strings.Contains(tc.path, "AddExternalAccount") && !strings.Contains(string(e.Data), `"Success":false`) {
				t.Errorf("a deleted logon took an account: %s", e.Data)
			}
			if tc.deleted == nil {
				return
			}
			var recs []map[string]any
			if err := json.Unmarshal(e.Data, &recs); err != nil {
				t.Fatal(err)
			}
			got := make([]bool, len(recs))
			for i, r := range recs {
				got[i] = r["DeletedDate"] != nil
				if got[i] && !deletedAfterCreated(r) {
					t.Errorf("record %d: DeletedDate %v is not in Q2's format or is before CreateDate %v", i, r["DeletedDate"], r["CreateDate"])
				}
			}
			if !slices.Equal(got, tc.deleted) {
				t.Errorf("deleted = %v, want %v", got, tc.deleted)
			}
		})
	}
	if s := sb.stats(); s.Users != 1 || s.Customers != 1 {
		t.Errorf("stats = %+v, want 1 live user and 1 live customer", s)
	}
}

// TestLookupMatchesScan checks the indexes against the plain reading of a
// lookup, a scan of every record matching every criterion set, over every
// combination of criteria, hits and misses, live and deleted records.
func TestLookupMatchesScan(t *testing.T) {
	t.Parallel()
	var d directory
	d.reset()
	now := time.Now().UTC()
	for i := range 60 {
		in := enrollmentIn{LogonName: fmt.Sprintf("u%d", i), FirstName: "A", LastName: "B",
			SSN: fmt.Sprintf("s%d", i%7), PrimaryCIF: fmt.Sprintf("c%d", i%5)}
		if i%9 == 0 {
			in.SSN, in.PrimaryCIF = "", "" // not indexed, never found by them
		}
		if err := d.enroll(&in, now); err != nil {
			t.Fatal(err)
		}
	}
	for id := int64(1); id <= 60; id++ {
		switch {
		case id%3 == 0:
			d.deleteUser(id, now)
		case id%11 == 0:
			d.deleteCustomer(id, now)
		}
	}

	for _, ssn := range []string{"", "s1", "s9"} {
		for _, cif := range []string{"", "c2", "c9"} {
			for _, logon := range []string{"", "U4", "u5", "nobody"} {
				for _, uid := range []int64{0, 4, 5, 999} {
					for _, cid := range []int64{0, 4, 6, 999} {
						if ssn == "" && cif == "" && logon == "" && uid == 0 && cid == 0 {
							continue
						}
						q := userQuery{SSN: ssn, PrimaryCIF: cif, LoginName: logon, UserID: uid, CustomerID: cid}
						var want []int64
						for _, u := range d.users {
							if (ssn == "" || ssn == u.ssn) && (cif == "" || cif == u.primaryCIF) &&
								(logon == "" || strings.EqualFold(logon, u.logon)) &&
								(uid == 0 || uid == u.id) && (cid == 0 || cid == u.customer.id) {
								want = append(want, u.id)
							}
						}
						if got := userIDs(d.lookupUsers(q)); !slices.Equal(got, want) {
							t.Errorf("LookupUser %+v = %v, want %v", q, got, want)
						}

						cq := customerQuery{TaxID: ssn, PrimaryCIF: cif, LoginName: logon, CustomerID: cid}
						want = nil
						for _, c := range d.customers {
							if (ssn == "" || ssn == c.taxID) && (cif == "" || cif == c.primaryCIF) &&
								(logon == "" || strings.EqualFold(logon, c.user.logon)) &&
								(cid == 0 || cid == c.id) {
								want = append(want, c.id)
							}
						}
						if uid != 0 {
							continue // not a customer criterion: the same query again
						}
						if got := customerIDs(d.lookupCustomers(cq)); !slices.Equal(got, want) {
							t.Errorf("LookupCustomer %+v = %v, want %v", cq, got, want)
						}
					}
				}
			}
		}
	}
}

func userIDs(out []userOut) []int64 {
	var ids []int64
	for _, u := range out {
		ids = append(ids, u.UserID)
	}
	return ids
}

func customerIDs(out []customerOut) []int64 {
	var ids []int64
	for _, c := range out {
		ids = append(ids, c.CustomerID)
	}
	return ids
}

// TestTokenSweep checks that expired tokens are forgotten once there are
// many, and live ones kept.
func TestTokenSweep(t *testing.T) {
	t.Parallel()
	sb, srv := start(t, Config{})
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	sb.tokMu.Lock()
	for i := range minSweep {
		sb.tokens[fmt.Sprint("old", i)] = past
	}
	sb.tokens["live"] = future
	sb.tokMu.Unlock()

	tok := token(t, srv)
	sb.tokMu.RLock()
	n := len(sb.tokens)
	sb.tokMu.RUnlock()
	if n != 2 {
		t.Errorf("%d tokens kept, want 2 (the live one and the new one)", n)
	}
	for _, tk := range []string{tok, "live"} {
		if st, _ := call(t, srv, "POST", "/v2/LookupUser", tk, `{"UserID":1}`); st != 200 {
			t.Errorf("token %s: %d, want 200", tk, st)
		}
	}
	if st, _ := call(t, srv, "POST", "/v2/LookupUser", "old1", `{"UserID":1}`); st != 401 {
		t.Errorf("expired token: %d, want 401", st)
	}
}
