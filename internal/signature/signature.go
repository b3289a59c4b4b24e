// Package signature signs and verifies webhook deliveries the Standard
// Webhooks way (https://www.standardwebhooks.com): three headers,
//
//	webhook-id:        msg_2KWPBgLlAfxdpx2AI54pPJ85f4W
//	webhook-timestamp: 1674087231
//	webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1,...
//
// where each v1 entry is the base64 HMAC-SHA256, under the shared secret, of
// id + "." + timestamp + "." + the raw body. Secrets are written "whsec_"
// followed by the base64 of the key bytes.
//
// The receiver keeps several secrets during a rotation, and the sender may
// send several signatures: any one pair matching is enough. Verification
// works on the raw bytes, compares in constant time, and bounds the work a
// hostile request can ask for (header lengths, number of entries checked).
// It imports nothing of ours: the wiring (cmd/webhook) builds the
// receiver's Verifier from WEBHOOK_SECRETS and hands it to the handlers,
// which see only their own Verifier interface, and the replay tool signs
// with it.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Tolerance is how far a delivery's timestamp may be from the receiver's
// clock, either way, before it is refused: a captured request cannot be
// replayed later than this, and small clock skews still pass.
const Tolerance = 5 * time.Minute

// SecretPrefix marks a Standard Webhooks symmetric secret.
const SecretPrefix = "whsec_"

// MinKeyBytes is the shortest key a secret may hold: the specification asks
// for at least 24 random bytes (192 bits).
const MinKeyBytes = 24

// Limits on what Verify looks at, so that a hostile request costs little.
const (
	// MaxSignatures is how many entries of webhook-signature are examined;
	// the rest are ignored. Senders use one, or two during a rotation.
	MaxSignatures = 10
	// maxIDLen bounds webhook-id; real ids are about 30 characters.
	maxIDLen = 256
	// maxTimestampLen bounds webhook-timestamp: Unix seconds fit in 19 digits.
	maxTimestampLen = 19
	// maxSignatureHeaderLen bounds webhook-signature: ten asymmetric (v1a)
	// entries of 92 characters fit comfortably.
	maxSignatureHeaderLen = 4096
	// macLen is the length of an HMAC-SHA256.
	macLen = sha256.Size
)

// The reasons Verify refuses a delivery. Verify wraps them with detail that
// is safe to log (never a secret, never a computed signature); test them
// with errors.Is.
var (
	// ErrNotSigned: a webhook header is missing or empty.
	ErrNotSigned = errors.New("request is not signed")
	// ErrBadHeader: a webhook header is present but malformed or too long.
	ErrBadHeader = errors.New("malformed signature header")
	// ErrTooOld: the timestamp is more than Tolerance in the past.
	ErrTooOld = errors.New("timestamp too old")
	// ErrTooNew: the timestamp is more than Tolerance in the future.
	ErrTooNew = errors.New("timestamp too far in the future")
	// ErrNoMatchingSignature: no v1 signature matches any configured secret.
	ErrNoMatchingSignature = errors.New("no matching signature")
)

// Verifier checks Standard Webhooks signatures against a set of secrets. It
// is safe for concurrent use.
type Verifier struct {
	keys [][]byte
}

// NewVerifier builds a Verifier from secrets, each "whsec_" + base64 key
// (the prefix may be left out, as the reference libraries allow). Any of
// them may sign a delivery, which is how a secret is rotated without
// downtime. The errors name the position of the bad secret and the fix,
// never the secret itself, nor where the secrets came from: the caller
// knows that (WEBHOOK_SECRETS) and adds it.
func NewVerifier(secrets []string) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("no secrets: give one or more (%s followed by the base64 of at least %d random bytes)", SecretPrefix, MinKeyBytes)
	}
	v := &Verifier{keys: make([][]byte, 0, len(secrets))}
	for i, s := range secrets {
		key, err := decodeSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d of %d %w", i+1, len(secrets), err)
		}
		v.keys = append(v.keys, key)
	}
	return v, nil
}

// decodeSecret returns the key bytes of a secret. Its errors describe the
// problem and the fix without quoting the secret.
func decodeSecret(secret string) ([]byte, error) {
	s := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(secret), SecretPrefix))
	if s == "" {
		return nil, fmt.Errorf("is empty: write %s followed by the base64 of at least %d random bytes", SecretPrefix, MinKeyBytes)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("is not valid base64 after the %s prefix: write %s followed by the standard base64 (with padding) of the key, for example %s$(openssl rand -base64 32)", SecretPrefix, SecretPrefix, SecretPrefix)
	}
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("holds a %d-byte key, shorter than the %d bytes Standard Webhooks requires: generate a new one, for example %s$(openssl rand -base64 32)", len(key), MinKeyBytes, SecretPrefix)
	}
	return key, nil
}

