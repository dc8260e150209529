package store

import (
	"net/url"
	"strings"
	"testing"

	"github.com/ehrledger/ehrledger/fhir"
)

// fakeBlind blinds every string, as the store's blind index would a
// patient's, so that the fuzzer reaches the blind query paths too.
type fakeBlind struct{}

func (fakeBlind) Blinds(typ, param string) bool         { return !strings.HasPrefix(param, "_") }
func (fakeBlind) Blind(typ, param, value string) string { return "h:" + value }

// FuzzWhereClause compiles searches into SQL as clients ask them: never a
// panic, and never more nesting than the databases take (SQLite refuses
// an expression deeper than 1,000).
func FuzzWhereClause(f *testing.F) {
	for _, seed := range []string{"code=a,b,c", "subject:Patient.name=x", "_has:Observation:subject:code=1", "value-quantity=gt5,lt3|http://u|mg",
		"date=ap2020&date=lt2021", "_id:not=a,b", "code:text=hiv", "name:contains=ab", "_lastUpdated=gt2020,lt2019", "component-code-value-quantity=a$5"} {
		f.Add("Observation", seed)
		f.Add("Patient", seed)
	}
	f.Fuzz(func(t *testing.T, typ, raw string) {
		params, err := url.ParseQuery(raw)
		if err != nil || !fhir.IsResourceType(typ) {
			return
		}
		q, err := fhir.ParseSearch(typ, params, fhir.SearchOptions{Strict: true, DefaultCount: 10})
		if err != nil {
			return
		}
		for _, d := range []Dialect{SQLite, Postgres} {
			for _, blind := range []Blinder{nil, fakeBlind{}} {
				where, err := whereClause(q, d, blind)
				if err != nil {
					continue
				}
				if depth := nesting(where.sql()); depth > 400 {
					t.Fatalf("%s?%s nests %d parentheses deep", typ, raw, depth)
				}
				pageQuery(q, where)
			}
		}
	})
}

// nesting is the deepest parenthesis of sql.
func nesting(sql string) int {
	depth, deepest := 0, 0
	for _, c := range sql {
		switch c {
		case '(':
			depth++
			deepest = max(deepest, depth)
		case ')':
			depth--
		}
	}
	return deepest
}

// FuzzCursors reads paging cursors as clients send them back (opaque to
// them, but any string can be sent): never a panic.
func FuzzCursors(f *testing.F) {
	for _, seed := range []string{"", "a.WyJ4Il0", "b.WyIxIiwiMiJd", "not a cursor", "a.", "MTIzOmFiYw", "eyJ0IjoxfQ"} {
		f.Add(seed, 2)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		ParseCursor(s)
		parsePage(s, n%8)
		CursorBackward(s)
	})
}
