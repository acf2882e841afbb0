package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func memberTests() []test {
	return []test{
		{"change role", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			m := f.member(o.ID, kve.RoleDeveloper)
			ev := f.event(o.ID, "member.role", m.UserID).With("role", "admin")
			got := must(f.s.ChangeRole(f.ctx, o.ID, m.UserID, kve.RoleAdmin, ev))(t)
			m.Role = kve.RoleAdmin
			same(t, "ChangeRole", got, m)
			same(t, "Member", must(f.s.Member(f.ctx, o.ID, m.UserID))(t), m)
			same(t, "Memberships", must(f.s.Memberships(f.ctx, m.UserID))(t), []kve.Membership{{Org: o, Role: kve.RoleAdmin}})
			same(t, "event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "member.role"}))(t).Items, []kve.Event{ev})
			_, err := f.s.ChangeRole(f.ctx, o.ID, kve.NewID(kve.PrefixUser, f.now), kve.RoleAdmin, f.event(o.ID, "member.role", "usr_x"))
			wantKind(t, "ChangeRole of a stranger", err, kve.KindNotFound)
		}},
		{"the last owner stays", func(t *testing.T, f *fixture) {
			o, owner := f.org("Acme")
			_, err := f.s.ChangeRole(f.ctx, o.ID, owner.UserID, kve.RoleAdmin, f.event(o.ID, "member.role", owner.UserID))
			wantKind(t, "demoting the only owner", err, kve.KindConflict)
			_, err = f.s.RemoveMember(f.ctx, o.ID, owner.UserID, f.event(o.ID, "member.remove", owner.UserID))
			wantKind(t, "removing the only owner", err, kve.KindConflict)
			same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{owner})

			// With a second owner, either may go, but not both.
			second := f.member(o.ID, kve.RoleOwner)
			must(f.s.ChangeRole(f.ctx, o.ID, owner.UserID, kve.RoleDeveloper, f.event(o.ID, "member.role", owner.UserID)))(t)
			_, err = f.s.RemoveMember(f.ctx, o.ID, second.UserID, f.event(o.ID, "member.remove", second.UserID))
			wantKind(t, "removing the owner left", err, kve.KindConflict)
			must(f.s.ChangeRole(f.ctx, o.ID, owner.UserID, kve.RoleOwner, f.event(o.ID, "member.role", owner.UserID)))(t)
			must(f.s.RemoveMember(f.ctx, o.ID, second.UserID, f.event(o.ID, "member.remove", second.UserID)))(t)
			same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{owner})
		}},
		{"two owners stepping down at once leave one", concurrentDemotions},
		{"remove member", removeMember},
		{"removal from the last organization ends every session", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			m := f.member(o.ID, kve.RoleDeveloper)
			browser, api := f.newSession(m.UserID, kve.SessionBrowser, f.now), f.newSession(m.UserID, kve.SessionAPI, f.now)
			ok(t, f.s.CreateSession(f.ctx, browser))
			ok(t, f.s.CreateSession(f.ctx, api))
			r := must(f.s.RemoveMember(f.ctx, o.ID, m.UserID, f.event(o.ID, "member.remove", m.UserID)))(t)
			if r.Sessions != 2 {
				t.Errorf("Removal.Sessions = %d, want 2", r.Sessions)
			}
			same(t, "Sessions", must(f.s.Sessions(f.ctx, m.UserID))(t), []kve.Session{})
			same(t, "the account stays", must(f.s.User(f.ctx, m.UserID))(t).Email, m.Email)
		}},
		{"remove a member with many tokens and sessions", manyToRemove},
		{"personal tokens only for members", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			k := f.key(o.ID, "main")
			stranger := f.newToken(k, personal(kve.NewID(kve.PrefixUser, f.now)))
			wantKind(t, "CreateToken for a stranger", f.s.CreateToken(f.ctx, stranger, f.event(o.ID, "token.create", stranger.ID)), kve.KindNotFound)
			_, err := f.s.TokenByHash(f.ctx, stranger.Hash)
			wantKind(t, "TokenByHash of the refused token", err, kve.KindNotFound)

			m := f.member(o.ID, kve.RoleDeveloper)
			must(f.s.RemoveMember(f.ctx, o.ID, m.UserID, f.event(o.ID, "member.remove", m.UserID)))(t)
			late := f.newToken(k, personal(m.UserID))
			wantKind(t, "CreateToken for a removed member", f.s.CreateToken(f.ctx, late, f.event(o.ID, "token.create", late.ID)), kve.KindNotFound)
		}},
		{"rename", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			m := f.member(o.ID, kve.RoleDeveloper)
			ev := f.event(o.ID, "org.rename", o.ID).With("name", "Acme Two")
			got := must(f.s.RenameOrg(f.ctx, o.ID, "Acme Two", ev))(t)
			o.Name = "Acme Two"
			same(t, "RenameOrg", got, o)
			same(t, "Org", must(f.s.Org(f.ctx, o.ID))(t), o)
			same(t, "OrgBySlug (the slug stays)", must(f.s.OrgBySlug(f.ctx, o.Slug))(t), o)
			same(t, "Memberships", must(f.s.Memberships(f.ctx, m.UserID))(t), []kve.Membership{{Org: o, Role: kve.RoleDeveloper}})
			unknown := kve.NewID(kve.PrefixOrg, f.now)
			_, err := f.s.RenameOrg(f.ctx, unknown, "X", f.event(unknown, "org.rename", unknown))
			wantKind(t, "RenameOrg of an unknown org", err, kve.KindNotFound)
		}},
		{"delete", deleteOrg},
	}
}

