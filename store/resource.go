package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ehrledger/ehrledger/fhir"
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
	// delete and for an erased version. It is stored sealed under Owner's
	// data key.
	Body []byte
	// Owner names the data key that seals the body (keys.OwnerOf); empty
	// for a delete.
	Owner string
	// Erased says Owner's key was erased: the body is gone for good.
	Erased bool
}

const versionColumns = "v.res_type, v.res_id, v.version_id, v.updated_us, v.method, v.deleted, v.body, v.key_owner, k.kms, k.kms_version, k.wrapped, k.erased_us"

// versionKeys joins each version row v to the stored data key k of its
// owner, so that opening a page of bodies needs no further query.
const versionKeys = " LEFT JOIN data_keys k ON k.owner = v.key_owner"

// queryVersions runs a query selecting versionColumns (from v joined by
// versionKeys) and reads its rows, opening each body with its owner's data
// key: the keys of all rows are fetched at once, so a page spanning many
// patients costs at most one KMS call. A version whose key was erased comes
// back with Erased set and no body. It scans by hand: gorm's reflective
// Scan cost a fifth of a read (BENCHMARKS.md).
func (tx *Tx) queryVersions(ctx context.Context, query string, args ...any) ([]Version, error) {
	rows, err := tx.db.WithContext(ctx).Raw(query, args...).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Version
	var wrapped []WrappedKey
	seen := map[string]bool{}
	for rows.Next() {
		var v Version
		var us int64
		var owner, kms *string
		var kmsVersion, erasedUs *int64
		var blob []byte
		if err := rows.Scan(&v.Type, &v.ID, &v.VersionID, &us, &v.Method, &v.Deleted, &v.Body,
			&owner, &kms, &kmsVersion, &blob, &erasedUs); err != nil {
			return nil, err
		}
		v.Updated = time.UnixMicro(us).UTC()
		if owner != nil {
			v.Owner = *owner
			if kms == nil {
				return nil, fmt.Errorf("store: %s/%s/_history/%d is sealed under %s, which has no data key", v.Type, v.ID, v.VersionID, v.Owner)
			}
			if !seen[v.Owner] {
				seen[v.Owner] = true
				wrapped = append(wrapped, WrappedKey{Owner: v.Owner, KMS: *kms, Version: int(*kmsVersion), Blob: blob, Erased: erasedUs != nil})
			}
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(wrapped) == 0 {
		return out, nil
	}
	keys, err := tx.dataKeys(ctx, wrapped)
	if err != nil {
		return nil, err
	}
	for i := range out {
		v := &out[i]
		if v.Owner == "" || v.Deleted {
			continue
		}
		k := keys[v.Owner]
		if k.Erased() {
			v.Erased, v.Body = true, nil
			continue
		}
		if v.Body, err = k.Open(bodyAAD(v.Type, v.ID, v.VersionID), v.Body); err != nil {
			return nil, fmt.Errorf("store: %s/%s/_history/%d: %w", v.Type, v.ID, v.VersionID, err)
		}
	}
	return out, nil
}

// dataKeys opens wrapped keys through the store's sealer, which UseKeys
// must have given.
func (tx *Tx) dataKeys(ctx context.Context, wrapped []WrappedKey) (map[string]DataKey, error) {
	if tx.s.sealer == nil {
		return nil, errors.New("store: resources read or written before UseKeys")
	}
	return tx.s.sealer.Keys(ctx, wrapped)
}

const currentQuery = `SELECT ` + versionColumns + `
FROM resources r JOIN resource_versions v
  ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version_id = r.version_id` + versionKeys + `
WHERE r.res_type = ? AND r.res_id = ?`

// Read returns the current version of a resource. It returns ErrNotFound
// when the resource was never written, a *DeletedError (matching
// ErrDeleted) when its current version is a delete and an *ErasedError
// when its data key was erased.
func (s *Store) Read(ctx context.Context, typ, id string) (*Version, error) {
	v, err := current(ctx, s.outside(), typ, id)
	if err != nil {
		return nil, s.classify(err)
	}
	switch {
	case v.Erased:
		return nil, &ErasedError{Type: typ, ID: id, Owner: v.Owner}
	case v.Deleted:
		return nil, &DeletedError{Type: typ, ID: id, VersionID: v.VersionID, Updated: v.Updated}
	}
	return v, nil
}

// VRead returns one version of a resource, which may be a delete
// (Version.Deleted) or erased (Version.Erased). It returns ErrNotFound when that version does not
// exist.
func (s *Store) VRead(ctx context.Context, typ, id string, versionID int64) (*Version, error) {
	rows, err := s.outside().queryVersions(ctx, `SELECT `+versionColumns+` FROM resource_versions v`+versionKeys+`
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
	rows, err := tx.queryVersions(ctx, currentQuery, typ, id)
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
// handful of multi-row statements whatever their number. Each body is
// sealed under its Owner's data key, read inside the transaction so that
// an erasure cannot slip in between: an owner without a key yet makes it
// return a *NeedKeysError, an erased one an *ErasedError.
func (tx *Tx) PutMany(ctx context.Context, writes []Write) error {
	sealed, err := tx.seal(ctx, writes)
	if err != nil {
		return err
	}
	seen := make(map[Key]bool, len(writes))
	w := &rowWriter{db: tx.db.WithContext(ctx), maxArgs: argsPerStatement(tx.dialect), blind: tx.s.blind}
	var stale []Key // resources whose old index rows go
	for i, wr := range writes {
		v := wr.Version
		k := Key{v.Type, v.ID}
		if seen[k] {
			return fmt.Errorf("store: put: %s/%s written twice in one call", v.Type, v.ID)
		}
		seen[k] = true
		us := v.Updated.UnixMicro()
		var body, owner any // nil reaches the database as NULL
		if !v.Deleted {
			body, owner = sealed[i], v.Owner
		}
		w.add("resource_versions", "res_type, res_id, version_id, updated_us, method, deleted, body, key_owner", "",
			v.Type, v.ID, v.VersionID, us, v.Method, v.Deleted, body, owner)
		w.add("resources", "res_type, res_id, version_id, updated_us, deleted, key_owner, erased", `ON CONFLICT (res_type, res_id) DO UPDATE
SET version_id = excluded.version_id, updated_us = excluded.updated_us, deleted = excluded.deleted,
    key_owner = excluded.key_owner, erased = excluded.erased`,
			v.Type, v.ID, v.VersionID, us, v.Deleted, owner, false)
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

// seal returns the sealed body of each write that has one.
func (tx *Tx) seal(ctx context.Context, writes []Write) ([][]byte, error) {
	var owners []string
	for _, wr := range writes {
		v := wr.Version
		switch {
		case v.Type == "" || v.ID == "" || v.VersionID < 1:
			return nil, errors.New("store: put: version needs a type, an id and a version number")
		case v.Deleted:
		case v.Owner == "":
			return nil, fmt.Errorf("store: put: %s/%s has no key owner", v.Type, v.ID)
		case !slices.Contains(owners, v.Owner):
			owners = append(owners, v.Owner)
		}
	}
	if len(owners) == 0 {
		return make([][]byte, len(writes)), nil
	}
	wrapped, err := wrappedKeys(ctx, tx, owners)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < len(owners) {
		var missing []string
		for _, o := range owners {
			if !slices.ContainsFunc(wrapped, func(k WrappedKey) bool { return k.Owner == o }) {
				missing = append(missing, o)
			}
		}
		return nil, &NeedKeysError{Owners: missing}
	}
	for _, k := range wrapped {
		if k.Erased {
			return nil, &ErasedError{Owner: k.Owner}
		}
	}
	keys, err := tx.dataKeys(ctx, wrapped)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(writes))
	for i, wr := range writes {
		v := wr.Version
		if v.Deleted {
			continue
		}
		if out[i], err = keys[v.Owner].Seal(bodyAAD(v.Type, v.ID, v.VersionID), v.Body); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// VersionRef names one version of a resource.
type VersionRef struct {
	Type      string
	ID        string
	VersionID int64
}

// VersionOwner is the data key owner of a stored version ("" for a
// deletion, which seals nothing) and whether that key was erased.
type VersionOwner struct {
	Owner  string
	Erased bool
}

// VersionOwners returns the owner of each stored version named (versions
// not stored are left out), without opening any body.
func (s *Store) VersionOwners(ctx context.Context, refs []VersionRef) (map[VersionRef]VersionOwner, error) {
	want := make(map[VersionRef]bool, len(refs))
	byType := map[string][]string{}
	for _, r := range refs {
		if !want[r] {
			want[r] = true
			byType[r.Type] = append(byType[r.Type], r.ID)
		}
	}
	out := make(map[VersionRef]VersionOwner, len(refs))
	for typ, ids := range byType {
		slices.Sort(ids)
		ids = slices.Compact(ids)
		for start := 0; start < len(ids); start += 500 {
			// Every version of those resources (a few each), kept when named.
			var b builder
			b.w(`SELECT v.res_id, v.version_id, v.key_owner, k.erased_us FROM resource_versions v` + versionKeys + ` WHERE v.res_type = `).arg(typ)
			list(b.w(" AND v.res_id IN "), ids[start:min(start+500, len(ids))])
			rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
			if err != nil {
				return nil, s.classify(fmt.Errorf("store: version owners: %w", err))
			}
			for rows.Next() {
				r := VersionRef{Type: typ}
				var owner sql.NullString
				var erased sql.NullInt64
				if err := rows.Scan(&r.ID, &r.VersionID, &owner, &erased); err != nil {
					rows.Close()
					return nil, err
				}
				if want[r] {
					out[r] = VersionOwner{Owner: owner.String, Erased: erased.Valid}
				}
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Existing returns which of the ids of a type have a stored resource,
// inside the transaction.
func (tx *Tx) Existing(ctx context.Context, typ string, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var b builder
	list(b.w("SELECT res_id FROM resources WHERE res_type = ").arg(typ).w(" AND res_id IN "), ids)
	var found []string
	if err := tx.db.WithContext(ctx).Raw(b.sql(), b.args...).Scan(&found).Error; err != nil {
		return nil, fmt.Errorf("store: existing %s: %w", typ, err)
	}
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}

// OwnedVersion is the current version of a resource and the owner of its
// data key.
type OwnedVersion struct {
	Owner string
	VersionRef
}

// CurrentOf returns the current versions of the live resources of type
// typ whose key owners are among owners, by owner then id: one indexed
// query, so that a caller can tell cheaply whether what it cached of
// those resources is still current (the consent engine's policies).
func (s *Store) CurrentOf(ctx context.Context, typ string, owners []string) ([]OwnedVersion, error) {
	var out []OwnedVersion
	owners = slices.Compact(slices.Sorted(slices.Values(owners)))
	for start := 0; start < len(owners); start += 500 {
		var b builder
		b.w(`SELECT key_owner, res_id, version_id FROM resources WHERE res_type = `).arg(typ)
		list(b.w(" AND NOT deleted AND key_owner IN "), owners[start:min(start+500, len(owners))])
		b.w(" ORDER BY key_owner, res_id")
		rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
		if err != nil {
			return nil, s.classify(fmt.Errorf("store: current versions: %w", err))
		}
		for rows.Next() {
			v := OwnedVersion{VersionRef: VersionRef{Type: typ}}
			if err := rows.Scan(&v.Owner, &v.ID, &v.VersionID); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, v)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Exists says, without opening any body, whether typ/id has a live
// current version: nil when it does, else ErrNotFound (never written), a
// *DeletedError or an *ErasedError as Read would return.
func (s *Store) Exists(ctx context.Context, typ, id string) error {
	var rows []struct {
		VersionID int64
		UpdatedUs int64
		Deleted   bool
		Erased    bool
		KeyOwner  *string
		ErasedUs  *int64
	}
	err := s.db.WithContext(ctx).Raw(`SELECT r.version_id, r.updated_us, r.deleted, r.erased, r.key_owner, k.erased_us
FROM resources r LEFT JOIN data_keys k ON k.owner = r.key_owner WHERE r.res_type = ? AND r.res_id = ?`, typ, id).Scan(&rows).Error
	switch {
	case err != nil:
		return s.classify(fmt.Errorf("store: exists %s/%s: %w", typ, id, err))
	case len(rows) == 0:
		return ErrNotFound
	case rows[0].Erased || rows[0].ErasedUs != nil:
		owner := ""
		if rows[0].KeyOwner != nil {
			owner = *rows[0].KeyOwner
		}
		return &ErasedError{Type: typ, ID: id, Owner: owner}
	case rows[0].Deleted:
		return &DeletedError{Type: typ, ID: id, VersionID: rows[0].VersionID, Updated: time.UnixMicro(rows[0].UpdatedUs).UTC()}
	}
	return nil
}
