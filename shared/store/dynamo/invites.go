package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// An invite is two items with the same attributes, always written together:
// org#<org>/invite#<id> for the organization's list, and
// invite#<hex HMAC>/invite, the lookup by code. Both expire (TTL) a week
// after the invite does, so that a late click still finds it and is told it
// expired. Accepting or revoking an invite marks both items; renewing it
// (a resend) replaces the lookup item.

// inviteGrace is how long an invite's items outlive its expiry.
const inviteGrace = 7 * 24 * time.Hour

func inviteItem(inv *store.Invite) item {
	it := item{}
	it.setStr("id", inv.ID)
	it.setStr("org_id", inv.OrgID)
	it.setStr("email", inv.Email)
	it.setStr("role", string(inv.Role))
	it.setBytes("hash", inv.Hash)
	it.setStr("invited_by", inv.InvitedBy)
	it.setTime("created_at", inv.CreatedAt)
	it.setTime("expires_at", inv.ExpiresAt)
	it.setTime("accepted_at", inv.AcceptedAt)
	it.setStr("accepted_by", inv.AcceptedBy)
	it.setTime("revoked_at", inv.RevokedAt)
	it[AttrTTL] = epoch(inv.ExpiresAt.Add(inviteGrace))
	return it
}

func decodeInvite(it item) (store.Invite, error) {
	f := fields{it: it}
	inv := store.Invite{
		ID:         f.str("id"),
		OrgID:      f.str("org_id"),
		Email:      f.str("email"),
		Role:       kve.Role(f.str("role")),
		Hash:       f.bytes("hash"),
		InvitedBy:  f.str("invited_by"),
		CreatedAt:  f.time("created_at"),
		ExpiresAt:  f.time("expires_at"),
		AcceptedAt: f.time("accepted_at"),
		AcceptedBy: f.str("accepted_by"),
		RevokedAt:  f.time("revoked_at"),
	}
	if f.err != nil {
		return store.Invite{}, fmt.Errorf("decode invite: %w", f.err)
	}
	return inv, nil
}

var (
	errInviteExists  = kve.Errorf(kve.KindConflict, "invite_exists", "an invite with this id or code exists")
	errInviteClosed  = kve.Errorf(kve.KindGone, "invite_closed", "this invite was accepted, revoked or has expired")
	errNoInvite      = kve.Errorf(kve.KindNotFound, "not_found", "invite not found")
	errAlreadyMember = kve.Errorf(kve.KindConflict, "already_member", "already a member of this organization")
	errInviteEmail   = kve.Errorf(kve.KindForbidden, "wrong_account", "this invite is for another email address")
)

// isOpen is the condition that an invite item is neither accepted nor revoked.
func isOpen(e *expr) string {
	return e.absent("accepted_at") + " AND " + e.absent("revoked_at")
}

// CreateInvite implements store.Invites.
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite, ev kve.Event) error {
	if inv.ID == "" || inv.OrgID == "" || len(inv.Hash) == 0 {
		return kve.Errorf(kve.KindInvalid, "invalid_invite", "an invite needs an id, an organization and a hash")
	}
	audit, err := s.auditWrites(inv.OrgID, ev)
	if err != nil {
		return fmt.Errorf("create invite: %w", err)
	}
	it := inviteItem(&inv)
	ws := []write{
		s.create(it.with(orgPK(inv.OrgID), prefixInvite+inv.ID), errInviteExists),
		s.create(it.with(inviteHashPK(inv.Hash), skInvite), errInviteExists),
		s.orgGuard(inv.OrgID, true, 0),
	}
	if err := s.transact(ctx, append(ws, audit...)...); err != nil {
		return fmt.Errorf("create invite: %w", err)
	}
	return nil
}

// Invite implements store.Invites.
func (s *Store) Invite(ctx context.Context, orgID, id string) (store.Invite, error) {
	it, err := s.get(ctx, orgPK(orgID), prefixInvite+id)
	if err != nil {
		return store.Invite{}, fmt.Errorf("read invite: %w", err)
	}
	return decodeInvite(it)
}

