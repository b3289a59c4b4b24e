package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// FieldError is one bad field of an input, named by its JSON path.
type FieldError struct {
	Field   string // JSON name, dotted for nested fields: "event.payload.order"
	Problem string // "is required", "must be an integer", ...
}

func (f FieldError) String() string {
	if f.Field == "" {
		return f.Problem
	}
	return f.Field + " " + f.Problem
}

// ValidationError lists every bad field of an input. Its message is meant
// for the person who sent it.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

func (e *ValidationError) add(field, problem string) {
	e.Fields = append(e.Fields, FieldError{Field: field, Problem: problem})
}

// names reports whether field, or a field inside it, is already reported.
func (e *ValidationError) names(field string) bool {
	for _, f := range e.Fields {
		if f.Field == field || strings.HasPrefix(field, f.Field+".") || strings.HasPrefix(f.Field, field+".") {
			return true
		}
	}
	return false
}

func (e *ValidationError) orNil() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// field is one top-level member of a SubscriptionEvent and how to decode it.
type field struct {
	name     string
	required bool
	target   func(*SubscriptionEvent) any
	problem  string // what a wrongly typed value is told
}

var fields = []field{
	{"event", true, func(e *SubscriptionEvent) any { return &e.Event }, "must be an object"},
	{"event_type", true, func(e *SubscriptionEvent) any { return &e.EventType }, "must be a string"},
	{"user_id", true, func(e *SubscriptionEvent) any { return &e.UserID }, "must be an integer"},
	{"subscription_id", true, func(e *SubscriptionEvent) any { return &e.SubscriptionID }, "must be a string"},
	{"sso_user_id", false, func(e *SubscriptionEvent) any { return &e.SSOUserID }, "must be a string"},
	{"product_identifier", false, func(e *SubscriptionEvent) any { return &e.ProductIdentifier }, "must be a string"},
	{"extension_url", false, func(e *SubscriptionEvent) any { return &e.ExtensionURL }, "must be a string"},
	{"extension_name", false, func(e *SubscriptionEvent) any { return &e.ExtensionName }, "must be a string"},
	{"created", false, func(e *SubscriptionEvent) any { return &e.Created }, "is not a timestamp"},
	{"processed", false, func(e *SubscriptionEvent) any { return &e.Processed }, "is not a timestamp"},
	{"fi_name", false, func(e *SubscriptionEvent) any { return &e.FIName }, "must be a string"},
}

// Decode parses and validates a SubscriptionEvent. Unknown fields are
// ignored; names match as encoding/json matches them, exactly or else
// without regard to case, at every level. Every problem is reported in one
// *ValidationError that names each bad field by its JSON name.
//
// A well-formed event is read in one pass (decodeWhole); anything else is
// read again member by member (decodeMembers), which names every problem.
func Decode(body []byte) (*SubscriptionEvent, error) {
	if ev, ok := decodeWhole(body); ok {
		return ev, nil
	}
	return decodeMembers(body)
}

// decodeWhole reads body in one pass into the event's own types: a body
// that decodes, carries every required member (not null) and breaks no
// rule is read exactly as decodeMembers reads it (FuzzDecode holds that).
// ok is false for any other body, which decodeMembers then explains.
//
// It decodes with go-json-experiment's v1 package: encoding/json's
// semantics (its doc says so: names matched without regard to case,
// duplicates and invalid UTF-8 as encoding/json reads them, the types' own
// UnmarshalJSON) on the engine of encoding/json/v2, which reads the body
// once where encoding/json checks it, then decodes it: a third of the
// time, half the allocations. The Go team's prototype of encoding/json/v2,
// already in the module graph (chromedp).
func decodeWhole(body []byte) (*SubscriptionEvent, bool) {
	// The required members shadow the event's own fields, as pointers, to
	// tell a missing or null member from a zero one.
	var w struct {
		SubscriptionEvent
		Event          *Event     `json:"event"`
		EventType      *EventType `json:"event_type"`
		UserID         *int64     `json:"user_id"`
		SubscriptionID *string    `json:"subscription_id"`
	}
	if err := jsonv1.Unmarshal(body, &w); err != nil || w.Event == nil || w.EventType == nil || w.UserID == nil || w.SubscriptionID == nil {
		return nil, false
	}
	ev := &w.SubscriptionEvent
	ev.Event, ev.EventType, ev.UserID, ev.SubscriptionID = *w.Event, *w.EventType, *w.UserID, *w.SubscriptionID
	if Validate(ev) != nil {
		return nil, false
	}
	return ev, true
}

