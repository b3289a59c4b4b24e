package products

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one mistake in a products file, said in the file's terms:
// where it is (file and line), which product, which key, and what to do.
// Nothing of the YAML library or of Go types shows.
type Problem struct {
	File    string // the file's path; empty for Parse
	Line    int    // 1-based; 0 when the file has no line to point at
	Product string // `product "Desk"`, or `product 2` when it has no name; empty for the whole file
	Key     string // the key, dotted below a product: extension_list, q2.cancel_deletes
	Msg     string
}

func (p *Problem) Error() string {
	var parts []string
	switch {
	case p.File != "" && p.Line > 0:
		parts = append(parts, p.File+":"+strconv.Itoa(p.Line))
	case p.File != "":
		parts = append(parts, p.File)
	case p.Line > 0:
		parts = append(parts, "line "+strconv.Itoa(p.Line))
	}
	for _, s := range []string{p.Product, p.Key, p.Msg} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ": ")
}

// The shape of the file: each key, the kind of its value, and for a
// mapping its own keys. Unknown keys are mistakes (a typo must not be
// silently ignored), and the closest known key is suggested.
type kind int

const (
	kindString    kind = iota // any scalar
	kindInt                   // a whole number
	kindStrings               // a list of scalars
	kindStringMap             // a mapping of scalars to scalars
	kindMapping               // a mapping of the keys in sub
	kindProducts              // the list of products
)

type field struct {
	key  string
	kind kind
	sub  []field // kindMapping
}

var (
	q2Fields      = []field{{"group_id", kindInt, nil}, {"user_role_id", kindString, nil}, {"cancel_deletes", kindString, nil}}
	qbdFields     = []field{{"product_id", kindString, nil}}
	helixFields   = []field{{"entitlement", kindString, nil}, {"editions", kindStringMap, nil}}
	productFields = []field{
		{"name", kindString, nil}, {"product_id", kindString, nil}, {"extension_list", kindStrings, nil}, {"targets", kindStrings, nil},
		{TargetQ2, kindMapping, q2Fields}, {TargetQBDConnect, kindMapping, qbdFields}, {TargetHelix, kindMapping, helixFields},
	}
	fileFields = []field{{"products", kindProducts, nil}}
)

// problems collects the mistakes of one file.
type problems struct {
	file string
	list []*Problem
}

