// Package logtest checks log output in tests: every JSON line decodes, as
// one object, with no key twice in any object. encoding/json keeps the
// last of two equal keys without a word, and log pipelines differ (some
// keep the first, some reject the line), so a line with a key twice says
// different things to different readers.
package logtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// CheckLine reports whether line is one JSON object in which no object
// has a key twice.
func CheckLine(line []byte) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("not a JSON object: starts with %v", tok)
	}
	if err := object(dec, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one JSON value on the line")
	}
	return nil
}

// object reads the rest of an object whose '{' was read, at path.
func object(dec *json.Decoder, path string) error {
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("not JSON: %w", err)
		}
		k, ok := tok.(string)
		if !ok {
			return fmt.Errorf("not JSON: a key %v", tok)
		}
		if seen[k] {
			return fmt.Errorf("key %q twice", path+k)
		}
		seen[k] = true
		if err := value(dec, path+k+"."); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

func value(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	switch tok {
	case json.Delim('{'):
		return object(dec, path)
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := value(dec, fmt.Sprintf("%s%d.", strings.TrimSuffix(path, "."), i)); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil
}

// CheckLines calls t.Errorf for every line of output that is not a JSON
// object without a duplicate key, quoting the line (cut to 300 bytes).
// Empty lines are skipped. It returns the number of lines checked.
func CheckLines(t testing.TB, output string) int {
	t.Helper()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n++
		if err := CheckLine(line); err != nil {
			shown := line
			if len(shown) > 300 {
				shown = shown[:300]
			}
			t.Errorf("log line %d: %v: %s", n, err, shown)
		}
	}
	if err := sc.Err(); err != nil {
		t.Errorf("reading the log: %v", err)
	}
	return n
}
