// Package canonjson is canonical JSON: the SHA-256 of a body with its
// object keys sorted, no insignificant whitespace and strings escaped one
// way, computed in one streaming pass whose cost is a small constant times
// the body's size, whatever its shape. The delivery key of a delivery
// without webhook-id, and the check that two copies under one key carry
// the same content, stand on it.
//
// It imports nothing of ours.
package canonjson

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Fingerprint is the SHA-256 (hex) of body in canonical JSON: object keys
// sorted, no insignificant whitespace, strings re-escaped one way (as
// encoding/json writes them, without HTML escaping), numbers as written. Two
// bodies that differ only in whitespace, key order or string escaping have
// the same fingerprint.
//
// A body with two keys in one object that encoding/json would read as one
// field (the same key twice, or two keys equal under Unicode case folding,
// strings.EqualFold) is refused with a *DuplicateKeyError: such bodies can
// decode to different events while looking alike, so no fingerprint can
// stand for what they mean.
//
// The cost is a small constant times the body's size, whatever its shape:
// the body is read twice, once to find the objects whose keys are out of
// order, once to hash the canonical form, and only the members of objects
// written out of order are remembered.
func Fingerprint(body []byte) (string, error) {
	if !json.Valid(body) { // the depth limit too: 10,000, as when decoding
		var raw json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return "", err
		}
		return "", errors.New("the body is not valid JSON") // unreachable: Unmarshal checks as Valid does
	}
	if len(body) > math.MaxInt32 {
		return "", fmt.Errorf("a body of %d bytes is too large to fingerprint", len(body))
	}
	st := states.Get().(*state)
	defer st.put()
	s := &st.scan
	if err := s.run(body); err != nil {
		return "", err
	}
	sort.Sort(byStart{&s.objects})
	st.h.Reset()
	w := canonWriter{body: body, objects: &s.objects, members: &s.sorted, h: st.h, buf: st.buf[:0]}
	w.region(0, len(body))
	w.flush()
	var sum [2 * sha256.Size]byte
	hex.Encode(sum[:], w.h.Sum(st.sum[:0]))
	return string(sum[:]), nil
}

// state is what one Fingerprint works with, kept between calls (states)
// so that a small body allocates only its result: the hash, the write
// buffer and the first pass's lists, emptied.
type state struct {
	scan scan
	h    hash.Hash
	buf  []byte
	sum  [sha256.Size]byte
}

var states = sync.Pool{New: func() any { return &state{h: sha256.New(), buf: make([]byte, 0, 4096)} }}

// maxKept bounds what a state keeps for the next call: the lists of a
// large body go with it.
const maxKept = 64 << 10

// put empties st and gives it back to states, unless its lists grew large.
func (st *state) put() {
	s := &st.scan
	if cap(s.pending)*int(unsafe.Sizeof(member{})) > maxKept || cap(s.keys) > maxKept ||
		cap(s.open)*int(unsafe.Sizeof(frame{})) > maxKept || len(s.kinds) > maxKept/8 ||
		s.objects.bytes() > maxKept || s.sorted.bytes() > maxKept {
		return
	}
	s.kinds, s.depth, s.open, s.pending, s.keys = s.kinds[:0], 0, s.open[:0], s.pending[:0], s.keys[:0]
	s.objects.reset()
	s.sorted.reset()
	states.Put(st)
}

// DuplicateKeyError is an object holding two keys that encoding/json reads as
// one field: the same key twice, or two keys that differ only in case
// (strings.EqualFold; the decoder matches field names that way and the last
// one wins).
type DuplicateKeyError struct {
	Path  string // the object holding them, "event.payload"; "" for the body itself
	Key   string // the first of the two, as sent
	Other string // the second; equal to Key for an exact duplicate
}

