// Package sqlite is kve's embedded store for local mode: store.Store in one
// SQLite file, through the pure-Go modernc.org/sqlite driver (no cgo, no
// server).
//
// As in PocketBase, the file is opened twice: a write pool of exactly one
// connection, on which every change runs as an explicit BEGIN IMMEDIATE
// transaction, and a pool of read-only connections. Writes therefore queue in
// database/sql instead of failing with SQLITE_BUSY, and in WAL mode readers
// never wait for them. A second process on the same file is handled by
// busy_timeout: its writes wait for the lock instead of failing.
//
// Times are stored as UTC unix milliseconds: anything finer is dropped.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/keyvault-edge/kve/shared/store"
)

// Store is store.Store on a SQLite file. It is safe for concurrent use.
type Store struct {
	write *sql.DB // one connection: every write, in a transaction
	read  *sql.DB // read-only connections: every query outside a write

	tokenByHash *sql.Stmt        // the proxy's lookup, prepared once
	usage       *usageStatements // RecordUsage's, prepared once on write

	// gen counts commits of this Store; tokens caches the proxy's lookups
	// made at a generation, so a lookup is served from memory only while
	// nothing at all was written since it was read.
	gen    atomic.Uint64
	tokMu  sync.RWMutex
	tokens map[string]cachedToken

	now func() time.Time // the clock that says which UTC day "today" is
}

var _ store.Store = (*Store)(nil)

// busyTimeout is how long a write waits for another process's write lock
// before the store answers KindUnavailable.
const busyTimeout = 5 * time.Second

// Open opens (creating it if needed) the store in the file at path and
// brings its schema up to date. A file whose schema is newer than this build,
// or was left half-migrated, is refused.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, busyTimeout)
}

func open(ctx context.Context, path string, busy time.Duration) (*Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: no path")
	}
	write, err := sql.Open("sqlite", dsn(path, busy, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	s := &Store{write: write, now: time.Now}
	// The first connection switches the file to WAL and creates the schema,
	// both before any reader connects.
	if err := migrate(ctx, write, time.Now()); err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if s.usage, err = prepareUsage(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}

	readers := max(4, runtime.GOMAXPROCS(0))
	s.read, err = sql.Open("sqlite", dsn(path, busy, true))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.read.SetMaxOpenConns(readers)
	s.read.SetMaxIdleConns(readers)
	if s.tokenByHash, err = s.read.PrepareContext(ctx, tokenByHashQuery); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store: prepare token lookup: %w", err)
	}
	return s, nil
}

// dsn builds a modernc.org/sqlite data source name with the pragmas every
// connection needs, so that a connection the pool opens later gets them too.
func dsn(path string, busy time.Duration, readOnly bool) string {
	var b strings.Builder
	b.WriteString("file:")
	// SQLite decodes %XX in URI file names; escape what would end the path.
	b.WriteString(strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path))
	b.WriteString("?_pragma=busy_timeout(" + strconv.FormatInt(busy.Milliseconds(), 10) + ")")
	b.WriteString("&_pragma=journal_mode(WAL)")
	b.WriteString("&_pragma=synchronous(NORMAL)")
	b.WriteString("&_pragma=foreign_keys(ON)")
	if readOnly {
		b.WriteString("&_pragma=query_only(ON)")
	} else {
		// The writer keeps the pages it writes in a larger cache and
		// checkpoints the WAL every 10,000 pages rather than 1,000: usage
		// batches rewrite the same index pages, which a checkpoint then
		// copies once.
		b.WriteString("&_pragma=cache_size(-32768)")
		b.WriteString("&_pragma=wal_autocheckpoint(10000)")
		// BEGIN IMMEDIATE takes the write lock at the start, so a transaction
		// never fails halfway when it upgrades from reading to writing.
		b.WriteString("&_txlock=immediate")
	}
	return b.String()
}

// Close releases the store's connections.
func (s *Store) Close() error {
	var errs []error
	if s.tokenByHash != nil {
		errs = append(errs, s.tokenByHash.Close())
	}
	if s.usage != nil {
		errs = append(errs, s.usage.close())
	}
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.write.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite store: %w", err)
	}
	return nil
}

// inTx runs fn in a write transaction and commits it when fn returns nil.
// fn must not call the store's write methods: the single write connection is
// already taken, so such a call would wait forever.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return classify(op, "", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	err = tx.Commit()
	s.gen.Add(1) // also after a failed commit: it may have been applied
	if err != nil {
		return classify(op, "", err)
	}
	return nil
}

// millis is how times are stored: UTC unix milliseconds, 0 for the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMillis reverses millis.
func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }
