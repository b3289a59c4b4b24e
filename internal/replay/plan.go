package replay

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

const (
	fixtureExt = ".json"
	expectExt  = ".expect.json"
	// maxFixtureBytes bounds what is read of one fixture or expectation file:
	// larger than any real event (the receiver refuses bodies over 1 MiB,
	// which a fixture may want to test), small enough to be harmless.
	maxFixtureBytes = 8 << 20
)

// fixture is one file to send. Only its path is kept until its turn comes.
type fixture struct {
	path  string
	index int // position in the run
}

// name is the fixture's name for placeholders: its file name without .json.
func (f fixture) name() string { return strings.TrimSuffix(filepath.Base(f.path), fixtureExt) }

// expectPath is where the fixture's expectation file would stand.
func (f fixture) expectPath() string { return strings.TrimSuffix(f.path, fixtureExt) + expectExt }

// group is the fixtures of one PATH argument. A sequential group is a story:
// it is sent in order by one worker, which skips the rest of it once one of
// its fixtures did not pass. The fixtures of any other group are
// independent.
type group struct {
	fixtures   []fixture
	sequential bool
}

// runPlan is every fixture of the run, in order, and the index of each name
// for placeholder lookups.
type runPlan struct {
	groups []group
	total  int
	names  map[string][]int // name -> indexes, ascending
}

// plan lists the fixtures of paths without reading them, except that when
// scan is set (sending, not --dry-run) each folder's files are read once to
// find out whether it is a story (uses placeholders): sent in order, and cut
// short after a failure.
func plan(paths []string, scan bool) (*runPlan, error) {
	p := &runPlan{names: make(map[string][]int)}
	for _, path := range paths {
		info, err := os.Stat(path)
		if err != nil {
			return nil, usageError("PATH %s: %v", path, unwrapPathError(err))
		}
		var g group
		if info.IsDir() {
			entries, err := os.ReadDir(path) // sorted by file name
			if err != nil {
				return nil, usageError("reading folder %s: %v", path, unwrapPathError(err))
			}
			for _, e := range entries {
				n := e.Name()
				if e.IsDir() || !strings.HasSuffix(n, fixtureExt) || strings.HasSuffix(n, expectExt) {
					continue
				}
				g.fixtures = append(g.fixtures, fixture{path: filepath.Join(path, n)})
			}
			if len(g.fixtures) == 0 {
				return nil, usageError("folder %s holds no fixture (.json files other than *.expect.json)", path)
			}
		} else {
			if strings.HasSuffix(path, expectExt) {
				return nil, usageError("PATH %s is an expectation file: give the fixture beside it instead", path)
			}
			g.fixtures = []fixture{{path: path}}
		}
		for i := range g.fixtures {
			g.fixtures[i].index = p.total
			name := g.fixtures[i].name()
			p.names[name] = append(p.names[name], p.total)
			p.total++
		}
		if scan && len(g.fixtures) > 1 {
			story, err := usesPlaceholders(g.fixtures)
			if err != nil {
				return nil, err
			}
			g.sequential = story
		}
		p.groups = append(p.groups, g)
	}
	return p, nil
}

// usesPlaceholders reports whether any fixture or expectation file of fs
// holds a placeholder. Files are read one at a time and dropped.
func usesPlaceholders(fs []fixture) (bool, error) {
	for _, f := range fs {
		for _, path := range []string{f.path, f.expectPath()} {
			data, err := readLimited(path)
			if os.IsNotExist(err) && path != f.path {
				continue
			}
			if err != nil {
				return false, usageError("%v", err)
			}
			if placeholderRE.Match(data) {
				return true, nil
			}
		}
	}
	return false, nil
}

// readLimited reads a fixture or expectation file, refusing one over
// maxFixtureBytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFixtureBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxFixtureBytes {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, maxFixtureBytes>>20)
	}
	return data, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// placeholderRE matches {{accounts.NAME}}; anyPlaceholderRE matches anything
// that looks like a placeholder, so that a typo fails instead of being sent.
var (
	placeholderRE    = regexp.MustCompile(`\{\{\s*accounts\.([^{}\s]+)\s*\}\}`)
	anyPlaceholderRE = regexp.MustCompile(`\{\{\s*[A-Za-z_][A-Za-z0-9_.\-]*\s*\}\}`)
)

// earlier returns the index of the last fixture called name that comes
// before index in the run.
func (p *runPlan) earlier(name string, index int) (int, bool) {
	idx := p.names[name]
	for i := len(idx) - 1; i >= 0; i-- {
		if idx[i] < index {
			return idx[i], true
		}
	}
	return 0, false
}

// substitute replaces every placeholder of data through lookup, which gives
// the account id for a name or an error. Other {{...}} placeholders are an
// error too. Ids are JSON-escaped, so that they are safe inside a string.
func substitute(data []byte, lookup func(name string) (string, error)) ([]byte, error) {
	if !bytes.Contains(data, []byte("{{")) {
		return data, nil
	}
	var firstErr error
	out := placeholderRE.ReplaceAllFunc(data, func(m []byte) []byte {
		name := string(placeholderRE.FindSubmatch(m)[1])
		id, err := lookup(name)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return m
		}
		return []byte(jsonEscape(id))
	})
	if firstErr != nil {
		return nil, firstErr
	}
	if m := anyPlaceholderRE.Find(out); m != nil {
		return nil, fmt.Errorf("unknown placeholder %s: only {{accounts.NAME}} is supported", m)
	}
	return out, nil
}

// jsonEscape escapes s for the inside of a JSON string.
func jsonEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
