package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// TestSearchPlansUseIndexes loads a few tens of thousands of resources
// into PostgreSQL and checks, with EXPLAIN, that every search shape is
// answered from the index tables' indexes: no sequential scan anywhere in
// the plan.
func TestSearchPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	s, kr := testkeys.Open(t, store.Config{DSN: testdb.Postgres(t)})
	const patients, perPatient = 2000, 10
	codes := []string{"8867-4", "29463-7", "8302-2", "2339-0", "718-7"}
	var writes []store.Write
	flush := func() {
		var owners []string
		for _, w := range writes {
			owners = append(owners, w.Version.Owner)
		}
		if _, err := kr.Ensure(ctx, owners); err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *store.Tx) error { return tx.PutMany(ctx, writes) }); err != nil {
			t.Fatal(err)
		}
		writes = writes[:0]
	}
	add := func(typ, id, body string) {
		idx, err := fhir.ExtractIndex(typ, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		writes = append(writes, store.Write{Version: &store.Version{Type: typ, ID: id, VersionID: 1, Updated: time.Now(), Method: "PUT", Body: []byte(body),
			Owner: keys.OwnerOf(typ, id, idx.Patients)}, Index: idx})
		if len(writes) == 1000 {
			flush()
		}
	}
	for p := range patients {
		add("Patient", fmt.Sprint("p", p), fmt.Sprintf(`{"resourceType":"Patient","id":"p%d","identifier":[{"system":"http://mrn","value":"%d"}],"name":[{"family":"Fam%04d","given":["G%d"]}],"birthDate":"19%02d-01-01"}`, p, p, p, p, p%100))
		for o := range perPatient {
			add("Observation", fmt.Sprintf("o%d-%d", p, o), fmt.Sprintf(`{"resourceType":"Observation","id":"o%d-%d","status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/p%d"},"effectiveDateTime":"20%02d-%02d-%02d","valueQuantity":{"value":%d,"system":"http://unitsofmeasure.org","code":"kg"}}`,
				p, o, codes[(p+o)%len(codes)], p, 10+o, 1+p%12, 1+p%28, (p*7+o)%200))
		}
	}
	flush()
	if err := s.DB().Exec("ANALYZE").Error; err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ typ, query string }{
		{"Patient", "identifier=http://mrn|42"},
		{"Patient", "family=fam004"},
		{"Patient", "family:exact=Fam0042"},
		{"Patient", "birthdate=1942"},
		{"Observation", "subject=Patient/p42"},
		{"Observation", "patient=p42&code=http://loinc.org|8867-4"},
		{"Observation", "date=2015-03-04"},
		{"Observation", "value-quantity=gt198"},
		{"Observation", "code-value-quantity=http://loinc.org|2339-0$gt198"},
		{"Observation", "subject:Patient.identifier=http://mrn|42"},
		{"Observation", "patient.family=fam0042"},
		{"Patient", "_has:Observation:patient:value-quantity=ge199"},
		{"Observation", "patient=p42&_sort=-date"},
		{"Patient", "_id=p42"},
	} {
		t.Run(tc.typ+"?"+tc.query, func(t *testing.T) {
			params, _ := url.ParseQuery(tc.query)
			q, err := fhir.ParseSearch(tc.typ, params, fhir.SearchOptions{Strict: true})
			if err != nil {
				t.Fatal(err)
			}
			q.Count = 20
			sql, args, err := s.PageSQL(q)
			if err != nil {
				t.Fatal(err)
			}
			var plan string
			if err := s.DB().Raw("EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&plan).Error; err != nil {
				t.Fatal(err)
			}
			var nodes []any
			json.Unmarshal([]byte(plan), &nodes)
			var scans []string
			walkPlan(nodes, func(n map[string]any) {
				if typ, _ := n["Node Type"].(string); strings.HasSuffix(typ, "Scan") {
					scans = append(scans, fmt.Sprintf("%s on %v using %v", typ, n["Relation Name"], n["Index Name"]))
				}
			})
			for _, sc := range scans {
				if strings.HasPrefix(sc, "Seq Scan") {
					t.Errorf("plan has a sequential scan: %v", scans)
				}
			}
			t.Logf("%v", scans)
		})
	}
}

func walkPlan(v any, fn func(map[string]any)) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			walkPlan(e, fn)
		}
	case map[string]any:
		if _, ok := x["Node Type"]; ok {
			fn(x)
		}
		for _, e := range x {
			walkPlan(e, fn)
		}
	}
}
