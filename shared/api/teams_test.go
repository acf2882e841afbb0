package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
	"github.com/keyvault-edge/kve/shared/store"
)

// orgState is everything of an organization the API could change.
type orgState struct {
	Members []kve.Member
	Keys    []kve.Key
	Tokens  []kve.Token
	Invites []store.Invite
	Events  int
}

func (a *apiTeam) state(t *testing.T, orgID string) orgState {
	t.Helper()
	ctx := t.Context()
	var s orgState
	var err error
	if s.Members, err = a.Store.Members(ctx, orgID); err != nil {
		t.Fatal(err)
	}
	if s.Keys, err = a.Store.Keys(ctx, orgID); err != nil {
		t.Fatal(err)
	}
	toks, err := a.Store.Tokens(ctx, orgID, store.TokenFilter{IncludeRevoked: true, Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	s.Tokens = toks.Items
	if s.Invites, err = a.Store.Invites(ctx, orgID); err != nil {
		t.Fatal(err)
	}
	evs, err := a.Store.Events(ctx, orgID, store.EventFilter{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		if ev.Action != "cross_tenant_denied" { // the record of a refusal, not a change
			s.Events++
		}
	}
	return s
}

// TestCrossTenantIDs calls every route with an id as the Owner of another
// organization, with organization A's ids, under both organizations' paths
// (SECURITY T19): 404 every time, and nothing changes.
func TestCrossTenantIDs(t *testing.T) {
	a := newAPITeam(t)
	ctx := t.Context()
	owner := a.Principal(t, a.Owner, "192.0.2.1")
	tok, err := a.Service.CreateToken(ctx, a.Org.ID, owner, manage.TokenInput{Name: "web", Key: "main", Env: "dev", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := a.Service.CreateInvite(ctx, a.Org.ID, owner, manage.InviteInput{Email: "new@example.com", Role: "developer"})
	if err != nil {
		t.Fatal(err)
	}
	outsider := a.Principal(t, a.Outsider, "192.0.2.5")
	b, err := a.Service.Orgs(ctx, outsider)
	if err != nil || len(b) != 1 {
		t.Fatal(b, err)
	}
	ownerSession := a.Principal(t, a.Owner, "192.0.2.1").SessionID
	before := a.state(t, a.Org.ID)
	beforeB := a.state(t, b[0].Org.ID)

	for _, base := range []string{"/api/v1/orgs/" + b[0].Org.Slug, "/api/v1/orgs/" + a.Org.Slug} {
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/tokens/" + tok.Token.ID, ""},
			{"PATCH", "/tokens/" + tok.Token.ID, `{"rpm":1}`},
			{"DELETE", "/tokens/" + tok.Token.ID, ""},
			{"POST", "/keys/main/rotate", `{"secret":"sk-test-FAKE-cross-tenant-0001"}`},
			{"DELETE", "/keys/main", ""},
			{"DELETE", "/invites/" + inv.Invite.ID, ""},
			{"POST", "/invites/" + inv.Invite.ID + "/resend", ""},
			{"PATCH", "/members/" + a.Dev.ID, `{"role":"admin"}`},
			{"DELETE", "/members/" + a.Dev.ID, ""},
		} {
			t.Run(c.method+" "+base+c.path, func(t *testing.T) {
				wantError(t, a.call(t, c.method, base+c.path, a.Outsider.Token, c.body), http.StatusNotFound, "")
			})
		}
	}
	t.Run("another user's API token", func(t *testing.T) {
		wantError(t, a.call(t, "DELETE", "/api/v1/account/tokens/"+ownerSession, a.Outsider.Token, ""), http.StatusNotFound, "not_found")
		if _, err := a.Service.Authenticate(ctx, kve.SessionAPI, a.Owner.Token, "192.0.2.1"); err != nil {
			t.Errorf("the owner's token after the refused delete: %v", err)
		}
	})
	if diff := cmp.Diff(before, a.state(t, a.Org.ID)); diff != "" {
		t.Errorf("organization A changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(beforeB, a.state(t, b[0].Org.ID)); diff != "" {
		t.Errorf("organization B changed (-before +after):\n%s", diff)
	}
	// Organization A learns who probed it: one event however many tries.
	evs, err := a.Store.Events(ctx, a.Org.ID, store.EventFilter{Action: "cross_tenant_denied"})
	if err != nil || len(evs.Items) != 1 || evs.Items[0].ActorID != a.Outsider.ID {
		t.Errorf("cross_tenant_denied events in A: %+v (%v), want one by the outsider", evs.Items, err)
	}
}

// TestPrivilegeRaisingFields: unknown fields are 400, fields that would
// raise a privilege 403 (SECURITY T22, T23), and nothing changes.
func TestPrivilegeRaisingFields(t *testing.T) {
	a := newAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	before := a.state(t, a.Org.ID)
	for _, tc := range []struct {
		name, method, path string
		cred               kve.Secret
		body               string
		status             int
		code               string
	}{
		{"admin makes themselves owner", "PATCH", org + "/members/" + a.Admin.ID, a.Admin.Token, `{"role":"owner"}`, http.StatusForbidden, "forbidden"},
		{"developer makes themselves admin", "PATCH", org + "/members/" + a.Dev.ID, a.Dev.Token, `{"role":"admin"}`, http.StatusForbidden, "forbidden"},
		{"admin invites an owner", "POST", org + "/invites", a.Admin.Token, `{"email":"boss@example.com","role":"owner"}`, http.StatusForbidden, "forbidden"},
		{"developer creates a shared token", "POST", org + "/tokens", a.Dev.Token, `{"name":"x","key":"main","env":"dev","allow_server":true}`, http.StatusForbidden, "forbidden"},
		{"invite names another org", "POST", org + "/invites", a.Owner.Token, `{"email":"x@example.com","role":"admin","org_id":"org_other"}`, http.StatusBadRequest, "unknown_field"},
		{"role change with extra fields", "PATCH", org + "/members/" + a.Dev.ID, a.Owner.Token, `{"role":"admin","email":"evil@example.com"}`, http.StatusBadRequest, "unknown_field"},
		{"accept names a role", "POST", "/api/v1/invites/accept", "", `{"code":"x","role":"owner"}`, http.StatusBadRequest, "unknown_field"},
		{"rename with a slug", "PATCH", org, a.Owner.Token, `{"name":"X","slug":"taken"}`, http.StatusBadRequest, "unknown_field"},
		{"password change with a user", "POST", "/api/v1/account/password", a.Admin.Token, `{"current_password":"a","new_password":"b","user_id":"usr_x"}`, http.StatusBadRequest, "unknown_field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, a.call(t, tc.method, tc.path, tc.cred, tc.body), tc.status, tc.code)
		})
	}
	if diff := cmp.Diff(before, a.state(t, a.Org.ID)); diff != "" {
		t.Errorf("the organization changed (-before +after):\n%s", diff)
	}
}

// TestInviteAbuse is SECURITY T36 through the API.
func TestInviteAbuse(t *testing.T) {
	a := newAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	create := func(email string) string {
		t.Helper()
		rec := a.call(t, "POST", org+"/invites", a.Owner.Token, jsonOf(t, map[string]string{"email": email, "role": "developer"}))
		if rec.Code != http.StatusCreated {
			t.Fatalf("create invite = %d %s", rec.Code, rec.Body)
		}
		return codeOf(t, decodeBody[inviteView](t, rec).AcceptURL)
	}
	accept := func(code string, cred kve.Secret) *httptest.ResponseRecorder {
		return a.call(t, "POST", "/api/v1/invites/accept", cred,
			jsonOf(t, map[string]string{"code": code, "name": "Nia New", "password": "new-password-FAKE-77"}))
	}

	code := create("nia@example.com")
	t.Run("reading does not consume", func(t *testing.T) {
		for range 3 {
			rec := a.call(t, "GET", "/api/v1/invites/"+code, "", "")
			info := decodeBody[inviteInfoView](t, rec)
			if rec.Code != http.StatusOK || info.Email != "nia@example.com" || info.Org.Name != "Acme Labs" || info.Account {
				t.Fatalf("GET invite = %d %+v", rec.Code, info)
			}
		}
	})
	t.Run("accept, then reuse", func(t *testing.T) {
		rec := accept(code, "")
		v := decodeBody[acceptedView](t, rec)
		if rec.Code != http.StatusCreated || !kve.LooksLikeAPIToken(v.APIToken) || v.Org.Role != kve.RoleDeveloper {
			t.Fatalf("accept = %d %s", rec.Code, rec.Body)
		}
		if rec := a.call(t, "GET", org+"/tokens", kve.Secret(v.APIToken), ""); rec.Code != http.StatusOK {
			t.Errorf("the new member lists tokens: %d", rec.Code)
		}
		wantError(t, accept(code, ""), http.StatusGone, "invite_closed")
		wantError(t, a.call(t, "GET", "/api/v1/invites/"+code, "", ""), http.StatusGone, "invite_closed")
	})
	t.Run("after 72 hours", func(t *testing.T) {
		late := create("late@example.com")
		a.Clock.Add(72 * time.Hour)
		wantError(t, accept(late, ""), http.StatusGone, "invite_closed")
	})
	t.Run("by a signed-in account of another address", func(t *testing.T) {
		other := create("other@example.com")
		wantError(t, accept(other, a.Outsider.Token), http.StatusForbidden, "wrong_account")
		wantError(t, a.call(t, "POST", "/api/v1/invites/accept", "kvm_not-a-real-token", jsonOf(t, map[string]string{"code": other})),
			http.StatusUnauthorized, "unauthenticated")
		if rec := accept(other, ""); rec.Code != http.StatusCreated {
			t.Errorf("the invite after refused accepts = %d %s, want it still open", rec.Code, rec.Body)
		}
	})
	t.Run("unknown code", func(t *testing.T) {
		wantError(t, accept("NOPE", ""), http.StatusNotFound, "not_found")
	})
	t.Run("20 at once", func(t *testing.T) {
		race := create("race@example.com")
		codes := make([]int, 20)
		var wg sync.WaitGroup
		for i := range codes {
			wg.Go(func() { codes[i] = accept(race, "").Code })
		}
		wg.Wait()
		won := 0
		for _, c := range codes {
			switch c {
			case http.StatusCreated:
				won++
			case http.StatusGone:
			default:
				t.Errorf("a racing accept answered %d", c)
			}
		}
		if won != 1 {
			t.Errorf("%d accepts succeeded, want 1", won)
		}
	})
}

// TestInviteLinkUsesPublicURL: the link is the configured public URL's,
// whatever Host the request names; with mail configured it is not answered.
func TestInviteLinkUsesPublicURL(t *testing.T) {
	a := newAPITeam(t)
	rec := a.call(t, "POST", "/api/v1/orgs/"+a.Org.Slug+"/invites", a.Owner.Token, `{"email":"x@example.com","role":"developer"}`,
		func(r *http.Request) { r.Host = "evil.example"; r.Header.Set("X-Forwarded-Host", "evil.example") })
	v := decodeBody[inviteView](t, rec)
	if !strings.HasPrefix(v.AcceptURL, "https://kve.example.com/invite/") || v.Mailed {
		t.Errorf("accept_url = %q, mailed %v", v.AcceptURL, v.Mailed)
	}

	box := &outbox{}
	svc := manage.New(a.Config, manage.Deps{Store: a.Store, Secrets: a.Secrets, Keyring: a.Keyring, Mail: box})
	h := New(svc, Config{Logger: a.Logs.Logger()})
	rec = send(t, h, "POST", "/api/v1/orgs/"+a.Org.Slug+"/invites", a.Owner.Token, `{"email":"y@example.com","role":"developer"}`,
		func(r *http.Request) { r.Host = "evil.example" })
	body := decodeBody[map[string]any](t, rec)
	if rec.Code != http.StatusCreated || body["mailed"] != true || body["accept_url"] != nil {
		t.Errorf("with mail: %d %v, want mailed and no accept_url", rec.Code, body)
	}
	if len(box.sent) != 1 || !strings.Contains(box.sent[0].Text, "https://kve.example.com/invite/") || strings.Contains(box.sent[0].Text, "evil.example") {
		t.Errorf("mailed = %+v", box.sent)
	}
}

type outbox struct {
	mu   sync.Mutex
	sent []mail.Message
}

func (o *outbox) Send(_ context.Context, m mail.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent = append(o.sent, m)
	return nil
}

// TestOffboardingAnswer: DELETE …/members/{user} answers what was revoked
// and which shared tokens the member saw, never a token's value.
func TestOffboardingAnswer(t *testing.T) {
	a := newAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	shared := decodeBody[tokenView](t, a.call(t, "POST", org+"/tokens", a.Owner.Token, `{"name":"team","key":"main","env":"dev","allow_server":true}`))
	mine := decodeBody[tokenView](t, a.call(t, "POST", org+"/tokens", a.Dev.Token, `{"name":"mine","key":"main","env":"dev","personal":true,"allow_server":true}`))
	if rec := a.call(t, "GET", org+"/tokens/"+shared.ID, a.Dev.Token, ""); rec.Code != http.StatusOK {
		t.Fatalf("reveal = %d", rec.Code)
	}
	rec := a.call(t, "DELETE", org+"/members/"+a.Dev.ID, a.Owner.Token, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("remove = %d %s", rec.Code, rec.Body)
	}
	got := decodeBody[offboardingView](t, rec)
	want := offboardingView{
		Member:        memberView{UserID: a.Dev.ID, Email: "dev@example.com", Name: "Dev One", Role: kve.RoleDeveloper, JoinedAt: managetest.Start},
		RevokedTokens: []string{mine.ID}, EndedSessions: 1,
		Revealed: []revealedView{{ID: shared.ID, Name: "team", Env: kve.EnvDev, Hint: shared.Hint, Provider: "openai"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("offboarding answer (-want +got):\n%s", diff)
	}
	if strings.Contains(rec.Body.String(), shared.Token) || strings.Contains(rec.Body.String(), mine.Token) {
		t.Error("the answer holds a token value")
	}
	wantError(t, a.call(t, "GET", org+"/tokens", a.Dev.Token, ""), http.StatusUnauthorized, "unauthenticated")
}

func TestEnvIsText(t *testing.T) {
	a := newAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	tok := decodeBody[tokenView](t, a.call(t, "POST", org+"/tokens", a.Owner.Token, `{"name":"team","key":"main","env":"dev","allow_server":true}`))
	rec := a.call(t, "GET", org+"/env", a.Dev.Token, "") // dev by default
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("GET env = %d %v", rec.Code, rec.Header())
	}
	for _, line := range []string{"OPENAI_API_KEY=" + tok.Token + "\n", "OPENAI_BASE_URL=https://kve.example.com/openai/v1\n"} {
		if !strings.Contains(rec.Body.String(), line) {
			t.Errorf("the .env lacks %q", strings.SplitN(line, "=", 2)[0])
		}
	}
	wantError(t, a.call(t, "GET", org+"/env?env=production", a.Dev.Token, ""), http.StatusBadRequest, "invalid_env")
}

func TestLogoutEndsTheCredential(t *testing.T) {
	a := newAPITeam(t)
	if rec := a.call(t, "POST", "/api/v1/logout", a.Admin.Token, ""); rec.Code != http.StatusNoContent || rec.Header().Get("Set-Cookie") != "" {
		t.Fatalf("logout = %d, Set-Cookie %q", rec.Code, rec.Header().Get("Set-Cookie"))
	}
	wantError(t, a.call(t, "GET", "/api/v1/orgs", a.Admin.Token, ""), http.StatusUnauthorized, "unauthenticated")

	c, err := a.Service.Login(t.Context(), manage.LoginInput{Email: managetest.OwnerEmail, Password: managetest.OwnerPassword}, "192.0.2.1", kve.SessionBrowser)
	if err != nil {
		t.Fatal(err)
	}
	cookie := func(r *http.Request) {
		r.AddCookie(&http.Cookie{Name: DefaultSessionCookie, Value: c.Value.Reveal()})
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	rec := a.call(t, "POST", "/api/v1/logout", "", "", cookie)
	if rec.Code != http.StatusNoContent || !strings.Contains(rec.Header().Get("Set-Cookie"), DefaultSessionCookie+"=;") {
		t.Errorf("cookie logout = %d, Set-Cookie %q", rec.Code, rec.Header().Get("Set-Cookie"))
	}
	wantError(t, a.call(t, "GET", "/api/v1/orgs", "", "", cookie), http.StatusUnauthorized, "unauthenticated")
}
