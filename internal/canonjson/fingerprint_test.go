package canonjson

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// oracleFingerprint is the implementation Fingerprint replaced (it decoded
// the body into any, about 30 bytes allocated per byte of body): the
// streaming one must give the same fingerprints for every body it accepts.
func oracleFingerprint(body []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	sum := sha256.Sum256(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return hex.EncodeToString(sum[:]), nil
}

// readFixture reads one of the marketplace's event fixtures, which live
// beside the domain that decodes them.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "events", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameAsOracle fails t unless Fingerprint and the oracle agree on body.
func sameAsOracle(t *testing.T, body []byte) {
	t.Helper()
	got, err := Fingerprint(body)
	if err != nil {
		t.Fatalf("Fingerprint(%q): %v", body, err)
	}
	want, err := oracleFingerprint(body)
	if err != nil {
		t.Fatalf("oracle(%q): %v", body, err)
	}
	if got != want {
		t.Errorf("Fingerprint(%q) = %s, the oracle says %s", body, got, want)
	}
}

func TestFingerprintMatchesOracleOnFixtures(t *testing.T) {
	t.Parallel()
	var files []string
	for _, pattern := range []string{"../events/testdata/*.json", "../handlers/testdata/*.json", "../../fixtures/*/*.json"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found %d fixtures: the test would prove little", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sameAsOracle(t, body)
		})
	}
}

