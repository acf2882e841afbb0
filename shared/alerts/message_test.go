package alerts

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestSample (SECURITY T37): attacker-controlled text is recorded with
// everything that could break a line, reorder text or hide characters
// made visible, and cut.
func TestSample(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"plain", "https://app.example.com", "https://app.example.com"},
		{"markup stays for the renderer to escape", "<script>alert(1)</script>", "<script>alert(1)</script>"},
		{"line breaks", "a\r\nX-Injected: 1", `a\u000d\u000aX-Injected: 1`},
		{"nul", "a\x00b", `a\u0000b`},
		{"bidi override", "evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"zero width", "pay\u200bpal", `pay\u200bpal`},
		{"invalid utf-8", "a\xffb", `a\xffb`},
		{"backslash", `a\u000ab`, `a\\u000ab`},
		{"unicode kept", "Zürich ✓", "Zürich ✓"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sample(tt.in); got != tt.want {
				t.Errorf("Sample(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	long := Sample(strings.Repeat("é", 500) + "\x00")
	if !utf8.ValidString(long) || len(long) > maxSample+len("…") || !strings.HasSuffix(long, "…") {
		t.Errorf("long sample: %d bytes, valid %v", len(long), utf8.ValidString(long))
	}
}

func TestSubject(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"kve high alert: usage_spike on token web (prd)", "kve high alert: usage_spike on token web (prd)"},
		{"token\r\nBcc: x@example.com", "token  Bcc: x@example.com"},
		{"Zürich", "Z?rich"},
		{strings.Repeat("a", 150), strings.Repeat("a", 97) + "..."},
	} {
		if got := Subject(tt.in); got != tt.want || len(got) > 100 {
			t.Errorf("Subject(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIncidentID(t *testing.T) {
	a := IncidentID("org_1", "tok_1", UsageSpike)
	if a != IncidentID("org_1", "tok_1", UsageSpike) || !strings.HasPrefix(a, "inc_") || len(a) != 20 {
		t.Errorf("IncidentID = %q: want stable, inc_ + 16", a)
	}
	for _, other := range []string{IncidentID("org_1", "tok_1", ServerUse), IncidentID("org_1", "tok_2", UsageSpike),
		IncidentID("org_2", "tok_1", UsageSpike)} {
		if other == a {
			t.Errorf("IncidentID collides: %q", a)
		}
	}
}

func TestSeverity(t *testing.T) {
	for typ, want := range map[Type]string{LeakReported: SeverityCritical, EnvMismatch: SeverityHigh, UsageSpike: SeverityHigh,
		RevokedTokenUsed: SeverityHigh, OriginNotAllowed: SeverityMedium, TestAlert: SeverityInfo} {
		if got := typ.Severity(); got != want {
			t.Errorf("%s: severity %q, want %q", typ, got, want)
		}
	}
}
