package httpcall

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps every wait an outside system asks for, whether it
// comes from a Retry-After header or from a client's own reading of the
// body (Helix's throttle), before it is put on an error.
//
// Why a cap, and why 60 s: the wait a client's error carries is what the
// service passes on to the marketplace in its own Retry-After. The
// marketplace retries on its own schedule and our Retry-After is at most a
// hint to it, but a value such as 86400, or an HTTP date eleven years
// ahead, must never reach it: a marketplace that honoured it would never
// send the event again, and the subscription would stay unprovisioned. A
// minute is longer than the outages worth waiting out (a rolling restart,
// a rate-limit window) and short enough that the next copy of the delivery
// comes while the customer still waits for it.
const MaxRetryAfter = 60 * time.Second

// ParseRetryAfter reads a Retry-After header value as RFC 9110 §10.2.3
// defines it: delta-seconds (digits only) or an HTTP date (IMF-fixdate, or
// the obsolete RFC 850 and asctime forms), counted from now. A date in the
// past is a wait of 0, as is "0". The wait is capped at MaxRetryAfter. ok is
// false when the value is empty or unreadable (a negative or fractional
// number, garbage): the caller then waits as it would without the header.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if strings.Trim(v, "0123456789") == "" {
		s, err := strconv.ParseUint(v, 10, 63)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, false
		}
		if err != nil || s > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true // a number too large to hold is still "a long time"
		}
		return time.Duration(s) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return capWait(t.Sub(now)), true
}

// capWait keeps a wait within [0, MaxRetryAfter].
func capWait(d time.Duration) time.Duration {
	return min(max(d, 0), MaxRetryAfter)
}
