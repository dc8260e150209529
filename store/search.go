package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/fhir"
	"gorm.io/gorm"
)

// SearchResult is one page of a search.
type SearchResult struct {
	IDs []string // the matches of the page, in order
	// Owners are the key owners of the matches (which name their
	// patients), After and Before the cursors of the page after and the
	// page before each match, all aligned with IDs.
	Owners, After, Before []string
	// Next and Prev are the cursors of the following and the preceding
	// page ("" when there is none); pass one back as SearchQuery.Page.
	Next, Prev string
	// Total is the number of matches, or -1 when not counted.
	Total int
}

// Search runs q over the live resources of q.Type and returns one page of
// ids. Pages are cut by a cursor holding the sort keys of the last match,
// so results written while a client pages do not shift later pages.
func (s *Store) Search(ctx context.Context, q *fhir.SearchQuery) (*SearchResult, error) {
	res, err := search(ctx, s.outside(), q)
	if err != nil {
		return nil, s.classify(err)
	}
	return res, nil
}

// Search is Store.Search inside the transaction, so that a conditional
// interaction cannot race with concurrent writes.
func (tx *Tx) Search(ctx context.Context, q *fhir.SearchQuery) (*SearchResult, error) {
	return search(ctx, tx, q)
}

func search(ctx context.Context, tx *Tx, q *fhir.SearchQuery) (*SearchResult, error) {
	db, dialect := tx.db, tx.dialect
	where, err := whereClause(q, dialect, tx.s.blind)
	if err != nil {
		return nil, err
	}
	res := &SearchResult{Total: -1}
	if q.Count > 0 && q.Summary != "count" {
		page, keys, before, err := pageQuery(q, where)
		if err != nil {
			return nil, err
		}
		rows, err := db.WithContext(ctx).Raw(page.sql(), page.args...).Rows()
		if err != nil {
			return nil, fmt.Errorf("store: search %s: %w", q.Type, err)
		}
		defer rows.Close()
		var got [][]string // [id, k0, k1, ...] per row
		var owners []string
		for rows.Next() {
			vals := make([]any, len(keys)+2)
			strs := make([]string, len(keys)+2)
			for i := range vals {
				vals[i] = &strs[i]
			}
			// Columns: the id, the sort keys, the owner.
			if err := rows.Scan(vals...); err != nil {
				return nil, fmt.Errorf("store: search %s: %w", q.Type, err)
			}
			got = append(got, strs[:len(strs)-1])
			owners = append(owners, strs[len(strs)-1])
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("store: search %s: %w", q.Type, err)
		}
		more := len(got) > q.Count
		got, owners = got[:min(len(got), q.Count)], owners[:min(len(owners), q.Count)]
		if before {
			slices.Reverse(got)
			slices.Reverse(owners)
		}
		for i, row := range got {
			res.IDs = append(res.IDs, row[0])
			res.Owners = append(res.Owners, owners[i])
			res.After = append(res.After, encodePage("a", row))
			res.Before = append(res.Before, encodePage("b", row))
		}
		if len(got) > 0 {
			first, last := got[0], got[len(got)-1]
			if more || before {
				res.Next = encodePage("a", last)
			}
			if (before && more) || (!before && q.Page != "") {
				res.Prev = encodePage("b", first)
			}
		}
	}
	switch q.Total {
	case "none":
	case "estimate":
		if dialect != SQLite {
			n, err := estimate(ctx, db, where)
			if err != nil {
				return nil, err
			}
			res.Total = n
			break
		}
		fallthrough
	default:
		if q.Page != "" && q.Total == "" {
			break // counted on the first page; later pages need not
		}
		var n int64
		var count builder
		count.w("SELECT COUNT(*) FROM resources r WHERE ").merge(where)
		if err := db.WithContext(ctx).Raw(count.sql(), count.args...).Scan(&n).Error; err != nil {
			return nil, fmt.Errorf("store: count %s: %w", q.Type, err)
		}
		res.Total = int(n)
	}
	return res, nil
}

