package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// inviteIDs lists the ids of invites, for comparing lists by what they hold.
func inviteIDs(list []store.Invite) []string {
	return ids(list, func(i store.Invite) string { return i.ID })
}

func inviteTests() []test {
	return []test{
		{"create, read and list newest first", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			empty := must(f.s.Invites(f.ctx, o.ID))(t)
			notNil(t, "Invites of an org without any", empty)
			var made []store.Invite
			for _, d := range []time.Duration{time.Second, 3 * time.Second, 2 * time.Second} {
				inv := f.newInvite(o.ID, kve.RoleDeveloper)
				inv.ID, inv.CreatedAt = kve.NewID(kve.PrefixInvite, f.at(d)), f.at(d)
				ev := f.event(o.ID, "invite.create", inv.ID).With("role", string(inv.Role))
				ok(t, f.s.CreateInvite(f.ctx, inv, ev))
				same(t, "event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Target: inv.ID}))(t).Items, []kve.Event{ev})
				made = append(made, inv)
			}
			same(t, "Invite", must(f.s.Invite(f.ctx, o.ID, made[0].ID))(t), made[0])
			same(t, "InviteByHash", must(f.s.InviteByHash(f.ctx, made[1].Hash))(t), made[1])
			same(t, "Invites", must(f.s.Invites(f.ctx, o.ID))(t), []store.Invite{made[1], made[2], made[0]})

			_, err := f.s.InviteByHash(f.ctx, randomBytes(32))
			wantKind(t, "InviteByHash of an unknown code", err, kve.KindNotFound)
			_, err = f.s.Invite(f.ctx, o.ID, kve.NewID(kve.PrefixInvite, f.now))
			wantKind(t, "Invite of an unknown id", err, kve.KindNotFound)
		}},
		{"duplicate hash", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			first := f.invite(o.ID, kve.RoleAdmin)
			dup := f.newInvite(o.ID, kve.RoleDeveloper)
			dup.Hash = first.Hash
			wantKind(t, "CreateInvite with a taken hash", f.s.CreateInvite(f.ctx, dup, f.event(o.ID, "invite.create", dup.ID)), kve.KindConflict)
			same(t, "Invites", inviteIDs(must(f.s.Invites(f.ctx, o.ID))(t)), []string{first.ID})
		}},
		{"accept by a new account", func(t *testing.T, f *fixture) {
			o, owner := f.org("Acme")
			inv := f.invite(o.ID, kve.RoleAdmin)
			a := f.acceptance(inv, f.at(time.Hour))
			ses := f.newSession(a.User.ID, kve.SessionAPI, a.At)
			a.Session = &ses
			m := must(f.s.AcceptInvite(f.ctx, a))(t)
			want := kve.Member{OrgID: o.ID, UserID: a.User.ID, Email: inv.Email, Name: a.User.Name, Role: kve.RoleAdmin, JoinedAt: a.At}
			same(t, "AcceptInvite", m, want)
			same(t, "Member", must(f.s.Member(f.ctx, o.ID, a.User.ID))(t), want)
			same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{owner, want})
			same(t, "Memberships", must(f.s.Memberships(f.ctx, a.User.ID))(t), []kve.Membership{{Org: o, Role: kve.RoleAdmin}})
			same(t, "UserByEmail", must(f.s.UserByEmail(f.ctx, inv.Email))(t), a.User)
			same(t, "SessionByHash", must(f.s.SessionByHash(f.ctx, ses.Hash))(t), ses)

			closed := inv
			closed.AcceptedAt, closed.AcceptedBy = a.At, a.User.ID
			same(t, "Invite after accept", must(f.s.Invite(f.ctx, o.ID, inv.ID))(t), closed)
			same(t, "InviteByHash after accept", must(f.s.InviteByHash(f.ctx, inv.Hash))(t), closed)
			same(t, "Invites after accept", must(f.s.Invites(f.ctx, o.ID))(t), []store.Invite{})
			same(t, "event", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "member.join"}))(t).Items, []kve.Event{a.Event})
		}},
		{"accept by an existing account", func(t *testing.T, f *fixture) {
			a, _ := f.org("Acme")
			b, _ := f.org("Bolt")
			joined := f.member(b.ID, kve.RoleDeveloper)
			u := must(f.s.User(f.ctx, joined.UserID))(t)
			inv := f.newInvite(a.ID, kve.RoleDeveloper)
			inv.Email = u.Email
			ok(t, f.s.CreateInvite(f.ctx, inv, f.event(a.ID, "invite.create", inv.ID)))
			acc := store.Acceptance{Hash: inv.Hash, At: f.at(time.Hour), User: u,
				Event: kve.Actor{UserID: u.ID, Email: u.Email}.Event(a.ID, "member.join", u.ID, f.at(time.Hour))}
			must(f.s.AcceptInvite(f.ctx, acc))(t)
			same(t, "User", must(f.s.User(f.ctx, u.ID))(t), u)
			same(t, "Memberships", must(f.s.Memberships(f.ctx, u.ID))(t),
				[]kve.Membership{{Org: b, Role: kve.RoleDeveloper}, {Org: a, Role: kve.RoleDeveloper}})
		}},
		{"refused accepts change nothing", refusedAccepts},
		{"exactly once under 20 concurrent accepts", concurrentAccepts},
		{"renew", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			inv := f.invite(o.ID, kve.RoleDeveloper)
			hash, expires := randomBytes(32), f.at(100*time.Hour)
			ev := f.event(o.ID, "invite.resend", inv.ID)
			got := must(f.s.RenewInvite(f.ctx, o.ID, inv.ID, hash, expires, ev))(t)
			want := inv
			want.Hash, want.ExpiresAt = hash, expires
			same(t, "RenewInvite", got, want)
			same(t, "InviteByHash of the new code", must(f.s.InviteByHash(f.ctx, hash))(t), want)
			same(t, "Invite", must(f.s.Invite(f.ctx, o.ID, inv.ID))(t), want)
			_, err := f.s.InviteByHash(f.ctx, inv.Hash)
			wantKind(t, "InviteByHash of the old code", err, kve.KindNotFound)
			_, err = f.s.AcceptInvite(f.ctx, f.acceptance(inv, f.at(time.Hour)))
			wantKind(t, "AcceptInvite with the old code", err, kve.KindNotFound)

			must(f.s.AcceptInvite(f.ctx, f.acceptance(want, f.at(80*time.Hour))))(t)
			_, err = f.s.RenewInvite(f.ctx, o.ID, inv.ID, randomBytes(32), expires, f.event(o.ID, "invite.resend", inv.ID))
			wantKind(t, "RenewInvite after accept", err, kve.KindGone)
		}},
		{"revoke", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			inv, other := f.invite(o.ID, kve.RoleDeveloper), f.invite(o.ID, kve.RoleAdmin)
			ok(t, f.s.RevokeInvite(f.ctx, o.ID, inv.ID, f.at(time.Hour), f.event(o.ID, "invite.revoke", inv.ID)))
			revoked := inv
			revoked.RevokedAt = f.at(time.Hour)
			same(t, "Invite", must(f.s.Invite(f.ctx, o.ID, inv.ID))(t), revoked)
			same(t, "Invites", inviteIDs(must(f.s.Invites(f.ctx, o.ID))(t)), []string{other.ID})
			_, err := f.s.AcceptInvite(f.ctx, f.acceptance(inv, f.at(2*time.Hour)))
			wantKind(t, "AcceptInvite after revoke", err, kve.KindGone)
			wantKind(t, "second RevokeInvite", f.s.RevokeInvite(f.ctx, o.ID, inv.ID, f.at(3*time.Hour),
				f.event(o.ID, "invite.revoke", inv.ID)), kve.KindGone)
			wantKind(t, "RevokeInvite of an unknown id", f.s.RevokeInvite(f.ctx, o.ID, kve.NewID(kve.PrefixInvite, f.now),
				f.now, f.event(o.ID, "invite.revoke", "inv_x")), kve.KindNotFound)
		}},
	}
}

