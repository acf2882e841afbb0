package dynamo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// A user is user#<user>/user, with the pointer email#<email>/email that
// makes the email unique. A session is three items written and deleted
// together, all expiring with the session: session#<hex HMAC>/session for
// the lookup on every management request, user#<user>/session#<id> for the
// user's list, and sessionid#<id>/session, which finds the other two from
// the id alone (TouchSession). Only the HMAC of a session's value is stored.

func userItem(u *kve.User) item {
	it := item{}
	it.setStr("id", u.ID)
	it.setStr("email", u.Email)
	it.setStr("name", u.Name)
	it.setBytes("password", u.Password)
	it.setTime("created_at", u.CreatedAt)
	return it.with(userPK(u.ID), skUser)
}

func decodeUser(it item) (kve.User, error) {
	f := fields{it: it}
	u := kve.User{
		ID:        f.str("id"),
		Email:     f.str("email"),
		Name:      f.str("name"),
		Password:  f.bytes("password"),
		CreatedAt: f.time("created_at"),
	}
	if f.err != nil {
		return kve.User{}, fmt.Errorf("decode user: %w", f.err)
	}
	return u, nil
}

func sessionItem(s *kve.Session) item {
	it := item{}
	it.setStr("id", s.ID)
	it.setStr("user_id", s.UserID)
	it.setStr("kind", string(s.Kind))
	it.setStr("name", s.Name)
	it.setBytes("hash", s.Hash)
	it.setTime("created_at", s.CreatedAt)
	it.setTime("expires_at", s.ExpiresAt)
	it.setTime("last_seen", s.LastSeen)
	it.setStr("org_id", s.OrgID)
	if !s.ExpiresAt.IsZero() {
		it[AttrTTL] = epoch(s.ExpiresAt)
	}
	return it
}

func decodeSession(it item) (kve.Session, error) {
	f := fields{it: it}
	s := kve.Session{
		ID:        f.str("id"),
		UserID:    f.str("user_id"),
		Kind:      kve.SessionKind(f.str("kind")),
		Name:      f.str("name"),
		Hash:      f.bytes("hash"),
		CreatedAt: f.time("created_at"),
		ExpiresAt: f.time("expires_at"),
		LastSeen:  f.time("last_seen"),
		OrgID:     f.str("org_id"),
	}
	if f.err != nil {
		return kve.Session{}, fmt.Errorf("decode session: %w", f.err)
	}
	return s, nil
}

var (
	errSetupDone     = kve.Errorf(kve.KindConflict, "setup_done", "setup is already complete")
	errUserExists    = kve.Errorf(kve.KindConflict, "user_exists", "a user with this id or email exists")
	errSessionExists = kve.Errorf(kve.KindConflict, "session_exists", "a session with this id or value exists")
	errNoSession     = fmt.Errorf("the session: %w", kve.ErrNotFound)
)

// sessionWrites are the three items of a new session.
func (s *Store) sessionWrites(sess *kve.Session) []write {
	it := sessionItem(sess)
	ptr := item{}
	ptr.setStr("user_id", sess.UserID)
	ptr.setBytes("hash", sess.Hash)
	if ttl, ok := it[AttrTTL]; ok {
		ptr[AttrTTL] = ttl
	}
	return []write{
		s.create(it.with(sessionHashPK(sess.Hash), skSession), errSessionExists),
		s.create(it.with(userPK(sess.UserID), prefixSession+sess.ID), errSessionExists),
		s.create(ptr.with(sessionIDPK(sess.ID), skSession), errSessionExists),
	}
}

func validSession(sess *kve.Session) error {
	if sess.ID == "" || sess.UserID == "" || len(sess.Hash) == 0 {
		return kve.Errorf(kve.KindInvalid, "invalid_session", "a session needs an id, a user and a hash")
	}
	return nil
}

// CompleteSetup implements store.Setup: the marker system/setup, created
// only if absent, makes the first user and session a one-time event.
func (s *Store) CompleteSetup(ctx context.Context, u kve.User, sess kve.Session) error {
	if u.ID == "" || u.Email == "" {
		return kve.Errorf(kve.KindInvalid, "invalid_user", "a user needs an id and an email")
	}
	if err := validSession(&sess); err != nil {
		return err
	}
	marker := item{}
	marker.setStr("user_id", u.ID)
	marker.setTime("at", u.CreatedAt)
	email := item{}
	email.setStr("user_id", u.ID)
	ws := []write{
		s.create(marker.with(systemPK, skSetup), errSetupDone),
		s.create(userItem(&u), errUserExists),
		s.create(email.with(emailPK(u.Email), skEmail), errUserExists),
	}
	if err := s.transact(ctx, append(ws, s.sessionWrites(&sess)...)...); err != nil {
		return fmt.Errorf("complete setup: %w", err)
	}
	return nil
}

