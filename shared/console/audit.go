package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

type auditView struct {
	Slug    string
	Rows    []eventRow
	Filter  auditFilter
	Actions []string
	Next    string
	First   string
}

// auditFilter is the audit page's query, as its form shows it again.
type auditFilter struct {
	Action, Actor, Target, Since string
}

// actions are the audit actions the filter offers; the log may hold more
// as features land, and any of them can still be typed into the URL.
var actions = []string{
	"org.create", "key.create", "key.rotate", "key.delete",
	"token.create", "token.reveal", "token.update", "token.revoke",
}

// audit lists the organization's audit log, newest first, filtered by
// action, actor, target and start date (Owner, Admin).
func (s *server) audit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	fl := auditFilter{
		Action: strings.TrimSpace(q.Get("action")), Actor: strings.TrimSpace(q.Get("actor")),
		Target: strings.TrimSpace(q.Get("target")), Since: strings.TrimSpace(q.Get("since")),
	}
	f := store.EventFilter{Action: fl.Action, ActorID: fl.Actor, Target: fl.Target, Cursor: q.Get("cursor"), Limit: pageSize}
	if fl.Since != "" {
		t, err := time.Parse(time.DateOnly, fl.Since)
		if err != nil {
			return kve.Errorf(kve.KindInvalid, "invalid_since", "Enter the start date as YYYY-MM-DD.")
		}
		f.Since = t
	}
	page, err := s.svc.Events(r.Context(), orgRef(r), principal(r), f)
	if err != nil {
		return err
	}
	slug := membership(r).Org.Slug
	v := auditView{Slug: slug, Filter: fl, Actions: actions, Rows: make([]eventRow, 0, len(page.Items))}
	for _, e := range page.Items {
		v.Rows = append(v.Rows, eventRowOf(e))
	}
	list := url.Values{}
	for k, val := range map[string]string{"action": fl.Action, "actor": fl.Actor, "target": fl.Target, "since": fl.Since} {
		if val != "" {
			list.Set(k, val)
		}
	}
	base := s.base + "/o/" + slug + "/audit"
	if q.Get("cursor") != "" {
		v.First = withQuery(base, list)
	}
	if page.Next != "" {
		list.Set("cursor", page.Next)
		v.Next = withQuery(base, list)
	}
	return s.render(w, r, http.StatusOK, "audit", "Audit log", "Audit log", v)
}
