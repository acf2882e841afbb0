package manage

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/store"
)

// InviteInput invites an email address with a role. The organization comes
// from the route, never from the body.
type InviteInput struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// IssuedInvite is an invite just created or resent. When no mail is
// configured, AcceptURL is the link, with the code, for the inviter to pass
// on; when mail is, the link went only to the invitee and AcceptURL is empty.
type IssuedInvite struct {
	Invite    store.Invite
	Mailed    bool
	AcceptURL kve.Secret
}

// AcceptInput accepts an invite: the code from the link, and for someone
// without an account the name and password to create one with (for an
// existing account, its password).
type AcceptInput struct {
	Code     kve.Secret `json:"code"`
	Name     string     `json:"name"`
	Password kve.Secret `json:"password"`
}

// InviteInfo is what an invite link shows before anyone accepts it.
type InviteInfo struct {
	Org       kve.Org
	Role      kve.Role
	Email     string
	Inviter   string // the inviter's name, as they gave it
	ExpiresAt time.Time
	Account   bool // an account with Email exists: accepting asks for its password
}

// Accepted is the answer to an accept: the new membership, and a credential
// for someone who was not signed in.
type Accepted struct {
	Membership kve.Membership
	Credential *Credential
}

var (
	errNoInvite     = kve.Errorf(kve.KindNotFound, "not_found", "invite not found: check the link, or ask for a new one")
	errInviteClosed = kve.Errorf(kve.KindGone, "invite_closed", "this invite was already used, was revoked or has expired: ask for a new one")
	errWrongAccount = kve.Errorf(kve.KindForbidden, "wrong_account", "this invite is for another email address: sign out, or sign in with that address")
	errIsMember     = kve.Errorf(kve.KindConflict, "already_member", "already a member of this organization")
	errInviteRole   = kve.Errorf(kve.KindForbidden, "forbidden", "you can give at most your own role")
)

// maxCodeBytes bounds a presented invite code; codes are 26 characters.
const maxCodeBytes = 64

// newInviteCode returns 130 bits of randomness as 26 base32 characters.
func newInviteCode() kve.Secret { return kve.Secret(rand.Text()) }

// CreateInvite invites an address into an organization (Owner, Admin), with
// a role no higher than the inviter's, and mails the link; without mail the
// answer carries it.
func (s *Service) CreateInvite(ctx context.Context, orgRef string, p Principal, in InviteInput) (IssuedInvite, error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return IssuedInvite{}, err
	}
	email, err := checkEmail(in.Email)
	if err != nil {
		return IssuedInvite{}, err
	}
	role, ok := kve.ParseRole(in.Role)
	if !ok {
		return IssuedInvite{}, kve.Errorf(kve.KindInvalid, "invalid_role", "role must be owner, admin or developer")
	}
	if !m.Role.AtLeast(role) {
		return IssuedInvite{}, errInviteRole
	}
	if u, err := s.store.UserByEmail(ctx, email); err == nil {
		if _, err := s.store.Member(ctx, m.Org.ID, u.ID); err == nil {
			return IssuedInvite{}, errIsMember
		}
	}
	now := s.now().UTC()
	code := newInviteCode()
	inv := store.Invite{
		ID: kve.NewID(kve.PrefixInvite, now), OrgID: m.Org.ID, Email: email, Role: role,
		Hash: s.keyring.Hash(code.Reveal()), InvitedBy: p.UserID, CreatedAt: now, ExpiresAt: now.Add(s.inviteTTL),
	}
	ev := p.Event(m.Org.ID, "invite.create", inv.ID, now).With("email", email).With("role", string(role))
	if err := s.store.CreateInvite(ctx, inv, ev); err != nil {
		return IssuedInvite{}, fmt.Errorf("create invite: %w", err)
	}
	return s.deliver(ctx, m.Org, p, inv, code)
}

// deliver mails an invite's link, or returns it when no mail is configured.
// The link is built from the configured public URL, never from a request.
func (s *Service) deliver(ctx context.Context, org kve.Org, p Principal, inv store.Invite, code kve.Secret) (IssuedInvite, error) {
	link := s.publicURL + "/invite/" + code.Reveal()
	if s.mail == nil {
		return IssuedInvite{Invite: inv, AcceptURL: kve.Secret(link)}, nil
	}
	msg, err := mail.Invite{To: inv.Email, Org: org.Name, Inviter: p.Name, InviterEmail: p.Email,
		Role: string(inv.Role), Link: link, Expires: inv.ExpiresAt}.Message()
	if err == nil {
		err = s.mail.Send(ctx, msg)
	}
	if err != nil {
		s.log.WarnContext(ctx, "invite_mail_failed", "org_id", org.ID, "invite_id", inv.ID, "err", err)
		return IssuedInvite{}, kve.Wrap(kve.KindUnavailable, "mail_failed",
			"the invite is saved but its email could not be sent: resend it later", err)
	}
	s.log.InfoContext(ctx, "invite_mailed", "org_id", org.ID, "invite_id", inv.ID)
	return IssuedInvite{Invite: inv, Mailed: true}, nil
}