// InviteByHash implements store.Invites.
func (s *Store) InviteByHash(ctx context.Context, hash []byte) (store.Invite, error) {
	if len(hash) == 0 {
		return store.Invite{}, fmt.Errorf("read invite by hash: %w", kve.ErrNotFound)
	}
	it, err := s.get(ctx, inviteHashPK(hash), skInvite)
	if err != nil {
		return store.Invite{}, fmt.Errorf("read invite by hash: %w", err)
	}
	return decodeInvite(it)
}

// Invites implements store.Invites. Ids sort by creation time, so the
// partition read backwards is newest first.
func (s *Store) Invites(ctx context.Context, orgID string) ([]store.Invite, error) {
	q := newQuery(orgPK(orgID)).prefix(prefixInvite)
	q.backward = true
	q.where(q.absent("accepted_at"))
	q.where(q.absent("revoked_at"))
	items, err := s.all(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list invites: %w", err)
	}
	out := make([]store.Invite, 0, len(items))
	for _, it := range items {
		inv, err := decodeInvite(it)
		if err != nil {
			return nil, fmt.Errorf("list invites: %w", err)
		}
		out = append(out, inv)
	}
	return out, nil
}

// openInvite reads an invite of orgID that is neither accepted nor revoked.
func (s *Store) openInvite(ctx context.Context, orgID, id string) (store.Invite, error) {
	it, err := s.get(ctx, orgPK(orgID), prefixInvite+id)
	if errors.Is(err, kve.ErrNotFound) {
		return store.Invite{}, errNoInvite
	}
	if err != nil {
		return store.Invite{}, err
	}
	inv, err := decodeInvite(it)
	if err != nil {
		return store.Invite{}, err
	}
	if !inv.AcceptedAt.IsZero() || !inv.RevokedAt.IsZero() {
		return store.Invite{}, errInviteClosed
	}
	return inv, nil
}

// RenewInvite implements store.Invites: the lookup item of the old code is
// deleted and one for the new code created, in the transaction that
// updates the organization's item on condition that nobody accepted,
// revoked or renewed the invite meanwhile.
func (s *Store) RenewInvite(ctx context.Context, orgID, id string, hash []byte, expires time.Time, ev kve.Event) (store.Invite, error) {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return store.Invite{}, fmt.Errorf("renew invite: %w", err)
	}
	var inv store.Invite
	err = s.retryStale(ctx, func() error {
		var err error
		if inv, err = s.openInvite(ctx, orgID, id); err != nil {
			return err
		}
		old := inv.Hash
		inv.Hash, inv.ExpiresAt = hash, expires
		it := inviteItem(&inv)
		var d, u expr
		upd := "SET " + u.name("hash") + " = " + u.value(bin(hash)) +
			", " + u.name("expires_at") + " = " + u.value(stamp(expires)) +
			", " + u.name(AttrTTL) + " = " + u.value(it[AttrTTL])
		w := s.update(primaryKey(orgPK(orgID), prefixInvite+id), &u, upd,
			u.name("hash")+" = "+u.value(bin(old))+" AND "+isOpen(&u), nil)
		w.op.Update.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
		w.failWith = closedOrStale
		ws := []write{
			w,
			s.remove(primaryKey(inviteHashPK(old), skInvite), &d, d.exists()+" AND "+isOpen(&d), errStale),
			s.create(it.with(inviteHashPK(hash), skInvite), errInviteExists),
		}
		return s.transact(ctx, append(ws, audit...)...)
	})
	if err != nil {
		return store.Invite{}, fmt.Errorf("renew invite: %w", err)
	}
	return inv, nil
}

// closedOrStale explains a failed condition on an invite item that was
// open when read: accepted or revoked since, or renewed (read it again).
func closedOrStale(old item) error {
	inv, err := decodeInvite(old)
	if err != nil || len(old) == 0 {
		return errNoInvite
	}
	if !inv.AcceptedAt.IsZero() || !inv.RevokedAt.IsZero() {
		return errInviteClosed
	}
	return errStale
}

