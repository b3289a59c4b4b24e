// Command testsummary reads `go test -json` and writes what `go test`
// writes for a list of packages (one line per package, the whole output of
// each failed test, build errors), plus the package lines that `go test`
// hides for packages that pass: the ones testredis.Main writes to say how
// many real-Redis tests were skipped and why. It exits 1 when a test or a
// build failed. make test runs it:
//
//	go test -race -json ./... | go run ./internal/testredis/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	failed, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Output     string
}

// summarize copies the summary of the events in r to w and reports
// whether anything failed.
func summarize(r io.Reader, w io.Writer) (failed bool, err error) {
	held := make(map[[2]string][]string) // a running test's output, by package and test
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(w, "%s\n", line) // not an event: go test's own words
			continue
		}
		id := [2]string{e.Package, e.Test}
		switch {
		case e.Action == "build-output":
			fmt.Fprint(w, e.Output)
		case e.Action == "build-fail":
			failed = true
		case e.Test != "" && e.Action == "output":
			held[id] = append(held[id], e.Output)
		case e.Test != "" && e.Action == "fail":
			failed = true
			writeFailed(w, held[id])
			delete(held, id)
		case e.Test != "" && (e.Action == "pass" || e.Action == "skip"):
			delete(held, id)
		case e.Test == "" && e.Action == "output":
			if o := strings.TrimSpace(e.Output); o != "PASS" && o != "" {
				fmt.Fprint(w, e.Output)
			}
		case e.Test == "" && e.Action == "fail":
			failed = true
		}
	}
	return failed, sc.Err()
}

// writeFailed writes a failed test's output as go test does: its
// "--- FAIL" line first (test2json has it last), then what it logged.
func writeFailed(w io.Writer, out []string) {
	var status []string
	var logged []string
	for _, o := range out {
		switch {
		case strings.HasPrefix(strings.TrimSpace(o), "--- FAIL"):
			status = append(status, o)
		case !testFrame(o):
			logged = append(logged, o)
		}
	}
	for _, o := range append(status, logged...) {
		fmt.Fprint(w, o)
	}
}

// testFrame reports whether o is one of the lines that -v adds around a
// test (=== RUN and the like), which go test without -v does not show.
func testFrame(o string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(o, p) {
			return true
		}
	}
	return false
}