// decodeMembers reads body member by member, so that one reply names every
// bad field.
func decodeMembers(body []byte) (*SubscriptionEvent, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, &ValidationError{Fields: []FieldError{{Problem: "body must be a JSON object"}}}
		}
		return nil, &ValidationError{Fields: []FieldError{{Problem: "body is not valid JSON: " + jsonProblem(err)}}}
	}
	if members == nil {
		return nil, &ValidationError{Fields: []FieldError{{Problem: "body must be a JSON object"}}}
	}

	var (
		ev   SubscriptionEvent
		verr ValidationError
	)
	for _, f := range fields {
		raw, ok := member(members, f.name)
		if !ok || isNull(raw) {
			if f.required {
				verr.add(f.name, "is required")
			}
			continue
		}
		if err := json.Unmarshal(raw, f.target(&ev)); err != nil {
			verr.add(nestedField(f.name, err), problemOf(err, f.problem))
		}
	}
	// Validate what did decode too, so that one reply names every bad field.
	var rules *ValidationError
	if errors.As(Validate(&ev), &rules) {
		for _, f := range rules.Fields {
			if !verr.names(f.Field) {
				verr.Fields = append(verr.Fields, f)
			}
		}
	}
	if err := verr.orNil(); err != nil {
		return nil, err
	}
	return &ev, nil
}

// member is the member named name: the one named exactly so, or else
// one whose name differs only in case, as encoding/json matches a struct
// field's name. A body naming one member twice (in any case) is read
// differently by encoding/json (the later one wins) and here (the exact
// name, or the one that sorts last, whatever the map's order); the doors
// refuse such a body (canonjson.DuplicateKeyError).
func member(members map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	if raw, ok := members[name]; ok {
		return raw, true
	}
	found := ""
	for k := range members {
		if strings.EqualFold(k, name) && k > found {
			found = k
		}
	}
	raw, ok := members[found]
	return raw, ok && found != ""
}

// DecodeAppDirect parses and validates an AppDirect event (what an
// eventUrl answers when AppDirect calls the service directly) as the
// event of a SubscriptionEvent: the same rules as Decode's for the event
// itself (quantities as numbers or strings, null or absent blocks, unknown
// fields ignored), its type taken from event.type. Its SubscriptionID is
// left empty: AppDirect names none, the caller finds it (an ORDER's is
// derived from its event, later events name their accountIdentifier,
// which is that id: AccountIsSubscription).
// Every problem is reported in one *ValidationError.
func DecodeAppDirect(body []byte) (*SubscriptionEvent, error) {
	const placeholder = "appdirect" // validated with the rest, then left for the caller
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, &ValidationError{Fields: []FieldError{{Problem: "the event is not valid JSON: " + jsonProblem(err)}}}
	}
	ev := SubscriptionEvent{SubscriptionID: placeholder}
	var verr ValidationError
	if err := json.Unmarshal(body, &ev.Event); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "" {
			return nil, &ValidationError{Fields: []FieldError{{Problem: "the event must be a JSON object"}}}
		}
		verr.add(nestedField("event", err), problemOf(err, "has the wrong type"))
	}
	ev.EventType = ev.Event.Type
	if ev.EventType == "" {
		verr.add("event.type", "is required")
	}
	var rules *ValidationError
	if errors.As(Validate(&ev), &rules) {
		for _, f := range rules.Fields {
			if !verr.names(f.Field) {
				verr.Fields = append(verr.Fields, f)
			}
		}
	}
	if err := verr.orNil(); err != nil {
		return nil, err
	}
	ev.SubscriptionID = ""
	ev.AccountIsSubscription = true
	return &ev, nil
}

