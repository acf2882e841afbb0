package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/keyvault-edge/kve/shared/store"
)

var _ store.Outbox = (*Store)(nil)

const deliveryColumns = `id, org_id, subscription_id, subject, body, attempts, next_at, created_at, last_error`

func scanDelivery(row scanner) (store.Delivery, error) {
	var d store.Delivery
	var next, created int64
	if err := row.Scan(&d.ID, &d.OrgID, &d.SubscriptionID, &d.Subject, &d.Body, &d.Attempts, &next, &created,
		&d.LastError); err != nil {
		return store.Delivery{}, err
	}
	d.NextAt, d.CreatedAt = fromMillis(next), fromMillis(created)
	return d, nil
}

// EnqueueDeliveries implements store.Outbox in one transaction.
func (s *Store) EnqueueDeliveries(ctx context.Context, ds []store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	return s.inTx(ctx, "enqueue deliveries", func(tx *sql.Tx) error {
		for _, d := range ds {
			if _, err := tx.ExecContext(ctx, `INSERT INTO alert_outbox (`+deliveryColumns+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				d.ID, d.OrgID, d.SubscriptionID, d.Subject, d.Body, d.Attempts, millis(d.NextAt), millis(d.CreatedAt),
				d.LastError); err != nil {
				return classify("enqueue delivery", "delivery already queued", err)
			}
		}
		return nil
	})
}

// DueDeliveries implements store.Outbox.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM alert_outbox
		WHERE next_at <= ? ORDER BY next_at, id LIMIT ?`, millis(now), store.Limit(limit))
	if err != nil {
		return nil, classify("list due deliveries", "", err)
	}
	ds, err := collect(rows, scanDelivery)
	return ds, classify("list due deliveries", "", err)
}

// RetryDelivery implements store.Outbox.
func (s *Store) RetryDelivery(ctx context.Context, id string, attempts int, next time.Time, lastErr string) error {
	return s.inTx(ctx, "reschedule delivery", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE alert_outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?`,
			attempts, millis(next), lastErr, id)
		if err != nil {
			return classify("reschedule delivery", "", err)
		}
		return mustChange("reschedule delivery", res)
	})
}

// FinishDelivery implements store.Outbox; finishing a delivery that is gone
// (its subscription was deleted meanwhile) is not an error.
func (s *Store) FinishDelivery(ctx context.Context, id string) error {
	return s.inTx(ctx, "finish delivery", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM alert_outbox WHERE id = ?`, id)
		return classify("finish delivery", "", err)
	})
}
