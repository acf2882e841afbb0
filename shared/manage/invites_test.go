package manage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

// mailbox is a mail.Sender that keeps what it is asked to send, or fails.
type mailbox struct {
	mu   sync.Mutex
	sent []mail.Message
	fail error
}

func (m *mailbox) Send(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.sent = append(m.sent, msg)
	return nil
}

func (m *mailbox) messages() []mail.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mail.Message(nil), m.sent...)
}

// withMail is the team's service with mail configured, on the same backends.
func (tm *team) withMail(box *mailbox) *manage.Service {
	return manage.New(tm.Config, manage.Deps{Store: tm.Store, Secrets: tm.Secrets, Keyring: tm.Keyring, Mail: box})
}

// codeOf takes the code out of an accept URL, checking that the URL is the
// configured public URL's.
func codeOf(t *testing.T, acceptURL string) kve.Secret {
	t.Helper()
	code, ok := strings.CutPrefix(acceptURL, "https://kve.example.com/invite/")
	if !ok || code == "" {
		t.Fatalf("accept URL %q is not https://kve.example.com/invite/<code>", acceptURL)
	}
	return kve.Secret(code)
}

// invite has the owner invite email with role, without mail, and returns
// the invite and its code.
func (tm *team) invite(t *testing.T, email string, role kve.Role) (manage.IssuedInvite, kve.Secret) {
	t.Helper()
	in, err := tm.Service.CreateInvite(t.Context(), tm.Org.Slug, tm.pOwner, manage.InviteInput{Email: email, Role: string(role)})
	if err != nil {
		t.Fatalf("invite %s: %v", email, err)
	}
	return in, codeOf(t, in.AcceptURL.Reveal())
}

const newPassword kve.Secret = "new-member-password-FAKE-9"

func TestCreateInviteWithoutMail(t *testing.T) {
	tm := newTeam(t)
	if tm.Service.SendsMail() || !tm.withMail(&mailbox{}).SendsMail() {
		t.Error("SendsMail does not tell whether a mail sender is configured")
	}
	in, code := tm.invite(t, " New@Example.com ", kve.RoleDeveloper)
	if in.Mailed {
		t.Error("Mailed without a mailer")
	}
	inv := in.Invite
	want := kve.Event{ID: tm.event(t, "invite.create", inv.ID).ID, OrgID: tm.Org.ID, At: managetest.Start, ActorID: tm.Owner.ID,
		Actor: managetest.OwnerEmail, Action: "invite.create", Target: inv.ID, IP: "192.0.2.1",
		Detail: map[string]string{"email": "new@example.com", "role": "developer"}}
	if diff := cmp.Diff(want, tm.event(t, "invite.create", inv.ID)); diff != "" {
		t.Errorf("invite.create event (-want +got):\n%s", diff)
	}
	if inv.Email != "new@example.com" || !inv.ExpiresAt.Equal(managetest.Start.Add(72*time.Hour)) {
		t.Errorf("invite = %+v, want the canonical address and 72 hours", inv)
	}
	// Stored hashed: the store finds it by the code's HMAC, and the code
	// itself is nowhere in the database.
	byHash, err := tm.Store.InviteByHash(t.Context(), tm.Keyring.Hash(code.Reveal()))
	if err != nil || byHash.ID != inv.ID {
		t.Fatalf("InviteByHash = %+v, %v", byHash, err)
	}
	tm.Store.Close() // checkpoints the WAL into the file
	files, _ := filepath.Glob(filepath.Join(tm.Dir, "kve.db*"))
	if len(files) == 0 {
		t.Fatal("no database file to look into")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(code.Reveal())) {
			t.Errorf("%s holds the invite code in the clear", filepath.Base(f))
		}
	}
	if strings.Contains(tm.Logs.String(), code.Reveal()) {
		t.Error("the log holds the invite code")
	}
}

