// Package products reads the products file: which products a bank sells
// on the marketplace, the extensions each answers on, and what each
// provisions (its targets, in order, with their settings). It is the
// q2_marketplace MarketplaceProduct(name, extension_list, product_id) plus
// the plan. The file is read and checked once, at start: every mistake in
// it is a *Problem naming the file and line, the product and the key, in
// the file's own words (see parse.go).
package products

import (
	"fmt"
	"os"
)

// The targets a product may name.
const (
	TargetQ2         = "q2"
	TargetQBDConnect = "qbd_connect"
	TargetHelix      = "helix"
)

// Targets lists every target a product may name.
var Targets = []string{TargetQ2, TargetQBDConnect, TargetHelix}

// Entitlements are the Helix entitlement levels.
var Entitlements = []string{"FULL", "RDONLY", "RDDB", "RDCR", "DBONLY", "CRONLY"}

// Product is one product sold on the marketplace.
type Product struct {
	Name       string   `yaml:"name"`
	ProductID  string   `yaml:"product_id"`     // the marketplace's product_identifier; empty for the default product
	Extensions []string `yaml:"extension_list"` // the {extension} path segments it answers on
	Targets    []string `yaml:"targets"`        // what it provisions, in order

	Q2         *Q2         `yaml:"q2"`
	QBDConnect *QBDConnect `yaml:"qbd_connect"`
	Helix      *Helix      `yaml:"helix"`
}

// Q2 are a product's settings of the q2 target.
type Q2 struct {
	GroupID       int    `yaml:"group_id"`       // the Q2 group new customers join; 0: Q2's default
	UserRoleID    string `yaml:"user_role_id"`   // the role new users get; empty: Q2's default
	CancelDeletes string `yaml:"cancel_deletes"` // user (default) or customer
}

// QBDConnect are a product's settings of the qbd_connect target.
type QBDConnect struct {
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

// DefaultName is the name of the product used without a products file.
const DefaultName = "default"

// Default is the catalog without a products file: one product on every
// extension, provisioning a Q2 user, with cancelDeletes for its Q2 target.
func Default(cancelDeletes string) *Catalog {
	return &Catalog{everything: true, Products: []Product{{
		Name: DefaultName, Targets: []string{TargetQ2}, Q2: &Q2{CancelDeletes: cancelDeletes},
	}}}
}

// IsDefault reports whether c is the catalog of Default: no products file.
func (c *Catalog) IsDefault() bool { return c.everything }

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

// Load reads and checks the products file at path (YAML or JSON). Its
// error is every *Problem of the file, joined (errors.Join), each naming
// path and its line; or why the file cannot be read.
func Load(path string) (*Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the products file: %w", err)
	}
	return parse(path, b)
}

// Parse reads and checks a products document; its problems name lines.
func Parse(b []byte) (*Catalog, error) {
	return parse("", b)
}
