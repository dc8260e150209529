package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/ehrledger/ehrledger/fhir"
	"gorm.io/gorm"
)

// indexTables are the search index tables, each keyed by (res_type, res_id).
var indexTables = []string{
	"search_string", "search_token", "search_reference", "search_date",
	"search_quantity", "search_uri", "search_composite",
}

// replaceIndex drops the index rows of a resource and, unless idx is nil,
// writes idx in their place.
func replaceIndex(ctx context.Context, db *gorm.DB, typ, id string, fresh bool, idx *fhir.Index) error {
	db = db.WithContext(ctx)
	if !fresh {
		for _, t := range indexTables {
			if err := db.Exec(`DELETE FROM `+t+` WHERE res_type = ? AND res_id = ?`, typ, id).Error; err != nil {
				return fmt.Errorf("store: clear %s of %s/%s: %w", t, typ, id, err)
			}
		}
	}
	if idx == nil {
		return nil
	}
	w := &rowWriter{db: db, typ: typ, id: id}
	for _, e := range idx.Strings {
		w.add("search_string", "param, plen, norm, exact", e.Param, 0, e.Norm, e.Value)
	}
	for _, e := range idx.Tokens {
		switch {
		case e.Param == "_id":
			continue // matched on the resource's key
		case e.Code != "":
			w.add("search_token", "param, system, code", e.Param, e.System, e.Code)
		}
		if e.Text != "" {
			w.add("search_string", "param, plen, norm, exact", e.Param+":text", 0, e.Text, e.Text)
		}
		if e.TypeCode != "" {
			w.add("search_token", "param, system, code", e.Param+":of-type", e.TypeSystem, e.TypeCode+"|"+e.Code)
		}
	}
	for _, e := range idx.References {
		w.add("search_reference", "param, target_type, target_id, url", e.Param, e.Type, e.ID, e.URL)
	}
	for _, e := range idx.Dates {
		if e.Param == "_lastUpdated" {
			continue // matched on the version's time
		}
		w.add("search_date", "param, low_us, high_us", e.Param, e.Low.UnixMicro(), e.High.UnixMicro())
	}
	for _, e := range idx.Numbers {
		w.add("search_quantity", "param, value, low, high, system, code, unit", e.Param, e.Value, e.Low, e.High, "", "", "")
	}
	for _, e := range idx.Quantities {
		w.add("search_quantity", "param, value, low, high, system, code, unit", e.Param, e.Value, e.Low, e.High, e.System, e.Code, e.Unit)
	}
	for _, e := range idx.URIs {
		w.add("search_uri", "param, value", e.Param, e.Value)
	}
	for _, e := range idx.Composites {
		row, err := compositeRow(e)
		if err != nil {
			return err
		}
		w.add("search_composite", "param, c1_system, c1_code, c2_system, c2_code, c2_value, c2_low, c2_high, c2_low_us, c2_high_us, c2_text", row...)
	}
	return w.flush()
}

// compositeRow lays a two-part composite out in search_composite's
// columns.
func compositeRow(e fhir.CompositeEntry) ([]any, error) {
	if len(e.Parts) != 2 {
		return nil, fmt.Errorf("store: composite %s has %d parts, want 2", e.Param, len(e.Parts))
	}
	row := []any{e.Param, "", "", "", "", nil, nil, nil, nil, nil, ""}
	first, second := e.Parts[0], e.Parts[1]
	switch {
	case first.Token != nil:
		row[1], row[2] = first.Token.System, first.Token.Code
	case first.Reference != nil:
		row[1], row[2] = first.Reference.Type, first.Reference.ID
	default:
		return nil, fmt.Errorf("store: composite %s: first part must be a token or reference", e.Param)
	}
	switch {
	case second.Token != nil:
		row[3], row[4] = second.Token.System, second.Token.Code
	case second.Reference != nil:
		row[3], row[4] = second.Reference.Type, second.Reference.ID
	case second.Quantity != nil:
		q := second.Quantity
		row[3], row[4], row[5], row[6], row[7], row[10] = q.System, q.Code, q.Value, q.Low, q.High, q.Unit
	case second.Number != nil:
		n := second.Number
		row[5], row[6], row[7] = n.Value, n.Low, n.High
	case second.Date != nil:
		row[8], row[9] = second.Date.Low.UnixMicro(), second.Date.High.UnixMicro()
	case second.String != nil:
		row[10] = second.String.Norm
	default:
		return nil, fmt.Errorf("store: composite %s: unsupported second part", e.Param)
	}
	return row, nil
}

// rowWriter batches index rows into multi-row INSERTs, one statement per
// table and batch, so a resource's index costs a few round trips however
// many values it has.
type rowWriter struct {
	db      *gorm.DB
	typ, id string
	pending map[string]*pendingRows
	order   []string
	err     error
}

type pendingRows struct {
	columns string
	n       int
	args    []any
}

// maxArgs keeps a statement under SQLite's and PostgreSQL's bind limits.
const maxArgs = 30000

func (w *rowWriter) add(table, columns string, values ...any) {
	if w.pending == nil {
		w.pending = map[string]*pendingRows{}
	}
	key := table + "(" + columns + ")"
	p := w.pending[key]
	if p == nil {
		p = &pendingRows{columns: columns}
		w.pending[key] = p
		w.order = append(w.order, key)
	}
	p.args = append(append(p.args, w.typ, w.id), values...)
	p.n++
	if len(p.args)+len(values)+2 > maxArgs {
		w.write(key, p)
	}
}

func (w *rowWriter) write(key string, p *pendingRows) {
	if p.n == 0 || w.err != nil {
		return
	}
	table, _, _ := strings.Cut(key, "(")
	per := len(p.args) / p.n
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", per), ", ") + ")"
	sql := "INSERT INTO " + table + " (res_type, res_id, " + p.columns + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(tuple+", ", p.n), ", ")
	if err := w.db.Exec(sql, p.args...).Error; err != nil {
		w.err = fmt.Errorf("store: index %s/%s into %s: %w", w.typ, w.id, table, err)
	}
	p.args, p.n = p.args[:0], 0
}

func (w *rowWriter) flush() error {
	for _, key := range w.order {
		w.write(key, w.pending[key])
	}
	return w.err
}
