// Package mail sends kve's email: invites, for now. A Sender delivers a
// Message; SES delivers through Amazon SES (AWS), SMTP through a mail server
// (local mode). With no Sender configured kve sends nothing and the API
// hands the invite link to the inviter instead.
//
// Everything in a message but its links comes from users and is untrusted
// (SECURITY T37): organization and inviter names are cleaned of control and
// formatting characters and truncated before they go into a subject or a
// body; addresses are parsed with net/mail and must be bare; messages are
// plain text, so no markup of anyone's reaches a mail client; headers are
// encoded by the sending library or service, never assembled here.
package mail

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Message is one plain-text email to one recipient.
type Message struct {
	To      string // a bare address: ada@example.com
	Subject string
	Text    string
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// maxSubject bounds a subject, in runes.
const maxSubject = 200

// Address parses a bare address (no display name, no angle brackets), as
// recipients and senders must be.
func Address(s string) (*mail.Address, error) {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != strings.TrimSpace(s) {
		return nil, errors.New("not a bare email address")
	}
	return a, nil
}

// check validates m before it is handed to a transport, and returns its
// recipient and a subject safe for a header.
func check(m Message) (*mail.Address, string, error) {
	to, err := Address(m.To)
	if err != nil {
		return nil, "", errors.New("mail: recipient is not a bare email address")
	}
	subject := Clean(m.Subject, maxSubject)
	if subject == "" || m.Text == "" {
		return nil, "", errors.New("mail: a message needs a subject and a text")
	}
	return to, subject, nil
}

// Clean makes an untrusted string safe to show in a subject or a line of
// text: control and formatting characters (line breaks, bidirectional
// overrides, zero-width characters) become spaces, runs of spaces become
// one, and the result is cut to at most limit runes, ending in "…" when
// cut. Invalid UTF-8 is replaced.
func Clean(s string, limit int) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	out := b.String()
	if utf8.RuneCountInString(out) <= limit {
		return out
	}
	runes := []rune(out)
	return strings.TrimSpace(string(runes[:max(limit-1, 0)])) + "…"
}
