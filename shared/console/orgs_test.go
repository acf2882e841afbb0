package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
)

func TestRenameOrg(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	if page := b.mustGet("/o/acme-labs/settings"); !strings.Contains(page, `action="/o/acme-labs/settings/rename"`) ||
		!strings.Contains(page, `href="/o/acme-labs/settings/delete"`) {
		t.Error("the Owner's settings page lacks the rename form or the delete link")
	}
	if page := s.as(t, s.Admin).mustGet("/o/acme-labs/settings"); strings.Contains(page, "/settings/rename") || strings.Contains(page, "/settings/delete") {
		t.Error("an Admin's settings page offers renaming or deleting")
	}

	res := b.post("/o/acme-labs/settings/rename", url.Values{"name": {" "}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, `id="name-error">name must be 1 to 100 characters`) {
		t.Errorf("empty name: status %d, want 422 beside the field\n%s", res.Status, res.Body)
	}
	res = b.post("/o/acme-labs/settings/rename", url.Values{"name": {"Acme <Research>"}})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/settings?done=org_renamed" {
		t.Fatalf("rename: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	page := b.mustGet(res.location())
	if !strings.Contains(page, "Organization renamed.") || !strings.Contains(page, "<dd>Acme &lt;Research&gt;</dd>") {
		t.Error("the settings page does not show the new name, escaped")
	}
	if res := s.as(t, s.Admin).post("/o/acme-labs/settings/rename", url.Values{"name": {"Hijacked"}}); res.Status != http.StatusForbidden {
		t.Errorf("an Admin renames: status %d, want 403", res.Status)
	}
}

func TestDeleteOrg(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	value := b.createToken("acme-labs", tokenFields("svc"))

	page := b.mustGet("/o/acme-labs/settings/delete")
	if !strings.Contains(page, "<h1>Delete Acme Labs</h1>") || !strings.Contains(page, `<label for="confirm">Type <strong>Acme Labs</strong> to confirm</label>`) {
		t.Errorf("the confirmation does not name the organization\n%s", page)
	}
	for _, tt := range []struct {
		name   string
		who    *visitor
		method string
		status int
	}{
		{"an admin opens it", s.as(t, s.Admin), "GET", http.StatusForbidden},
		{"an admin deletes", s.as(t, s.Admin), "POST", http.StatusForbidden},
		{"an outsider deletes", s.as(t, s.Outsider), "POST", http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if res := tt.who.do(tt.method, "/o/acme-labs/settings/delete", url.Values{"confirm": {"Acme Labs"}}, nil); res.Status != tt.status {
				t.Errorf("status %d, want %d", res.Status, tt.status)
			}
		})
	}
	res := b.post("/o/acme-labs/settings/delete", url.Values{"confirm": {"acme labs"}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, `id="confirm-error">Type the organization&#39;s name exactly`) {
		t.Errorf("a wrong name: status %d, want 422 beside the field\n%s", res.Status, res.Body)
	}
	if _, err := s.Store.Org(t.Context(), s.Org.ID); err != nil {
		t.Fatalf("a wrong name deleted the organization: %v", err)
	}

	res = b.post("/o/acme-labs/settings/delete", url.Values{"confirm": {"Acme Labs"}})
	if res.Status != http.StatusSeeOther || res.location() != "/?done=org_deleted" {
		t.Fatalf("delete: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	res = b.get(res.location())
	if res.Status != http.StatusSeeOther || res.location() != "/o/new?done=org_deleted" {
		t.Fatalf("after the deletion: %d to %q, want the new organization page (no organization left)", res.Status, res.location())
	}
	if page := b.mustGet(res.location()); !strings.Contains(page, "Organization deleted.") {
		t.Error("no confirmation of the deletion")
	}
	if tok, err := s.Store.TokenByHash(t.Context(), s.Keyring.Hash(value)); err == nil && !tok.Revoked() {
		t.Error("the deleted organization's token still works")
	}
	if _, err := s.Store.Org(t.Context(), s.Org.ID); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("the organization after deletion: %v, want not found", err)
	}
}
