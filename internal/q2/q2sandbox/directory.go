package q2sandbox

import (
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// errLogonTaken is an Enrollment whose logon name exists already, deleted
// users included.
var errLogonTaken = errors.New("logon name already exists")

// directory holds Q2's customers and users. Q2 marks a deleted record and
// keeps it, so nothing here is ever removed: ids stay dense, every index
// stays valid, and a deleted user's logon name stays taken.
//
// Every lookup criterion has its own index, so a call costs the same with
// ten users as with a million: the sandbox must never be the bottleneck of
// a load test. Reads share the lock.
type directory struct {
	mu            sync.RWMutex
	customers     []*customer // CustomerID = index + 1
	users         []*user     // UserID = index + 1
	byLogon       index       // lower-case logon name → UserID, deleted users included
	usersBySSN    index       // → UserIDs
	usersByCIF    index       // PrimaryCIF → UserIDs
	custsByTaxID  index       // → CustomerIDs
	custsByCIF    index       // PrimaryCIF → CustomerIDs
	liveCustomers int
	liveUsers     int
	nextID        int64 // logon and account ids
}

// index maps a value to the ids of the records holding it, in id order.
// It keeps the value's hash, not the value, and most values name one
// record, whose id is kept inline: so an index holds no pointer and no
// object per record for the garbage collector to mark, which is what keeps
// a call's cost flat with a million users. A hash names candidates: the
// caller checks each against the value.
type index struct {
	seed  maphash.Seed
	first map[uint64]int64   // the first id of each hash
	more  map[uint64][]int64 // the later ids of the few hashes that have several
}

func newIndex() index {
	return index{seed: maphash.MakeSeed(), first: map[uint64]int64{}, more: map[uint64][]int64{}}
}

// add files id under value; an empty value is never a criterion, so it is
// not indexed.
func (x index) add(value string, id int64) {
	if value == "" {
		return
	}
	h := maphash.String(x.seed, value)
	if _, ok := x.first[h]; !ok {
		x.first[h] = id
	} else {
		x.more[h] = append(x.more[h], id)
	}
}

// each calls f with the ids filed under value's hash, in id order, until
// f returns false.
func (x index) each(value string, f func(id int64) bool) {
	h := maphash.String(x.seed, value)
	first, ok := x.first[h]
	if !ok || !f(first) {
		return
	}
	for _, id := range x.more[h] {
		if !f(id) {
			return
		}
	}
}

type customer struct {
	id         int64
	name       string
	taxID      string
	primaryCIF string
	groupID    int64
	hostUser   string
	address    *addressIn
	phones     []phoneIn
	data       map[string]string // the enrollment's UserData
	user       *user             // Enrollment, the only way in, makes a customer with one user
	created    time.Time
	deleted    time.Time // zero while live
}

type user struct {
	id                   int64
	customer             *customer
	first, middle, last  string
	ssn, dob, email      string
	userInfo, primaryCIF string
	ssoIdentifier        string
	profileUpdated       bool
	logon                string
	logonID              int64
	authToken            string
	accounts             []account
	created              time.Time
	deleted              time.Time // zero while live
}

type account struct {
	ID                             int64
	Number, Type, Description, ABA string
	External                       bool
	AllowDeposit, AllowWithdrawal  bool
}

// userQuery and customerQuery are LookupUser's and LookupCustomer's
// criteria; a record matches when it matches every criterion that is set.
type userQuery struct {
	SSN, LoginName, PrimaryCIF string
	UserID, CustomerID         int64
	IncludeAuthToken           bool
}

type customerQuery struct {
	TaxID, LoginName, PrimaryCIF                      string
	CustomerID                                        int64
	IncludePhone, IncludeAddress, IncludeCustomerData bool
}

// reset forgets every customer and user.
func (d *directory) reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.customers, d.users = nil, nil
	d.byLogon, d.usersBySSN, d.usersByCIF = newIndex(), newIndex(), newIndex()
	d.custsByTaxID, d.custsByCIF = newIndex(), newIndex()
	d.liveCustomers, d.liveUsers, d.nextID = 0, 0, 0
}

