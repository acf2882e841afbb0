package kve_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

// builtinProviders is DESIGN §5's table as data.
var builtinProviders = []kve.Provider{
	{Name: "openai", Family: kve.FamilyOpenAI, Upstream: "https://api.openai.com", EnvVar: "OPENAI", BasePath: "/v1"},
	{Name: "mistral", Family: kve.FamilyOpenAI, Upstream: "https://api.mistral.ai", EnvVar: "MISTRAL", BasePath: "/v1"},
	{Name: "groq", Family: kve.FamilyOpenAI, Upstream: "https://api.groq.com/openai", EnvVar: "GROQ", BasePath: "/v1"},
	{Name: "deepseek", Family: kve.FamilyOpenAI, Upstream: "https://api.deepseek.com", EnvVar: "DEEPSEEK", BasePath: "/v1"},
	{Name: "openrouter", Family: kve.FamilyOpenAI, Upstream: "https://openrouter.ai/api", EnvVar: "OPENROUTER", BasePath: "/v1"},
	{Name: "together", Family: kve.FamilyOpenAI, Upstream: "https://api.together.xyz", EnvVar: "TOGETHER", BasePath: "/v1"},
	{Name: "anthropic", Family: kve.FamilyAnthropic, Upstream: "https://api.anthropic.com", EnvVar: "ANTHROPIC"},
	{Name: "gemini", Family: kve.FamilyGemini, Upstream: "https://generativelanguage.googleapis.com", EnvVar: "GEMINI"},
	{Name: "azure-openai", Family: kve.FamilyAzure, EnvVar: "AZURE_OPENAI"},
}

func TestLookupProviderBuiltin(t *testing.T) {
	for _, want := range builtinProviders {
		t.Run(want.Name, func(t *testing.T) {
			got, ok := kve.LookupProvider(want.Name)
			if !ok {
				t.Fatalf("LookupProvider(%q) = false", want.Name)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("LookupProvider(%q) (-want +got):\n%s", want.Name, diff)
			}
			if !kve.IsBuiltinProvider(want.Name) {
				t.Errorf("IsBuiltinProvider(%q) = false", want.Name)
			}
			if !kve.ValidProviderName(want.Name) {
				t.Errorf("ValidProviderName(%q) = false for a builtin", want.Name)
			}
			if want.Upstream != "" {
				if got, err := kve.ValidateUpstream(want.Upstream, false); err != nil || got != want.Upstream {
					t.Errorf("ValidateUpstream(default upstream) = %q, %v", got, err)
				}
			}
		})
	}
}

func TestBuiltinProviders(t *testing.T) {
	var want []string
	for _, p := range builtinProviders {
		want = append(want, p.Name)
	}
	got := kve.BuiltinProviders()
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BuiltinProviders (-want +got):\n%s", diff)
	}
}

func TestLookupProviderGeneric(t *testing.T) {
	tests := []struct {
		name string
		want kve.Provider
	}{
		{"stripe", kve.Provider{Name: "stripe", Family: kve.FamilyGeneric, EnvVar: "STRIPE"}},
		{"github", kve.Provider{Name: "github", Family: kve.FamilyGeneric, EnvVar: "GITHUB"}},
		{"my-api2", kve.Provider{Name: "my-api2", Family: kve.FamilyGeneric, EnvVar: "MY_API2"}},
		{"ab", kve.Provider{Name: "ab", Family: kve.FamilyGeneric, EnvVar: "AB"}},
		{strings.Repeat("a", 32), kve.Provider{Name: strings.Repeat("a", 32), Family: kve.FamilyGeneric, EnvVar: strings.Repeat("A", 32)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := kve.LookupProvider(tc.name)
			if !ok {
				t.Fatalf("LookupProvider(%q) = false", tc.name)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("LookupProvider(%q) (-want +got):\n%s", tc.name, diff)
			}
			if kve.IsBuiltinProvider(tc.name) {
				t.Errorf("IsBuiltinProvider(%q) = true", tc.name)
			}
		})
	}
}

func TestLookupProviderRefused(t *testing.T) {
	names := append(slices.Clone(kve.ReservedNames),
		"", "a", "1ab", "-ab", "ab-", "Stripe", "OPENAI", "my_api", "my.api", "my/api", "my api",
		"../openai", "openai/", strings.Repeat("a", 33), "café", "api ", " api")
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if p, ok := kve.LookupProvider(name); ok {
				t.Errorf("LookupProvider(%q) = %+v, want refusal", name, p)
			}
			if kve.ValidProviderName(name) {
				t.Errorf("ValidProviderName(%q) = true", name)
			}
		})
	}
}

func TestReservedNames(t *testing.T) {
	want := []string{"api", "static", "login", "logout", "setup", "invite", "healthz", "account", "o"} // DESIGN §4 and the dashboard's /account, /o/
	if diff := cmp.Diff(want, kve.ReservedNames); diff != "" {
		t.Errorf("ReservedNames (-want +got):\n%s", diff)
	}
}