// concurrentDemotions races two owners stepping down (by role change or
// removal) and checks that the organization keeps exactly one (SECURITY T42).
func concurrentDemotions(t *testing.T, f *fixture) {
	for round, how := range []string{"demote both", "remove both", "demote one, remove the other"} {
		t.Run(how, func(t *testing.T) {
			o, first := f.org(fmt.Sprintf("Race %d", round))
			second := f.member(o.ID, kve.RoleOwner)
			step := func(i int, m kve.Member) error {
				ev := f.event(o.ID, "member.change", m.UserID)
				if how == "remove both" || how != "demote both" && i == 1 {
					_, err := f.s.RemoveMember(f.ctx, o.ID, m.UserID, ev)
					return err
				}
				_, err := f.s.ChangeRole(f.ctx, o.ID, m.UserID, kve.RoleAdmin, ev)
				return err
			}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, m := range []kve.Member{first, second} {
				wg.Go(func() { errs[i] = step(i, m) })
			}
			wg.Wait()
			failed := 0
			for _, err := range errs {
				if err != nil {
					wantKind(t, "the losing change", err, kve.KindConflict)
					failed++
				}
			}
			if failed != 1 {
				t.Errorf("%d of 2 changes failed, want exactly 1: %v", failed, errs)
			}
			var owners int
			for _, m := range must(f.s.Members(f.ctx, o.ID))(t) {
				if m.Role == kve.RoleOwner {
					owners++
				}
			}
			if owners != 1 {
				t.Errorf("%d owners left, want 1", owners)
			}
		})
	}
}

