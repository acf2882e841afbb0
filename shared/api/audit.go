package api

import (
	"net/http"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

func (s *server) events(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	f := store.EventFilter{Action: q.Get("action"), ActorID: q.Get("actor_id"), Target: q.Get("target"),
		Cursor: q.Get("cursor"), Limit: limit}
	if v := q.Get("since"); v != "" {
		if f.Since, err = time.Parse(time.RFC3339, v); err != nil {
			return kve.Errorf(kve.KindInvalid, "invalid_since", "since must be an RFC 3339 time like 2026-01-02T15:04:05Z")
		}
	}
	page, err := s.svc.Events(r.Context(), r.PathValue("org"), principal(r), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[kve.Event]{Items: items(page.Items, func(e kve.Event) kve.Event { return e }), Next: page.Next})
	return nil
}
