package httpcall

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		ok       bool
	}{
		{"absent", "", 0, false},
		{"zero", "0", 0, true},
		{"seconds", "7", 7 * time.Second, true},
		{"seconds with spaces", " 7 ", 7 * time.Second, true},
		{"at the cap", "60", MaxRetryAfter, true},
		{"a day is capped", "86400", MaxRetryAfter, true},
		{"too large to hold is capped", "99999999999999999999999", MaxRetryAfter, true},
		{"negative", "-3", 0, false},
		{"signed", "+3", 0, false},
		{"fraction", "1.5", 0, false},
		{"garbage", "soon", 0, false},
		{"IMF-fixdate", "Thu, 02 Jan 2025 03:04:35 GMT", 30 * time.Second, true},
		{"RFC 850 date", "Thursday, 02-Jan-25 03:04:15 GMT", 10 * time.Second, true},
		{"asctime date", "Thu Jan  2 03:04:25 2025", 20 * time.Second, true},
		{"date in the past", "Thu, 02 Jan 2025 03:04:00 GMT", 0, true},
		{"date eleven years out is capped", now.AddDate(11, 0, 0).Format(http.TimeFormat), MaxRetryAfter, true},
		{"date not GMT", "Thu, 02 Jan 2025 03:04:35 PST", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tc.in, now)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestSetRetryAfterCaps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want time.Duration }{
		{-time.Second, 0},
		{3 * time.Second, 3 * time.Second},
		{24 * time.Hour, MaxRetryAfter},
	} {
		var r Response
		r.SetRetryAfter(tc.in)
		if r.RetryAfter != tc.want || !r.HasRetryAfter() {
			t.Errorf("SetRetryAfter(%v) = %v (set %v), want %v", tc.in, r.RetryAfter, r.HasRetryAfter(), tc.want)
		}
	}
}