// removeMember offboards a member of two organizations and checks exactly
// what went: their personal tokens of this one, their API token limited to
// it, the membership; and what stayed.
func removeMember(t *testing.T, f *fixture) {
	a, owner := f.org("Acme")
	b, _ := f.org("Bolt")
	ka, kb := f.key(a.ID, "main"), f.key(b.ID, "main")
	m := f.member(a.ID, kve.RoleDeveloper)
	u := must(f.s.User(f.ctx, m.UserID))(t)
	inB := f.newInvite(b.ID, kve.RoleDeveloper)
	inB.Email = u.Email
	ok(t, f.s.CreateInvite(f.ctx, inB, f.event(b.ID, "invite.create", inB.ID)))
	must(f.s.AcceptInvite(f.ctx, store.Acceptance{Hash: inB.Hash, At: f.now, User: u,
		Event: kve.Actor{UserID: u.ID}.Event(b.ID, "member.join", u.ID, f.now)}))(t)

	p1, p2 := f.token(ka, personal(m.UserID)), f.token(ka, personal(m.UserID))
	alreadyRevoked := f.token(ka, personal(m.UserID), func(tk *kve.Token) { tk.RevokedAt = f.now })
	sharedByThem := f.token(ka, func(tk *kve.Token) { tk.CreatedBy = m.UserID })
	otherMember := f.token(ka, personal(owner.UserID))
	inOtherOrg := f.token(kb, personal(m.UserID))

	limited := f.newSession(m.UserID, kve.SessionAPI, f.now)
	limited.OrgID = a.ID
	limitedB := f.newSession(m.UserID, kve.SessionAPI, f.now)
	limitedB.OrgID = b.ID
	browser := f.newSession(m.UserID, kve.SessionBrowser, f.now)
	for _, s := range []kve.Session{limited, limitedB, browser} {
		ok(t, f.s.CreateSession(f.ctx, s))
	}

	at := f.at(time.Hour)
	ev := f.actor().Event(a.ID, "member.remove", m.UserID, at).With("revealed", "tok_x")
	r := must(f.s.RemoveMember(f.ctx, a.ID, m.UserID, ev))(t)
	same(t, "Removal", r, store.Removal{Member: m, Tokens: []string{p1.ID, p2.ID}, Sessions: 1},
		cmpSortStrings())

	for _, tok := range []kve.Token{p1, p2} {
		got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t)
		if !got.RevokedAt.Equal(at) {
			t.Errorf("personal token %s: RevokedAt = %v, want %v", tok.Name, got.RevokedAt, at)
		}
		if got := must(f.s.Token(f.ctx, a.ID, tok.ID))(t); !got.Revoked() {
			t.Errorf("personal token %s: the organization's copy is not revoked", tok.Name)
		}
	}
	for _, tok := range []kve.Token{sharedByThem, otherMember, inOtherOrg} {
		if got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t); got.Revoked() {
			t.Errorf("token %s was revoked, want it live", tok.Name)
		}
	}
	if got := must(f.s.TokenByHash(f.ctx, alreadyRevoked.Hash))(t); !got.RevokedAt.Equal(f.now) {
		t.Errorf("an already revoked token's RevokedAt moved to %v", got.RevokedAt)
	}
	_, err := f.s.Member(f.ctx, a.ID, m.UserID)
	wantKind(t, "Member after removal", err, kve.KindNotFound)
	same(t, "Memberships", must(f.s.Memberships(f.ctx, m.UserID))(t), []kve.Membership{{Org: b, Role: kve.RoleDeveloper}})
	same(t, "Sessions", ids(must(f.s.Sessions(f.ctx, m.UserID))(t), func(s kve.Session) string { return s.ID }),
		[]string{limitedB.ID, browser.ID}, cmpSortStrings())
	same(t, "event", must(f.s.Events(f.ctx, a.ID, store.EventFilter{Action: "member.remove"}))(t).Items, []kve.Event{ev})

	_, err = f.s.RemoveMember(f.ctx, a.ID, m.UserID, f.event(a.ID, "member.remove", m.UserID))
	wantKind(t, "second RemoveMember", err, kve.KindNotFound)
}

// manyToRemove offboards a member with more tokens and sessions than one
// DynamoDB transaction holds.
func manyToRemove(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	k := f.key(o.ID, "main")
	m := f.member(o.ID, kve.RoleDeveloper)
	var want []string
	for range 60 {
		want = append(want, f.token(k, personal(m.UserID)).ID)
	}
	for range 40 {
		ok(t, f.s.CreateSession(f.ctx, f.newSession(m.UserID, kve.SessionAPI, f.now)))
	}
	r := must(f.s.RemoveMember(f.ctx, o.ID, m.UserID, f.event(o.ID, "member.remove", m.UserID)))(t)
	same(t, "revoked tokens", r.Tokens, want, cmpSortStrings())
	if r.Sessions != 40 {
		t.Errorf("Removal.Sessions = %d, want 40", r.Sessions)
	}
	live := must(f.s.Tokens(f.ctx, o.ID, store.TokenFilter{VisibleTo: m.UserID, Limit: store.MaxLimit}))(t)
	same(t, "live tokens after removal", live.Items, []kve.Token{})
	same(t, "Sessions", must(f.s.Sessions(f.ctx, m.UserID))(t), []kve.Session{})
}

