package loadtest

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	b, _ := t.newOrder()
	return b
}

// newOrder is order with its subscription id.
func (t *template) newOrder() (body []byte, subscription string) {
	subscription = newUUID()
	b := bytes.ReplaceAll(t.raw, []byte(t.subscriptionID), []byte(subscription))
	return bytes.ReplaceAll(b, []byte(t.creatorUUID), []byte(newUUID())), subscription
}

// orders returns n new ORDERs.
func (t *template) orders(n int) [][]byte {
	out, _ := t.ordersOf(n)
	return out
}

// ordersOf returns n new ORDERs and their subscription ids.
func (t *template) ordersOf(n int) (bodies [][]byte, subscriptions []string) {
	bodies, subscriptions = make([][]byte, n), make([]string, n)
	for i := range bodies {
		bodies[i], subscriptions[i] = t.newOrder()
	}
	return bodies, subscriptions
}

// The fixtures of the other products' phases, read from the module:
// products.example.yaml plans business-access as Q2 then Helix, and
// qbd-connect as QBD Connect.
const (
	businessAccessFixture = "fixtures/business-access/01-order.json"
	qbdFixture            = "fixtures/qbd-story/01-order.json"
	productsFile          = "products.example.yaml"
)

// loadModuleTemplate reads an ORDER fixture of the module.
func loadModuleTemplate(module, rel string) (*template, error) {
	b, err := os.ReadFile(filepath.Join(module, rel))
	if err != nil {
		return nil, fmt.Errorf("reading the fixture %s: %w", rel, err)
	}
	t, err := newTemplate(b)
	if err != nil {
		return nil, fmt.Errorf("the fixture %s: %w", rel, err)
	}
	return t, nil
}

// newUUID is a random version-4 UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
