// Package products reads the products file (PRODUCTS_FILE): which products
// a bank sells on the marketplace, the extensions each answers on, and what
// each provisions (its targets, in order, with their settings). It is the
// q2_marketplace MarketplaceProduct(name, extension_list, product_id) plus
// the plan. The file is read and checked once, at start: a bad file is an
// error naming the file, the product and the field.
package products

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// The targets a product may name.
const (
	TargetQ2    = "q2"
	TargetQBD   = "qbd_connect"
	TargetHelix = "helix"
)

// Targets lists every target a product may name.
var Targets = []string{TargetQ2, TargetQBD, TargetHelix}

// Entitlements are the Helix entitlement levels.
var Entitlements = []string{"FULL", "RDONLY", "RDDB", "RDCR", "DBONLY", "CRONLY"}

// Product is one product sold on the marketplace.
type Product struct {
	Name       string   `yaml:"name"`
	ProductID  string   `yaml:"product_id"`     // the marketplace's product_identifier; empty for the default product
	Extensions []string `yaml:"extension_list"` // the {extension} path segments it answers on
	Targets    []string `yaml:"targets"`        // what it provisions, in order

	Q2    *Q2    `yaml:"q2"`
	QBD   *QBD   `yaml:"qbd_connect"`
	Helix *Helix `yaml:"helix"`
}

// Q2 are a product's settings of the q2 target.
type Q2 struct {
	GroupID       int    `yaml:"group_id"`       // the Q2 group new customers join; 0: Q2's default
	UserRoleID    string `yaml:"user_role_id"`   // the role new users get; empty: Q2's default
	CancelDeletes string `yaml:"cancel_deletes"` // user (default) or customer
}

// QBD are a product's settings of the qbd_connect target.
type QBD struct {
	ProductID string `yaml:"product_id"` // the QBD Connect product the subscription is for (required)
}

// Helix are a product's settings of the helix target.
type Helix struct {
	Entitlement string            `yaml:"entitlement"` // the default level; RDONLY when empty
	Editions    map[string]string `yaml:"editions"`    // edition code → level
}

// Catalog is the products, by extension.
type Catalog struct {
	Products    []Product
	byExtension map[string]int
	everything  bool // the default product: every extension
}

// DefaultName is the name of the product used without PRODUCTS_FILE.
const DefaultName = "default"

// Default is the catalog without PRODUCTS_FILE: one product on every
// extension, provisioning a Q2 user, with cancelDeletes for its Q2 target.
func Default(cancelDeletes string) *Catalog {
	return &Catalog{everything: true, Products: []Product{{
		Name: DefaultName, Targets: []string{TargetQ2}, Q2: &Q2{CancelDeletes: cancelDeletes},
	}}}
}

// Lookup returns the product of an extension; false when no product has it.
func (c *Catalog) Lookup(extension string) (*Product, bool) {
	if c.everything {
		return &c.Products[0], true
	}
	i, ok := c.byExtension[extension]
	if !ok {
		return nil, false
	}
	return &c.Products[i], true
}

// Load reads and checks the products file at path (YAML or JSON).
func Load(path string) (*Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("PRODUCTS_FILE %s: %w", path, err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("PRODUCTS_FILE %s: %w", path, err)
	}
	return c, nil
}

// Parse reads and checks a products document.
func Parse(b []byte) (*Catalog, error) {
	var doc struct {
		Products []Product `yaml:"products"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty; it needs a products list")
		}
		return nil, fmt.Errorf("%s", oneLine(err.Error()))
	}
	if len(doc.Products) == 0 {
		return nil, errors.New("products: the list is empty; name at least one product")
	}
	c := &Catalog{Products: doc.Products, byExtension: map[string]int{}}
	names := map[string]bool{}
	for i := range c.Products {
		p := &c.Products[i]
		bad := func(field, format string, args ...any) error {
			who := fmt.Sprintf("product %d", i+1)
			if p.Name != "" {
				who = fmt.Sprintf("product %q", p.Name)
			}
			return fmt.Errorf("%s: %s: %s", who, field, fmt.Sprintf(format, args...))
		}
		switch {
		case strings.TrimSpace(p.Name) == "":
			return nil, bad("name", "is required")
		case names[p.Name]:
			return nil, bad("name", "is used by another product; names must be unique")
		case p.ProductID == "":
			return nil, bad("product_id", "is required: the marketplace's product_identifier")
		case len(p.Extensions) == 0:
			return nil, bad("extension_list", "is required: the extensions (path segments of /marketplace/{extension}) it answers on")
		case len(p.Targets) == 0:
			return nil, bad("targets", "is required: what it provisions, in order, from %s", strings.Join(Targets, ", "))
		}
		names[p.Name] = true
		for _, ext := range p.Extensions {
			if ext == "" || strings.ContainsAny(ext, "/?#% ") {
				return nil, bad("extension_list", "%q is not a path segment", ext)
			}
			if j, dup := c.byExtension[ext]; dup {
				return nil, bad("extension_list", "extension %q belongs to product %q too; an extension belongs to one product", ext, c.Products[j].Name)
			}
			c.byExtension[ext] = i
		}
		seen := map[string]bool{}
		for _, t := range p.Targets {
			if !slices.Contains(Targets, t) {
				return nil, bad("targets", "%q is not a target; use %s", t, strings.Join(Targets, ", "))
			}
			if seen[t] {
				return nil, bad("targets", "%q is named twice", t)
			}
			seen[t] = true
		}
		if err := p.checkSettings(seen, bad); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkSettings checks each target's settings, and that no settings are
// given for a target the product does not use.
func (p *Product) checkSettings(uses map[string]bool, bad func(field, format string, args ...any) error) error {
	for name, given := range map[string]bool{TargetQ2: p.Q2 != nil, TargetQBD: p.QBD != nil, TargetHelix: p.Helix != nil} {
		if given && !uses[name] {
			return bad(name, "settings are given but %q is not in targets", name)
		}
	}
	if uses[TargetQ2] {
		if p.Q2 == nil {
			p.Q2 = &Q2{}
		}
		switch p.Q2.CancelDeletes {
		case "", "user", "customer":
		default:
			return bad("q2.cancel_deletes", "%q is not user or customer", p.Q2.CancelDeletes)
		}
		if p.Q2.GroupID < 0 {
			return bad("q2.group_id", "%d is negative", p.Q2.GroupID)
		}
	}
	if uses[TargetQBD] && (p.QBD == nil || p.QBD.ProductID == "") {
		return bad("qbd_connect.product_id", "is required: the QBD Connect product its subscriptions are for")
	}
	if uses[TargetHelix] {
		if p.Helix == nil {
			p.Helix = &Helix{}
		}
		if p.Helix.Entitlement == "" {
			p.Helix.Entitlement = "RDONLY"
		}
		if !slices.Contains(Entitlements, p.Helix.Entitlement) {
			return bad("helix.entitlement", "%q is not one of %s", p.Helix.Entitlement, strings.Join(Entitlements, ", "))
		}
		for edition, level := range p.Helix.Editions {
			if !slices.Contains(Entitlements, level) {
				return bad("helix.editions."+edition, "%q is not one of %s", level, strings.Join(Entitlements, ", "))
			}
		}
	}
	return nil
}

// oneLine folds a multi-line parser message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
