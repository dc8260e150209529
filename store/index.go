package store

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ehrledger/ehrledger/fhir"
	"gorm.io/gorm"
)

// indexTables are the search index tables, each keyed by (res_type, res_id).
var indexTables = []string{
	"search_string", "search_token", "search_reference", "search_date",
	"search_quantity", "search_uri", "search_composite",
}

// deleteIndex drops every index row of the given resources.
func deleteIndex(ctx context.Context, db *gorm.DB, keys []Key) error {
	const perStatement = 500
	for start := 0; start < len(keys); start += perStatement {
		batch := keys[start:min(start+perStatement, len(keys))]
		for _, t := range indexTables {
			var b builder
			b.w("DELETE FROM " + t + " WHERE ")
			b.keys("res_type", "res_id", batch)
			if err := db.WithContext(ctx).Exec(b.sql(), b.args...).Error; err != nil {
				return fmt.Errorf("store: clear %s: %w", t, err)
			}
		}
	}
	return nil
}

// index queues the rows of one resource's search index. _id and
// _lastUpdated are not written: searches match them on the resource's key
// and version time.
func (w *rowWriter) index(typ, id string, idx *fhir.Index) {
	const (
		tokenCols = "res_type, res_id, param, system, code"
		qtyCols   = "res_type, res_id, param, value, low, high, system, code, unit"
	)
	for _, e := range idx.Strings {
		w.stringRows(typ, id, e.Param, e.Norm, e.Value)
	}
	for _, e := range idx.Tokens {
		switch {
		case e.Param == "_id":
			continue
		case e.Code != "":
			w.add("search_token", tokenCols, "", typ, id, e.Param, e.System, blindCode(w.blind, typ, e.Param, e.Code))
		}
		switch {
		case e.Text == "":
		case e.Code == "":
			// A CodeableConcept's text: free text, blind on patient data.
			w.stringRows(typ, id, e.Param+":text", e.Text, e.Text)
		default:
			// A coding's display (or an identifier type's text): the name
			// of a code stored in clear beside it (docs/security.md).
			w.stringRows(typ, id, e.Param+":display", e.Text, e.Text)
		}
		if e.TypeCode != "" {
			p := e.Param + ":of-type"
			w.add("search_token", tokenCols, "", typ, id, p, e.TypeSystem, blindCode(w.blind, typ, p, e.TypeCode+"|"+e.Code))
		}
	}
	for _, e := range idx.References {
		w.add("search_reference", "res_type, res_id, param, target_type, target_id, url", "", typ, id, e.Param, e.Type, e.ID, e.URL)
	}
	for _, e := range idx.Dates {
		if e.Param != "_lastUpdated" {
			w.add("search_date", "res_type, res_id, param, low_us, high_us", "", typ, id, e.Param, e.Low.UnixMicro(), e.High.UnixMicro())
		}
	}
	for _, e := range idx.Numbers {
		w.add("search_quantity", qtyCols, "", typ, id, e.Param, e.Value, e.Low, e.High, "", "", "")
	}
	for _, e := range idx.Quantities {
		w.add("search_quantity", qtyCols, "", typ, id, e.Param, e.Value, e.Low, e.High, e.System, e.Code, e.Unit)
	}
	for _, e := range idx.URIs {
		w.add("search_uri", "res_type, res_id, param, value", "", typ, id, e.Param, e.Value)
	}
	for _, e := range idx.Composites {
		row, err := compositeRow(e)
		if err != nil {
			if w.err == nil {
				w.err = fmt.Errorf("store: index %s/%s: %w", typ, id, err)
			}
			continue
		}
		w.add("search_composite", compositeCols, "", append([]any{typ, id}, row...)...)
	}
}

// compositeCols are search_composite's columns: the first part in c1_*,
// each later part in the columns its type uses among cN_*.
const compositeCols = "res_type, res_id, param, c1_system, c1_code, " +
	"c2_system, c2_code, c2_value, c2_low, c2_high, c2_low_us, c2_high_us, c2_text, " +
	"c3_system, c3_code, c3_value, c3_low, c3_high, c3_low_us, c3_high_us, c3_text"

// maxCompositeParts is how many parts search_composite holds; R4's
// composites have two or three (MolecularSequence's coordinates).
const maxCompositeParts = 3

// compositeRow lays a composite out in search_composite's columns after
// res_type and res_id.
func compositeRow(e fhir.CompositeEntry) ([]any, error) {
	if len(e.Parts) < 2 || len(e.Parts) > maxCompositeParts {
		return nil, fmt.Errorf("composite %s has %d parts, want 2 to %d", e.Param, len(e.Parts), maxCompositeParts)
	}
	row := []any{e.Param, "", ""}
	switch first := e.Parts[0]; {
	case first.Token != nil:
		row[1], row[2] = first.Token.System, first.Token.Code
	case first.Reference != nil:
		row[1], row[2] = first.Reference.Type, first.Reference.ID
	default:
		return nil, fmt.Errorf("composite %s: first part must be a token or reference", e.Param)
	}
	for i := 1; i < maxCompositeParts; i++ {
		// system, code, value, low, high, low_us, high_us, text
		cols := []any{"", "", nil, nil, nil, nil, nil, ""}
		if i < len(e.Parts) {
			switch part := e.Parts[i]; {
			case part.Token != nil:
				cols[0], cols[1] = part.Token.System, part.Token.Code
			case part.Reference != nil:
				cols[0], cols[1] = part.Reference.Type, part.Reference.ID
			case part.Quantity != nil:
				q := part.Quantity
				cols[0], cols[1], cols[2], cols[3], cols[4], cols[7] = q.System, q.Code, q.Value, q.Low, q.High, q.Unit
			case part.Number != nil:
				n := part.Number
				cols[2], cols[3], cols[4] = n.Value, n.Low, n.High
			case part.Date != nil:
				cols[5], cols[6] = part.Date.Low.UnixMicro(), part.Date.High.UnixMicro()
			case part.String != nil:
				cols[7] = part.String.Norm
			default:
				return nil, fmt.Errorf("composite %s: unsupported part %d", e.Param, i+1)
			}
		}
		row = append(row, cols...)
	}
	return row, nil
}

