package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// keyRef is how a token's key snapshot is stored. kve.KeyRef hides Secret and
// Version from JSON (they must not reach API responses), but the store must
// keep the secret name; the version has a column of its own because
// RotateKey rewrites it.
type keyRef struct {
	Name     string   `json:"name"`
	Provider string   `json:"provider"`
	Upstream string   `json:"upstream"`
	Secret   string   `json:"secret"`
	Auth     kve.Auth `json:"auth,omitzero"`
}

const tokenColumns = `id, org_id, name, kind, env, owner_id, hint, hash, sealed,
	key_id, key_version, key_ref, policy,
	created_by, created_at, updated_at, expires_at, revoked_at, last_used, version,
	alerts, auto_suspend, suspended_at, suspension`

// tokenByHashQuery is the proxy's lookup: the token by its unique hash and,
// in the same read, its spend for the UTC day passed as ?2.
const tokenByHashQuery = `SELECT ` + tokenColumns + `, coalesce(s.micro, 0)
	FROM tokens LEFT JOIN spend s ON s.token_id = tokens.id AND s.day = ?2
	WHERE tokens.hash = ?1`

// tokenRow holds the encoded columns of a token.
type tokenRow struct {
	keyRef, policy []byte
}

func encodeToken(t *kve.Token) (tokenRow, error) {
	ref, err := json.Marshal(keyRef{Name: t.Key.Name, Provider: t.Key.Provider, Upstream: t.Key.Upstream,
		Secret: t.Key.Secret, Auth: t.Key.Auth})
	if err != nil {
		return tokenRow{}, fmt.Errorf("encode key reference: %w", err)
	}
	policy, err := json.Marshal(t.Policy)
	if err != nil {
		return tokenRow{}, fmt.Errorf("encode policy: %w", err)
	}
	return tokenRow{keyRef: ref, policy: policy}, nil
}

// scanToken reads tokenColumns, then any extra destinations.
func scanToken(row scanner, extra ...any) (kve.Token, error) {
	var t kve.Token
	var ref keyRef
	var refJSON, policyJSON []byte
	var created, updated, expires, revoked, used, suspended int64
	dest := append([]any{&t.ID, &t.OrgID, &t.Name, &t.Kind, &t.Env, &t.OwnerID, &t.Hint, &t.Hash, &t.Sealed,
		&t.Key.ID, &t.Key.Version, &refJSON, &policyJSON,
		&t.CreatedBy, &created, &updated, &expires, &revoked, &used, &t.Version,
		&t.Alerts, &t.AutoSuspend, &suspended, &t.Suspension}, extra...)
	if err := row.Scan(dest...); err != nil {
		return kve.Token{}, err
	}
	if err := json.Unmarshal(refJSON, &ref); err != nil {
		return kve.Token{}, fmt.Errorf("decode key reference of token %s: %w", t.ID, err)
	}
	if err := json.Unmarshal(policyJSON, &t.Policy); err != nil {
		return kve.Token{}, fmt.Errorf("decode policy of token %s: %w", t.ID, err)
	}
	t.Key.Name, t.Key.Provider, t.Key.Upstream, t.Key.Secret, t.Key.Auth = ref.Name, ref.Provider, ref.Upstream, ref.Secret, ref.Auth
	t.CreatedAt, t.UpdatedAt, t.ExpiresAt = fromMillis(created), fromMillis(updated), fromMillis(expires)
	t.RevokedAt, t.LastUsed, t.SuspendedAt = fromMillis(revoked), fromMillis(used), fromMillis(suspended)
	return t, nil
}

