package logtest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheckLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		line    string
		wantErr string // "" for none
	}{
		{name: "a zap line", line: `{"level":"info","ts":"2025-01-01T00:00:00.000Z","msg":"delivery","key":"id:1","n":2.5,"ok":true,"x":null}`},
		{name: "nested, same keys at different levels", line: `{"a":{"a":1,"b":[{"a":1},{"a":2}]},"b":[1,[2]]}`},
		{name: "a key twice", line: `{"msg":"x","subscription":"s","subscription":"s"}`, wantErr: `key "subscription" twice`},
		{name: "a key twice, nested", line: `{"a":{"k":1,"k":2}}`, wantErr: `key "a.k" twice`},
		{name: "a key twice, in an array's object", line: `{"a":[{},{"k":1,"k":2}]}`, wantErr: `key "a1.k" twice`},
		{name: "escaped the same", line: `{"k":1,"\u006b":2}`, wantErr: `key "k" twice`},
		{name: "not JSON", line: `level=info msg=x`, wantErr: "not JSON"},
		{name: "not an object", line: `["a"]`, wantErr: "not a JSON object"},
		{name: "two values", line: `{"a":1}{"b":2}`, wantErr: "more than one"},
		{name: "cut short", line: `{"a":1,"b":`, wantErr: "not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckLine([]byte(tt.line))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckLine = %v, want nil", err)
				}
				var v map[string]any
				if json.Unmarshal([]byte(tt.line), &v) != nil {
					t.Fatal("the case is not valid JSON")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckLine = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// encoding/json, which the check must not stand on, takes a line with a
// key twice: that is why the check reads tokens.
func TestEncodingJSONTakesDuplicates(t *testing.T) {
	t.Parallel()
	var v map[string]any
	if err := json.Unmarshal([]byte(`{"k":1,"k":2}`), &v); err != nil || v["k"] != 2.0 {
		t.Fatalf("encoding/json: %v %v; the premise of this package changed", v, err)
	}
}

// recorder stands in for a testing.TB to see what CheckLines reports.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, format)
}

func TestCheckLines(t *testing.T) {
	t.Parallel()
	r := &recorder{TB: t}
	out := "{\"a\":1}\n\n{\"a\":1,\"a\":2}\nplain text\n"
	if n := CheckLines(r, out); n != 3 {
		t.Errorf("checked %d lines, want 3", n)
	}
	if len(r.errors) != 2 {
		t.Errorf("%d errors, want 2 (the duplicate and the text line)", len(r.errors))
	}
}