func TestCreateInviteMails(t *testing.T) {
	tm := newTeam(t)
	box := &mailbox{}
	svc := tm.withMail(box)
	in, err := svc.CreateInvite(t.Context(), tm.Org.Slug, tm.pAdmin, manage.InviteInput{Email: "new@example.com", Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if !in.Mailed || in.AcceptURL != "" {
		t.Errorf("Mailed = %v, AcceptURL set = %v; want mailed and no URL in the answer", in.Mailed, in.AcceptURL != "")
	}
	sent := box.messages()
	if len(sent) != 1 || sent[0].To != "new@example.com" {
		t.Fatalf("sent = %+v", sent)
	}
	if !strings.Contains(sent[0].Subject, "Ada Admin") || !strings.Contains(sent[0].Subject, "Acme Labs") {
		t.Errorf("subject = %q", sent[0].Subject)
	}
	_, link, _ := strings.Cut(sent[0].Text, "https://kve.example.com/invite/")
	code, _, _ := strings.Cut(link, "\n")
	if _, err := tm.Store.InviteByHash(t.Context(), tm.Keyring.Hash(code)); err != nil {
		t.Errorf("the mailed link's code finds no invite: %v", err)
	}
	if strings.Contains(tm.Logs.String(), code) {
		t.Error("the log holds the invite code")
	}

	box.fail = errors.New("smtp: connection refused")
	_, err = svc.CreateInvite(t.Context(), tm.Org.Slug, tm.pAdmin, manage.InviteInput{Email: "late@example.com", Role: "developer"})
	wantKind(t, err, kve.KindUnavailable)
	list, err := svc.Invites(t.Context(), tm.Org.Slug, tm.pAdmin)
	if err != nil || len(list) != 2 {
		t.Errorf("after a failed mail: %d invites (%v), want 2: the invite stays for a resend", len(list), err)
	}
}

func TestCreateInviteRules(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		p    manage.Principal
		in   manage.InviteInput
		want kve.Kind
	}{
		{"admin invites an owner", tm.pAdmin, manage.InviteInput{Email: "x@example.com", Role: "owner"}, kve.KindForbidden},
		{"developer invites", tm.pDev, manage.InviteInput{Email: "x@example.com", Role: "developer"}, kve.KindForbidden},
		{"outsider invites", tm.pOutsider, manage.InviteInput{Email: "x@example.com", Role: "developer"}, kve.KindNotFound},
		{"unknown role", tm.pOwner, manage.InviteInput{Email: "x@example.com", Role: "root"}, kve.KindInvalid},
		{"bad address", tm.pOwner, manage.InviteInput{Email: "Eve <x@example.com>", Role: "admin"}, kve.KindInvalid},
		{"a member already", tm.pOwner, manage.InviteInput{Email: "DEV@example.com", Role: "admin"}, kve.KindConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tm.Service.CreateInvite(ctx, tm.Org.Slug, tc.p, tc.in)
			wantKind(t, err, tc.want)
		})
	}
	if _, err := tm.Service.CreateInvite(ctx, tm.Org.Slug, tm.pAdmin, manage.InviteInput{Email: "x@example.com", Role: "admin"}); err != nil {
		t.Errorf("an admin invites an admin: %v", err)
	}
	var ours int // managetest invited the team with events of its own
	for _, ev := range tm.events(t, "invite.create") {
		if ev.ActorID != "managetest" {
			ours++
		}
	}
	if ours != 1 {
		t.Errorf("%d invite.create events, want 1 (refused invites leave none)", ours)
	}
}

func TestAcceptInviteNewAccount(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	_, code := tm.invite(t, "new@example.com", kve.RoleDeveloper)

	// Reading the link changes nothing, however often.
	for range 3 {
		info, err := tm.Service.InviteInfo(ctx, code, "203.0.113.9")
		if err != nil {
			t.Fatal(err)
		}
		want := manage.InviteInfo{Org: tm.Org, Role: kve.RoleDeveloper, Email: "new@example.com", Inviter: "Olga Owner",
			ExpiresAt: managetest.Start.Add(72 * time.Hour)}
		if diff := cmp.Diff(want, info); diff != "" {
			t.Errorf("InviteInfo (-want +got):\n%s", diff)
		}
	}
	a, err := tm.Service.AcceptInvite(ctx, manage.AcceptInput{Code: code, Name: "Nia New", Password: newPassword}, nil, "203.0.113.9", kve.SessionAPI)
	if err != nil {
		t.Fatal(err)
	}
	if a.Membership.Org.ID != tm.Org.ID || a.Membership.Role != kve.RoleDeveloper || a.Credential == nil {
		t.Fatalf("Accepted = %+v", a)
	}
	p, err := tm.Service.Authenticate(ctx, kve.SessionAPI, a.Credential.Value, "203.0.113.9")
	if err != nil || p.Email != "new@example.com" || p.Name != "Nia New" {
		t.Fatalf("the new credential: %+v, %v", p, err)
	}
	if _, err := tm.Service.Authorize(ctx, tm.Org.Slug, p, kve.RoleDeveloper); err != nil {
		t.Errorf("the new member is not a developer of the org: %v", err)
	}
	if _, err := tm.Service.Login(ctx, manage.LoginInput{Email: "new@example.com", Password: newPassword}, "203.0.113.9", kve.SessionAPI); err != nil {
		t.Errorf("login with the chosen password: %v", err)
	}
	ev := tm.event(t, "member.join", p.UserID)
	if ev.ActorID != p.UserID || ev.IP != "203.0.113.9" || ev.Detail["role"] != "developer" {
		t.Errorf("member.join event = %+v", ev)
	}

	// Single use: the link is spent for reading and for accepting.
	_, err = tm.Service.InviteInfo(ctx, code, "203.0.113.9")
	wantKind(t, err, kve.KindGone)
	_, err = tm.Service.AcceptInvite(ctx, manage.AcceptInput{Code: code, Name: "Again", Password: newPassword}, nil, "203.0.113.9", kve.SessionAPI)
	wantKind(t, err, kve.KindGone)
	_, err = tm.Service.AcceptInvite(ctx, manage.AcceptInput{Code: "NOT-A-CODE", Name: "X", Password: newPassword}, nil, "203.0.113.9", kve.SessionAPI)
	wantKind(t, err, kve.KindNotFound)
}

