package q2

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
)

// LogonName is the Q2 logon name of a subscription's user: derived from the
// subscription alone, so that every attempt at its enrollment uses the same
// one, and Q2's unique logon names make a second user impossible.
func LogonName(subscriptionID string) string {
	sum := sha256.Sum256([]byte("q2-marketplace-subscription:" + subscriptionID))
	return "mp" + hex.EncodeToString(sum[:10])
}

// Marker is what the service writes in the UserInfo of the users it enrolls,
// to tell its own user of a logon from somebody else's.
func Marker(subscriptionID string) string {
	return "marketplace-subscription:" + subscriptionID
}

// newEnrollment builds the Q2 enrollment of an ORDER's user: the creator, or
// the company when there is no creator. ok is false when there is neither.
func newEnrollment(ev *events.SubscriptionEvent, subscription string) (e q2api.Enrollment, ok bool) {
	creator, company := ev.Event.Creator, ev.Event.Payload.Company
	switch {
	case creator != nil && (creator.FirstName != "" || creator.LastName != ""):
		e.FirstName, e.LastName = creator.FirstName, creator.LastName
	case company != nil && company.Name != "":
		e.FirstName, e.LastName = company.Name, "Administrator"
	default:
		return e, false
	}
	e.LogonName = LogonName(subscription)
	e.Password = newPassword()
	e.RequirePasswordReset = true
	e.SSOIdentifier = ev.SSOUserID
	e.UserInfo = Marker(subscription)
	e.UserData = map[string]string{"SubscriptionID": subscription}
	if ev.ProductIdentifier != "" {
		e.UserData["ProductIdentifier"] = ev.ProductIdentifier
	}
	if o := ev.Event.Payload.Order; o != nil && o.EditionCode != "" {
		e.UserData["Edition"] = o.EditionCode
	}
	if company != nil && company.Name != "" {
		e.UserData["Company"] = company.Name
	}
	if creator == nil {
		return e, true
	}
	if creator.Email != "" {
		e.Emails = []q2api.Email{{EmailAddress: creator.Email}}
	}
	if a := creator.Address; a != nil {
		if a.Street1 != "" || a.City != "" {
			e.Addresses = []q2api.Address{{Address1: a.Street1, Address2: a.Street2, City: a.City,
				State: a.State, Zip: a.Zip, AddressType: "Home"}}
		}
		if a.Phone != "" {
			e.Phones = []q2api.Phone{{Phone: a.Phone, PhoneType: "Home"}}
		}
	}
	return e, true
}

// newMemberEnrollment builds the Q2 enrollment of a user assigned to the
// subscription (payload.user of a USER_ASSIGNMENT). ok is false when the
// event names no one.
func newMemberEnrollment(ev *events.SubscriptionEvent, who string) (e q2api.Enrollment, ok bool) {
	u := ev.Event.Payload.User
	if u == nil || (u.FirstName == "" && u.LastName == "") {
		return e, false
	}
	e.FirstName, e.LastName = u.FirstName, u.LastName
	e.LogonName = LogonName(who)
	e.Password = newPassword()
	e.RequirePasswordReset = true
	e.UserInfo = Marker(who)
	e.UserData = map[string]string{"SubscriptionID": ev.SubscriptionID}
	if u.Email != "" {
		e.Emails = []q2api.Email{{EmailAddress: u.Email}}
	}
	return e, true
}

// newPassword returns a strong random password (24 characters from
// crypto/rand, every character class present). The user must reset it
// (RequirePasswordReset); it is never logged or kept.
func newPassword() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!#$%*+-=?@^_"
	buf := make([]byte, 24)
	for {
		for i := range buf {
			buf[i] = alphabet[randIndex(len(alphabet))]
		}
		p := string(buf)
		if strings.ContainsAny(p, "abcdefghijkmnopqrstuvwxyz") && strings.ContainsAny(p, "ABCDEFGHJKLMNPQRSTUVWXYZ") &&
			strings.ContainsAny(p, "23456789") && strings.ContainsAny(p, "!#$%*+-=?@^_") {
			return p
		}
	}
}

// randIndex is a uniform random index below n (n <= 256) from crypto/rand.
func randIndex(n int) int {
	var b [1]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		if int(b[0]) < 256-256%n {
			return int(b[0]) % n
		}
	}
}
