package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	"github.com/cockroachdb/cockroach-go/v2/crdb/crdbgorm"
	"github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// Tx is one SERIALIZABLE database transaction, handed to the function given
// to InTx. It is not safe for concurrent use and must not escape that
// function.
type Tx struct {
	db      *gorm.DB
	dialect Dialect
	s       *Store
	written int // resources written, for SQLite's statistics upkeep
}

// InTx runs fn in one SERIALIZABLE transaction and commits it when fn
// returns nil; any error from fn rolls everything back and is returned as
// is.
//
// fn may run more than once: when the database reports a serialization
// conflict (PostgreSQL SQLSTATE 40001 or 40P01, SQLite busy, CockroachDB
// retryable errors) the whole transaction is rolled back and fn runs again
// with backoff. Keep no state from an earlier attempt: compute
// everything (times, versions) from what fn reads inside tx. After
// Config.MaxAttempts attempts InTx gives up with an error wrapping
// ErrContention.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	opts := &sql.TxOptions{Isolation: sql.LevelSerializable}
	if s.dialect == Cockroach {
		attempts := 0
		ctx = crdb.WithMaxRetries(ctx, s.cfg.MaxAttempts-1)
		err := crdbgorm.ExecuteTx(ctx, s.db, opts, func(db *gorm.DB) error {
			attempts++
			if attempts > 1 && s.cfg.OnRetry != nil {
				s.cfg.OnRetry(s.dialect)
			}
			return fn(&Tx{db: db, dialect: s.dialect, s: s})
		})
		var maxed *crdb.MaxRetriesExceededError
		if errors.As(err, &maxed) {
			return errors.Join(ErrContention, err)
		}
		return s.classify(err)
	}
	if s.dialect == SQLite {
		// The SQLite driver cannot set an isolation level; with one writer
		// at a time (_txlock=immediate) every transaction is serializable.
		// Writers of this process queue on a mutex rather than in SQLite's
		// busy handler, whose sleeps of up to 100 ms made long tails under
		// concurrent writes (BENCHMARKS.md); busy_timeout still covers
		// other processes sharing the file.
		opts = nil
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
	}
	var err error
	for attempt := 1; attempt <= s.cfg.MaxAttempts; attempt++ {
		tx := &Tx{db: nil, dialect: s.dialect, s: s}
		err = s.writer.WithContext(ctx).Transaction(func(db *gorm.DB) error {
			tx.db = db
			return fn(tx)
		}, opts)
		if err == nil {
			s.writes.Add(int64(tx.written))
		}
		if err != nil && s.dialect == SQLite {
			// The connection of a transaction canceled midway is discarded
			// by database/sql, at once or a moment later: replace it now
			// if it is gone, and run a transaction that found it gone
			// again on a new one.
			gone := errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn)
			s.reviveWriter(gone)
			if gone && ctx.Err() == nil {
				continue
			}
		}
		if err == nil || !retryable(err) {
			return s.classify(err)
		}
		if s.cfg.OnRetry != nil {
			s.cfg.OnRetry(s.dialect)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return s.classify(err)
		}
	}
	return errors.Join(ErrContention, err)
}

// classify wraps database connectivity failures in ErrUnavailable so the
// caller can answer 503; other errors pass through.
func (s *Store) classify(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return err // the server answered: not a connectivity problem
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || errors.Is(err, sql.ErrConnDone) || pgconn.Timeout(err) {
		return errors.Join(ErrUnavailable, err)
	}
	return err
}

// retryable reports whether err is a transient conflict after which the
// whole transaction may run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		// A unique violation is not retried: PostgreSQL reports a
		// concurrent insert of a key the transaction looked for as 40001.
		case "40001", // serialization_failure
			"40P01": // deadlock_detected
			return true
		}
		return false
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
	}
	return false
}

// backoff returns a jittered, capped exponential delay before attempt+1.
func backoff(attempt int) time.Duration {
	d := time.Millisecond << min(attempt, 7) // 2ms .. 128ms
	return d/2 + rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
