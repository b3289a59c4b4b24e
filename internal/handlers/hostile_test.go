package handlers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/signature"
)

// The tests of this file drive the real net/http server on 127.0.0.1, set
// up as cmd/webhook sets it up, the way an attacker would.

var okReply = inbox.Answer{Kind: events.Final, Body: []byte(`{"success":true,"accountIdentifier":"7"}`), Code: "SUCCESS"}

// serveReal starts the handler behind a real http.Server on 127.0.0.1 with
// cmd/webhook's settings.
func serveReal(t testing.TB, cfg Config) (*httptest.Server, *marketplace) {
	t.Helper()
	if cfg.Receiver == nil {
		cfg.Receiver = &fakeReceiver{reply: okReply}
	}
	h, m := newHandler(cfg)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Config.ReadTimeout = 15 * time.Second
	srv.Config.MaxHeaderBytes = ServerMaxHeaderBytes
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, m
}

// signer signs deliveries with a fresh secret; auth is the matching
// Authenticator.
type signer struct {
	t      testing.TB
	secret string
	n      int
}

// newSigner signs with a secret of its own: 32 random key bytes in the
// WEBHOOK_SECRETS format.
func newSigner(t testing.TB) (*signer, Authenticator) {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key) // never fails
	secret := signature.SecretPrefix + base64.StdEncoding.EncodeToString(key)
	v, err := signature.NewVerifier([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	return &signer{t: t, secret: secret}, Signed(v)
}

// post sends body to url, signed when s is not nil, and returns the status
// and the reply.
func (s *signer) post(client *http.Client, url string, body []byte) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/marketplace/p", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.secret != "" {
		s.n++
		h, err := signature.Headers(s.secret, fmt.Sprintf("msg_%d", s.n), time.Now(), body)
		if err != nil {
			s.t.Fatal(err)
		}
		for k, v := range h {
			req.Header[k] = v
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, reply
}

// slowSender opens a connection and sends the headers of a delivery
// announcing contentLength bytes, then first, and nothing more.
func slowSender(t testing.TB, addr string, contentLength int, first []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_, err = fmt.Fprintf(c, "POST /marketplace/p HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", contentLength)
	if err == nil {
		_, err = c.Write(first)
	}
	if err != nil {
		t.Fatalf("writing to the server: %v", err)
	}
	return c
}

// eventually polls cond, every few milliseconds, for at most limit.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// readReply reads one HTTP response from c and checks that it is a failure
// document with status and code.
func readReply(t *testing.T, c net.Conn, status int, code events.ErrorCode) *http.Response {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	checkFailure(t, resp.StatusCode, resp.Header, body, status, code)
	return resp
}

// checkFailure fails t unless the reply is a failure document with status
// and code.
func checkFailure(t testing.TB, gotStatus int, h http.Header, body []byte, status int, code events.ErrorCode) events.Reply {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("reply %d %q (%s) is not JSON", gotStatus, body, h.Get("Content-Type"))
	}
	var r events.Reply
	_ = json.Unmarshal(body, &r)
	if gotStatus != status || len(doc) != 3 || doc["success"] != false || r.ErrorCode != code || r.Message == "" {
		t.Fatalf("reply %d %s, want %d with a %s failure document", gotStatus, body, status, code)
	}
	return r
}

