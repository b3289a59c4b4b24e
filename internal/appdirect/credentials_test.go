package appdirect

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCredentialVerifier(t *testing.T) {
	t.Parallel()
	v, err := NewCredentialVerifier([]string{"tok-new", "tok-old"}, []string{"appdirect:pa:ss", "old:pw"})
	if err != nil {
		t.Fatal(err)
	}
	tokensOnly, _ := NewCredentialVerifier([]string{"tok-new"}, nil)
	basicOnly, _ := NewCredentialVerifier(nil, []string{"appdirect:pa:ss"})
	tests := []struct {
		name     string
		v        *CredentialVerifier
		header   string
		user     string
		pass     string
		wantWho  string
		wantErr  error
		useBasic bool
	}{
		{name: "current token", v: v, header: "Bearer tok-new", wantWho: "bearer"},
		{name: "old token during rotation", v: v, header: "Bearer tok-old", wantWho: "bearer"},
		{name: "scheme in any case", v: v, header: "bearer  tok-new ", wantWho: "bearer"},
		{name: "wrong token", v: v, header: "Bearer tok-ne", wantErr: ErrBadCredentials},
		{name: "longer token", v: v, header: "Bearer tok-new2", wantErr: ErrBadCredentials},
		{name: "empty token", v: v, header: "Bearer ", wantErr: ErrNoCredentials},
		{name: "basic", v: v, useBasic: true, user: "appdirect", pass: "pa:ss", wantWho: "appdirect"},
		{name: "old basic", v: v, useBasic: true, user: "old", pass: "pw", wantWho: "old"},
		{name: "wrong password", v: v, useBasic: true, user: "appdirect", pass: "pa:s", wantErr: ErrBadCredentials},
		{name: "a token as a password", v: v, useBasic: true, user: "appdirect", pass: "tok-new", wantErr: ErrBadCredentials},
		{name: "none", v: v, wantErr: ErrNoCredentials},
		{name: "OAuth", v: v, header: `OAuth oauth_consumer_key="k"`, wantErr: ErrNoCredentials},
		{name: "basic where only tokens are configured", v: tokensOnly, useBasic: true, user: "appdirect", pass: "pa:ss", wantErr: ErrNoCredentials},
		{name: "bearer where only basic is configured", v: basicOnly, header: "Bearer tok-new", wantErr: ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/appdirect/events", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if tt.useBasic {
				r.SetBasicAuth(tt.user, tt.pass)
			}
			who, err := tt.v.Verify(context.Background(), r)
			if who != tt.wantWho || !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify = %q, %v; want %q, %v", who, err, tt.wantWho, tt.wantErr)
			}
		})
	}
}

func TestNewCredentialVerifierErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		tokens, basics []string
		want           string
	}{
		{nil, nil, "at least one"},
		{[]string{"a", ""}, nil, "token 2"},
		{[]string{"a b"}, nil, "token 1"},
		{nil, []string{"nocolon"}, "Basic credentials 1"},
		{nil, []string{":pw"}, "Basic credentials 1"},
	} {
		_, err := NewCredentialVerifier(tt.tokens, tt.basics)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewCredentialVerifier(%q, %q) = %v, want %q", tt.tokens, tt.basics, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "nocolon") || strings.Contains(err.Error(), "a b")) {
			t.Errorf("the error quotes a secret: %v", err)
		}
	}
}