// whereClause is the condition on resource row r that q's criteria and
// compartment make.
//
// PostgreSQL plans every criterion as a semi-join and picks the order
// itself. SQLite would list every match of each criterion in a temporary
// table, however many (all laboratory results, to keep a patient's few):
// there the most selective criterion (by selectivity) lists the
// candidates and the others are probed for each (BENCHMARKS.md).
func whereClause(q *fhir.SearchQuery, dialect Dialect, blind Blinder) (*builder, error) {
	where := &builder{blind: blind}
	where.w("r.res_type = ").arg(q.Type).w(" AND r.deleted = ").arg(false)
	order := make([]int, len(q.Where))
	for i := range order {
		order[i] = i
	}
	driven := dialect != SQLite // every criterion an uncorrelated semi-join
	if !driven {
		slices.SortStableFunc(order, func(a, b int) int { return selectivity(&q.Where[a]) - selectivity(&q.Where[b]) })
	}
	if len(q.Owners) > 0 {
		list(where.w(" AND r.key_owner IN "), q.Owners)
	}
	if q.Compartment != nil {
		where.w(" AND ")
		where.compartment("r.res_id", q.Type, q.Compartment, driven && dialect == SQLite)
		driven = true
	}
	for _, i := range order {
		where.w(" AND ")
		if err := where.criterion("r.res_id", q.Type, &q.Where[i], driven && dialect == SQLite); err != nil {
			return nil, err
		}
		driven = true
	}
	return where, nil
}

// estimate asks PostgreSQL's planner how many rows the search matches.
func estimate(ctx context.Context, db *gorm.DB, where *builder) (int, error) {
	var b builder
	b.w("EXPLAIN (FORMAT JSON) SELECT r.res_id FROM resources r WHERE ").merge(where)
	var plan string
	if err := db.WithContext(ctx).Raw(b.sql(), b.args...).Scan(&plan).Error; err != nil {
		return 0, fmt.Errorf("store: estimate: %w", err)
	}
	var out []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(plan), &out); err != nil || len(out) == 0 {
		return 0, fmt.Errorf("store: estimate: unreadable plan: %v", err)
	}
	return int(out[0].Plan.Rows), nil
}

// builder accumulates SQL with ? placeholders and their arguments.
type builder struct {
	sb    strings.Builder
	args  []any
	alias int
	blind Blinder // of PHI values; nil for none
}

func (b *builder) blinds(typ, param string) bool {
	return b.blind != nil && b.blind.Blinds(typ, param)
}

func (b *builder) w(s string) *builder { b.sb.WriteString(s); return b }

func (b *builder) arg(v any) *builder {
	b.sb.WriteByte('?')
	b.args = append(b.args, bindable(v))
	return b
}

func (b *builder) merge(o *builder) *builder {
	b.sb.WriteString(o.sb.String())
	b.args = append(b.args, o.args...)
	return b
}

func (b *builder) sql() string { return b.sb.String() }

// list writes "(?, ?, ...)" binding values, the right side of an IN.
func list[T any](b *builder, values []T) *builder {
	b.w("(")
	for i, v := range values {
		if i > 0 {
			b.w(", ")
		}
		b.arg(v)
	}
	return b.w(")")
}

// next returns a fresh table alias.
func (b *builder) next(prefix string) string {
	b.alias++
	return prefix + strconv.Itoa(b.alias)
}

// tableOf is the index table of a search type.
func tableOf(typ string) (string, error) {
	switch typ {
	case "string":
		return "search_string", nil
	case "token":
		return "search_token", nil
	case "reference":
		return "search_reference", nil
	case "date":
		return "search_date", nil
	case "number", "quantity":
		return "search_quantity", nil
	case "uri":
		return "search_uri", nil
	case "composite":
		return "search_composite", nil
	}
	return "", &CriteriaError{Msg: fmt.Sprintf("search parameters of type %q are not supported", typ)}
}

