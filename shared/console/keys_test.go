package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/store"
)

func TestKeys(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	const value = "sk-test-FAKE-console-key-0123456789wxyz"

	// A refused key never shows its value again.
	res := b.post("/o/acme-labs/keys", url.Values{"name": {"Bad Name"}, "provider": {"openai"}, "secret": {value}})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, `id="name-error">key name must be`) {
		t.Errorf("bad name: status %d, want 422 with the message beside the name\n%s", res.Status, res.Body)
	}
	if strings.Contains(res.Body, value) {
		t.Fatal("a refused key form shows the key's value")
	}

	res = b.post("/o/acme-labs/keys", url.Values{"name": {"backup"}, "provider": {"openai"}, "secret": {"  " + value + "\n"}})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/keys?done=key_added" {
		t.Fatalf("add key: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	page := b.mustGet(res.location())
	for _, want := range []string{"Key saved.", `<span class="name">backup</span>`, "<code>…wxyz</code>", "SHA256:", "https://api.openai.com"} {
		if !strings.Contains(page, want) {
			t.Errorf("keys page lacks %s", want)
		}
	}
	if strings.Contains(page, value) || strings.Contains(page, strings.TrimSuffix(value, "wxyz")) {
		t.Fatal("the keys page shows a key's value")
	}

	if res := b.post("/o/acme-labs/keys", url.Values{"name": {"backup"}, "provider": {"openai"}, "secret": {value}}); res.Status != http.StatusConflict ||
		!strings.Contains(res.Body, `id="name-error">a key named &#34;backup&#34; exists`) {
		t.Errorf("duplicate name: status %d, want 409 beside the name", res.Status)
	}

	b.mustGet("/o/acme-labs/keys/backup/rotate")
	res = b.post("/o/acme-labs/keys/backup/rotate", url.Values{"secret": {"sk-test-FAKE-rotated-000000000000abcd"}})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/keys?done=key_rotated" {
		t.Fatalf("rotate: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	if page := b.mustGet(res.location()); !strings.Contains(page, "<code>…abcd</code>") || !strings.Contains(page, "rotated 2026-") {
		t.Error("the keys page does not show the rotated key's new last four and rotation date")
	}

	// A key that tokens use cannot go; the confirmation page changes nothing.
	b.createToken("acme-labs", tokenFields("uses backup"))
	b.mustGet("/o/acme-labs/keys/main/delete")
	if res := b.post("/o/acme-labs/keys/main/delete", url.Values{}); res.Status != http.StatusConflict ||
		!strings.Contains(res.Body, "revoke them first") {
		t.Errorf("delete a key in use: status %d, want 409 saying why", res.Status)
	}
	res = b.post("/o/acme-labs/keys/backup/delete", url.Values{})
	if res.Status != http.StatusSeeOther || res.location() != "/o/acme-labs/keys?done=key_deleted" {
		t.Fatalf("delete: %d to %q\n%s", res.Status, res.location(), res.Body)
	}
	if page := b.mustGet("/o/acme-labs/keys"); strings.Contains(page, `<span class="name">backup</span>`) {
		t.Error("a deleted key is still listed")
	}
	got := map[string]int{}
	for _, e := range auditEvents(t, s, store.EventFilter{}) {
		got[e.Action]++
	}
	for _, action := range []string{"key.create", "key.rotate", "key.delete"} {
		if got[action] == 0 {
			t.Errorf("no %s audit event", action)
		}
	}
}

func TestGenericKey(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	res := b.post("/o/acme-labs/keys", url.Values{
		"name": {"stripe"}, "provider": {"stripe"}, "upstream": {"https://api.stripe.com"},
		"secret": {"sk_test_FAKE_0123456789"}, "auth_mode": {"header"}, "auth_name": {"Cookie"},
	})
	if res.Status != http.StatusUnprocessableEntity || !strings.Contains(res.Body, `<details class="wide" open>`) ||
		!strings.Contains(res.Body, `id="auth-error">auth.name must be a header name kve may set`) {
		t.Errorf("forbidden header: status %d, want 422 with the injection settings open and the message\n%s", res.Status, res.Body)
	}
	res = b.post("/o/acme-labs/keys", url.Values{
		"name": {"stripe"}, "provider": {"stripe"}, "upstream": {"https://api.stripe.com"},
		"secret": {"sk_test_FAKE_0123456789"}, "auth_mode": {"query"}, "auth_name": {"api_key"},
	})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("generic key: status %d\n%s", res.Status, res.Body)
	}
	if page := b.mustGet("/o/acme-labs/keys"); !strings.Contains(page, "query ?api_key=") {
		t.Error("the keys page does not say how the generic key is sent")
	}
}