// live counts the users and customers not deleted.
func (d *directory) live() (users, customers int) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.liveUsers, d.liveCustomers
}

// enroll creates a customer, its user and the user's logon, as Q2's
// Enrollment does; errLogonTaken when the logon name exists.
func (d *directory) enroll(in *enrollmentIn, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.userByLogon(in.LogonName) != nil {
		return errLogonTaken
	}
	c := &customer{
		id: int64(len(d.customers)) + 1, name: in.FirstName + " " + in.LastName,
		taxID: in.SSN, primaryCIF: in.PrimaryCIF, groupID: in.GroupID, hostUser: in.HostUser,
		phones: in.Phones, data: in.UserData, created: now,
	}
	if len(in.Addresses) > 0 {
		c.address = &in.Addresses[0]
	}
	d.nextID++
	u := &user{
		id: int64(len(d.users)) + 1, customer: c,
		first: in.FirstName, middle: in.MiddleName, last: in.LastName,
		ssn: in.SSN, dob: in.DOB, userInfo: in.UserInfo, primaryCIF: in.PrimaryCIF,
		ssoIdentifier: in.SSOIdentifier, profileUpdated: in.ProfileUpdated,
		logon: in.LogonName, logonID: d.nextID, authToken: requestID(), created: now,
	}
	if len(in.Emails) > 0 {
		u.email = in.Emails[0].EmailAddress
	}
	if in.AccountLinkingValue != "" && !in.SkipAccountLinking {
		d.nextID++
		u.accounts = []account{{ID: d.nextID, Number: in.AccountLinkingValue, Type: "Checking",
			Description: "Linked account", AllowDeposit: true, AllowWithdrawal: true}}
	}
	c.user = u
	d.customers = append(d.customers, c)
	d.users = append(d.users, u)
	d.liveCustomers++
	d.liveUsers++
	d.byLogon.add(strings.ToLower(u.logon), u.id)
	d.usersBySSN.add(u.ssn, u.id)
	d.usersByCIF.add(u.primaryCIF, u.id)
	d.custsByTaxID.add(c.taxID, c.id)
	d.custsByCIF.add(c.primaryCIF, c.id)
	return nil
}

// userByLogon returns the user, deleted or not, whose logon name is logon
// in any case, or nil; the caller holds d.mu.
func (d *directory) userByLogon(logon string) *user {
	key := strings.ToLower(logon)
	var found *user
	d.byLogon.each(key, func(id int64) bool {
		if u := d.users[id-1]; strings.ToLower(u.logon) == key {
			found = u
		}
		return found == nil
	})
	return found
}

// deleteUser marks the user deleted; false when it is unknown or deleted
// already.
func (d *directory) deleteUser(id int64, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.user(id)
	if u == nil || !u.deleted.IsZero() {
		return false
	}
	u.deleted = now
	d.liveUsers--
	return true
}

// deleteCustomer marks the customer and its user deleted; false when
// it is unknown or deleted already.
func (d *directory) deleteCustomer(id int64, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.customer(id)
	if c == nil || !c.deleted.IsZero() {
		return false
	}
	c.deleted = now
	d.liveCustomers--
	if c.user.deleted.IsZero() {
		c.user.deleted = now
		d.liveUsers--
	}
	return true
}

// user and customer return the record with that id, deleted or not, or
// nil; the caller holds d.mu.
func (d *directory) user(id int64) *user {
	if id < 1 || id > int64(len(d.users)) {
		return nil
	}
	return d.users[id-1]
}

func (d *directory) customer(id int64) *customer {
	if id < 1 || id > int64(len(d.customers)) {
		return nil
	}
	return d.customers[id-1]
}