// rowWriter batches rows into multi-row INSERTs, one statement per table
// and batch, so that writing many resources, each with many index values,
// costs a few round trips.
type rowWriter struct {
	db      *gorm.DB
	blind   Blinder // of index rows; nil for none
	maxArgs int     // bind values per statement
	pending map[rowsKey]*pendingRows
	order   []rowsKey
	err     error
}

type pendingRows struct {
	table, columns, suffix string
	n                      int
	args                   []any
}

// argsPerStatement bounds the bind values of one multi-row statement:
// under PostgreSQL's limit of 65535, and for SQLite far lower, because its
// driver looks up each value by a linear scan of all of them (a 30,000-value
// statement spent seconds binding; BENCHMARKS.md).
func argsPerStatement(d Dialect) int {
	if d == SQLite {
		return 1000
	}
	return 30000
}

// blob binds bytes as one value: gorm expands a bare []byte that follows
// "(" in a statement (the first value of a VALUES tuple or an IN list)
// into a list of its bytes.
type blob []byte

// Value implements driver.Valuer.
func (b blob) Value() (driver.Value, error) { return []byte(b), nil }

// bindable is v as a statement argument: bytes as a blob.
func bindable(v any) any {
	if b, ok := v.([]byte); ok && b != nil {
		return blob(b)
	}
	return v
}

// rowsKey names one kind of statement a rowWriter batches rows into.
type rowsKey struct{ table, columns, suffix string }

// add queues one row; suffix follows the VALUES list (ON CONFLICT ...).
func (w *rowWriter) add(table, columns, suffix string, values ...any) {
	for i, v := range values {
		values[i] = bindable(v)
	}
	if w.pending == nil {
		w.pending = map[rowsKey]*pendingRows{}
	}
	key := rowsKey{table, columns, suffix} // a struct, not a concatenation: no allocation per row
	p := w.pending[key]
	if p == nil {
		p = &pendingRows{table: table, columns: columns, suffix: suffix, args: make([]any, 0, min(w.maxArgs, 64*len(values)))}
		w.pending[key] = p
		w.order = append(w.order, key)
	}
	if len(p.args)+len(values) > w.maxArgs {
		w.write(p)
	}
	p.args = append(p.args, values...)
	p.n++
}

func (w *rowWriter) write(p *pendingRows) {
	if p.n == 0 || w.err != nil {
		return
	}
	per := len(p.args) / p.n
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", per), ", ") + ")"
	var sb strings.Builder
	sb.Grow(len(p.columns) + p.n*(len(tuple)+2) + len(p.suffix) + 40)
	sb.WriteString("INSERT INTO " + p.table + " (" + p.columns + ") VALUES ")
	for i := range p.n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(tuple)
	}
	if p.suffix != "" {
		sb.WriteString(" " + p.suffix)
	}
	if err := w.db.Exec(sb.String(), p.args...).Error; err != nil {
		w.err = fmt.Errorf("store: write %s: %w", p.table, err)
	}
	p.args, p.n = p.args[:0], 0
}

// flush writes every queued row, tables in the order first queued.
func (w *rowWriter) flush() error {
	for _, key := range w.order {
		w.write(w.pending[key])
	}
	return w.err
}

// IndexRows is how many search index rows idx makes for a resource of
// typ when stored, the prefix rows of blind strings included, so that a
// resource can be refused before it is written (Store.Put writes these
// rows).
func (s *Store) IndexRows(typ string, idx *fhir.Index) int {
	strRows := func(param, norm string) int {
		if s.blind == nil || !s.blind.Blinds(typ, param) {
			return 1
		}
		return 1 + min(utf8.RuneCountInString(norm)-1, blindPrefixMax)
	}
	n := 0
	for _, e := range idx.Strings {
		n += strRows(e.Param, e.Norm)
	}
	for _, e := range idx.Tokens {
		if e.Param == "_id" {
			continue
		}
		if e.Code != "" {
			n++
		}
		switch {
		case e.Text == "":
		case e.Code == "":
			n += strRows(e.Param+":text", e.Text)
		default:
			n += strRows(e.Param+":display", e.Text)
		}
		if e.TypeCode != "" {
			n++
		}
	}
	for _, e := range idx.Dates {
		if e.Param != "_lastUpdated" {
			n++
		}
	}
	return n + len(idx.References) + len(idx.Numbers) + len(idx.Quantities) + len(idx.URIs) + len(idx.Composites)
}
