package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ehrledger/ehrledger/fhir"
	"gorm.io/gorm"
)

// Version is one stored version of a resource.
type Version struct {
	Type, ID  string
	VersionID int64
	Updated   time.Time // meta.lastUpdated, microsecond precision
	// Method is the interaction that wrote the version: POST, PUT, PATCH or
	// DELETE.
	Method  string
	Deleted bool
	// Body is the resource JSON as it is served (meta included); nil for a
	// delete.
	Body []byte
}

const versionColumns = "v.res_type, v.res_id, v.version_id, v.updated_us, v.method, v.deleted, v.body"

// queryVersions runs a query selecting versionColumns and reads its rows.
// It scans by hand: gorm's reflective Scan cost a fifth of a read
// (BENCHMARKS.md).
func queryVersions(ctx context.Context, db *gorm.DB, query string, args ...any) ([]Version, error) {
	rows, err := db.WithContext(ctx).Raw(query, args...).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		var v Version
		var us int64
		if err := rows.Scan(&v.Type, &v.ID, &v.VersionID, &us, &v.Method, &v.Deleted, &v.Body); err != nil {
			return nil, err
		}
		v.Updated = time.UnixMicro(us).UTC()
		out = append(out, v)
	}
	return out, rows.Err()
}

const currentQuery = `SELECT ` + versionColumns + `
FROM resources r JOIN resource_versions v
  ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version_id = r.version_id
WHERE r.res_type = ? AND r.res_id = ?`

// Read returns the current version of a resource. It returns ErrNotFound
// when the resource was never written and a *DeletedError (matching
// ErrDeleted) when its current version is a delete.
func (s *Store) Read(ctx context.Context, typ, id string) (*Version, error) {
	v, err := current(ctx, &Tx{db: s.db, dialect: s.dialect}, typ, id)
	if err != nil {
		return nil, s.classify(err)
	}
	if v.Deleted {
		return nil, &DeletedError{Type: typ, ID: id, VersionID: v.VersionID, Updated: v.Updated}
	}
	return v, nil
}

// VRead returns one version of a resource, which may be a delete
// (Version.Deleted). It returns ErrNotFound when that version does not
// exist.
func (s *Store) VRead(ctx context.Context, typ, id string, versionID int64) (*Version, error) {
	rows, err := queryVersions(ctx, s.db, `SELECT `+versionColumns+` FROM resource_versions v
WHERE v.res_type = ? AND v.res_id = ? AND v.version_id = ?`, typ, id, versionID)
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: vread %s/%s/_history/%d: %w", typ, id, versionID, err))
	}
	if len(rows) == 0 {
		return nil, ErrNotFound
	}
	return &rows[0], nil
}

// Current returns the current version of a resource inside the
// transaction, deleted or not, or ErrNotFound.
func (tx *Tx) Current(ctx context.Context, typ, id string) (*Version, error) {
	return current(ctx, tx, typ, id)
}

func current(ctx context.Context, tx *Tx, typ, id string) (*Version, error) {
	rows, err := queryVersions(ctx, tx.db, currentQuery, typ, id)
	if err != nil {
		return nil, fmt.Errorf("store: read %s/%s: %w", typ, id, err)
	}
	if len(rows) == 0 {
		return nil, ErrNotFound
	}
	return &rows[0], nil
}

// Put stores v as the new current version of its resource and replaces
// the resource's search index with idx (a delete drops it). The caller
// chooses v.VersionID (one more than the current one, or 1) and v.Updated;
// a version that already exists makes the transaction conflict.
func (tx *Tx) Put(ctx context.Context, v *Version, idx *fhir.Index) error {
	return tx.PutMany(ctx, []Write{{Version: v, Index: idx}})
}

// Write is one version to store with its search index.
type Write struct {
	Version *Version
	Index   *fhir.Index
}

// PutMany stores several versions of distinct resources as Put does, in a
// handful of multi-row statements whatever their number.
func (tx *Tx) PutMany(ctx context.Context, writes []Write) error {
	seen := make(map[Key]bool, len(writes))
	w := &rowWriter{db: tx.db.WithContext(ctx), maxArgs: argsPerStatement(tx.dialect)}
	var stale []Key // resources whose old index rows go
	for _, wr := range writes {
		v := wr.Version
		if v.Type == "" || v.ID == "" || v.VersionID < 1 {
			return errors.New("store: put: version needs a type, an id and a version number")
		}
		k := Key{v.Type, v.ID}
		if seen[k] {
			return fmt.Errorf("store: put: %s/%s written twice in one call", v.Type, v.ID)
		}
		seen[k] = true
		us := v.Updated.UnixMicro()
		var body any // a nil []byte must reach the database as NULL
		if !v.Deleted {
			body = v.Body
		}
		w.add("resource_versions", "res_type, res_id, version_id, updated_us, method, deleted, body", "",
			v.Type, v.ID, v.VersionID, us, v.Method, v.Deleted, body)
		w.add("resources", "res_type, res_id, version_id, updated_us, deleted", `ON CONFLICT (res_type, res_id) DO UPDATE
SET version_id = excluded.version_id, updated_us = excluded.updated_us, deleted = excluded.deleted`,
			v.Type, v.ID, v.VersionID, us, v.Deleted)
		if v.VersionID > 1 {
			stale = append(stale, k)
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	tx.written += len(writes)
	if err := deleteIndex(ctx, tx.db, stale); err != nil {
		return err
	}
	for _, wr := range writes {
		if !wr.Version.Deleted && wr.Index != nil {
			w.index(wr.Version.Type, wr.Version.ID, wr.Index)
		}
	}
	return w.flush()
}
