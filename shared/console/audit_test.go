package console_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestAudit(t *testing.T) {
	s := newSite(t)
	b := s.owner(t)
	b.createToken("acme-labs", tokenFields("svc"))
	id := tokenID(t, b.mustGet("/o/acme-labs/tokens"), "svc")
	s.Clock.Add(time.Second) // the log is newest first, by time
	b.post("/o/acme-labs/tokens/"+id+"/reveal", nil)

	all := b.mustGet("/o/acme-labs/audit")
	for _, want := range []string{"<code>org.create</code>", "<code>key.create</code>", "<code>token.create</code>", "<code>token.reveal</code>", "owner@example.com"} {
		if !strings.Contains(all, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	actions := regexp.MustCompile(`<code>([a-z]+\.[a-z]+)</code></a>`)
	for _, tt := range []struct {
		name, query string
		want        []string
	}{
		{"by action", "?action=token.reveal", []string{"token.reveal"}},
		{"by target", "?target=" + id, []string{"token.reveal", "token.create"}},
		{"by actor", "?actor=" + s.Owner.ID + "&action=key.create", []string{"key.create"}},
		{"since a later day", "?since=2030-01-01", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			page := b.mustGet("/o/acme-labs/audit" + tt.query)
			var got []string
			for _, m := range actions.FindAllStringSubmatch(page, -1) {
				got = append(got, m[1])
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("actions %v, want %v", got, tt.want)
			}
		})
	}
	if res := b.get("/o/acme-labs/audit?since=yesterday"); res.Status != http.StatusUnprocessableEntity {
		t.Errorf("a bad date: status %d, want 422", res.Status)
	}
	if body := s.as(t, s.Admin).mustGet("/o/acme-labs/audit"); !strings.Contains(body, "<code>token.reveal</code>") {
		t.Error("an Admin does not see the audit log")
	}
}