// criterion writes a boolean SQL expression: the resource of type typ
// whose id is the SQL expression col ("r.res_id" for the searched row)
// meets c. Each criterion is an uncorrelated semi-join,
// "col IN (SELECT x.res_id FROM index x WHERE x.res_type = typ AND
// x.param = ... AND value)", which both databases answer from one index
// range scan whatever the number of candidate resources; a correlated
// EXISTS made SQLite probe the index once per candidate (BENCHMARKS.md).
// Index rows exist only for live resources, so a match through them is
// live.
func (b *builder) criterion(col, typ string, c *fhir.Criterion, probe bool) error {
	switch {
	case c.Code == "_id":
		return b.idCriterion(col, c)
	case c.Code == "_lastUpdated":
		return b.lastUpdated(col, typ, c)
	case c.Has != nil:
		// Resources of type Has.Type meeting Has.Where refer to this one.
		x := b.next("x")
		return b.semi(col, x+".target_id", "search_reference "+x, probe, func() error {
			b.w(x + ".target_type = ").arg(typ).w(" AND " + x + ".res_type = ").arg(c.Has.Type).w(" AND " + x + ".param = ").arg(c.Has.Param).w(" AND ")
			return b.criterion(x+".res_id", c.Has.Type, &c.Has.Where, false)
		})
	case c.Chain != nil:
		// This one refers, through parameter Code, to a resource of type
		// Chain.Type meeting Chain.Where.
		if c.Chain.Type == "" {
			return &CriteriaError{Msg: fmt.Sprintf("chained parameter %s needs a target type", c.Code)}
		}
		x := b.next("x")
		return b.semi(col, x+".res_id", "search_reference "+x, probe, func() error {
			b.w(x + ".res_type = ").arg(typ).w(" AND " + x + ".param = ").arg(c.Code).w(" AND " + x + ".target_type = ").arg(c.Chain.Type).w(" AND ")
			return b.criterion(x+".target_id", c.Chain.Type, &c.Chain.Where, false)
		})
	}
	vtyp, params := c.Type, []string{c.Code}
	switch c.Modifier {
	case "text":
		if vtyp == "token" {
			// The displays of codings (clear, like the codes they name)
			// and the free text of CodeableConcepts (blind on patient
			// data) are kept apart: store/index.go.
			vtyp, params = "string", []string{c.Code + ":display", c.Code + ":text"}
		}
	case "of-type":
		params = []string{c.Code + ":of-type"}
	}
	table, err := tableOf(vtyp)
	if err != nil {
		return err
	}
	if c.Missing == nil && len(c.Values) == 0 {
		return &CriteriaError{Msg: fmt.Sprintf("parameter %s has no value", c.Code)}
	}
	if (c.Missing != nil && *c.Missing) || c.Modifier == "not" {
		b.w("NOT ")
	}
	x := b.next("x")
	return b.semi(col, x+".res_id", table+" "+x, probe, func() error {
		b.w(x + ".res_type = ").arg(typ)
		if len(params) > 1 {
			b.w(" AND (")
		}
		for i, param := range params {
			if i > 0 {
				b.w(" OR ")
			}
			if err := b.values(x, typ, param, vtyp, c, len(params) > 1); err != nil {
				return err
			}
		}
		if len(params) > 1 {
			b.w(")")
		}
		return nil
	})
}

// values writes the condition that index row x is of param (as stored)
// and matches one of c's values, in parentheses when grouped.
func (b *builder) values(x, typ, param, vtyp string, c *fhir.Criterion, grouped bool) error {
	if grouped {
		b.w("(")
		defer b.w(")")
	} else {
		b.w(" AND ")
	}
	b.w(x + ".param = ").arg(param)
	if c.Missing != nil {
		return nil
	}
	if refType, ids, ok := sameTypeRefs(c); ok && !b.blinds(typ, param) {
		// Many references to one type (a chain's resolved targets): one IN
		// list, not an OR per value.
		b.w(" AND " + x + ".target_type = ").arg(refType)
		list(b.w(" AND "+x+".target_id IN "), ids)
		return nil
	}
	if vtyp == "token" && len(c.Values) > 8 && !b.blinds(typ, param) {
		// Many codes: an IN list per system, which the index answers, not
		// an OR of as many system-and-code pairs, which SQLite scans.
		b.w(" AND (")
		b.tokenSets(x+".system", x+".code", c.Values)
		b.w(")")
		return nil
	}
	b.w(" AND (")
	if err := b.anyOf(len(c.Values), func(i int) error { return b.value(x, typ, param, vtyp, c, &c.Values[i]) }); err != nil {
		return err
	}
	b.w(")")
	return nil
}

