package console

import (
	"net/http"
	"net/url"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

// Invites, as Owners and Admins send and manage them, and as the invitee
// opens and accepts one. An invite link carries its code in the path
// (/invite/<code>): every answer under /invite/ has Referrer-Policy
// no-referrer (ServeHTTP), and the access log names the route, never the
// path.

// createInvite invites an address with a role (Owner, Admin: no role above
// their own). With mail configured the link goes to the invitee only;
// without, the inviter gets it to pass on.
func (s *server) createInvite(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	in := manage.InviteInput{Email: f.Get("email"), Role: f.Get("role")}
	issued, err := s.svc.CreateInvite(r.Context(), orgRef(r), principal(r), in)
	if err != nil {
		if !managerRole(membership(r).Role) {
			return err // their members page has no invite form to show it on
		}
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.membersPage(w, r, status, f, "")
	}
	return s.issued(w, r, issued)
}

// resendInvite gives a pending invite a new link and sends it again; the
// old link stops working.
func (s *server) resendInvite(w http.ResponseWriter, r *http.Request) error {
	issued, err := s.svc.ResendInvite(r.Context(), orgRef(r), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.issued(w, r, issued)
}

type inviteLinkView struct {
	Slug   string
	Invite inviteRow
	Link   string // the accept link with its code, shown on purpose
}

// issued confirms a mailed invite, or shows the link to copy when no mail
// is configured: once, on this answer, as kve keeps only the code's hash.
func (s *server) issued(w http.ResponseWriter, r *http.Request, in manage.IssuedInvite) error {
	m := membership(r)
	if in.Mailed {
		return s.redirect(w, r, "/o/"+m.Org.Slug+"/members?done=invite_sent")
	}
	inv := in.Invite
	v := inviteLinkView{
		Slug: m.Org.Slug, Link: in.AcceptURL.Reveal(),
		Invite: inviteRow{ID: inv.ID, Email: inv.Email, Role: inv.Role, CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt},
	}
	return s.render(w, r, http.StatusOK, "invite_link", "Invite link for "+inv.Email, "Members", v)
}

type inviteRevokeView struct {
	Slug   string
	Invite inviteRow
}

// revokeInviteForm is the confirmation step when the dialog's script is
// not running.
func (s *server) revokeInviteForm(w http.ResponseWriter, r *http.Request) error {
	inv, err := s.pendingInvite(r)
	if err != nil {
		return err
	}
	v := inviteRevokeView{Slug: membership(r).Org.Slug, Invite: inviteRow{ID: inv.ID, Email: inv.Email, Role: inv.Role, ExpiresAt: inv.ExpiresAt}}
	return s.render(w, r, http.StatusOK, "invite_revoke", "Revoke invite", "Members", v)
}

func (s *server) revokeInvite(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.RevokeInvite(r.Context(), orgRef(r), principal(r), r.PathValue("id")); err != nil {
		return err
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/members?done=invite_revoked")
}

// pendingInvite finds the invite the path names among the organization's
// pending ones (Owner, Admin).
func (s *server) pendingInvite(r *http.Request) (store.Invite, error) {
	list, err := s.svc.Invites(r.Context(), orgRef(r), principal(r))
	if err != nil {
		return store.Invite{}, err
	}
	for _, inv := range list {
		if inv.ID == r.PathValue("id") {
			return inv, nil
		}
	}
	return store.Invite{}, kve.Errorf(kve.KindNotFound, "not_found",
		"There is no such pending invite: it was accepted, revoked or has expired.")
}

type inviteView struct {
	Code      string // from the link: the form posts back to it
	Org       string
	Role      kve.Role
	Email     string
	Inviter   string
	ExpiresAt time.Time
	Account   bool   // an account with Email exists: accepting asks for its password
	SignedIn  string // the signed-in user's email, "" if nobody is
	Form      *form
}

// invite shows what an invite link is for, and the form that accepts it.
// It changes nothing, as mail scanners open links: only the POST accepts.
func (s *server) invite(w http.ResponseWriter, r *http.Request) error {
	return s.invitePage(w, r, http.StatusOK, newForm(url.Values{}))
}

func (s *server) invitePage(w http.ResponseWriter, r *http.Request, status int, f *form) error {
	code := r.PathValue("code")
	info, err := s.svc.InviteInfo(r.Context(), kve.Secret(code), s.clientIP(r))
	if err != nil {
		return err
	}
	v := inviteView{
		Code: code, Org: info.Org.Name, Role: info.Role, Email: info.Email, Inviter: info.Inviter,
		ExpiresAt: info.ExpiresAt, Account: info.Account, Form: f,
	}
	if c, ok := callerOf(r); ok {
		v.SignedIn = c.p.Email
	}
	return s.render(w, r, status, "invite", "Join "+info.Org.Name, "", v)
}

// acceptInvite joins the invite's organization: signed in as the invited
// address, at once; else with the password of the existing account, or a
// name and password for a new one, after which the browser is signed in
// with a fresh session.
func (s *server) acceptInvite(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	in := manage.AcceptInput{Code: kve.Secret(r.PathValue("code")), Name: f.Get("name"), Password: kve.Secret(f.Get("password"))}
	f.Values.Del("password")
	var p *manage.Principal
	if c, ok := callerOf(r); ok {
		p = &c.p
	}
	a, err := s.svc.AcceptInvite(r.Context(), in, p, s.clientIP(r), kve.SessionBrowser)
	if err != nil {
		switch kve.KindOf(err) {
		case kve.KindNotFound, kve.KindGone: // nothing left to accept: the error page says why
			return err
		case kve.KindRateLimited:
			setRetryAfter(w, err)
		}
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.invitePage(w, r, status, f)
	}
	if a.Credential != nil {
		setSession(w, r, a.Credential.Value)
	}
	return s.redirect(w, r, "/o/"+a.Membership.Org.Slug+"/tokens?done=joined")
}