// deleteOrg deletes an organization with a bit of everything and checks
// that its tokens stopped, it is gone from every read but the audit log,
// and nothing can be added to it.
func deleteOrg(t *testing.T, f *fixture) {
	o, owner := f.org("Acme")
	other, otherOwner := f.org("Bolt")
	k1, k2 := f.key(o.ID, "main"), f.key(o.ID, "spare")
	m := f.member(o.ID, kve.RoleDeveloper)
	shared, personalTok := f.token(k1), f.token(k2, personal(m.UserID))
	revoked := f.token(k1, func(tk *kve.Token) { tk.RevokedAt = f.now })
	inv := f.invite(o.ID, kve.RoleAdmin)
	limited := f.newSession(m.UserID, kve.SessionAPI, f.now)
	limited.OrgID = o.ID
	browser := f.newSession(m.UserID, kve.SessionBrowser, f.now)
	for _, s := range []kve.Session{limited, browser} {
		ok(t, f.s.CreateSession(f.ctx, s))
	}
	otherTok := f.token(f.key(other.ID, "main"))

	at := f.at(time.Hour)
	ev := f.actor().Event(o.ID, "org.delete", o.ID, at)
	d := must(f.s.DeleteOrg(f.ctx, o.ID, ev))(t)
	same(t, "Deletion.Tokens", d.Tokens, []string{shared.ID, personalTok.ID}, cmpSortStrings())
	same(t, "Deletion.Keys", d.Keys, []kve.Key{k1, k2})

	for _, tok := range []kve.Token{shared, personalTok} {
		if got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t); !got.RevokedAt.Equal(at) {
			t.Errorf("token %s: RevokedAt = %v, want %v", tok.Name, got.RevokedAt, at)
		}
	}
	if got := must(f.s.TokenByHash(f.ctx, revoked.Hash))(t); !got.RevokedAt.Equal(f.now) {
		t.Errorf("an already revoked token's RevokedAt moved to %v", got.RevokedAt)
	}
	if got := must(f.s.TokenByHash(f.ctx, otherTok.Hash))(t); got.Revoked() {
		t.Error("another organization's token was revoked")
	}
	_, err := f.s.Org(f.ctx, o.ID)
	wantKind(t, "Org", err, kve.KindNotFound)
	_, err = f.s.OrgBySlug(f.ctx, o.Slug)
	wantKind(t, "OrgBySlug", err, kve.KindNotFound)
	same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{})
	same(t, "Keys", must(f.s.Keys(f.ctx, o.ID))(t), []kve.Key{})
	same(t, "Invites", must(f.s.Invites(f.ctx, o.ID))(t), []store.Invite{})
	_, err = f.s.InviteByHash(f.ctx, inv.Hash)
	wantKind(t, "InviteByHash", err, kve.KindNotFound)
	same(t, "owner's Memberships", must(f.s.Memberships(f.ctx, owner.UserID))(t), []kve.Membership{})
	same(t, "member's Memberships", must(f.s.Memberships(f.ctx, m.UserID))(t), []kve.Membership{})
	same(t, "Sessions (the one limited to the org ended)", must(f.s.Sessions(f.ctx, m.UserID))(t), []kve.Session{browser})
	events := must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "org.delete"}))(t).Items
	same(t, "the audit log stays", events, []kve.Event{ev})
	same(t, "other org", must(f.s.Members(f.ctx, other.ID))(t), []kve.Member{otherOwner})

	wantKind(t, "second DeleteOrg", func() error { _, err := f.s.DeleteOrg(f.ctx, o.ID, f.event(o.ID, "org.delete", o.ID)); return err }(), kve.KindNotFound)
	late := f.newToken(k1)
	wantKind(t, "CreateToken", f.s.CreateToken(f.ctx, late, f.event(o.ID, "token.create", late.ID)), kve.KindNotFound)
	lateKey := f.newKey(o.ID, "late")
	wantKind(t, "CreateKey", f.s.CreateKey(f.ctx, lateKey, f.event(o.ID, "key.create", lateKey.ID)), kve.KindNotFound)
	lateInv := f.newInvite(o.ID, kve.RoleDeveloper)
	wantKind(t, "CreateInvite", f.s.CreateInvite(f.ctx, lateInv, f.event(o.ID, "invite.create", lateInv.ID)), kve.KindNotFound)
	_, err = f.s.RenameOrg(f.ctx, o.ID, "Back", f.event(o.ID, "org.rename", o.ID))
	wantKind(t, "RenameOrg", err, kve.KindNotFound)
}

// cmpSortStrings compares string slices as sets.
func cmpSortStrings() cmp.Option {
	return cmpopts.SortSlices(func(a, b string) bool { return a < b })
}