// Validate checks a decoded event's values. Decode calls it; it is exported
// for events built by other means (tests, AppDirect direct calls).
func Validate(ev *SubscriptionEvent) error {
	var verr ValidationError
	validateStruct(ev, &verr)
	if ev.Event.Type != "" && ev.EventType != "" && ev.Event.Type != ev.EventType {
		verr.add("event.type", fmt.Sprintf("is %q but event_type is %q: they must agree", ev.Event.Type, ev.EventType))
	}
	return verr.orNil()
}

// nestedField names the field a decoding error is about: top for an error at
// the top of the member, top.path for one inside it.
func nestedField(top string, err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return top + "." + typeErr.Field
	}
	return top
}

// problemOf says what is wrong with a value that failed to decode.
func problemOf(err error, fallback string) string {
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) || typeErr.Field == "" {
		return fallback
	}
	switch typeErr.Type {
	case reflect.TypeFor[Quantity]():
		return "must be a whole number"
	case reflect.TypeFor[Timestamp]():
		return "is not a timestamp"
	}
	switch typeErr.Type.Kind() {
	case reflect.String:
		return "must be a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "must be an integer"
	case reflect.Bool:
		return "must be true or false"
	case reflect.Slice:
		return "must be an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "must be an object"
	}
	return "has the wrong type"
}

// jsonProblem renders a syntax error without echoing the input back.
func jsonProblem(err error) string {
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("%s (at byte %d)", strings.TrimPrefix(syntaxErr.Error(), "json: "), syntaxErr.Offset)
	}
	return "it cannot be parsed"
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// UnmarshalJSON accepts a JSON number or a string holding a whole number.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		*q = 0
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return quantityError(b)
		}
		s = strings.TrimSpace(s)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*q = Quantity(n)
		return nil
	}
	// 5.0 is a whole number too; 5.5 is not.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return quantityError(b)
	}
	*q = Quantity(f)
	return nil
}

func quantityError(b []byte) error {
	return &json.UnmarshalTypeError{Value: kindOf(b), Type: reflect.TypeFor[Quantity]()}
}

// kindOf names the JSON kind of a value without quoting it.
func kindOf(b []byte) string {
	if len(b) == 0 {
		return "value"
	}
	switch b[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "number"
}

// Timestamp is a point in time as the Q2 marketplace writes it: Python
// isoformat with or without a zone and with 0 to 6 fractional digits
// (2021-12-06T15:27:32.636332), or RFC 3339. A time without a zone is UTC.
type Timestamp struct {
	time.Time
}

var timestampLayouts = []string{
	"2006-01-02T15:04:05Z07:00", // RFC 3339 and isoformat with a zone; fractions are accepted
	"2006-01-02T15:04:05",       // isoformat without a zone
	"2006-01-02 15:04:05Z07:00", // str(datetime)
	"2006-01-02 15:04:05",
}

// ParseTimestamp parses the forms Timestamp accepts.
func ParseTimestamp(s string) (Timestamp, error) {
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return Timestamp{t.UTC()}, nil
		}
	}
	return Timestamp{}, fmt.Errorf("%q is not a timestamp like 2021-12-06T15:27:32.636332 or RFC 3339", s)
}

// UnmarshalJSON accepts a string in one of the timestamp forms.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: kindOf(b), Type: reflect.TypeFor[Timestamp]()}
	}
	parsed, err := ParseTimestamp(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "string", Type: reflect.TypeFor[Timestamp]()}
	}
	*t = parsed
	return nil
}

// MarshalJSON writes RFC 3339 with the fraction the time has.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.Format(time.RFC3339Nano))
}