// SendsMail reports whether invites go out by mail. Without mail,
// CreateInvite and ResendInvite answer the link for the inviter to pass
// on, and the dashboard's invite form says so beforehand.
func (s *Service) SendsMail() bool { return s.mail != nil }

// Invites lists an organization's open invites, newest first (Owner, Admin).
func (s *Service) Invites(ctx context.Context, orgRef string, p Principal) ([]store.Invite, error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return nil, err
	}
	list, err := s.store.Invites(ctx, m.Org.ID)
	if err != nil {
		return nil, fmt.Errorf("list invites: %w", err)
	}
	now := s.now()
	open := list[:0]
	for _, inv := range list {
		if inv.Open(now) {
			open = append(open, inv)
		}
	}
	return open, nil
}

// managedInvite reads an invite the caller may revoke or resend: one of the
// organization's, for a role no higher than theirs.
func (s *Service) managedInvite(ctx context.Context, orgRef string, p Principal, id string) (kve.Membership, store.Invite, error) {
	m, err := s.Authorize(ctx, orgRef, p, managers...)
	if err != nil {
		return m, store.Invite{}, err
	}
	inv, err := s.store.Invite(ctx, m.Org.ID, id)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return m, store.Invite{}, errNoInvite
		}
		return m, store.Invite{}, fmt.Errorf("read invite: %w", err)
	}
	if !m.Role.AtLeast(inv.Role) {
		return m, store.Invite{}, errInviteRole
	}
	return m, inv, nil
}

// RevokeInvite closes an open invite (Owner, Admin): its link stops working.
func (s *Service) RevokeInvite(ctx context.Context, orgRef string, p Principal, id string) error {
	m, inv, err := s.managedInvite(ctx, orgRef, p, id)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	ev := p.Event(m.Org.ID, "invite.revoke", inv.ID, now).With("email", inv.Email)
	if err := s.store.RevokeInvite(ctx, m.Org.ID, inv.ID, now, ev); err != nil {
		return inviteErr(err)
	}
	return nil
}

// ResendInvite gives an open (or expired, but not used or revoked) invite a
// new code and a new expiry, and sends it again (Owner, Admin). The old link
// stops working: only the code's hash is stored, so the old one cannot be
// sent twice.
func (s *Service) ResendInvite(ctx context.Context, orgRef string, p Principal, id string) (IssuedInvite, error) {
	m, inv, err := s.managedInvite(ctx, orgRef, p, id)
	if err != nil {
		return IssuedInvite{}, err
	}
	now := s.now().UTC()
	code := newInviteCode()
	ev := p.Event(m.Org.ID, "invite.resend", inv.ID, now).With("email", inv.Email)
	inv, err = s.store.RenewInvite(ctx, m.Org.ID, inv.ID, s.keyring.Hash(code.Reveal()), now.Add(s.inviteTTL), ev)
	if err != nil {
		return IssuedInvite{}, inviteErr(err)
	}
	return s.deliver(ctx, m.Org, p, inv, code)
}

func inviteErr(err error) error {
	switch kve.KindOf(err) {
	case kve.KindNotFound:
		return errNoInvite
	case kve.KindGone:
		return errInviteClosed
	}
	return fmt.Errorf("invite: %w", err)
}

// openInvite finds the open invite a code belongs to. Unknown codes count
// against the client's failures, as wrong passwords do.
func (s *Service) openInvite(ctx context.Context, code kve.Secret, ip string, now time.Time) (store.Invite, error) {
	tries, d := attempt(now, s.clients.of(ip))
	if d > 0 {
		return store.Invite{}, rateLimited(d)
	}
	v := code.Reveal()
	if v == "" || len(v) > maxCodeBytes {
		return store.Invite{}, errNoInvite
	}
	inv, err := s.store.InviteByHash(ctx, s.keyring.Hash(v))
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return store.Invite{}, errNoInvite
		}
		tries.forgive(now) // the store failed, not the caller
		return store.Invite{}, fmt.Errorf("read invite: %w", err)
	}
	tries.forgive(now)
	if !inv.Open(now) {
		return store.Invite{}, errInviteClosed
	}
	return inv, nil
}