// CreateToken implements store.Tokens. The stored version starts at 1. The
// organization must not be deleted, and a personal token's owner must be a
// member: both are read in the write transaction, which no removal can
// interleave with.
func (s *Store) CreateToken(ctx context.Context, t kve.Token, ev kve.Event) error {
	row, err := encodeToken(&t)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return s.inTx(ctx, "create token", func(tx *sql.Tx) error {
		if _, err := liveOrg(ctx, tx, t.OrgID); err != nil {
			return err
		}
		if t.Kind == kve.TokenPersonal {
			if _, err := txMember(ctx, tx, t.OrgID, t.OwnerID); err != nil {
				if kve.KindOf(err) == kve.KindNotFound {
					return errTokenOwner
				}
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (`+tokenColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)`,
			t.ID, t.OrgID, t.Name, t.Kind, t.Env, t.OwnerID, t.Hint, t.Hash, t.Sealed,
			t.Key.ID, t.Key.Version, string(row.keyRef), string(row.policy),
			t.CreatedBy, millis(t.CreatedAt), millis(t.UpdatedAt), millis(t.ExpiresAt), millis(t.RevokedAt), millis(t.LastUsed),
			t.Alerts, t.AutoSuspend, millis(t.SuspendedAt), t.Suspension)
		if err != nil {
			return classify("create token", "token already exists", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

// Token implements store.Tokens. Spend is left empty: only the proxy's
// lookup reads it.
func (s *Store) Token(ctx context.Context, orgID, id string) (kve.Token, error) {
	t, err := scanToken(s.read.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens
		WHERE org_id = ? AND id = ?`, orgID, id))
	return t, classify("read token", "", err)
}

// TokenByHash implements store.Tokens with one indexed query on a statement
// prepared at Open. WAL readers see every committed write, so a revocation
// holds on the next call.
//
// Answers are kept in memory while nothing was committed through this Store
// since they were read (a revocation here holds on the very next request),
// and for at most tokenCacheTTL: another process writing the same file is
// seen within that bound (STYLE: any token cache stays under the 1 s
// revocation bound).
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (kve.Token, error) {
	day := s.now().UTC().Format(time.DateOnly)
	gen := s.gen.Load() // before the read: a commit during it invalidates what it reads
	now := time.Now()
	s.tokMu.RLock()
	c, ok := s.tokens[string(hash)]
	s.tokMu.RUnlock()
	if ok && c.gen == gen && c.tok.Spend.Day == day && now.Sub(c.at) < tokenCacheTTL {
		return c.tok, nil
	}
	t, err := s.tokenByHashRead(ctx, hash, day)
	if err == nil {
		s.tokMu.Lock()
		if s.tokens == nil || len(s.tokens) >= 4096 {
			s.tokens = map[string]cachedToken{}
		}
		s.tokens[string(hash)] = cachedToken{gen: gen, at: now, tok: t}
		s.tokMu.Unlock()
	}
	return t, err
}

// tokenCacheTTL bounds how stale a cached lookup can be for writes made by
// another process on the same file.
const tokenCacheTTL = time.Second

// cachedToken is a lookup's answer at a store generation.
type cachedToken struct {
	gen uint64
	at  time.Time
	tok kve.Token
}

func (s *Store) tokenByHashRead(ctx context.Context, hash []byte, day string) (kve.Token, error) {
	var micro int64
	t, err := scanToken(s.tokenByHash.QueryRowContext(ctx, hash, day), &micro)
	if err != nil {
		return kve.Token{}, classify("read token by hash", "", err)
	}
	t.Spend = kve.Spend{Day: day, Micro: micro}
	return t, nil
}

// Tokens implements store.Tokens: newest first by (created_at, id).
func (s *Store) Tokens(ctx context.Context, orgID string, f store.TokenFilter) (store.Page[kve.Token], error) {
	after, err := parseCursor(f.Cursor)
	if err != nil {
		return store.Page[kve.Token]{}, err
	}
	limit := store.Limit(f.Limit)
	rows, err := s.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens
		WHERE org_id = ?1
		  AND (?2 = '' OR kind = ?3 OR (kind = ?4 AND owner_id = ?2))
		  AND (?5 = '' OR key_id = ?5)
		  AND (?6 = '' OR env = ?6)
		  AND (?7 OR revoked_at = 0)
		  AND (created_at, id) < (?8, ?9)
		ORDER BY created_at DESC, id DESC LIMIT ?10`,
		orgID, f.VisibleTo, kve.TokenShared, kve.TokenPersonal, f.KeyID, f.Env, f.IncludeRevoked,
		after.at, after.id, limit+1)
	if err != nil {
		return store.Page[kve.Token]{}, classify("list tokens", "", err)
	}
	items, err := collect(rows, func(row scanner) (kve.Token, error) { return scanToken(row) })
	if err != nil {
		return store.Page[kve.Token]{}, classify("list tokens", "", err)
	}
	return page(items, limit, func(t *kve.Token) cursor { return cursor{millis(t.CreatedAt), t.ID} }), nil
}

// UnusedTokens implements store.UnusedLister with one query for the page
// and one for the count: the audit of an organization of 10,000 tokens
// decodes only the tokens it shows.
func (s *Store) UnusedTokens(ctx context.Context, orgID string, before, now time.Time, limit int) ([]kve.Token, int, error) {
	cutoff := before.UnixMilli() // last_used, in whole ms, is before before
	if before.Sub(time.UnixMilli(cutoff)) > 0 {
		cutoff++
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	const where = `WHERE org_id = ?1 AND revoked_at = 0 AND (expires_at = 0 OR expires_at > ?2) AND last_used < ?3`
	var total int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM tokens `+where, orgID, now.UnixMilli(), cutoff).Scan(&total); err != nil {
		return nil, 0, classify("list unused tokens", "", err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens `+where+`
		ORDER BY last_used, id LIMIT ?4`, orgID, now.UnixMilli(), cutoff, limit)
	if err != nil {
		return nil, 0, classify("list unused tokens", "", err)
	}
	items, err := collect(rows, func(row scanner) (kve.Token, error) {
		t, err := scanToken(row)
		t.Sealed = nil
		return t, err
	})
	if err != nil {
		return nil, 0, classify("list unused tokens", "", err)
	}
	return items, total, nil
}

// UpdateToken implements store.Tokens. The read, fn and the write run in one
// write transaction, which no other writer can interleave with, so fn sees
// the current token and never needs a retry; the version condition on the
// write still guards the rule. fn must not call the store's write methods.
// LastUsed belongs to RecordUsage and is not written here.
func (s *Store) UpdateToken(ctx context.Context, orgID, id string, fn func(*kve.Token) error, ev kve.Event) (kve.Token, error) {
	var out kve.Token
	err := s.inTx(ctx, "update token", func(tx *sql.Tx) error {
		cur, err := scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens
			WHERE org_id = ? AND id = ?`, orgID, id))
		if err != nil {
			return classify("update token", "", err)
		}
		hash, sealed := bytes.Clone(cur.Hash), bytes.Clone(cur.Sealed)
		next := cur
		if err := fn(&next); err != nil {
			return err
		}
		if next.ID != cur.ID || next.OrgID != cur.OrgID || !bytes.Equal(next.Hash, hash) || !bytes.Equal(next.Sealed, sealed) {
			return fmt.Errorf("update token %s: fn changed the id, organization, hash or sealed value", id)
		}
		row, err := encodeToken(&next)
		if err != nil {
			return fmt.Errorf("update token: %w", err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET
				name = ?, kind = ?, env = ?, owner_id = ?, hint = ?,
				key_id = ?, key_version = ?, key_ref = ?, policy = ?,
				created_by = ?, created_at = ?, updated_at = ?, expires_at = ?, revoked_at = ?,
				alerts = ?, auto_suspend = ?, suspended_at = ?, suspension = ?,
				version = version + 1
			WHERE org_id = ? AND id = ? AND version = ?`,
			next.Name, next.Kind, next.Env, next.OwnerID, next.Hint,
			next.Key.ID, next.Key.Version, string(row.keyRef), string(row.policy),
			next.CreatedBy, millis(next.CreatedAt), millis(next.UpdatedAt), millis(next.ExpiresAt), millis(next.RevokedAt),
			next.Alerts, next.AutoSuspend, millis(next.SuspendedAt), next.Suspension,
			orgID, id, cur.Version)
		if err != nil {
			return classify("update token", "", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return kve.Wrap(kve.KindConflict, "conflict", "the token changed meanwhile; try again",
				fmt.Errorf("update token %s: version %d no longer current (%v)", id, cur.Version, err))
		}
		if err := insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		next.Version, next.LastUsed, next.Spend = cur.Version+1, cur.LastUsed, kve.Spend{}
		out = next
		return nil
	})
	if err != nil {
		return kve.Token{}, err
	}
	return out, nil
}
