package loadtest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// replier answers by body: ok (replayed success), fail (200 failure), busy
// (503), drop (the connection closed without a reply).
func replier(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		switch string(body) {
		case "ok":
			w.Header().Set("Idempotent-Replayed", "true")
			_, _ = io.WriteString(w, `{"success":true,"accountIdentifier":"1"}`)
		case "fail":
			_, _ = io.WriteString(w, `{"success":false,"errorCode":"FORBIDDEN","message":"no"}`)
		case "busy":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"success":false,"errorCode":"TRANSPORT_ERROR","message":"busy"}`)
		case "drop":
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFireCounts(t *testing.T) {
	srv := replier(t)
	bodies := [][]byte{[]byte("ok"), []byte("fail"), []byte("busy"), []byte("drop")}
	out := fire(context.Background(), shot{url: srv.URL, bodies: bodies, n: 40, c: 4, timeout: 10 * time.Second})
	checks := []struct {
		name      string
		got, want int
	}{
		{"sent", out.Sent, 40},
		{"200", out.Status[200], 20},
		{"503", out.Status[503], 10},
		{"transport errors", out.Status[0], 10},
		{"not success", out.NotSuccess, 10},
		{"replayed", out.Replayed, 10},
		{"latencies (replies only)", len(out.Latencies), 30},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d; want %d (outcome %+v)", c.name, c.got, c.want, out.Status)
		}
	}
	if out.FirstError == "" {
		t.Error("no first error recorded for the dropped connections")
	}
	for i := 1; i < len(out.Latencies); i++ {
		if out.Latencies[i] < out.Latencies[i-1] {
			t.Fatal("latencies are not sorted")
		}
	}
}

func TestFireStopsWithContext(t *testing.T) {
	srv := replier(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := fire(ctx, shot{url: srv.URL, bodies: [][]byte{[]byte("ok")}, n: 1000, c: 8, timeout: 10 * time.Second})
	if out.Sent != 0 || out.Status[0] != 0 {
		t.Fatalf("after cancel: sent %d, errors %d; want nothing sent and no error counted", out.Sent, out.Status[0])
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, .5, 0},
		{"one", []time.Duration{ms(7)}, .99, ms(7)},
		{"p50 of 100", hundred, .50, ms(50)},
		{"p90 of 100", hundred, .90, ms(90)},
		{"p99 of 100", hundred, .99, ms(99)},
		{"p100 of 100", hundred, 1, ms(100)},
		{"p50 of 3", []time.Duration{ms(1), ms(2), ms(3)}, .5, ms(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Fatalf("got %s; want %s", got, tt.want)
			}
		})
	}
}

// TestFireResends: with resend, a 503 with Retry-After is sent again until
// it is answered; one without Retry-After is counted and given up.
func TestFireResends(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[string(body)]++
		n := seen[string(body)]
		mu.Unlock()
		switch {
		case string(body) == "later" && n <= 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
		case string(body) == "never":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = io.WriteString(w, `{"success":true}`)
		}
	}))
	defer srv.Close()
	out := fire(context.Background(), shot{url: srv.URL, bodies: [][]byte{[]byte("later"), []byte("never"), []byte("ok")},
		n: 3, c: 1, timeout: 10 * time.Second, resend: true})
	checks := []struct {
		name      string
		got, want int
	}{
		{"sent (every reply)", out.Sent, 5},
		{"200", out.Status[200], 2},
		{"503", out.Status[503], 3},
		{"resent", out.Resent, 2},
		{"503 without Retry-After", out.NoRetryAfter, 1},
		{"never answered 2xx", out.Unanswered, 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d; want %d (%+v)", c.name, c.got, c.want, out.Status)
		}
	}
}
