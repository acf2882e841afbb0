package sqlite

import (
	"context"
	"database/sql"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Organization changes run in one write transaction each; the single write
// connection serializes them, so a check made inside one (the number of
// Owners, whether the organization still exists) holds until it commits.

var (
	errNoOrg       = kve.Errorf(kve.KindNotFound, "not_found", "organization not found")
	errLastOwner   = kve.Errorf(kve.KindConflict, "last_owner", "an organization keeps at least one owner: make another member owner first")
	errNotMember   = kve.Errorf(kve.KindNotFound, "not_found", "member not found")
	errTokenOwner  = kve.Errorf(kve.KindNotFound, "not_found", "the personal token's owner is not a member of the organization")
	errEventForOrg = kve.Errorf(kve.KindInvalid, "invalid_event", "the audit event belongs to another organization")
)

// liveOrg reads an organization that exists and is not deleted, inside tx.
func liveOrg(ctx context.Context, tx *sql.Tx, orgID string) (kve.Org, error) {
	o, err := scanOrg(tx.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM orgs WHERE id = ? AND deleted_at = 0`, orgID))
	if err == sql.ErrNoRows {
		return kve.Org{}, errNoOrg
	}
	return o, classify("read org", "", err)
}

func txMember(ctx context.Context, tx *sql.Tx, orgID, userID string) (kve.Member, error) {
	m, err := scanMember(tx.QueryRowContext(ctx, `SELECT `+memberColumns+` FROM members
		WHERE org_id = ? AND user_id = ?`, orgID, userID))
	if err == sql.ErrNoRows {
		return kve.Member{}, errNotMember
	}
	return m, classify("read member", "", err)
}

// keepsOwner fails with errLastOwner when m is the organization's only Owner.
func keepsOwner(ctx context.Context, tx *sql.Tx, m kve.Member) error {
	if m.Role != kve.RoleOwner {
		return nil
	}
	var owners int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE org_id = ? AND role = ?`,
		m.OrgID, kve.RoleOwner).Scan(&owners)
	if err != nil {
		return classify("count owners", "", err)
	}
	if owners <= 1 {
		return errLastOwner
	}
	return nil
}

// ChangeRole implements store.Orgs.
func (s *Store) ChangeRole(ctx context.Context, orgID, userID string, role kve.Role, ev kve.Event) (kve.Member, error) {
	var m kve.Member
	err := s.inTx(ctx, "change role", func(tx *sql.Tx) error {
		if _, err := liveOrg(ctx, tx, orgID); err != nil {
			return err
		}
		var err error
		if m, err = txMember(ctx, tx, orgID, userID); err != nil {
			return err
		}
		if role != kve.RoleOwner {
			if err := keepsOwner(ctx, tx, m); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE members SET role = ? WHERE org_id = ? AND user_id = ?`,
			role, orgID, userID); err != nil {
			return classify("change role", "", err)
		}
		m.Role = role
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return kve.Member{}, err
	}
	return m, nil
}

// RemoveMember implements store.Orgs: the membership, the member's personal
// tokens, their sessions and the event in one transaction.
func (s *Store) RemoveMember(ctx context.Context, orgID, userID string, ev kve.Event) (store.Removal, error) {
	var r store.Removal
	err := s.inTx(ctx, "remove member", func(tx *sql.Tx) error {
		if _, err := liveOrg(ctx, tx, orgID); err != nil {
			return err
		}
		var err error
		if r.Member, err = txMember(ctx, tx, orgID, userID); err != nil {
			return err
		}
		if err := keepsOwner(ctx, tx, r.Member); err != nil {
			return err
		}
		r.Tokens, err = revokeTokens(ctx, tx, millis(ev.At), `org_id = ? AND owner_id = ? AND kind = ? AND revoked_at = 0`,
			orgID, userID, kve.TokenPersonal)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM members WHERE org_id = ? AND user_id = ?`, orgID, userID); err != nil {
			return classify("remove member", "", err)
		}
		var elsewhere bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM members WHERE user_id = ?)`, userID).Scan(&elsewhere); err != nil {
			return classify("read memberships", "", err)
		}
		// Sessions limited to this organization end; when it was the
		// member's last one, every session of theirs does.
		q, args := `DELETE FROM sessions WHERE user_id = ?`, []any{userID}
		if elsewhere {
			q, args = q+` AND org_id = ?`, append(args, orgID)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return classify("end sessions", "", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return classify("end sessions", "", err)
		}
		r.Sessions = int(n)
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return store.Removal{}, err
	}
	return r, nil
}