// lookupUsers answers LookupUser, deleted users included. It starts from
// the narrowest criterion the query names and checks every criterion on
// those candidates only.
func (d *directory) lookupUsers(q userQuery) []userOut {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var byLogon *user
	if q.LoginName != "" {
		byLogon = d.userByLogon(q.LoginName)
	}
	out := []userOut{}
	check := func(id int64) bool {
		u := d.user(id)
		if u != nil &&
			(q.SSN == "" || q.SSN == u.ssn) &&
			(q.LoginName == "" || byLogon == u) &&
			(q.PrimaryCIF == "" || q.PrimaryCIF == u.primaryCIF) &&
			(q.UserID == 0 || q.UserID == u.id) &&
			(q.CustomerID == 0 || q.CustomerID == u.customer.id) {
			out = append(out, u.out(q.IncludeAuthToken))
		}
		return true
	}
	switch {
	case q.UserID != 0:
		check(q.UserID)
	case q.LoginName != "":
		if byLogon != nil {
			check(byLogon.id)
		}
	case q.CustomerID != 0:
		if c := d.customer(q.CustomerID); c != nil {
			check(c.user.id)
		}
	case q.SSN != "":
		d.usersBySSN.each(q.SSN, check)
	default:
		d.usersByCIF.each(q.PrimaryCIF, check)
	}
	return out
}

// lookupCustomers answers LookupCustomer, deleted customers included, the
// same way as lookupUsers.
func (d *directory) lookupCustomers(q customerQuery) []customerOut {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var byLogon *customer
	if q.LoginName != "" {
		if u := d.userByLogon(q.LoginName); u != nil {
			byLogon = u.customer
		}
	}
	out := []customerOut{}
	check := func(id int64) bool {
		c := d.customer(id)
		if c != nil &&
			(q.TaxID == "" || q.TaxID == c.taxID) &&
			(q.LoginName == "" || byLogon == c) &&
			(q.PrimaryCIF == "" || q.PrimaryCIF == c.primaryCIF) &&
			(q.CustomerID == 0 || q.CustomerID == c.id) {
			out = append(out, c.out(q.IncludeAddress, q.IncludePhone, q.IncludeCustomerData))
		}
		return true
	}
	switch {
	case q.CustomerID != 0:
		check(q.CustomerID)
	case q.LoginName != "":
		if byLogon != nil {
			check(byLogon.id)
		}
	case q.TaxID != "":
		d.custsByTaxID.each(q.TaxID, check)
	default:
		d.custsByCIF.each(q.PrimaryCIF, check)
	}
	return out
}

// addExternal links each account to its live logon; an account with an
// unknown or deleted logon, a bad ABA or no number is refused.
func (d *directory) addExternal(list []externalIn) []externalOut {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]externalOut, 0, len(list))
	for _, a := range list {
		u := d.userByLogon(a.LogonName)
		success := u != nil && u.deleted.IsZero() && len(a.ABA) == 9 && a.Account != ""
		if success {
			d.nextID++
			u.accounts = append(u.accounts, account{ID: d.nextID, Number: a.Account, Type: a.AccountType,
				Description: "External " + a.AccountType, ABA: a.ABA, External: true,
				AllowDeposit: a.AllowDeposit, AllowWithdrawal: a.AllowWithdrawal})
		}
		out = append(out, externalOut{ABA: a.ABA, Account: a.Account, Success: success})
	}
	return out
}

// accountList answers the accounts of the live users named by username,
// userID or customerID (the first one set); false when there is none.
func (d *directory) accountList(username string, userID, customerID int64) ([]accountOut, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var u *user
	switch {
	case username != "":
		u = d.userByLogon(username)
	case userID != 0:
		u = d.user(userID)
	default:
		if c := d.customer(customerID); c != nil {
			u = c.user
		}
	}
	if u == nil || !u.deleted.IsZero() {
		return nil, false
	}
	out := []accountOut{}
	for _, a := range u.accounts {
		out = append(out, accountOut{AccountID: a.ID, AccountNumber: a.Number, AccountType: a.Type,
			Description: a.Description, ABA: a.ABA, Balance: "0.00", IsExternal: a.External,
			AllowDeposit: a.AllowDeposit, AllowWithdrawal: a.AllowWithdrawal})
	}
	return out, true
}