// anyOf writes n conditions joined by OR. Past a few it nests them in a
// balanced tree of parentheses: SQLite refuses an expression deeper than
// 1,000, which a flat OR of as many values is.
func (b *builder) anyOf(n int, term func(i int) error) error {
	var span func(lo, hi int) error
	span = func(lo, hi int) error {
		if hi-lo <= 8 {
			for i := lo; i < hi; i++ {
				if i > lo {
					b.w(" OR ")
				}
				if err := term(i); err != nil {
					return err
				}
			}
			return nil
		}
		mid := (lo + hi) / 2
		b.w("(")
		if err := span(lo, mid); err != nil {
			return err
		}
		b.w(") OR (")
		if err := span(mid, hi); err != nil {
			return err
		}
		b.w(")")
		return nil
	}
	return span(0, n)
}

// sameTypeRefs returns the type and ids of a reference criterion's
// values when there are several, all Type/id of one type.
func sameTypeRefs(c *fhir.Criterion) (string, []string, bool) {
	if c.Type != "reference" || len(c.Values) < 2 {
		return "", nil, false
	}
	ids := make([]string, len(c.Values))
	for i, v := range c.Values {
		if v.URL != "" || v.RefType == "" || v.RefType != c.Values[0].RefType {
			return "", nil, false
		}
		ids[i] = v.RefID
	}
	return c.Values[0].RefType, ids, true
}

// semi writes "col is one of the ids idCol takes in rows of from meeting
// cond": an uncorrelated "col IN (SELECT idCol FROM from WHERE cond)", or,
// when probe, a correlated "EXISTS (SELECT 1 FROM from WHERE idCol = col
// AND cond)" that looks up each candidate instead of listing every match.
func (b *builder) semi(col, idCol, from string, probe bool, cond func() error) error {
	if probe {
		b.w("EXISTS (SELECT 1 FROM " + from + " WHERE " + idCol + " = " + col + " AND ")
	} else {
		b.w(col + " IN (SELECT " + idCol + " FROM " + from + " WHERE ")
	}
	if err := cond(); err != nil {
		return err
	}
	b.w(")")
	return nil
}

// selectivity ranks a criterion by how few resources it usually matches,
// lowest first: SQLite drives a search from the first criterion and probes
// the others per candidate.
func selectivity(c *fhir.Criterion) int {
	switch {
	case c.Code == "_id":
		return 0
	case c.Missing != nil || c.Modifier == "not" || c.Modifier == "contains" || c.Has != nil:
		return 6
	case c.Chain != nil:
		return 5
	case c.Type == "reference":
		return 1
	case c.Type == "token" && len(c.Values) > 0 && c.Values[0].System != "":
		return 2
	case c.Type == "string" && c.Modifier == "exact", c.Type == "uri":
		return 2
	case c.Type == "token", c.Type == "composite", c.Type == "string":
		return 3
	}
	return 4 // dates, numbers, quantities, _lastUpdated
}

