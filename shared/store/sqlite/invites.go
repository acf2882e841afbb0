package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

const inviteColumns = `id, org_id, email, role, hash, invited_by, created_at, expires_at, accepted_at, accepted_by, revoked_at`

func scanInvite(row scanner) (store.Invite, error) {
	var inv store.Invite
	var created, expires, accepted, revoked int64
	if err := row.Scan(&inv.ID, &inv.OrgID, &inv.Email, &inv.Role, &inv.Hash, &inv.InvitedBy,
		&created, &expires, &accepted, &inv.AcceptedBy, &revoked); err != nil {
		return store.Invite{}, err
	}
	inv.CreatedAt, inv.ExpiresAt = fromMillis(created), fromMillis(expires)
	inv.AcceptedAt, inv.RevokedAt = fromMillis(accepted), fromMillis(revoked)
	return inv, nil
}

var (
	errInviteClosed   = kve.Errorf(kve.KindGone, "invite_closed", "this invite was accepted, revoked or has expired")
	errAlreadyMember  = kve.Errorf(kve.KindConflict, "already_member", "already a member of this organization")
	errInviteEmail    = kve.Errorf(kve.KindForbidden, "wrong_account", "this invite is for another email address")
	errNoInvite       = kve.Errorf(kve.KindNotFound, "not_found", "invite not found")
	errInviteConflict = "an invite with this id or code exists"
)

// CreateInvite implements store.Invites.
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite, ev kve.Event) error {
	return s.inTx(ctx, "create invite", func(tx *sql.Tx) error {
		if _, err := liveOrg(ctx, tx, inv.OrgID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO invites (`+inviteColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			inv.ID, inv.OrgID, inv.Email, inv.Role, inv.Hash, inv.InvitedBy,
			millis(inv.CreatedAt), millis(inv.ExpiresAt), millis(inv.AcceptedAt), inv.AcceptedBy, millis(inv.RevokedAt))
		if err != nil {
			return classify("create invite", errInviteConflict, err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

// Invite implements store.Invites.
func (s *Store) Invite(ctx context.Context, orgID, id string) (store.Invite, error) {
	inv, err := scanInvite(s.read.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM invites
		WHERE org_id = ? AND id = ?`, orgID, id))
	return inv, classify("read invite", "", err)
}

// InviteByHash implements store.Invites.
func (s *Store) InviteByHash(ctx context.Context, hash []byte) (store.Invite, error) {
	inv, err := scanInvite(s.read.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM invites WHERE hash = ?`, hash))
	return inv, classify("read invite by hash", "", err)
}

// Invites implements store.Invites.
func (s *Store) Invites(ctx context.Context, orgID string) ([]store.Invite, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+inviteColumns+` FROM invites
		WHERE org_id = ? AND accepted_at = 0 AND revoked_at = 0
		ORDER BY created_at DESC, id DESC`, orgID)
	if err != nil {
		return nil, classify("list invites", "", err)
	}
	out, err := collect(rows, scanInvite)
	return out, classify("list invites", "", err)
}

// openInvite reads an invite of orgID inside tx: KindNotFound when there is
// none, errInviteClosed when it was accepted or revoked.
func openInvite(ctx context.Context, tx *sql.Tx, orgID, id string) (store.Invite, error) {
	inv, err := scanInvite(tx.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM invites
		WHERE org_id = ? AND id = ?`, orgID, id))
	if err == sql.ErrNoRows {
		return store.Invite{}, errNoInvite
	}
	if err != nil {
		return store.Invite{}, classify("read invite", "", err)
	}
	if !inv.AcceptedAt.IsZero() || !inv.RevokedAt.IsZero() {
		return store.Invite{}, errInviteClosed
	}
	return inv, nil
}

// RenewInvite implements store.Invites.
func (s *Store) RenewInvite(ctx context.Context, orgID, id string, hash []byte, expires time.Time, ev kve.Event) (store.Invite, error) {
	var inv store.Invite
	err := s.inTx(ctx, "renew invite", func(tx *sql.Tx) error {
		var err error
		if inv, err = openInvite(ctx, tx, orgID, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE invites SET hash = ?, expires_at = ? WHERE org_id = ? AND id = ?`,
			hash, millis(expires), orgID, id)
		if err != nil {
			return classify("renew invite", errInviteConflict, err)
		}
		inv.Hash, inv.ExpiresAt = hash, expires
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return store.Invite{}, err
	}
	return inv, nil
}

// RevokeInvite implements store.Invites.
func (s *Store) RevokeInvite(ctx context.Context, orgID, id string, at time.Time, ev kve.Event) error {
	return s.inTx(ctx, "revoke invite", func(tx *sql.Tx) error {
		if _, err := openInvite(ctx, tx, orgID, id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE invites SET revoked_at = ? WHERE org_id = ? AND id = ?`, millis(at), orgID, id)
		if err != nil {
			return classify("revoke invite", "", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

// AcceptInvite implements store.Invites. The invite is read and closed in
// the same write transaction, which no other accept can interleave with:
// of concurrent accepts, the first to take the write lock wins and the
// others find the invite accepted.
func (s *Store) AcceptInvite(ctx context.Context, a store.Acceptance) (kve.Member, error) {
	var m kve.Member
	err := s.inTx(ctx, "accept invite", func(tx *sql.Tx) error {
		inv, err := scanInvite(tx.QueryRowContext(ctx, `SELECT `+inviteColumns+` FROM invites WHERE hash = ?`, a.Hash))
		if err == sql.ErrNoRows {
			return errNoInvite
		}
		if err != nil {
			return classify("read invite", "", err)
		}
		if !inv.Open(a.At) {
			return errInviteClosed
		}
		if a.User.Email != inv.Email {
			return errInviteEmail
		}
		if a.Event.OrgID != inv.OrgID {
			return errEventForOrg
		}
		if _, err := liveOrg(ctx, tx, inv.OrgID); err != nil {
			return err
		}
		if a.NewUser {
			if err := insertUser(ctx, tx, a.User); err != nil {
				return err
			}
		}
		m = kve.Member{OrgID: inv.OrgID, UserID: a.User.ID, Email: a.User.Email, Name: a.User.Name,
			Role: inv.Role, JoinedAt: a.At.UTC()}
		_, err = tx.ExecContext(ctx, `INSERT INTO members (`+memberColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			m.OrgID, m.UserID, m.Email, m.Name, m.Role, millis(m.JoinedAt))
		if err != nil {
			if kve.KindOf(classify("", "", err)) == kve.KindConflict {
				return errAlreadyMember
			}
			return classify("add member", "", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE invites SET accepted_at = ?, accepted_by = ? WHERE id = ?`,
			millis(a.At), a.User.ID, inv.ID)
		if err != nil {
			return classify("close invite", "", err)
		}
		if a.Session != nil {
			if err := insertSession(ctx, tx, *a.Session); err != nil {
				return err
			}
		}
		return insertEvent(ctx, tx, a.Event)
	})
	if err != nil {
		return kve.Member{}, err
	}
	return m, nil
}
