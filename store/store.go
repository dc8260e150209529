package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names a supported SQL database.
type Dialect string

// The dialects Open understands.
const (
	SQLite    Dialect = "sqlite"
	Postgres  Dialect = "postgres"
	Cockroach Dialect = "cockroach"
)

// DefaultMaxAttempts is how many times InTx runs a transaction that keeps
// failing with a serialization conflict before giving up with ErrContention.
const DefaultMaxAttempts = 40

// Config says which database to open and how to treat it.
type Config struct {
	// DSN selects the database:
	//   sqlite:PATH or a plain file path   SQLite (pure Go, no cgo)
	//   postgres://... or postgresql://...  PostgreSQL through pgx
	//   cockroach://... or cockroachdb://... CockroachDB (pgx, crdbgorm retries)
	DSN string
	// MaxAttempts bounds retries of a transaction; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// OnRetry, when set, is called each time a transaction is retried after a
	// serialization conflict (for metrics).
	OnRetry func(Dialect)
	// Logger receives slow-query and migration logs; nil means slog.Default.
	Logger *slog.Logger
}

// Store is the SQL persistence of resources and their versions. It is safe
// for concurrent use; Close releases its connections.
type Store struct {
	writeMu sync.Mutex // serialises SQLite write transactions
	db      *gorm.DB
	lookups *gorm.DB // the ledger's lookup table: db, or on SQLite a file of its own (lookups.go)
	// writer runs write transactions: db, or on SQLite one connection
	// kept for them. SQLite drops a connection's page cache whenever
	// another connection wrote; writes that all go through one connection
	// (they take turns anyway) keep its cache, where taking any pooled
	// connection cost a tenth of the sequencer's time in freeing and
	// re-reading pages (BENCHMARKS.md).
	writer     *gorm.DB
	writerConn *sql.Conn // SQLite: the connection writer holds
	dialect    Dialect
	cfg        Config
	log        *slog.Logger
	sealer     Sealer
	blind      Blinder

	// SQLite's statistics: writes counts resources written since the last
	// PRAGMA optimize; the optimizer goroutine stops when stop closes.
	writes  atomic.Int64
	stop    chan struct{}
	stopped sync.WaitGroup
}

// Open connects to the database named by cfg.DSN, applies pending
// migrations and returns the Store.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	dialect, dialector, err := dialectorFor(cfg.DSN)
	if err != nil {
		return nil, err
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		PrepareStmt:            false,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrUnavailable, dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	switch dialect {
	case SQLite:
		// WAL lets readers run beside the single writer; write
		// transactions take the lock at BEGIN (_txlock=immediate) and wait
		// for it (busy_timeout) instead of failing.
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8)
	default:
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	s := &Store{db: db, lookups: db, writer: db, dialect: dialect, cfg: cfg, log: log}
	if err := s.Ping(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, err
	}
	if dialect == SQLite {
		if s.lookups, err = openLookups(ctx, cfg.DSN); err != nil {
			sqlDB.Close()
			return nil, err
		}
		if err := s.openWriter(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	if dialect == SQLite {
		s.startOptimizer(ctx)
	}
	return s, nil
}

// openWriter takes the SQLite connection all write transactions use.
func (s *Store) openWriter(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("store: sqlite writer: %w", err)
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%w: sqlite: %w", ErrUnavailable, err)
	}
	writer, err := gorm.Open(&sqlite.Dialector{Conn: conn}, &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		conn.Close()
		return fmt.Errorf("store: sqlite writer: %w", err)
	}
	s.writerConn, s.writer = conn, writer
	return nil
}

// reviveWriter replaces the SQLite writer connection when database/sql
// has discarded it (gone), or when a ping finds it closed: a transaction
// canceled midway (a request's deadline) closes its connection, which
// would otherwise fail every later write. The caller holds writeMu.
func (s *Store) reviveWriter(gone bool) {
	if s.writerConn == nil || (!gone && s.writerConn.PingContext(context.Background()) == nil) {
		return
	}
	s.writerConn.Close()
	if err := s.openWriter(context.Background()); err != nil {
		s.log.Error("sqlite: the writer connection could not be replaced", "err", err)
	}
}

// UseKeys gives the store the keys it seals bodies with and the blind
// index of PHI search values. It must be called once, before the first
// read or write of a resource: the keys' own records live in this store,
// so they cannot exist when Open runs.
func (s *Store) UseKeys(sealer Sealer, blind Blinder) {
	s.sealer, s.blind = sealer, blind
}

// outside returns a Tx that runs statements outside any transaction.
func (s *Store) outside() *Tx { return &Tx{db: s.db, dialect: s.dialect, s: s} }

// Statistics upkeep for SQLite (PostgreSQL's autovacuum and CockroachDB's
// automatic statistics need none): SQLite plans searches from the
// statistics ANALYZE gathers, and without them it drove patient searches
// from the least selective index (BENCHMARKS.md). PRAGMA optimize runs at
// open, then whenever optimizeAfter resources were written since it last
// ran, checked every optimizeCheck.
const (
	optimizeAfter = 10000
	optimizeCheck = time.Minute
)

func (s *Store) startOptimizer(ctx context.Context) {
	if err := s.db.WithContext(ctx).Exec("PRAGMA optimize=0x10002").Error; err != nil {
		s.log.Warn("sqlite: PRAGMA optimize failed", "err", err)
	}
	s.stop = make(chan struct{})
	s.stopped.Add(1)
	go func() {
		defer s.stopped.Done()
		t := time.NewTicker(optimizeCheck)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if s.writes.Load() < optimizeAfter {
					continue
				}
				s.writes.Store(0)
				if err := s.db.Exec("PRAGMA optimize").Error; err != nil {
					s.log.Warn("sqlite: PRAGMA optimize failed", "err", err)
				}
			}
		}
	}()
}

