package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func auditTests() []test {
	return []test{
		{"add and list newest first", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			var want []kve.Event
			for _, d := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
				ev := f.actor().Event(o.ID, "token.reveal", "tok_x", f.at(d)).With("hint", "kve_hb_dev_…ab12")
				ok(t, f.s.AddEvent(f.ctx, ev))
				want = append(want, ev)
			}
			created := must(f.s.Events(f.ctx, o.ID, store.EventFilter{Action: "org.create"}))(t).Items
			want = append([]kve.Event{want[0], want[2], want[1]}, created...)
			p := must(f.s.Events(f.ctx, o.ID, store.EventFilter{}))(t)
			same(t, "Events", p.Items, want)
			if p.Next != "" {
				t.Errorf("Next = %q on a short list, want \"\"", p.Next)
			}
		}},
		{"duplicate id", func(t *testing.T, f *fixture) {
			o, _ := f.org("Acme")
			ev := f.event(o.ID, "token.reveal", "tok_x")
			ok(t, f.s.AddEvent(f.ctx, ev))
			again := ev
			again.Action = "token.other"
			wantKind(t, "AddEvent with a taken id", f.s.AddEvent(f.ctx, again), kve.KindConflict)
			same(t, "Events", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Target: "tok_x"}))(t).Items, []kve.Event{ev})
		}},
		{"filters", eventFilters},
		{"pages", eventPages},
		{"a failed event write undoes the mutation", eventRollback},
	}
}

func eventFilters(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	other, _ := f.org("Bolt")
	alice := kve.Actor{UserID: kve.NewID(kve.PrefixUser, f.now), Email: "alice@example.test"}
	bob := kve.Actor{UserID: kve.NewID(kve.PrefixUser, f.now), Email: "bob@example.test"}
	add := func(a kve.Actor, orgID, action, target string, d time.Duration) kve.Event {
		ev := a.Event(orgID, action, target, f.at(d))
		ok(t, f.s.AddEvent(f.ctx, ev))
		return ev
	}
	e1 := add(alice, o.ID, "token.reveal", "tok_1", time.Minute)
	e2 := add(bob, o.ID, "token.reveal", "tok_2", 2*time.Minute)
	e3 := add(alice, o.ID, "key.create", "key_1", 3*time.Minute)
	e4 := add(bob, o.ID, "token.reveal", "tok_1", 4*time.Minute)
	add(alice, other.ID, "token.reveal", "tok_1", 5*time.Minute) // another organization

	for _, tc := range []struct {
		name   string
		filter store.EventFilter
		want   []kve.Event
	}{
		{"action", store.EventFilter{Action: "token.reveal"}, []kve.Event{e4, e2, e1}},
		{"actor", store.EventFilter{ActorID: alice.UserID}, []kve.Event{e3, e1}},
		{"target", store.EventFilter{Target: "tok_1"}, []kve.Event{e4, e1}},
		{"since is inclusive", store.EventFilter{Since: f.at(2 * time.Minute)}, []kve.Event{e4, e3, e2}},
		{"all filters", store.EventFilter{Action: "token.reveal", ActorID: bob.UserID, Target: "tok_1", Since: f.at(time.Minute)}, []kve.Event{e4}},
		{"no match", store.EventFilter{Action: "member.remove"}, []kve.Event{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := must(f.s.Events(f.ctx, o.ID, tc.filter))(t)
			notNil(t, "Items", p.Items)
			same(t, "Events", p.Items, tc.want)
		})
	}
}