// InviteInfo tells what an invite is for, without accepting it: mail
// scanners open links, so reading one must change nothing.
func (s *Service) InviteInfo(ctx context.Context, code kve.Secret, ip string) (InviteInfo, error) {
	now := s.now()
	inv, err := s.openInvite(ctx, code, ip, now)
	if err != nil {
		return InviteInfo{}, err
	}
	org, err := s.store.Org(ctx, inv.OrgID)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return InviteInfo{}, errNoInvite
		}
		return InviteInfo{}, fmt.Errorf("read org: %w", err)
	}
	info := InviteInfo{Org: org, Role: inv.Role, Email: inv.Email, ExpiresAt: inv.ExpiresAt}
	if u, err := s.store.User(ctx, inv.InvitedBy); err == nil {
		info.Inviter = u.Name
	}
	if _, err := s.store.UserByEmail(ctx, inv.Email); err == nil {
		info.Account = true
	} else if kve.KindOf(err) != kve.KindNotFound {
		return InviteInfo{}, fmt.Errorf("look up user: %w", err)
	}
	return info, nil
}

// AcceptInvite joins the invite's organization. The invite is bound to its
// address:
//   - signed in (p not nil): the account must have that address, else
//     KindForbidden; no password is asked;
//   - an account with that address exists: in.Password must be its
//     password (failures are throttled as sign-ins are);
//   - otherwise the account is created with in.Name and in.Password.
//
// Someone not signed in gets a credential of the given kind. An invite
// works once: of concurrent accepts exactly one succeeds, the others get
// KindGone.
func (s *Service) AcceptInvite(ctx context.Context, in AcceptInput, p *Principal, ip string, kind kve.SessionKind) (Accepted, error) {
	now := s.now()
	inv, err := s.openInvite(ctx, in.Code, ip, now)
	if err != nil {
		return Accepted{}, err
	}
	a := store.Acceptance{Hash: inv.Hash, At: now.UTC()}
	var cred *Credential
	switch existing, err := s.store.UserByEmail(ctx, inv.Email); {
	case p != nil:
		if p.Email != inv.Email {
			return Accepted{}, errWrongAccount
		}
		if a.User, err = s.store.User(ctx, p.UserID); err != nil {
			return Accepted{}, fmt.Errorf("read user: %w", err)
		}
	case err == nil:
		tries, d := attempt(now, s.accounts.of(inv.Email), s.clients.of(ip))
		if d > 0 {
			return Accepted{}, rateLimited(d)
		}
		hash := existing.Password
		if len(hash) == 0 { // an account without a password cannot accept by password
			hash = s.hasher.dummy
		}
		ok := false
		if len(in.Password) <= maxPasswordBytes {
			if ok, err = s.hasher.verify(ctx, hash, in.Password); err != nil {
				return Accepted{}, err
			}
		}
		if !ok || len(existing.Password) == 0 {
			return Accepted{}, errSignIn
		}
		tries.forgive(now)
		a.User = existing
	case kve.KindOf(err) == kve.KindNotFound:
		if a.User, err = s.newUser(ctx, inv.Email, in.Name, in.Password, now); err != nil {
			return Accepted{}, err
		}
		a.NewUser = true
	default:
		return Accepted{}, fmt.Errorf("look up user: %w", err)
	}
	if p == nil {
		c := s.newCredential(a.User.ID, kind, "invite", now)
		a.Session, cred = &c.Session, &c
	}
	a.Event = kve.Actor{UserID: a.User.ID, Email: a.User.Email, IP: ip}.Event(inv.OrgID, "member.join", a.User.ID, now).
		With("invite", inv.ID).With("role", string(inv.Role))
	m, err := s.store.AcceptInvite(ctx, a)
	if err != nil {
		switch kve.KindOf(err) {
		case kve.KindGone:
			return Accepted{}, errInviteClosed
		case kve.KindNotFound:
			return Accepted{}, errNoInvite
		case kve.KindForbidden:
			return Accepted{}, errWrongAccount
		case kve.KindConflict:
			if kve.CodeOf(err) == "already_member" {
				return Accepted{}, errIsMember
			}
			return Accepted{}, errInviteClosed // the account was created by a concurrent accept of this invite
		}
		return Accepted{}, fmt.Errorf("accept invite: %w", err)
	}
	org, err := s.store.Org(ctx, m.OrgID)
	if err != nil {
		return Accepted{}, fmt.Errorf("read org: %w", err)
	}
	s.log.InfoContext(ctx, "invite_accepted", "org_id", m.OrgID, "invite_id", inv.ID, "user_id", m.UserID)
	return Accepted{Membership: kve.Membership{Org: org, Role: m.Role}, Credential: cred}, nil
}