func (e *DuplicateKeyError) Error() string {
	first, second := joinPath(e.Path, e.Key), joinPath(e.Path, e.Other)
	if e.Key == e.Other {
		return fmt.Sprintf("%q is sent twice; send each key once", first)
	}
	return fmt.Sprintf("%q and %q differ only in case, and keys are matched without regard to case; send each key once", first, second)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// object is a JSON object whose members are not in canonical order: the
// second pass writes its members in the order they have in members.
type object struct {
	start, end   int32 // the object in the body, '{' to just past '}'
	first, count int32 // its members in canonical order: members[first:first+count]
}

// span is one member of an object in the body: from its key's opening quote
// to the end of its value.
type span struct{ start, end int32 }

// member is a member of an object still being read.
type member struct {
	span
	key, keyLen int32 // its decoded key, in scan.keys
}

// frame is an object still being read.
type frame struct {
	start   int32 // where it starts in the body
	members int32 // len(scan.pending) when it opened
	keys    int32 // len(scan.keys) when it opened
}

// scan is the first pass: it checks each object's keys and remembers the
// objects whose members must be reordered. Its memory is what it remembers,
// plus a few bytes per level of nesting (at most 10,000 levels).
type scan struct {
	kinds   []uint64       // one bit per open container, 1 for an object
	depth   int            // open containers
	open    []frame        // the open objects
	pending []member       // their members (the last one's end is set when its value ends)
	keys    []byte         // their decoded keys
	objects chunks[object] // objects out of order
	sorted  chunks[span]   // their members, in canonical order
}

func (s *scan) push(object bool) {
	if s.depth/64 == len(s.kinds) {
		s.kinds = append(s.kinds, 0)
	}
	if object {
		s.kinds[s.depth/64] |= 1 << (s.depth % 64)
	} else {
		s.kinds[s.depth/64] &^= 1 << (s.depth % 64)
	}
	s.depth++
}

// inObject reports whether the innermost open container is an object.
func (s *scan) inObject() bool {
	return s.depth > 0 && s.kinds[(s.depth-1)/64]&(1<<((s.depth-1)%64)) != 0
}

// chunks is an append-only list in blocks that double from 64 to 4096
// entries and then stay that size: it grows without copying, so what it
// allocates is about what it holds, and a small body pays for a small block.
// Emptied (reset), it keeps its blocks for the next list.
type chunks[T any] struct {
	blocks [][]T // blocks[:used] hold the list; the others are empty, kept
	used   int
	n      int32
}

const (
	firstBlock  = 64
	doublings   = 6                               // 64 … 4096
	lastBlock   = firstBlock << doublings         // 4096
	beforeLarge = firstBlock * (1<<doublings - 1) // entries in the growing blocks
)

func (c *chunks[T]) add(v T) {
	if c.used == 0 || len(c.blocks[c.used-1]) == cap(c.blocks[c.used-1]) {
		if c.used == len(c.blocks) {
			c.blocks = append(c.blocks, make([]T, 0, firstBlock<<min(len(c.blocks), doublings)))
		}
		c.used++
	}
	last := &c.blocks[c.used-1]
	*last = append(*last, v)
	c.n++
}

// reset empties c, keeping its blocks.
func (c *chunks[T]) reset() {
	for i := range c.blocks[:c.used] {
		c.blocks[i] = c.blocks[i][:0]
	}
	c.used, c.n = 0, 0
}

// bytes is what c's blocks take.
func (c *chunks[T]) bytes() int {
	n := 0
	for _, b := range c.blocks {
		n += cap(b)
	}
	var v T
	return n * int(unsafe.Sizeof(v))
}

func (c *chunks[T]) at(i int32) *T {
	if i >= beforeLarge {
		i -= beforeLarge
		return &c.blocks[doublings+i/lastBlock][i%lastBlock]
	}
	k := bits.Len32(uint32(i/firstBlock+1)) - 1 // block k starts at firstBlock*(2^k-1)
	return &c.blocks[k][i-firstBlock*(1<<k-1)]
}

// byStart sorts objects by where they start in the body.
type byStart struct{ *chunks[object] }

func (o byStart) Len() int           { return int(o.n) }
func (o byStart) Less(i, j int) bool { return o.at(int32(i)).start < o.at(int32(j)).start }
func (o byStart) Swap(i, j int)      { a, b := o.at(int32(i)), o.at(int32(j)); *a, *b = *b, *a }

// run reads body, which must be valid JSON.
func (s *scan) run(b []byte) error {
	expectKey := false
	for i := 0; i < len(b); {
		switch c := b[i]; c {
		case ' ', '\t', '\n', '\r', ':':
			i++
		case '{':
			s.push(true)
			s.open = grow(s.open, frame{start: int32(i), members: int32(len(s.pending)), keys: int32(len(s.keys))})
			expectKey = true
			i++
		case '[':
			s.push(false)
			expectKey = false
			i++
		case '}', ']':
			i++
			s.depth--
			if c == '}' {
				f := s.open[len(s.open)-1]
				s.open = s.open[:len(s.open)-1]
				if err := s.closeObject(b, f, int32(i)); err != nil {
					return err
				}
			}
			expectKey = false
			s.valueEnd(i)
		case ',':
			expectKey = s.inObject()
			i++
		case '"':
			end := skipString(b, i)
			if expectKey {
				key := int32(len(s.keys))
				s.keys = appendUnquoted(s.keys, b[i+1:end-1])
				s.pending = grow(s.pending, member{span: span{start: int32(i)}, key: key, keyLen: int32(len(s.keys)) - key})
				expectKey = false
			} else {
				s.valueEnd(end)
			}
			i = end
		default: // a number, true, false or null
			i = skipLiteral(b, i)
			s.valueEnd(i)
		}
	}
	return nil
}

// grow appends v to s, doubling its capacity when it is full: append grows
// large slices by a quarter, which copies about five times what they end up
// holding.
func grow[T any](s []T, v T) []T {
	if len(s) == cap(s) {
		s = slices.Grow(s, max(len(s), 16))
	}
	return append(s, v)
}

// valueEnd ends the member being read, when the value that ends at end is a
// member's value.
func (s *scan) valueEnd(end int) {
	if s.inObject() {
		s.pending[len(s.pending)-1].end = int32(end)
	}
}

func (s *scan) key(m member) []byte { return s.keys[m.key : m.key+m.keyLen] }

// closeObject checks the keys of the object f, which ends at end, and
// remembers its members in canonical order if they are not in it already.
func (s *scan) closeObject(body []byte, f frame, end int32) error {
	ms := s.pending[f.members:]
	defer func() {
		s.pending = s.pending[:f.members]
		s.keys = s.keys[:f.keys]
	}()
	if len(ms) < 2 {
		return nil
	}
	inOrder := slices.IsSortedFunc(ms, s.compareKeys)
	// Keys equal under folding sort next to each other; ties keep the order
	// they were sent in, so the error names them as sent.
	slices.SortFunc(ms, func(a, b member) int {
		if c := compareFolded(s.key(a), s.key(b)); c != 0 {
			return c
		}
		return int(a.start - b.start)
	})
	for i := 1; i < len(ms); i++ {
		if compareFolded(s.key(ms[i-1]), s.key(ms[i])) == 0 {
			return &DuplicateKeyError{Path: pathTo(body, int(f.start)), Key: clip(s.key(ms[i-1])), Other: clip(s.key(ms[i]))}
		}
	}
	if inOrder {
		return nil
	}
	slices.SortFunc(ms, s.compareKeys)
	s.objects.add(object{start: f.start, end: end, first: s.sorted.n, count: int32(len(ms))})
	for _, m := range ms {
		s.sorted.add(m.span)
	}
	return nil
}

// compareKeys is the canonical order: encoding/json sorts map keys as Go
// strings, that is by the bytes of the decoded key.
func (s *scan) compareKeys(a, b member) int {
	return bytes.Compare(s.key(a), s.key(b))
}

// pathTo names the value that starts at body[at] by the keys and array
// indexes that lead to it: "event.payload.items[2]". It reads the body again
// from the start, which only an error pays for.
func pathTo(body []byte, at int) string {
	type level struct {
		object bool
		key    []byte
		index  int
	}
	var stack []level
	expectKey := false
	for i := 0; i < at; {
		switch c := body[i]; c {
		case '{', '[':
			stack = append(stack, level{object: c == '{'})
			expectKey = c == '{'
			i++
		case '}', ']':
			stack = stack[:len(stack)-1]
			expectKey = false
			i++
		case ',':
			top := &stack[len(stack)-1]
			top.index++
			expectKey = top.object
			i++
		case '"':
			end := skipString(body, i)
			if expectKey {
				stack[len(stack)-1].key = appendUnquoted(nil, body[i+1:end-1])
				expectKey = false
			}
			i = end
		default: // whitespace, ':' and the bytes of numbers and literals
			i++
		}
	}
	var p strings.Builder
	for _, l := range stack {
		if l.object {
			if p.Len() > 0 {
				p.WriteByte('.')
			}
			p.WriteString(clip(l.key))
		} else {
			p.WriteString("[" + strconv.Itoa(l.index) + "]")
		}
		if p.Len() > maxPath {
			return p.String()[:maxPath] + "…"
		}
	}
	return p.String()
}

// maxKey and maxPath bound the names an error repeats back to the sender.
const (
	maxKey  = 64
	maxPath = 256
)

func clip(key []byte) string {
	if len(key) <= maxKey {
		return string(key)
	}
	return strings.ToValidUTF8(string(key[:maxKey]), "") + "…"
}

// compareFolded orders keys by their case-folded runes, the folding
// encoding/json matches field names with: 0 exactly when strings.EqualFold.
func compareFolded(a, b []byte) int {
	for len(a) > 0 && len(b) > 0 {
		ra, na := foldedRune(a)
		rb, nb := foldedRune(b)
		if ra != rb {
			return int(ra - rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

// foldedRune is the first rune of s folded as encoding/json folds names: the
// smallest rune of its case-folding orbit (upper case, for ASCII letters).
func foldedRune(s []byte) (rune, int) {
	if c := s[0]; c < utf8.RuneSelf {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		return rune(c), 1
	}
	r, n := utf8.DecodeRune(s)
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2, n
		}
		r = r2
	}
}

// canonWriter is the second pass: it hashes the canonical form of the body.
type canonWriter struct {
	body    []byte
	objects *chunks[object] // by start
	members *chunks[span]
	h       hash.Hash
	buf     []byte
}

// region writes body[start:end], which holds whole values, members and
// punctuation.
func (w *canonWriter) region(start, end int) {
	for start < end {
		k := int32(sort.Search(int(w.objects.n), func(i int) bool { return int(w.objects.at(int32(i)).start) >= start }))
		if k == w.objects.n || int(w.objects.at(k).start) >= end {
			w.tokens(start, end)
			return
		}
		o := *w.objects.at(k)
		w.tokens(start, int(o.start))
		w.byte('{')
		for i := range o.count {
			if i > 0 {
				w.byte(',')
			}
			m := *w.members.at(o.first + i)
			w.region(int(m.start), int(m.end))
		}
		w.byte('}')
		start = int(o.end)
	}
}

// tokens writes body[start:end], where no object is out of order.
func (w *canonWriter) tokens(start, end int) {
	b := w.body
	for i := start; i < end; {
		switch c := b[i]; c {
		case ' ', '\t', '\n', '\r':
			i++
		case '{', '}', '[', ']', ',', ':':
			w.byte(c)
			i++
		case '"':
			next := skipString(b, i)
			w.string(b[i+1 : next-1])
			i = next
		default:
			next := skipLiteral(b, i)
			w.write(b[i:next])
			i = next
		}
	}
}

// string writes the JSON string whose raw contents are s as encoding/json
// would decode and then encode it: invalid UTF-8 and lone surrogates become
// U+FFFD, and only '"', '\\', control characters, U+2028 and U+2029 are
// escaped, each one way.
func (w *canonWriter) string(s []byte) {
	w.byte('"')
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] >= ' ' && s[j] < utf8.RuneSelf && s[j] != '"' && s[j] != '\\' {
			j++
		}
		w.write(s[i:j])
		if j == len(s) {
			break
		}
		r, n := nextRune(s, j)
		w.rune(r)
		i = j + n
	}
	w.byte('"')
}

const hexDigits = "0123456789abcdef"

func (w *canonWriter) rune(r rune) {
	w.reserve(6) // the longest form: \u00XX or \u202X
	switch r {
	case '"', '\\':
		w.buf = append(w.buf, '\\', byte(r))
	case '\b':
		w.buf = append(w.buf, '\\', 'b')
	case '\f':
		w.buf = append(w.buf, '\\', 'f')
	case '\n':
		w.buf = append(w.buf, '\\', 'n')
	case '\r':
		w.buf = append(w.buf, '\\', 'r')
	case '\t':
		w.buf = append(w.buf, '\\', 't')
	case '\u2028', '\u2029':
		w.buf = append(w.buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
	default:
		if r < ' ' {
			w.buf = append(w.buf, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xF])
			return
		}
		w.buf = utf8.AppendRune(w.buf, r)
	}
}

// reserve makes room for n more bytes in buf.
func (w *canonWriter) reserve(n int) {
	if len(w.buf)+n > cap(w.buf) {
		w.flush()
	}
}

func (w *canonWriter) byte(c byte) {
	w.reserve(1)
	w.buf = append(w.buf, c)
}

func (w *canonWriter) write(p []byte) {
	if len(w.buf)+len(p) > cap(w.buf) {
		w.flush()
		if len(p) > cap(w.buf) {
			w.h.Write(p)
			return
		}
	}
	w.buf = append(w.buf, p...)
}

func (w *canonWriter) flush() {
	w.h.Write(w.buf)
	w.buf = w.buf[:0]
}

// skipString returns the end of the JSON string that starts at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipLiteral returns the end of the number, true, false or null at b[i].
func skipLiteral(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\n', '\r', ',', ':', ']', '}':
			return i
		}
	}
	return i
}

// appendUnquoted appends the string whose raw contents are s, decoded as
// encoding/json decodes it.
func appendUnquoted(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf && c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		r, n := nextRune(s, i)
		dst = utf8.AppendRune(dst, r)
		i += n
	}
	return dst
}

// nextRune decodes the character of a JSON string at s[i] as encoding/json
// does (decode.go, unquoteBytes): an escape, a surrogate pair, a UTF-8
// sequence, or one invalid byte or lone surrogate as U+FFFD. It returns the
// rune and the bytes of s it took.
func nextRune(s []byte, i int) (rune, int) {
	if s[i] != '\\' {
		return utf8.DecodeRune(s[i:])
	}
	if i+1 == len(s) {
		return utf8.RuneError, 1
	}
	switch c := s[i+1]; c {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r := getu4(s[i:])
		if r < 0 {
			return utf8.RuneError, 2
		}
		if utf16.IsSurrogate(r) {
			if pair := utf16.DecodeRune(r, getu4(s[i+6:])); pair != unicode.ReplacementChar {
				return pair, 12
			}
			return unicode.ReplacementChar, 6
		}
		return r, 6
	default: // '"', '\\', '/'
		return rune(c), 2
	}
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
