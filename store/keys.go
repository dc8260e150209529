package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sealer turns stored data keys into keys that seal and open bodies. The
// store seals every body it writes and opens every body it reads through
// it, so that callers only ever see plaintext and the database only ever
// holds ciphertext.
type Sealer interface {
	// Keys returns the data key of each wrapped key, by owner. An erased
	// key (Wrapped.Erased) yields a DataKey that refuses to seal or open.
	Keys(ctx context.Context, wrapped []WrappedKey) (map[string]DataKey, error)
}

// DataKey seals and opens bodies with authenticated encryption.
type DataKey interface {
	Seal(aad, plaintext []byte) ([]byte, error)
	Open(aad, sealed []byte) ([]byte, error)
	Erased() bool
}

// WrappedKey is a data key as stored: wrapped by a KMS.
type WrappedKey struct {
	Owner   string
	KMS     string
	Version int
	Blob    []byte // nil once erased
	Erased  bool
}

// NeedKeysError says a write needs data keys its owners do not have yet;
// the caller creates them (outside the transaction) and tries again.
type NeedKeysError struct{ Owners []string }

func (e *NeedKeysError) Error() string {
	return "store: no data key yet for " + strings.Join(e.Owners, ", ")
}

// ErasedError says a resource (or its owner's key) was erased: its data is
// gone for good.
type ErasedError struct {
	Type, ID string // the resource, when there is one
	Owner    string
}

func (e *ErasedError) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("store: %s/%s was erased with the data key of %s", e.Type, e.ID, e.Owner)
	}
	return "store: the data key of " + e.Owner + " was erased"
}

// ErrErased is matched (errors.Is) by every *ErasedError.
var ErrErased = errors.New("store: erased")

// Is makes errors.Is(err, ErrErased) true.
func (e *ErasedError) Is(target error) bool { return target == ErrErased }

// bodyAAD is the additional data that binds a sealed body to its row: a
// body copied to another resource or version does not open.
func bodyAAD(typ, id string, version int64) []byte {
	return []byte("ehrledger body v1\x00" + typ + "\x00" + id + "\x00" + strconv.FormatInt(version, 10))
}

const keyColumns = "owner, kms, kms_version, wrapped, erased_us IS NOT NULL"

// WrappedKeys returns the stored keys of those owners that have one.
func (s *Store) WrappedKeys(ctx context.Context, owners []string) ([]WrappedKey, error) {
	out, err := wrappedKeys(ctx, s.outside(), owners)
	return out, s.classify(err)
}

func wrappedKeys(ctx context.Context, tx *Tx, owners []string) ([]WrappedKey, error) {
	if len(owners) == 0 {
		return nil, nil
	}
	var b builder
	list(b.w("SELECT "+keyColumns+" FROM data_keys WHERE owner IN "), owners)
	return scanKeys(ctx, tx, b.sql(), b.args...)
}