// Issue 11, item 1: slow unauthenticated connections held every
// processing slot. Now 1,000 of them, all inside their body read, hold no
// processing slot (there are 256), and signed deliveries keep succeeding
// while unsigned ones are refused 401, not 503.
func TestSlowSendersDoNotStopDeliveries(t *testing.T) {
	const slow = 1000
	sign, auth := newSigner(t)
	// A long body deadline keeps the slow senders inside their reads for
	// the whole test: what is proved is that they hold no processing slot.
	srv, m := serveReal(t, Config{Auth: auth, BodyReadTimeout: time.Minute})
	addr := srv.Listener.Addr().String()
	before := liveHeap()

	for range slow {
		slowSender(t, addr, 100_000, []byte("{"))
	}
	eventually(t, 30*time.Second, fmt.Sprintf("%d slow senders to be reading their bodies", slow), func() bool {
		return m.bodies.readers.used() == slow
	})
	if after := liveHeap(); after > before {
		each := (after - before) / slow
		t.Logf("%d slow senders hold %.1f MiB of heap (%.1f KiB each, both ends of the connection)", slow, mib(after-before), float64(each)/1024)
		if each > ConnOverhead {
			t.Errorf("a slow sender holds %d bytes of heap, more than ConnOverhead (%d), which README and deploy/ size pods by", each, ConnOverhead)
		}
	}

	order := orderFixture(t)
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 20 {
		if status, _, reply := sign.post(client, srv.URL, order); status != 200 {
			t.Fatalf("signed delivery %d with %d slow senders open: %d %s", i, slow, status, reply)
		}
	}
	unsigned := &signer{t: t}
	status, h, reply := unsigned.post(client, srv.URL, order)
	checkFailure(t, status, h, reply, 401, events.Unauthorized)
	if m.inFlight.used() != 0 {
		t.Errorf("%d processing slots held after every delivery was answered", m.inFlight.used())
	}
}

// A body that does not arrive within the read timeout is cut: 408 in JSON,
// and the connection is closed.
func TestSlowBodyIsCut(t *testing.T) {
	t.Parallel()
	srv, m := serveReal(t, Config{BodyReadTimeout: 50 * time.Millisecond})
	c := slowSender(t, srv.Listener.Addr().String(), 1000, []byte(`{"event":`))
	resp := readReply(t, c, http.StatusRequestTimeout, events.TransportError)
	if !resp.Close {
		t.Error("the connection of a cut body is kept open")
	}
	eventually(t, 5*time.Second, "the reader slot to be given back", func() bool { return m.bodies.readers.used() == 0 })
	if left := m.bodies.memory.left.Load(); left != DefaultBodyMemory {
		t.Errorf("body memory left %d after the request, want all %d", left, DefaultBodyMemory)
	}
}

// Past the reader cap and past the body memory, a sender is told to come
// back: 503 TRANSPORT_ERROR with Retry-After, in JSON, and nothing waits.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		// hold sends what the slow sender sends before it stalls.
		hold []byte
	}{
		{"reader cap", Config{MaxBodyReaders: 2}, []byte("{")},
		// Each sender's first buffer: all of the body memory.
		{"body memory", Config{BodyMemory: 2 * firstBuffer}, bytes.Repeat([]byte(" "), 3<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.BodyReadTimeout = time.Minute
			srv, m := serveReal(t, tt.cfg)
			addr := srv.Listener.Addr().String()
			held := make([]net.Conn, 0, 2)
			for range cap(held) {
				held = append(held, slowSender(t, addr, 100_000, tt.hold))
			}
			eventually(t, 10*time.Second, "the slow senders to hold the limit", func() bool {
				if tt.cfg.MaxBodyReaders > 0 {
					return m.bodies.readers.used() == 2
				}
				return m.bodies.memory.left.Load() < firstBuffer
			})

			client := &http.Client{Timeout: 10 * time.Second}
			status, h, reply := (&signer{t: t}).post(client, srv.URL, orderFixture(t))
			checkFailure(t, status, h, reply, 503, events.TransportError)
			if h.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}

			for _, c := range held {
				_ = c.Close()
			}
			eventually(t, 10*time.Second, "the limits to be given back", func() bool {
				return m.bodies.readers.used() == 0 && m.bodies.memory.left.Load() == m.bodies.memoryTotal()
			})
			if status, _, reply := (&signer{t: t}).post(client, srv.URL, orderFixture(t)); status != 200 {
				t.Errorf("after the slow senders left: %d %s", status, reply)
			}
		})
	}
}

