package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestInvariantsNameRealTests: every test invariants.md names
// (`pkg.TestName`, `cmd/webhook.TestName`) is a test function of a package
// of that name, so the page cannot cite tests that were renamed or
// deleted.
func TestInvariantsNameRealTests(t *testing.T) {
	doc, err := os.ReadFile("invariants.md")
	if err != nil {
		t.Fatal(err)
	}
	// The test functions of the repository, by package directory name.
	tests := map[string]map[string]bool{}
	err = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pkg := filepath.Base(filepath.Dir(path))
		if tests[pkg] == nil {
			tests[pkg] = map[string]bool{}
		}
		for _, m := range regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`).FindAllStringSubmatch(string(b), -1) {
			tests[pkg][m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := regexp.MustCompile("`([a-z0-9/]+)\\.(Test\\w+)`").FindAllStringSubmatch(string(doc), -1)
	if len(cited) < 20 {
		t.Fatalf("invariants.md cites %d tests; the pattern must have missed them", len(cited))
	}
	for _, c := range cited {
		pkg := filepath.Base(c[1])
		if !tests[pkg][c[2]] {
			t.Errorf("invariants.md cites %s.%s, which does not exist", c[1], c[2])
		}
	}
}
