package appdirect

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestEventURL(t *testing.T) {
	t.Parallel()
	markets := []string{"https://market.example", "http://10.1.2.3:8080/mp/", "https://[2001:db8::1]:8443"}
	const path = "/api/integration/v1/events/"
	var normalised []string
	for _, m := range markets {
		u, err := ParseMarketplace(m)
		if err != nil {
			t.Fatal(err)
		}
		normalised = append(normalised, u.String())
	}
	tests := []struct {
		raw       string
		wantURL   string // "" when refused
		wantToken string
	}{
		{"https://market.example" + path + "abc-123", "https://market.example" + path + "abc-123", "abc-123"},
		{"HTTPS://MARKET.Example:443" + path + "abc-123", "https://market.example" + path + "abc-123", "abc-123"},
		{"https://market.example" + path + "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "https://market.example" + path + "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},
		{"https://market.example" + path + "a.b_c~d", "https://market.example" + path + "a.b_c~d", "a.b_c~d"},
		{"http://10.1.2.3:8080/mp" + path + "t", "http://10.1.2.3:8080/mp" + path + "t", "t"},
		{"https://[2001:DB8:0::1]:8443" + path + "t", "https://[2001:db8::1]:8443" + path + "t", "t"},
		{"https://market.example" + path + strings.Repeat("a", MaxToken), "https://market.example" + path + strings.Repeat("a", MaxToken), strings.Repeat("a", MaxToken)},

		// another host, port or scheme
		{"https://evil.example" + path + "t", "", ""},
		{"https://market.example:8443" + path + "t", "", ""},
		{"http://market.example" + path + "t", "", ""},
		{"https://10.1.2.3:8080/mp" + path + "t", "", ""},
		{"http://10.1.2.3/mp" + path + "t", "", ""},
		{"http://10.1.2.3:08080/mp" + path + "t", "", ""},
		{"http://10.1.2.3:+8080/mp" + path + "t", "", ""},
		{"https://market.example:" + path + "t", "", ""},
		{"https://market.example:0" + path + "t", "", ""},
		{"https://market.example:70000" + path + "t", "", ""},
		{"ftp://market.example" + path + "t", "", ""},
		{"//market.example" + path + "t", "", ""},
		{"https:market.example" + path + "t", "", ""},
		{path + "t", "", ""},
		{"", "", ""},
		// userinfo tricks
		{"https://market.example@evil.example" + path + "t", "", ""},
		{"https://evil.example@market.example" + path + "t", "", ""},
		{"https://market.example:443@evil.example" + path + "t", "", ""},
		{"https://user:pass@market.example" + path + "t", "", ""},
		{"https://market.example%40evil.example" + path + "t", "", ""},
		{"https://market.example\\@evil.example" + path + "t", "", ""},
		// a configured host as a prefix or suffix of another
		{"https://market.example.evil.example" + path + "t", "", ""},
		{"https://evilmarket.example" + path + "t", "", ""},
		{"https://market.examplex" + path + "t", "", ""},
		{"https://market.example." + path + "t", "", ""},
		{"https://market.example.." + path + "t", "", ""},
		{"https://.market.example" + path + "t", "", ""},
		{"https://%6Darket.example" + path + "t", "", ""},
		{"https://market.example\x00.evil" + path + "t", "", ""},
		{"https://markét.example" + path + "t", "", ""},
		// IPv6
		{"https://[::1]" + path + "t", "", ""},
		{"https://[2001:db8::1]" + path + "t", "", ""},
		{"https://[2001:db8::1%25eth0]:8443" + path + "t", "", ""},
		{"https://[2001:db8::1:8443" + path + "t", "", ""},
		{"https://[10.1.2.3]:8080" + path + "t", "", ""},
		{"https://[::ffff:10.1.2.3]:8080" + path + "t", "", ""},
		// the path
		{"https://market.example" + path, "", ""},
		{"https://market.example" + path + "t/", "", ""},
		{"https://market.example" + path + "t/result", "", ""},
		{"https://market.example" + path + "..", "", ""},
		{"https://market.example" + path + ".", "", ""},
		{"https://market.example" + path + "%2E%2E", "", ""},
		{"https://market.example" + path + "a%2Fb", "", ""},
		{"https://market.example" + path + "a%252Fb", "", ""},
		{"https://market.example/api/integration/v1/events/../../admin", "", ""},
		{"https://market.example/api/integration/v1/./events/t", "", ""},
		{"https://market.example/api/integration/v1/%2e/events/t", "", ""},
		{"https://market.example//api/integration/v1/events/t", "", ""},
		{"https://market.example/api//integration/v1/events/t", "", ""},
		{"https://market.example/API/integration/v1/events/t", "", ""},
		{"https://market.example/other/api/integration/v1/events/t", "", ""},
		{"https://market.example/api/integration/v2/events/t", "", ""},
		{"http://10.1.2.3:8080" + path + "t", "", ""},
		{"http://10.1.2.3:8080/mpx" + path + "t", "", ""},
		{"https://market.example" + path + strings.Repeat("a", MaxToken+1), "", ""},
		{"https://market.example" + path + "a b", "", ""},
		{"https://market.example" + path + "a+b", "", ""},
		{"https://market.example" + path + "t;x=1", "", ""},
		// query, fragment
		{"https://market.example" + path + "t?x=1", "", ""},
		{"https://market.example" + path + "t?", "", ""},
		{"https://market.example" + path + "t#f", "", ""},
		{"https://market.example" + path + "t\n", "", ""},
		{" https://market.example" + path + "t", "", ""},
	}
	// The client checks with the marketplaces it parsed once, the same.
	client, err := NewClient(markets, WithOAuth1("k", "s"))
	if err != nil {
		t.Fatal(err)
	}
	if got := client.Marketplaces(); !slices.Equal(got, normalised) {
		t.Errorf("Marketplaces() = %v, want %v", got, normalised)
	}
	for _, tt := range tests {
		ctoken, cmarket, cerr := client.EventURL(tt.raw)
		switch {
		case tt.wantURL == "" && (!errors.Is(cerr, ErrEventURL) || ctoken != "" || cmarket != ""):
			t.Errorf("Client.EventURL(%q) = %q, %q, %v; want ErrEventURL", tt.raw, ctoken, cmarket, cerr)
		case tt.wantURL != "" && (cerr != nil || ctoken != tt.wantToken || cmarket+EventsPath+ctoken != tt.wantURL):
			t.Errorf("Client.EventURL(%q) = %q, %q, %v; want %q in %s", tt.raw, ctoken, cmarket, cerr, tt.wantToken, tt.wantURL)
		}
		u, token, err := EventURL(tt.raw, markets)
		if tt.wantURL == "" {
			if !errors.Is(err, ErrEventURL) || u != nil || token != "" {
				t.Errorf("EventURL(%q) = %v, %q, %v; want ErrEventURL", tt.raw, u, token, err)
			}
			continue
		}
		if err != nil || u.String() != tt.wantURL || token != tt.wantToken {
			t.Errorf("EventURL(%q) = %v, %q, %v; want %s, %q", tt.raw, u, token, err, tt.wantURL, tt.wantToken)
			continue
		}
		if base := MarketplaceOf(u); base+EventsPath+token != tt.wantURL || !slices.Contains(normalised, base) {
			t.Errorf("MarketplaceOf(%s) = %s", u, base)
		}
	}
}

// TestEventURLMessage: the refusal says why, by host at most, never the
// whole URL (it may be anything).
func TestEventURLMessage(t *testing.T) {
	t.Parallel()
	_, _, err := EventURL("https://evil.example/api/integration/v1/events/secret-token", []string{"https://market.example"})
	if err == nil || !strings.Contains(err.Error(), "evil.example") || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("error %v", err)
	}
	_, _, err = EventURL("https://market.example/x", []string{"https://market.example", "https://bad.example?x"})
	if err == nil || errors.Is(err, ErrEventURL) || !strings.Contains(err.Error(), "configured marketplace 2") {
		t.Errorf("bad configuration: %v", err)
	}
}

