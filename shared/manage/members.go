package manage

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// RoleInput changes a member's role.
type RoleInput struct {
	Role string `json:"role"`
}

// Offboarding is what removing a member took away, and what they may have
// taken with them.
type Offboarding struct {
	Member   kve.Member
	Revoked  []string // ids of the personal tokens revoked
	Sessions int      // sessions and API tokens ended
	// Revealed are the live shared tokens whose value the member saw (they
	// revealed or created them, as the audit log tells): the candidates for
	// rotation.
	Revealed []kve.Token
}

var errNoMember = kve.Errorf(kve.KindNotFound, "not_found", "member not found")

// Members lists an organization's members, oldest first (every member).
func (s *Service) Members(ctx context.Context, orgRef string, p Principal) ([]kve.Member, error) {
	m, err := s.Authorize(ctx, orgRef, p, allMembers...)
	if err != nil {
		return nil, err
	}
	list, err := s.store.Members(ctx, m.Org.ID)
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	return list, nil
}

// target reads the member an Owner acts on. Nobody acts on a member whose
// role is above their own (only Owners reach here today; the rule stands on
// its own should that change).
func (s *Service) target(ctx context.Context, m kve.Membership, userID string) (kve.Member, error) {
	t, err := s.store.Member(ctx, m.Org.ID, userID)
	if err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return kve.Member{}, errNoMember
		}
		return kve.Member{}, fmt.Errorf("read member: %w", err)
	}
	if !m.Role.AtLeast(t.Role) {
		return kve.Member{}, errForbidden
	}
	return t, nil
}

// ChangeRole sets a member's role (Owner). No role above the caller's own
// can be given, and the last Owner cannot step down (KindConflict).
func (s *Service) ChangeRole(ctx context.Context, orgRef string, p Principal, userID string, in RoleInput) (kve.Member, error) {
	m, err := s.Authorize(ctx, orgRef, p, ownerOnly...)
	if err != nil {
		return kve.Member{}, err
	}
	role, ok := kve.ParseRole(in.Role)
	if !ok {
		return kve.Member{}, kve.Errorf(kve.KindInvalid, "invalid_role", "role must be owner, admin or developer")
	}
	if !m.Role.AtLeast(role) {
		return kve.Member{}, errInviteRole
	}
	t, err := s.target(ctx, m, userID)
	if err != nil {
		return kve.Member{}, err
	}
	if t.Role == role {
		return t, nil
	}
	ev := p.Event(m.Org.ID, "member.role", userID, s.now()).With("email", t.Email).
		With("from", string(t.Role)).With("to", string(role))
	t, err = s.store.ChangeRole(ctx, m.Org.ID, userID, role, ev)
	if err != nil {
		return kve.Member{}, memberErr(err)
	}
	return t, nil
}

func memberErr(err error) error {
	if kve.KindOf(err) == kve.KindNotFound {
		return errNoMember
	}
	if kve.KindOf(err) == kve.KindConflict {
		return err // last_owner: its message says what to do
	}
	return fmt.Errorf("member: %w", err)
}

// RemoveMember offboards a member (Owner): in one transaction their
// membership goes, their personal tokens of the organization are revoked
// and their sessions limited to it end (all of their sessions, when this
// was their last organization). Shared tokens keep working; the answer, and
// the audit event, name those the member saw, for rotation.
func (s *Service) RemoveMember(ctx context.Context, orgRef string, p Principal, userID string) (Offboarding, error) {
	m, err := s.Authorize(ctx, orgRef, p, ownerOnly...)
	if err != nil {
		return Offboarding{}, err
	}
	t, err := s.target(ctx, m, userID)
	if err != nil {
		return Offboarding{}, err
	}
	revealed, _, err := s.trail(ctx, m.Org.ID, userID)
	if err != nil {
		return Offboarding{}, err
	}
	ids := make([]string, len(revealed))
	for i, tok := range revealed {
		ids[i] = tok.ID
	}
	ev := p.Event(m.Org.ID, "member.remove", userID, s.now()).With("email", t.Email).
		With("role", string(t.Role)).With("revealed_shared_tokens", strings.Join(ids, ","))
	r, err := s.store.RemoveMember(ctx, m.Org.ID, userID, ev)
	if err != nil {
		return Offboarding{}, memberErr(err)
	}
	s.log.InfoContext(ctx, "member_removed", "org_id", m.Org.ID, "user_id", userID,
		"revoked_tokens", len(r.Tokens), "ended_sessions", r.Sessions)
	return Offboarding{Member: r.Member, Revoked: r.Tokens, Sessions: r.Sessions, Revealed: revealed}, nil
}

