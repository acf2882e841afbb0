package kve

import "time"

// Event is an audit entry: who did what to which object, when, from where.
// Stores write it in the same transaction as the change it describes, and
// offer no way to update or delete one. It never holds a secret.
type Event struct {
	ID      string            `json:"id"`
	OrgID   string            `json:"org_id"`
	At      time.Time         `json:"at"`
	ActorID string            `json:"actor_id"` // a user id, or "system"
	Actor   string            `json:"actor"`    // the actor's email at the time
	Action  string            `json:"action"`   // noun.verb: token.create, token.reveal, member.remove
	Target  string            `json:"target"`   // the object's id
	IP      string            `json:"ip,omitempty"`
	Detail  map[string]string `json:"detail,omitempty"`
}

// Actor is who performs a management action; stores copy it into events.
type Actor struct {
	UserID string
	Email  string
	IP     string
}

// Event returns an audit entry by this actor, with a fresh id.
func (a Actor) Event(orgID, action, target string, now time.Time) Event {
	return Event{ID: NewID(PrefixEvent, now), OrgID: orgID, At: now.UTC(), ActorID: a.UserID,
		Actor: a.Email, Action: action, Target: target, IP: a.IP}
}

// With adds a detail and returns the event, for building one in an expression.
func (e Event) With(key, value string) Event {
	if e.Detail == nil {
		e.Detail = map[string]string{}
	}
	e.Detail[key] = value
	return e
}
