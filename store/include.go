package store

import (
	"context"
	"fmt"
	"strings"
)

// Key names a resource.
type Key struct{ Type, ID string }

// References returns the distinct targets that the resources from refer
// to through reference parameter param ("*": any), keeping only targets of
// type target when it is set (_include), at most limit of them (0: all).
func (s *Store) References(ctx context.Context, from []Key, param, target string, limit int) ([]Key, error) {
	if len(from) == 0 {
		return nil, nil
	}
	var b builder
	b.w("SELECT DISTINCT x.target_type, x.target_id FROM search_reference x WHERE x.target_id <> '' AND (")
	b.keys("x.res_type", "x.res_id", from)
	b.w(")")
	if param != "*" {
		b.w(" AND x.param = ").arg(param)
	}
	if target != "" {
		b.w(" AND x.target_type = ").arg(target)
	}
	b.w(" ORDER BY x.target_type, x.target_id")
	if limit > 0 {
		b.w(" LIMIT ").arg(limit)
	}
	return s.scanKeys(ctx, &b)
}

// Referrers returns the distinct resources of type source whose reference
// parameter param ("*": any) points at one of to (_revinclude), at most
// limit of them (0: all).
func (s *Store) Referrers(ctx context.Context, to []Key, source, param string, limit int) ([]Key, error) {
	if len(to) == 0 {
		return nil, nil
	}
	var b builder
	b.w("SELECT DISTINCT x.res_type, x.res_id FROM search_reference x WHERE (")
	b.keys("x.target_type", "x.target_id", to)
	b.w(") AND x.res_type = ").arg(source)
	if param != "*" {
		b.w(" AND x.param = ").arg(param)
	}
	b.w(" ORDER BY x.res_type, x.res_id")
	if limit > 0 {
		b.w(" LIMIT ").arg(limit)
	}
	return s.scanKeys(ctx, &b)
}

// keys writes (typeCol, idCol) IN the given keys, grouped by type.
func (b *builder) keys(typeCol, idCol string, keys []Key) {
	byType := map[string][]string{}
	var types []string
	for _, k := range keys {
		if _, ok := byType[k.Type]; !ok {
			types = append(types, k.Type)
		}
		byType[k.Type] = append(byType[k.Type], k.ID)
	}
	for i, t := range types {
		if i > 0 {
			b.w(" OR ")
		}
		b.w("(" + typeCol + " = ").arg(t).w(" AND " + idCol + " IN ")
		list(b, byType[t]).w(")")
	}
}

func (s *Store) scanKeys(ctx context.Context, b *builder) ([]Key, error) {
	rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: references: %w", err))
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		var k Key
		if err := rows.Scan(&k.Type, &k.ID); err != nil {
			return nil, fmt.Errorf("store: references: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// ReadMany returns the current versions of the live resources among keys,
// in the order of keys; deleted and unknown ones are left out.
func (s *Store) ReadMany(ctx context.Context, keys []Key) ([]Version, error) {
	out, err := readMany(ctx, s.outside(), keys)
	return out, s.classify(err)
}

func readMany(ctx context.Context, tx *Tx, keys []Key) ([]Version, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	var b builder
	b.w(strings.Replace(currentQuery, "WHERE r.res_type = ? AND r.res_id = ?", "WHERE r.deleted = ", 1)).arg(false).w(" AND (")
	b.keys("r.res_type", "r.res_id", keys)
	b.w(")")
	found, err := tx.queryVersions(ctx, b.sql(), b.args...)
	if err != nil {
		return nil, fmt.Errorf("store: read many: %w", err)
	}
	at := make(map[Key]int, len(found))
	for i, v := range found {
		at[Key{v.Type, v.ID}] = i
	}
	out := make([]Version, 0, len(found))
	for _, k := range keys {
		if i, ok := at[k]; ok {
			out = append(out, found[i])
			delete(at, k) // a key asked twice comes once
		}
	}
	return out, nil
}