func scanKeys(ctx context.Context, tx *Tx, query string, args ...any) ([]WrappedKey, error) {
	rows, err := tx.db.WithContext(ctx).Raw(query, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("store: data keys: %w", err)
	}
	defer rows.Close()
	var out []WrappedKey
	for rows.Next() {
		var k WrappedKey
		if err := rows.Scan(&k.Owner, &k.KMS, &k.Version, &k.Blob, &k.Erased); err != nil {
			return nil, fmt.Errorf("store: data keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// AddWrappedKeys stores keys for owners that have none; an owner that has
// one keeps it.
func (s *Store) AddWrappedKeys(ctx context.Context, keys []WrappedKey) error {
	now := time.Now().UnixMicro()
	return s.InTx(ctx, func(tx *Tx) error {
		w := &rowWriter{db: tx.db.WithContext(ctx), maxArgs: argsPerStatement(s.dialect)}
		for _, k := range keys {
			w.add("data_keys", "owner, kms, kms_version, wrapped, created_us", "ON CONFLICT (owner) DO NOTHING",
				k.Owner, k.KMS, k.Version, k.Blob, now)
		}
		return w.flush()
	})
}

// StaleWrappedKeys lists live keys wrapped by kms under a version below
// latest, owners after the given one, in owner order.
func (s *Store) StaleWrappedKeys(ctx context.Context, kms string, latest int, after string, limit int) ([]WrappedKey, error) {
	out, err := scanKeys(ctx, s.outside(),
		`SELECT `+keyColumns+` FROM data_keys
WHERE kms = ? AND kms_version < ? AND owner > ? AND wrapped IS NOT NULL
ORDER BY owner LIMIT ?`, kms, latest, after, limit)
	return out, s.classify(err)
}

// UpdateWrappedKeys replaces the wrapping of live keys (rotation); erased
// ones stay erased.
func (s *Store) UpdateWrappedKeys(ctx context.Context, keys []WrappedKey) error {
	return s.InTx(ctx, func(tx *Tx) error {
		for _, k := range keys {
			if err := tx.db.WithContext(ctx).Exec(`UPDATE data_keys SET wrapped = ?, kms_version = ?
WHERE owner = ? AND wrapped IS NOT NULL`, k.Blob, k.Version, k.Owner).Error; err != nil {
				return fmt.Errorf("store: rewrap %s: %w", k.Owner, err)
			}
		}
		return nil
	})
}

// EraseKey destroys owner's wrapped key, leaving a tombstone, and in the
// same transaction withdraws every resource whose current version is
// sealed under it: its search index goes and it reads as erased. It
// returns how many resources were withdrawn, or ErrNotFound when the owner
// has no key. The openings of ledger records sealed under the key are
// deleted with it. record, when not nil, is queued for the ledger in the
// same transaction (a record whose opening is not kept).
func (s *Store) EraseKey(ctx context.Context, owner string, record []byte) (int, error) {
	var n int
	err := s.InTx(ctx, func(tx *Tx) error {
		db := tx.db.WithContext(ctx)
		res := db.Exec(`UPDATE data_keys SET wrapped = NULL, erased_us = ? WHERE owner = ? AND wrapped IS NOT NULL`,
			time.Now().UnixMicro(), owner)
		if res.Error != nil {
			return fmt.Errorf("store: erase %s: %w", owner, res.Error)
		}
		if res.RowsAffected == 0 {
			var exists int64
			if err := db.Raw(`SELECT COUNT(*) FROM data_keys WHERE owner = ?`, owner).Scan(&exists).Error; err != nil {
				return err
			}
			if exists == 0 {
				return ErrNotFound
			}
			// erased before: withdraw again whatever is left
		}
		var keys []Key
		rows, err := db.Raw(`SELECT res_type, res_id FROM resources WHERE key_owner = ? AND erased = ?`, owner, false).Rows()
		if err != nil {
			return err
		}
		for rows.Next() {
			var k Key
			if err := rows.Scan(&k.Type, &k.ID); err != nil {
				rows.Close()
				return err
			}
			keys = append(keys, k)
		}
		rows.Close()
		if err := deleteIndex(ctx, tx.db, keys); err != nil {
			return err
		}
		// Which records wrote the owner's versions goes too.
		if err := db.Exec(`DELETE FROM ledger_anchors WHERE (res_type, res_id) IN (SELECT res_type, res_id FROM resources WHERE key_owner = ?)`, owner).Error; err != nil {
			return fmt.Errorf("store: erase %s: %w", owner, err)
		}
		if err := db.Exec(`UPDATE resources SET deleted = ?, erased = ? WHERE key_owner = ?`, true, true, owner).Error; err != nil {
			return fmt.Errorf("store: erase %s: %w", owner, err)
		}
		n = len(keys)
		// The openings of the ledger's records sealed under the key go
		// with it: those of integrated records, and of queued ones.
		if err := db.Exec(`DELETE FROM ledger_openings WHERE owner = ?`, owner).Error; err != nil {
			return fmt.Errorf("store: erase %s: %w", owner, err)
		}
		if err := db.Exec(`UPDATE ledger_queue SET owner = '', patient_key = 0, time_us = 0, sealed = NULL WHERE owner = ?`, owner).Error; err != nil {
			return fmt.Errorf("store: erase %s: %w", owner, err)
		}
		if record != nil {
			_, err = tx.QueueLedger(ctx, []LedgerEntry{{Record: record}})
		}
		return err
	})
	return n, err
}
