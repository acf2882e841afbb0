package manage_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

func cmpSorted() cmp.Option { return cmpopts.SortSlices(func(a, b string) bool { return a < b }) }

func TestAPITokens(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	browser, err := tm.Service.Login(ctx, manage.LoginInput{Email: managetest.OwnerEmail, Password: managetest.OwnerPassword}, "192.0.2.1", kve.SessionBrowser)
	if err != nil {
		t.Fatal(err)
	}
	api, err := tm.Service.Login(ctx, manage.LoginInput{Email: managetest.OwnerEmail, Password: managetest.OwnerPassword}, "192.0.2.1", kve.SessionAPI)
	if err != nil {
		t.Fatal(err)
	}
	list, err := tm.Service.APITokens(ctx, tm.pOwner)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range list {
		ids = append(ids, s.ID)
	}
	if diff := cmp.Diff([]string{tm.pOwner.SessionID, api.Session.ID}, ids, cmpSorted()); diff != "" {
		t.Errorf("API tokens (-want +got): the browser session is not one\n%s", diff)
	}

	wantKind(t, tm.Service.DeleteAPIToken(ctx, tm.pAdmin, api.Session.ID), kve.KindNotFound)
	wantKind(t, tm.Service.DeleteAPIToken(ctx, tm.pOwner, browser.Session.ID), kve.KindNotFound)
	if err := tm.Service.DeleteAPIToken(ctx, tm.pOwner, api.Session.ID); err != nil {
		t.Fatal(err)
	}
	_, err = tm.Service.Authenticate(ctx, kve.SessionAPI, api.Value, "192.0.2.1")
	wantKind(t, err, kve.KindUnauthenticated)
	if _, err := tm.Service.Authenticate(ctx, kve.SessionBrowser, browser.Value, "192.0.2.1"); err != nil {
		t.Errorf("the browser session after deleting an API token: %v", err)
	}
}

// TestChangePassword signs out every other session (SECURITY T33).
func TestChangePassword(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	other, err := tm.Service.Login(ctx, manage.LoginInput{Email: managetest.OwnerEmail, Password: managetest.OwnerPassword}, "192.0.2.1", kve.SessionBrowser)
	if err != nil {
		t.Fatal(err)
	}
	const next kve.Secret = "owner-password-FAKE-2-longer"
	_, err = tm.Service.ChangePassword(ctx, tm.pOwner, manage.PasswordInput{Current: "wrong-password-FAKE", New: next})
	wantKind(t, err, kve.KindForbidden)
	_, err = tm.Service.ChangePassword(ctx, tm.pOwner, manage.PasswordInput{Current: managetest.OwnerPassword, New: "short"})
	wantKind(t, err, kve.KindInvalid)
	n, err := tm.Service.ChangePassword(ctx, tm.pOwner, manage.PasswordInput{Current: managetest.OwnerPassword, New: next})
	if err != nil || n != 1 {
		t.Fatalf("ChangePassword = %d, %v; want the one other session ended", n, err)
	}
	_, err = tm.Service.Authenticate(ctx, kve.SessionBrowser, other.Value, "192.0.2.1")
	wantKind(t, err, kve.KindUnauthenticated)
	if _, err := tm.Service.Authenticate(ctx, kve.SessionAPI, tm.Owner.Token, "192.0.2.1"); err != nil {
		t.Errorf("the credential that changed the password: %v", err)
	}
	_, err = tm.Service.Login(ctx, manage.LoginInput{Email: managetest.OwnerEmail, Password: managetest.OwnerPassword}, "192.0.2.1", kve.SessionAPI)
	wantKind(t, err, kve.KindUnauthenticated)
	if _, err := tm.Service.Login(ctx, manage.LoginInput{Email: managetest.OwnerEmail, Password: next}, "192.0.2.1", kve.SessionAPI); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
	// Wrong current passwords are failed sign-ins, throttled per account:
	// with the two failures above, ten in all.
	for range 8 {
		_, err = tm.Service.ChangePassword(ctx, tm.pOwner, manage.PasswordInput{Current: "wrong-password-FAKE", New: next})
		wantKind(t, err, kve.KindForbidden)
	}
	_, err = tm.Service.ChangePassword(ctx, tm.pOwner, manage.PasswordInput{Current: next, New: next})
	wantKind(t, err, kve.KindRateLimited)
}

func TestLogout(t *testing.T) {
	tm := newTeam(t)
	if err := tm.Service.Logout(t.Context(), tm.pAdmin); err != nil {
		t.Fatal(err)
	}
	_, err := tm.Service.Authenticate(t.Context(), kve.SessionAPI, tm.Admin.Token, "192.0.2.2")
	wantKind(t, err, kve.KindUnauthenticated)
}

func TestSessionsAndLogoutOthers(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	login := func() (manage.Principal, kve.Secret) {
		t.Helper()
		c, err := tm.Service.Login(ctx, manage.LoginInput{Email: managetest.OwnerEmail, Password: managetest.OwnerPassword}, "192.0.2.1", kve.SessionBrowser)
		if err != nil {
			t.Fatal(err)
		}
		p, err := tm.Service.Authenticate(ctx, kve.SessionBrowser, c.Value, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		return p, c.Value
	}
	login() // then idle past the limit: no longer listed
	tm.Clock.Add(31 * time.Minute)
	here, hereCookie := login()
	there, thereCookie := login()
	ids := func() []string {
		t.Helper()
		list, err := tm.Service.Sessions(ctx, here)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range list {
			out = append(out, s.ID)
		}
		return out
	}
	if diff := cmp.Diff([]string{here.SessionID, there.SessionID}, ids(), cmpSorted()); diff != "" {
		t.Errorf("live browser sessions (-want +got): no API token, no idle session\n%s", diff)
	}

	n, err := tm.Service.LogoutOthers(ctx, here)
	if err != nil || n != 2 {
		t.Fatalf("LogoutOthers = %d, %v; want the other and the idle session ended", n, err)
	}
	if diff := cmp.Diff([]string{here.SessionID}, ids()); diff != "" {
		t.Errorf("sessions after LogoutOthers (-want +got):\n%s", diff)
	}
	if _, err := tm.Service.Authenticate(ctx, kve.SessionBrowser, thereCookie, "192.0.2.1"); kve.KindOf(err) != kve.KindUnauthenticated {
		t.Errorf("the other browser after LogoutOthers: %v, want signed out", err)
	}
	if _, err := tm.Service.Authenticate(ctx, kve.SessionBrowser, hereCookie, "192.0.2.1"); err != nil {
		t.Errorf("this browser after LogoutOthers: %v", err)
	}
	// API tokens stay: they have their own revoke.
	if _, err := tm.Service.Authenticate(ctx, kve.SessionAPI, tm.Owner.Token, "192.0.2.1"); err != nil {
		t.Errorf("the owner's API token after LogoutOthers: %v", err)
	}
}
