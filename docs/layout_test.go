package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLayoutTreeListsEveryPackage: the layout tree of development.md names
// exactly the module's packages (the folders holding .go files, as
// `go list ./...` finds them), so that it cannot go stale when a package
// is added, moved or removed.
func TestLayoutTreeListsEveryPackage(t *testing.T) {
	b, err := os.ReadFile("development.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := layoutTree(t, string(b))
	packages := modulePackages(t, "..")
	for _, p := range packages {
		if !slices.Contains(documented, p) {
			t.Errorf("package %s is missing from the layout tree of docs/development.md", p)
		}
	}
	for _, p := range documented {
		if !slices.Contains(packages, p) {
			t.Errorf("docs/development.md's layout tree names %s, which is not a package", p)
		}
	}
}

// layoutTree returns the paths the tree names: the first word of each line
// indented by exactly four spaces between the layout markers.
func layoutTree(t *testing.T, doc string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "<!-- layout:begin -->")
	tree, _, ok2 := strings.Cut(rest, "<!-- layout:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/development.md has no <!-- layout:begin --> ... <!-- layout:end --> block")
	}
	var out []string
	for _, line := range strings.Split(tree, "\n") {
		if strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") {
			out = append(out, strings.Fields(line)[0])
		}
	}
	if len(out) == 0 {
		t.Fatal("the layout tree of docs/development.md is empty")
	}
	return out
}

// modulePackages returns the folders under root that hold .go files,
// skipping those the go command ignores (testdata, and names starting
// with . or _).
func modulePackages(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") {
			rel, err := filepath.Rel(root, filepath.Dir(path))
			if err != nil {
				return err
			}
			if rel = filepath.ToSlash(rel); !slices.Contains(out, rel) {
				out = append(out, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
