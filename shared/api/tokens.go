package api

import (
	"net/http"
	"strconv"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

func (s *server) createToken(w http.ResponseWriter, r *http.Request) error {
	var in manage.TokenInput
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	it, err := s.svc.CreateToken(r.Context(), r.PathValue("org"), principal(r), in)
	if err != nil {
		return err
	}
	v, err := s.limited(r, viewIssued(it))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (s *server) tokens(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := queryLimit(q.Get("limit"))
	if err != nil {
		return err
	}
	page, err := s.svc.Tokens(r.Context(), r.PathValue("org"), principal(r), manage.TokenQuery{
		Env: q.Get("env"), IncludeRevoked: q.Get("include_revoked") == "true", Cursor: q.Get("cursor"), Limit: limit,
	})
	if err != nil {
		return err
	}
	limits, err := s.svc.AllTokenLimits(r.Context(), r.PathValue("org"), principal(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[tokenView]{Next: page.Next, Items: items(page.Items, func(t kve.Token) tokenView {
		return withLimits(viewToken(t), limits[t.ID])
	})})
	return nil
}

// revealToken answers a token with its value; manage records the reveal.
func (s *server) revealToken(w http.ResponseWriter, r *http.Request) error {
	it, err := s.svc.RevealToken(r.Context(), r.PathValue("org"), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	v, err := s.limited(r, viewIssued(it))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *server) updateToken(w http.ResponseWriter, r *http.Request) error {
	var in manage.TokenPatch
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	t, err := s.svc.UpdateToken(r.Context(), r.PathValue("org"), principal(r), r.PathValue("id"), in)
	if err != nil {
		return err
	}
	v, err := s.limited(r, viewToken(t))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	t, err := s.svc.RevokeToken(r.Context(), r.PathValue("org"), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewToken(t))
	return nil
}

// limited adds the token's limits beyond its policy to its view.
func (s *server) limited(r *http.Request, v tokenView) (tokenView, error) {
	l, err := s.svc.TokenLimits(r.Context(), r.PathValue("org"), principal(r), v.ID)
	if err != nil {
		return tokenView{}, err
	}
	return withLimits(v, l), nil
}

// queryLimit reads a page size; the store clamps it.
func queryLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, kve.Errorf(kve.KindInvalid, "invalid_limit", "limit must be a positive number")
	}
	return n, nil
}
