package loadtest

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"os"

	"github.com/banking-marketplace/webhook/internal/events"
)

// defaultOrder is a copy of fixtures/story/01-order.json: embedded, so that
// the tool runs from any folder of the module and never reads outside it.
//
//go:embed order.json
var defaultOrder []byte

// template makes distinct ORDERs from one: each gets a fresh
// subscription_id and creator uuid, written in place of the template's
// wherever they appear (the creator's openId repeats the uuid), so every
// other byte of the fixture is kept.
type template struct {
	raw            []byte
	subscriptionID string
	creatorUUID    string
	extension      string
}

// loadTemplate reads the ORDER at path, or the embedded one for "".
func loadTemplate(path string) (*template, error) {
	raw := defaultOrder
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, &UsageError{Msg: fmt.Sprintf("--fixture: %v", err)}
		}
		raw = b
	}
	t, err := newTemplate(raw)
	if err != nil && path != "" {
		return nil, &UsageError{Msg: fmt.Sprintf("--fixture %s: %v", path, err)}
	}
	return t, err
}

func newTemplate(raw []byte) (*template, error) {
	ev, err := events.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid SubscriptionEvent: %w", err)
	}
	switch {
	case ev.EventType != events.SubscriptionOrder:
		return nil, fmt.Errorf("event_type is %s: want %s", ev.EventType, events.SubscriptionOrder)
	case ev.Event.Creator == nil || ev.Event.Creator.UUID == "":
		return nil, errors.New("event.creator.uuid is empty: the ORDER needs a creator with a uuid to vary")
	case ev.Event.Creator.UUID == ev.SubscriptionID:
		return nil, errors.New("event.creator.uuid equals subscription_id: they must differ to be varied apart")
	}
	ext := ev.ExtensionName
	if ext == "" {
		ext = "my-product-name"
	}
	return &template{raw: raw, subscriptionID: ev.SubscriptionID, creatorUUID: ev.Event.Creator.UUID, extension: ext}, nil
}

// order returns a new ORDER: a subscription and a creator nobody has seen.
func (t *template) order() []byte {
	b := bytes.ReplaceAll(t.raw, []byte(t.subscriptionID), []byte(newUUID()))
	return bytes.ReplaceAll(b, []byte(t.creatorUUID), []byte(newUUID()))
}

// orders returns n new ORDERs.
func (t *template) orders(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = t.order()
	}
	return out
}

// newUUID is a random version-4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
