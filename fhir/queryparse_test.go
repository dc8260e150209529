package fhir

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, typ, query string, strict bool) (*SearchQuery, error) {
	t.Helper()
	params, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	return ParseSearch(typ, params, SearchOptions{Base: "http://fhir.example.org/r4", Strict: strict, DefaultCount: 50, MaxCount: 1000})
}

func TestParseSearchValues(t *testing.T) {
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	for _, tc := range []struct {
		name, typ, query string
		check            func(t *testing.T, q *SearchQuery)
	}{
		{"string is normalised", "Patient", "family=M%C3%BCLLER", func(t *testing.T, q *SearchQuery) {
			if v := q.Where[0].Values[0]; v.Text != "muller" || q.Where[0].Type != "string" {
				t.Fatalf("%+v", q.Where[0])
			}
		}},
		{":exact keeps the value", "Patient", "family:exact=M%C3%BCller", func(t *testing.T, q *SearchQuery) {
			if v := q.Where[0].Values[0]; v.Text != "Müller" || q.Where[0].Modifier != "exact" {
				t.Fatalf("%+v", q.Where[0])
			}
		}},
		{"comma is OR, escaped comma is not", "Patient", `given=a\,b,c`, func(t *testing.T, q *SearchQuery) {
			vs := q.Where[0].Values
			if len(vs) != 2 || vs[0].Text != "a,b" || vs[1].Text != "c" {
				t.Fatalf("%+v", vs)
			}
		}},
		{"repeated parameter is AND", "Patient", "given=a&given=b", func(t *testing.T, q *SearchQuery) {
			if len(q.Where) != 2 {
				t.Fatalf("%d criteria", len(q.Where))
			}
		}},
		{"token forms", "Patient", "identifier=s|c,|c,s|,c", func(t *testing.T, q *SearchQuery) {
			vs := q.Where[0].Values
			if vs[0].System != "s" || vs[0].Code != "c" || !vs[1].NoSystem || vs[2].Code != "" || vs[2].System != "s" || !vs[3].AnySystem {
				t.Fatalf("%+v", vs)
			}
		}},
		{"of-type", "Patient", "identifier:of-type=http://t|MR|123", func(t *testing.T, q *SearchQuery) {
			if v := q.Where[0].Values[0]; v.System != "http://t" || v.Code != "MR|123" {
				t.Fatalf("%+v", v)
			}
		}},
		{"date with prefix and precision", "Patient", "birthdate=ge2020-02", func(t *testing.T, q *SearchQuery) {
			v := q.Where[0].Values[0]
			if v.Prefix != "ge" || !v.Low.Equal(day("2020-02-01")) || !v.High.Equal(day("2020-03-01")) {
				t.Fatalf("%+v", v)
			}
		}},
		{"quantity with unit", "Observation", "value-quantity=lt5.4|http://unitsofmeasure.org|mmol/L", func(t *testing.T, q *SearchQuery) {
			v := q.Where[0].Values[0]
			if v.Prefix != "lt" || v.Num != 5.4 || v.System != "http://unitsofmeasure.org" || v.Code != "mmol/L" {
				t.Fatalf("%+v", v)
			}
		}},
		{"reference forms", "Observation", "subject=Patient/1,2,http://fhir.example.org/r4/Patient/3,http://elsewhere.org/Patient/4", func(t *testing.T, q *SearchQuery) {
			vs := q.Where[0].Values
			if vs[0].RefType != "Patient" || vs[0].RefID != "1" || vs[1].RefID != "2" || vs[1].RefType != "" ||
				vs[2].RefType != "Patient" || vs[2].RefID != "3" || vs[3].URL != "http://elsewhere.org/Patient/4" {
				t.Fatalf("%+v", vs)
			}
		}},
		{"single-target reference gets its type", "Observation", "patient=7", func(t *testing.T, q *SearchQuery) {
			if v := q.Where[0].Values[0]; v.RefType != "Patient" || v.RefID != "7" {
				t.Fatalf("%+v", v)
			}
		}},
		{"reference type modifier", "Observation", "subject:Patient=7", func(t *testing.T, q *SearchQuery) {
			if v := q.Where[0].Values[0]; v.RefType != "Patient" {
				t.Fatalf("%+v", v)
			}
		}},
		{"chain several levels", "Observation", "subject:Patient.organization.name=x", func(t *testing.T, q *SearchQuery) {
			c := q.Where[0]
			if c.Chain == nil || c.Chain.Type != "Patient" || c.Chain.Where.Chain == nil || c.Chain.Where.Chain.Type != "Organization" ||
				c.Chain.Where.Chain.Where.Code != "name" {
				t.Fatalf("%+v", c)
			}
		}},
		{"reverse chain", "Patient", "_has:Observation:patient:code=1234", func(t *testing.T, q *SearchQuery) {
			h := q.Where[0].Has
			if h == nil || h.Type != "Observation" || h.Param != "patient" || h.Where.Code != "code" {
				t.Fatalf("%+v", q.Where[0])
			}
		}},
		{"composite", "Observation", "code-value-quantity=http://loinc.org|1$gt5", func(t *testing.T, q *SearchQuery) {
			c := q.Where[0]
			if !slices.Equal(c.Components, []string{"token", "quantity"}) || len(c.Values[0].Parts) != 2 || c.Values[0].Parts[1].Prefix != "gt" {
				t.Fatalf("%+v", c)
			}
		}},
		{"missing", "Patient", "gender:missing=true", func(t *testing.T, q *SearchQuery) {
			if m := q.Where[0].Missing; m == nil || !*m {
				t.Fatalf("%+v", q.Where[0])
			}
		}},
		{"result parameters", "Patient", "_sort=-birthdate,name&_count=5000&_total=accurate&_summary=true&_elements=name,gender&_include=Patient:organization&_revinclude:iterate=Observation:subject", func(t *testing.T, q *SearchQuery) {
			if len(q.Sort) != 2 || !q.Sort[0].Desc || q.Sort[0].Type != "date" || q.Count != 1000 || q.Total != "accurate" ||
				q.Summary != "true" || len(q.Elements) != 2 || len(q.Include) != 1 || len(q.RevInclude) != 1 || !q.RevInclude[0].Iterate {
				t.Fatalf("%+v", q)
			}
		}},
		{"unknown parameter ignored when lenient", "Patient", "nonsense=1&gender=male", func(t *testing.T, q *SearchQuery) {
			if len(q.Where) != 1 || len(q.Ignored) != 1 || q.Ignored[0].Expression != "nonsense" {
				t.Fatalf("%+v", q)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := parse(t, tc.typ, tc.query, false)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, q)
		})
	}
}

