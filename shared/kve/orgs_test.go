package kve_test

import (
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
)

// TestAPITokenSeparation is DESIGN §2: a kvm_ management token is never a
// proxy token and a proxy token never has a management token's shape.
func TestAPITokenSeparation(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		v := kve.NewAPIToken().Reveal()
		if !strings.HasPrefix(v, "kvm_") || len(v) != 4+43 || strings.Trim(v[4:], base62) != "" {
			t.Fatalf("NewAPIToken is not kvm_ + 43 base62 characters (length %d)", len(v))
		}
		if seen[v] {
			t.Fatal("NewAPIToken repeated a value")
		}
		seen[v] = true
		if !kve.LooksLikeAPIToken(v) {
			t.Fatal("LooksLikeAPIToken refuses a fresh API token")
		}
		if _, _, ok := kve.ParseTokenValue(v); ok || kve.LooksLikeToken(v) {
			t.Fatal("a management token passes as a proxy token")
		}
	}
	for _, kind := range tokenKinds {
		for _, env := range tokenEnvs {
			if v := kve.NewTokenValue(kind, env).Reveal(); kve.LooksLikeAPIToken(v) {
				t.Errorf("a %s %s proxy token looks like a management token", kind, env)
			}
		}
	}
}

func TestLooksLikeAPIToken(t *testing.T) {
	body := strings.Repeat("A", 43)
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"shape", "kvm_" + body, true},
		{"short", "kvm_" + body[1:], false},
		{"long", "kvm_" + body + "A", false},
		{"proxy prefix", "kve_" + body, false},
		{"upper-case prefix", "KVM_" + body, false},
		{"underscore in body", "kvm_" + body[1:] + "_", false},
		{"NUL in body", "kvm_" + body[1:] + "\x00", false},
		{"non-ASCII in body", "kvm_" + body[2:] + "é", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := kve.LooksLikeAPIToken(tc.in); got != tc.want {
				t.Errorf("LooksLikeAPIToken = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewSessionID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		v := kve.NewSessionID().Reveal()
		if len(v) != 43 || strings.Trim(v, base62) != "" {
			t.Fatalf("NewSessionID is not 43 base62 characters (length %d)", len(v))
		}
		if seen[v] {
			t.Fatal("NewSessionID repeated a value")
		}
		seen[v] = true
	}
}

func TestRoles(t *testing.T) {
	roles := []kve.Role{kve.RoleDeveloper, kve.RoleAdmin, kve.RoleOwner}
	for i, r := range roles {
		got, ok := kve.ParseRole(string(r))
		if !ok || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, ok)
		}
		for j, o := range roles {
			if want := i >= j; r.AtLeast(o) != want {
				t.Errorf("%s.AtLeast(%s) = %v, want %v", r, o, !want, want)
			}
		}
		if kve.Role("").AtLeast(r) || kve.Role("root").AtLeast(r) {
			t.Errorf("an unknown role is at least %s", r)
		}
	}
	for _, s := range []string{"", "Owner", "root", " admin"} {
		if _, ok := kve.ParseRole(s); ok {
			t.Errorf("ParseRole(%q) accepted it", s)
		}
	}
	if kve.Role("").AtLeast(kve.Role("")) {
		t.Error("the empty role is at least itself")
	}
}

func TestSlugify(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"Acme Corp", "acme-corp"},
		{"  --Hello__World--  ", "hello-world"},
		{"team 42", "team-42"},
		{"", "org"},
		{"!!!", "org"},
		{strings.Repeat("a", 50), strings.Repeat("a", 40)},
		{strings.Repeat("a", 39) + " b", strings.Repeat("a", 39)},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := kve.Slugify(tc.in); got != tc.want {
				t.Errorf("Slugify(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCanonicalEmail(t *testing.T) {
	if got, want := kve.CanonicalEmail("  Dev@Example.COM\n"), "dev@example.com"; got != want {
		t.Errorf("CanonicalEmail = %q, want %q", got, want)
	}
}