// value writes the condition that index row x, of parameter param (as
// stored) of resource type resType, matches one value of type typ.
func (b *builder) value(x, resType, param, typ string, c *fhir.Criterion, v *fhir.SearchValue) error {
	b.w("(")
	defer b.w(")")
	if b.blinds(resType, param) {
		return b.blindValue(x, resType, param, typ, c, v)
	}
	switch typ {
	case "string":
		switch c.Modifier {
		case "exact":
			b.w(x + ".exact = ").arg(v.Text).w(" AND " + x + ".plen = 0") // a literal: it selects the partial index
		case "contains":
			b.w(x + ".plen = 0 AND " + x + ".norm LIKE ").arg("%" + escapeLike(v.Text) + "%").w(` ESCAPE '\'`)
		default: // starts with, also for :text of tokens
			b.prefix(x+".norm", v.Text).w(" AND " + x + ".plen = 0")
		}
	case "token":
		b.token(x+".system", x+".code", v)
	case "reference":
		switch {
		case v.URL != "":
			b.w(x + ".url = ").arg(v.URL)
		case v.RefType != "":
			b.w(x + ".target_type = ").arg(v.RefType).w(" AND " + x + ".target_id = ").arg(v.RefID)
		default:
			b.w(x + ".target_id = ").arg(v.RefID)
		}
	case "date":
		b.dateRange(x+".low_us", x+".high_us", v)
	case "number":
		b.number(x+".value", v)
	case "quantity":
		b.number(x+".value", v)
		b.unit(x+".system", x+".code", x+".unit", v)
	case "uri":
		switch c.Modifier {
		case "below":
			b.prefix(x+".value", v.Text)
		case "above":
			list(b.w(x+".value IN "), uriPrefixes(v.Text))
		default:
			b.w(x + ".value = ").arg(v.Text)
		}
	case "composite":
		if len(v.Parts) != len(c.Components) || len(v.Parts) < 2 || len(v.Parts) > maxCompositeParts {
			return &CriteriaError{Msg: fmt.Sprintf("composite parameter %s needs %d values joined by $", c.Code, len(c.Components))}
		}
		if c.Components[0] == "reference" {
			p := v.Parts[0]
			b.w(x + ".c1_system = ").arg(p.RefType).w(" AND " + x + ".c1_code = ").arg(p.RefID)
		} else {
			b.token(x+".c1_system", x+".c1_code", &v.Parts[0])
		}
		for i := 1; i < len(v.Parts); i++ {
			b.w(" AND ")
			col := fmt.Sprintf("%s.c%d_", x, i+1)
			p := &v.Parts[i]
			switch c.Components[i] {
			case "token":
				b.token(col+"system", col+"code", p)
			case "quantity", "number":
				b.number(col+"value", p)
				b.unit(col+"system", col+"code", col+"text", p)
			case "date":
				b.dateRange(col+"low_us", col+"high_us", p)
			case "string":
				b.prefix(col+"text", p.Text)
			case "reference":
				b.w(col + "system = ").arg(p.RefType).w(" AND " + col + "code = ").arg(p.RefID)
			default:
				return &CriteriaError{Msg: fmt.Sprintf("composite parameter %s has an unsupported component type %s", c.Code, c.Components[i])}
			}
		}
	default:
		return &CriteriaError{Msg: fmt.Sprintf("search parameters of type %q are not supported", typ)}
	}
	return nil
}

// blindValue is value for a parameter stored blind: equality on the
// hashed value, or on the hashed prefix of the value's length.
func (b *builder) blindValue(x, resType, param, typ string, c *fhir.Criterion, v *fhir.SearchValue) error {
	switch typ {
	case "string":
		switch c.Modifier {
		case "exact":
			b.w(x + ".exact = ").arg(b.blind.Blind(resType, param, v.Text)).w(" AND " + x + ".plen = 0")
		case "contains":
			return notBlind(":contains", resType, c.Code)
		default:
			b.blindPrefix(x, resType, param, v.Text)
		}
	case "token":
		bv := *v
		if bv.Code != "" {
			bv.Code = blindCode(b.blind, resType, param, v.Code)
		}
		b.token(x+".system", x+".code", &bv)
	default:
		return &CriteriaError{Msg: fmt.Sprintf("%s.%s: blind %s values cannot be matched", resType, param, typ)}
	}
	return nil
}

// prefix writes "col starts with p" as a range, which a B-tree index serves
// (columns compare bytewise).
func (b *builder) prefix(col, p string) *builder {
	return b.w(col + " >= ").arg(p).w(" AND " + col + " < ").arg(p + "\U0010FFFF")
}

func (b *builder) token(system, code string, v *fhir.SearchValue) {
	switch {
	case v.AnySystem:
		b.w(code + " = ").arg(v.Code)
	case v.NoSystem:
		b.w(system + " = '' AND " + code + " = ").arg(v.Code)
	case v.Code == "":
		b.w(system + " = ").arg(v.System)
	default:
		b.w(system + " = ").arg(v.System).w(" AND " + code + " = ").arg(v.Code)
	}
}