// dialectorFor turns a DSN into its dialect and gorm dialector.
func dialectorFor(dsn string) (Dialect, gorm.Dialector, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, postgres.New(postgres.Config{DSN: withCustomPlans(dsn)}), nil
	case strings.HasPrefix(dsn, "cockroach://"), strings.HasPrefix(dsn, "cockroachdb://"):
		pg := "postgresql://" + dsn[strings.Index(dsn, "://")+3:]
		return Cockroach, postgres.New(postgres.Config{DSN: pg}), nil
	case strings.Contains(dsn, "://"):
		return "", nil, fmt.Errorf("store: unsupported database URL scheme in %q (want postgres://, cockroach:// or sqlite:PATH)", redact(dsn))
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	if path == "" {
		return "", nil, errors.New("store: empty SQLite path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("store: create %s: %w", dir, err)
		}
	}
	if err := private(path); err != nil {
		return "", nil, err
	}
	return SQLite, sqliteFile(path, "synchronous(FULL)", "foreign_keys(1)"), nil
}

// private makes the SQLite file at path, and the journal files SQLite
// keeps beside it, readable by their owner alone (0600, like the key
// files): it creates the file that way when it does not exist yet, and
// takes the other bits away when it does. SQLite gives the journal files
// it creates later the database file's mode.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&0o700); err != nil {
				return fmt.Errorf("store: %s: %w", p, err)
			}
		}
	}
	return nil
}

// sqliteFile opens a SQLite file in WAL mode whose write transactions
// take the lock at BEGIN and wait for it, with the given further pragmas.
func sqliteFile(path string, pragmas ...string) gorm.Dialector {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(30000)")
	// 64 MiB of page cache per connection (SQLite's default is 2 MiB): the
	// search indexes touch many pages per write, and re-reading them from
	// the OS cost a fifth of ingest time (BENCHMARKS.md).
	q.Add("_pragma", "cache_size(-65536)")
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	return sqlite.Open("file:" + path + "?" + q.Encode())
}

// withCustomPlans asks PostgreSQL to plan every execution of a cached
// statement for its actual values. Searches are cached statements whose
// best plan depends on the values (a patient with 10 resources or a code
// on half of them); after five executions PostgreSQL would switch to one
// generic plan, which made a two-row search take 20 ms instead of 1 ms
// (BENCHMARKS.md).
func withCustomPlans(dsn string) string {
	if strings.Contains(dsn, "plan_cache_mode") {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "plan_cache_mode=force_custom_plan"
}

// redact hides a password in a database URL for error messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}

// Dialect reports which database the store runs on.
func (s *Store) Dialect() Dialect { return s.dialect }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Close stops the store's background work, then releases the database
// connections.
func (s *Store) Close() error {
	if s.stop != nil {
		close(s.stop)
		s.stopped.Wait()
		s.stop = nil
	}
	if s.writerConn != nil {
		s.writerConn.Close()
	}
	if s.lookups != s.db {
		if l, err := s.lookups.DB(); err == nil {
			l.Close()
		}
	}
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
