package replay

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// subscriptionKey is the top-level field that names a marketplace
// subscription. The receiver keys everything it keeps on it (the account,
// the Q2 logon, the QBD Connect ids), so a new value is a new subscription.
const subscriptionKey = "subscription_id"

// freshIDs gives each subscription_id met in one run (--fresh) a new random
// id, the same one every time the original is met again, so that the events
// of a story stay one subscription, new to the receiver. A receiver that
// keeps its state (Redis) then sees a story it has never seen, on every run.
// It holds one entry per distinct original id, and is safe for concurrent
// use.
type freshIDs struct {
	mu  sync.Mutex
	ids map[string]string
}

func newFreshIDs() *freshIDs { return &freshIDs{ids: make(map[string]string)} }

// get returns the fresh id standing for original.
func (f *freshIDs) get(original string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.ids[original]
	if !ok {
		id = newUUID()
		f.ids[original] = id
	}
	return id
}

// newUUID is a random (version 4) UUID, the form of the marketplace's own
// subscription ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// rewriteSubscription replaces the value of every top-level
// "subscription_id" string in body by fresh(value), and returns the new body
// and the last id written. Everything else is kept byte for byte (spacing,
// key order, numbers), so the fixture sent is the one written, but for the
// id. A body that is not a JSON object, or has no such string (a fixture
// that is invalid on purpose), is returned unchanged, with id "".
func rewriteSubscription(body []byte, fresh func(string) string) ([]byte, string) {
	type span struct {
		start, end int
		id         string
	}
	var spans []span
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return body, ""
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return body, ""
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return body, ""
		}
		if !strings.EqualFold(key, subscriptionKey) || len(raw) == 0 || raw[0] != '"' { // matched as events.Decode matches it
			continue
		}
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			continue
		}
		end := int(dec.InputOffset())
		spans = append(spans, span{start: end - len(raw), end: end, id: id})
	}
	if len(spans) == 0 {
		return body, ""
	}
	var out bytes.Buffer
	out.Grow(len(body) + 64*len(spans))
	last, written := 0, ""
	for _, s := range spans {
		written = fresh(s.id)
		quoted, _ := json.Marshal(written) // a string always marshals
		out.Write(body[last:s.start])
		out.Write(quoted)
		last = s.end
	}
	out.Write(body[last:])
	return out.Bytes(), written
}