func TestParseSearchRejects(t *testing.T) {
	for _, tc := range []struct {
		name, typ, query string
		strict           bool
		want             string // in the expression of an issue
	}{
		{"malformed date", "Patient", "birthdate=yesterday", false, "birthdate"},
		{"malformed number", "RiskAssessment", "probability=lots", false, "probability"},
		{"bad missing value", "Patient", "gender:missing=perhaps", false, "gender:missing"},
		{"unknown parameter when strict", "Patient", "nonsense=1", true, "nonsense"},
		{"modifier that does not apply, strict", "Patient", "gender:exact=male", true, "gender:exact"},
		{"chain on a non-reference", "Patient", "gender.name=x", true, "gender.name"},
		{"ambiguous chain", "Observation", "subject.name=x", false, "subject.name"},
		{"chain to a type the reference cannot hold", "Observation", "patient:Organization.name=x", false, "patient:Organization.name"},
		{"_has on a non-reference", "Patient", "_has:Observation:code:status=final", false, "_has:Observation:code:status"},
		{"composite without $", "Observation", "code-value-quantity=1", false, "code-value-quantity"},
		{"bad _count", "Patient", "_count=x", false, "_count"},
		{"bad _total", "Patient", "_total=all", false, "_total"},
		{"include of a non-reference", "Patient", "_include=Patient:gender", false, "_include"},
		{"include from another type without iterate", "Patient", "_include=Observation:subject", false, "_include"},
		{"empty value", "Patient", "gender=male,", false, "gender"},
		{"token with only a bar", "Patient", "identifier=|", false, "identifier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.typ, tc.query, tc.strict)
			var se *SearchError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a SearchError", err)
			}
			found := false
			for _, is := range se.Issues {
				if is.Expression == tc.want && is.Severity == "error" {
					found = true
				}
			}
			if !found {
				t.Fatalf("no error issue at %s: %v", tc.want, se.Issues)
			}
		})
	}
}

func TestSplitUnescaped(t *testing.T) {
	got := strings.Join(splitUnescaped(`a\,b,c\$d$e`, ','), " / ")
	if got != `a\,b / c\$d$e` {
		t.Fatalf("got %s", got)
	}
}
