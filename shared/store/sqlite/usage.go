package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

const usageColumns = `request_id, org_id, token_id, user_id, at, env, provider, method, path, model, status,
	duration_ns, upstream_ns, bytes_in, bytes_out,
	prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, estimated, cost_micro,
	client_ip, origin, client_aborted, reason`

// RecordUsage implements store.Usage in one transaction per batch. A record
// whose request id is already stored is skipped whole: only rows that were
// inserted add to spend and last-used, so a retried batch counts once.
func (s *Store) RecordUsage(ctx context.Context, records []kve.Usage) error {
	if len(records) == 0 {
		return nil
	}
	return s.inTx(ctx, "record usage", func(tx *sql.Tx) error {
		insert, err := tx.PrepareContext(ctx, `INSERT INTO usage (`+usageColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (request_id) DO NOTHING`)
		if err != nil {
			return classify("record usage", "", err)
		}
		defer insert.Close()
		// Last-used and spend are summed per token and day over the batch's
		// inserted records and written once each: a batch of one token's
		// requests costs two statements, not two per record.
		type tokenKey struct{ org, id string }
		type daySpend struct {
			tok tokenKey
			day string
		}
		lastUsed := map[tokenKey]int64{}
		spend := map[daySpend]int64{}
		for i := range records {
			u := &records[i]
			res, err := insert.ExecContext(ctx, u.RequestID, u.OrgID, u.TokenID, u.UserID, millis(u.At),
				u.Env, u.Provider, u.Method, u.Path, u.Model, u.Status,
				int64(u.Duration), int64(u.Upstream), u.BytesIn, u.BytesOut,
				u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.ReasoningTokens, u.Estimated, u.CostMicro,
				u.ClientIP, u.Origin, u.ClientAborted, u.Reason)
			if err != nil {
				return classify("record usage", "", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return classify("record usage", "", err)
			} else if n == 0 || u.TokenID == "" {
				continue // already counted, or a request no token was matched to
			}
			k := tokenKey{u.OrgID, u.TokenID}
			lastUsed[k] = max(lastUsed[k], millis(u.At))
			spend[daySpend{k, u.Day()}] += u.CostMicro
		}
		if len(lastUsed) == 0 {
			return nil
		}
		bump, err := tx.PrepareContext(ctx, `UPDATE tokens SET last_used = max(last_used, ?)
			WHERE org_id = ? AND id = ?`)
		if err != nil {
			return classify("bump token last used", "", err)
		}
		defer bump.Close()
		add, err := tx.PrepareContext(ctx, `INSERT INTO spend (token_id, day, micro) VALUES (?, ?, ?)
			ON CONFLICT (token_id, day) DO UPDATE SET micro = micro + excluded.micro`)
		if err != nil {
			return classify("add spend", "", err)
		}
		defer add.Close()
		known := map[tokenKey]bool{}
		for k, at := range lastUsed {
			res, err := bump.ExecContext(ctx, at, k.org, k.id)
			if err != nil {
				return classify("bump token last used", "", err)
			}
			// Spend is only counted for a token of the record's organization.
			n, err := res.RowsAffected()
			if err != nil {
				return classify("bump token last used", "", err)
			}
			known[k] = n > 0
		}
		for k, micro := range spend {
			if !known[k.tok] {
				continue
			}
			if _, err := add.ExecContext(ctx, k.tok.id, k.day, micro); err != nil {
				return classify("add spend", "", err)
			}
		}
		return nil
	})
}

func scanUsage(row scanner) (kve.Usage, error) {
	var u kve.Usage
	var at, duration, upstream int64
	if err := row.Scan(&u.RequestID, &u.OrgID, &u.TokenID, &u.UserID, &at, &u.Env, &u.Provider, &u.Method,
		&u.Path, &u.Model, &u.Status, &duration, &upstream, &u.BytesIn, &u.BytesOut,
		&u.PromptTokens, &u.CompletionTokens, &u.CachedTokens, &u.ReasoningTokens, &u.Estimated, &u.CostMicro,
		&u.ClientIP, &u.Origin, &u.ClientAborted, &u.Reason); err != nil {
		return kve.Usage{}, err
	}
	u.At, u.Duration, u.Upstream = fromMillis(at), time.Duration(duration), time.Duration(upstream)
	return u, nil
}

// UsageRecords implements store.Usage: newest first by (at, request id);
// Since is inclusive.
func (s *Store) UsageRecords(ctx context.Context, orgID string, f store.UsageFilter) (store.Page[kve.Usage], error) {
	after, err := parseCursor(f.Cursor)
	if err != nil {
		return store.Page[kve.Usage]{}, err
	}
	limit := store.Limit(f.Limit)
	rows, err := s.read.QueryContext(ctx, `SELECT `+usageColumns+` FROM usage
		WHERE org_id = ?1
		  AND (?2 = '' OR token_id = ?2)
		  AND (?3 = '' OR user_id = ?3)
		  AND at >= ?4
		  AND (at, request_id) < (?5, ?6)
		ORDER BY at DESC, request_id DESC LIMIT ?7`,
		orgID, f.TokenID, f.UserID, millis(f.Since), after.at, after.id, limit+1)
	if err != nil {
		return store.Page[kve.Usage]{}, classify("list usage", "", err)
	}
	items, err := collect(rows, scanUsage)
	if err != nil {
		return store.Page[kve.Usage]{}, classify("list usage", "", err)
	}
	return page(items, limit, func(u *kve.Usage) cursor { return cursor{millis(u.At), u.RequestID} }), nil
}
