package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

func TestAccountAPITokens(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	p := principal(t, s, s.Owner) // the setup API token works
	page := b.mustGet("/account")
	for _, want := range []string{"Olga Owner", managetest.OwnerEmail, `<a href="/o/acme-labs/tokens">Acme Labs</a>`, p.SessionID} {
		if !strings.Contains(page, want) {
			t.Errorf("account page lacks %s", want)
		}
	}
	if strings.Contains(page, s.Owner.Token.Reveal()) {
		t.Fatal("the account page shows an API token's value")
	}
	res := b.post("/account", url.Values{"do": {"revoke_api_token"}, "id": {p.SessionID}})
	if res.Status != http.StatusSeeOther || res.location() != "/account?done=api_token_revoked" {
		t.Fatalf("revoke: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	if _, err := s.Service.Authenticate(t.Context(), kve.SessionAPI, s.Owner.Token, "192.0.2.1"); kve.KindOf(err) != kve.KindUnauthenticated {
		t.Errorf("the revoked API token still authenticates: %v", err)
	}
	if page := b.mustGet(res.location()); strings.Contains(page, p.SessionID) || !strings.Contains(page, "API token revoked.") {
		t.Error("the account page still lists the revoked API token, or does not confirm")
	}
	// Another user's API token is not the caller's to revoke.
	other := principal(t, s, s.Admin)
	if res := b.post("/account", url.Values{"do": {"revoke_api_token"}, "id": {other.SessionID}}); res.Status != http.StatusNotFound {
		t.Errorf("revoking another user's API token: status %d, want 404", res.Status)
	}
	if res := b.post("/account", url.Values{"do": {"something"}}); res.Status != http.StatusUnprocessableEntity {
		t.Errorf("unknown account action: status %d, want 422", res.Status)
	}
}

func TestChangePassword(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	elsewhere := s.owner(t) // the same user in another browser
	const next = "a-new-FAKE-passphrase-2"

	for _, tt := range []struct {
		name, current, new string
		status             int
		field, msg         string
	}{
		{"wrong current password", "not-it-FAKE-0000", next, 403, "current_password", "the current password is wrong"},
		{"new one too short", managetest.OwnerPassword.Reveal(), "short", 422, "new_password", "password must be at least 12 characters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := b.post("/account", url.Values{"do": {"password"}, "current_password": {tt.current}, "new_password": {tt.new}})
			if res.Status != tt.status || !strings.Contains(res.Body, `id="`+tt.field+`-error">`+tt.msg) {
				t.Errorf("status %d, want %d with %q beside %s\n%s", res.Status, tt.status, tt.msg, tt.field, res.Body)
			}
			if strings.Contains(res.Body, tt.current) || strings.Contains(res.Body, tt.new) {
				t.Error("a refused password form shows a password again")
			}
		})
	}

	res := b.post("/account", url.Values{"do": {"password"}, "current_password": {managetest.OwnerPassword.Reveal()}, "new_password": {next}})
	if res.Status != http.StatusSeeOther || res.location() != "/account?done=password_changed" {
		t.Fatalf("change password: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	if page := b.mustGet(res.location()); !strings.Contains(page, "Password changed.") {
		t.Error("no confirmation after the change")
	}
	// Every other session ends (SECURITY T33); this one stays.
	if res := elsewhere.get("/account"); res.Status != http.StatusSeeOther {
		t.Errorf("the other browser's session survived the password change: status %d", res.Status)
	}
	login := newVisitor(t, s.h)
	if res := login.post("/login", url.Values{"email": {managetest.OwnerEmail}, "password": {next}}); res.Status != http.StatusSeeOther {
		t.Errorf("login with the new password: status %d", res.Status)
	}
}

func TestSignOutOtherBrowsers(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	elsewhere := s.owner(t)
	page := b.mustGet("/account")
	if n := strings.Count(page, `<td data-label="Signed in">`); n != 2 || !strings.Contains(page, `<span class="badge">this browser</span>`) ||
		!strings.Contains(page, "Sign out 1 other browser</button>") {
		t.Errorf("the account page lists %d browsers, want 2 with this one marked and a button for the other", n)
	}
	res := b.post("/account", url.Values{"do": {"logout_others"}})
	if res.Status != http.StatusSeeOther || res.location() != "/account?done=sessions_ended" {
		t.Fatalf("sign out others: %d to %q", res.Status, res.location())
	}
	page = b.mustGet(res.location())
	if !strings.Contains(page, "Signed out everywhere else.") || strings.Contains(page, `value="logout_others"`) {
		t.Error("after signing out the others, the page does not confirm, or still offers it")
	}
	if res := elsewhere.get("/account"); res.Status != http.StatusSeeOther {
		t.Errorf("the other browser is still signed in: status %d", res.Status)
	}
	if _, err := s.Service.Authenticate(t.Context(), kve.SessionAPI, s.Owner.Token, "192.0.2.1"); err != nil {
		t.Errorf("signing out other browsers ended the API token: %v", err)
	}
}