func TestFingerprintMatchesOracle(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"scalar":                        `1`,
		"string at the top":             ` "x" `,
		"empty object":                  `{}`,
		"empty array":                   `[ ]`,
		"keys out of order":             `{"b":1,"a":2,"c":3}`,
		"nested out of order":           `{"z":{"y":1,"x":[{"q":1,"p":2},{"b":{"d":1,"c":2}}]},"a":null}`,
		"sorted parent, unsorted child": `{"a":{"c":1,"b":2},"b":true}`,
		"whitespace everywhere":         "\t{ \"b\" :\n[ 1 , 2 ] ,\r\n \"a\" : { } }\n",
		"numbers as written":            `[1.0,1e3,-0,1E+2,0.000001,12345678901234567890123]`,
		"literals":                      `[true,false,null]`,
		"escapes":                       `["\"\\\/\b\f\n\r\t","\u0001\u001f\u007f","\u00e9\u4e2d","<>&"]`,
		"surrogate pair":                `["\ud83d\ude00"]`,
		"lone high surrogate":           `["\ud800","\ud800x","\ud800\u0041"]`,
		"lone low surrogate":            `["\udc00\ud800\udc00"]`,
		"line separators":               "[\"\u2028\u2029\",\"\\u2028\"]",
		"invalid UTF-8":                 "[\"a\xffb\",\"\xed\xa0\x80\",\"\xc3\"]",
		"raw non-ASCII":                 `["héllo wörld 中文 😀"]`,
		"keys sorted as decoded":        `{"a#":1,"a\"":2,"a\u0022b":3,"\u00e9":4,"z":5}`,
		"escaped keys":                  `{"\u0062":1,"\u0061":2}`,
		"invalid UTF-8 in keys":         "{\"b\xff\":1,\"a\":3}",
		"upper case before lower case":  `{"b":1,"C":2}`,
		"deep":                          strings.Repeat(`{"b":1,"a":`, 200) + "0" + strings.Repeat("}", 200),
		"deep arrays":                   strings.Repeat("[", 500) + strings.Repeat("]", 500),
		"many objects":                  "[" + strings.Repeat(`{"b":1,"a":[]},`, 100) + "{}]",
		"long string":                   `{"s":"` + strings.Repeat(`ab\"c\u00e9 `, 1000) + `"}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sameAsOracle(t, []byte(body))
		})
	}
}

// Whitespace, key order and escaping change nothing; values do.
func TestFingerprint(t *testing.T) {
	t.Parallel()
	base := `{"b":1,"a":{"y":[1,2,{"k":"v"}],"x":"<tag>"}}`
	same := []string{
		"{\n  \"a\": {\"x\": \"<tag>\", \"y\": [1, 2, {\"k\": \"v\"}]},\n  \"b\": 1\n}",
		`{"a":{"x":"\u003ctag\u003e","y":[1,2,{"k":"v"}]},"b":1}`,
	}
	different := []string{
		`{"b":2,"a":{"y":[1,2,{"k":"v"}],"x":"<tag>"}}`,
		`{"b":1,"a":{"y":[2,1,{"k":"v"}],"x":"<tag>"}}`,
		`{"b":1.0,"a":{"y":[1,2,{"k":"v"}],"x":"<tag>"}}`,
	}
	want, err := Fingerprint([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range same {
		if got, _ := Fingerprint([]byte(s)); got != want {
			t.Errorf("Fingerprint(%s) differs from the canonical form's", s)
		}
	}
	for _, s := range different {
		if got, _ := Fingerprint([]byte(s)); got == want {
			t.Errorf("Fingerprint(%s) equals a different document's", s)
		}
	}
	for _, s := range []string{"{", "", "{} {}", `{"a":1}x`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001)} {
		if _, err := Fingerprint([]byte(s)); err == nil {
			t.Errorf("Fingerprint(%.20q): no error for invalid JSON", s)
		}
	}
}

// Issue 10 item 5: two bodies that decode to different events never share a
// key. The decoder matches keys without regard to case and the last one wins,
// so bodies with such keys are refused, naming the keys.
func TestFingerprintRefusesKeysReadAsOne(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body string
		wantPath   string
		wantKeys   [2]string
	}{
		{"flag pair", `{"event":{"Flag":"STATELESS","flag":""}}`, "event", [2]string{"Flag", "flag"}},
		{"flag pair reversed", `{"event":{"flag":"","Flag":"STATELESS"}}`, "event", [2]string{"flag", "Flag"}},
		{"exact duplicate", `{"a":1,"b":2,"a":3}`, "", [2]string{"a", "a"}},
		{"duplicate through an escape", `{"a":1,"\u0061":1}`, "", [2]string{"a", "a"}},
		{"in an array", `{"items":[{"unit":"x"},{"unit":"x","UNIT":"y"}]}`, "items[1]", [2]string{"unit", "UNIT"}},
		{"kelvin sign folds to k", "{\"k\":1,\"\u212a\":2}", "", [2]string{"k", "\u212a"}},
		{"long s folds to s", "{\"s\":1,\"\u017f\":2}", "", [2]string{"s", "\u017f"}},
		{"invalid UTF-8 decodes alike", "{\"\xff\":1,\"\xfe\":2}", "", [2]string{"\ufffd", "\ufffd"}},
		{"not adjacent in byte order", `{"A":1,"B":2,"a":3}`, "", [2]string{"A", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Fingerprint([]byte(tt.body))
			var dup *DuplicateKeyError
			if !errors.As(err, &dup) {
				t.Fatalf("Fingerprint(%s) = %v, want a *DuplicateKeyError", tt.body, err)
			}
			if dup.Path != tt.wantPath || dup.Key != tt.wantKeys[0] || dup.Other != tt.wantKeys[1] {
				t.Errorf("error %+v, want path %q keys %q", dup, tt.wantPath, tt.wantKeys)
			}
			if !strings.Contains(err.Error(), joinPath(tt.wantPath, tt.wantKeys[0])) {
				t.Errorf("message %q does not name %q", err, joinPath(tt.wantPath, tt.wantKeys[0]))
			}
		})
	}

	// The pair of the issue: today they would decode to different events
	// (the field as events.Event declares it).
	type event struct {
		Flag string `json:"flag,omitempty"`
	}
	a, b := []byte(`{"Flag":"STATELESS","flag":""}`), []byte(`{"flag":"","Flag":"STATELESS"}`)
	var ea, eb event
	_ = json.Unmarshal(a, &ea)
	_ = json.Unmarshal(b, &eb)
	if ea.Flag == eb.Flag {
		t.Fatal("the two bodies decode alike: the regression test proves nothing")
	}
	for _, body := range [][]byte{a, b} {
		if fp, err := Fingerprint(body); err == nil {
			t.Errorf("Fingerprint(%s) = %s, want it refused", body, fp)
		}
	}

	// Distinct keys that do not fold together stay accepted.
	for _, body := range []string{`{"ab":1,"a":2,"b":3,"ba":4}`, `{"é":1,"e":2}`, `{"a":{"a":{"a":1}}}`, `[{"a":1},{"a":2}]`} {
		sameAsOracle(t, []byte(body))
	}
}

func FuzzFingerprint(f *testing.F) {
	for _, name := range []string{"subscription-order.json", "subscription-change.json", "subscription-cancel.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"b":{"d":[1,{"f":1,"e":"\u00e9"}],"c":2},"a":"\ud800"}`))
	f.Add([]byte("{\"\xff\":1,\"K\":{\"k\":2}}"))
	f.Add([]byte(`{"Flag":"STATELESS","flag":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := Fingerprint(body)
		want, oracleErr := oracleFingerprint(body)
		var dup *DuplicateKeyError
		switch {
		case !json.Valid(body):
			if err == nil {
				t.Fatalf("Fingerprint(%q) accepted invalid JSON", body)
			}
		case errors.As(err, &dup):
			if !strings.EqualFold(dup.Key, dup.Other) && len(dup.Key) < maxKey && len(dup.Other) < maxKey {
				t.Fatalf("Fingerprint(%q) refused keys %q and %q, which do not fold together", body, dup.Key, dup.Other)
			}
		case err != nil:
			t.Fatalf("Fingerprint(%q): %v", body, err)
		case oracleErr != nil:
			t.Fatalf("oracle(%q): %v", body, oracleErr)
		case got != want:
			t.Fatalf("Fingerprint(%q) = %s, the oracle says %s", body, got, want)
		}
		// A body the decoder reads with a key folded away is never accepted.
		if err == nil && hasFoldedKeys(body) {
			t.Fatalf("Fingerprint(%q) accepted keys that fold together", body)
		}
	})
}

// hasFoldedKeys reports, the slow way, whether an object of body holds two
// keys that are strings.EqualFold.
func hasFoldedKeys(body []byte) bool {
	type container struct {
		object, expectKey bool
		keys              []string
	}
	var stack []*container
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expectKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				stack = append(stack, &container{object: d == '{', expectKey: d == '{'})
			} else {
				stack = stack[:len(stack)-1]
				valueDone()
			}
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].expectKey {
			c, key := stack[n-1], tok.(string)
			for _, seen := range c.keys {
				if strings.EqualFold(seen, key) {
					return true
				}
			}
			c.keys, c.expectKey = append(c.keys, key), false
			continue
		}
		valueDone()
	}
}

// FuzzFingerprintShapes builds valid JSON from the fuzzer's bytes (random
// byte strings are rarely JSON), rich in the cases that matter: keys out of
// order or folding together, escapes, surrogates, invalid UTF-8, deep values.
func FuzzFingerprintShapes(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 0, 4, 7, 9, 2, 5})
	f.Add([]byte("an object of arrays of strings \x00\x01\x02\x03\x04\x05\x06\x07"))
	f.Fuzz(func(t *testing.T, choices []byte) {
		g := &shapeGen{choices: choices}
		body := g.value(nil, 0)
		if !json.Valid(body) {
			t.Fatalf("the generator wrote invalid JSON: %q", body)
		}
		got, err := Fingerprint(body)
		var dup *DuplicateKeyError
		switch {
		case errors.As(err, &dup):
			if !hasFoldedKeys(body) {
				t.Fatalf("Fingerprint(%q) refused keys %q and %q, which do not fold together", body, dup.Key, dup.Other)
			}
		case err != nil:
			t.Fatalf("Fingerprint(%q): %v", body, err)
		case hasFoldedKeys(body):
			t.Fatalf("Fingerprint(%q) accepted keys that fold together", body)
		default:
			if want, _ := oracleFingerprint(body); got != want {
				t.Fatalf("Fingerprint(%q) = %s, the oracle says %s", body, got, want)
			}
		}
	})
}

type shapeGen struct {
	choices []byte
	n       int
}

func (g *shapeGen) next(limit int) int {
	if g.n >= len(g.choices) {
		return 0
	}
	g.n++
	return int(g.choices[g.n-1]) % limit
}

var (
	shapeSpace  = []string{"", "", " ", "\n\t", "\r\n  "}
	shapeChars  = []string{"a", "A", "b", "K", "k", "\u212a", "s", "\u017f", "é", "É", `\u00e9`, `\u0061`, `\"`, `\\`, `\/`, `\n`, `\u0001`, `\ud800`, `\udc00`, `\ud83d\ude00`, "\xff", "\xed\xa0\x80", "\u2028", `\u2029`, "😀", "\x7f", "<", "&"}
	shapeScalar = []string{"0", "-1", "1.50", "1e5", "-0.0E-2", "true", "false", "null", "123456789012345678901234567890"}
)

func (g *shapeGen) value(b []byte, depth int) []byte {
	b = append(b, shapeSpace[g.next(len(shapeSpace))]...)
	kind := g.next(6)
	if depth > 6 {
		kind = 2 + kind%2
	}
	switch kind {
	case 0, 1:
		open, end := byte('{'), byte('}')
		if kind == 1 {
			open, end = '[', ']'
		}
		b = append(b, open)
		for i := range g.next(5) {
			if i > 0 {
				b = append(b, ',')
			}
			if kind == 0 {
				b = g.string(b)
				b = append(b, shapeSpace[g.next(len(shapeSpace))]...)
				b = append(b, ':')
			}
			b = g.value(b, depth+1)
		}
		b = append(b, end)
	case 2:
		b = g.string(b)
	default:
		b = append(b, shapeScalar[g.next(len(shapeScalar))]...)
	}
	return append(b, shapeSpace[g.next(len(shapeSpace))]...)
}

func (g *shapeGen) string(b []byte) []byte {
	b = append(b, '"')
	for range g.next(4) {
		b = append(b, shapeChars[g.next(len(shapeChars))]...)
	}
	return append(b, '"')
}

// shape is a body in one of the worst shapes for a canonicaliser.
type shape struct {
	body  []byte
	depth int // its deepest nesting
}

// benchShapes are bodies of about size bytes (at least 128 KiB) in the worst
// shapes for a canonicaliser: many tiny containers, members out of order,
// deep nesting, long strings to re-escape.
func benchShapes(tb testing.TB, size int) map[string]shape {
	fill := func(open, elem, end string) []byte {
		n := (size - len(open) - len(end)) / (len(elem) + 1)
		return []byte(open + strings.Repeat(elem+",", n-1) + elem + end)
	}
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	return map[string]shape{
		"empty objects":             {fill("[", "{}", "]"), 2},
		"objects out of order":      {fill("[", `{"b":1,"a":2}`, "]"), 2},
		"deep arrays":               {fill("[", deep, "]"), 5001},
		"deep objects out of order": {[]byte(strings.Repeat(`{"b":0,"a":`, 9999) + "0" + strings.Repeat("}", 9999)), 9999},
		"deep objects":              {[]byte(strings.Repeat(`{"b":0,"a":`, 5000) + `"` + strings.Repeat("x", size-5000*12) + `"` + strings.Repeat("}", 5000)), 5000},
		"long string":               {[]byte(`{"s":"` + strings.Repeat("abcdefgh", size/8-2) + `"}`), 1},
		"escaped string":            {[]byte(`{"s":"` + strings.Repeat(`\"\u00e9\n`, size/14) + `"}`), 1},
		"order event":               {readFixture(tb, "subscription-order.json"), 6},
	}
}

// BenchmarkFingerprint reports B/byte: bytes allocated per byte of body.
func BenchmarkFingerprint(b *testing.B) {
	for _, impl := range []struct {
		name string
		fn   func([]byte) (string, error)
	}{{"streaming", Fingerprint}, {"oracle", oracleFingerprint}} {
		for name, sh := range benchShapes(b, 1<<20) {
			body := sh.body
			b.Run(impl.name+"/"+name, func(b *testing.B) {
				if _, err := impl.fn(body); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for b.Loop() {
					_, _ = impl.fn(body)
				}
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/float64(len(body)), "B/byte")
			})
		}
	}
}

