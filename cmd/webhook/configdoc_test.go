package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/configuration.md from the settings table")

const (
	configDoc      = "../../docs/configuration.md"
	tableBegin     = "<!-- BEGIN settings: generated from cmd/webhook/config.go; change it there, then: go test ./cmd/webhook -run TestConfigurationDoc -update -->"
	tableEnd       = "<!-- END settings -->"
	productionNote = "Setting any of these leaves demo mode: "
)

// settingsDoc is the settings table as docs/configuration.md shows it.
func settingsDoc() string {
	var b strings.Builder
	b.WriteString("| env | flag | default | meaning |\n|---|---|---|---|\n")
	var production []string
	for _, s := range settings {
		def := "empty"
		if s.def != "" {
			def = "`" + s.def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | %s | %s |\n", s.env, s.flag, def, strings.ReplaceAll(s.usage, "|", `\|`))
		if s.production {
			production = append(production, "`"+s.env+"`")
		}
	}
	b.WriteString("\n" + productionNote + strings.Join(production, ", ") + ".\n")
	return b.String()
}

// docs/configuration.md's table is the settings table of the code, so the
// two cannot drift: a setting added, removed or changed here fails this
// test until the page is regenerated (-update).
func TestConfigurationDoc(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(doc), tableBegin+"\n")
	got, after, ok2 := strings.Cut(rest, tableEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s lacks the markers of its generated table:\n%s\n%s", configDoc, tableBegin, tableEnd)
	}
	want := settingsDoc()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(configDoc, []byte(before+tableBegin+"\n"+want+tableEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's settings table differs from the code's; run: go test ./cmd/webhook -run TestConfigurationDoc -update\ngot:\n%s\nwant:\n%s", configDoc, got, want)
}

// Every setting the page's prose names in backticks exists, so that a
// renamed or removed setting cannot live on in the text: a row of the
// table, or an OTEL_* variable the service or the SDK reads for tracing
// (tracing.go lists them).
func TestConfigurationDocNamesSettings(t *testing.T) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.env] = true
	}
	for _, v := range append(tracingVariables, sdkVariables...) {
		known[v] = true
	}
	for _, word := range strings.Split(string(doc), "`") {
		if envLike(word) && !known[word] {
			t.Errorf("%s names `%s`, which is not a setting", configDoc, word)
		}
	}
}

// envLike is a word that looks like a setting's name: SOME_NAME.
func envLike(w string) bool {
	if !strings.Contains(w, "_") || strings.Trim(w, "_") != w {
		return false
	}
	for _, r := range w {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}