func (ps *problems) add(line int, product, key, format string, args ...any) {
	ps.list = append(ps.list, &Problem{File: ps.file, Line: line, Product: product, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// err is every problem, in the order of the file, joined; nil for none.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	sort.SliceStable(ps.list, func(i, j int) bool { return ps.list[i].Line < ps.list[j].Line })
	errs := make([]error, len(ps.list))
	for i, p := range ps.list {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// parse reads and checks the document b of file (empty for Parse).
func parse(file string, b []byte) (*Catalog, error) {
	ps := &problems{file: file}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		line, msg := syntaxProblem(b, err)
		ps.add(line, "", "", "%s", msg)
		return nil, ps.err()
	}
	if len(root.Content) == 0 {
		ps.add(0, "", "", "the file is empty; it needs a products list (see products.example.yaml)")
		return nil, ps.err()
	}
	doc := resolve(root.Content[0])
	if doc.Kind != yaml.MappingNode {
		ps.add(doc.Line, "", "", "the file must be a mapping with one key, `products`, whose value is the list of products")
		return nil, ps.err()
	}
	var productNodes *yaml.Node
	ps.mapping(doc, fileFields, "", "", "", func(f field, key, val *yaml.Node) {
		productNodes = val
	})
	if len(ps.list) > 0 {
		return nil, ps.err()
	}
	if productNodes == nil {
		ps.add(doc.Line, "", "products", "is missing: list the products (see products.example.yaml)")
		return nil, ps.err()
	}
	if productNodes.Kind != yaml.SequenceNode || len(productNodes.Content) == 0 {
		ps.add(productNodes.Line, "", "products", "the list is empty; name at least one product")
		return nil, ps.err()
	}

	c := &Catalog{byExtension: map[string]int{}}
	var nodes []*yaml.Node
	for i, n := range productNodes.Content {
		n = resolve(n)
		who := productName(n, i)
		if n.Kind != yaml.MappingNode {
			ps.add(n.Line, who, "", "must be a mapping of keys (name, product_id, extension_list, targets, ...); check the indentation")
			continue
		}
		before := len(ps.list)
		ps.mapping(n, productFields, "product", who, "", nil)
		if len(ps.list) > before {
			continue // its shape is wrong: the checks below would only repeat it
		}
		var p Product
		if err := n.Decode(&p); err != nil { // the shape is checked: this does not fail
			ps.add(n.Line, who, "", "%s", oneLine(err.Error()))
			continue
		}
		c.Products = append(c.Products, p)
		nodes = append(nodes, n)
	}
	names := map[string]int{} // name → line
	for i := range c.Products {
		ps.check(c, i, nodes[i], names)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// productName is how problems name the product of node n, the i-th.
func productName(n *yaml.Node, i int) string {
	if n.Kind == yaml.MappingNode {
		for _, kv := range pairs(n) {
			if kv[0].Value == "name" && kv[1].Kind == yaml.ScalarNode && strings.TrimSpace(kv[1].Value) != "" {
				return fmt.Sprintf("product %q", kv[1].Value)
			}
		}
	}
	return fmt.Sprintf("product %d", i+1)
}

// mapping checks the keys of the mapping n against fields: each known
// once, with a value of its kind; each unknown one a problem suggesting
// the closest key. found, when set, gets each known key's value.
func (ps *problems) mapping(n *yaml.Node, fields []field, level, who, prefix string, found func(f field, key, val *yaml.Node)) {
	seen := map[string]int{}
	for _, kv := range pairs(n) {
		key, val := kv[0], resolve(kv[1])
		name := key.Value
		i := slices.IndexFunc(fields, func(f field) bool { return f.key == name })
		if i < 0 {
			ps.add(key.Line, who, prefix+name, "%s", unknownKey(name, fields, level))
			continue
		}
		if line, dup := seen[name]; dup {
			ps.add(key.Line, who, prefix+name, "is given twice (first on line %d); keep one", line)
			continue
		}
		seen[name] = key.Line
		f := fields[i]
		ps.value(f, val, who, prefix+name)
		if found != nil {
			found(f, key, val)
		}
	}
}

// value checks that val is of f's kind.
func (ps *problems) value(f field, val *yaml.Node, who, key string) {
	if isNull(val) {
		return // as if absent: the checks of required keys say more
	}
	switch f.kind {
	case kindString:
		if val.Kind != yaml.ScalarNode {
			ps.add(val.Line, who, key, "must be one value, not a %s", kindName(val))
		}
	case kindInt:
		if val.Kind != yaml.ScalarNode || val.ShortTag() != "!!int" {
			ps.add(val.Line, who, key, "%s is not a whole number", show(val))
		}
	case kindStrings:
		if val.Kind != yaml.SequenceNode {
			ps.add(val.Line, who, key, "must be a list, like [%s]", strings.Trim(show(val), "`"))
			return
		}
		for i, item := range val.Content {
			if item = resolve(item); item.Kind != yaml.ScalarNode || isNull(item) {
				ps.add(item.Line, who, key, "item %d must be a name, not %s", i+1, show(item))
			}
		}
	case kindStringMap:
		if val.Kind != yaml.MappingNode {
			ps.add(val.Line, who, key, "must be a mapping, like {PREMIUM: FULL}")
			return
		}
		for _, kv := range pairs(val) {
			if v := resolve(kv[1]); v.Kind != yaml.ScalarNode || isNull(v) {
				ps.add(v.Line, who, key+"."+kv[0].Value, "must be one value, not %s", show(v))
			}
		}
	case kindMapping:
		if val.Kind != yaml.MappingNode {
			ps.add(val.Line, who, key, "must be a mapping of its settings (%s); check the indentation", keyList(f.sub))
			return
		}
		ps.mapping(val, f.sub, f.key, who, key+".", nil)
	case kindProducts:
		if val.Kind != yaml.SequenceNode {
			ps.add(val.Line, who, key, "must be a list of products, each starting with `- name:`")
		}
	}
}

// check checks what the shape cannot tell of product i (node n): required
// keys, names and extensions unique across products, targets known, and
// each target's settings. names collects the product names seen.
func (ps *problems) check(c *Catalog, i int, n *yaml.Node, names map[string]int) {
	p := &c.Products[i]
	who := productName(n, i)
	bad := func(key, format string, args ...any) {
		ps.add(lineOf(n, key), who, key, format, args...)
	}
	switch {
	case strings.TrimSpace(p.Name) == "":
		bad("name", "is required")
	case names[p.Name] != 0:
		bad("name", "is used by another product (line %d); names must be unique", names[p.Name])
	default:
		names[p.Name] = lineOf(n, "name")
	}
	if p.ProductID == "" {
		bad("product_id", "is required: the marketplace's product_identifier")
	}
	if len(p.Extensions) == 0 {
		bad("extension_list", "is required: the extensions (path segments of /marketplace/{extension}) it answers on")
	}
	for j, ext := range p.Extensions {
		line := itemLine(n, "extension_list", j)
		if ext == "" || strings.ContainsAny(ext, "/?#% ") {
			ps.add(line, who, "extension_list", "%q is not a path segment", ext)
			continue
		}
		if k, dup := c.byExtension[ext]; dup {
			ps.add(line, who, "extension_list", "extension %q belongs to product %q too; an extension belongs to one product", ext, c.Products[k].Name)
			continue
		}
		c.byExtension[ext] = i
	}
	if len(p.Targets) == 0 {
		bad("targets", "is required: what it provisions, in order, from %s", strings.Join(Targets, ", "))
	}
	uses := map[string]bool{}
	for j, t := range p.Targets {
		line := itemLine(n, "targets", j)
		switch {
		case !slices.Contains(Targets, t):
			ps.add(line, who, "targets", "%q is not a target%s; use %s", t, didYouMean(t, Targets), strings.Join(Targets, ", "))
		case uses[t]:
			ps.add(line, who, "targets", "%q is named twice", t)
		}
		uses[t] = true
	}
	p.checkSettings(uses, bad)
}

// checkSettings checks each target's settings, and that no settings are
// given for a target the product does not use; it fills in the defaults.
func (p *Product) checkSettings(uses map[string]bool, bad func(key, format string, args ...any)) {
	for _, t := range []struct {
		name  string
		given bool
	}{{TargetQ2, p.Q2 != nil}, {TargetQBDConnect, p.QBDConnect != nil}, {TargetHelix, p.Helix != nil}} {
		if t.given && !uses[t.name] {
			bad(t.name, "settings are given but %q is not in targets", t.name)
		}
	}
	if uses[TargetQ2] {
		if p.Q2 == nil {
			p.Q2 = &Q2{}
		}
		switch p.Q2.CancelDeletes {
		case "", "user", "customer":
		default:
			bad("q2.cancel_deletes", "%q is not user or customer", p.Q2.CancelDeletes)
		}
		if p.Q2.GroupID < 0 {
			bad("q2.group_id", "%d is negative", p.Q2.GroupID)
		}
	}
	if uses[TargetQBDConnect] && (p.QBDConnect == nil || p.QBDConnect.ProductID == "") {
		bad("qbd_connect.product_id", "is required: the QBD Connect product its subscriptions are for")
	}
	if uses[TargetHelix] {
		if p.Helix == nil {
			p.Helix = &Helix{}
		}
		if p.Helix.Entitlement == "" {
			p.Helix.Entitlement = "RDONLY"
		}
		if !slices.Contains(Entitlements, p.Helix.Entitlement) {
			bad("helix.entitlement", "%q is not one of %s%s", p.Helix.Entitlement, strings.Join(Entitlements, ", "), didYouMean(p.Helix.Entitlement, Entitlements))
		}
		editions := make([]string, 0, len(p.Helix.Editions))
		for edition := range p.Helix.Editions {
			editions = append(editions, edition)
		}
		sort.Strings(editions)
		for _, edition := range editions {
			if level := p.Helix.Editions[edition]; !slices.Contains(Entitlements, level) {
				bad("helix.editions."+edition, "%q is not one of %s%s", level, strings.Join(Entitlements, ", "), didYouMean(level, Entitlements))
			}
		}
	}
}

// pairs are the key/value pairs of the mapping n, with YAML merge keys
// (<<: *defaults) expanded: a merged key counts only where n does not
// give the key itself, as YAML says.
func pairs(n *yaml.Node) [][2]*yaml.Node {
	var own, merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode || key.ShortTag() != "!!merge" {
			own = append(own, [2]*yaml.Node{key, val})
			continue
		}
		val = resolve(val)
		sources := []*yaml.Node{val}
		if val.Kind == yaml.SequenceNode {
			sources = val.Content
		}
		for _, m := range sources {
			if m = resolve(m); m.Kind == yaml.MappingNode {
				merged = append(merged, pairs(m)...)
			}
		}
	}
	has := func(list [][2]*yaml.Node, key string) bool {
		return slices.ContainsFunc(list, func(kv [2]*yaml.Node) bool { return kv[0].Value == key })
	}
	out := own
	for _, kv := range merged {
		if !has(out, kv[0].Value) {
			out = append(out, kv)
		}
	}
	return out
}

// resolve follows an alias (*name) to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// lineOf is the line of key (dotted: q2.cancel_deletes) in the product
// mapping n, else of the nearest mapping above it that is there.
func lineOf(n *yaml.Node, key string) int {
	line := n.Line
	for _, part := range strings.Split(key, ".") {
		var next *yaml.Node
		for _, kv := range pairs(n) {
			if kv[0].Value == part {
				line, next = kv[0].Line, resolve(kv[1])
			}
		}
		if next == nil || next.Kind != yaml.MappingNode {
			return line
		}
		n = next
	}
	return line
}

// itemLine is the line of the j-th item of the list under key in n.
func itemLine(n *yaml.Node, key string, j int) int {
	for _, kv := range pairs(n) {
		if v := resolve(kv[1]); kv[0].Value == key && v.Kind == yaml.SequenceNode && j < len(v.Content) {
			return v.Content[j].Line
		}
	}
	return lineOf(n, key)
}

// unknownKey says what to do with a key that the fields of level (""
// for the file, "product", or a target's name) do not have: the closest
// key when one is close, the level it belongs to when it is a key of
// another (a bad indent), else the keys there are.
func unknownKey(key string, fields []field, level string) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.key
	}
	if s := didYouMean(key, names); s != "" {
		return "unknown key" + s
	}
	if level != "" && level != "product" && slices.ContainsFunc(productFields, func(f field) bool { return f.key == key }) {
		return fmt.Sprintf("unknown key in `%s`: `%s` is a key of the product; indent it like the product's other keys", level, key)
	}
	for _, f := range productFields {
		if f.key != level && slices.ContainsFunc(f.sub, func(sub field) bool { return sub.key == key }) {
			return fmt.Sprintf("unknown key here: `%s` is a key of `%s`; indent it under `%s:`", key, f.key, f.key)
		}
	}
	if level == "" && slices.ContainsFunc(productFields, func(f field) bool { return f.key == key }) {
		return fmt.Sprintf("unknown key here: `%s` is a key of each product; put it in an item of the `products` list", key)
	}
	where := "of `" + level + "`"
	switch level {
	case "":
		where = "of the file"
	case "product":
		where = "of a product"
	}
	return fmt.Sprintf("unknown key; the keys %s are %s", where, keyList(fields))
}

func keyList(fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.key
	}
	return strings.Join(names, ", ")
}

// didYouMean is ` (did you mean `x`?)`-like advice naming the candidate
// closest to s, or "" when none is close: within an edit distance of a
// third of its length (at least 2), or its start, ignoring case, - and _.
func didYouMean(s string, candidates []string) string {
	norm := func(x string) string { return strings.ReplaceAll(strings.ToLower(x), "-", "_") }
	best, bestD := "", 0
	for _, c := range candidates {
		d := distance(norm(s), norm(c))
		if len(s) >= 3 && strings.HasPrefix(norm(c), norm(s)) {
			d = min(d, 1) // a key cut short: group for group_id
		}
		if limit := max(2, len(c)/3); d <= limit && (best == "" || d < bestD) {
			best, bestD = c, d
		}
	}
	if best == "" || best == s {
		return ""
	}
	return fmt.Sprintf("; did you mean `%s`?", best)
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// show is a node's value as the file wrote it, for messages.
func show(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return "`" + n.Value + "`"
	}
	return "a " + kindName(n)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	}
	return "value"
}

