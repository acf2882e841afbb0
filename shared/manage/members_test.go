package manage_test

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

func TestMembers(t *testing.T) {
	tm := newTeam(t)
	for _, p := range []manage.Principal{tm.pOwner, tm.pAdmin, tm.pDev} {
		list, err := tm.Service.Members(t.Context(), tm.Org.Slug, p)
		if err != nil {
			t.Fatal(err)
		}
		var emails []string // all joined at the same instant: their order is the store's
		for _, m := range list {
			emails = append(emails, m.Email)
		}
		slices.Sort(emails)
		want := []string{"admin@example.com", "dev2@example.com", "dev@example.com", "owner@example.com"}
		if diff := cmp.Diff(want, emails); diff != "" {
			t.Errorf("members as %s (-want +got):\n%s", p.Email, diff)
		}
	}
	_, err := tm.Service.Members(t.Context(), tm.Org.Slug, tm.pOutsider)
	wantKind(t, err, kve.KindNotFound)
}

func TestChangeRole(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	m, err := tm.Service.ChangeRole(ctx, tm.Org.Slug, tm.pOwner, tm.Dev.ID, manage.RoleInput{Role: "admin"})
	if err != nil || m.Role != kve.RoleAdmin {
		t.Fatalf("ChangeRole = %+v, %v", m, err)
	}
	ev := tm.event(t, "member.role", tm.Dev.ID)
	if diff := cmp.Diff(map[string]string{"email": "dev@example.com", "from": "developer", "to": "admin"}, ev.Detail); diff != "" {
		t.Errorf("member.role detail (-want +got):\n%s", diff)
	}
	if _, err := tm.Service.Authorize(ctx, tm.Org.Slug, tm.pDev, kve.RoleAdmin); err != nil {
		t.Errorf("the promoted member is not an admin on their next request: %v", err)
	}

	for _, tc := range []struct {
		name   string
		p      manage.Principal
		userID string
		role   string
		want   kve.Kind
	}{
		{"an admin promotes themselves", tm.pAdmin, tm.Admin.ID, "owner", kve.KindForbidden}, // SECURITY T22
		{"an admin demotes the owner", tm.pAdmin, tm.Owner.ID, "developer", kve.KindForbidden},
		{"a developer", tm.pDev2, tm.Dev2.ID, "admin", kve.KindForbidden},
		{"an outsider", tm.pOutsider, tm.Dev2.ID, "admin", kve.KindNotFound},
		{"unknown role", tm.pOwner, tm.Dev2.ID, "root", kve.KindInvalid},
		{"a stranger", tm.pOwner, tm.Outsider.ID, "admin", kve.KindNotFound},
		{"the last owner steps down", tm.pOwner, tm.Owner.ID, "admin", kve.KindConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tm.Service.ChangeRole(ctx, tm.Org.Slug, tc.p, tc.userID, manage.RoleInput{Role: tc.role})
			wantKind(t, err, tc.want)
		})
	}
	if n := len(tm.events(t, "member.role")); n != 1 {
		t.Errorf("%d member.role events, want 1", n)
	}
	// Setting the role a member has changes nothing and records nothing.
	if _, err := tm.Service.ChangeRole(ctx, tm.Org.Slug, tm.pOwner, tm.Dev2.ID, manage.RoleInput{Role: "developer"}); err != nil {
		t.Fatal(err)
	}
	if n := len(tm.events(t, "member.role")); n != 1 {
		t.Errorf("%d member.role events after a no-op, want 1", n)
	}
}

