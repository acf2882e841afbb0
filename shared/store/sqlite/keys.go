package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

const keyColumns = `id, org_id, name, provider, upstream, auth, secret, version, last4, fingerprint,
	created_by, created_at, rotated_at`

func scanKey(row scanner) (kve.Key, error) {
	var k kve.Key
	var auth []byte
	var created, rotated int64
	if err := row.Scan(&k.ID, &k.OrgID, &k.Name, &k.Provider, &k.Upstream, &auth, &k.Secret, &k.Version,
		&k.Last4, &k.Fingerprint, &k.CreatedBy, &created, &rotated); err != nil {
		return kve.Key{}, err
	}
	if err := json.Unmarshal(auth, &k.Auth); err != nil {
		return kve.Key{}, fmt.Errorf("decode key auth: %w", err)
	}
	k.CreatedAt, k.RotatedAt = fromMillis(created), fromMillis(rotated)
	return k, nil
}

// CreateKey implements store.Keys.
func (s *Store) CreateKey(ctx context.Context, k kve.Key, ev kve.Event) error {
	auth, err := json.Marshal(k.Auth)
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	return s.inTx(ctx, "create key", func(tx *sql.Tx) error {
		if _, err := liveOrg(ctx, tx, k.OrgID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.OrgID, k.Name, k.Provider, k.Upstream, string(auth), k.Secret, k.Version, k.Last4, k.Fingerprint,
			k.CreatedBy, millis(k.CreatedAt), millis(k.RotatedAt))
		if err != nil {
			return classify("create key", "a key with this name already exists", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

// Key implements store.Keys.
func (s *Store) Key(ctx context.Context, orgID, name string) (kve.Key, error) {
	k, err := scanKey(s.read.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM keys
		WHERE org_id = ? AND name = ?`, orgID, name))
	return k, classify("read key", "", err)
}

// Keys implements store.Keys.
func (s *Store) Keys(ctx context.Context, orgID string) ([]kve.Key, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+keyColumns+` FROM keys WHERE org_id = ? ORDER BY name`, orgID)
	if err != nil {
		return nil, classify("list keys", "", err)
	}
	out, err := collect(rows, scanKey)
	return out, classify("list keys", "", err)
}

// RotateKey implements store.Keys: the key and every token that uses it move
// to the new version in one transaction, so no token is left on the old one.
func (s *Store) RotateKey(ctx context.Context, orgID, name string, r store.Rotation, ev kve.Event) (kve.Key, error) {
	var k kve.Key
	err := s.inTx(ctx, "rotate key", func(tx *sql.Tx) error {
		var err error
		k, err = scanKey(tx.QueryRowContext(ctx, `UPDATE keys
			SET version = ?, last4 = ?, fingerprint = ?, rotated_at = ?
			WHERE org_id = ? AND name = ?
			RETURNING `+keyColumns,
			r.Version, r.Last4, r.Fingerprint, millis(r.At), orgID, name))
		if err != nil {
			return classify("rotate key", "", err)
		}
		// version = version + 1 makes an UpdateToken that read the old key
		// version retry instead of writing it back.
		_, err = tx.ExecContext(ctx, `UPDATE tokens SET key_version = ?, version = version + 1
			WHERE org_id = ? AND key_id = ?`, r.Version, orgID, k.ID)
		if err != nil {
			return classify("move tokens to new key version", "", err)
		}
		return insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return kve.Key{}, err
	}
	return k, nil
}

// DeleteKey implements store.Keys.
func (s *Store) DeleteKey(ctx context.Context, orgID, name string, ev kve.Event) error {
	return s.inTx(ctx, "delete key", func(tx *sql.Tx) error {
		var id string
		var inUse bool
		err := tx.QueryRowContext(ctx, `SELECT k.id, EXISTS (
				SELECT 1 FROM tokens t WHERE t.org_id = k.org_id AND t.key_id = k.id AND t.revoked_at = 0)
			FROM keys k WHERE k.org_id = ? AND k.name = ?`, orgID, name).Scan(&id, &inUse)
		if err != nil {
			return classify("delete key", "", err)
		}
		if inUse {
			return kve.Errorf(kve.KindConflict, "key_in_use", "key %q is used by tokens that are not revoked; revoke them first", name)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM keys WHERE org_id = ? AND id = ?`, orgID, id); err != nil {
			return classify("delete key", "", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}
