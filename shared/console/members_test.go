package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// TestMembersPageByRole checks what each role sees of the members page
// (DESIGN §8): everyone the list; Owners and Admins the invites; only
// Owners the role changes and removals.
func TestMembersPageByRole(t *testing.T) {
	s := newSite(t)
	for _, tt := range []struct {
		name    string
		who     *visitor
		present []string
		absent  []string
	}{
		{"owner", s.owner(t),
			[]string{
				`<span class="name">Dev One</span>`, "dev@example.com", `<label class="visually-hidden" for="role-` + s.Dev.ID + `">Role of Dev One</label>`,
				`aria-label="Remove Dev One"`, `aria-label="Remove Ada Admin"`, `id="invite"`, `<option value="owner"`, `id="no-mail"`,
				`href="/o/acme-labs/members" aria-current="page"`,
			},
			// The only Owner cannot be removed.
			[]string{`aria-label="Remove Olga Owner"`}},
		{"admin", s.as(t, s.Admin),
			[]string{`<span class="name">Dev One</span>`, `id="invite"`, `<option value="admin"`, `<option value="developer"`, "Pending invites"},
			[]string{`id="role-usr_`, `aria-label="Remove`, `<option value="owner"`}},
		{"developer", s.as(t, s.Dev),
			[]string{`<span class="name">Ada Admin</span>`, "admin@example.com", `href="/o/acme-labs/members"`},
			[]string{`id="role-usr_`, `aria-label="Remove`, `id="invite"`, "Pending invites"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			page := tt.who.mustGet("/o/acme-labs/members")
			for _, want := range tt.present {
				if !strings.Contains(page, want) {
					t.Errorf("members page lacks %s", want)
				}
			}
			for _, unwanted := range tt.absent {
				if strings.Contains(page, unwanted) {
					t.Errorf("members page has %s", unwanted)
				}
			}
		})
	}
	if res := s.as(t, s.Outsider).get("/o/acme-labs/members"); res.Status != http.StatusNotFound {
		t.Errorf("an outsider opens the members page: status %d, want 404", res.Status)
	}
}

func TestChangeRole(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	res := b.post("/o/acme-labs/members/"+s.Dev.ID+"/role", url.Values{"role": {"admin"}})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/members?done=role_changed" {
		t.Fatalf("change role: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	if m, err := s.Store.Member(t.Context(), s.Org.ID, s.Dev.ID); err != nil || m.Role != kve.RoleAdmin {
		t.Errorf("the developer's role is %q (%v), want admin", m.Role, err)
	}
	if page := b.mustGet(res.location()); !strings.Contains(page, "Role changed.") {
		t.Error("no confirmation after the change")
	}

	for _, tt := range []struct {
		name   string
		who    *visitor
		user   string
		role   string
		status int
		msg    string
	}{
		{"the last owner steps down", b, s.Owner.ID, "developer", http.StatusConflict, "owner"},
		{"an admin changes a role", s.as(t, s.Admin), s.Dev2.ID, "admin", http.StatusForbidden, "does not allow"},
		{"an unknown role", b, s.Dev2.ID, "root", http.StatusUnprocessableEntity, "role must be owner, admin or developer"},
		{"a stranger", b, s.Outsider.ID, "admin", http.StatusNotFound, "member not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.who.post("/o/acme-labs/members/"+tt.user+"/role", url.Values{"role": {tt.role}})
			if res.Status != tt.status || !strings.Contains(res.Body, tt.msg) {
				t.Errorf("status %d, want %d saying %q\n%s", res.Status, tt.status, tt.msg, res.Body)
			}
		})
	}
	if n := len(auditEvents(t, s, store.EventFilter{Action: "member.role"})); n != 1 {
		t.Errorf("%d member.role events, want 1", n)
	}
}