// TestAcceptsCredential is DESIGN §5's "client sends token in" column.
func TestAcceptsCredential(t *testing.T) {
	places := []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key", "?key", "Api-Key"}
	tests := []struct {
		provider string
		accepts  []string
	}{
		{"openai", []string{"Authorization"}},
		{"mistral", []string{"Authorization"}},
		{"groq", []string{"Authorization"}},
		{"deepseek", []string{"Authorization"}},
		{"openrouter", []string{"Authorization"}},
		{"together", []string{"Authorization"}},
		{"anthropic", []string{"Authorization", "X-Api-Key"}},
		{"gemini", []string{"X-Goog-Api-Key", "?key"}},
		{"azure-openai", []string{"Api-Key"}},
		{"stripe", []string{"Authorization"}},
	}
	for _, tc := range tests {
		t.Run(tc.provider, func(t *testing.T) {
			p, ok := kve.LookupProvider(tc.provider)
			if !ok {
				t.Fatalf("LookupProvider(%q) = false", tc.provider)
			}
			for _, place := range places {
				want := slices.Contains(tc.accepts, place)
				if got := p.AcceptsCredential(place); got != want {
					t.Errorf("AcceptsCredential(%q) = %v, want %v", place, got, want)
				}
			}
			for _, place := range []string{"authorization", "x-api-key", "Cookie", "Proxy-Authorization", "?api_key", "key", ""} {
				if p.AcceptsCredential(place) {
					t.Errorf("AcceptsCredential(%q) = true", place)
				}
			}
		})
	}
}

func TestAuthValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      kve.Auth
		want    kve.Auth
		wantErr bool
	}{
		{name: "default", in: kve.Auth{}, want: kve.Auth{Mode: kve.AuthHeader, Name: "Authorization", Prefix: "Bearer "}},
		{name: "header default name", in: kve.Auth{Mode: kve.AuthHeader}, want: kve.Auth{Mode: kve.AuthHeader, Name: "Authorization", Prefix: "Bearer "}},
		{name: "custom header", in: kve.Auth{Mode: kve.AuthHeader, Name: "X-Api-Token"}, want: kve.Auth{Mode: kve.AuthHeader, Name: "X-Api-Token"}},
		{name: "custom prefix", in: kve.Auth{Mode: kve.AuthHeader, Name: "Authorization", Prefix: "Token "}, want: kve.Auth{Mode: kve.AuthHeader, Name: "Authorization", Prefix: "Token "}},
		{name: "query", in: kve.Auth{Mode: kve.AuthQuery, Name: "key"}, want: kve.Auth{Mode: kve.AuthQuery, Name: "key"}},
		{name: "query drops prefix", in: kve.Auth{Mode: kve.AuthQuery, Name: "token", Prefix: "Bearer "}, want: kve.Auth{Mode: kve.AuthQuery, Name: "token"}},
		{name: "query with underscore", in: kve.Auth{Mode: kve.AuthQuery, Name: "api_key"}, want: kve.Auth{Mode: kve.AuthQuery, Name: "api_key"}},
		{name: "basic clears name and prefix", in: kve.Auth{Mode: kve.AuthBasic, Name: "X", Prefix: "Y"}, want: kve.Auth{Mode: kve.AuthBasic}},

		{name: "unknown mode", in: kve.Auth{Mode: "cookie"}, wantErr: true},
		{name: "header name with space", in: kve.Auth{Mode: kve.AuthHeader, Name: "X Api"}, wantErr: true},
		{name: "header name with colon", in: kve.Auth{Mode: kve.AuthHeader, Name: "X-Api:"}, wantErr: true},
		{name: "header name with CRLF", in: kve.Auth{Mode: kve.AuthHeader, Name: "X-Api\r\nX-Evil"}, wantErr: true},
		{name: "header name too long", in: kve.Auth{Mode: kve.AuthHeader, Name: strings.Repeat("X", 65)}, wantErr: true},
		{name: "Host", in: kve.Auth{Mode: kve.AuthHeader, Name: "Host"}, wantErr: true},
		{name: "connection", in: kve.Auth{Mode: kve.AuthHeader, Name: "connection"}, wantErr: true},
		{name: "Content-Length", in: kve.Auth{Mode: kve.AuthHeader, Name: "Content-Length"}, wantErr: true},
		{name: "Transfer-Encoding", in: kve.Auth{Mode: kve.AuthHeader, Name: "Transfer-Encoding"}, wantErr: true},
		{name: "Proxy-Authorization", in: kve.Auth{Mode: kve.AuthHeader, Name: "PROXY-AUTHORIZATION"}, wantErr: true},
		{name: "Cookie", in: kve.Auth{Mode: kve.AuthHeader, Name: "Cookie"}, wantErr: true},
		{name: "prefix with CRLF", in: kve.Auth{Mode: kve.AuthHeader, Name: "Authorization", Prefix: "Bearer\r\nX-Evil: 1 "}, wantErr: true},
		{name: "prefix with LF", in: kve.Auth{Mode: kve.AuthHeader, Name: "Authorization", Prefix: "\n"}, wantErr: true},
		{name: "prefix too long", in: kve.Auth{Mode: kve.AuthHeader, Name: "Authorization", Prefix: strings.Repeat("B", 33)}, wantErr: true},
		{name: "query without name", in: kve.Auth{Mode: kve.AuthQuery}, wantErr: true},
		{name: "query name with ampersand", in: kve.Auth{Mode: kve.AuthQuery, Name: "a&b"}, wantErr: true},
		{name: "query name with equals", in: kve.Auth{Mode: kve.AuthQuery, Name: "a=b"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in
			err := got.Validate()
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Validate(%+v) = nil, want an error", tc.in)
				}
				if kve.KindOf(err) != kve.KindInvalid || kve.CodeOf(err) != "invalid_auth" {
					t.Errorf("error kind %v code %q, want invalid / invalid_auth", kve.KindOf(err), kve.CodeOf(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate(%+v): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate(%+v) (-want +got):\n%s", tc.in, diff)
			}
			again := got
			if err := again.Validate(); err != nil || again != got {
				t.Errorf("Validate is not idempotent: %+v, %v", again, err)
			}
		})
	}
}

