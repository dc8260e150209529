package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// The ledger's lookup table (by leaf hash; by patient and time) is
// derived from the log: package audit fills it beside the appends and can
// fill it again from the log at any time. A row holds a record's index,
// its time and the 64-bit keys of its leaf hash and patient, not the
// record: records are read from the log's entry bundles, whose parts hold
// at most 16 records each (package audit), and checked there, so that a
// key shared by two hashes or patients costs a record read, never a wrong
// answer. ledger_lookup_state says how far the table goes.
//
// On PostgreSQL the table is in the database (migration 0005). On SQLite
// it is a database file of its own beside the main one (PATH-lookup):
// SQLite has one writer per file, and batches of lookup rows, which write
// pages all over two indexes, held the write lock long enough to halve
// the appends the sequencer could commit (BENCHMARKS.md). Being derived,
// that file is written with synchronous=NORMAL (a crash may lose its
// newest rows, which the filler adds again), and is rebuilt when its
// layout changes.

// lookupsVersion is the layout of the SQLite lookup file (PRAGMA
// user_version); a file of another layout is emptied and filled again.
const lookupsVersion = 2

const lookupsSchema = `
DROP TABLE IF EXISTS ledger_lookup;
DROP TABLE IF EXISTS ledger_lookup_state;
CREATE TABLE ledger_lookup (
    idx         INTEGER NOT NULL PRIMARY KEY,
    hash_key    BIGINT  NOT NULL,
    patient_key BIGINT  NOT NULL,
    time_us     BIGINT  NOT NULL
);
CREATE INDEX ledger_lookup_hash ON ledger_lookup (hash_key);
CREATE INDEX ledger_lookup_patient ON ledger_lookup (patient_key, time_us);
CREATE TABLE ledger_lookup_state (
    id        INTEGER NOT NULL PRIMARY KEY,
    looked_up BIGINT  NOT NULL
);
INSERT INTO ledger_lookup_state (id, looked_up) VALUES (1, -1);
`

// openLookups opens (creating it if needed) the lookup file of the SQLite
// database at dsn.
func openLookups(ctx context.Context, dsn string) (*gorm.DB, error) {
	path := strings.TrimPrefix(dsn, "sqlite:") + "-lookup"
	if err := private(path); err != nil {
		return nil, err
	}
	db, err := gorm.Open(sqliteFile(path, "synchronous(NORMAL)"), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrUnavailable, path, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	sqlDB.SetMaxOpenConns(4)
	sqlDB.SetMaxIdleConns(4)
	err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var v int
		if err := tx.Raw(`PRAGMA user_version`).Scan(&v).Error; err != nil {
			return err
		}
		if v == lookupsVersion {
			return nil
		}
		if err := tx.Exec(lookupsSchema).Error; err != nil {
			return err
		}
		return tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, lookupsVersion)).Error
	})
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: prepare %s: %w", path, err)
	}
	return db, nil
}

// LedgerLookup is a record's lookup row: its index and time and the keys
// of its leaf hash and patient, which the caller derives (and gives again
// to look up).
type LedgerLookup struct {
	Index      int64
	HashKey    int64
	PatientKey int64 // 0 for none
	TimeUs     int64
}

// LedgerLookedUp returns the index through which records have lookup rows
// (-1 for none).
func (s *Store) LedgerLookedUp(ctx context.Context) (int64, error) {
	var n int64
	err := s.lookups.WithContext(ctx).Raw(`SELECT looked_up FROM ledger_lookup_state WHERE id = 1`).Row().Scan(&n)
	return n, s.classify(err)
}

// ErrCursorMoved says work derived from the log went on past where a
// worker thought it stood (another worker did the same work): nothing was
// done.
var ErrCursorMoved = errors.New("store: work derived from the ledger moved on meanwhile")

// AddLedgerLookups stores the lookup rows of the records after through
// (which must be where the table stands, else ErrCursorMoved), in index
// order without gaps.
func (s *Store) AddLedgerLookups(ctx context.Context, through int64, rows []LedgerLookup) error {
	if len(rows) == 0 {
		return nil
	}
	for i, r := range rows {
		if r.Index != through+1+int64(i) {
			return fmt.Errorf("store: lookup rows from %d are not in order", through+1)
		}
	}
	return s.classify(s.lookups.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		res := db.Exec(`UPDATE ledger_lookup_state SET looked_up = ? WHERE id = 1 AND looked_up = ?`, rows[len(rows)-1].Index, through)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrCursorMoved
		}
		if s.dialect == SQLite {
			return addSQLiteLookups(ctx, db, rows)
		}
		w := &rowWriter{db: db, maxArgs: argsPerStatement(s.dialect)}
		for _, r := range rows {
			w.add("ledger_lookup", "idx, hash_key, patient_key, time_us", "", r.Index, r.HashKey, r.PatientKey, r.TimeUs)
		}
		return w.flush()
	}))
}

