package api

import (
	"net/http"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

var (
	errNoCredential = kve.Errorf(kve.KindUnauthenticated, "unauthenticated", "sign in first: send Authorization: Bearer kvm_…")
	errProxyToken   = kve.Errorf(kve.KindUnauthenticated, "unauthenticated", "a kve_ token works only at the proxy; the management API takes a kvm_ API token")
)

// authenticate finds the caller: a bearer kvm_ token, or else the dashboard's
// session cookie, accepted only on requests that pass cross-origin protection
// (a bearer token cannot be sent by a cross-site form, a cookie can).
func (s *server) authenticate(r *http.Request) (manage.Principal, error) {
	ip := s.clientIP(r)
	if auths := r.Header.Values("Authorization"); len(auths) > 0 {
		scheme, value, ok := strings.Cut(auths[0], " ")
		value = strings.TrimSpace(value)
		switch {
		case len(auths) > 1 || !ok || !strings.EqualFold(scheme, "Bearer"):
			return manage.Principal{}, errNoCredential
		case kve.LooksLikeToken(value):
			return manage.Principal{}, errProxyToken
		}
		return s.svc.Authenticate(r.Context(), kve.SessionAPI, kve.Secret(value), ip)
	}
	c, err := r.Cookie(s.cookie)
	if err != nil {
		return manage.Principal{}, errNoCredential
	}
	if err := s.cop.Check(r); err != nil {
		return manage.Principal{}, kve.Wrap(kve.KindForbidden, "cross_origin", "cross-origin request refused", err)
	}
	return s.svc.Authenticate(r.Context(), kve.SessionBrowser, kve.Secret(c.Value), ip)
}

// hasCredential reports whether a request carries a credential that
// authenticate would look at.
func (s *server) hasCredential(r *http.Request) bool {
	if len(r.Header.Values("Authorization")) > 0 {
		return true
	}
	_, err := r.Cookie(s.cookie)
	return err == nil
}