// refusedAccepts tries every accept that must fail and checks that none
// left a member, a user or a session behind.
func refusedAccepts(t *testing.T, f *fixture) {
	o, owner := f.org("Acme")
	accepted := f.invite(o.ID, kve.RoleDeveloper)
	first := f.acceptance(accepted, f.at(time.Hour))
	must(f.s.AcceptInvite(f.ctx, first))(t)
	existing := must(f.s.User(f.ctx, first.User.ID))(t)

	for _, tc := range []struct {
		name   string
		accept func() store.Acceptance
		want   kve.Kind
	}{
		{"used", func() store.Acceptance { return f.acceptance(accepted, f.at(2*time.Hour)) }, kve.KindGone},
		{"expired", func() store.Acceptance {
			inv := f.invite(o.ID, kve.RoleDeveloper)
			return f.acceptance(inv, inv.ExpiresAt)
		}, kve.KindGone},
		{"unknown code", func() store.Acceptance {
			a := f.acceptance(f.newInvite(o.ID, kve.RoleDeveloper), f.at(time.Hour))
			return a
		}, kve.KindNotFound},
		{"another address", func() store.Acceptance {
			a := f.acceptance(f.invite(o.ID, kve.RoleDeveloper), f.at(time.Hour))
			a.User.Email = "someone-else@example.test"
			return a
		}, kve.KindForbidden},
		{"already a member", func() store.Acceptance {
			inv := f.newInvite(o.ID, kve.RoleAdmin)
			inv.Email = existing.Email
			ok(t, f.s.CreateInvite(f.ctx, inv, f.event(o.ID, "invite.create", inv.ID)))
			return store.Acceptance{Hash: inv.Hash, At: f.at(time.Hour), User: existing,
				Event: kve.Actor{UserID: existing.ID}.Event(o.ID, "member.join", existing.ID, f.at(time.Hour))}
		}, kve.KindConflict},
		{"new account for a taken address", func() store.Acceptance {
			other, _ := f.org("Bolt")
			inv := f.newInvite(other.ID, kve.RoleAdmin)
			inv.Email = existing.Email
			ok(t, f.s.CreateInvite(f.ctx, inv, f.event(other.ID, "invite.create", inv.ID)))
			return f.acceptance(inv, f.at(time.Hour))
		}, kve.KindConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.accept()
			ses := f.newSession(a.User.ID, kve.SessionBrowser, a.At)
			a.Session = &ses
			_, err := f.s.AcceptInvite(f.ctx, a)
			wantKind(t, "AcceptInvite", err, tc.want)
			_, err = f.s.SessionByHash(f.ctx, ses.Hash)
			wantKind(t, "SessionByHash of a refused accept", err, kve.KindNotFound)
			if a.User.ID != existing.ID {
				_, err = f.s.User(f.ctx, a.User.ID)
				wantKind(t, "User of a refused accept", err, kve.KindNotFound)
			}
			same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{owner, must(f.s.Member(f.ctx, o.ID, existing.ID))(t)})
		})
	}
}

