package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"time"
)

// Authenticator decides whether a request comes from the marketplace, on
// the raw body before anything is decoded.
type Authenticator interface {
	Authenticate(r *http.Request, body []byte) error
}

// Verifier checks a Standard Webhooks signature (signature.Verifier).
type Verifier interface {
	Verify(h http.Header, body []byte, now time.Time) error
}

// Signed authenticates by Standard Webhooks signature.
func Signed(v Verifier) Authenticator { return signed{v} }

type signed struct{ v Verifier }

func (s signed) Authenticate(r *http.Request, body []byte) error {
	return s.v.Verify(r.Header, body, time.Now())
}

// ErrBadCredentials is a Basic authentication failure.
var ErrBadCredentials = errors.New("missing or wrong basic credentials")

// Basic authenticates by HTTP Basic credentials (WEBHOOK_BASIC_AUTH), compared
// in constant time.
func Basic(user, password string) Authenticator {
	return basic{user: sha256.Sum256([]byte(user)), password: sha256.Sum256([]byte(password))}
}

type basic struct{ user, password [32]byte }

func (b basic) Authenticate(r *http.Request, _ []byte) error {
	u, p, ok := r.BasicAuth()
	gu, gp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
	// Hashing first makes the comparison independent of the lengths; both
	// comparisons always run.
	if subtle.ConstantTimeCompare(gu[:], b.user[:])&subtle.ConstantTimeCompare(gp[:], b.password[:]) != 1 || !ok {
		return ErrBadCredentials
	}
	return nil
}
