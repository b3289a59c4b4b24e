package qbdapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// The seed marks most objects "Additional properties: Yes". Each such type
// carries an Extra map and encodes through the two helpers below, which
// work on a method-less copy of the type (type plain T) so that they do not
// recurse.

// names caches, per struct type, the lower-cased JSON names of its fields
// (encoding/json matches names case-insensitively, so Extra must too).
var names sync.Map // reflect.Type → map[string]bool

func jsonNames(t reflect.Type) map[string]bool {
	if v, ok := names.Load(t); ok {
		return v.(map[string]bool)
	}
	m := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-":
			continue
		case name == "":
			name = f.Name
		}
		m[strings.ToLower(name)] = true
	}
	names.Store(t, m)
	return m
}

// decodeWithExtra decodes data into v, a pointer to a struct, and returns
// the object's other properties (nil when there are none).
func decodeWithExtra(data []byte, v any) (map[string]json.RawMessage, error) {
	if err := json.Unmarshal(data, v); err != nil {
		return nil, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, err
	}
	known := jsonNames(reflect.TypeOf(v).Elem())
	for k := range all {
		if known[strings.ToLower(k)] {
			delete(all, k)
		}
	}
	if len(all) == 0 {
		return nil, nil
	}
	return all, nil
}

// encodeWithExtra encodes v, a struct, and appends the properties of extra
// in key order; a key that one of v's fields uses is left out, so a named
// field always wins.
func encodeWithExtra(v any, extra map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	known := jsonNames(reflect.TypeOf(v))
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !known[strings.ToLower(k)] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1]) // without the closing brace
	for _, k := range keys {
		val, err := json.Marshal(extra[k]) // validates and compacts; nil is null
		if err != nil {
			return nil, fmt.Errorf("extra property %q: %w", k, err)
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(val)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
