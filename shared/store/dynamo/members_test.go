package dynamo

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// addMember joins a new user to the seeded organization through an invite.
func (e *env) addMember(s seeded, role kve.Role) kve.Member {
	e.t.Helper()
	now := testNow
	inv := store.Invite{ID: kve.NewID(kve.PrefixInvite, now), OrgID: s.org.ID, Email: "member-" + kve.NewID("", now)[18:] + "@example.test",
		Role: role, Hash: []byte(kve.NewID("invite-hash-", now)), CreatedAt: now, ExpiresAt: now.Add(72 * time.Hour)}
	e.ok(e.store.CreateInvite(e.ctx, inv, e.event(s.org.ID, "invite.create", inv.ID)))
	u := kve.User{ID: kve.NewID(kve.PrefixUser, now), Email: inv.Email, Name: "Member", CreatedAt: now}
	m, err := e.store.AcceptInvite(e.ctx, store.Acceptance{Hash: inv.Hash, At: now, User: u, NewUser: true,
		Event: e.event(s.org.ID, "member.join", u.ID)})
	e.ok(err)
	return m
}

// TestRemoveMemberTokenCreatedMeanwhile creates a personal token of the
// member between RemoveMember's reads and its write: the removal reads
// again and revokes that token too, so it cannot outlive the membership.
func TestRemoveMemberTokenCreatedMeanwhile(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	m := e.addMember(s, kve.RoleDeveloper)
	early := e.newToken(s.key)
	early.Kind, early.OwnerID = kve.TokenPersonal, m.UserID
	e.ok(e.store.CreateToken(e.ctx, early, e.event(s.org.ID, "token.create", early.ID)))

	other := Open(e.client, e.table)
	late := e.newToken(s.key)
	late.Kind, late.OwnerID = kve.TokenPersonal, m.UserID
	fired := false
	e.calls.before = func(op string) {
		if op == "TransactWriteItems" && !fired {
			fired = true
			e.ok(other.CreateToken(e.ctx, late, e.event(s.org.ID, "token.create", late.ID)))
		}
	}
	r, err := e.store.RemoveMember(e.ctx, s.org.ID, m.UserID, e.event(s.org.ID, "member.remove", m.UserID))
	e.calls.before = nil
	if err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	if diff := cmp.Diff([]string{early.ID, late.ID}, r.Tokens, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("revoked tokens (-want +got):\n%s", diff)
	}
	for _, tok := range []kve.Token{early, late} {
		got, err := e.store.TokenByHash(e.ctx, tok.Hash)
		if err != nil || !got.Revoked() {
			t.Errorf("token %s: revoked %v (error %v), want revoked", tok.ID, got.Revoked(), err)
		}
	}
}

// TestDeleteOrgTokenCreatedMeanwhile does the same to DeleteOrg.
func TestDeleteOrgTokenCreatedMeanwhile(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	other := Open(e.client, e.table)
	late := e.newToken(s.key)
	fired := false
	e.calls.before = func(op string) {
		if op == "TransactWriteItems" && !fired {
			fired = true
			e.ok(other.CreateToken(e.ctx, late, e.event(s.org.ID, "token.create", late.ID)))
		}
	}
	d, err := e.store.DeleteOrg(e.ctx, s.org.ID, e.event(s.org.ID, "org.delete", s.org.ID))
	e.calls.before = nil
	if err != nil {
		t.Fatalf("DeleteOrg: %v", err)
	}
	if diff := cmp.Diff([]string{s.token.ID, late.ID}, d.Tokens, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("revoked tokens (-want +got):\n%s", diff)
	}
	got, err := e.store.TokenByHash(e.ctx, late.Hash)
	if err != nil || !got.Revoked() {
		t.Errorf("the token created meanwhile: revoked %v (error %v), want revoked", got.Revoked(), err)
	}
}

// TestRemoveMemberInSeveralTransactions offboards a member with more
// personal tokens than one transaction holds, and checks the order that
// keeps it safe: every transaction but the last only revokes, and the last
// removes the membership.
func TestRemoveMemberInSeveralTransactions(t *testing.T) {
	e := newEnv(t)
	s := e.seed()
	m := e.addMember(s, kve.RoleDeveloper)
	for range 70 {
		tok := e.newToken(s.key)
		tok.Kind, tok.OwnerID = kve.TokenPersonal, m.UserID
		e.ok(e.store.CreateToken(e.ctx, tok, e.event(s.org.ID, "token.create", tok.ID)))
	}
	var stillMember []bool
	e.calls.before = func(op string) {
		if op == "TransactWriteItems" {
			_, err := e.store.Member(e.ctx, s.org.ID, m.UserID)
			stillMember = append(stillMember, err == nil)
		}
	}
	r, err := e.store.RemoveMember(e.ctx, s.org.ID, m.UserID, e.event(s.org.ID, "member.remove", m.UserID))
	e.calls.before = nil
	if err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	if len(r.Tokens) != 70 {
		t.Errorf("revoked %d tokens, want 70", len(r.Tokens))
	}
	// 140 token items, then the membership, the user's copy, the
	// organization's check and two audit items: 100 + 45.
	if diff := cmp.Diff([]bool{true, true}, stillMember); diff != "" {
		t.Errorf("member before each transaction (-want +got):\n%s", diff)
	}
	if _, err := e.store.Member(e.ctx, s.org.ID, m.UserID); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("Member after removal: %v, want not found", err)
	}
}
