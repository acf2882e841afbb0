package sqlite

import (
	"context"
	"database/sql"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// CreateOrg implements store.Orgs: the organization, its Owner and the event
// in one transaction. The owner joins the new organization whatever
// owner.OrgID says.
func (s *Store) CreateOrg(ctx context.Context, o kve.Org, owner kve.Member, ev kve.Event) error {
	return s.inTx(ctx, "create org", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO orgs (`+orgColumns+`) VALUES (?, ?, ?, ?, ?)`,
			o.ID, o.Slug, o.Name, millis(o.CreatedAt), o.CreatedBy)
		if err != nil {
			return classify("create org", "an organization with this slug already exists", err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO members (`+memberColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			o.ID, owner.UserID, owner.Email, owner.Name, owner.Role, millis(owner.JoinedAt))
		if err != nil {
			return classify("add owner", "already a member", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

const orgColumns = `id, slug, name, created_at, created_by`

func scanOrg(row scanner) (kve.Org, error) {
	var o kve.Org
	var created int64
	if err := row.Scan(&o.ID, &o.Slug, &o.Name, &created, &o.CreatedBy); err != nil {
		return kve.Org{}, err
	}
	o.CreatedAt = fromMillis(created)
	return o, nil
}

// Org implements store.Orgs.
func (s *Store) Org(ctx context.Context, orgID string) (kve.Org, error) {
	o, err := scanOrg(s.read.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM orgs WHERE id = ? AND deleted_at = 0`, orgID))
	return o, classify("read org", "", err)
}

// OrgBySlug implements store.Orgs.
func (s *Store) OrgBySlug(ctx context.Context, slug string) (kve.Org, error) {
	o, err := scanOrg(s.read.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM orgs WHERE slug = ? AND deleted_at = 0`, slug))
	return o, classify("read org by slug", "", err)
}

// Memberships implements store.Orgs.
func (s *Store) Memberships(ctx context.Context, userID string) ([]kve.Membership, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT o.id, o.slug, o.name, o.created_at, o.created_by, m.role
		FROM members m JOIN orgs o ON o.id = m.org_id
		WHERE m.user_id = ? AND o.deleted_at = 0 ORDER BY m.joined_at, m.org_id`, userID)
	if err != nil {
		return nil, classify("list memberships", "", err)
	}
	out, err := collect(rows, func(row scanner) (kve.Membership, error) {
		var m kve.Membership
		var created int64
		if err := row.Scan(&m.Org.ID, &m.Org.Slug, &m.Org.Name, &created, &m.Org.CreatedBy, &m.Role); err != nil {
			return kve.Membership{}, err
		}
		m.Org.CreatedAt = fromMillis(created)
		return m, nil
	})
	return out, classify("list memberships", "", err)
}

const memberColumns = `org_id, user_id, email, name, role, joined_at`

func scanMember(row scanner) (kve.Member, error) {
	var m kve.Member
	var joined int64
	if err := row.Scan(&m.OrgID, &m.UserID, &m.Email, &m.Name, &m.Role, &joined); err != nil {
		return kve.Member{}, err
	}
	m.JoinedAt = fromMillis(joined)
	return m, nil
}

// Member implements store.Orgs.
func (s *Store) Member(ctx context.Context, orgID, userID string) (kve.Member, error) {
	m, err := scanMember(s.read.QueryRowContext(ctx, `SELECT `+memberColumns+` FROM members
		WHERE org_id = ? AND user_id = ?`, orgID, userID))
	return m, classify("read member", "", err)
}

// Members implements store.Orgs.
func (s *Store) Members(ctx context.Context, orgID string) ([]kve.Member, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+memberColumns+` FROM members
		WHERE org_id = ? ORDER BY joined_at, user_id`, orgID)
	if err != nil {
		return nil, classify("list members", "", err)
	}
	out, err := collect(rows, scanMember)
	return out, classify("list members", "", err)
}

// RenameOrg implements store.Orgs.
func (s *Store) RenameOrg(ctx context.Context, orgID, name string, ev kve.Event) (kve.Org, error) {
	var o kve.Org
	err := s.inTx(ctx, "rename org", func(tx *sql.Tx) error {
		var err error
		if o, err = liveOrg(ctx, tx, orgID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE orgs SET name = ? WHERE id = ?`, name, orgID); err != nil {
			return classify("rename org", "", err)
		}
		o.Name = name
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return kve.Org{}, err
	}
	return o, nil
}

// DeleteOrg implements store.Orgs: the organization's row stays, marked
// deleted, so that its slug stays taken and its audit log keeps its
// subject; everything else of it is revoked or removed in one transaction.
func (s *Store) DeleteOrg(ctx context.Context, orgID string, ev kve.Event) (store.Deletion, error) {
	var d store.Deletion
	at := millis(ev.At)
	err := s.inTx(ctx, "delete org", func(tx *sql.Tx) error {
		if _, err := liveOrg(ctx, tx, orgID); err != nil {
			return err
		}
		var err error
		if d.Tokens, err = revokeTokens(ctx, tx, at, `org_id = ? AND revoked_at = 0`, orgID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE org_id = ? ORDER BY name`, orgID)
		if err != nil {
			return classify("list keys", "", err)
		}
		if d.Keys, err = collect(rows, scanKey); err != nil {
			return classify("list keys", "", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE orgs SET deleted_at = ? WHERE id = ?`, max(at, 1), orgID); err != nil {
			return classify("delete org", "", err)
		}
		for _, q := range []string{
			`DELETE FROM keys WHERE org_id = ?`,
			`DELETE FROM members WHERE org_id = ?`,
			`DELETE FROM invites WHERE org_id = ?`,
			`DELETE FROM sessions WHERE org_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, orgID); err != nil {
				return classify("delete org", "", err)
			}
		}
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return store.Deletion{}, err
	}
	return d, nil
}

// revokeTokens revokes the tokens that where (a condition over tokens)
// selects, at unix milliseconds at, and returns their ids, oldest first.
func revokeTokens(ctx context.Context, tx *sql.Tx, at int64, where string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM tokens WHERE `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, classify("list tokens", "", err)
	}
	ids, err := collect(rows, func(row scanner) (string, error) {
		var id string
		err := row.Scan(&id)
		return id, err
	})
	if err != nil {
		return nil, classify("list tokens", "", err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = ?, updated_at = ?, version = version + 1 WHERE `+where,
		append([]any{max(at, 1), max(at, 1)}, args...)...)
	return ids, classify("revoke tokens", "", err)
}
