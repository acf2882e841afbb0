package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// price is how a price override is stored (billing.prices, JSON).
type price struct {
	Provider string  `json:"provider"`
	Model    string  `json:"model"`
	Input    float64 `json:"input"`
	Cached   float64 `json:"cached"`
	Output   float64 `json:"output"`
}

// Billing implements store.Budgets.
func (s *Store) Billing(ctx context.Context, orgID string) (store.Billing, error) {
	b := store.Billing{OrgID: orgID}
	var prices []byte
	var updated int64
	err := s.read.QueryRowContext(ctx, `SELECT month_budget, contact, prices, updated_at FROM billing WHERE org_id = ?`,
		orgID).Scan(&b.MonthBudgetMicro, &b.Contact, &prices, &updated)
	switch {
	case err == sql.ErrNoRows:
		return b, nil
	case err != nil:
		return store.Billing{}, classify("read billing", "", err)
	}
	var list []price
	if err := json.Unmarshal(prices, &list); err != nil {
		return store.Billing{}, fmt.Errorf("read billing: decode prices: %w", err)
	}
	for _, p := range list {
		b.Prices = append(b.Prices, store.Price(p))
	}
	b.UpdatedAt = fromMillis(updated)
	return b, nil
}

// SetBilling implements store.Budgets.
func (s *Store) SetBilling(ctx context.Context, b store.Billing, ev kve.Event) error {
	if b.OrgID == "" || b.MonthBudgetMicro < 0 {
		return kve.Errorf(kve.KindInvalid, "invalid_billing", "billing settings need an organization and a budget of at least 0")
	}
	list := make([]price, 0, len(b.Prices))
	for _, p := range b.Prices {
		list = append(list, price(p))
	}
	prices, err := json.Marshal(list)
	if err != nil {
		return fmt.Errorf("set billing: encode prices: %w", err)
	}
	return s.inTx(ctx, "set billing", func(tx *sql.Tx) error {
		if _, err := liveOrg(ctx, tx, b.OrgID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO billing (org_id, month_budget, contact, prices, updated_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (org_id) DO UPDATE SET month_budget = excluded.month_budget, contact = excluded.contact,
				prices = excluded.prices, updated_at = excluded.updated_at`,
			b.OrgID, b.MonthBudgetMicro, b.Contact, string(prices), millis(b.UpdatedAt)); err != nil {
			return classify("set billing", "", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}

// Limits implements store.Budgets.
func (s *Store) Limits(ctx context.Context, orgID, tokenID string) (store.Limits, error) {
	var l store.Limits
	err := s.read.QueryRowContext(ctx, `SELECT tpm, month_budget FROM token_limits WHERE org_id = ? AND token_id = ?`,
		orgID, tokenID).Scan(&l.TPM, &l.MonthBudgetMicro)
	if err == sql.ErrNoRows {
		return store.Limits{}, nil
	}
	return l, classify("read limits", "", err)
}

// AllLimits implements store.Budgets.
func (s *Store) AllLimits(ctx context.Context, orgID string) (map[string]store.Limits, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT token_id, tpm, month_budget FROM token_limits
		WHERE org_id = ? AND (tpm > 0 OR month_budget > 0)`, orgID)
	if err != nil {
		return nil, classify("list limits", "", err)
	}
	type row struct {
		id string
		l  store.Limits
	}
	list, err := collect(rows, func(sc scanner) (row, error) {
		var r row
		return r, sc.Scan(&r.id, &r.l.TPM, &r.l.MonthBudgetMicro)
	})
	if err != nil {
		return nil, classify("list limits", "", err)
	}
	out := make(map[string]store.Limits, len(list))
	for _, r := range list {
		out[r.id] = r.l
	}
	return out, nil
}

// SetLimits implements store.Budgets.
func (s *Store) SetLimits(ctx context.Context, orgID, tokenID string, l store.Limits, ev kve.Event) error {
	if tokenID == "" || l.TPM < 0 || l.MonthBudgetMicro < 0 {
		return kve.Errorf(kve.KindInvalid, "invalid_limits", "limits need a token and values of at least 0")
	}
	return s.inTx(ctx, "set limits", func(tx *sql.Tx) error {
		if _, err := liveOrg(ctx, tx, orgID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO token_limits (org_id, token_id, tpm, month_budget) VALUES (?, ?, ?, ?)
			ON CONFLICT (org_id, token_id) DO UPDATE SET tpm = excluded.tpm, month_budget = excluded.month_budget`,
			orgID, tokenID, l.TPM, l.MonthBudgetMicro); err != nil {
			return classify("set limits", "", err)
		}
		return insertEvent(ctx, tx, ev)
	})
}
