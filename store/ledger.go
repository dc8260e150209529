package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// The ledger's tables (migrations 0004 and 0005): the store keeps them; package
// audit decides what goes in and does the Merkle arithmetic.

// MaxLedgerRecord is the largest record the ledger takes: an entry bundle
// gives each record's length in two bytes.
const MaxLedgerRecord = 1<<16 - 1

// ErrLedgerRecordTooLarge refuses a record larger than MaxLedgerRecord.
var ErrLedgerRecordTooLarge = fmt.Errorf("store: a ledger record is larger than %d bytes", MaxLedgerRecord)

// LedgerEntry is a record as the log takes it: its leaf, and the opening
// of what the leaf commits to (nil when it commits to nothing), which the
// store keeps beside the log under the record's index.
type LedgerEntry struct {
	Record  []byte
	Opening *LedgerOpening
	// Written is the version whose write the record records, noted
	// (ledger_anchors) so that the record can be found from the version.
	Written *VersionRef
}

// LedgerOpening is what opens a record's commitment, sealed under the
// data key of Owner, with the keys the lookup table takes from it: the
// patient's (0 for none) and the record's exact time.
type LedgerOpening struct {
	Owner      string
	PatientKey int64
	TimeUs     int64
	Sealed     []byte
}

// QueueLedger adds records to the ledger's queue inside the transaction,
// so that a record and what it records commit together. It returns their
// queue ids, by which their indexes are found once integrated.
func (tx *Tx) QueueLedger(ctx context.Context, entries []LedgerEntry) ([]int64, error) {
	now := time.Now().UnixMicro()
	ids := make([]int64, 0, len(entries))
	for _, e := range entries {
		if len(e.Record) > MaxLedgerRecord {
			return nil, ErrLedgerRecordTooLarge
		}
		o := e.Opening
		if o == nil {
			o = &LedgerOpening{}
		}
		var id int64
		if err := tx.db.WithContext(ctx).Raw(`INSERT INTO ledger_queue (data, queued_us, owner, patient_key, time_us, sealed) VALUES (?, ?, ?, ?, ?, ?) RETURNING queue_id`,
			bindable(e.Record), now, o.Owner, o.PatientKey, o.TimeUs, bindable(o.Sealed)).Row().Scan(&id); err != nil {
			return nil, fmt.Errorf("store: queue ledger record: %w", err)
		}
		ids = append(ids, id)
	}
	w := &rowWriter{db: tx.db.WithContext(ctx), maxArgs: argsPerStatement(tx.dialect)}
	for i, e := range entries {
		if v := e.Written; v != nil {
			w.add("ledger_anchors", "res_type, res_id, version_id, queue_id", "", v.Type, v.ID, v.VersionID, ids[i])
		}
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	return ids, nil
}

// QueueLedger is Tx.QueueLedger in a transaction of its own.
func (s *Store) QueueLedger(ctx context.Context, entries []LedgerEntry) ([]int64, error) {
	var ids []int64
	err := s.InTx(ctx, func(tx *Tx) error {
		var err error
		ids, err = tx.QueueLedger(ctx, entries)
		return err
	})
	return ids, err
}

// LedgerOpenings returns the openings kept of the records at the given
// indexes; a record without one (it commits to nothing, or its owner's
// key was erased) is missing from the map.
func (s *Store) LedgerOpenings(ctx context.Context, idx []int64) (map[int64]LedgerOpening, error) {
	out := make(map[int64]LedgerOpening, len(idx))
	for len(idx) > 0 {
		n := min(len(idx), 500)
		var b builder
		list(b.w("SELECT idx, owner, patient_key, time_us, sealed FROM ledger_openings WHERE idx IN "), idx[:n])
		rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
		if err != nil {
			return nil, s.classify(fmt.Errorf("store: ledger openings: %w", err))
		}
		for rows.Next() {
			var i int64
			var o LedgerOpening
			if err := rows.Scan(&i, &o.Owner, &o.PatientKey, &o.TimeUs, &o.Sealed); err != nil {
				rows.Close()
				return nil, err
			}
			out[i] = o
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		idx = idx[n:]
	}
	return out, nil
}

// LedgerTile is a C2SP hash tile (Level >= 0) or entry bundle (Level -1)
// as wide as the tree has grown.
type LedgerTile struct {
	Level int
	N     int64
	Data  []byte
}

// LedgerTilePart is what one batch added to a tile: its items (hashes or
// entries) from number Pos on.
type LedgerTilePart struct {
	Level int
	N     int64
	Pos   int
	Data  []byte
}

// LedgerPlacement is what integrating a batch writes besides the queue's
// bookkeeping: its parts of the tiles it extends, and the new root.
type LedgerPlacement struct {
	Parts []LedgerTilePart
	Root  []byte
}

// ErrNotLeaseHolder says another sequencer holds the ledger's lease.
var ErrNotLeaseHolder = errors.New("store: another sequencer holds the ledger lease")

// IntegrateLedger adds records to the log in one transaction, if holder
// holds the sequencer lease (taking it when it has expired, and extending
// it by ttl): first the records given (from memory), then queued ones, up
// to limit in all. It reads the tree size n, calls place with n and the
// records with their openings, which get indexes n, n+1, ..., writes the
// tiles place returns and the records' openings, removes the queued
// records from the queue and advances the size and root; it returns the
// new size.
func (s *Store) IntegrateLedger(ctx context.Context, holder string, ttl time.Duration, entries []LedgerEntry, limit int,
	place func(size int64, records []LedgerEntry) (*LedgerPlacement, error)) (int64, error) {
	var size int64
	err := s.InTx(ctx, func(tx *Tx) error {
		db := tx.db.WithContext(ctx)
		now := time.Now()
		var sizes []int64
		if err := db.Raw(`UPDATE ledger_state SET lease_holder = ?, lease_until = ?
WHERE id = 1 AND (lease_holder = ? OR lease_until < ?) RETURNING size`, holder, now.Add(ttl).UnixMicro(), holder, now.UnixMicro()).
			Scan(&sizes).Error; err != nil {
			return fmt.Errorf("store: ledger lease: %w", err)
		}
		if len(sizes) == 0 {
			return ErrNotLeaseHolder
		}
		size = sizes[0]
		all := slices.Clone(entries)
		queueIDs := make([]any, len(entries)) // NULL for records from memory
		if room := limit - len(entries); room > 0 {
			rows, err := db.Raw(`SELECT queue_id, data, owner, patient_key, time_us, sealed FROM ledger_queue ORDER BY queue_id LIMIT ?`, room).Rows()
			if err != nil {
				return fmt.Errorf("store: ledger queue: %w", err)
			}
			for rows.Next() {
				var id int64
				var e LedgerEntry
				var o LedgerOpening
				if err := rows.Scan(&id, &e.Record, &o.Owner, &o.PatientKey, &o.TimeUs, &o.Sealed); err != nil {
					rows.Close()
					return err
				}
				if o.Sealed != nil {
					e.Opening = &o
				}
				all = append(all, e)
				queueIDs = append(queueIDs, id)
			}
			rows.Close()
		}
		if len(all) == 0 {
			return nil
		}
		p, err := place(size, all)
		if err != nil {
			return err
		}
		w := &rowWriter{db: db, maxArgs: argsPerStatement(tx.dialect)}
		for _, t := range p.Parts {
			w.add("ledger_tiles", "level, n, pos, data", "", t.Level, t.N, t.Pos, t.Data)
		}
		for i, id := range queueIDs {
			if id != nil {
				w.add("ledger_placed", "queue_id, idx", "", id, size+int64(i))
			}
		}
		for i, e := range all {
			if o := e.Opening; o != nil {
				w.add("ledger_openings", "idx, owner, patient_key, time_us, sealed", "", size+int64(i), o.Owner, o.PatientKey, o.TimeUs, bindable(o.Sealed))
			}
		}
		if err := w.flush(); err != nil {
			return err
		}
		if len(queueIDs) > len(entries) {
			var b builder
			list(b.w("DELETE FROM ledger_queue WHERE queue_id IN "), queueIDs[len(entries):])
			if err := db.Exec(b.sql(), b.args...).Error; err != nil {
				return fmt.Errorf("store: ledger dequeue: %w", err)
			}
		}
		size += int64(len(all))
		return db.Exec(`UPDATE ledger_state SET size = ?, root = ? WHERE id = 1`, size, bindable(p.Root)).Error
	})
	if err != nil {
		return 0, err
	}
	return size, nil
}

// LedgerQueued reports whether records wait in the queue, without taking
// a write lock.
func (s *Store) LedgerQueued(ctx context.Context) (bool, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Raw(`SELECT queue_id FROM ledger_queue LIMIT 1`).Scan(&ids).Error
	return len(ids) > 0, s.classify(err)
}

// LedgerSize returns the number of records in the log.
func (s *Store) LedgerSize(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw(`SELECT size FROM ledger_state WHERE id = 1`).Row().Scan(&n)
	return n, s.classify(err)
}

// LedgerState returns the number of records in the log and the root of
// their tree, read together.
func (s *Store) LedgerState(ctx context.Context) (int64, []byte, error) {
	var n int64
	var root []byte
	err := s.db.WithContext(ctx).Raw(`SELECT size, root FROM ledger_state WHERE id = 1`).Row().Scan(&n, &root)
	return n, root, s.classify(err)
}

// LedgerLease returns who holds the sequencer lease and until when.
func (s *Store) LedgerLease(ctx context.Context) (string, time.Time, error) {
	var holder string
	var until int64
	err := s.db.WithContext(ctx).Raw(`SELECT lease_holder, lease_until FROM ledger_state WHERE id = 1`).Row().Scan(&holder, &until)
	return holder, time.UnixMicro(until), s.classify(err)
}

// LedgerTileKey names a tile or bundle.
type LedgerTileKey struct {
	Level int
	N     int64
}

// LedgerTiles returns the stored data of the given tiles (their parts
// joined), in order; a tile not stored is nil.
func (s *Store) LedgerTiles(ctx context.Context, keys []LedgerTileKey) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var where builder
	for i, k := range keys {
		if i > 0 {
			where.w(" OR ")
		}
		where.w("(level = ").arg(k.Level).w(" AND n = ").arg(k.N).w(")")
	}
	got, err := s.queryTiles(ctx, &where)
	if err != nil {
		return nil, err
	}
	byKey := make(map[LedgerTileKey][]byte, len(got))
	for _, t := range got {
		byKey[LedgerTileKey{t.Level, t.N}] = t.Data
	}
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out, nil
}

// LedgerTileRange returns the stored tiles of one level numbered from
// from up to (not including) to, in order.
func (s *Store) LedgerTileRange(ctx context.Context, level int, from, to int64) ([]LedgerTile, error) {
	var where builder
	where.w("level = ").arg(level).w(" AND n >= ").arg(from).w(" AND n < ").arg(to)
	return s.queryTiles(ctx, &where)
}

// queryTiles reads the parts of the tiles that match a condition and
// joins them: tiles in (level, n) order.
func (s *Store) queryTiles(ctx context.Context, where *builder) ([]LedgerTile, error) {
	var b builder
	b.w("SELECT level, n, data FROM ledger_tiles WHERE ").merge(where).w(" ORDER BY level, n, pos")
	rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: ledger tiles: %w", err))
	}
	defer rows.Close()
	var out []LedgerTile
	for rows.Next() {
		var t LedgerTile
		if err := rows.Scan(&t.Level, &t.N, &t.Data); err != nil {
			return nil, err
		}
		if last := len(out) - 1; last >= 0 && out[last].Level == t.Level && out[last].N == t.N {
			out[last].Data = append(out[last].Data, t.Data...)
			continue
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// LedgerIndexes returns the index of each of the queue ids already
// integrated.
func (s *Store) LedgerIndexes(ctx context.Context, queueIDs []int64) (map[int64]int64, error) {
	if len(queueIDs) == 0 {
		return map[int64]int64{}, nil
	}
	var b builder
	list(b.w("SELECT queue_id, idx FROM ledger_placed WHERE queue_id IN "), queueIDs)
	rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: ledger indexes: %w", err))
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var q, i int64
		if err := rows.Scan(&q, &i); err != nil {
			return nil, err
		}
		out[q] = i
	}
	return out, rows.Err()
}

// LedgerCursor returns how far the work named name has gone through the
// log: the index of the last record it dealt with (-1: none).
func (s *Store) LedgerCursor(ctx context.Context, name string) (int64, error) {
	var through []int64
	if err := s.db.WithContext(ctx).Raw(`SELECT through FROM ledger_cursors WHERE name = ?`, name).Scan(&through).Error; err != nil {
		return 0, s.classify(err)
	}
	if len(through) == 0 {
		return -1, nil
	}
	return through[0], nil
}

// AdvanceLedgerCursor moves the cursor named name from from to to inside
// the transaction, or returns ErrCursorMoved when it is not at from.
func (tx *Tx) AdvanceLedgerCursor(ctx context.Context, name string, from, to int64) error {
	db := tx.db.WithContext(ctx)
	var res *gorm.DB
	if from == -1 {
		res = db.Exec(`INSERT INTO ledger_cursors (name, through) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, to)
	} else {
		res = db.Exec(`UPDATE ledger_cursors SET through = ? WHERE name = ? AND through = ?`, to, name, from)
	}
	if res.Error != nil {
		return fmt.Errorf("store: ledger cursor %s: %w", name, res.Error)
	}
	if res.RowsAffected != 1 {
		return ErrCursorMoved
	}
	return nil
}

// LedgerCheckpoint is a signed checkpoint as stored.
type LedgerCheckpoint struct {
	Size int64
	Root []byte
	Note []byte
}

// AddLedgerCheckpoint stores a signed checkpoint.
func (s *Store) AddLedgerCheckpoint(ctx context.Context, c LedgerCheckpoint) error {
	return s.classify(s.db.WithContext(ctx).Exec(`INSERT INTO ledger_checkpoints (size, root, note, signed_us) VALUES (?, ?, ?, ?)
ON CONFLICT (size) DO NOTHING`, c.Size, c.Root, c.Note, time.Now().UnixMicro()).Error)
}

// LedgerCheckpoints returns every stored checkpoint, largest first
// (limit 0: all).
func (s *Store) LedgerCheckpoints(ctx context.Context, limit int) ([]LedgerCheckpoint, error) {
	q := `SELECT size, root, note FROM ledger_checkpoints ORDER BY size DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := s.db.WithContext(ctx).Raw(q).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: ledger checkpoints: %w", err))
	}
	defer rows.Close()
	var out []LedgerCheckpoint
	for rows.Next() {
		var c LedgerCheckpoint
		if err := rows.Scan(&c.Size, &c.Root, &c.Note); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// WrittenIndexes returns the ledger index of the write record (for a
// Consent, its consent record) of each version already integrated into
// the log; a version whose record is not integrated yet, or whose
// patient's key was erased, is missing from the map.
func (s *Store) WrittenIndexes(ctx context.Context, versions []VersionRef) (map[VersionRef]int64, error) {
	out := make(map[VersionRef]int64, len(versions))
	if len(versions) == 0 {
		return out, nil
	}
	var b builder
	b.w("SELECT a.res_type, a.res_id, a.version_id, p.idx FROM ledger_anchors a JOIN ledger_placed p ON p.queue_id = a.queue_id WHERE ")
	for i, v := range versions {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(a.res_type = ").arg(v.Type).w(" AND a.res_id = ").arg(v.ID).w(" AND a.version_id = ").arg(v.VersionID).w(")")
	}
	rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: written indexes: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		var v VersionRef
		var idx int64
		if err := rows.Scan(&v.Type, &v.ID, &v.VersionID, &idx); err != nil {
			return nil, err
		}
		out[v] = idx
	}
	return out, rows.Err()
}