func TestAcceptInviteExistingAccount(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	other, err := tm.Service.CreateOrg(ctx, tm.pOutsider, manage.OrgInput{Name: "Bolt"})
	if err != nil {
		t.Fatal(err)
	}
	invite := func() kve.Secret {
		t.Helper()
		in, err := tm.Service.CreateInvite(ctx, other.ID, tm.pOutsider, manage.InviteInput{Email: managetest.OwnerEmail, Role: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		return codeOf(t, in.AcceptURL.Reveal())
	}
	code := invite()
	info, err := tm.Service.InviteInfo(ctx, code, "203.0.113.9")
	if err != nil || !info.Account {
		t.Errorf("InviteInfo.Account = %v (%v), want true: the address has an account", info.Account, err)
	}
	_, err = tm.Service.AcceptInvite(ctx, manage.AcceptInput{Code: code, Password: "wrong-password-FAKE-0"}, nil, "203.0.113.9", kve.SessionAPI)
	wantKind(t, err, kve.KindUnauthenticated)
	a, err := tm.Service.AcceptInvite(ctx, manage.AcceptInput{Code: code, Name: "Ignored", Password: managetest.OwnerPassword}, nil, "203.0.113.9", kve.SessionAPI)
	if err != nil {
		t.Fatalf("accept with the account's password: %v", err)
	}
	if a.Credential == nil || a.Membership.Org.ID != other.ID || a.Membership.Role != kve.RoleAdmin {
		t.Errorf("Accepted = %+v", a)
	}
	if u, _ := tm.Store.User(ctx, tm.Owner.ID); u.Name != "Olga Owner" {
		t.Errorf("the account's name changed to %q", u.Name)
	}

	// Signed in: the account joins, without a password, if it is the
	// invite's address (SECURITY T36).
	third, err := tm.Service.CreateOrg(ctx, tm.pOutsider, manage.OrgInput{Name: "Third"})
	if err != nil {
		t.Fatal(err)
	}
	in, err := tm.Service.CreateInvite(ctx, third.ID, tm.pOutsider, manage.InviteInput{Email: "dev@example.com", Role: "developer"})
	if err != nil {
		t.Fatal(err)
	}
	code = codeOf(t, in.AcceptURL.Reveal())
	_, err = tm.Service.AcceptInvite(ctx, manage.AcceptInput{Code: code}, &tm.pAdmin, "192.0.2.2", kve.SessionAPI)
	wantKind(t, err, kve.KindForbidden)
	a, err = tm.Service.AcceptInvite(ctx, manage.AcceptInput{Code: code}, &tm.pDev, "192.0.2.3", kve.SessionAPI)
	if err != nil || a.Credential != nil || a.Membership.Org.ID != third.ID {
		t.Errorf("signed-in accept = %+v, %v; want the membership and no new credential", a, err)
	}
}

func TestInviteExpiry(t *testing.T) {
	tm := newTeam(t)
	_, code := tm.invite(t, "late@example.com", kve.RoleDeveloper)
	tm.Clock.Add(72*time.Hour - time.Millisecond)
	if _, err := tm.Service.InviteInfo(t.Context(), code, "203.0.113.9"); err != nil {
		t.Errorf("InviteInfo just before expiry: %v", err)
	}
	tm.Clock.Add(time.Millisecond)
	_, err := tm.Service.AcceptInvite(t.Context(), manage.AcceptInput{Code: code, Name: "Late", Password: newPassword}, nil, "203.0.113.9", kve.SessionAPI)
	wantKind(t, err, kve.KindGone)
	if list, _ := tm.Service.Invites(t.Context(), tm.Org.Slug, tm.pOwner); len(list) != 0 {
		t.Errorf("an expired invite is listed as open: %+v", list)
	}

	long := newTeam(t, func(c *manage.Config) { c.InviteTTL = 30 * 24 * time.Hour })
	in, _ := long.invite(t, "x@example.com", kve.RoleDeveloper)
	if !in.Invite.ExpiresAt.Equal(managetest.Start.Add(7 * 24 * time.Hour)) {
		t.Errorf("expiry with a 30-day setting = %v, want the 7-day maximum", in.Invite.ExpiresAt)
	}
}

func TestRevokeAndResendInvite(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	in, code := tm.invite(t, "x@example.com", kve.RoleDeveloper)
	ownerInvite, _ := tm.invite(t, "boss@example.com", kve.RoleOwner)

	wantKind(t, tm.Service.RevokeInvite(ctx, tm.Org.Slug, tm.pAdmin, ownerInvite.Invite.ID), kve.KindForbidden)
	_, err := tm.Service.ResendInvite(ctx, tm.Org.Slug, tm.pAdmin, ownerInvite.Invite.ID)
	wantKind(t, err, kve.KindForbidden)
	wantKind(t, tm.Service.RevokeInvite(ctx, tm.Org.Slug, tm.pDev, in.Invite.ID), kve.KindForbidden)

	tm.Clock.Add(80 * time.Hour) // expired: a resend revives it
	again, err := tm.Service.ResendInvite(ctx, tm.Org.Slug, tm.pAdmin, in.Invite.ID)
	if err != nil {
		t.Fatal(err)
	}
	fresh := codeOf(t, again.AcceptURL.Reveal())
	if fresh == code || !again.Invite.ExpiresAt.Equal(tm.Clock.Now().Add(72*time.Hour)) {
		t.Errorf("resend kept the code or the expiry: %+v", again.Invite)
	}
	_, err = tm.Service.InviteInfo(ctx, code, "203.0.113.9")
	wantKind(t, err, kve.KindNotFound)
	if _, err := tm.Service.InviteInfo(ctx, fresh, "203.0.113.9"); err != nil {
		t.Errorf("the resent link: %v", err)
	}

	if err := tm.Service.RevokeInvite(ctx, tm.Org.Slug, tm.pAdmin, in.Invite.ID); err != nil {
		t.Fatal(err)
	}
	_, err = tm.Service.AcceptInvite(ctx, manage.AcceptInput{Code: fresh, Name: "X", Password: newPassword}, nil, "203.0.113.9", kve.SessionAPI)
	wantKind(t, err, kve.KindGone)
	wantKind(t, tm.Service.RevokeInvite(ctx, tm.Org.Slug, tm.pAdmin, in.Invite.ID), kve.KindGone)
	wantKind(t, tm.Service.RevokeInvite(ctx, tm.Org.Slug, tm.pOwner, kve.NewID(kve.PrefixInvite, managetest.Start)), kve.KindNotFound)
	for _, action := range []string{"invite.resend", "invite.revoke"} {
		if n := len(tm.events(t, action)); n != 1 {
			t.Errorf("%d %s events, want 1", n, action)
		}
	}
}

// TestAcceptInviteRace has 20 people accept one invite at once (SECURITY
// T36, T42): exactly one joins.
func TestAcceptInviteRace(t *testing.T) {
	tm := newTeam(t)
	_, code := tm.invite(t, "race@example.com", kve.RoleDeveloper)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = tm.Service.AcceptInvite(t.Context(), manage.AcceptInput{Code: code, Name: "Racer", Password: newPassword},
				nil, "203.0.113.9", kve.SessionAPI)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		wantKind(t, err, kve.KindGone)
	}
	members, err := tm.Store.Members(t.Context(), tm.Org.ID)
	if err != nil {
		t.Fatal(err)
	}
	joined := 0
	for _, m := range members {
		if m.Email == "race@example.com" {
			joined++
		}
	}
	if won != 1 || joined != 1 {
		t.Errorf("%d accepts succeeded and %d memberships exist, want 1 and 1", won, joined)
	}
}

func TestUnknownInviteCodesAreThrottled(t *testing.T) {
	tm := newTeam(t)
	for range 100 {
		_, err := tm.Service.InviteInfo(t.Context(), kve.Secret(strings.Repeat("A", 26)), "203.0.113.50")
		wantKind(t, err, kve.KindNotFound)
	}
	_, err := tm.Service.InviteInfo(t.Context(), kve.Secret(strings.Repeat("A", 26)), "203.0.113.50")
	wantKind(t, err, kve.KindRateLimited)
	_, err = tm.Service.InviteInfo(t.Context(), kve.Secret(strings.Repeat("A", 26)), "203.0.113.51")
	wantKind(t, err, kve.KindNotFound)
}
