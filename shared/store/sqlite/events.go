package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// insertEvent writes ev in the caller's transaction. The event id is the
// primary key: an event that cannot be written (a reused id) fails the whole
// transaction, so no change goes unaudited.
func insertEvent(ctx context.Context, tx *sql.Tx, ev kve.Event) error {
	if ev.ID == "" {
		return errors.New("insert event: event has no id")
	}
	var detail []byte
	if len(ev.Detail) > 0 {
		var err error
		if detail, err = json.Marshal(ev.Detail); err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO events (`+eventColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.ID, ev.OrgID, millis(ev.At), ev.ActorID, ev.Actor, ev.Action, ev.Target, ev.IP, nullJSON(detail))
	return classify("insert event", "audit event already recorded", err)
}

const eventColumns = `id, org_id, at, actor_id, actor, action, target, ip, detail`

func scanEvent(row scanner) (kve.Event, error) {
	var ev kve.Event
	var at int64
	var detail []byte
	if err := row.Scan(&ev.ID, &ev.OrgID, &at, &ev.ActorID, &ev.Actor, &ev.Action, &ev.Target, &ev.IP, &detail); err != nil {
		return kve.Event{}, err
	}
	ev.At = fromMillis(at)
	if len(detail) > 0 {
		if err := json.Unmarshal(detail, &ev.Detail); err != nil {
			return kve.Event{}, fmt.Errorf("decode event detail: %w", err)
		}
	}
	return ev, nil
}

// AddEvent implements store.Audit.
func (s *Store) AddEvent(ctx context.Context, ev kve.Event) error {
	return s.inTx(ctx, "add event", func(tx *sql.Tx) error { return insertEvent(ctx, tx, ev) })
}

// Events implements store.Audit: newest first by (at, id); Since is
// inclusive.
func (s *Store) Events(ctx context.Context, orgID string, f store.EventFilter) (store.Page[kve.Event], error) {
	after, err := parseCursor(f.Cursor)
	if err != nil {
		return store.Page[kve.Event]{}, err
	}
	limit := store.Limit(f.Limit)
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventColumns+` FROM events
		WHERE org_id = ?1
		  AND (?2 = '' OR action = ?2)
		  AND (?3 = '' OR actor_id = ?3)
		  AND (?4 = '' OR target = ?4)
		  AND at >= ?5
		  AND (at, id) < (?6, ?7)
		ORDER BY at DESC, id DESC LIMIT ?8`,
		orgID, f.Action, f.ActorID, f.Target, millis(f.Since), after.at, after.id, limit+1)
	if err != nil {
		return store.Page[kve.Event]{}, classify("list events", "", err)
	}
	items, err := collect(rows, scanEvent)
	if err != nil {
		return store.Page[kve.Event]{}, classify("list events", "", err)
	}
	return page(items, limit, func(ev *kve.Event) cursor { return cursor{millis(ev.At), ev.ID} }), nil
}

// nullJSON stores an empty document as NULL.
func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}
