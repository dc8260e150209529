package fhir

import (
	"net/url"
	"testing"
)

// FuzzParseSearch reads query strings as clients send them: never a
// panic, and a query taken stays within its bounds.
func FuzzParseSearch(f *testing.F) {
	for _, seed := range []string{"name=smith", "subject:Patient.name=x&_include=Observation:subject", "_has:Observation:subject:code=1234",
		"code=a,b,c&_sort=-date&_count=5", "value-quantity=gt5.4|http://unitsofmeasure.org|mg", "date=ge2020-01-01&_summary=count",
		"identifier:of-type=http://t|MR|123", "_id:not=x", "code:text=hiv", "component-code-value-quantity=a$5", "name:missing=true"} {
		f.Add("Observation", seed)
		f.Add("Patient", seed)
	}
	f.Fuzz(func(t *testing.T, typ, raw string) {
		if !IsResourceType(typ) {
			return
		}
		params, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		opt := SearchOptions{Strict: true, MaxCriteria: 10, MaxValues: 20, MaxIncludes: 3}
		q, err := ParseSearch(typ, params, opt)
		if err != nil {
			return
		}
		criteria, values := 0, 0
		var count func(c *Criterion)
		count = func(c *Criterion) {
			criteria++
			values += len(c.Values)
			if c.Chain != nil {
				count(&c.Chain.Where)
			}
			if c.Has != nil {
				count(&c.Has.Where)
			}
		}
		for i := range q.Where {
			count(&q.Where[i])
		}
		if criteria > 10 || values > 20 || len(q.Include)+len(q.RevInclude) > 3 {
			t.Fatalf("%s?%s taken with %d criteria, %d values, %d includes", typ, raw, criteria, values, len(q.Include)+len(q.RevInclude))
		}
	})
}

// FuzzFHIRPath compiles FHIRPath expressions against Patient: never a
// panic, however the expression is written (search parameter
// definitions are compiled from it, and a client's _filter could be).
func FuzzFHIRPath(f *testing.F) {
	for _, seed := range []string{"Patient.name.given", "Patient.name.where(use = 'official').family", "Patient.extension('x').value.ofType(Address).city",
		"(Patient.telecom | Patient.contact.telecom).where(system='phone')", "Patient.birthDate.exists() and %resource.active", "Patient.link.other.resolve() is Patient",
		"Patient.name[0].given.first()", "((((", "Patient.", "'unterminated", "1 + + 2"} {
		f.Add(seed)
	}
	m := r4Model()
	root := fpTypes{{code: "Patient", st: m.types["Patient"].body}}
	f.Fuzz(func(t *testing.T, src string) {
		fpCompile(m, src, root, root)
	})
}
