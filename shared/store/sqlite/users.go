package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// CompleteSetup implements store.Setup. The single-row setup table makes a
// second call, even a concurrent one, fail on its primary key.
func (s *Store) CompleteSetup(ctx context.Context, u kve.User, ses kve.Session) error {
	return s.inTx(ctx, "complete setup", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO setup (id, user_id, done_at) VALUES (1, ?, ?)`,
			u.ID, millis(u.CreatedAt))
		if err != nil {
			return classify("complete setup", "setup is already complete", err)
		}
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		return insertSession(ctx, tx, ses)
	})
}

// SetupDone implements store.Setup.
func (s *Store) SetupDone(ctx context.Context) (bool, error) {
	var done bool
	err := s.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM setup)`).Scan(&done)
	return done, classify("read setup", "", err)
}

const userColumns = `id, email, name, password, created_at`

func scanUser(row scanner) (kve.User, error) {
	var u kve.User
	var created int64
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Password, &created); err != nil {
		return kve.User{}, err
	}
	u.CreatedAt = fromMillis(created)
	return u, nil
}

// User implements store.Users.
func (s *Store) User(ctx context.Context, id string) (kve.User, error) {
	u, err := scanUser(s.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	return u, classify("read user", "", err)
}

// UserByEmail implements store.Users. The email is matched exactly: callers
// pass it through kve.CanonicalEmail.
func (s *Store) UserByEmail(ctx context.Context, email string) (kve.User, error) {
	u, err := scanUser(s.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, email))
	return u, classify("read user by email", "", err)
}

const sessionColumns = `id, user_id, kind, name, hash, org_id, created_at, expires_at, last_seen`

func scanSession(row scanner) (kve.Session, error) {
	var ses kve.Session
	var created, expires, seen int64
	if err := row.Scan(&ses.ID, &ses.UserID, &ses.Kind, &ses.Name, &ses.Hash, &ses.OrgID,
		&created, &expires, &seen); err != nil {
		return kve.Session{}, err
	}
	ses.CreatedAt, ses.ExpiresAt, ses.LastSeen = fromMillis(created), fromMillis(expires), fromMillis(seen)
	return ses, nil
}

func insertSession(ctx context.Context, tx *sql.Tx, ses kve.Session) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ses.ID, ses.UserID, ses.Kind, ses.Name, ses.Hash, ses.OrgID,
		millis(ses.CreatedAt), millis(ses.ExpiresAt), millis(ses.LastSeen))
	return classify("create session", "session already exists", err)
}

// CreateSession implements store.Users.
func (s *Store) CreateSession(ctx context.Context, ses kve.Session) error {
	return s.inTx(ctx, "create session", func(tx *sql.Tx) error {
		return insertSession(ctx, tx, ses)
	})
}

// SessionByHash implements store.Users.
func (s *Store) SessionByHash(ctx context.Context, hash []byte) (kve.Session, error) {
	ses, err := scanSession(s.read.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE hash = ?`, hash))
	return ses, classify("read session", "", err)
}

// TouchSession implements store.Users. The last-seen time only moves
// forward, so concurrent requests of one session cannot set it back.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	return s.inTx(ctx, "touch session", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET last_seen = max(last_seen, ?) WHERE id = ?`, millis(at), id)
		if err != nil {
			return classify("touch session", "", err)
		}
		return mustChange("touch session", res)
	})
}

// Sessions implements store.Users.
func (s *Store) Sessions(ctx context.Context, userID string) ([]kve.Session, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = ? ORDER BY created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, classify("list sessions", "", err)
	}
	out, err := collect(rows, scanSession)
	return out, classify("list sessions", "", err)
}

// DeleteSession implements store.Users. Another user's session is
// KindNotFound.
func (s *Store) DeleteSession(ctx context.Context, userID, id string) error {
	return s.inTx(ctx, "delete session", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id = ?`, userID, id)
		if err != nil {
			return classify("delete session", "", err)
		}
		return mustChange("delete session", res)
	})
}

// collect scans every row; the result is never nil.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// CreateUser implements store.Users.
func (s *Store) CreateUser(ctx context.Context, u kve.User) error {
	return s.inTx(ctx, "create user", func(tx *sql.Tx) error { return insertUser(ctx, tx, u) })
}

func insertUser(ctx context.Context, tx *sql.Tx, u kve.User) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.Name, u.Password, millis(u.CreatedAt))
	return classify("create user", "a user with this email already exists", err)
}

// ChangePassword implements store.Users.
func (s *Store) ChangePassword(ctx context.Context, userID string, hash []byte, keep string) (int, error) {
	var ended int64
	err := s.inTx(ctx, "change password", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password = ? WHERE id = ?`, hash, userID)
		if err != nil {
			return classify("change password", "", err)
		}
		if err := mustChange("change password", res); err != nil {
			return err
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id != ?`, userID, keep)
		if err != nil {
			return classify("end sessions", "", err)
		}
		ended, err = res.RowsAffected()
		return classify("end sessions", "", err)
	})
	return int(ended), err
}