// TestRemoveMember walks the offboarding: the confirmation page forecasts
// what goes and which shared tokens the member saw, changing nothing; the
// removal shows manage's answer, and the member is signed out at once.
func TestRemoveMember(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	b.createToken("acme-labs", tokenFields("team <shared>"))
	b.createToken("acme-labs", tokenFields("never shown"))
	sharedID := tokenID(t, b.mustGet("/o/acme-labs/tokens"), "team &lt;shared&gt;")
	dev := s.as(t, s.Dev)
	personal := tokenFields("dev laptop")
	personal.Set("personal", "on")
	dev.createToken("acme-labs", personal)
	if res := dev.do("POST", "/o/acme-labs/tokens/"+sharedID+"/reveal", url.Values{}, http.Header{"Accept": {"text/plain"}}); res.Status != http.StatusOK {
		t.Fatalf("the developer copies the shared token: status %d", res.Status)
	}
	before := tokens(t, s)

	confirm := b.mustGet("/o/acme-labs/members/" + s.Dev.ID + "/remove")
	for _, want := range []string{
		"<h1>Remove Dev One</h1>", "their 1 personal token is revoked:", "<strong>dev laptop</strong>",
		"their 2 dashboard sessions and API tokens end", // the API token of managetest and the browser's
		`<span class="name">team &lt;shared&gt;</span>`, `href="/o/acme-labs/tokens/` + sharedID + `/revoke"`,
		`action="/o/acme-labs/members/` + s.Dev.ID + `/remove"`,
	} {
		if !strings.Contains(confirm, want) {
			t.Errorf("the confirmation lacks %s", want)
		}
	}
	if strings.Contains(confirm, "never shown") {
		t.Error("the confirmation lists a shared token the member never saw")
	}
	if after := tokens(t, s); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Fatal("opening the confirmation changed tokens")
	}
	dev.mustGet("/o/acme-labs/tokens") // still a member

	for _, tt := range []struct {
		name   string
		who    *visitor
		method string
		status int
	}{
		{"an admin opens the confirmation", s.as(t, s.Admin), "GET", http.StatusForbidden},
		{"an admin removes", s.as(t, s.Admin), "POST", http.StatusForbidden},
		{"a developer removes", s.as(t, s.Dev2), "POST", http.StatusForbidden},
		{"an outsider removes", s.as(t, s.Outsider), "POST", http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if res := tt.who.do(tt.method, "/o/acme-labs/members/"+s.Dev.ID+"/remove", url.Values{}, nil); res.Status != tt.status {
				t.Errorf("status %d, want %d", res.Status, tt.status)
			}
		})
	}

	res := b.post("/o/acme-labs/members/"+s.Dev.ID+"/remove", url.Values{})
	if res.Status != http.StatusOK {
		t.Fatalf("remove: status %d\n%s", res.Status, res.Body)
	}
	for _, want := range []string{
		"<h1>Dev One removed</h1>", "<dt>Personal tokens revoked</dt>\n    <dd><strong>dev laptop</strong>",
		"<dt>Sessions and API tokens ended</dt>\n    <dd>2</dd>", `<span class="name">team &lt;shared&gt;</span>`,
	} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("the removal's answer lacks %s\n%s", want, res.Body)
		}
	}
	// Signed out at once: the next page load goes to the login page.
	if res := dev.get("/o/acme-labs/tokens"); res.Status != http.StatusSeeOther || !strings.HasPrefix(res.location(), "/login") {
		t.Errorf("the removed member's next page: %d to %q, want the login page", res.Status, res.location())
	}
	if page := b.mustGet("/o/acme-labs/members"); strings.Contains(page, "dev@example.com") {
		t.Error("the members page still lists the removed member")
	}
	// Their tokens' "created by" and "personal · whose" name a former member.
	if page := b.mustGet("/o/acme-labs/tokens?revoked=1"); !strings.Contains(page, "personal · a former member") {
		t.Error("the revoked personal token does not show as a former member's")
	}
	if res := b.get("/o/acme-labs/members/" + s.Dev.ID + "/remove"); res.Status != http.StatusNotFound {
		t.Errorf("the confirmation for a former member: status %d, want 404", res.Status)
	}
}

// TestCreatedByNames checks that token and key lists name who created what.
func TestCreatedByNames(t *testing.T) {
	s := newSite(t)
	admin := s.as(t, s.Admin)
	admin.createToken("acme-labs", tokenFields("made by admin"))
	owner := s.owner(t)
	page := owner.mustGet("/o/acme-labs/tokens")
	if !strings.Contains(page, "<span class=\"muted\">by Ada Admin</span>") {
		t.Error("the token list does not name the Admin who created the token")
	}
	if keys := owner.mustGet("/o/acme-labs/keys"); !strings.Contains(keys, "by you") {
		t.Error("the key list does not say the Owner created the key")
	}
	if page := s.as(t, s.Dev).mustGet("/o/acme-labs/tokens"); !strings.Contains(page, "by Ada Admin") {
		t.Error("a Developer does not see who created a shared token")
	}
	if _, err := s.Service.RemoveMember(t.Context(), "acme-labs", principal(t, s, s.Owner), s.Admin.ID); err != nil {
		t.Fatal(err)
	}
	if page := owner.mustGet("/o/acme-labs/tokens"); !strings.Contains(page, "by a former member") {
		t.Error("a token of a removed member does not say a former member created it")
	}
}

// TestMemberNamesAreEscaped renders a member who chose markup for a name
// (SECURITY T37) on the pages that show members.
func TestMemberNamesAreEscaped(t *testing.T) {
	s := newSite(t)
	u := s.AddUser(t, "mallory@example.com", `<img src=x onerror=alert(1)>`)
	s.AddMember(t, s.Org.ID, u, kve.RoleDeveloper)
	b := s.owner(t)
	for _, path := range []string{"/o/acme-labs/members", "/o/acme-labs/members/" + u.ID + "/remove"} {
		page := b.mustGet(path)
		if strings.Contains(page, "<img src=x") || !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
			t.Errorf("%s does not show the name escaped", path)
		}
	}
}

// TestRemoveSelf: an Owner who leaves, while another Owner stays, goes to
// the start page, as the organization is no longer theirs.
func TestRemoveSelf(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	if res := b.post("/o/acme-labs/members/"+s.Admin.ID+"/role", url.Values{"role": {"owner"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("promote the Admin: status %d", res.Status)
	}
	if page := b.mustGet("/o/acme-labs/members"); !strings.Contains(page, `aria-label="Remove Olga Owner"`) {
		t.Fatal("with a second Owner, the first cannot remove themselves")
	}
	res := b.post("/o/acme-labs/members/"+s.Owner.ID+"/remove", url.Values{})
	if res.Status != http.StatusSeeOther || res.location() != "/" {
		t.Fatalf("remove self: %d to %q, want the start page", res.Status, res.location())
	}
	if res := b.get("/o/acme-labs/tokens"); res.Status == http.StatusOK {
		t.Error("the Owner who left still opens the organization")
	}
}
