package storetest

import (
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func scopingTests() []test {
	return []test{
		{"another org's ids are not found", otherOrgIDs},
	}
}

// snapshot is everything one organization holds that the suite can read.
type snapshot struct {
	Org     kve.Org
	Members []kve.Member
	Keys    []kve.Key
	Tokens  []kve.Token
	Events  []kve.Event
	Usage   []kve.Usage
	Invites []store.Invite
}

func (f *fixture) snapshot(t *testing.T, orgID string) snapshot {
	t.Helper()
	return snapshot{
		Org:     must(f.s.Org(f.ctx, orgID))(t),
		Members: must(f.s.Members(f.ctx, orgID))(t),
		Keys:    must(f.s.Keys(f.ctx, orgID))(t),
		Tokens:  must(f.s.Tokens(f.ctx, orgID, store.TokenFilter{IncludeRevoked: true, Limit: store.MaxLimit}))(t).Items,
		Events:  must(f.s.Events(f.ctx, orgID, store.EventFilter{Limit: store.MaxLimit}))(t).Items,
		Usage:   must(f.s.UsageRecords(f.ctx, orgID, store.UsageFilter{Limit: store.MaxLimit}))(t).Items,
		Invites: must(f.s.Invites(f.ctx, orgID))(t),
	}
}

// otherOrgIDs calls every org-scoped read, update and delete as organization
// B with organization A's ids, and checks that each is KindNotFound and that
// neither organization changed.
func otherOrgIDs(t *testing.T, f *fixture) {
	a, owner := f.org("Acme")
	b, _ := f.org("Bolt")
	k := f.key(a.ID, "only-in-acme")
	tok := f.token(k)
	inv := f.invite(a.ID, kve.RoleDeveloper)
	dev := f.member(a.ID, kve.RoleDeveloper)
	ok(t, f.s.RecordUsage(f.ctx, []kve.Usage{f.usage(tok, f.now, 10)}))
	beforeA, beforeB := f.snapshot(t, a.ID), f.snapshot(t, b.ID)

	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Token", func() error { _, err := f.s.Token(f.ctx, b.ID, tok.ID); return err }},
		{"UpdateToken", func() error {
			_, err := f.s.UpdateToken(f.ctx, b.ID, tok.ID, func(tk *kve.Token) error {
				t.Errorf("UpdateToken called fn with another organization's token %s", tk.ID)
				tk.RevokedAt = f.now
				return nil
			}, f.event(b.ID, "token.revoke", tok.ID))
			return err
		}},
		{"Key", func() error { _, err := f.s.Key(f.ctx, b.ID, k.Name); return err }},
		{"RotateKey", func() error {
			_, err := f.s.RotateKey(f.ctx, b.ID, k.Name, store.Rotation{Version: "version-9", Last4: "XXXX", At: f.now},
				f.event(b.ID, "key.rotate", k.ID))
			return err
		}},
		{"DeleteKey", func() error { return f.s.DeleteKey(f.ctx, b.ID, k.Name, f.event(b.ID, "key.delete", k.ID)) }},
		{"Member", func() error { _, err := f.s.Member(f.ctx, b.ID, owner.UserID); return err }},
		{"ChangeRole", func() error {
			_, err := f.s.ChangeRole(f.ctx, b.ID, dev.UserID, kve.RoleOwner, f.event(b.ID, "member.role", dev.UserID))
			return err
		}},
		{"RemoveMember", func() error {
			_, err := f.s.RemoveMember(f.ctx, b.ID, dev.UserID, f.event(b.ID, "member.remove", dev.UserID))
			return err
		}},
		{"Invite", func() error { _, err := f.s.Invite(f.ctx, b.ID, inv.ID); return err }},
		{"RenewInvite", func() error {
			_, err := f.s.RenewInvite(f.ctx, b.ID, inv.ID, randomBytes(32), f.at(time.Hour), f.event(b.ID, "invite.resend", inv.ID))
			return err
		}},
		{"RevokeInvite", func() error {
			return f.s.RevokeInvite(f.ctx, b.ID, inv.ID, f.now, f.event(b.ID, "invite.revoke", inv.ID))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantKind(t, tc.name+" as another org", tc.call(), kve.KindNotFound)
			same(t, "org A", f.snapshot(t, a.ID), beforeA)
			same(t, "org B", f.snapshot(t, b.ID), beforeB)
		})
	}

	for _, tc := range []struct {
		name string
		list func() (int, error)
	}{
		{"Tokens by A's key", func() (int, error) {
			p, err := f.s.Tokens(f.ctx, b.ID, store.TokenFilter{KeyID: k.ID, IncludeRevoked: true})
			return len(p.Items), err
		}},
		{"Events about A's token", func() (int, error) {
			p, err := f.s.Events(f.ctx, b.ID, store.EventFilter{Target: tok.ID})
			return len(p.Items), err
		}},
		{"UsageRecords of A's token", func() (int, error) {
			p, err := f.s.UsageRecords(f.ctx, b.ID, store.UsageFilter{TokenID: tok.ID})
			return len(p.Items), err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := must(tc.list())(t); n != 0 {
				t.Errorf("%s as another org: %d items, want none", tc.name, n)
			}
		})
	}
}