func TestParseMarketplace(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://Market.Example":         "https://market.example",
		"https://market.example/":        "https://market.example",
		"https://market.example:443":     "https://market.example",
		"http://market.example:80/a/b/":  "http://market.example/a/b",
		"http://market.example:8080":     "http://market.example:8080",
		"https://[2001:DB8::1]":          "https://[2001:db8::1]",
		"https://[2001:db8::1]:8443/mp":  "https://[2001:db8::1]:8443/mp",
		"https://market.example/a//b":    "",
		"https://market.example/a/../b":  "",
		"https://market.example/%61":     "",
		"https://u@market.example":       "",
		"https://market.example?x=1":     "",
		"https://market.example#x":       "",
		"market.example":                 "",
		"https://market.example/a/b//":   "",
		"https://market.example.":        "",
		"https://market.example:99999/x": "",
	} {
		u, err := ParseMarketplace(raw)
		switch {
		case want == "" && err == nil:
			t.Errorf("ParseMarketplace(%q) = %v, want an error", raw, u)
		case want != "" && (err != nil || u.String() != want):
			t.Errorf("ParseMarketplace(%q) = %v, %v; want %s", raw, u, err, want)
		}
	}
}

func TestValidToken(t *testing.T) {
	t.Parallel()
	for tok, want := range map[string]bool{
		"abc": true, "A-z_0.9~": true, "...": true, strings.Repeat("x", MaxToken): true,
		"": false, ".": false, "..": false, "a/b": false, "a%2F": false, "é": false, strings.Repeat("x", MaxToken+1): false,
	} {
		if got := ValidToken(tok); got != want {
			t.Errorf("ValidToken(%q) = %v", tok, got)
		}
	}
}