// eventPages walks 25 events, five to each millisecond, ten at a time.
func eventPages(t *testing.T, f *fixture) {
	o, _ := f.org("Acme")
	empty := must(f.s.Events(f.ctx, kve.NewID(kve.PrefixOrg, f.now), store.EventFilter{}))(t)
	notNil(t, "Events of an unknown org", empty.Items)

	var want []kve.Event
	for i := range 25 {
		at := f.at(time.Hour + time.Duration(i/5)*time.Millisecond)
		ev := f.actor().Event(o.ID, "token.reveal", "tok_x", at)
		ok(t, f.s.AddEvent(f.ctx, ev))
		want = append(want, ev)
	}
	slices.SortFunc(want, func(a, b kve.Event) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	var got []kve.Event
	var sizes []int
	filter := store.EventFilter{Action: "token.reveal", Limit: 10}
	for range 10 {
		p := must(f.s.Events(f.ctx, o.ID, filter))(t)
		got = append(got, p.Items...)
		sizes = append(sizes, len(p.Items))
		if p.Next == "" {
			break
		}
		filter.Cursor = p.Next
	}
	same(t, "page sizes", sizes, []int{10, 10, 5})
	same(t, "events over all pages", got, want)
}

// eventRollback makes each audited mutation's event unwritable (its id is
// taken) and checks that the mutation left nothing behind.
func eventRollback(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		name string
		// do runs the mutation with an event of the given id and returns
		// a check that nothing changed, and the mutation's error.
		do func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error)
	}{
		{"CreateOrg", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, owner := f.newOrg("Late", kve.NewID(kve.PrefixUser, f.now), f.now)
			ev := f.event(o.ID, "org.create", o.ID)
			ev.ID = eventID
			err := f.s.CreateOrg(f.ctx, o, owner, ev)
			return func(t *testing.T) {
				_, err := f.s.Org(f.ctx, o.ID)
				wantKind(t, "Org", err, kve.KindNotFound)
				_, err = f.s.OrgBySlug(f.ctx, o.Slug)
				wantKind(t, "OrgBySlug", err, kve.KindNotFound)
				same(t, "Memberships", must(f.s.Memberships(f.ctx, owner.UserID))(t), []kve.Membership{})
			}, err
		}},
		{"CreateKey", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			k := f.newKey(o.ID, "main")
			ev := f.event(o.ID, "key.create", k.ID)
			ev.ID = eventID
			err := f.s.CreateKey(f.ctx, k, ev)
			return func(t *testing.T) {
				_, err := f.s.Key(f.ctx, o.ID, k.Name)
				wantKind(t, "Key", err, kve.KindNotFound)
			}, err
		}},
		{"RotateKey", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			k := f.key(o.ID, "main")
			tok := f.token(k)
			before := must(f.s.Token(f.ctx, o.ID, tok.ID))(t)
			ev := f.event(o.ID, "key.rotate", k.ID)
			ev.ID = eventID
			_, err := f.s.RotateKey(f.ctx, o.ID, k.Name, store.Rotation{Version: "version-2", Last4: "NEW4", At: f.now}, ev)
			return func(t *testing.T) {
				same(t, "Key", must(f.s.Key(f.ctx, o.ID, k.Name))(t), k)
				same(t, "Token", must(f.s.Token(f.ctx, o.ID, tok.ID))(t), before)
			}, err
		}},
		{"DeleteKey", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			k := f.key(o.ID, "main")
			ev := f.event(o.ID, "key.delete", k.ID)
			ev.ID = eventID
			err := f.s.DeleteKey(f.ctx, o.ID, k.Name, ev)
			return func(t *testing.T) {
				same(t, "Key", must(f.s.Key(f.ctx, o.ID, k.Name))(t), k)
			}, err
		}},
		{"CreateToken", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			tok := f.newToken(f.key(o.ID, "main"))
			ev := f.event(o.ID, "token.create", tok.ID)
			ev.ID = eventID
			err := f.s.CreateToken(f.ctx, tok, ev)
			return func(t *testing.T) {
				_, err := f.s.TokenByHash(f.ctx, tok.Hash)
				wantKind(t, "TokenByHash", err, kve.KindNotFound)
				_, err = f.s.Token(f.ctx, o.ID, tok.ID)
				wantKind(t, "Token", err, kve.KindNotFound)
			}, err
		}},
		{"UpdateToken", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			tok := f.token(f.key(o.ID, "main"))
			before := must(f.s.Token(f.ctx, o.ID, tok.ID))(t)
			ev := f.event(o.ID, "token.revoke", tok.ID)
			ev.ID = eventID
			_, err := f.s.UpdateToken(f.ctx, o.ID, tok.ID, func(tk *kve.Token) error {
				tk.RevokedAt = f.now
				return nil
			}, ev)
			return func(t *testing.T) {
				same(t, "Token", must(f.s.Token(f.ctx, o.ID, tok.ID))(t), before)
				if got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t); got.Revoked() {
					t.Error("TokenByHash: token revoked by an unaudited update")
				}
			}, err
		}},
		{"RenameOrg", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			ev := f.event(o.ID, "org.rename", o.ID)
			ev.ID = eventID
			_, err := f.s.RenameOrg(f.ctx, o.ID, "Renamed", ev)
			return func(t *testing.T) {
				same(t, "Org", must(f.s.Org(f.ctx, o.ID))(t), o)
			}, err
		}},
		{"DeleteOrg", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, owner := f.org("Acme")
			tok := f.token(f.key(o.ID, "main"))
			ev := f.event(o.ID, "org.delete", o.ID)
			ev.ID = eventID
			_, err := f.s.DeleteOrg(f.ctx, o.ID, ev)
			return func(t *testing.T) {
				same(t, "Org", must(f.s.Org(f.ctx, o.ID))(t), o)
				same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{owner})
				if got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t); got.Revoked() {
					t.Error("token revoked by an unaudited deletion")
				}
			}, err
		}},
		{"ChangeRole", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			m := f.member(o.ID, kve.RoleDeveloper)
			ev := f.event(o.ID, "member.role", m.UserID)
			ev.ID = eventID
			_, err := f.s.ChangeRole(f.ctx, o.ID, m.UserID, kve.RoleOwner, ev)
			return func(t *testing.T) {
				same(t, "Member", must(f.s.Member(f.ctx, o.ID, m.UserID))(t), m)
			}, err
		}},
		{"RemoveMember", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			m := f.member(o.ID, kve.RoleDeveloper)
			tok := f.token(f.key(o.ID, "main"), personal(m.UserID))
			ses := f.newSession(m.UserID, kve.SessionBrowser, f.now)
			ok(t, f.s.CreateSession(f.ctx, ses))
			ev := f.event(o.ID, "member.remove", m.UserID)
			ev.ID = eventID
			_, err := f.s.RemoveMember(f.ctx, o.ID, m.UserID, ev)
			return func(t *testing.T) {
				same(t, "Member", must(f.s.Member(f.ctx, o.ID, m.UserID))(t), m)
				if got := must(f.s.TokenByHash(f.ctx, tok.Hash))(t); got.Revoked() {
					t.Error("personal token revoked by an unaudited removal")
				}
				same(t, "session", must(f.s.SessionByHash(f.ctx, ses.Hash))(t), ses)
			}, err
		}},
		{"CreateInvite", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			inv := f.newInvite(o.ID, kve.RoleDeveloper)
			ev := f.event(o.ID, "invite.create", inv.ID)
			ev.ID = eventID
			err := f.s.CreateInvite(f.ctx, inv, ev)
			return func(t *testing.T) {
				_, err := f.s.InviteByHash(f.ctx, inv.Hash)
				wantKind(t, "InviteByHash", err, kve.KindNotFound)
				same(t, "Invites", must(f.s.Invites(f.ctx, o.ID))(t), []store.Invite{})
			}, err
		}},
		{"RenewInvite", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			inv := f.invite(o.ID, kve.RoleDeveloper)
			ev := f.event(o.ID, "invite.resend", inv.ID)
			ev.ID = eventID
			_, err := f.s.RenewInvite(f.ctx, o.ID, inv.ID, randomBytes(32), f.at(time.Hour), ev)
			return func(t *testing.T) {
				same(t, "InviteByHash", must(f.s.InviteByHash(f.ctx, inv.Hash))(t), inv)
			}, err
		}},
		{"RevokeInvite", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, _ := f.org("Acme")
			inv := f.invite(o.ID, kve.RoleDeveloper)
			ev := f.event(o.ID, "invite.revoke", inv.ID)
			ev.ID = eventID
			err := f.s.RevokeInvite(f.ctx, o.ID, inv.ID, f.now, ev)
			return func(t *testing.T) {
				same(t, "Invite", must(f.s.Invite(f.ctx, o.ID, inv.ID))(t), inv)
			}, err
		}},
		{"AcceptInvite", func(t *testing.T, f *fixture, eventID string) (func(t *testing.T), error) {
			o, owner := f.org("Acme")
			inv := f.invite(o.ID, kve.RoleDeveloper)
			a := f.acceptance(inv, f.at(time.Minute))
			a.Event.ID = eventID
			_, err := f.s.AcceptInvite(f.ctx, a)
			return func(t *testing.T) {
				same(t, "Invite", must(f.s.Invite(f.ctx, o.ID, inv.ID))(t), inv)
				same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{owner})
				_, err := f.s.User(f.ctx, a.User.ID)
				wantKind(t, "User", err, kve.KindNotFound)
			}, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, f.s)
			o, _ := f.org("Earlier")
			taken := f.event(o.ID, "token.reveal", "tok_x")
			ok(t, f.s.AddEvent(f.ctx, taken))

			unchanged, err := tc.do(t, f, taken.ID)
			wantKind(t, tc.name+" with an unwritable event", err, kve.KindConflict)
			unchanged(t)
			same(t, "the event holding the id", must(f.s.Events(f.ctx, o.ID, store.EventFilter{Target: "tok_x"}))(t).Items, []kve.Event{taken})
		})
	}
}
