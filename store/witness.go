package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// The state of this provider as a witness of its peers' logs, the
// evidence it keeps against them, and its own log's cosigned checkpoints.
// Checkpoints are opaque signed notes here; the audit packages give them
// their meaning.

// WitnessState is the newest checkpoint of a peer log that this provider
// cosigned.
type WitnessState struct {
	Origin string
	Size   int64
	Root   []byte
	Note   []byte // the checkpoint as cosigned, with the log's signature and ours
}

// ErrWitnessMoved says a witness state was advanced meanwhile from the size
// an update started from.
var ErrWitnessMoved = errors.New("store: the witness state moved meanwhile")

// Witnessed returns the state of origin, or ErrNotFound when this
// provider never cosigned one of its checkpoints.
func (s *Store) Witnessed(ctx context.Context, origin string) (WitnessState, error) {
	var rows []struct {
		Size int64
		Root []byte
		Note string
	}
	err := s.db.WithContext(ctx).Raw(`SELECT size, root, note FROM witness_state WHERE origin = ?`, origin).Scan(&rows).Error
	if err != nil {
		return WitnessState{}, s.classify(fmt.Errorf("store: witness state: %w", err))
	}
	if len(rows) == 0 {
		return WitnessState{}, ErrNotFound
	}
	return WitnessState{Origin: origin, Size: rows[0].Size, Root: rows[0].Root, Note: []byte(rows[0].Note)}, nil
}

// AdvanceWitness replaces the state of next.Origin, provided it is still at
// size from (0 and no state for a log never cosigned); otherwise it
// changes nothing and returns ErrWitnessMoved. It is durable when it
// returns.
func (s *Store) AdvanceWitness(ctx context.Context, from int64, next WitnessState) error {
	now := time.Now().UnixMicro()
	var affected int64
	err := s.InTx(ctx, func(tx *Tx) error {
		res := tx.db.WithContext(ctx).Exec(`UPDATE witness_state SET size = ?, root = ?, note = ?, updated_us = ? WHERE origin = ? AND size = ?`,
			next.Size, next.Root, string(next.Note), now, next.Origin, from)
		if affected = res.RowsAffected; res.Error != nil || affected == 1 || from != 0 {
			return res.Error
		}
		res = tx.db.WithContext(ctx).Exec(`INSERT INTO witness_state (origin, size, root, note, updated_us) VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO NOTHING`,
			next.Origin, next.Size, next.Root, string(next.Note), now)
		affected = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return fmt.Errorf("store: advance witness: %w", err)
	}
	if affected != 1 {
		return ErrWitnessMoved
	}
	return nil
}

// Evidence is a pair of checkpoints of one log that cannot both be true.
type Evidence struct {
	Origin        string
	Found         time.Time
	Reason        string
	First, Second []byte
	Cleared       bool
}

// AddEvidence keeps e (once: a pair already kept is not added again).
func (s *Store) AddEvidence(ctx context.Context, e Evidence) error {
	h := sha256.New()
	h.Write(e.First)
	h.Write([]byte{0})
	h.Write(e.Second)
	id := hex.EncodeToString(h.Sum(nil))
	err := s.db.WithContext(ctx).Exec(`INSERT INTO witness_evidence (id, origin, found_us, reason, first, second) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING`, id, e.Origin, time.Now().UnixMicro(), e.Reason, string(e.First), string(e.Second)).Error
	return s.classify(wrap("store: add evidence", err))
}

// EvidenceAgainst returns the evidence kept against origin ("": every
// log), oldest first.
func (s *Store) EvidenceAgainst(ctx context.Context, origin string) ([]Evidence, error) {
	q := `SELECT origin, found_us, reason, first, second, cleared_us FROM witness_evidence`
	var args []any
	if origin != "" {
		q += ` WHERE origin = ?`
		args = append(args, origin)
	}
	rows, err := s.db.WithContext(ctx).Raw(q+` ORDER BY found_us, id`, args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: evidence: %w", err))
	}
	defer rows.Close()
	var out []Evidence
	for rows.Next() {
		var e Evidence
		var found int64
		var cleared *int64
		var first, second string
		if err := rows.Scan(&e.Origin, &found, &e.Reason, &first, &second, &cleared); err != nil {
			return nil, err
		}
		e.Found, e.First, e.Second, e.Cleared = time.UnixMicro(found), []byte(first), []byte(second), cleared != nil
		out = append(out, e)
	}
	return out, rows.Err()
}

// Untrusted reports whether evidence against origin is held that no
// operator cleared.
func (s *Store) Untrusted(ctx context.Context, origin string) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM witness_evidence WHERE origin = ? AND cleared_us IS NULL`, origin).Row().Scan(&n)
	if err != nil {
		return false, s.classify(fmt.Errorf("store: untrusted: %w", err))
	}
	return n > 0, nil
}

// ClearEvidence marks the evidence against origin looked into: the log is
// trusted again. It returns how many were cleared.
func (s *Store) ClearEvidence(ctx context.Context, origin string) (int64, error) {
	res := s.db.WithContext(ctx).Exec(`UPDATE witness_evidence SET cleared_us = ? WHERE origin = ? AND cleared_us IS NULL`, time.Now().UnixMicro(), origin)
	return res.RowsAffected, s.classify(wrap("store: clear evidence", res.Error))
}

// AddCosigned stores a checkpoint of this provider's log with enough
// cosignatures.
func (s *Store) AddCosigned(ctx context.Context, size int64, note []byte) error {
	err := s.db.WithContext(ctx).Exec(`INSERT INTO ledger_cosigned (size, note, signed_us) VALUES (?, ?, ?)
ON CONFLICT (size) DO UPDATE SET note = excluded.note, signed_us = excluded.signed_us`, size, string(note), time.Now().UnixMicro()).Error
	return s.classify(wrap("store: add cosigned checkpoint", err))
}

// Cosigned returns the largest cosigned checkpoint of this provider's log,
// or ErrNotFound.
func (s *Store) Cosigned(ctx context.Context) (int64, []byte, error) {
	var rows []struct {
		Size int64
		Note string
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT size, note FROM ledger_cosigned ORDER BY size DESC LIMIT 1`).Scan(&rows).Error; err != nil {
		return 0, nil, s.classify(fmt.Errorf("store: cosigned checkpoint: %w", err))
	}
	if len(rows) == 0 {
		return 0, nil, ErrNotFound
	}
	return rows[0].Size, []byte(rows[0].Note), nil
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
