package products

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleFile(t *testing.T) {
	t.Parallel()
	c, err := Load("../../products.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := c.Lookup("my-product-name")
	if !ok || p.Name != "Online Banking Plus" || p.ProductID != "obp" || p.Targets[0] != TargetQ2 || p.Q2.GroupID != 1 {
		t.Fatalf("my-product-name → %+v, %v", p, ok)
	}
	if p, ok := c.Lookup("treasury-desk"); !ok || p.Q2.CancelDeletes != "customer" {
		t.Fatalf("treasury-desk → %+v, %v", p, ok)
	}
	if _, ok := c.Lookup("nobody-sells-this"); ok {
		t.Error("an unknown extension found a product")
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := Default("customer")
	for _, ext := range []string{"my-product-name", "anything"} {
		p, ok := c.Lookup(ext)
		if !ok || p.Name != DefaultName || len(p.Targets) != 1 || p.Targets[0] != TargetQ2 || p.Q2.CancelDeletes != "customer" {
			t.Fatalf("%s → %+v, %v", ext, p, ok)
		}
	}
}

func TestJSONAndHelixDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(`{"products": [
	  {"name": "Business Access", "product_id": "biz", "extension_list": ["business-access"],
	   "targets": ["q2", "helix"], "helix": {"editions": {"PREMIUM": "FULL"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := c.Lookup("business-access")
	if p.Helix.Entitlement != "RDONLY" || p.Helix.Editions["PREMIUM"] != "FULL" || p.Q2 == nil {
		t.Fatalf("helix settings %+v, q2 %+v", p.Helix, p.Q2)
	}
}

// Each kind of bad file stops the start with one line per mistake naming
// the file and line, the product and the key, in the file's own terms:
// nothing of the YAML library or of Go's types.
func TestBadFiles(t *testing.T) {
	t.Parallel()
	const good = `{"name": "A", "product_id": "a", "extension_list": ["ext-a"], "targets": ["q2"]}`
	tests := []struct {
		name, doc string
		line      int // of the (first) problem; 0: none to point at
		want      []string
	}{
		{"empty", ``, 0, []string{"empty"}},
		{"no products", `products: []`, 1, []string{"products", "empty"}},
		{"unknown top key", `{"products": [` + good + `], "extra": 1}`, 1, []string{"extra: unknown key; the keys of the file are products"}},
		{"unknown product key", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2"], "colour": "red"}]}`, 1,
			[]string{`product "A": colour: unknown key; the keys of a product are name, product_id, extension_list, targets, q2, qbd_connect, helix`}},
		{"unknown setting", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2"], "q2": {"group": 1}}]}`, 1,
			[]string{`product "A": q2.group: unknown key; did you mean ` + "`group_id`?"}},
		{"missing name", `{"products": [{"product_id": "a", "extension_list": ["x"], "targets": ["q2"]}]}`, 1, []string{"product 1", "name", "required"}},
		{"missing product_id", `{"products": [{"name": "A", "extension_list": ["x"], "targets": ["q2"]}]}`, 1, []string{`product "A"`, "product_id"}},
		{"missing extensions", `{"products": [{"name": "A", "product_id": "a", "targets": ["q2"]}]}`, 1, []string{`product "A"`, "extension_list"}},
		{"missing targets", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"]}]}`, 1, []string{`product "A"`, "targets"}},
		{"extension in two products", `{"products": [` + good + `, {"name": "B", "product_id": "b", "extension_list": ["ext-a"], "targets": ["q2"]}]}`, 1, []string{`product "B"`, "ext-a", `"A"`}},
		{"duplicate name", `{"products": [` + good + `, {"name": "A", "product_id": "b", "extension_list": ["ext-b"], "targets": ["q2"]}]}`, 1, []string{`product "A"`, "name", "unique"}},
		{"unknown target", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2", "salesforce"]}]}`, 1, []string{`product "A"`, "targets", "salesforce"}},
		{"target twice", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2", "q2"]}]}`, 1, []string{`product "A"`, "twice"}},
		{"bad cancel_deletes", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2"], "q2": {"cancel_deletes": "all"}}]}`, 1, []string{`product "A"`, "q2.cancel_deletes", "all"}},
		{"qbd without product_id", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["qbd_connect"]}]}`, 1, []string{`product "A"`, "qbd_connect.product_id"}},
		{"bad entitlement", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["helix"], "helix": {"entitlement": "ALL"}}]}`, 1, []string{`product "A"`, "helix.entitlement", "ALL"}},
		{"bad edition entitlement", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["helix"], "helix": {"editions": {"GOLD": "MOST"}}}]}`, 1, []string{"helix.editions.GOLD", "MOST"}},
		{"settings of an unused target", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2"], "helix": {"entitlement": "FULL"}}]}`, 1, []string{`product "A"`, "helix", "not in targets"}},
		{"bad extension", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["a/b"], "targets": ["q2"]}]}`, 1, []string{"extension_list", "a/b"}},
		{"not yaml", "products: [\n  - name: [", 1, []string{"not valid YAML"}},

		// The cases: a typo, with the product named and the key
		// to use; a bad indent on the line it is on.
		{"misspelt key", "products:\n  - name: Plus\n    product_id: obp\n    extention_list: [plus]\n    targets: [q2]\n", 4,
			[]string{`product "Plus": extention_list: unknown key; did you mean ` + "`extension_list`?"}},
		{"key indented too far", "products:\n  - name: A\n    product_id: a\n     extension_list: [x]\n    targets: [q2]\n", 4, []string{"indentation"}},
		{"key indented too little", "products:\n  - name: A\n    product_id: a\n   extension_list: [x]\n    targets: [q2]\n", 4, []string{"indentation does not line up"}},
		{"key out of its product", "products:\n  - name: A\n    product_id: a\n    extension_list: [x]\n  targets: [q2]\n", 5, []string{"indentation does not line up"}},
		{"setting indented too little", "products:\n  - name: A\n    product_id: a\n    extension_list: [x]\n    targets: [q2]\n    q2:\n      group_id: 1\n     cancel_deletes: user\n", 8, []string{"indentation"}},
		{"setting not indented under its target", "products:\n  - name: A\n    product_id: a\n    extension_list: [x]\n    targets: [q2]\n    q2:\n    group_id: 1\n", 7,
			[]string{`product "A": group_id: unknown key here: ` + "`group_id` is a key of `q2`; indent it under `q2:`"}},
		{"product key at the top", "products:\n  - name: A\n    product_id: a\n    extension_list: [x]\n    targets: [q2]\nname: B\n", 6,
			[]string{"name: unknown key here: `name` is a key of each product"}},
		{"tab", "products:\n  - name: A\n    product_id: a\n\textension_list: [x]\n", 4, []string{"a tab indents this line; indent with spaces only"}},
		{"key given twice", "products:\n  - name: A\n    product_id: a\n    extension_list: [x]\n    targets: [q2]\n    name: B\n", 6, []string{`product "A": name: is given twice (first on line 2)`}},
		{"not a number", "products:\n  - name: A\n    product_id: a\n    extension_list: [x]\n    targets: [q2]\n    q2: {group_id: first}\n", 6, []string{"q2.group_id: `first` is not a whole number"}},
		{"not a list", "products:\n  - name: A\n    product_id: a\n    extension_list: x\n    targets: [q2]\n", 4, []string{"extension_list: must be a list, like [x]"}},
		{"target misspelt", "products:\n  - name: A\n    product_id: a\n    extension_list: [x]\n    targets: [q2, qbdconnect]\n    qbd_connect: {product_id: p}\n", 5, []string{"did you mean `qbd_connect`?"}},
		{"JSON missing a comma", "{\"products\": [\n  {\"name\": \"A\",\n   \"product_id\": \"a\"\n   \"targets\": [\"q2\"]}]}\n", 4, []string{"not valid JSON"}},
		{"products not a list", "products:\n  name: A\n", 2, []string{"products: must be a list of products"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "products.yaml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded; want an error")
			}
			msg := err.Error()
			first := strings.SplitN(msg, "\n", 2)[0]
			where := path + ": "
			if tt.line > 0 {
				where = fmt.Sprintf("%s:%d: ", path, tt.line)
			}
			if !strings.HasPrefix(first, where) {
				t.Errorf("error %q: want it to start with %q", msg, where)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			for _, internal := range []string{"yaml:", "products.Product", "unmarshal", "!!", "field ", "type "} {
				if strings.Contains(strings.ReplaceAll(msg, path, "FILE"), internal) {
					t.Errorf("error %q shows the library's or Go's words (%q)", msg, internal)
				}
			}
		})
	}
}

// Every mistake of a file is said at once, one line each, in the file's
// order, so that a file is fixed in one go.
func TestEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	doc := `products:
  - name: Plus
    product_id: obp
    extention_list: [plus]
    targets: [q2]
  - name: Desk
    extension_list: [desk]
    targets: [q2, salesforce]
    q2: {cancel_deletes: all}
