package sqlite

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawExec runs statements on the file at path outside the store.
func rawExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, time.Second, false))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestOpenRefusesSchema(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    string
	}{
		{"newer version", func(t *testing.T, path string) {
			openClosed(t, path)
			rawExec(t, path, `INSERT INTO schema_version (version, name, applied_at) VALUES (2, '0002_future.sql', 0)`)
		}, "schema version 2 is newer than this kve build knows (1)"},
		{"tables without a schema version", func(t *testing.T, path string) {
			rawExec(t, path, `CREATE TABLE tokens (id TEXT PRIMARY KEY)`)
		}, "no schema version"},
		{"empty schema version", func(t *testing.T, path string) {
			openClosed(t, path)
			rawExec(t, path, `DELETE FROM schema_version`)
		}, "half-migrated"},
		{"edited migration", func(t *testing.T, path string) {
			openClosed(t, path)
			rawExec(t, path, `UPDATE schema_version SET name = '0001_other.sql'`)
		}, "schema history is inconsistent at version 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kve.db")
			tc.prepare(t, path)
			s, err := Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want a schema error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open error = %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestOpenIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kve.db")
	openClosed(t, path)
	openClosed(t, path)
	db, err := sql.Open("sqlite", dsn(path, time.Second, true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, version int
	var mode string
	if err := db.QueryRowContext(t.Context(), `SELECT count(*), max(version) FROM schema_version`).Scan(&n, &version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if n != 1 || version != 1 || mode != "wal" {
		t.Errorf("after two opens: %d schema rows, version %d, journal mode %q; want 1, 1, wal", n, version, mode)
	}
}

// openClosed creates or migrates the store at path and closes it.
func openClosed(t *testing.T, path string) {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