// SetupDone implements store.Setup.
func (s *Store) SetupDone(ctx context.Context) (bool, error) {
	_, err := s.get(ctx, systemPK, skSetup)
	switch {
	case errors.Is(err, kve.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read setup: %w", err)
	}
	return true, nil
}

// User implements store.Users.
func (s *Store) User(ctx context.Context, id string) (kve.User, error) {
	it, err := s.get(ctx, userPK(id), skUser)
	if err != nil {
		return kve.User{}, fmt.Errorf("read user: %w", err)
	}
	return decodeUser(it)
}

// UserByEmail implements store.Users.
func (s *Store) UserByEmail(ctx context.Context, email string) (kve.User, error) {
	it, err := s.get(ctx, emailPK(email), skEmail)
	if err != nil {
		return kve.User{}, fmt.Errorf("read user by email: %w", err)
	}
	f := fields{it: it}
	return s.User(ctx, f.str("user_id"))
}

// CreateSession implements store.Users.
func (s *Store) CreateSession(ctx context.Context, sess kve.Session) error {
	if err := validSession(&sess); err != nil {
		return err
	}
	if err := s.transact(ctx, s.sessionWrites(&sess)...); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// SessionByHash implements store.Users with one strongly consistent read, so
// a deleted session is refused on the next request.
func (s *Store) SessionByHash(ctx context.Context, hash []byte) (kve.Session, error) {
	it, err := s.get(ctx, sessionHashPK(hash), skSession)
	if err != nil {
		return kve.Session{}, fmt.Errorf("read session: %w", err)
	}
	return decodeSession(it)
}

// TouchSession implements store.Users.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	it, err := s.get(ctx, sessionIDPK(id), skSession)
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	f := fields{it: it}
	userID, hash := f.str("user_id"), f.bytes("hash")
	if f.err != nil {
		return fmt.Errorf("touch session: %w", f.err)
	}
	var ws []write
	for _, k := range []item{primaryKey(sessionHashPK(hash), skSession), primaryKey(userPK(userID), prefixSession+id)} {
		var e expr
		ws = append(ws, s.update(k, &e, "SET "+e.name("last_seen")+" = "+e.value(stamp(at)), e.exists(), errNoSession))
	}
	if err := s.transact(ctx, ws...); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// Sessions implements store.Users.
func (s *Store) Sessions(ctx context.Context, userID string) ([]kve.Session, error) {
	items, err := s.all(ctx, newQuery(userPK(userID)).prefix(prefixSession))
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	list := make([]kve.Session, 0, len(items))
	for _, it := range items {
		sess, err := decodeSession(it)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		list = append(list, sess)
	}
	slices.SortStableFunc(list, func(a, b kve.Session) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	return list, nil
}

// DeleteSession implements store.Users. The session must be the user's: the
// user's item is read by user id and session id.
func (s *Store) DeleteSession(ctx context.Context, userID, id string) error {
	it, err := s.get(ctx, userPK(userID), prefixSession+id)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	f := fields{it: it}
	hash := f.bytes("hash")
	if f.err != nil {
		return fmt.Errorf("delete session: %w", f.err)
	}
	var e expr
	err = s.transact(ctx,
		s.remove(primaryKey(userPK(userID), prefixSession+id), &e, e.exists(), errNoSession),
		s.remove(primaryKey(sessionHashPK(hash), skSession), &expr{}, "", nil),
		s.remove(primaryKey(sessionIDPK(id), skSession), &expr{}, "", nil),
	)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// CreateUser implements store.Users: the user's item and the pointer that
// makes the email unique.
func (s *Store) CreateUser(ctx context.Context, u kve.User) error {
	if u.ID == "" || u.Email == "" {
		return kve.Errorf(kve.KindInvalid, "invalid_user", "a user needs an id and an email")
	}
	email := item{}
	email.setStr("user_id", u.ID)
	err := s.transact(ctx,
		s.create(userItem(&u), errUserExists),
		s.create(email.with(emailPK(u.Email), skEmail), errUserExists))
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// ChangePassword implements store.Users. The sessions end first, in
// transactions of up to 33, and the password changes with the last: should
// a transaction fail, the user has lost sessions but kept the old
// password, and can try again.
func (s *Store) ChangePassword(ctx context.Context, userID string, hash []byte, keep string) (int, error) {
	sessions, err := s.all(ctx, newQuery(userPK(userID)).prefix(prefixSession))
	if err != nil {
		return 0, fmt.Errorf("change password: %w", err)
	}
	var groups [][]write
	for _, sess := range sessions {
		if f := (fields{it: sess}); f.str("id") == keep {
			continue
		}
		ws, err := s.endSession(userID, sess)
		if err != nil {
			return 0, fmt.Errorf("change password: %w", err)
		}
		groups = append(groups, ws)
	}
	var e expr
	set := s.update(primaryKey(userPK(userID), skUser), &e, "SET "+e.name("password")+" = "+e.value(bin(hash)),
		e.exists(), fmt.Errorf("the user: %w", kve.ErrNotFound))
	if err := s.transactAll(ctx, batches(groups, []write{set})); err != nil {
		return 0, fmt.Errorf("change password: %w", err)
	}
	return len(groups), nil
}
