package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/api"
	"github.com/keyvault-edge/kve/shared/console"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

func TestSetup(t *testing.T) {
	e := managetest.New(t)
	b := newVisitor(t, handler(e))

	// Before setup nobody can sign in: the start and login pages lead to
	// the setup page.
	for _, path := range []string{"/", "/login"} {
		if res := b.get(path); res.Status != http.StatusSeeOther || res.location() != "/setup" {
			t.Fatalf("GET %s on a fresh install: %d to %q, want 303 to /setup", path, res.Status, res.location())
		}
	}
	b.mustGet("/setup")

	form := url.Values{"code": {"wrong-FAKE"}, "email": {"olga@example.com"}, "name": {"Olga"}, "password": {"a-long-FAKE-passphrase"}}
	res := b.post("/setup", form)
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, `id="code-error">the setup code is wrong`) {
		t.Fatalf("wrong code: status %d, want 401 with the message beside the code field\n%s", res.Status, res.Body)
	}
	if strings.Contains(res.Body, "a-long-FAKE-passphrase") || strings.Contains(res.Body, "wrong-FAKE") {
		t.Error("a refused setup form shows the password or the code again")
	}
	if !strings.Contains(res.Body, `value="olga@example.com"`) {
		t.Error("a refused setup form lost the email")
	}

	form.Set("code", " "+managetest.SetupCode.Reveal()+" ")
	res = b.post("/setup", form)
	if res.Status != http.StatusSeeOther || res.location() != "/o/new" {
		t.Fatalf("setup: %d to %q, want 303 to /o/new\n%s", res.Status, res.location(), res.Body)
	}
	// The API token that setup issues ends at once: the browser's session
	// is the only credential left.
	u, err := e.Store.UserByEmail(t.Context(), "olga@example.com")
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := e.Store.Sessions(t.Context(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || sessions[0].Kind != kve.SessionBrowser {
		t.Errorf("after setup: sessions %+v, want one browser session", sessions)
	}
	if body := b.mustGet("/o/new"); !strings.Contains(body, "Create the first one") {
		t.Errorf("the first organization page does not say so:\n%s", body)
	}

	res = b.post("/setup", form)
	if res.Status != http.StatusConflict || !strings.Contains(res.Body, "setup is already done") {
		t.Errorf("second setup: status %d, want 409 saying setup is done", res.Status)
	}
	if res := newVisitor(t, handler(e)).get("/"); res.Status != http.StatusSeeOther || res.location() != "/login" {
		t.Errorf("GET / signed out after setup: %d to %q, want 303 to /login", res.Status, res.location())
	}
}

func TestSessionCookie(t *testing.T) {
	if console.SecureCookie != api.DefaultSessionCookie {
		t.Fatalf("dashboard cookie %q, API cookie %q: the API must accept the dashboard's session", console.SecureCookie, api.DefaultSessionCookie)
	}
	for _, tt := range []struct {
		name string
		tls  bool
		want http.Cookie
	}{
		{"plain HTTP (local mode)", false, http.Cookie{Name: "kve_session", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}},
		{"TLS (API Gateway)", true, http.Cookie{Name: "__Host-kve_session", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t)
			b := newVisitor(t, s.h)
			b.tls = tt.tls
			res := b.post("/login", url.Values{"email": {managetest.OwnerEmail}, "password": {managetest.OwnerPassword.Reveal()}, "next": {"/o/acme-labs/keys"}})
			if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/keys" {
				t.Fatalf("login: %d to %q, want 303 to /o/acme-labs/keys", res.Status, res.location())
			}
			if len(res.Cookies) != 1 {
				t.Fatalf("login set %d cookies, want 1", len(res.Cookies))
			}
			got := *res.Cookies[0]
			if len(got.Value) != 43 {
				t.Errorf("session id of %d characters, want 43 (256 bits)", len(got.Value))
			}
			got.Value, got.Raw = "", ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("session cookie (-want +got):\n%s", diff)
			}
			b.mustGet("/o/acme-labs/keys")
		})
	}
}