func TestValidateUpstream(t *testing.T) {
	tests := []struct {
		name          string
		in            string
		allowInsecure bool
		want          string
		wantErr       bool
	}{
		{name: "host", in: "https://api.example.com", want: "https://api.example.com"},
		{name: "trailing slash trimmed", in: "https://api.example.com/", want: "https://api.example.com"},
		{name: "slashes trimmed", in: "https://api.example.com///", want: "https://api.example.com"},
		{name: "path kept", in: "https://api.example.com/openai/v1/", want: "https://api.example.com/openai/v1"},
		{name: "port kept", in: "https://api.example.com:8443/v1", want: "https://api.example.com:8443/v1"},
		{name: "IPv6", in: "https://[2001:db8::1]/v1", want: "https://[2001:db8::1]/v1"},
		{name: "http allowed", in: "http://127.0.0.1:11434/", allowInsecure: true, want: "http://127.0.0.1:11434"},
		{name: "https when http allowed", in: "https://api.example.com", allowInsecure: true, want: "https://api.example.com"},
		{name: "azure resource", in: "https://my-resource.openai.azure.com/", want: "https://my-resource.openai.azure.com"},

		{name: "http refused", in: "http://api.example.com", wantErr: true},
		{name: "ftp", in: "ftp://api.example.com", allowInsecure: true, wantErr: true},
		{name: "no scheme", in: "api.example.com", wantErr: true},
		{name: "scheme-relative", in: "//api.example.com", wantErr: true},
		{name: "relative path", in: "/v1/chat", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "no host", in: "https://", wantErr: true},
		{name: "opaque", in: "https:api.example.com", wantErr: true},
		{name: "userinfo", in: "https://user:pass@api.example.com", wantErr: true},
		{name: "user only", in: "https://user@api.example.com", wantErr: true},
		{name: "empty userinfo", in: "https://@api.example.com", wantErr: true},
		{name: "query", in: "https://api.example.com/v1?key=x", wantErr: true},
		{name: "empty query", in: "https://api.example.com/v1?", wantErr: true},
		{name: "fragment", in: "https://api.example.com/v1#x", wantErr: true},
		{name: "dot dot", in: "https://api.example.com/v1/../admin", wantErr: true},
		{name: "trailing dot dot", in: "https://api.example.com/v1/..", wantErr: true},
		{name: "encoded dot dot", in: "https://api.example.com/v1/%2e%2e/admin", wantErr: true},
		{name: "dot dot with path parameter", in: "https://api.example.com/v1/..;/admin", wantErr: true},
		{name: "encoded dot", in: "https://api.example.com/%2e/v1", wantErr: true},
		{name: "dot", in: "https://api.example.com/./v1", wantErr: true},
		{name: "trailing dot", in: "https://api.example.com/v1/.", wantErr: true},
		{name: "leading space", in: " https://api.example.com", wantErr: true},
		{name: "CRLF", in: "https://api.example.com/\r\nHost: evil", wantErr: true},
		{name: "backslash host", in: "https://api.example.com\\@evil.com", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kve.ValidateUpstream(tc.in, tc.allowInsecure)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ValidateUpstream(%q) = %q, want an error", tc.in, got)
				}
				if kve.CodeOf(err) != "invalid_upstream" {
					t.Errorf("code = %q, want invalid_upstream", kve.CodeOf(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateUpstream(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ValidateUpstream(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again, err := kve.ValidateUpstream(got, tc.allowInsecure); err != nil || again != got {
				t.Errorf("ValidateUpstream is not idempotent: %q, %v", again, err)
			}
		})
	}
}