`
	_, err := Parse([]byte(doc))
	if err == nil {
		t.Fatal("parsed; want errors")
	}
	want := []string{
		"line 4: product \"Plus\": extention_list: unknown key; did you mean `extension_list`?",
		`line 6: product "Desk": product_id: is required: the marketplace's product_identifier`,
		`line 8: product "Desk": targets: "salesforce" is not a target; use q2, qbd_connect, helix`,
		`line 9: product "Desk": q2.cancel_deletes: "all" is not user or customer`,
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	var p *Problem
	if !errors.As(err, &p) || p.Line != 4 || p.Key != "extention_list" {
		t.Errorf("the first error is %#v, want a *Problem at line 4", p)
	}
}

// Anchors, aliases and merge keys are YAML, and a products file may use
// them.
func TestAnchorsAndMerges(t *testing.T) {
	t.Parallel()
	doc := `base: &base
products:
  - &plus
    name: Plus
    product_id: obp
    extension_list: [plus]
    targets: [q2]
    q2: &q2 {cancel_deletes: customer}
  - <<: *plus
    name: Desk
    extension_list: [desk]
`
	if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "base: unknown key") {
		t.Fatalf("an unknown top key: %v", err)
	}
	c, err := Parse([]byte(strings.TrimPrefix(doc, "base: &base\n")))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.Lookup("desk"); !ok || p.Name != "Desk" || p.ProductID != "obp" || p.Q2.CancelDeletes != "customer" {
		t.Errorf("desk → %+v", p)
	}
}