// RevokeInvite implements store.Invites.
func (s *Store) RevokeInvite(ctx context.Context, orgID, id string, at time.Time, ev kve.Event) error {
	audit, err := s.auditWrites(orgID, ev)
	if err != nil {
		return fmt.Errorf("revoke invite: %w", err)
	}
	err = s.retryStale(ctx, func() error {
		inv, err := s.openInvite(ctx, orgID, id)
		if err != nil {
			return err
		}
		var ws []write
		for _, k := range []item{primaryKey(orgPK(orgID), prefixInvite+id), primaryKey(inviteHashPK(inv.Hash), skInvite)} {
			var e expr
			w := s.update(k, &e, "SET "+e.name("revoked_at")+" = "+e.value(stamp(at)),
				e.name("hash")+" = "+e.value(bin(inv.Hash))+" AND "+isOpen(&e), nil)
			w.op.Update.ReturnValuesOnConditionCheckFailure = "ALL_OLD"
			w.failWith = closedOrStale
			ws = append(ws, w)
		}
		return s.transact(ctx, append(ws, audit...)...)
	})
	if err != nil {
		return fmt.Errorf("revoke invite: %w", err)
	}
	return nil
}

// AcceptInvite implements store.Invites. Both invite items are marked
// accepted on condition that they are open and unexpired, in the
// transaction that creates the membership: of concurrent accepts one
// commits, and every other one either fails that condition or meets the
// winner's transaction, reads the invite again and finds it accepted.
func (s *Store) AcceptInvite(ctx context.Context, a store.Acceptance) (kve.Member, error) {
	if a.Session != nil {
		if err := validSession(a.Session); err != nil {
			return kve.Member{}, err
		}
	}
	var m kve.Member
	err := s.retryStale(ctx, func() error {
		var err error
		m, err = s.acceptInvite(ctx, a)
		return err
	})
	if err != nil {
		return kve.Member{}, fmt.Errorf("accept invite: %w", err)
	}
	return m, nil
}

func (s *Store) acceptInvite(ctx context.Context, a store.Acceptance) (kve.Member, error) {
	it, err := s.get(ctx, inviteHashPK(a.Hash), skInvite)
	if errors.Is(err, kve.ErrNotFound) {
		return kve.Member{}, errNoInvite
	}
	if err != nil {
		return kve.Member{}, err
	}
	inv, err := decodeInvite(it)
	if err != nil {
		return kve.Member{}, err
	}
	switch {
	case !inv.Open(a.At):
		return kve.Member{}, errInviteClosed
	case a.User.Email != inv.Email:
		return kve.Member{}, errInviteEmail
	}
	o, _, err := s.liveOrg(ctx, inv.OrgID)
	if err != nil {
		return kve.Member{}, err
	}
	audit, err := s.auditWrites(inv.OrgID, a.Event)
	if err != nil {
		return kve.Member{}, err
	}
	m := kve.Member{OrgID: inv.OrgID, UserID: a.User.ID, Email: a.User.Email, Name: a.User.Name,
		Role: inv.Role, JoinedAt: a.At.UTC()}
	var ws []write
	for _, k := range []item{primaryKey(inviteHashPK(a.Hash), skInvite), primaryKey(orgPK(inv.OrgID), prefixInvite+inv.ID)} {
		var e expr
		upd := "SET " + e.name("accepted_at") + " = " + e.value(stamp(a.At)) +
			", " + e.name("accepted_by") + " = " + e.value(str(a.User.ID))
		cond := e.name("hash") + " = " + e.value(bin(a.Hash)) + " AND " + isOpen(&e) +
			" AND " + e.name("expires_at") + " > " + e.value(stamp(a.At))
		ws = append(ws, s.update(k, &e, upd, cond, errInviteClosed))
	}
	ws = append(ws,
		s.create(memberItem(&m), errAlreadyMember),
		s.create(membershipItem(&o, &m), errAlreadyMember),
		s.orgGuard(inv.OrgID, true, ownerDelta("", m.Role)),
	)
	if a.NewUser {
		email := item{}
		email.setStr("user_id", a.User.ID)
		ws = append(ws,
			s.create(userItem(&a.User), errUserExists),
			s.create(email.with(emailPK(a.User.Email), skEmail), errUserExists))
	}
	if a.Session != nil {
		ws = append(ws, s.sessionWrites(a.Session)...)
	}
	if err := s.transact(ctx, append(ws, audit...)...); err != nil {
		return kve.Member{}, err
	}
	return m, nil
}
