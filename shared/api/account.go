package api

import (
	"net/http"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// logout ends the credential of the request; a dashboard session's cookie
// is cleared too.
func (s *server) logout(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.Logout(r.Context(), principal(r)); err != nil {
		return err
	}
	if principal(r).Kind == kve.SessionBrowser {
		http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: "", Path: "/", MaxAge: -1,
			Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) apiTokens(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	tokens, err := s.svc.APITokens(r.Context(), p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[apiTokenView]{Items: items(tokens, func(ses kve.Session) apiTokenView {
		return apiTokenView{ID: ses.ID, Name: ses.Name, OrgID: ses.OrgID, CreatedAt: ses.CreatedAt,
			ExpiresAt: ses.ExpiresAt, LastSeenAt: ses.LastSeen, Current: ses.ID == p.SessionID}
	})})
	return nil
}

func (s *server) deleteAPIToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.DeleteAPIToken(r.Context(), principal(r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) changePassword(w http.ResponseWriter, r *http.Request) error {
	var in manage.PasswordInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	n, err := s.svc.ChangePassword(r.Context(), principal(r), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		EndedSessions int `json:"ended_sessions"`
	}{n})
	return nil
}