func TestLoginLogout(t *testing.T) {
	s := newSite(t)
	creds := url.Values{"email": {managetest.OwnerEmail}, "password": {managetest.OwnerPassword.Reveal()}}

	b := newVisitor(t, s.h)
	res := b.get("/o/acme-labs/tokens?env=dev")
	if res.Status != http.StatusSeeOther || res.location() != "/login?next=%2Fo%2Facme-labs%2Ftokens%3Fenv%3Ddev" {
		t.Fatalf("signed out: %d to %q, want 303 to the login page with next", res.Status, res.location())
	}

	wrong := url.Values{"email": {managetest.OwnerEmail}, "password": {"not-the-FAKE-password"}}
	res = b.post("/login", wrong)
	if res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "email or password is wrong") {
		t.Errorf("wrong password: status %d, want 401 with the message", res.Status)
	}
	if strings.Contains(res.Body, "not-the-FAKE-password") || len(res.Cookies) != 0 {
		t.Error("a refused login shows the password again or sets a cookie")
	}

	b.post("/login", creds)
	first := b.cookies[console.PlainCookie].Value
	if res := b.get("/"); res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/tokens" {
		t.Errorf("GET / signed in: %d to %q, want the first organization's tokens", res.Status, res.location())
	}
	if res := b.get("/login?next=/account"); res.Status != http.StatusSeeOther || res.location() != "/account" {
		t.Errorf("login page when signed in: %d to %q, want 303 to next", res.Status, res.location())
	}

	// A second login gets a new session id, and the old session ends.
	b.post("/login", creds)
	second := b.cookies[console.PlainCookie].Value
	if second == first {
		t.Fatal("a new login kept the session id")
	}
	stale := newVisitor(t, s.h)
	stale.cookies[console.PlainCookie] = &http.Cookie{Name: console.PlainCookie, Value: first}
	if res := stale.get("/account"); res.Status != http.StatusSeeOther {
		t.Errorf("the session before a new login still works: status %d", res.Status)
	}

	// GET /logout only asks; POST ends the session server-side.
	if body := b.mustGet("/logout"); !strings.Contains(body, `<form method="post" action="/logout">`) {
		t.Error("GET /logout shows no sign-out form")
	}
	b.mustGet("/account")
	res = b.post("/logout", nil)
	if res.Status != http.StatusSeeOther || res.location() != "/login" {
		t.Errorf("logout: %d to %q, want 303 to /login", res.Status, res.location())
	}
	if len(res.Cookies) != 1 || res.Cookies[0].MaxAge >= 0 {
		t.Errorf("logout cookies %v, want the session cookie removed", res.Cookies)
	}
	copied := newVisitor(t, s.h)
	copied.cookies[console.PlainCookie] = &http.Cookie{Name: console.PlainCookie, Value: second}
	if res := copied.get("/account"); res.Status != http.StatusSeeOther || res.location() != "/login?next=%2Faccount" {
		t.Errorf("a copy of the logged-out cookie: %d to %q, want the login page (SECURITY T33)", res.Status, res.location())
	}
	sessions, err := s.Store.Sessions(t.Context(), s.Owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, sess := range sessions {
		if sess.Kind == kve.SessionBrowser {
			t.Errorf("browser session %s still stored after logout", sess.ID)
		}
	}
}

func TestSessionLimits(t *testing.T) {
	for _, tt := range []struct {
		name  string
		steps []time.Duration // clock moves, each followed by a page load
		ok    bool
	}{
		{"active within 30 minutes", []time.Duration{29 * time.Minute, 29 * time.Minute}, true},
		{"idle for 30 minutes", []time.Duration{30 * time.Minute}, false},
		{"active, but 12 hours old", repeat(25, 29*time.Minute), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t)
			b := s.owner(t)
			var res *response
			for _, d := range tt.steps {
				s.Clock.Add(d)
				res = b.get("/account")
			}
			if ok := res.Status == http.StatusOK; ok != tt.ok {
				t.Errorf("last page: status %d, want signed in %v", res.Status, tt.ok)
			}
		})
	}
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestLoginNext(t *testing.T) {
	// Subtests are named, not called by the value: managetest's database
	// path is a file: URI, where "?" and "#" in a test name would cut it.
	for _, tt := range []struct{ name, next, want string }{
		{"local path with query", "/o/acme-labs/audit?action=token.reveal", "/o/acme-labs/audit?action=token.reveal"},
		{"none", "", "/"},
		{"absolute URL", "https://evil.example/", "/"},
		{"scheme-relative", "//evil.example/", "/"},
		{"backslash", `/\evil.example/`, "/"},
		{"header injection", "/\r\nSet-Cookie: x=y", "/"},
		{"javascript", "javascript:alert(1)", "/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t)
			b := newVisitor(t, s.h)
			res := b.post("/login", url.Values{
				"email": {managetest.OwnerEmail}, "password": {managetest.OwnerPassword.Reveal()}, "next": {tt.next},
			})
			if res.Status != http.StatusSeeOther || res.location() != tt.want {
				t.Errorf("login with next %q: %d to %q, want 303 to %q", tt.next, res.Status, res.location(), tt.want)
			}
		})
	}
}
