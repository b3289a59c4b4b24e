package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxReply bounds what is read of a reply: reply documents are small.
const maxReply = 1 << 20

// shot is one phase's traffic: n POSTs of bodies[i % len(bodies)] to url by
// c workers, each on its own keep-alive connection.
type shot struct {
	url     string
	bodies  [][]byte
	n, c    int
	timeout time.Duration // per request
	// resend: a 503 with Retry-After is sent again after it (at most
	// maxResends times), as the marketplace does; every reply is counted.
	resend bool
	// halfway, when set, is called once, as the request n/2 is sent.
	halfway func()
}

// maxResends bounds how often one body is sent again after a 503, and
// maxRetryAfter how long a Retry-After is waited for.
const (
	maxResends    = 20
	maxRetryAfter = 5 * time.Second
)

// outcome is what came back from a shot.
type outcome struct {
	Sent       int             // requests that got a reply or failed
	Elapsed    time.Duration   // wall time of the whole shot
	Latencies  []time.Duration // of the requests that got a reply, sorted
	Status     map[int]int     // replies by HTTP status; 0 counts transport errors
	NotSuccess int             // 2xx replies whose document is not success:true
	Replayed   int             // replies with Idempotent-Replayed: true
	FirstError string          // the first transport error, if any
	// NoRetryAfter counts 503 replies without a Retry-After header.
	NoRetryAfter int
	// Resent counts bodies sent again after a 503 (shot.resend), and
	// Unanswered the bodies that never got a 2xx.
	Resent, Unanswered int
}

// fire sends the shot and waits for every reply. ctx ending stops it early;
// the outcome then counts what was sent.
func fire(ctx context.Context, s shot) outcome {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        s.c,
		MaxIdleConnsPerHost: s.c,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: s.timeout}

	type tally struct {
		lat                                              []time.Duration
		status                                           map[int]int
		notSuccess, replayed, noRetryAfter, resent, lost int
		firstErr                                         string
	}
	tallies := make([]tally, s.c)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range s.c {
		t := &tallies[w]
		t.status = map[int]int{}
		t.lat = make([]time.Duration, 0, s.n/s.c+1)
		wg.Go(func() {
			var buf bytes.Buffer
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= s.n {
					return
				}
				if i == s.n/2 && s.halfway != nil {
					s.halfway()
				}
				for attempt := 0; ; attempt++ {
					t0 := time.Now()
					r, err := post(ctx, client, s.url, s.bodies[i%len(s.bodies)], &buf)
					if err != nil {
						if ctx.Err() != nil {
							return // stopped, not failed
						}
						t.status[0]++
						t.lost++
						if t.firstErr == "" {
							t.firstErr = err.Error()
						}
						break
					}
					t.lat = append(t.lat, time.Since(t0))
					t.status[r.status]++
					if r.replayed {
						t.replayed++
					}
					if r.status/100 == 2 && !r.ok {
						t.notSuccess++
					}
					if r.status != http.StatusServiceUnavailable {
						if r.status/100 != 2 {
							t.lost++
						}
						break
					}
					if r.retryAfter <= 0 {
						t.noRetryAfter++
					}
					if !s.resend || r.retryAfter <= 0 || attempt == maxResends {
						t.lost++
						break
					}
					t.resent++
					select {
					case <-ctx.Done():
						return
					case <-time.After(min(r.retryAfter, maxRetryAfter)):
					}
				}
			}
		})
	}
	wg.Wait()
	out := outcome{Elapsed: time.Since(start), Status: map[int]int{}}
	for _, t := range tallies {
		out.Latencies = append(out.Latencies, t.lat...)
		for k, v := range t.status {
			out.Status[k] += v
			out.Sent += v
		}
		out.NotSuccess += t.notSuccess
		out.Replayed += t.replayed
		out.NoRetryAfter += t.noRetryAfter
		out.Resent += t.resent
		out.Unanswered += t.lost
		if out.FirstError == "" {
			out.FirstError = t.firstErr
		}
	}
	slices.Sort(out.Latencies)
	return out
}

// result is one reply: its status, Idempotent-Replayed, Retry-After (0
// when absent), and whether it is a {"success": true} document.
type result struct {
	status     int
	replayed   bool
	retryAfter time.Duration
	ok         bool
}

// post sends one delivery and reads the whole reply (so that the
// connection is reused).
func post(ctx context.Context, client *http.Client, url string, body []byte, buf *bytes.Buffer) (result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxReply)); err != nil {
		return result{}, err
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return result{}, err
	}
	var doc struct {
		Success bool `json:"success"`
	}
	r := result{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	r.ok = json.Unmarshal(buf.Bytes(), &doc) == nil && doc.Success
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		r.retryAfter = max(time.Duration(s)*time.Second, time.Millisecond) // "0" still says when
	}
	return r, nil
}

// percentile is the nearest-rank percentile p (0 < p <= 1) of sorted
// latencies; 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
