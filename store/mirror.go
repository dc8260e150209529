package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The copies of peers' logs this provider mirrors: per origin, the
// checkpoint mirrored and the C2SP tiles (level -1: entry bundles) of its
// tree, each at the widest width fetched.

// MirrorState is how far the copy of one peer's log goes.
type MirrorState struct {
	Origin string
	Size   int64
	Root   []byte
	Note   []byte // the checkpoint mirrored, as the peer served it
}

// MirrorTile is one tile of a mirrored log.
type MirrorTile struct {
	Level int
	N     int64
	Width int
	Data  []byte
}

// Mirrored returns the state of origin's copy, or ErrNotFound.
func (s *Store) Mirrored(ctx context.Context, origin string) (MirrorState, error) {
	var rows []struct {
		Size int64
		Root []byte
		Note string
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT size, root, note FROM mirror_state WHERE origin = ?`, origin).Scan(&rows).Error; err != nil {
		return MirrorState{}, s.classify(fmt.Errorf("store: mirror state: %w", err))
	}
	if len(rows) == 0 {
		return MirrorState{}, ErrNotFound
	}
	return MirrorState{Origin: origin, Size: rows[0].Size, Root: rows[0].Root, Note: []byte(rows[0].Note)}, nil
}

// MirrorTiles returns the stored tiles of origin with the given keys, in
// order; a tile not stored is a zero MirrorTile.
func (s *Store) MirrorTiles(ctx context.Context, origin string, keys []LedgerTileKey) ([]MirrorTile, error) {
	out := make([]MirrorTile, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	var b builder
	b.w("SELECT level, n, width, data FROM mirror_tiles WHERE origin = ").arg(origin).w(" AND (")
	for i, k := range keys {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(level = ").arg(k.Level).w(" AND n = ").arg(k.N).w(")")
	}
	b.w(")")
	rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: mirror tiles: %w", err))
	}
	defer rows.Close()
	got := map[LedgerTileKey]MirrorTile{}
	for rows.Next() {
		var t MirrorTile
		if err := rows.Scan(&t.Level, &t.N, &t.Width, &t.Data); err != nil {
			return nil, err
		}
		got[LedgerTileKey{t.Level, t.N}] = t
	}
	for i, k := range keys {
		out[i] = got[k]
	}
	return out, rows.Err()
}

// ErrMirrorMoved says the copy was advanced meanwhile from the size an
// update started from.
var ErrMirrorMoved = errors.New("store: the mirror moved meanwhile")

// AdvanceMirror stores the new state of next.Origin's copy (its tiles
// stored before, PutMirrorTiles), provided the copy is still at size from
// (0 and none for a first copy); otherwise ErrMirrorMoved.
func (s *Store) AdvanceMirror(ctx context.Context, from int64, next MirrorState) error {
	now := time.Now().UnixMicro()
	moved := false
	err := s.InTx(ctx, func(tx *Tx) error {
		db := tx.db.WithContext(ctx)
		res := db.Exec(`UPDATE mirror_state SET size = ?, root = ?, note = ?, updated_us = ? WHERE origin = ? AND size = ?`,
			next.Size, next.Root, string(next.Note), now, next.Origin, from)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			if from != 0 {
				moved = true
				return nil
			}
			res = db.Exec(`INSERT INTO mirror_state (origin, size, root, note, updated_us) VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO NOTHING`,
				next.Origin, next.Size, next.Root, string(next.Note), now)
			moved = res.Error == nil && res.RowsAffected == 0
			return res.Error
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: advance mirror: %w", err)
	}
	if moved {
		return ErrMirrorMoved
	}
	return nil
}

// PutMirrorTiles stores tiles of origin's copy (each only when wider
// than the one stored), in one transaction.
func (s *Store) PutMirrorTiles(ctx context.Context, origin string, tiles []MirrorTile) error {
	if len(tiles) == 0 {
		return nil
	}
	err := s.InTx(ctx, func(tx *Tx) error {
		for _, t := range tiles {
			err := tx.db.WithContext(ctx).Exec(`INSERT INTO mirror_tiles (origin, level, n, width, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (origin, level, n) DO UPDATE SET width = excluded.width, data = excluded.data WHERE mirror_tiles.width < excluded.width`,
				origin, t.Level, t.N, t.Width, t.Data).Error
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put mirror tiles: %w", err)
	}
	return nil
}