// addSQLiteLookups inserts lookup rows one prepared single-row statement
// at a time: SQLite then parses once and keeps no statement journal,
// which a multi-row INSERT needs (it may fail half done) and which cost a
// fifth of the filler's time (BENCHMARKS.md).
func addSQLiteLookups(ctx context.Context, db *gorm.DB, rows []LedgerLookup) error {
	stmt, err := db.Statement.ConnPool.PrepareContext(ctx, `INSERT INTO ledger_lookup (idx, hash_key, patient_key, time_us) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, r := range rows {
		if _, err := stmt.ExecContext(ctx, r.Index, r.HashKey, r.PatientKey, r.TimeUs); err != nil {
			return fmt.Errorf("store: add ledger lookups: %w", err)
		}
	}
	return nil
}

// ForgetLedgerPatient clears the patient key of the lookup rows that have
// patientKey, and deletes any opening of owner's left (one sealed before
// the owner's key was erased and integrated after): after an erasure,
// nothing the server keeps says which records were about the patient.
func (s *Store) ForgetLedgerPatient(ctx context.Context, owner string, patientKey int64) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		db := tx.db.WithContext(ctx)
		if err := db.Exec(`DELETE FROM ledger_openings WHERE owner = ?`, owner).Error; err != nil {
			return err
		}
		return db.Exec(`UPDATE ledger_queue SET owner = '', patient_key = 0, time_us = 0, sealed = NULL WHERE owner = ?`, owner).Error
	})
	if err != nil {
		return s.classify(fmt.Errorf("store: forget %s: %w", owner, err))
	}
	err = s.lookups.WithContext(ctx).Exec(`UPDATE ledger_lookup SET patient_key = 0 WHERE patient_key = ?`, patientKey).Error
	return s.classify(err)
}

// LedgerIndexesOf lists the indexes of the records whose patient key is
// patientKey with times in [fromUs, toUs), after index after (-1: from
// the start), in order, at most limit.
func (s *Store) LedgerIndexesOf(ctx context.Context, patientKey, fromUs, toUs, after int64, limit int) ([]int64, error) {
	var idx []int64
	err := s.lookups.WithContext(ctx).Raw(`SELECT idx FROM ledger_lookup WHERE patient_key = ? AND time_us >= ? AND time_us < ? AND idx > ?
ORDER BY idx LIMIT ?`, patientKey, fromUs, toUs, after, limit).Scan(&idx).Error
	return idx, s.classify(err)
}

// LedgerIndexesByHash lists the indexes of the records whose leaf hash
// key is hashKey, in order.
func (s *Store) LedgerIndexesByHash(ctx context.Context, hashKey int64) ([]int64, error) {
	var idx []int64
	err := s.lookups.WithContext(ctx).Raw(`SELECT idx FROM ledger_lookup WHERE hash_key = ? ORDER BY idx LIMIT 100`, hashKey).Scan(&idx).Error
	return idx, s.classify(err)
}

// LedgerRecord is one integrated record.
type LedgerRecord struct {
	Index int64
	Data  []byte
}

// LedgerPartRange asks for the parts of entry bundle N that begin at
// positions From to To.
type LedgerPartRange struct {
	N        int64
	From, To int
}

// LedgerBundleParts returns the parts of entry bundles in the given
// ranges, in (n, pos) order.
func (s *Store) LedgerBundleParts(ctx context.Context, ranges []LedgerPartRange) ([]LedgerTilePart, error) {
	var out []LedgerTilePart
	// A query of many ranges is split: SQLite refuses an expression over
	// 1,000 deep, and one OR per range makes it as deep as the ranges.
	for len(ranges) > 0 {
		n := min(len(ranges), maxRangesPerQuery)
		got, err := s.ledgerBundleParts(ctx, ranges[:n])
		if err != nil {
			return nil, err
		}
		out, ranges = append(out, got...), ranges[n:]
	}
	slices.SortFunc(out, func(a, b LedgerTilePart) int {
		return cmp.Or(cmp.Compare(a.N, b.N), cmp.Compare(a.Pos, b.Pos))
	})
	// Ranges of two queries may share a part.
	return slices.CompactFunc(out, func(a, b LedgerTilePart) bool { return a.N == b.N && a.Pos == b.Pos }), nil
}

// maxRangesPerQuery bounds the ranges of one bundle-parts query.
const maxRangesPerQuery = 200

func (s *Store) ledgerBundleParts(ctx context.Context, ranges []LedgerPartRange) ([]LedgerTilePart, error) {
	var b builder
	b.w("SELECT level, n, pos, data FROM ledger_tiles WHERE level = -1 AND (")
	for i, r := range ranges {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(n = ").arg(r.N).w(" AND pos >= ").arg(r.From).w(" AND pos <= ").arg(r.To).w(")")
	}
	b.w(")")
	rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: ledger bundle parts: %w", err))
	}
	defer rows.Close()
	var out []LedgerTilePart
	for rows.Next() {
		var p LedgerTilePart
		if err := rows.Scan(&p.Level, &p.N, &p.Pos, &p.Data); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