// Verify checks that body, with the webhook headers of h, was signed by one
// of v's secrets at a time within Tolerance of now. It returns nil or an
// error wrapping one of the Err values. body must be the raw bytes as
// received: re-encoded JSON does not verify.
func (v *Verifier) Verify(h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	switch {
	case id == "":
		return fmt.Errorf("%w: the %s header is missing", ErrNotSigned, HeaderID)
	case ts == "":
		return fmt.Errorf("%w: the %s header is missing", ErrNotSigned, HeaderTimestamp)
	case sigs == "":
		return fmt.Errorf("%w: the %s header is missing", ErrNotSigned, HeaderSignature)
	case len(id) > maxIDLen:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrBadHeader, HeaderID, maxIDLen)
	case len(sigs) > maxSignatureHeaderLen:
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrBadHeader, HeaderSignature, maxSignatureHeaderLen)
	}
	sent, err := parseTimestamp(ts)
	if err != nil {
		return err
	}
	// Checked before any HMAC: a stale flood costs no hashing.
	if now.Sub(sent) > Tolerance {
		return fmt.Errorf("%w: signed at %s, more than %s before now (%s)", ErrTooOld, sent.UTC().Format(time.RFC3339), Tolerance, now.UTC().Format(time.RFC3339))
	}
	if sent.Sub(now) > Tolerance {
		return fmt.Errorf("%w: signed at %s, more than %s after now (%s); check the sender's clock", ErrTooNew, sent.UTC().Format(time.RFC3339), Tolerance, now.UTC().Format(time.RFC3339))
	}

	// One MAC per secret, computed once, compared with every entry.
	var macsBuf [4][macLen]byte
	macs := macsBuf[:0]
	if len(v.keys) > len(macsBuf) {
		macs = make([][macLen]byte, 0, len(v.keys))
	}
	for _, key := range v.keys {
		var m [macLen]byte
		computeMAC(hmac.New(sha256.New, key), id, ts, body, m[:0])
		macs = append(macs, m)
	}

	var got [macLen + 3]byte // room to detect an over-long decoded value
	rest, examined := sigs, 0
	for rest != "" && examined < MaxSignatures {
		var entry string
		entry, rest, _ = strings.Cut(rest, " ")
		if entry == "" {
			continue // several spaces in a row
		}
		examined++
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue // malformed, or another scheme (v1a): not ours to check
		}
		if base64.StdEncoding.DecodedLen(len(sig)) > len(got) {
			continue
		}
		n, err := base64.StdEncoding.Decode(got[:], []byte(sig))
		if err != nil || n != macLen {
			continue
		}
		for i := range macs {
			if hmac.Equal(got[:macLen], macs[i][:]) {
				return nil
			}
		}
	}
	return ErrNoMatchingSignature
}

// parseTimestamp reads Unix seconds written as plain decimal digits. Signs,
// spaces and leading zeros would let one signed string stand for several
// headers, so they are refused.
func parseTimestamp(ts string) (time.Time, error) {
	if len(ts) > maxTimestampLen || (len(ts) > 1 && ts[0] == '0') {
		return time.Time{}, fmt.Errorf("%w: %s must be Unix seconds in decimal", ErrBadHeader, HeaderTimestamp)
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < '0' || ts[i] > '9' {
			return time.Time{}, fmt.Errorf("%w: %s must be Unix seconds in decimal", ErrBadHeader, HeaderTimestamp)
		}
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s must be Unix seconds in decimal", ErrBadHeader, HeaderTimestamp)
	}
	return time.Unix(secs, 0), nil
}

// computeMAC appends to dst the HMAC of id.ts.body, without copying body.
func computeMAC(mac hash.Hash, id, ts string, body, dst []byte) []byte {
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(dst)
}

// Sign returns the webhook-signature header value ("v1,<base64>") for body
// sent with webhook-id id at time ts, under secret.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", fmt.Errorf("signing secret %w", err)
	}
	if id == "" {
		return "", errors.New("signing: the webhook id is empty")
	}
	var m [macLen]byte
	computeMAC(hmac.New(sha256.New, key), id, strconv.FormatInt(ts.Unix(), 10), body, m[:0])
	return "v1," + base64.StdEncoding.EncodeToString(m[:]), nil
}

// Headers returns the three webhook headers for body, signed with secret:
// what a sender (the replay tool, a test) adds to its request.
func Headers(secret, id string, ts time.Time, body []byte) (http.Header, error) {
	sig, err := Sign(secret, id, ts, body)
	if err != nil {
		return nil, err
	}
	h := make(http.Header, 3)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h, nil
}
