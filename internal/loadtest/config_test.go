package loadtest

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(config) bool
	}{
		{"defaults", nil, func(c config) bool { return c.New == defaults.New && c.Conns == defaults.Conns && c.Rounds == 2 }},
		{"quick", []string{"--quick"}, func(c config) bool {
			return c.New == quick.New && c.Copies == quick.Copies && c.Storm == quick.Storm && c.Conns == quick.Conns
		}},
		{"quick keeps given flags", []string{"--quick", "--new", "5", "--conns-c", "3"}, func(c config) bool {
			return c.New == load{5, quick.New.C} && c.Conns == load{quick.Conns.N, 3}
		}},
		{"a phase skipped", []string{"--storm", "0"}, func(c config) bool { return c.Storm.N == 0 }},
		{"gomemlimit", []string{"--gomemlimit", "48MiB"}, func(c config) bool { return c.GoMemLimit == "48MiB" }},
		{"burst off by default", nil, func(c config) bool { return c.Burst.N == 0 && c.Burst.C == 256 && c.Counts == 5 }},
		{"burst", []string{"--burst", "100000"}, func(c config) bool { return c.Burst == load{100000, 256} }},
		{"quick sizes the products", []string{"--quick"}, func(c config) bool { return c.BA == quick.BA && c.QBD == quick.QBD && c.Burst.N == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseArgs(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(c) {
				t.Fatalf("%v gave %+v", tt.args, c)
			}
		})
	}
}

func TestParseArgsRefuses(t *testing.T) {
	tests := []struct {
		args []string
		says string // the message names the flag
	}{
		{[]string{"--new", "0"}, "--new"},
		{[]string{"--copies", "-1"}, "--copies"},
		{[]string{"--storm-c", "0"}, "--storm-c"},
		{[]string{"--conns-c", "100000"}, "--conns-c"},
		{[]string{"--rounds", "0"}, "--rounds"},
		{[]string{"--timeout", "0s"}, "--timeout"},
		{[]string{"--request-timeout", "-1s"}, "--request-timeout"},
		{[]string{"--max-in-flight", "0"}, "--max-in-flight"},
		{[]string{"--redis-server", ""}, "--redis-server"},
		{[]string{"--gomemlimit", "48M"}, "--gomemlimit"},
		{[]string{"--ba", "5001"}, "--ba"},
		{[]string{"--qbd", "-1"}, "--qbd"},
		{[]string{"--burst", "-1"}, "--burst"},
		{[]string{"--burst-c", "0"}, "--burst-c"},
		{[]string{"--counts", "51"}, "--counts"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"extra"}, "extra"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseArgs(tt.args, io.Discard)
			var ue *UsageError
			if !errors.As(err, &ue) || ue.ExitCode() != 2 {
				t.Fatalf("err = %v; want a *UsageError", err)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("%q does not name %s", err, tt.says)
			}
		})
	}
	if _, err := parseArgs([]string{"--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v; want flag.ErrHelp", err)
	}
}
