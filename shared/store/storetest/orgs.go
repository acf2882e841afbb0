package storetest

import (
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func orgTests() []test {
	return []test{
		{"create with owner and event", func(t *testing.T, f *fixture) {
			o, owner := f.newOrg("Acme Corp", kve.NewID(kve.PrefixUser, f.now), f.now)
			ev := f.event(o.ID, "org.create", o.ID).With("slug", o.Slug)
			ok(t, f.s.CreateOrg(f.ctx, o, owner, ev))

			same(t, "Org", must(f.s.Org(f.ctx, o.ID))(t), o)
			same(t, "OrgBySlug", must(f.s.OrgBySlug(f.ctx, o.Slug))(t), o)
			same(t, "Member", must(f.s.Member(f.ctx, o.ID, owner.UserID))(t), owner)
			same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{owner})
			same(t, "Memberships", must(f.s.Memberships(f.ctx, owner.UserID))(t),
				[]kve.Membership{{Org: o, Role: kve.RoleOwner}})
			events := must(f.s.Events(f.ctx, o.ID, store.EventFilter{}))(t)
			same(t, "Events", events.Items, []kve.Event{ev})
		}},
		{"duplicate slug", func(t *testing.T, f *fixture) {
			first, _ := f.org("Acme")
			o, owner := f.newOrg("Acme again", kve.NewID(kve.PrefixUser, f.now), f.at(time.Second))
			o.Slug = first.Slug
			err := f.s.CreateOrg(f.ctx, o, owner, f.event(o.ID, "org.create", o.ID))
			wantKind(t, "CreateOrg with a taken slug", err, kve.KindConflict)

			same(t, "OrgBySlug", must(f.s.OrgBySlug(f.ctx, first.Slug))(t), first)
			_, err = f.s.Org(f.ctx, o.ID)
			wantKind(t, "Org of the refused org", err, kve.KindNotFound)
			same(t, "Memberships of the refused owner", must(f.s.Memberships(f.ctx, owner.UserID))(t), []kve.Membership{})
			same(t, "Events of the refused org", must(f.s.Events(f.ctx, o.ID, store.EventFilter{}))(t).Items, []kve.Event{})
		}},
		{"memberships oldest first", func(t *testing.T, f *fixture) {
			user := kve.NewID(kve.PrefixUser, f.now)
			var made []kve.Org
			for i, d := range []time.Duration{2 * time.Hour, 0, time.Hour} {
				o, owner := f.newOrg([]string{"Beta", "Alpha", "Gamma"}[i], user, f.at(d))
				// Ids minted in the opposite order, so that a store sorting
				// by org id instead of join time fails.
				o.ID = kve.NewID(kve.PrefixOrg, f.at(-d))
				owner.OrgID = o.ID
				ok(t, f.s.CreateOrg(f.ctx, o, owner, f.event(o.ID, "org.create", o.ID)))
				made = append(made, o)
			}
			want := []kve.Membership{
				{Org: made[1], Role: kve.RoleOwner},
				{Org: made[2], Role: kve.RoleOwner},
				{Org: made[0], Role: kve.RoleOwner},
			}
			same(t, "Memberships", must(f.s.Memberships(f.ctx, user))(t), want)
		}},
		{"unknown", func(t *testing.T, f *fixture) {
			o, owner := f.org("Acme")
			_, err := f.s.Org(f.ctx, kve.NewID(kve.PrefixOrg, f.now))
			wantKind(t, "Org", err, kve.KindNotFound)
			_, err = f.s.OrgBySlug(f.ctx, "no-such-org")
			wantKind(t, "OrgBySlug", err, kve.KindNotFound)
			_, err = f.s.Member(f.ctx, o.ID, kve.NewID(kve.PrefixUser, f.now))
			wantKind(t, "Member of a stranger", err, kve.KindNotFound)

			members := must(f.s.Members(f.ctx, kve.NewID(kve.PrefixOrg, f.now)))(t)
			notNil(t, "Members of an unknown org", members)
			same(t, "Members of an unknown org", members, []kve.Member{})
			memberships := must(f.s.Memberships(f.ctx, kve.NewID(kve.PrefixUser, f.now)))(t)
			notNil(t, "Memberships of a stranger", memberships)
			same(t, "Memberships of a stranger", memberships, []kve.Membership{})
			same(t, "Members", must(f.s.Members(f.ctx, o.ID))(t), []kve.Member{owner})
		}},
	}
}