// TestRemoveMember is offboarding (SECURITY T10, T33): the developer's
// personal token is revoked and their sessions end with the membership;
// shared tokens keep working, and those the developer saw are named.
func TestRemoveMember(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	toks := tm.tokens(t)
	tm.Clock.Add(time.Second) // the newest shared dev token: the one Env picks
	seen, err := tm.Service.CreateToken(ctx, tm.Org.ID, tm.pOwner, manage.TokenInput{Name: "seen via env", Key: "main", Env: "dev", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	unseen, err := tm.Service.CreateToken(ctx, tm.Org.ID, tm.pOwner, manage.TokenInput{Name: "prod", Key: "main", Env: "prd", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := tm.Service.CreateToken(ctx, tm.Org.ID, tm.pOwner, manage.TokenInput{Name: "revoked later", Key: "main", Env: "stg", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{toks.shared.Token.ID, gone.Token.ID} {
		if _, err := tm.Service.RevealToken(ctx, tm.Org.ID, tm.pDev, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tm.Service.Env(ctx, tm.Org.ID, tm.pDev, "dev"); err != nil { // reveals the newest shared dev token
		t.Fatal(err)
	}
	if _, err := tm.Service.RevokeToken(ctx, tm.Org.ID, tm.pOwner, gone.Token.ID); err != nil {
		t.Fatal(err)
	}

	o, err := tm.Service.RemoveMember(ctx, tm.Org.Slug, tm.pOwner, tm.Dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Member.UserID != tm.Dev.ID || o.Sessions != 1 {
		t.Errorf("offboarding = %+v; want the developer, and their one API token ended", o)
	}
	if diff := cmp.Diff([]string{toks.devPersonal.Token.ID}, o.Revoked); diff != "" {
		t.Errorf("revoked (-want +got):\n%s", diff)
	}
	var revealed []string
	for _, tok := range o.Revealed {
		revealed = append(revealed, tok.Name)
	}
	slices.Sort(revealed)
	if diff := cmp.Diff([]string{"seen via env", "shared"}, revealed); diff != "" {
		t.Errorf("revealed shared tokens (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		tok  kve.Token
		live bool
	}{{toks.devPersonal.Token, false}, {toks.shared.Token, true}, {seen.Token, true}, {unseen.Token, true}, {toks.dev2Personal.Token, true}} {
		got, err := tm.Store.TokenByHash(ctx, tc.tok.Hash)
		if err != nil || got.Revoked() == tc.live {
			t.Errorf("token %s: revoked %v (%v), want live %v", tc.tok.Name, got.Revoked(), err, tc.live)
		}
	}
	_, err = tm.Service.Authenticate(ctx, kve.SessionAPI, tm.Dev.Token, "192.0.2.3")
	wantKind(t, err, kve.KindUnauthenticated) // their last organization: every session ended
	ev := tm.event(t, "member.remove", tm.Dev.ID)
	if ev.Detail["email"] != "dev@example.com" || ev.Detail["role"] != "developer" || len(ev.Detail["revealed_shared_tokens"]) == 0 {
		t.Errorf("member.remove event = %+v", ev)
	}

	_, err = tm.Service.RemoveMember(ctx, tm.Org.Slug, tm.pOwner, tm.Dev.ID)
	wantKind(t, err, kve.KindNotFound)
}

// TestPlanRemoval checks the confirmation's forecast against what the
// removal then does, and that the forecast itself changes nothing.
func TestPlanRemoval(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	toks := tm.tokens(t)
	if _, err := tm.Service.RevealToken(ctx, tm.Org.ID, tm.pDev, toks.shared.Token.ID); err != nil {
		t.Fatal(err)
	}
	tm.AddToken(t, tm.Dev.ID) // a second API token: two credentials end
	names := func(ts []kve.Token) []string {
		out := []string{}
		for _, tok := range ts {
			out = append(out, tok.Name)
		}
		return out
	}

	plan, err := tm.Service.PlanRemoval(ctx, tm.Org.Slug, tm.pOwner, tm.Dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Member.UserID != tm.Dev.ID || plan.Sessions != 2 {
		t.Errorf("plan = member %s, %d sessions; want the developer and 2", plan.Member.UserID, plan.Sessions)
	}
	if diff := cmp.Diff([]string{"dev's"}, names(plan.Personal)); diff != "" {
		t.Errorf("personal tokens to revoke (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"shared"}, names(plan.Revealed)); diff != "" {
		t.Errorf("shared tokens seen (-want +got):\n%s", diff)
	}
	for _, tok := range append(plan.Personal, plan.Revealed...) {
		if tok.Sealed != nil {
			t.Errorf("the plan carries the sealed value of %s", tok.Name)
		}
	}
	if got, err := tm.Store.TokenByHash(ctx, toks.devPersonal.Token.Hash); err != nil || got.Revoked() {
		t.Fatalf("planning revoked the personal token (%v)", err)
	}
	if _, err := tm.Service.Authenticate(ctx, kve.SessionAPI, tm.Dev.Token, "192.0.2.3"); err != nil {
		t.Fatalf("planning ended a session: %v", err)
	}
	if n := len(tm.events(t, "member.remove")); n != 0 {
		t.Fatalf("planning recorded %d removals", n)
	}

	o, err := tm.Service.RemoveMember(ctx, tm.Org.Slug, tm.pOwner, tm.Dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Sessions != plan.Sessions || !slices.Equal(o.Revoked, []string{plan.Personal[0].ID}) ||
		!slices.Equal(names(o.Revealed), names(plan.Revealed)) {
		t.Errorf("removal %+v differs from its plan %+v", o, plan)
	}

	for _, tc := range []struct {
		name   string
		p      manage.Principal
		userID string
		want   kve.Kind
	}{
		{"an admin", tm.pAdmin, tm.Dev2.ID, kve.KindForbidden},
		{"an outsider", tm.pOutsider, tm.Dev2.ID, kve.KindNotFound},
		{"a former member", tm.pOwner, tm.Dev.ID, kve.KindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tm.Service.PlanRemoval(ctx, tm.Org.Slug, tc.p, tc.userID)
			wantKind(t, err, tc.want)
		})
	}
}

// TestRemovedMemberOfAnotherOrg keeps their credential, which no longer
// opens the organization they left: it is 404 there on the next request.
func TestRemovedMemberOfAnotherOrg(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	bolt, err := tm.Service.CreateOrg(ctx, tm.pOutsider, manage.OrgInput{Name: "Bolt"})
	if err != nil {
		t.Fatal(err)
	}
	tm.AddMember(t, bolt.ID, tm.Dev2, kve.RoleDeveloper)
	limited := tm.AddToken(t, tm.Dev2.ID)
	o, err := tm.Service.RemoveMember(ctx, tm.Org.Slug, tm.pOwner, tm.Dev2.ID)
	if err != nil || o.Sessions != 0 {
		t.Fatalf("RemoveMember = %+v, %v; want no session ended", o, err)
	}
	for _, cred := range []kve.Secret{tm.Dev2.Token, limited} {
		p, err := tm.Service.Authenticate(ctx, kve.SessionAPI, cred, "192.0.2.4")
		if err != nil {
			t.Fatalf("the removed member's credential: %v", err)
		}
		_, err = tm.Service.Tokens(ctx, tm.Org.Slug, p, manage.TokenQuery{})
		wantKind(t, err, kve.KindNotFound)
		if _, err := tm.Service.Tokens(ctx, bolt.ID, p, manage.TokenQuery{}); err != nil {
			t.Errorf("in the organization they stay in: %v", err)
		}
	}
}

func TestRemoveMemberRules(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name   string
		p      manage.Principal
		userID string
		want   kve.Kind
	}{
		{"an admin", tm.pAdmin, tm.Dev.ID, kve.KindForbidden},
		{"a developer", tm.pDev, tm.Dev2.ID, kve.KindForbidden},
		{"an outsider", tm.pOutsider, tm.Dev.ID, kve.KindNotFound},
		{"the last owner", tm.pOwner, tm.Owner.ID, kve.KindConflict},
		{"a stranger", tm.pOwner, tm.Outsider.ID, kve.KindNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tm.Service.RemoveMember(ctx, tm.Org.Slug, tc.p, tc.userID)
			wantKind(t, err, tc.want)
		})
	}
	if members, _ := tm.Store.Members(ctx, tm.Org.ID); len(members) != 4 {
		t.Errorf("%d members left, want all 4", len(members))
	}
}

func TestRenameAndDeleteOrg(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	_, err := tm.Service.RenameOrg(ctx, tm.Org.Slug, tm.pAdmin, manage.OrgInput{Name: "Mine"})
	wantKind(t, err, kve.KindForbidden)
	o, err := tm.Service.RenameOrg(ctx, tm.Org.Slug, tm.pOwner, manage.OrgInput{Name: "Acme Two"})
	if err != nil || o.Name != "Acme Two" || o.Slug != tm.Org.Slug {
		t.Fatalf("RenameOrg = %+v, %v", o, err)
	}
	if ev := tm.event(t, "org.rename", tm.Org.ID); ev.Detail["from"] != "Acme Labs" || ev.Detail["to"] != "Acme Two" {
		t.Errorf("org.rename detail = %v", ev.Detail)
	}

	toks := tm.tokens(t)
	key, err := tm.Store.Key(ctx, tm.Org.ID, "main")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tm.Service.DeleteOrg(ctx, tm.Org.Slug, tm.pAdmin)
	wantKind(t, err, kve.KindForbidden)
	d, err := tm.Service.DeleteOrg(ctx, tm.Org.Slug, tm.pOwner)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tokens) != 4 || len(d.Keys) != 1 {
		t.Errorf("deletion = %d tokens, %d keys; want 4 and 1", len(d.Tokens), len(d.Keys))
	}
	for _, it := range []manage.IssuedToken{toks.shared, toks.devPersonal} {
		if got, err := tm.Store.TokenByHash(ctx, it.Token.Hash); err != nil || !got.Revoked() {
			t.Errorf("token %s after deletion: revoked %v (%v)", it.Token.Name, got.Revoked(), err)
		}
	}
	if _, err := tm.Secrets.Value(ctx, key.Secret, ""); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("the key's value after deletion: %v, want not found", err)
	}
	// A new request (a Principal remembers memberships for one request).
	_, err = tm.Service.Tokens(ctx, tm.Org.Slug, tm.Principal(t, tm.Owner, "192.0.2.1"), manage.TokenQuery{})
	wantKind(t, err, kve.KindNotFound)
	events, err := tm.Store.Events(ctx, tm.Org.ID, store.EventFilter{Action: "org.delete"})
	if err != nil || len(events.Items) != 1 || events.Items[0].ActorID != tm.Owner.ID {
		t.Errorf("org.delete events = %+v, %v", events.Items, err)
	}
}
