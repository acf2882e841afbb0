package sqlite

import (
	"context"
	"database/sql"
	"strings"
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
// inserted add to spend, last-used, the daily rollups and the month spend
// of their organization, so a retried batch counts once.
func (s *Store) RecordUsage(ctx context.Context, records []kve.Usage) error {
	if len(records) == 0 {
		return nil
	}
	return s.inTx(ctx, "record usage", func(tx *sql.Tx) error {
		inserted, err := insertUsage(ctx, tx, records)
		if err != nil {
			return err
		}
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
		var roll rollups
		for i := range records {
			u := &records[i]
			if !inserted[u.RequestID] || u.TokenID == "" {
				continue // already counted, or a request no token was matched to
			}
			delete(inserted, u.RequestID) // a record repeated in the batch counts once
			k := tokenKey{u.OrgID, u.TokenID}
			if u.Forwarded() {
				lastUsed[k] = max(lastUsed[k], millis(u.At))
			} else {
				lastUsed[k] = max(lastUsed[k], 0) // spend and rollups still need the token's row
			}
			spend[daySpend{k, u.Day()}] += u.CostMicro
			roll.add(u)
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
		return roll.write(ctx, tx, func(orgID, tokenID string) bool { return known[tokenKey{orgID, tokenID}] })
	})
}

// insertUsage inserts records, those whose request id is stored already
// left alone, and returns the request ids it inserted.
func insertUsage(ctx context.Context, tx *sql.Tx, records []kve.Usage) (map[string]bool, error) {
	insert, err := tx.PrepareContext(ctx, `INSERT INTO usage (`+usageColumns+`)
		VALUES (?`+strings.Repeat(", ?", strings.Count(usageColumns, ","))+`)
		ON CONFLICT (request_id) DO NOTHING`)
	if err != nil {
		return nil, classify("record usage", "", err)
	}
	defer insert.Close()
	inserted := make(map[string]bool, len(records))
	for i := range records {
		res, err := insert.ExecContext(ctx, usageArgs(&records[i])...)
		if err != nil {
			return nil, classify("record usage", "", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, classify("record usage", "", err)
		} else if n > 0 {
			inserted[records[i].RequestID] = true
		}
	}
	return inserted, nil
}

// usageArgs are a record's values in the order of usageColumns.
func usageArgs(u *kve.Usage) []any {
	return []any{u.RequestID, u.OrgID, u.TokenID, u.UserID, millis(u.At),
		u.Env, u.Provider, u.Method, u.Path, u.Model, u.Status,
		int64(u.Duration), int64(u.Upstream), u.BytesIn, u.BytesOut,
		u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.ReasoningTokens, u.Estimated, u.CostMicro,
		u.ClientIP, u.Origin, u.ClientAborted, u.Reason}
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
