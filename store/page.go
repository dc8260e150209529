package store

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"

	"github.com/ehrledger/ehrledger/fhir"
)

// pageQuery selects one page of ids (one more than q.Count, to tell
// whether another page follows) and their sort keys, after q.Page's
// cursor.
func pageQuery(q *fhir.SearchQuery, where *builder) (*builder, []sortKey, bool, error) {
	after, before, err := parsePage(q.Page, len(q.Sort))
	if err != nil {
		return nil, nil, false, err
	}
	page := &builder{alias: where.alias, blind: where.blind}
	keys, err := page.sortKeys(q.Type, q.Sort)
	if err != nil {
		return nil, nil, false, err
	}
	// The sort keys are computed in an inner query so that the keyset
	// condition and ORDER BY can name them.
	page.w("SELECT s.res_id")
	for i := range keys {
		page.w(", s.k" + strconv.Itoa(i))
	}
	page.w(", s.key_owner FROM (SELECT r.res_id AS res_id, COALESCE(r.key_owner, '') AS key_owner")
	for i, k := range keys {
		page.w(", ").w(k.expr).w(" AS k" + strconv.Itoa(i))
	}
	page.w(" FROM resources r WHERE ").merge(where).w(") s")
	if after != nil {
		page.w(" WHERE ")
		if err := page.keyset(keys, after, before); err != nil {
			return nil, nil, false, err
		}
	}
	// A page before the cursor is read backwards, then turned round.
	page.w(" ORDER BY ")
	for i, k := range keys {
		page.w("s.k" + strconv.Itoa(i))
		if k.desc != before {
			page.w(" DESC")
		}
		page.w(", ")
	}
	page.w("s.res_id")
	if before {
		page.w(" DESC")
	}
	page.w(" LIMIT ").arg(q.Count + 1)
	return page, keys, before, nil
}

// sortKey is one computed ORDER BY column.
type sortKey struct {
	expr string
	desc bool
	kind byte // 't' text, 'i' integer, 'f' float: how a cursor value is read back
}

// sortKeys turns the sort parameters into SQL expressions over resource
// row r. A resource without a value sorts last either way: missing values
// become a sentinel past every real one.
// Parameters stored blind have no order to sort by.
func (b *builder) sortKeys(typ string, keys []fhir.SortKey) ([]sortKey, error) {
	out := make([]sortKey, 0, len(keys))
	for _, k := range keys {
		if b.blinds(typ, k.Code) {
			return nil, notBlind("_sort", typ, k.Code)
		}
		agg := "MIN"
		if k.Desc {
			agg = "MAX"
		}
		var col, table, sentinelHigh, sentinelLow string
		kind := byte('t')
		textSentinels := func() { sentinelHigh, sentinelLow = "'\U0010FFFF'", "''" }
		numSentinels := func() { sentinelHigh, sentinelLow, kind = "1e308", "-1e308", 'f' }
		switch {
		case k.Code == "_id":
			out = append(out, sortKey{expr: "r.res_id", desc: k.Desc, kind: 't'})
			continue
		case k.Code == "_lastUpdated":
			out = append(out, sortKey{expr: "r.updated_us", desc: k.Desc, kind: 'i'})
			continue
		case k.Type == "string":
			table, col = "search_string", "norm"
			textSentinels()
		case k.Type == "token":
			table, col = "search_token", "code"
			textSentinels()
		case k.Type == "reference":
			table, col = "search_reference", "target_id"
			textSentinels()
		case k.Type == "uri":
			table, col = "search_uri", "value"
			textSentinels()
		case k.Type == "date":
			table, col = "search_date", "low_us"
			if k.Desc {
				col = "high_us"
			}
			sentinelHigh, sentinelLow = strconv.FormatInt(math.MaxInt64, 10), strconv.FormatInt(math.MinInt64, 10)
			kind = 'i'
		default: // number, quantity
			table, col = "search_quantity", "value"
			numSentinels()
		}
		sentinel := sentinelHigh
		if k.Desc {
			sentinel = sentinelLow
		}
		x := b.next("x")
		// Parameter codes are checked against the definitions before they
		// get here, but they still travel as literals escaped by quoting.
		expr := "COALESCE((SELECT " + agg + "(" + x + "." + col + ") FROM " + table + " " + x +
			" WHERE " + x + ".res_type = r.res_type AND " + x + ".res_id = r.res_id AND " + x + ".param = " + sqlString(k.Code) + "), " + sentinel + ")"
		out = append(out, sortKey{expr: expr, desc: k.Desc, kind: kind})
	}
	return out, nil
}

// keyset writes "row s comes after the cursor" (or before it) for the
// sort keys and the id tie-breaker: (k0 > c0) OR (k0 = c0 AND ((k1 > c1)
// OR ...)).
func (b *builder) keyset(keys []sortKey, after []string, before bool) error {
	vals := make([]any, len(keys))
	for i, k := range keys {
		var err error
		switch k.kind {
		case 'i':
			vals[i], err = strconv.ParseInt(after[i], 10, 64)
		case 'f':
			vals[i], err = strconv.ParseFloat(after[i], 64)
		default:
			vals[i] = after[i]
		}
		if err != nil {
			return &CriteriaError{Msg: "malformed paging cursor; start the search again"}
		}
	}
	var rec func(i int)
	rec = func(i int) {
		if i == len(keys) {
			if before {
				b.w("s.res_id < ").arg(after[len(keys)])
			} else {
				b.w("s.res_id > ").arg(after[len(keys)])
			}
			return
		}
		col := "s.k" + strconv.Itoa(i)
		op := " > "
		if keys[i].desc != before {
			op = " < "
		}
		b.w("(" + col + op).arg(vals[i]).w(" OR (" + col + " = ").arg(vals[i]).w(" AND ")
		rec(i + 1)
		b.w("))")
	}
	rec(0)
	return nil
}

// The page cursor is a direction ("a": the page after the row, "b": the
// page before it) and a row's id and sort key values, as strings,
// base64url-encoded JSON.
func encodePage(dir string, row []string) string {
	b, _ := json.Marshal(append([]string{dir}, row...)) // strings always marshal
	return base64.RawURLEncoding.EncodeToString(b)
}

// parsePage reads a cursor into the keyset values (keys first, id last)
// and whether the page asked for comes before the row.
func parsePage(page string, nkeys int) (vals []string, before bool, err error) {
	if page == "" {
		return nil, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(page)
	if err == nil {
		err = json.Unmarshal(b, &vals)
	}
	if err != nil || len(vals) != nkeys+2 || (vals[0] != "a" && vals[0] != "b") {
		return nil, false, &CriteriaError{Msg: "malformed or stale paging cursor; start the search again"}
	}
	// The cursor stores [dir, id, k0, k1, ...]; keyset wants the keys first
	// and the id last.
	return append(vals[2:], vals[1]), vals[0] == "b", nil
}

// CursorBackward reports whether a page cursor asks for the page before
// its row (a previous link) rather than after it.
func CursorBackward(page string) bool {
	b, err := base64.RawURLEncoding.DecodeString(page)
	var vals []string
	return err == nil && json.Unmarshal(b, &vals) == nil && len(vals) > 0 && vals[0] == "b"
}
