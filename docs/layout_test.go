package docs

import (
	"errors"
	"go/build"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// module is this module's path: the prefix of our own imports.
const module = "github.com/banking-marketplace/webhook"

// TestLayoutTreeListsEveryPackage: the layout tree of development.md names
// exactly the module's packages (the folders holding .go files, as
// `go list ./...` finds them), so that it cannot go stale when a package
// is added, moved or removed.
func TestLayoutTreeListsEveryPackage(t *testing.T) {
	documented := layoutTree(t, readDevelopment(t))
	packages := modulePackages(t, "..")
	for _, p := range packages {
		if _, ok := documented[p]; !ok {
			t.Errorf("package %s is missing from the layout tree of docs/development.md", p)
		}
	}
	for p := range documented {
		if !slices.Contains(packages, p) {
			t.Errorf("docs/development.md's layout tree names %s, which is not a package", p)
		}
	}
}

// TestLayoutTreeImports: no package imports one of ours that its line of
// the layout tree does not allow ("Imports events, backoff"), so that the
// arrows the tree draws are the arrows of the code. Test files are free.
func TestLayoutTreeImports(t *testing.T) {
	documented := layoutTree(t, readDevelopment(t))
	packages := modulePackages(t, "..")
	for pkg, text := range documented {
		allowed, ok := allowedImports(text, packages)
		if !ok {
			t.Errorf("%s: its line in the layout tree ends in no \"Imports ...\" (a list, \"nothing\" or \"everything\")", pkg)
			continue
		}
		if allowed == nil { // everything
			continue
		}
		for _, a := range allowed {
			if !slices.Contains(packages, a) {
				t.Errorf("%s: the layout tree lets it import %s, which is not a package", pkg, a)
			}
		}
		for _, imp := range ourImports(t, pkg) {
			if !slices.Contains(allowed, imp) {
				t.Errorf("%s imports %s, which its line of the layout tree in docs/development.md does not allow: change the code or the tree", pkg, imp)
			}
		}
	}
}

// TestUseCasesImportNoAdapter: the use cases and the targets hold, in all
// they depend on, neither go-redis nor echo: they declare what they need
// and cmd/webhook binds the adapters.
func TestUseCasesImportNoAdapter(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	forbidden := []string{"github.com/redis/go-redis/v9", "github.com/labstack/echo/v4"}
	for _, pkg := range []string{"internal/inbox", "internal/provisioning", "internal/settler", "internal/q2", "internal/qbdconnect", "internal/helix"} {
		out, err := exec.Command("go", "list", "-deps", "../"+pkg).Output()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, exit.Stderr)
		} else if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, f := range forbidden {
			if slices.Contains(deps, f) {
				t.Errorf("%s depends on %s: a use case or a target must not know the adapters", pkg, f)
			}
		}
	}
}

func readDevelopment(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("development.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// layoutTree returns the packages the tree names, each with its text: an
// entry is a line indented by exactly four spaces between the layout
// markers, whose first word is the package's folder, and the deeper
// indented lines after it.
func layoutTree(t *testing.T, doc string) map[string]string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "<!-- layout:begin -->")
	tree, _, ok2 := strings.Cut(rest, "<!-- layout:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/development.md has no <!-- layout:begin --> ... <!-- layout:end --> block")
	}
	out := map[string]string{}
	var cur string
	for _, line := range strings.Split(tree, "\n") {
		switch {
		case strings.HasPrefix(line, "     ") && cur != "":
			out[cur] += " " + strings.TrimSpace(line)
		case strings.HasPrefix(line, "    "):
			fields := strings.Fields(line)
			cur = fields[0]
			if _, twice := out[cur]; twice {
				t.Errorf("the layout tree names %s twice", cur)
			}
			out[cur] = strings.Join(fields[1:], " ")
		}
	}
	if len(out) == 0 {
		t.Fatal("the layout tree of docs/development.md is empty")
	}
	return out
}

// allowedImports reads the end of an entry's text, "Imports a, b/c",
// "Imports nothing" or "Imports everything" (nil), into package folders:
// a name is under internal/ when there is such a package (events is
// internal/events), else a folder of the module's root (docs).
func allowedImports(text string, packages []string) ([]string, bool) {
	i := strings.LastIndex(text, "Imports ")
	if i < 0 {
		return nil, false
	}
	switch list := strings.TrimSpace(text[i+len("Imports "):]); list {
	case "everything":
		return nil, true
	case "nothing":
		return []string{}, true
	default:
		var out []string
		for _, name := range strings.Split(list, ",") {
			name = strings.TrimSpace(name)
			if slices.Contains(packages, "internal/"+name) {
				name = "internal/" + name
			}
			out = append(out, name)
		}
		return out, true
	}
}

// ourImports lists the module's packages that the non-test files of the
// package in folder dir (relative to the module's root) import.
func ourImports(t *testing.T, dir string) []string {
	t.Helper()
	p, err := build.ImportDir(filepath.Join("..", dir), 0)
	var none *build.NoGoError
	if errors.As(err, &none) {
		return nil // tests only
	}
	if err != nil {
		t.Fatalf("reading the imports of %s: %v", dir, err)
	}
	var out []string
	for _, imp := range p.Imports {
		if rest, ok := strings.CutPrefix(imp, module+"/"); ok {
			out = append(out, rest)
		}
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