// TestFingerprintAllocatesLittle holds the worst shapes to what the
// canonicaliser promises: at most 3 bytes allocated per byte of body, plus
// 256 per level of nesting (at most 10,000 levels), plus a fixed 8 KiB (the
// hash, a write buffer). The decoder into any took 7 to 50 per byte. The
// fingerprints are the oracle's.
func TestFingerprintAllocatesLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes a few MiB")
	}
	for name, sh := range benchShapes(t, 128<<10) {
		t.Run(name, func(t *testing.T) {
			sameAsOracle(t, sh.body)
			var allocated uint64
			testing.AllocsPerRun(1, func() {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				if _, err := Fingerprint(sh.body); err != nil {
					t.Fatal(err)
				}
				runtime.ReadMemStats(&after)
				allocated = after.TotalAlloc - before.TotalAlloc
			})
			// The race detector and the runtime's own bookkeeping add a
			// little: a quarter over the budget still says "a small
			// constant times the size", which is the rule.
			if limit := uint64(3*len(sh.body)+256*sh.depth+8<<10) * 5 / 4; allocated > limit {
				t.Errorf("%d bytes allocated for a body of %d bytes %d deep, want at most %d", allocated, len(sh.body), sh.depth, limit)
			}
		})
	}
}

// A fingerprint reuses its state (the hash, the write buffer, the first
// pass's lists): once warm, it allocates only its result, also for bodies
// with more members out of order than one block holds (the list's first
// block is 64 entries; real events come close to it), and fingerprints
// after a refused body as before it.
func TestFingerprintReusesItsState(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop states at random")
	}
	order := readFixture(t, "subscription-order.json")
	var b strings.Builder
	b.WriteString(`{"order":`)
	b.Write(order)
	b.WriteString(`,"wide":{`)
	for i := 99; i >= 0; i-- { // 100 members out of order: two blocks
		fmt.Fprintf(&b, `"m%02d":%d`, i, i)
		if i > 0 {
			b.WriteByte(',')
		}
	}
	b.WriteString(`}}`)
	wide := []byte(b.String())
	for name, body := range map[string][]byte{"order": order, "wide": wide} {
		t.Run(name, func(t *testing.T) {
			want, err := Fingerprint(body)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Fingerprint([]byte(`{"a":1,"A":2}`)); err == nil {
				t.Fatal("keys that fold together: no error")
			}
			if got, _ := Fingerprint(body); got != want {
				t.Fatalf("after a refused body: %s, want %s", got, want)
			}
			if n := testing.AllocsPerRun(100, func() { _, _ = Fingerprint(body) }); n > 1 {
				t.Errorf("%.1f allocations per fingerprint once warm, want 1 (its result)", n)
			}
		})
	}
}