// tokenSets writes the condition that a token row matches one of values,
// codes grouped into one IN list by system.
func (b *builder) tokenSets(system, code string, values []fhir.SearchValue) {
	var anySystem, noSystem, systems []string
	bySystem := map[string][]string{}
	var order []string
	for _, v := range values {
		switch {
		case v.AnySystem:
			anySystem = append(anySystem, v.Code)
		case v.NoSystem:
			noSystem = append(noSystem, v.Code)
		case v.Code == "":
			systems = append(systems, v.System)
		default:
			if bySystem[v.System] == nil {
				order = append(order, v.System)
			}
			bySystem[v.System] = append(bySystem[v.System], v.Code)
		}
	}
	var terms []func()
	if len(anySystem) > 0 {
		terms = append(terms, func() { list(b.w(code+" IN "), anySystem) })
	}
	if len(noSystem) > 0 {
		terms = append(terms, func() { list(b.w(system+" = '' AND "+code+" IN "), noSystem) })
	}
	if len(systems) > 0 {
		terms = append(terms, func() { list(b.w(system+" IN "), systems) })
	}
	for _, sys := range order {
		terms = append(terms, func() { list(b.w(system+" = ").arg(sys).w(" AND "+code+" IN "), bySystem[sys]) })
	}
	b.anyOf(len(terms), func(i int) error {
		b.w("(")
		terms[i]()
		b.w(")")
		return nil
	})
}

// unit adds a quantity's unit condition: system|code, or ||code matching
// the code or the display unit.
func (b *builder) unit(system, code, unit string, v *fhir.SearchValue) {
	switch {
	case v.System != "":
		b.w(" AND " + system + " = ").arg(v.System).w(" AND " + code + " = ").arg(v.Code)
	case v.Code != "":
		b.w(" AND (" + code + " = ").arg(v.Code).w(" OR " + unit + " = ").arg(v.Code).w(")")
	}
}

// number writes the condition on a stored number for a prefixed value
// with its implicit precision range [NumLow, NumHigh).
func (b *builder) number(col string, v *fhir.SearchValue) {
	switch v.Prefix {
	case "", "eq":
		b.w(col + " >= ").arg(v.NumLow).w(" AND " + col + " < ").arg(v.NumHigh)
	case "ne":
		b.w("NOT (" + col + " >= ").arg(v.NumLow).w(" AND " + col + " < ").arg(v.NumHigh).w(")")
	case "gt", "sa":
		b.w(col + " > ").arg(v.Num)
	case "lt", "eb":
		b.w(col + " < ").arg(v.Num)
	case "ge":
		b.w(col + " >= ").arg(v.Num)
	case "le":
		b.w(col + " <= ").arg(v.Num)
	case "ap": // within 10 % of the value
		d := math.Abs(v.Num) / 10
		b.w(col + " >= ").arg(v.Num - d).w(" AND " + col + " <= ").arg(v.Num + d)
	}
}

// dateRange writes the condition on a stored range [lo, hi) for a
// prefixed search range [Low, High), as the R4 search page defines each
// prefix.
func (b *builder) dateRange(lo, hi string, v *fhir.SearchValue) {
	l, h := v.Low.UnixMicro(), v.High.UnixMicro()
	within := func() {
		b.w(lo + " >= ").arg(l).w(" AND " + hi + " <= ").arg(h)
	}
	switch v.Prefix {
	case "", "eq":
		within()
	case "ne":
		b.w("NOT (")
		within()
		b.w(")")
	case "gt":
		b.w(hi + " > ").arg(h)
	case "lt":
		b.w(lo + " < ").arg(l)
	case "ge":
		b.w(hi + " > ").arg(h).w(" OR (")
		within()
		b.w(")")
	case "le":
		b.w(lo + " < ").arg(l).w(" OR (")
		within()
		b.w(")")
	case "sa":
		b.w(lo + " >= ").arg(h)
	case "eb":
		b.w(hi + " <= ").arg(l)
	case "ap":
		// Approximately: the ranges overlap once the search range is
		// widened by a tenth of its distance from now (at least a day).
		d := time.Since(v.Low).Abs() / 10
		d = max(d, 24*time.Hour).Truncate(time.Microsecond)
		b.w(lo + " < ").arg(v.High.Add(d).UnixMicro()).w(" AND " + hi + " > ").arg(v.Low.Add(-d).UnixMicro())
	}
}

func (b *builder) idCriterion(col string, c *fhir.Criterion) error {
	if c.Missing != nil {
		if *c.Missing {
			b.w("1 = 0") // every resource has an id
		} else {
			b.w("1 = 1")
		}
		return nil
	}
	if c.Modifier == "not" {
		b.w("NOT ")
	}
	codes := make([]string, len(c.Values))
	for i, v := range c.Values {
		codes[i] = v.Code
	}
	list(b.w(col+" IN "), codes)
	return nil
}