// concurrentAccepts races 20 new accounts for one invite (SECURITY T36,
// T42): exactly one joins, the others are told the invite is used.
func concurrentAccepts(t *testing.T, f *fixture) {
	o, owner := f.org("Acme")
	inv := f.invite(o.ID, kve.RoleDeveloper)
	const n = 20
	accepts := make([]store.Acceptance, n)
	for i := range accepts {
		accepts[i] = f.acceptance(inv, f.at(time.Hour))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = f.s.AcceptInvite(f.ctx, accepts[i]) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("AcceptInvite succeeded twice (calls %d and %d)", winner, i)
			}
			winner = i
			continue
		}
		wantKind(t, "losing AcceptInvite", err, kve.KindGone)
	}
	if winner < 0 {
		t.Fatal("no AcceptInvite succeeded")
	}
	w := accepts[winner].User
	same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{owner,
		{OrgID: o.ID, UserID: w.ID, Email: w.Email, Name: w.Name, Role: kve.RoleDeveloper, JoinedAt: f.at(time.Hour)}})
	same(t, "UserByEmail", must(f.s.UserByEmail(f.ctx, inv.Email))(t), w)
	joins := must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "member.join"}))(t).Items
	same(t, "member.join events", joins, []kve.Event{accepts[winner].Event})
}
