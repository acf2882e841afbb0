package console

import (
	"net/http"
	"net/url"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

type membersView struct {
	Slug  string
	Rows  []memberRow
	Error string // a refused role change

	Owner   bool // may change roles and remove members
	Manager bool // may invite, and sees the pending invites
	Roles   []kve.Role

	Invites    []inviteRow
	InviteForm *form
	InviteAs   []kve.Role // the roles the caller may give
	Mail       bool       // invites go out by mail
}

// members lists the organization's members (every member), and to Owners
// and Admins the pending invites and the invite form.
func (s *server) members(w http.ResponseWriter, r *http.Request) error {
	return s.membersPage(w, r, http.StatusOK, newForm(url.Values{"role": {string(kve.RoleDeveloper)}}), "")
}

// membersPage renders the members page with the invite form f and a
// refused role change's message, if any.
func (s *server) membersPage(w http.ResponseWriter, r *http.Request, status int, f *form, refused string) error {
	p, m := principal(r), membership(r)
	team, err := s.team(r)
	if err != nil {
		return err
	}
	v := membersView{
		Slug: m.Org.Slug, Error: refused, Owner: m.Role == kve.RoleOwner, Manager: managerRole(m.Role),
		Roles: allRoles, InviteForm: f, Mail: s.svc.SendsMail(), Rows: make([]memberRow, 0, len(team)),
	}
	owners := 0
	for _, t := range team {
		if t.Role == kve.RoleOwner {
			owners++
		}
	}
	for _, t := range team {
		row := memberRowOf(t, p)
		// The last Owner cannot go (manage refuses it too).
		row.CanRemove = v.Owner && (t.Role != kve.RoleOwner || owners > 1)
		v.Rows = append(v.Rows, row)
	}
	if v.Manager {
		for _, role := range allRoles {
			if m.Role.AtLeast(role) {
				v.InviteAs = append(v.InviteAs, role)
			}
		}
		invites, err := s.svc.Invites(r.Context(), orgRef(r), p)
		if err != nil {
			return err
		}
		names := peopleOf(team)
		for _, inv := range invites {
			v.Invites = append(v.Invites, inviteRow{
				ID: inv.ID, Email: inv.Email, Role: inv.Role, InvitedBy: names.who(inv.InvitedBy, p),
				CreatedAt: inv.CreatedAt, ExpiresAt: inv.ExpiresAt, CanManage: m.Role.AtLeast(inv.Role),
			})
		}
	}
	return s.render(w, r, status, "members", "Members", "Members", v)
}

// changeRole sets a member's role (Owner). A refusal (the last Owner
// stepping down, say) shows on the members page.
func (s *server) changeRole(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	in := manage.RoleInput{Role: f.Get("role")}
	if _, err := s.svc.ChangeRole(r.Context(), orgRef(r), principal(r), r.PathValue("user"), in); err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.membersPage(w, r, status, newForm(url.Values{"role": {string(kve.RoleDeveloper)}}), f.summary())
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/members?done=role_changed")
}

type removeView struct {
	Slug     string
	Member   memberRow
	Personal []tokenRow // what the removal revokes
	Sessions int
	Revealed []tokenRow // shared tokens the member saw
}

// removeForm shows what removing a member would take away and which shared
// tokens they saw, and asks to confirm (Owner). It changes nothing.
func (s *server) removeForm(w http.ResponseWriter, r *http.Request) error {
	p, m := principal(r), membership(r)
	plan, err := s.svc.PlanRemoval(r.Context(), orgRef(r), p, r.PathValue("user"))
	if err != nil {
		return err
	}
	team, err := s.team(r)
	if err != nil {
		return err
	}
	names := peopleOf(team)
	v := removeView{Slug: m.Org.Slug, Member: memberRowOf(plan.Member, p), Sessions: plan.Sessions,
		Personal: s.tokenRows(plan.Personal, p, m.Role, names), Revealed: s.tokenRows(plan.Revealed, p, m.Role, names)}
	return s.render(w, r, http.StatusOK, "member_remove", "Remove "+plan.Member.Name, "Members", v)
}

// removeMember offboards a member (Owner) and shows manage's answer: what
// was revoked, and the shared tokens to rotate. Someone who removed
// themselves goes to the start page, as this organization is no longer
// theirs.
func (s *server) removeMember(w http.ResponseWriter, r *http.Request) error {
	p, m := principal(r), membership(r)
	o, err := s.svc.RemoveMember(r.Context(), orgRef(r), p, r.PathValue("user"))
	if err != nil {
		return err
	}
	if o.Member.UserID == p.UserID {
		return s.redirect(w, r, "/")
	}
	team, err := s.team(r)
	if err != nil {
		return err
	}
	names := peopleOf(team)
	names[o.Member.UserID] = o.Member.Name // gone from the team, still the owner of what was revoked
	v := removeView{Slug: m.Org.Slug, Member: memberRowOf(o.Member, p), Sessions: o.Sessions,
		Revealed: s.tokenRows(o.Revealed, p, m.Role, names)}
	for _, id := range o.Revoked {
		t, err := s.svc.Token(r.Context(), orgRef(r), p, id)
		if err != nil {
			return err
		}
		v.Personal = append(v.Personal, s.tokenRow(t, p, m.Role, names))
	}
	return s.render(w, r, http.StatusOK, "member_removed", o.Member.Name+" removed", "Members", v)
}

func memberRowOf(t kve.Member, p manage.Principal) memberRow {
	return memberRow{UserID: t.UserID, Name: t.Name, Email: t.Email, Role: t.Role, JoinedAt: t.JoinedAt, You: t.UserID == p.UserID}
}

func (s *server) tokenRows(ts []kve.Token, p manage.Principal, role kve.Role, names people) []tokenRow {
	rows := make([]tokenRow, 0, len(ts))
	for _, t := range ts {
		rows = append(rows, s.tokenRow(t, p, role, names))
	}
	return rows
}
