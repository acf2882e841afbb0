package sqlite

import (
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keyvault-edge/kve/shared/kve"
)

// classify turns a database error into a kve kind at the store's boundary:
// no row is KindNotFound, a broken uniqueness rule KindConflict (with the
// message conflict, which a caller may see), a missing organization
// KindNotFound, a lock held too long KindUnavailable. op names the operation
// for the log; the SQLite text stays in the internal cause.
func classify(op, conflict string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, kve.ErrNotFound)
	}
	var e *kve.Error
	if errors.As(err, &e) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: %w", op, err)
	}
	cause := fmt.Errorf("%s: %w", op, err)
	switch code := se.Code(); {
	case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE, code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		if conflict == "" {
			conflict = kve.ErrConflict.Message
		}
		return kve.Wrap(kve.KindConflict, "conflict", conflict, cause)
	case code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return kve.Wrap(kve.KindNotFound, "not_found", "organization not found", cause)
	case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED:
		return kve.Wrap(kve.KindUnavailable, "unavailable", kve.ErrUnavailable.Message, cause)
	}
	return cause
}

// mustChange turns an UPDATE or DELETE that matched no row into KindNotFound:
// the row is missing, or belongs to another organization.
func mustChange(op string, res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, kve.ErrNotFound)
	}
	return nil
}
