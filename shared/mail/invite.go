package mail

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Invite is an invitation into an organization, as an email tells it.
// Org, Inviter and InviterEmail are untrusted; Link is the accept URL that
// kve built from its configured public URL.
type Invite struct {
	To           string // the invitee's address
	Org          string // the organization's name
	Inviter      string // the inviter's name
	InviterEmail string
	Role         string // owner, admin or developer
	Link         string
	Expires      time.Time
}

// Lengths of untrusted values in an invite, in runes.
const (
	maxName  = 60
	maxEmail = 100
)

// Message returns the invite's email. It fails on a link that is not an
// absolute http(s) URL without spaces, which would be a bug in kve.
func (i Invite) Message() (Message, error) {
	u, err := url.Parse(i.Link)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		strings.ContainsFunc(i.Link, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return Message{}, errors.New("mail: invite link is not an absolute http(s) URL")
	}
	org := Clean(i.Org, maxName)
	inviter := Clean(i.Inviter, maxName)
	if inviter == "" {
		inviter = "A member"
	}
	from := inviter
	if e := Clean(i.InviterEmail, maxEmail); e != "" {
		from += " (" + e + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Hello,\n\n%s invited you to join the organization %q on KeyVault Edge as %s.\n\n",
		from, org, Clean(i.Role, 20))
	b.WriteString("To accept, open this link and choose a password (or sign in with yours):\n\n")
	b.WriteString(i.Link + "\n\n")
	fmt.Fprintf(&b, "The link works once and expires on %s.\n", i.Expires.UTC().Format("2 January 2006 at 15:04 UTC"))
	b.WriteString("If you did not expect this invitation, ignore this email: nothing happens unless you accept.\n\n")
	b.WriteString("-- \nKeyVault Edge\n")
	return Message{
		To:      i.To,
		Subject: fmt.Sprintf("%s invited you to %q on KeyVault Edge", inviter, org),
		Text:    b.String(),
	}, nil
}
