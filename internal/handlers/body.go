package handlers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/banking-marketplace/webhook/internal/events"
)

// The limits on reading bodies, before anybody is authenticated. README
// "Hostile input" explains how to size them for a pod.
const (
	// MaxBody is the largest body accepted (413 past it).
	MaxBody = 1 << 20
	// DefaultBodyReadTimeout is how long a body may take to arrive, from
	// the moment its reading starts: well below the marketplace's 5 s, so
	// a slow sender is cut long before a delivery would time out.
	DefaultBodyReadTimeout = 2 * time.Second
	// DefaultMaxBodyReaders is how many requests may be reading their
	// bodies at once (503 past it). Each holds at least firstBuffer bytes of
	// BodyMemory; a slow sender holds one for at most the read timeout.
	DefaultMaxBodyReaders = 2048
	// DefaultBodyMemory is how many bytes of bodies may be held at once,
	// read or being read, from the first byte until the request ends (503
	// past it). It is what bounds the memory unauthenticated senders can
	// make the service hold, whatever the number of connections.
	DefaultBodyMemory = 64 << 20
)

// ConnOverhead is the heap a connection reading a body holds besides the
// body's bytes: net/http's buffers, the request and its headers, echo's
// context. TestSlowSendersDoNotStopDeliveries measures it (about 20 KiB,
// counting the client's end too) and holds it below this.
const ConnOverhead = 24 << 10

// BodyHeapBound is the most heap that requests reading or holding bodies
// keep live at once, with readers body readers and memory bytes of body
// memory, however many connections send: the bodies' bytes, plus each
// reader's connection. The garbage of buffers that grew comes on top until
// the GC runs (GOMEMLIMIT makes it run before the pod's limit).
func BodyHeapBound(readers int, memory int64) int64 {
	return memory + int64(readers)*ConnOverhead
}

const (
	// firstBuffer is where a body's buffer starts: it grows, doubling, with
	// what arrives, never from what Content-Length announces.
	firstBuffer = 4 << 10
	// maxPooled is the largest buffer put back in the pool: a rare large
	// body does not pin a large buffer.
	maxPooled = 64 << 10
)

// bodies reads request bodies under the limits above.
type bodies struct {
	timeout time.Duration
	readers slots
	memory  budget
	total   int64     // the body memory
	pool    sync.Pool // *[]byte, cap firstBuffer..maxPooled
}

func newBodies(readers int, memory int64, timeout time.Duration) *bodies {
	b := &bodies{timeout: timeout, readers: newSlots(readers), total: memory}
	b.memory.left.Store(memory)
	b.pool.New = func() any { buf := make([]byte, 0, firstBuffer); return &buf }
	return b
}

func (bs *bodies) memoryTotal() int64 { return bs.total }

// body is a body read into a pooled buffer, holding its share of the body
// memory until release.
type body struct {
	from     *bodies
	buf      *[]byte
	reserved int64
	reading  bool // holds a reader slot
}

// Bytes is the body as received.
func (b *body) Bytes() []byte { return *b.buf }

// doneReading gives the reader slot back: the body is read and its sender
// authenticated (or refused).
func (b *body) doneReading() {
	if b.reading {
		b.reading = false
		b.from.readers.release()
	}
}

// release gives back everything the body holds. The bytes must not be used
// after it.
func (b *body) release() {
	b.doneReading()
	b.from.put(b.buf)
	b.from.memory.give(b.reserved)
	b.buf, b.reserved = nil, 0
}

func (bs *bodies) put(buf *[]byte) {
	if buf != nil && cap(*buf) <= maxPooled {
		*buf = (*buf)[:0]
		bs.pool.Put(buf)
	}
}

// read reads the request's body under the read deadline, the reader cap
// and the body memory. On success the caller must release the body. Any
// error is an *Error; the connection is then closed after the reply,
// since the rest of the body was not read.
func (bs *bodies) read(c echo.Context) (*body, error) {
	b, err := bs.readBody(c)
	if err != nil {
		c.Response().Header().Set(echo.HeaderConnection, "close")
		if b != nil {
			b.release()
		}
		return nil, err
	}
	return b, nil
}

