package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// The ledger's lookup table (by leaf hash; by patient and time) is
// derived from the log: package audit fills it beside the appends and can
// fill it again from the log at any time. On PostgreSQL it is a table of
// the database (migration 0005). On SQLite it is a database file of its
// own beside the main one (PATH-lookup): SQLite has one writer per file,
// and batches of lookup rows, which write pages all over two indexes,
// held the write lock long enough to halve the appends the sequencer
// could commit (BENCHMARKS.md). Being derived, that file is written with
// synchronous=NORMAL (a crash may lose its newest rows, which the filler
// adds again), and is rebuilt when its layout changes.

// lookupsVersion is the layout of the SQLite lookup file (PRAGMA
// user_version); a file of another layout is emptied and filled again.
const lookupsVersion = 1

const lookupsSchema = `
CREATE TABLE ledger_lookup (
    idx         INTEGER NOT NULL PRIMARY KEY,
    hash_key    BIGINT  NOT NULL,
    patient_key BIGINT  NOT NULL,
    leaf_hash   BLOB    NOT NULL,
    patient     TEXT    NOT NULL,
    rec_type    TEXT    NOT NULL,
    time_us     BIGINT  NOT NULL,
    data        BLOB    NOT NULL
);
CREATE INDEX ledger_lookup_hash ON ledger_lookup (hash_key);
CREATE INDEX ledger_lookup_patient ON ledger_lookup (patient_key, time_us);
`

// openLookups opens (creating it if needed) the lookup file of the SQLite
// database at dsn.
func openLookups(ctx context.Context, dsn string) (*gorm.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(30000)")
	q.Add("_pragma", "cache_size(-65536)")
	q.Set("_txlock", "immediate")
	path := strings.TrimPrefix(dsn, "sqlite:") + "-lookup"
	db, err := gorm.Open(sqlite.Open("file:"+path+"?"+q.Encode()), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
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
		if err := tx.Exec(`DROP TABLE IF EXISTS ledger_lookup`).Error; err != nil {
			return err
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

// LedgerLookup are a record's leaf hash and the fields by which records
// are listed, with the record. The keys are what the lookup indexes hold
// (the caller derives them, and gives them again to look up).
type LedgerLookup struct {
	Index      int64
	HashKey    int64
	PatientKey int64 // 0 for none
	LeafHash   []byte
	Patient    string // pseudonym; "" for none
	Type       string
	TimeUs     int64
	Data       []byte
}

// LedgerLookedUp returns the index after which records have no lookup row
// yet (-1 for none).
func (s *Store) LedgerLookedUp(ctx context.Context) (int64, error) {
	var n []int64
	err := s.lookups.WithContext(ctx).Raw(`SELECT COALESCE(MAX(idx), -1) FROM ledger_lookup`).Scan(&n).Error
	if err != nil || len(n) == 0 {
		return -1, s.classify(err)
	}
	return n[0], nil
}

// AddLedgerLookups stores lookup rows (one writer or several: a row
// already there stays).
func (s *Store) AddLedgerLookups(ctx context.Context, rows []LedgerLookup) error {
	if s.dialect == SQLite {
		return s.classify(s.addSQLiteLookups(ctx, rows))
	}
	return s.classify(s.lookups.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		w := &rowWriter{db: db, maxArgs: argsPerStatement(s.dialect)}
		for _, r := range rows {
			w.add("ledger_lookup", "idx, hash_key, patient_key, leaf_hash, patient, rec_type, time_us, data", "ON CONFLICT (idx) DO NOTHING",
				r.Index, r.HashKey, r.PatientKey, r.LeafHash, r.Patient, r.Type, r.TimeUs, r.Data)
		}
		return w.flush()
	}))
}

// LedgerRecord is one integrated record.
type LedgerRecord struct {
	Index int64
	Data  []byte
}

// LedgerRecordsOf lists the records about a patient (by pseudonym and its
// key) of the given types (none: all) with times in [fromUs, toUs), after
// index after (-1: from the start), in index order, at most limit.
func (s *Store) LedgerRecordsOf(ctx context.Context, patientKey int64, patient string, types []string, fromUs, toUs, after int64, limit int) ([]LedgerRecord, error) {
	var b builder
	b.w("SELECT idx, data FROM ledger_lookup WHERE patient_key = ").arg(patientKey).w(" AND patient = ").arg(patient).
		w(" AND time_us >= ").arg(fromUs).w(" AND time_us < ").arg(toUs).w(" AND idx > ").arg(after)
	if len(types) > 0 {
		list(b.w(" AND rec_type IN "), types)
	}
	b.w(" ORDER BY idx LIMIT ").arg(limit)
	rows, err := s.lookups.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: ledger records: %w", err))
	}
	defer rows.Close()
	var out []LedgerRecord
	for rows.Next() {
		var r LedgerRecord
		if err := rows.Scan(&r.Index, &r.Data); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// LedgerIndexByHash returns the index of the record with the given leaf
// hash (and its key), or ErrNotFound.
func (s *Store) LedgerIndexByHash(ctx context.Context, hashKey int64, leafHash []byte) (int64, error) {
	var idx []int64
	if err := s.lookups.WithContext(ctx).Raw(`SELECT idx FROM ledger_lookup WHERE hash_key = ? AND leaf_hash = ? ORDER BY idx LIMIT 1`, hashKey, bindable(leafHash)).Scan(&idx).Error; err != nil {
		return 0, s.classify(err)
	}
	if len(idx) == 0 {
		return 0, ErrNotFound
	}
	return idx[0], nil
}

// addSQLiteLookups inserts lookup rows one prepared single-row statement
// at a time: SQLite then parses once and keeps no statement journal,
// which a multi-row INSERT needs (it may fail half done) and which cost a
// fifth of the filler's time (BENCHMARKS.md).
func (s *Store) addSQLiteLookups(ctx context.Context, rows []LedgerLookup) error {
	sqlDB, err := s.lookups.DB()
	if err != nil {
		return err
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO ledger_lookup (idx, hash_key, patient_key, leaf_hash, patient, rec_type, time_us, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idx) DO NOTHING`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, r := range rows {
		if _, err := stmt.ExecContext(ctx, r.Index, r.HashKey, r.PatientKey, r.LeafHash, r.Patient, r.Type, r.TimeUs, r.Data); err != nil {
			return fmt.Errorf("store: add ledger lookups: %w", err)
		}
	}
	return tx.Commit()
}
