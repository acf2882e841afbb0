package manage

import (
	"context"
	"fmt"
	"slices"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Account operations act on the caller's own user and credentials. They
// belong to no organization, so no organization's audit log records them;
// the service log does, without secrets.

// PasswordInput changes the caller's password.
type PasswordInput struct {
	Current kve.Secret `json:"current_password"`
	New     kve.Secret `json:"new_password"`
}

var errNoAPIToken = kve.Errorf(kve.KindNotFound, "not_found", "API token not found")

// APITokens lists the caller's kvm_ API tokens, newest first (never their
// values, which are not stored).
func (s *Service) APITokens(ctx context.Context, p Principal) ([]kve.Session, error) {
	list, err := s.store.Sessions(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return slices.DeleteFunc(list, func(ses kve.Session) bool { return ses.Kind != kve.SessionAPI }), nil
}

// DeleteAPIToken ends one of the caller's kvm_ API tokens; another user's,
// or a browser session, is KindNotFound.
func (s *Service) DeleteAPIToken(ctx context.Context, p Principal, id string) error {
	list, err := s.APITokens(ctx, p)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(list, func(ses kve.Session) bool { return ses.ID == id }) {
		return errNoAPIToken
	}
	if err := s.store.DeleteSession(ctx, p.UserID, id); err != nil {
		if kve.KindOf(err) == kve.KindNotFound {
			return errNoAPIToken
		}
		return fmt.Errorf("delete session: %w", err)
	}
	s.log.InfoContext(ctx, "api_token_deleted", "user_id", p.UserID, "session_id", id)
	return nil
}

// ChangePassword sets a new password after checking the current one, and
// signs out every other session and API token of the caller (SECURITY
// T33); the credential of this request stays. It returns how many ended.
// Wrong current passwords are throttled as failed sign-ins are.
func (s *Service) ChangePassword(ctx context.Context, p Principal, in PasswordInput) (int, error) {
	now := s.now()
	tries, d := attempt(now, s.clients.of(p.IP), s.accounts.of(p.Email))
	if d > 0 {
		return 0, rateLimited(d)
	}
	u, err := s.store.User(ctx, p.UserID)
	if err != nil {
		return 0, fmt.Errorf("read user: %w", err)
	}
	hash := u.Password
	if len(hash) == 0 {
		hash = s.hasher.dummy
	}
	ok := false
	if len(in.Current) <= maxPasswordBytes {
		if ok, err = s.hasher.verify(ctx, hash, in.Current); err != nil {
			return 0, err
		}
	}
	if !ok || len(u.Password) == 0 {
		return 0, kve.Errorf(kve.KindForbidden, "wrong_password", "the current password is wrong")
	}
	tries.forgive(now)
	if err := checkNewPassword(in.New); err != nil {
		return 0, err
	}
	next, err := s.hasher.hash(ctx, in.New)
	if err != nil {
		return 0, err
	}
	n, err := s.store.ChangePassword(ctx, u.ID, next, p.SessionID)
	if err != nil {
		return 0, fmt.Errorf("change password: %w", err)
	}
	s.log.InfoContext(ctx, "password_changed", "user_id", u.ID, "ended_sessions", n)
	return n, nil
}

// Logout ends the session or API token the caller used.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if err := s.store.DeleteSession(ctx, p.UserID, p.SessionID); err != nil && kve.KindOf(err) != kve.KindNotFound {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// Sessions lists the caller's live dashboard sessions, newest first:
// neither expired nor idle past the limit (the store keeps dead ones until
// they are cleaned up).
func (s *Service) Sessions(ctx context.Context, p Principal) ([]kve.Session, error) {
	list, err := s.store.Sessions(ctx, p.UserID)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	now := s.now()
	return slices.DeleteFunc(list, func(ses kve.Session) bool {
		last := ses.LastSeen
		if last.IsZero() {
			last = ses.CreatedAt
		}
		return ses.Kind != kve.SessionBrowser || !ses.ExpiresAt.IsZero() && !now.Before(ses.ExpiresAt) ||
			!now.Before(last.Add(s.idle))
	}), nil
}

// LogoutOthers ends every dashboard session of the caller except the one
// of this request, for "sign out everywhere else" (SECURITY T33); API
// tokens have their own revoke. It returns how many ended.
func (s *Service) LogoutOthers(ctx context.Context, p Principal) (int, error) {
	list, err := s.store.Sessions(ctx, p.UserID)
	if err != nil {
		return 0, fmt.Errorf("list sessions: %w", err)
	}
	n := 0
	for _, ses := range list {
		if ses.Kind != kve.SessionBrowser || ses.ID == p.SessionID {
			continue
		}
		if err := s.store.DeleteSession(ctx, p.UserID, ses.ID); err != nil {
			if kve.KindOf(err) == kve.KindNotFound { // ended meanwhile
				continue
			}
			return n, fmt.Errorf("end session: %w", err)
		}
		n++
	}
	s.log.InfoContext(ctx, "other_sessions_ended", "user_id", p.UserID, "ended_sessions", n)
	return n, nil
}