func (bs *bodies) readBody(c echo.Context) (*body, error) {
	req := c.Request()
	if req.ContentLength > MaxBody {
		return nil, tooLarge()
	}
	if !bs.readers.take() {
		return nil, busy(fmt.Sprintf("more than %d requests are sending their bodies now; send the delivery again shortly", bs.readers.size()))
	}
	b := &body{from: bs, reading: true}
	b.buf = bs.pool.Get().(*[]byte)
	if !bs.memory.take(int64(cap(*b.buf))) {
		return b, memoryFull()
	}
	b.reserved = int64(cap(*b.buf))

	// The deadline must be gone once the body is read: net/http then reads
	// the connection in the background while the handler works, and a
	// deadline passing would cancel the request's context. net/http clears
	// it when the body hits EOF; clearing it here too covers a body it had
	// already finished before the handler ran (an empty one).
	rc := http.NewResponseController(c.Response())
	if err := rc.SetReadDeadline(time.Now().Add(bs.timeout)); err == nil {
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	} else if !errors.Is(err, http.ErrNotSupported) {
		return b, unreadable(err)
	}

	src := io.LimitReader(req.Body, MaxBody+1)
	for {
		if len(*b.buf) == cap(*b.buf) {
			if err := b.grow(); err != nil {
				return b, err
			}
		}
		buf := *b.buf
		n, err := src.Read(buf[len(buf):cap(buf)])
		*b.buf = buf[:len(buf)+n]
		switch {
		case len(*b.buf) > MaxBody:
			return b, tooLarge()
		case errors.Is(err, io.EOF):
			return b, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return b, &Error{Status: http.StatusRequestTimeout, Code: events.TransportError,
				Message: fmt.Sprintf("the body did not arrive within %s; send it again", bs.timeout), Cause: err}
		case err != nil:
			return b, unreadable(err)
		}
	}
}

// grow doubles the buffer, up to MaxBody+1 (one byte more than allowed
// tells a body that is too large). The new buffer is reserved before it is
// allocated and the old one given back after the copy, so the body memory
// covers the moment both exist.
func (b *body) grow() error {
	old := *b.buf
	size := min(2*cap(old), MaxBody+1)
	if size >= MaxBody/2+1 && size < MaxBody+1 {
		size = MaxBody + 1 // skip a last doubling that would copy a whole MiB
	}
	if !b.from.memory.take(int64(size)) {
		return memoryFull()
	}
	grown := make([]byte, len(old), size)
	copy(grown, old)
	b.from.put(b.buf)
	b.from.memory.give(b.reserved)
	b.buf, b.reserved = &grown, int64(size)
	return nil
}

func unreadable(err error) error {
	return &Error{Status: http.StatusBadRequest, Code: events.InvalidResponse,
		Message: "the body could not be read", Cause: err}
}

func tooLarge() error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: events.InvalidResponse,
		Message: "the body is larger than 1 MiB"}
}

func memoryFull() error {
	return busy("the service holds as many request bodies as it can now; send the delivery again shortly")
}

// slots is a counting semaphore that never waits: past its size, a sender
// is told to come back rather than queued without bound.
type slots chan struct{}

func newSlots(n int) slots { return make(slots, n) }

func (s slots) take() bool {
	select {
	case s <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s slots) release()  { <-s }
func (s slots) size() int { return cap(s) }
func (s slots) used() int { return len(s) }

// budget is a number of bytes shared by every request; take never waits.
type budget struct{ left atomic.Int64 }

func (m *budget) take(n int64) bool {
	if m.left.Add(-n) < 0 {
		m.left.Add(n)
		return false
	}
	return true
}

func (m *budget) give(n int64) { m.left.Add(n) }