// Issue 11, item 2: many bodies of 1 MiB - 1 byte, each stalling before its
// last byte, held 320 MB. The body memory now bounds what they hold; the
// heap they leave live stays within it.
func TestStalledBodiesStayInBodyMemory(t *testing.T) {
	const (
		senders = 32
		memory  = 8 << 20
	)
	held, peak := worstBodies(t, senders, memory)
	// The senders' own 1 MiB is in this process too.
	if limit := uint64(BodyHeapBound(senders, memory) + MaxBody); held > limit {
		t.Errorf("%d senders of 1 MiB - 1 byte hold %.1f MiB of heap, more than BodyHeapBound allows (%.1f MiB)",
			senders, mib(held), mib(limit))
	}
	t.Logf("%d stalled senders of 1 MiB - 1 byte, body memory %d MiB: %.1f MiB of heap held, peak heap %.1f MiB", senders, memory>>20, mib(held), mib(peak))
}

// worstBodies starts a server with the given body memory, has senders send
// 1 MiB - 1 byte each and stall, waits until the server has taken in all it
// will, and returns the heap held then (after a GC) beyond what it was
// before, and the peak heap (garbage included) seen meanwhile.
func worstBodies(t testing.TB, senders int, memory int64) (held, peak uint64) {
	t.Helper()
	srv, m := serveReal(t, Config{BodyMemory: memory, BodyReadTimeout: time.Minute})
	addr := srv.Listener.Addr().String()
	before := liveHeap()
	stop := samplePeakHeap(&peak)
	defer stop()

	chunk := bytes.Repeat([]byte(" "), MaxBody-1)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return // counted by the server's state below
			}
			t.Cleanup(func() { _ = c.Close() })
			fmt.Fprintf(c, "POST /marketplace/p HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n", MaxBody)
			_, _ = c.Write(chunk) // refused senders see their connection closed
		}()
	}
	wg.Wait()
	// Settled: every reader left holds a whole body (a buffer of MaxBody+1)
	// and is waiting for its last byte; the others were refused.
	settled := 0
	eventually(t, 30*time.Second, "the server to take in every body it can", func() bool {
		readers := int64(m.bodies.readers.used())
		full := readers > 0 && m.bodies.memoryTotal()-m.bodies.memory.left.Load() == readers*(MaxBody+1)
		if !full {
			settled = 0
			return false
		}
		settled++
		return settled == 3
	})
	stop()
	if after := liveHeap(); after > before {
		held = after - before
	}
	return held, peak
}

// samplePeakHeap records in *peak the largest heap (live objects and
// garbage not yet collected) seen until stop is called.
func samplePeakHeap(peak *uint64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			*peak = max(*peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// liveHeap is the heap of live objects. Two collections empty the
// sync.Pools (net/http's buffers, ours) that other tests filled.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// BenchmarkWorstBodies reports the heap held by 256 senders of 1 MiB - 1
// byte that stall (the attack of issue 11 item 2), with the default body
// memory: go test -run '^$' -bench WorstBodies ./internal/handlers
func BenchmarkWorstBodies(b *testing.B) {
	for b.Loop() {
		held, peak := worstBodies(b, 256, DefaultBodyMemory)
		b.ReportMetric(mib(held), "MiB-held")
		b.ReportMetric(mib(peak), "MiB-peak-heap")
	}
}

// Headers past the handler's limits are answered 431 in JSON; only past
// net/http's own limit (ServerMaxHeaderBytes) does net/http answer, in
// text/plain, before any handler runs.
func TestHeaderLimits(t *testing.T) {
	t.Parallel()
	srv, _ := serveReal(t, Config{})
	many := make(http.Header)
	for i := range MaxHeaderFields + 1 {
		many.Set(fmt.Sprintf("X-H%d", i), "1")
	}
	large := http.Header{"X-Large": {strings.Repeat("a", MaxHeaderBytes)}}
	tests := []struct {
		name   string
		path   string
		header http.Header
	}{
		{"too many fields", "/marketplace/p", many},
		{"too many bytes", "/marketplace/p", large},
		{"too many bytes on /healthz", "/healthz", large},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tt.path, strings.NewReader("{}"))
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			checkFailure(t, resp.StatusCode, resp.Header, body, http.StatusRequestHeaderFieldsTooLarge, events.InvalidResponse)
		})
	}

	// What the service cannot shape, documented in README "Hostile input":
	// net/http answers it in text/plain before any handler runs.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Huge: %s\r\n\r\n", strings.Repeat("a", ServerMaxHeaderBytes+8<<10))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading net/http's answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("past ServerMaxHeaderBytes: %d %s; README says net/http answers 431 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// BenchmarkReceiveBytesPerByte reports what one signed delivery of about
