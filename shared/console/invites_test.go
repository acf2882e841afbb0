package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

// inviteLink finds an invite link in a page or a message.
var inviteLink = regexp.MustCompile(regexp.QuoteMeta(publicURL) + `/invite/([A-Z2-7]{26})`)

// linkPath returns the path of the invite link in text.
func linkPath(t *testing.T, text string) string {
	t.Helper()
	m := inviteLink.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no invite link in:\n%s", text)
	}
	return "/invite/" + m[1]
}

// mailbox is a mail.Sender that keeps what it is asked to send.
type mailbox struct {
	mu   sync.Mutex
	sent []mail.Message
}

func (m *mailbox) Send(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, msg)
	return nil
}

func (m *mailbox) messages() []mail.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mail.Message(nil), m.sent...)
}

// withMail makes the site send invites to box, on the same backends.
func (s *site) withMail(box *mailbox) {
	svc := manage.New(s.Config, manage.Deps{Store: s.Store, Secrets: s.Secrets, Keyring: s.Keyring, Mail: box})
	s.Service = svc
	s.h = handler(s.Env)
}

// TestInviteWithoutMail follows an invite on a kve without mail: the form
// says so, the inviter gets the link to pass on, a GET of the link (as a
// mail scanner makes) shows what it is for and changes nothing, and the
// invitee creates an account with it and is signed in.
func TestInviteWithoutMail(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	if page := b.mustGet("/o/acme-labs/members"); !strings.Contains(page, "No mail is configured on this kve.") ||
		!strings.Contains(page, "Create invite link") {
		t.Error("the invite form does not say that no mail is configured")
	}
	res := b.post("/o/acme-labs/invites", url.Values{"email": {" New@Example.com "}, "role": {"developer"}})
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "<h1>Invite link for new@example.com</h1>") {
		t.Fatalf("invite: status %d\n%s", res.Status, res.Body)
	}
	link := linkPath(t, res.Body)
	if !strings.Contains(res.Body, `data-copy-from="invite-link"`) {
		t.Error("the invite link has no copy button")
	}
	page := b.mustGet("/o/acme-labs/members")
	if !strings.Contains(page, `<span class="name">new@example.com</span>`) || !strings.Contains(page, "by you") {
		t.Error("the members page does not list the pending invite")
	}
	if strings.Contains(page, strings.TrimPrefix(link, "/invite/")) {
		t.Fatal("the members page shows the invite's code")
	}

	// Opening the link, twice, as a scanner would: a confirmation page
	// that keeps the code to itself, and nothing changes.
	invitee := newVisitor(t, s.h)
	for range 2 {
		res := invitee.get(link)
		if res.Status != http.StatusOK {
			t.Fatalf("GET %s: status %d\n%s", "/invite/…", res.Status, res.Body)
		}
		for k, v := range map[string]string{"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow", "Cache-Control": "no-store",
			"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"} {
			if got := res.Header.Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		for _, want := range []string{"<h1>Join Acme Labs</h1>", "Olga Owner invited <strong>new@example.com</strong>", "as developer", `name="name"`, "Create account and join"} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("the invite page lacks %s", want)
			}
		}
	}
	if invites, _ := s.Store.Invites(t.Context(), s.Org.ID); len(invites) != 1 {
		t.Fatalf("%d open invites after the GETs, want 1", len(invites))
	}

	// A refused accept keeps the name, never the password.
	res = invitee.post(link, url.Values{"name": {"Nora New"}, "password": {"short"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, `id="password-error">password must be at least 12 characters`) ||
		!strings.Contains(res.Body, `value="Nora New"`) || strings.Contains(res.Body, `value="short"`) {
		t.Errorf("short password: status %d\n%s", res.Status, res.Body)
	}
	res = invitee.post(link, url.Values{"name": {"Nora New"}, "password": {"nora-password-FAKE-1"}})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/tokens?done=joined" || len(res.Cookies) != 1 {
		t.Fatalf("accept: %d to %q with %d cookies\n%s", res.Status, res.location(), len(res.Cookies), res.Body)
	}
	if page := invitee.mustGet(res.location()); !strings.Contains(page, "Welcome!") || !strings.Contains(page, `<a href="/account" title="new@example.com">Nora New</a>`) {
		t.Error("the new member is not signed in on the tokens page")
	}
	u, err := s.Store.UserByEmail(t.Context(), "new@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.Store.Member(t.Context(), s.Org.ID, u.ID); err != nil || m.Role != kve.RoleDeveloper {
		t.Errorf("membership %+v (%v), want a developer", m, err)
	}
	// Single use.
	if res := newVisitor(t, s.h).get(link); res.Status != http.StatusGone || !strings.Contains(res.Body, "already used") {
		t.Errorf("the used link: status %d, want 410 saying it was used", res.Status)
	}
}

