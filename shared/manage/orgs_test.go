package manage_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
	"github.com/keyvault-edge/kve/shared/store"
)

// team is a managetest.Team with each member's principal, as Authenticate
// makes them, from a distinct address.
type team struct {
	*managetest.Team
	pOwner, pAdmin, pDev, pDev2, pOutsider manage.Principal
}

func newTeam(t *testing.T, configure ...func(*manage.Config)) *team {
	t.Helper()
	tm := &team{Team: managetest.NewTeam(t, configure...)}
	tm.pOwner = tm.Principal(t, tm.Owner, "192.0.2.1")
	tm.pAdmin = tm.Principal(t, tm.Admin, "192.0.2.2")
	tm.pDev = tm.Principal(t, tm.Dev, "192.0.2.3")
	tm.pDev2 = tm.Principal(t, tm.Dev2, "192.0.2.4")
	tm.pOutsider = tm.Principal(t, tm.Outsider, "192.0.2.5")
	return tm
}

// events returns the org's audit events with the given action. The clock
// stands still in tests, so their order is not meaningful.
func (tm *team) events(t *testing.T, action string) []kve.Event {
	t.Helper()
	page, err := tm.Store.Events(t.Context(), tm.Org.ID, store.EventFilter{Action: action, Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return page.Items
}

// event returns the one event with the given action and target.
func (tm *team) event(t *testing.T, action, target string) kve.Event {
	t.Helper()
	var found []kve.Event
	for _, ev := range tm.events(t, action) {
		if ev.Target == target {
			found = append(found, ev)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s events for %s, want 1", len(found), action, target)
	}
	return found[0]
}

func TestCreateOrg(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	if tm.Org.Slug != "acme-labs" || tm.Org.Name != "Acme Labs" || tm.Org.CreatedBy != tm.Owner.ID {
		t.Errorf("org = %+v", tm.Org)
	}
	m, err := tm.Store.Member(ctx, tm.Org.ID, tm.Owner.ID)
	if err != nil || m.Role != kve.RoleOwner || m.Name != "Olga Owner" {
		t.Errorf("creator's membership = %+v, %v; want owner", m, err)
	}
	ev := tm.event(t, "org.create", tm.Org.ID)
	want := kve.Event{ID: ev.ID, OrgID: tm.Org.ID, At: managetest.Start, ActorID: tm.Owner.ID, Actor: "owner@example.com",
		Action: "org.create", Target: tm.Org.ID, IP: "192.0.2.1", Detail: map[string]string{"slug": "acme-labs"}}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("org.create event (-want +got):\n%s", diff)
	}

	// Another organization of the same name gets its own slug, not an error
	// that would tell the caller the name is taken.
	again, err := tm.Service.CreateOrg(ctx, tm.pOutsider, manage.OrgInput{Name: "Acme Labs"})
	if err != nil {
		t.Fatalf("second Acme Labs: %v", err)
	}
	if again.Slug == tm.Org.Slug || len(again.Slug) != len("acme-labs-")+6 {
		t.Errorf("second slug = %q", again.Slug)
	}

	for _, name := range []string{"", "   ", "a\x00b", string(make([]byte, 101))} {
		_, err := tm.Service.CreateOrg(ctx, tm.pOwner, manage.OrgInput{Name: name})
		wantKind(t, err, kve.KindInvalid)
	}
}

func TestOrgs(t *testing.T) {
	tm := newTeam(t)
	ms, err := tm.Service.Orgs(t.Context(), tm.pDev)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]kve.Membership{{Org: tm.Org, Role: kve.RoleDeveloper}}, ms); diff != "" {
		t.Errorf("developer's orgs (-want +got):\n%s", diff)
	}
}

func TestMember(t *testing.T) {
	tm := newTeam(t)
	ctx := t.Context()
	for _, ref := range []string{tm.Org.ID, tm.Org.Slug} {
		m, err := tm.Service.Member(ctx, ref, tm.pAdmin)
		if err != nil || m.Org.ID != tm.Org.ID || m.Role != kve.RoleAdmin {
			t.Errorf("Member(%s) = %+v, %v", ref, m, err)
		}
	}
	// An outsider learns nothing: an existing org and a missing one answer alike.
	_, errExisting := tm.Service.Member(ctx, tm.Org.Slug, tm.pOutsider)
	_, errMissing := tm.Service.Member(ctx, "no-such-org", tm.pOutsider)
	_, errMissingID := tm.Service.Member(ctx, kve.NewID(kve.PrefixOrg, managetest.Start), tm.pOutsider)
	wantKind(t, errExisting, kve.KindNotFound)
	if errExisting.Error() != errMissing.Error() || errExisting.Error() != errMissingID.Error() {
		t.Errorf("outsider errors differ: %q, %q, %q", errExisting, errMissing, errMissingID)
	}
}
