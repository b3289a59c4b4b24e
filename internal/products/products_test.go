package products

import (
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

// Each kind of bad file stops the start with one line naming the file, the
// product and the field.
func TestBadFiles(t *testing.T) {
	t.Parallel()
	const good = `{"name": "A", "product_id": "a", "extension_list": ["ext-a"], "targets": ["q2"]}`
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"empty", ``, []string{"empty"}},
		{"no products", `products: []`, []string{"products", "empty"}},
		{"unknown top key", `{"products": [` + good + `], "extra": 1}`, []string{"extra"}},
		{"unknown product key", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2"], "colour": "red"}]}`, []string{"colour"}},
		{"unknown setting", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2"], "q2": {"group": 1}}]}`, []string{"group"}},
		{"missing name", `{"products": [{"product_id": "a", "extension_list": ["x"], "targets": ["q2"]}]}`, []string{"product 1", "name", "required"}},
		{"missing product_id", `{"products": [{"name": "A", "extension_list": ["x"], "targets": ["q2"]}]}`, []string{`product "A"`, "product_id"}},
		{"missing extensions", `{"products": [{"name": "A", "product_id": "a", "targets": ["q2"]}]}`, []string{`product "A"`, "extension_list"}},
		{"missing targets", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"]}]}`, []string{`product "A"`, "targets"}},
		{"extension in two products", `{"products": [` + good + `, {"name": "B", "product_id": "b", "extension_list": ["ext-a"], "targets": ["q2"]}]}`, []string{`product "B"`, "ext-a", `"A"`}},
		{"duplicate name", `{"products": [` + good + `, {"name": "A", "product_id": "b", "extension_list": ["ext-b"], "targets": ["q2"]}]}`, []string{`product "A"`, "name", "unique"}},
		{"unknown target", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2", "salesforce"]}]}`, []string{`product "A"`, "targets", "salesforce"}},
		{"target twice", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2", "q2"]}]}`, []string{`product "A"`, "twice"}},
		{"bad cancel_deletes", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2"], "q2": {"cancel_deletes": "all"}}]}`, []string{`product "A"`, "q2.cancel_deletes", "all"}},
		{"qbd without product_id", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["qbd_connect"]}]}`, []string{`product "A"`, "qbd_connect.product_id"}},
		{"bad entitlement", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["helix"], "helix": {"entitlement": "ALL"}}]}`, []string{`product "A"`, "helix.entitlement", "ALL"}},
		{"bad edition entitlement", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["helix"], "helix": {"editions": {"GOLD": "MOST"}}}]}`, []string{"helix.editions.GOLD", "MOST"}},
		{"settings of an unused target", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["x"], "targets": ["q2"], "helix": {"entitlement": "FULL"}}]}`, []string{`product "A"`, "helix", "not in targets"}},
		{"bad extension", `{"products": [{"name": "A", "product_id": "a", "extension_list": ["a/b"], "targets": ["q2"]}]}`, []string{"extension_list", "a/b"}},
		{"not yaml", "products: [\n  - name: [", []string{"yaml"}},
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
			if strings.Contains(msg, "\n") || !strings.Contains(msg, path) {
				t.Errorf("error %q: want one line naming the file", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}