// lastUpdated matches on the time of the current version, which only
// the resources table has.
func (b *builder) lastUpdated(col, typ string, c *fhir.Criterion) error {
	if c.Missing != nil {
		if *c.Missing {
			b.w("1 = 0")
		} else {
			b.w("1 = 1")
		}
		return nil
	}
	r := "r"
	if col != "r.res_id" {
		r = b.next("r")
		b.w(col + " IN (SELECT " + r + ".res_id FROM resources " + r + " WHERE " + r + ".res_type = ").arg(typ).w(" AND " + r + ".deleted = ").arg(false).w(" AND ")
		defer b.w(")")
	}
	b.w("(")
	b.anyOf(len(c.Values), func(i int) error {
		// The version time is a point: the range [t, t+1µs).
		b.w("(")
		b.dateRange(r+".updated_us", "("+r+".updated_us + 1)", &c.Values[i])
		b.w(")")
		return nil
	})
	b.w(")")
	return nil
}

// compartment keeps resources that reference the compartment's resource
// through one of its parameters (or are that resource).
func (b *builder) compartment(col, typ string, c *fhir.Compartment, probe bool) {
	if typ == c.Type {
		b.w(col + " = ").arg(c.ID)
		return
	}
	if len(c.Params) == 0 {
		b.w("1 = 0")
		return
	}
	x := b.next("x")
	b.semi(col, x+".res_id", "search_reference "+x, probe, func() error {
		b.w(x + ".res_type = ").arg(typ).w(" AND " + x + ".target_type = ").arg(c.Type).w(" AND " + x + ".target_id = ").arg(c.ID).w(" AND " + x + ".param IN ")
		list(b, c.Params)
		return nil
	})
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func escapeLike(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// uriPrefixes lists s and every prefix of it ending before a "/", for
// :above (http://a/b/c matches stored http://a/b/c, http://a/b, http://a).
func uriPrefixes(s string) []string {
	out := []string{s}
	for i := len(s) - 1; i > 0; i-- {
		if s[i] == '/' && s[i-1] != '/' && s[i-1] != ':' {
			out = append(out, s[:i])
		}
	}
	return out
}

// CountByOwner counts the live resources meeting q's criteria by the
// owner of their data key ("" for none), in one query: what a count of
// matches needs when some patients' matches must be decided one by one
// and the others all alike.
func (s *Store) CountByOwner(ctx context.Context, q *fhir.SearchQuery) (map[string]int, error) {
	where, err := whereClause(q, s.dialect, s.blind)
	if err != nil {
		return nil, err
	}
	var b builder
	b.w("SELECT COALESCE(r.key_owner, ''), COUNT(*) FROM resources r WHERE ").merge(where).w(" GROUP BY COALESCE(r.key_owner, '')")
	rows, err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Rows()
	if err != nil {
		return nil, s.classify(fmt.Errorf("store: count %s by owner: %w", q.Type, err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var owner string
		var n int
		if err := rows.Scan(&owner, &n); err != nil {
			return nil, err
		}
		out[owner] = n
	}
	return out, rows.Err()
}

// MatchOwned returns the ids of the live resources meeting q's criteria
// whose data key owners are among owners, at most limit of them (limit+1
// tells the caller there were more).
func (s *Store) MatchOwned(ctx context.Context, q *fhir.SearchQuery, owners []string, limit int) ([]string, error) {
	where, err := whereClause(q, s.dialect, s.blind)
	if err != nil {
		return nil, err
	}
	var b builder
	b.w("SELECT r.res_id FROM resources r WHERE ").merge(where)
	list(b.w(" AND r.key_owner IN "), owners)
	b.w(" ORDER BY r.res_id LIMIT ").arg(limit + 1)
	var ids []string
	if err := s.db.WithContext(ctx).Raw(b.sql(), b.args...).Scan(&ids).Error; err != nil {
		return nil, s.classify(fmt.Errorf("store: match %s by owner: %w", q.Type, err))
	}
	return ids, nil
}
