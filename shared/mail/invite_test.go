package mail

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		limit    int
		want     string
	}{
		{"plain", "Acme Labs", 60, "Acme Labs"},
		{"line breaks", "Acme\r\nBcc: evil@example.com", 60, "Acme Bcc: evil@example.com"},
		{"bidi override", "Acme\u202Egnp.exe", 60, "Acme gnp.exe"},
		{"zero width", "Ac\u200Bme", 60, "Ac me"},
		{"runs of space", "  a \t\t b  ", 60, "a b"},
		{"invalid utf-8", "a\xffb", 60, "a\uFFFDb"},
		{"cut", strings.Repeat("é", 70), 60, strings.Repeat("é", 59) + "…"},
		{"empty", "\r\n\t", 60, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Clean(tc.in, tc.limit)
			if got != tc.want {
				t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if n := utf8.RuneCountInString(got); n > tc.limit {
				t.Errorf("Clean(%q) has %d runes, limit %d", tc.in, n, tc.limit)
			}
		})
	}
}

func TestInviteMessage(t *testing.T) {
	inv := Invite{
		To:           "new@example.com",
		Org:          "Acme\r\nBcc: victim@example.com <script>alert(1)</script>" + strings.Repeat("x", 100),
		Inviter:      "Mallory\u202E",
		InviterEmail: "mallory@example.com",
		Role:         "developer",
		Link:         "https://kve.example.com/invite/CODE123",
		Expires:      time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC),
	}
	m, err := inv.Message()
	if err != nil {
		t.Fatal(err)
	}
	if m.To != inv.To {
		t.Errorf("To = %q", m.To)
	}
	if strings.ContainsAny(m.Subject, "\r\n") || utf8.RuneCountInString(m.Subject) > maxSubject {
		t.Errorf("Subject = %q: breaks a line or is too long", m.Subject)
	}
	if strings.Count(m.Text, inv.Link) != 1 {
		t.Errorf("the text holds the link %d times, want once:\n%s", strings.Count(m.Text, inv.Link), m.Text)
	}
	for _, bad := range []string{"\r", "\u202E", "Bcc: victim@example.com <script>alert(1)</script>" + strings.Repeat("x", 100)} {
		if strings.Contains(m.Text, bad) || strings.Contains(m.Subject, bad) {
			t.Errorf("message holds %q", bad)
		}
	}
	if !strings.Contains(m.Text, "5 March 2026 at 09:00 UTC") || !strings.Contains(m.Text, "as developer") {
		t.Errorf("text lacks the expiry or the role:\n%s", m.Text)
	}

	for _, link := range []string{"", "/invite/x", "javascript:alert(1)", "https://kve.example.com/invite/a b", "https://kve.example.com/\r\nx"} {
		bad := inv
		bad.Link = link
		if _, err := bad.Message(); err == nil {
			t.Errorf("Message with link %q succeeded", link)
		}
	}
}

func TestAddress(t *testing.T) {
	for _, s := range []string{"ada@example.com", "a.b+c@sub.example.org"} {
		if _, err := Address(s); err != nil {
			t.Errorf("Address(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "Ada <ada@example.com>", "ada@example.com, eve@example.com", "ada@example.com\r\nBcc: eve@example.com", "ada"} {
		if _, err := Address(s); err == nil {
			t.Errorf("Address(%q) succeeded", s)
		}
	}
}
