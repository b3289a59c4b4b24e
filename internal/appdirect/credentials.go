package appdirect

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The reasons a notification's separate credentials are refused, matched
// with errors.Is; the door answers both with 401.
var (
	// ErrNoCredentials: no "Authorization: Bearer" or "Basic" header, or
	// one of a kind that is not configured.
	ErrNoCredentials = errors.New("no bearer token or Basic credentials")
	// ErrBadCredentials: a token or Basic credentials that match none of
	// the configured ones.
	ErrBadCredentials = errors.New("bearer token or Basic credentials do not match")
)

// CredentialVerifier checks the notification's credentials in AppDirect's
// separate-credentials mode: "Authorization: Bearer <token>" or HTTP
// Basic, each against several configured values (rotation). It is safe
// for concurrent use.
type CredentialVerifier struct {
	tokens [][32]byte // SHA-256 of each token
	basics [][32]byte // SHA-256 of each "user:password"
}

// NewCredentialVerifier accepts the bearer tokens and the Basic
// credentials ("user:password", the user not empty, the password may hold
// colons) given; at least one value in all. Its errors say which value is
// wrong by position, never the value.
func NewCredentialVerifier(tokens, basics []string) (*CredentialVerifier, error) {
	if len(tokens)+len(basics) == 0 {
		return nil, errors.New("appdirect: NewCredentialVerifier needs at least one bearer token or Basic user:password")
	}
	c := &CredentialVerifier{}
	for i, t := range tokens {
		if t == "" || strings.ContainsAny(t, " \t\r\n") {
			return nil, fmt.Errorf("appdirect: bearer token %d is empty or holds white space", i+1)
		}
		c.tokens = append(c.tokens, sha256.Sum256([]byte(t)))
	}
	for i, b := range basics {
		user, _, ok := strings.Cut(b, ":")
		if !ok || user == "" || strings.ContainsAny(b, "\r\n") {
			return nil, fmt.Errorf("appdirect: Basic credentials %d must be user:password with a user", i+1)
		}
		c.basics = append(c.basics, sha256.Sum256([]byte(b)))
	}
	return c, nil
}

// Verify checks r's Authorization header and returns who it was, for
// logs: "bearer", or the Basic user name. Every configured value of the
// kind is compared, in constant time and through a hash, so that neither
// the time taken nor the lengths tell how close a guess came. The ctx is
// unused; it makes Verify the shape of Verifier.Verify.
func (c *CredentialVerifier) Verify(_ context.Context, r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if tok, ok := cutScheme(h, "Bearer"); ok && len(c.tokens) > 0 {
		if !anyEqual(c.tokens, tok) {
			return "", ErrBadCredentials
		}
		return "bearer", nil
	}
	if user, pass, ok := r.BasicAuth(); ok && len(c.basics) > 0 {
		if !anyEqual(c.basics, user+":"+pass) {
			return "", ErrBadCredentials
		}
		return user, nil
	}
	return "", ErrNoCredentials
}

// cutScheme returns the credentials of an Authorization header of scheme
// (case-insensitive), trimmed.
func cutScheme(h, scheme string) (string, bool) {
	s, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(s, scheme) {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// anyEqual compares v with every hash, without stopping at a match.
func anyEqual(hashes [][32]byte, v string) bool {
	sum := sha256.Sum256([]byte(v))
	match := 0
	for _, h := range hashes {
		match |= subtle.ConstantTimeCompare(h[:], sum[:])
	}
	return match == 1
}