// FuzzEventURL: whatever is accepted is the configured origin and prefix
// with one clean token, and re-checking the returned URL gives itself.
func FuzzEventURL(f *testing.F) {
	markets := []string{"https://market.example", "http://10.1.2.3:8080/mp"}
	for _, s := range []string{"https://market.example/api/integration/v1/events/t", "https://a@market.example/api/integration/v1/events/t", "http://10.1.2.3:8080/mp/api/integration/v1/events/%2e%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, token, err := EventURL(raw, markets)
		if err != nil {
			return
		}
		s := u.String()
		if !ValidToken(token) || !strings.HasSuffix(s, EventsPath+token) ||
			!strings.HasPrefix(s, "https://market.example/api/") && !strings.HasPrefix(s, "http://10.1.2.3:8080/mp/api/") {
			t.Fatalf("EventURL(%q) accepted %s, token %q", raw, s, token)
		}
		again, tok2, err := EventURL(s, markets)
		if err != nil || again.String() != s || tok2 != token {
			t.Fatalf("EventURL(%q) of its own result: %v, %q, %v", s, again, tok2, err)
		}
	})
}

// EventURL is matchEventURL on marketplaces as configured, parsed on each
// call (an invalid one is an error of its own), with the URL the client
// would fetch: the check a Client makes, for the tests.
func EventURL(raw string, marketplaces []string) (u *url.URL, token string, err error) {
	ms := make([]marketplace, len(marketplaces))
	for i, s := range marketplaces {
		if ms[i], err = parseMarketplace(s); err != nil {
			return nil, "", fmt.Errorf("appdirect: configured marketplace %d: %w", i+1, err)
		}
	}
	m, token, err := matchEventURL(raw, ms)
	if err != nil {
		return nil, "", err
	}
	return m.eventURL(token), token, nil
}

// MarketplaceOf is the marketplace base URL of an event URL that EventURL
// returned: the part before EventsPath.
func MarketplaceOf(eventURL *url.URL) string {
	s := eventURL.String()
	if i := strings.LastIndex(s, EventsPath); i >= 0 {
		return s[:i]
	}
	return s
}
