package dynamo

import (
	"context"
	"fmt"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// An event is audit#<org>/<event id>, plus event#<event id>/event, which
// claims the id across organizations. Event ids begin with their creation
// time (kve.NewID), so the partition read backwards is newest first, and
// a time bound is a bound on the sort key.

func eventItem(ev kve.Event) item {
	it := item{}
	it.setStr("id", ev.ID)
	it.setStr("org_id", ev.OrgID)
	it.setTime("at", ev.At)
	it.setStr("actor_id", ev.ActorID)
	it.setStr("actor", ev.Actor)
	it.setStr("action", ev.Action)
	it.setStr("target", ev.Target)
	it.setStr("ip", ev.IP)
	it.setMap("detail", ev.Detail)
	return it.with(auditPK(ev.OrgID), ev.ID)
}

func decodeEvent(it item) (kve.Event, error) {
	f := fields{it: it}
	ev := kve.Event{
		ID:      f.str("id"),
		OrgID:   f.str("org_id"),
		At:      f.time("at"),
		ActorID: f.str("actor_id"),
		Actor:   f.str("actor"),
		Action:  f.str("action"),
		Target:  f.str("target"),
		IP:      f.str("ip"),
		Detail:  f.strMap("detail"),
	}
	if f.err != nil {
		return kve.Event{}, fmt.Errorf("decode event: %w", f.err)
	}
	return ev, nil
}

// auditWrites write ev into orgID's audit log, and claim its id: event ids
// are global, so an id that exists in any organization fails the whole
// transaction, and events are never replaced.
func (s *Store) auditWrites(orgID string, ev kve.Event) ([]write, error) {
	if ev.ID == "" {
		return nil, kve.Errorf(kve.KindInvalid, "invalid_event", "the audit event has no id")
	}
	if ev.OrgID == "" {
		ev.OrgID = orgID
	}
	if ev.OrgID != orgID {
		return nil, kve.Errorf(kve.KindInvalid, "invalid_event", "the audit event belongs to another organization")
	}
	claim := item{}
	claim.setStr("org_id", ev.OrgID)
	return []write{
		s.create(eventItem(ev), errDuplicateEvent),
		s.create(claim.with(eventIDPK(ev.ID), skEvent), errDuplicateEvent),
	}, nil
}

var errDuplicateEvent = kve.Errorf(kve.KindConflict, "duplicate_event", "an audit event with this id exists")

// AddEvent implements store.Audit.
func (s *Store) AddEvent(ctx context.Context, ev kve.Event) error {
	if ev.OrgID == "" {
		return kve.Errorf(kve.KindInvalid, "invalid_event", "the audit event has no organization")
	}
	ws, err := s.auditWrites(ev.OrgID, ev)
	if err != nil {
		return fmt.Errorf("add event: %w", err)
	}
	if err := s.transact(ctx, ws...); err != nil {
		return fmt.Errorf("add event: %w", err)
	}
	return nil
}

// Events implements store.Audit.
func (s *Store) Events(ctx context.Context, orgID string, f store.EventFilter) (store.Page[kve.Event], error) {
	q := newQuery(auditPK(orgID))
	q.backward = true
	if !f.Since.IsZero() {
		// The first ten characters of an id's body hold its millisecond
		// timestamp and nothing else, so this is the least id of that
		// millisecond; the filter on at then drops the part of it before
		// Since.
		least := kve.NewID(kve.PrefixEvent, f.Since)[:len(kve.PrefixEvent)+10]
		q.from(least)
		q.where(q.name("at") + " >= " + q.value(stamp(f.Since)))
	}
	if f.Action != "" {
		q.where(q.name("action") + " = " + q.value(str(f.Action)))
	}
	if f.ActorID != "" {
		q.where(q.name("actor_id") + " = " + q.value(str(f.ActorID)))
	}
	if f.Target != "" {
		q.where(q.name("target") + " = " + q.value(str(f.Target)))
	}
	items, next, err := s.page(ctx, q, f.Cursor, store.Limit(f.Limit))
	if err != nil {
		return store.Page[kve.Event]{}, fmt.Errorf("list events: %w", err)
	}
	page := store.Page[kve.Event]{Items: make([]kve.Event, 0, len(items)), Next: next}
	for _, it := range items {
		ev, err := decodeEvent(it)
		if err != nil {
			return store.Page[kve.Event]{}, fmt.Errorf("list events: %w", err)
		}
		page.Items = append(page.Items, ev)
	}
	return page, nil
}