// TestInviteWithMail sends the link by mail, and the page never shows it.
func TestInviteWithMail(t *testing.T) {
	s := newSite(t)
	box := &mailbox{}
	s.withMail(box)
	b := s.owner(t)
	if page := b.mustGet("/o/acme-labs/members"); strings.Contains(page, "No mail is configured") || !strings.Contains(page, "Send invite") {
		t.Error("the invite form says no mail is configured when it is")
	}
	res := b.post("/o/acme-labs/invites", url.Values{"email": {"new@example.com"}, "role": {"admin"}})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/members?done=invite_sent" {
		t.Fatalf("invite: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	msgs := box.messages()
	if len(msgs) != 1 || msgs[0].To != "new@example.com" {
		t.Fatalf("sent %+v, want one message to new@example.com", msgs)
	}
	link := linkPath(t, msgs[0].Text)
	if page := b.mustGet(res.location()); !strings.Contains(page, "Invite sent.") || strings.Contains(page, link) {
		t.Error("after a mailed invite the page does not confirm, or shows the link")
	}

	// Resending mails a new link; the old one stops working.
	id := regexp.MustCompile(`/invites/(inv_[0-9a-z]{26})/resend`).FindStringSubmatch(b.mustGet("/o/acme-labs/members"))
	if id == nil {
		t.Fatal("no resend button for the pending invite")
	}
	if res := b.post("/o/acme-labs/invites/"+id[1]+"/resend", url.Values{}); res.Status != http.StatusSeeOther {
		t.Fatalf("resend: status %d", res.Status)
	}
	msgs = box.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages after the resend, want 2", len(msgs))
	}
	fresh := linkPath(t, msgs[1].Text)
	if res := newVisitor(t, s.h).get(link); res.Status != http.StatusNotFound {
		t.Errorf("the old link after a resend: status %d, want 404", res.Status)
	}
	invitee := newVisitor(t, s.h)
	if res := invitee.post(fresh, url.Values{"name": {"Nora New"}, "password": {"nora-password-FAKE-1"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("accept the new link: status %d\n%s", res.Status, res.Body)
	}
	if page := invitee.mustGet("/o/acme-labs/audit"); !strings.Contains(page, "<code>member.join</code>") {
		t.Error("the new Admin does not see the audit log with their joining")
	}
}

// TestInviteExistingAccount accepts with the password of the account the
// address already has, or signed in as it; signed in as someone else, the
// page says to sign out first.
func TestInviteExistingAccount(t *testing.T) {
	s := newSite(t)
	owner := s.owner(t)
	// Nora joins Acme Labs first, which gives her an account.
	first := linkPath(t, owner.post("/o/acme-labs/invites", url.Values{"email": {"nora@example.com"}, "role": {"developer"}}).Body)
	if res := newVisitor(t, s.h).post(first, url.Values{"name": {"Nora"}, "password": {"nora-password-FAKE-1"}}); res.Status != http.StatusSeeOther {
		t.Fatalf("first accept: status %d", res.Status)
	}
	// Then the Outsider invites her, twice, into Other Corp.
	outsider := principal(t, s, s.Outsider)
	other := func() string {
		t.Helper()
		in, err := s.Service.CreateInvite(t.Context(), "other-corp", outsider, manage.InviteInput{Email: "nora@example.com", Role: "developer"})
		if err != nil {
			t.Fatal(err)
		}
		return linkPath(t, in.AcceptURL.Reveal())
	}
	// leave takes her out of Other Corp again, for the next subtest.
	leave := func(t *testing.T) {
		t.Helper()
		u, err := s.Store.UserByEmail(t.Context(), "nora@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Service.RemoveMember(t.Context(), "other-corp", outsider, u.ID); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("with the account's password", func(t *testing.T) {
		link := other()
		b := newVisitor(t, s.h)
		page := b.mustGet(link)
		if !strings.Contains(page, "already has a kve account") || strings.Contains(page, `name="name"`) {
			t.Errorf("the page does not ask for the existing account's password\n%s", page)
		}
		res := b.post(link, url.Values{"password": {"wrong-password-FAKE-0"}})
		if res.Status != http.StatusUnauthorized || !strings.Contains(res.Body, "email or password is wrong") {
			t.Errorf("wrong password: status %d\n%s", res.Status, res.Body)
		}
		res = b.post(link, url.Values{"password": {"nora-password-FAKE-1"}})
		if res.Status != http.StatusSeeOther || res.location() != "/o/other-corp/tokens?done=joined" || len(res.Cookies) != 1 {
			t.Fatalf("accept: %d to %q", res.Status, res.location())
		}
		if body := b.mustGet("/o/acme-labs/tokens"); !strings.Contains(body, "Other Corp") {
			t.Error("the switcher does not list both organizations")
		}
		leave(t)
	})

	t.Run("signed in as the address", func(t *testing.T) {
		link := other()
		b := newVisitor(t, s.h)
		if res := b.post("/login", url.Values{"email": {"nora@example.com"}, "password": {"nora-password-FAKE-1"}}); res.Status != http.StatusSeeOther {
			t.Fatalf("login: status %d", res.Status)
		}
		if page := b.mustGet(link); !strings.Contains(page, "You are signed in as nora@example.com.") || strings.Contains(page, `name="password"`) {
			t.Errorf("signed in, the page still asks for a password\n%s", page)
		}
		res := b.post(link, url.Values{})
		if res.Status != http.StatusSeeOther || res.location() != "/o/other-corp/tokens?done=joined" || len(res.Cookies) != 0 {
			t.Errorf("accept signed in: %d to %q with %d cookies, want no new session", res.Status, res.location(), len(res.Cookies))
		}
		leave(t)
	})

	t.Run("signed in as someone else", func(t *testing.T) {
		link := other()
		page := owner.mustGet(link)
		if !strings.Contains(page, "You are signed in as owner@example.com, but this invite is for nora@example.com.") ||
			!strings.Contains(page, `<input type="hidden" name="next" value="`+link+`">`) {
			t.Errorf("the page does not offer to sign out first\n%s", page)
		}
		if res := owner.post(link, url.Values{}); res.Status != http.StatusForbidden || !strings.Contains(res.Body, "this invite is for another email address") {
			t.Errorf("accept as another account: status %d", res.Status)
		}
		res := owner.post("/logout", url.Values{"next": {link}})
		if res.Status != http.StatusSeeOther || res.location() != link {
			t.Errorf("sign out to come back: %d to %q", res.Status, res.location())
		}
		if page := owner.mustGet(link); !strings.Contains(page, `name="password"`) {
			t.Error("signed out, the page does not ask for the password")
		}
	})
}

func TestInviteRules(t *testing.T) {
	s := newSite(t)
	admin := s.as(t, s.Admin)
	for _, tt := range []struct {
		name   string
		who    *visitor
		form   url.Values
		status int
		field  string
		msg    string
	}{
		{"admin invites an owner", admin, url.Values{"email": {"x@example.com"}, "role": {"owner"}}, 403, "", "you can give at most your own role"},
		{"not an address", admin, url.Values{"email": {"Nora <x@example.com>"}, "role": {"developer"}}, 422, "email", "email must be a plain address"},
		{"a member already", admin, url.Values{"email": {"dev@example.com"}, "role": {"developer"}}, 409, "email", "already a member"},
		{"no such role", admin, url.Values{"email": {"x@example.com"}, "role": {"root"}}, 422, "role", "role must be owner, admin or developer"},
		{"a developer invites", s.as(t, s.Dev), url.Values{"email": {"x@example.com"}, "role": {"developer"}}, 403, "", "does not allow"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.who.post("/o/acme-labs/invites", tt.form)
			if res.Status != tt.status || !strings.Contains(res.Body, tt.msg) {
				t.Errorf("status %d, want %d saying %q\n%s", res.Status, tt.status, tt.msg, res.Body)
			}
			if tt.field != "" && !strings.Contains(res.Body, `id="`+tt.field+`-error">`) {
				t.Errorf("the message is not beside the %s field", tt.field)
			}
		})
	}
	if invites, _ := s.Store.Invites(t.Context(), s.Org.ID); len(invites) != 0 {
		t.Errorf("%d invites after refusals, want none", len(invites))
	}
	if res := newVisitor(t, s.h).get("/invite/AAAAAAAAAAAAAAAAAAAAAAAAAA"); res.Status != http.StatusNotFound {
		t.Errorf("an unknown code: status %d, want 404", res.Status)
	}
}

func TestRevokeInvite(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	link := linkPath(t, b.post("/o/acme-labs/invites", url.Values{"email": {"new@example.com"}, "role": {"admin"}}).Body)
	page := b.mustGet("/o/acme-labs/members")
	id := regexp.MustCompile(`/invites/(inv_[0-9a-z]{26})/revoke`).FindStringSubmatch(page)
	if id == nil || !strings.Contains(page, `data-confirm="Revoke the invite to new@example.com?`) {
		t.Fatal("no revoke button with a confirmation for the pending invite")
	}
	// An Admin-role invite: the inviting Owner, and Admins, may manage it.
	if !strings.Contains(s.as(t, s.Admin).mustGet("/o/acme-labs/members"), `aria-label="Revoke the invite to new@example.com"`) {
		t.Error("an Admin cannot revoke an Admin's invite")
	}
	if body := b.mustGet("/o/acme-labs/invites/" + id[1] + "/revoke"); !strings.Contains(body, "Revoke the invite to <strong>new@example.com</strong>") {
		t.Error("the confirmation page does not name the invite")
	}
	if res := newVisitor(t, s.h).get(link); res.Status != http.StatusOK {
		t.Fatal("opening the confirmation page revoked the invite")
	}
	res := b.post("/o/acme-labs/invites/"+id[1]+"/revoke", url.Values{})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/members?done=invite_revoked" {
		t.Fatalf("revoke: %d to %q", res.Status, res.location())
	}
	if res := newVisitor(t, s.h).get(link); res.Status != http.StatusGone {
		t.Errorf("the revoked link: status %d, want 410", res.Status)
	}
	if res := b.get("/o/acme-labs/invites/" + id[1] + "/revoke"); res.Status != http.StatusNotFound {
		t.Errorf("the confirmation of a revoked invite: status %d, want 404", res.Status)
	}
	if evs := auditEvents(t, s, store.EventFilter{Action: "invite.revoke"}); len(evs) != 1 {
		t.Errorf("%d invite.revoke events, want 1", len(evs))
	}
}

// TestInviteExpires: a link past its expiry is gone, and its page says so.
func TestInviteExpires(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	link := linkPath(t, b.post("/o/acme-labs/invites", url.Values{"email": {"new@example.com"}, "role": {"developer"}}).Body)
	s.Clock.Add(72 * time.Hour)
	res := newVisitor(t, s.h).post(link, url.Values{"name": {"Nora"}, "password": {"nora-password-FAKE-1"}})
	if res.Status != http.StatusGone || !strings.Contains(res.Body, "has expired") {
		t.Errorf("accept after 72 hours: status %d, want 410\n%s", res.Status, res.Body)
	}
	if _, err := s.Store.UserByEmail(t.Context(), "new@example.com"); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("an expired invite created an account: %v", err)
	}
}