// RemovalPlan is what removing a member would take away as things stand,
// for a confirmation page; RemoveMember's answer tells what it did.
type RemovalPlan struct {
	Member   kve.Member
	Personal []kve.Token // their personal tokens that are not revoked: the removal revokes them
	Sessions int         // their sessions and API tokens that would end
	Revealed []kve.Token // live shared tokens they saw: the candidates for rotation
}

// PlanRemoval tells what RemoveMember would do to a member, changing
// nothing (Owner). Personal tokens are found the way Revealed are, in the
// member's audit trail (members create their own personal tokens); the
// removal itself revokes every personal token the member owns, in the
// transaction.
func (s *Service) PlanRemoval(ctx context.Context, orgRef string, p Principal, userID string) (RemovalPlan, error) {
	m, err := s.Authorize(ctx, orgRef, p, ownerOnly...)
	if err != nil {
		return RemovalPlan{}, err
	}
	t, err := s.target(ctx, m, userID)
	if err != nil {
		return RemovalPlan{}, err
	}
	revealed, personal, err := s.trail(ctx, m.Org.ID, userID)
	if err != nil {
		return RemovalPlan{}, err
	}
	ms, err := s.store.Memberships(ctx, userID)
	if err != nil {
		return RemovalPlan{}, fmt.Errorf("list memberships: %w", err)
	}
	sessions, err := s.store.Sessions(ctx, userID)
	if err != nil {
		return RemovalPlan{}, fmt.Errorf("list sessions: %w", err)
	}
	// As the store's removal: sessions limited to the organization end, and
	// all of them when it is the member's last one.
	now, n := s.now(), 0
	for _, ses := range sessions {
		live := ses.ExpiresAt.IsZero() || now.Before(ses.ExpiresAt)
		if live && (len(ms) <= 1 || ses.OrgID == m.Org.ID) {
			n++
		}
	}
	return RemovalPlan{Member: t, Personal: personal, Sessions: n, Revealed: revealed}, nil
}

// revealScan bounds how much of a member's audit trail offboarding reads.
const revealScan = 20

// trail reads a member's audit trail in an organization: the live shared
// tokens whose value userID saw — those they revealed (token.reveal, also
// written for each value of a .env file) or created (the creation answer
// carries the value) — and the personal tokens of theirs that are not
// revoked.
func (s *Service) trail(ctx context.Context, orgID, userID string) (revealed, personal []kve.Token, err error) {
	seen := map[string]bool{}
	var order []string
	for _, action := range []string{"token.reveal", "token.create"} {
		f := store.EventFilter{Action: action, ActorID: userID, Limit: store.MaxLimit}
		for range revealScan {
			page, err := s.store.Events(ctx, orgID, f)
			if err != nil {
				return nil, nil, fmt.Errorf("read audit log: %w", err)
			}
			for _, ev := range page.Items {
				if !seen[ev.Target] {
					seen[ev.Target] = true
					order = append(order, ev.Target)
				}
			}
			if page.Next == "" {
				break
			}
			f.Cursor = page.Next
		}
	}
	revealed, personal = []kve.Token{}, []kve.Token{}
	for _, id := range order {
		t, err := s.store.Token(ctx, orgID, id)
		if kve.KindOf(err) == kve.KindNotFound {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read token: %w", err)
		}
		t.Sealed = nil
		switch {
		case t.Revoked():
		case t.Kind == kve.TokenShared:
			revealed = append(revealed, t)
		case t.OwnerID == userID:
			personal = append(personal, t)
		}
	}
	return revealed, personal, nil
}