// yamlLine is the "yaml: line N: " of the library's messages.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// syntaxProblem turns a YAML syntax error into the line it is on and a
// message in the file's terms. The library points many mistakes, a bad
// indent above all, at the start of the block that holds them (often line
// 1), so the line is found again: the first prefix of the file, cut at a
// line end, that fails the same way ends on the mistake. A JSON file's
// mistake is found by the JSON decoder, which knows the offset.
func syntaxProblem(b []byte, err error) (int, string) {
	msg := yamlLine.ReplaceAllString(err.Error(), "")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil && m[1] != "" {
		line, _ = strconv.Atoi(m[1])
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		var v any
		var se *json.SyntaxError
		if jerr := json.Unmarshal(b, &v); errors.As(jerr, &se) {
			return 1 + bytes.Count(b[:se.Offset], []byte("\n")), "not valid JSON: " + se.Error()
		}
	} else {
		lines := bytes.SplitAfter(b, []byte("\n"))
		open := openAtLineEnds(lines)
		for n := 1; n <= len(lines); n++ {
			if open[n-1] {
				continue // cut inside [...], {...} or a quote: it fails for that alone
			}
			var root yaml.Node
			perr := yaml.Unmarshal(bytes.Join(lines[:n], nil), &root)
			if perr != nil && yamlLine.ReplaceAllString(perr.Error(), "") == msg {
				line = n
				break
			}
		}
	}
	switch {
	case strings.Contains(msg, "tab character"):
		return line, "a tab indents this line; indent with spaces only"
	case strings.HasPrefix(msg, "did not find expected key"), strings.HasPrefix(msg, "did not find expected '-' indicator"),
		strings.HasPrefix(msg, "mapping values are not allowed"):
		return line, "this line's indentation does not line up with the lines above it (keys of one mapping start in the same column; YAML says: " + msg + ")"
	}
	return line, "not valid YAML: " + msg
}

// openAtLineEnds tells, for each line, whether a flow collection ([...],
// {...}) or a quoted string is still open at its end, roughly: comments
// and quotes are followed, block scalars are not.
func openAtLineEnds(lines [][]byte) []bool {
	out := make([]bool, len(lines))
	depth, quote := 0, byte(0)
	for i, l := range lines {
		for j := 0; j < len(l); j++ {
			c := l[j]
			switch {
			case quote == '"' && c == '\\':
				j++
			case quote != 0:
				if c == quote {
					if quote == '\'' && j+1 < len(l) && l[j+1] == '\'' {
						j++ // '' inside '...'
					} else {
						quote = 0
					}
				}
			case c == '#' && (j == 0 || l[j-1] == ' ' || l[j-1] == '\t'):
				j = len(l)
			case c == '"' || c == '\'':
				quote = c
			case c == '[' || c == '{':
				depth++
			case (c == ']' || c == '}') && depth > 0:
				depth--
			}
		}
		out[i] = depth > 0 || quote != 0
	}
	return out
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