// 1 MiB costs the handler (read, authenticate, key, decode) in bytes
// allocated per byte of body, for bodies whose bulk is in the worst shapes:
// go test -run '^$' -bench ReceiveBytesPerByte ./internal/handlers
func BenchmarkReceiveBytesPerByte(b *testing.B) {
	order := orderFixture(b)
	bulk := func(elem string) string {
		return "[" + strings.Repeat(elem+",", (MaxBody-len(order)-64)/(len(elem)+1)) + elem + "]"
	}
	shapes := map[string][]byte{
		"order event":                        order,
		"unknown field of empty objects":     withTopKey(b, order, `"x":`+bulk("{}")),
		"unknown field of objects unordered": withTopKey(b, order, `"x":`+bulk(`{"b":1,"a":2}`)),
		"long string":                        withTopKey(b, order, `"x":"`+strings.Repeat("a", MaxBody-len(order)-64)+`"`),
		"configuration of empty objects":     insertAfter(b, order, `"configuration": {`, `"x":`+bulk("{}")+`,`),
	}
	for name, body := range shapes {
		b.Run(name, func(b *testing.B) {
			if len(body) > MaxBody {
				b.Fatalf("body of %d bytes", len(body))
			}
			h := New(Config{Receiver: &fakeReceiver{reply: okReply}})
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/marketplace/p", bytes.NewReader(body))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(len(body)), "B/byte")
		})
	}
}

// withTopKey puts a member at the start of body's top-level object.
func withTopKey(t testing.TB, body []byte, member string) []byte {
	t.Helper()
	return insertAfter(t, body, "{", member+",")
}

// insertAfter inserts s after the first marker in body.
func insertAfter(t testing.TB, body []byte, marker, s string) []byte {
	t.Helper()
	i := bytes.Index(body, []byte(marker))
	if i < 0 {
		t.Fatalf("the fixture has no %s", marker)
	}
	i += len(marker)
	return append(append(append([]byte{}, body[:i]...), s...), body[i:]...)
}

// slowReceiver takes longer than the body read timeout to answer, and fails
// if the request's context ends first.
type slowReceiver struct{ wait time.Duration }

func (slowReceiver) Copy(context.Context, string) (inbox.Answer, inbox.Copy, bool) {
	return inbox.Answer{}, inbox.Copy{}, false
}

func (r slowReceiver) Receive(ctx context.Context, _ inbox.Delivery) (inbox.Answer, error) {
	select {
	case <-ctx.Done():
		return inbox.Answer{}, fmt.Errorf("the request's context ended while processing: %w", ctx.Err())
	case <-time.After(r.wait):
		return okReply, nil
	}
}

// The body's read deadline ends with the body: net/http reads the
// connection in the background while the delivery is processed, and a
// deadline passing then would cancel the delivery's context.
func TestReadDeadlineDoesNotCutProcessing(t *testing.T) {
	t.Parallel()
	srv, _ := serveReal(t, Config{Receiver: slowReceiver{wait: 300 * time.Millisecond}, BodyReadTimeout: 50 * time.Millisecond})
	client := &http.Client{Timeout: 10 * time.Second}
	if status, _, reply := (&signer{t: t}).post(client, srv.URL, orderFixture(t)); status != 200 {
		t.Errorf("a delivery processed past the body's read deadline: %d %s", status, reply)
	}
	// An empty body: net/http has finished it before the handler runs.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/marketplace/p", http.NoBody)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("an empty body: %d, want 400", resp.StatusCode)
	}
}
