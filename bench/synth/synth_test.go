package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/fhir"
)

// bundle is the part of a record the tests read.
type bundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
	} `json:"entry"`
}

func parse(t *testing.T, b []byte) bundle {
	t.Helper()
	var bd bundle
	if err := json.Unmarshal(b, &bd); err != nil {
		t.Fatalf("record is not JSON: %v", err)
	}
	return bd
}

// resource is an entry's resource decoded generically.
type resource = map[string]any

func decode(t *testing.T, raw json.RawMessage) resource {
	t.Helper()
	var r resource
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// walk calls fn for every property of v, at any depth, with its name.
func walk(v any, fn func(key string, value any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			fn(k, x)
			walk(x, fn)
		}
	case []any:
		for _, x := range v {
			walk(x, fn)
		}
	}
}

func TestRecordsAreValidR4(t *testing.T) {
	p := New(Config{Seed: 1, Patients: 50})
	for i := range p.Patients() {
		b := p.Record(i)
		for _, is := range fhir.Validate(b) {
			t.Errorf("record %d: %s", i, is)
		}
		bd := parse(t, b)
		if bd.ResourceType != "Bundle" || bd.Type != "transaction" {
			t.Fatalf("record %d is a %s of type %q, want a transaction Bundle", i, bd.ResourceType, bd.Type)
		}
		for k, e := range bd.Entry {
			for _, is := range fhir.Validate(e.Resource) {
				t.Errorf("record %d entry %d: %s", i, k, is)
			}
		}
	}
}

func TestEntriesArePOSTsWithReferencesThatResolve(t *testing.T) {
	p := New(Config{Seed: 2, Patients: 50})
	shared := map[string]bool{}
	for _, path := range p.SharedPaths() {
		shared[path] = true
	}
	for i := range p.Patients() {
		bd := parse(t, p.Record(i))
		urls := map[string]string{} // fullUrl -> resource type
		for k, e := range bd.Entry {
			if !strings.HasPrefix(e.FullURL, "urn:uuid:") || len(e.FullURL) != len("urn:uuid:")+36 {
				t.Errorf("record %d entry %d: fullUrl %q is not a urn:uuid", i, k, e.FullURL)
			}
			if _, dup := urls[e.FullURL]; dup {
				t.Errorf("record %d: fullUrl %s repeated", i, e.FullURL)
			}
			r := decode(t, e.Resource)
			rt, _ := r["resourceType"].(string)
			urls[e.FullURL] = rt
			if e.Request.Method != "POST" || e.Request.URL != rt {
				t.Errorf("record %d entry %d: request %s %s, want POST %s", i, k, e.Request.Method, e.Request.URL, rt)
			}
			if _, ok := r["id"]; ok {
				t.Errorf("record %d entry %d: a POSTed %s has an id", i, k, rt)
			}
			if k == 0 && rt != "Patient" {
				t.Errorf("record %d: first entry is a %s, want the Patient", i, rt)
			}
		}
		patient := bd.Entry[0].FullURL
		for k, e := range bd.Entry {
			r := decode(t, e.Resource)
			subject := false
			walk(r, func(key string, v any) {
				if key != "reference" {
					return
				}
				ref := v.(string)
				switch {
				case strings.HasPrefix(ref, "urn:uuid:"):
					if _, ok := urls[ref]; !ok {
						t.Errorf("record %d entry %d: reference %s resolves to no entry", i, k, ref)
					}
					if ref == patient {
						subject = true
					}
				case !shared[ref]:
					t.Errorf("record %d entry %d: reference %q is neither an entry nor a shared resource", i, k, ref)
				}
			})
			if k > 0 && !subject {
				t.Errorf("record %d entry %d: %s does not refer to the patient", i, k, r["resourceType"])
			}
		}
	}
}

func TestDeterminism(t *testing.T) {
	cfg := Config{Seed: 42, Patients: 40}
	a, b := New(cfg), New(cfg)
	want := make([][]byte, cfg.Patients)
	for i := range want {
		want[i] = a.Record(i)
	}

	t.Run("same config, same bytes", func(t *testing.T) {
		for i := range want {
			if !bytes.Equal(b.Record(i), want[i]) {
				t.Fatalf("record %d differs between two populations of one Config", i)
			}
		}
	})
	t.Run("any order, in parallel", func(t *testing.T) {
		got := make([][]byte, cfg.Patients)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := cfg.Patients - 1 - w; i >= 0; i -= 4 {
					got[i] = a.AppendRecord([]byte("prefix"), i)[len("prefix"):]
				}
			})
		}
		wg.Wait()
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("record %d differs when generated in parallel and out of order", i)
			}
		}
	})
	t.Run("independent of Patients", func(t *testing.T) {
		small, large := New(Config{Seed: 42, Patients: 5}), New(Config{Seed: 42, Patients: 5000})
		for i := range 5 {
			if !bytes.Equal(small.Record(i), want[i]) || !bytes.Equal(large.Record(i), want[i]) {
				t.Fatalf("record %d depends on Config.Patients", i)
			}
		}
	})
	t.Run("different seeds differ", func(t *testing.T) {
		other := New(Config{Seed: 43, Patients: cfg.Patients})
		for i := range want {
			if bytes.Equal(other.Record(i), want[i]) {
				t.Fatalf("record %d is the same for seeds 42 and 43", i)
			}
		}
		if a.MRN(7) == other.MRN(7) {
			t.Errorf("MRN(7) is %s for both seeds", a.MRN(7))
		}
	})
	t.Run("tuning changes the records", func(t *testing.T) {
		core := New(Config{Seed: 42, Patients: cfg.Patients, CoreOnly: true})
		same := 0
		for i := range want {
			if bytes.Equal(core.Record(i), want[i]) {
				same++
			}
		}
		if same == len(want) {
			t.Errorf("CoreOnly changed no record")
		}
	})
}

// TestGolden pins the output of one seed, so that a change to the
// generator, or to math/rand/v2's algorithms in a new Go release, is
// noticed: figures measured on the old population are not comparable
// with new ones. If the change is intended, update the hash and say so in
// BENCHMARKS.md. Floating point may round differently on other
// architectures (fused multiply-add), so the hash is checked on amd64 only.
func TestGolden(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("golden hash recorded on amd64")
	}
	const want = "c7cfdee62f66896a838797a9f8bcff087ef3db523091b9e1e60b7184a9c7e3ff"
	p := New(Config{Seed: 1, Patients: 100})
	h := sha256.New()
	for i := range p.Patients() {
		h.Write(p.Record(i))
	}
	for _, b := range p.Shared() {
		h.Write(b)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("records of seed 1 hash to %s, want %s: the population changed", got, want)
	}
}

func TestStats(t *testing.T) {
	p := New(Config{Seed: 3, Patients: 100000})
	s := p.Stats()
	t.Logf("resources per record: mean %.2f, min %d, median %d, p90 %d, p99 %d, max %d; %.0f bytes per resource",
		s.Mean, s.Min, s.Median, s.P90, s.P99, s.Max, float64(s.Bytes)/float64(s.Resources))
	t.Logf("per type: %v", s.PerType)
	if s.Records != StatsSample {
		t.Errorf("Records = %d, want the sample of %d", s.Records, StatsSample)
	}
	if s.Mean < 45 || s.Mean > 55 {
		t.Errorf("mean %.2f resources per record, want about 50", s.Mean)
	}
	if !(s.Min < s.Median && s.Median < int(s.Mean) && s.Mean < float64(s.P90) && s.P90 < s.P99 && s.P99 <= s.Max) {
		t.Errorf("distribution min %d median %d mean %.1f p90 %d p99 %d max %d is not skewed to the right", s.Min, s.Median, s.Mean, s.P90, s.P99, s.Max)
	}
	if min := 1 + DefaultMinEncounters; s.Min < min {
		t.Errorf("a record has %d resources, fewer than a Patient and %d Encounters", s.Min, DefaultMinEncounters)
	}
	sum := 0.0
	for _, v := range s.PerType {
		sum += v
	}
	if diff := sum - s.Mean; diff > 1e-9 || diff < -1e-9 {
		t.Errorf("per-type means add up to %.3f, want the mean %.3f", sum, s.Mean)
	}
	if got := s.PerType["Patient"]; got != 1 {
		t.Errorf("%.2f Patients per record, want 1", got)
	}
	for _, typ := range []string{"Encounter", "Observation", "Condition", "MedicationRequest", "Procedure", "Immunization", "AllergyIntolerance"} {
		if s.PerType[typ] <= 0 {
			t.Errorf("no %s in the records", typ)
		}
	}
	if got := p.ResourcesPerPatient(); got != s.Mean {
		t.Errorf("ResourcesPerPatient = %v, want Stats().Mean %v", got, s.Mean)
	}
	if got, want := p.PatientsFor(1_000_000), int(1_000_000/s.Mean+0.5); got != want {
		t.Errorf("PatientsFor(1e6) = %d, want %d", got, want)
	}

	t.Run("exact for small populations", func(t *testing.T) {
		p := New(Config{Seed: 3, Patients: 30})
		s := p.Stats()
		n := 0
		for i := range p.Patients() {
			n += len(parse(t, p.Record(i)).Entry)
		}
		if s.Records != 30 || s.Resources != n {
			t.Errorf("Stats counted %d resources in %d records, want %d in 30", s.Resources, s.Records, n)
		}
	})
}

func TestEncounterCounts(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		min, max int
	}{
		{"defaults", Config{Seed: 4, Patients: 300}, DefaultMinEncounters, DefaultMaxEncounters},
		{"narrow", Config{Seed: 4, Patients: 300, MinEncounters: 2, MaxEncounters: 3}, 2, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(tc.cfg)
			seen := map[int]bool{}
			for i := range p.Patients() {
				n := 0
				for _, e := range parse(t, p.Record(i)).Entry {
					if e.Request.URL == "Encounter" {
						n++
					}
				}
				if n < tc.min || n > tc.max {
					t.Errorf("record %d has %d encounters, want %d to %d", i, n, tc.min, tc.max)
				}
				seen[n] = true
			}
			if len(seen) < 2 {
				t.Errorf("every record has the same number of encounters")
			}
		})
	}
}

func TestCoreOnly(t *testing.T) {
	p := New(Config{Seed: 5, Patients: 100, CoreOnly: true})
	for i := range p.Patients() {
		for _, e := range parse(t, p.Record(i)).Entry {
			switch e.Request.URL {
			case "Immunization", "AllergyIntolerance", "Procedure":
				t.Fatalf("record %d has a %s with CoreOnly", i, e.Request.URL)
			}
		}
	}
}

// plausible bounds of each observation's value, by LOINC code.
var plausible = map[string]struct {
	unit     string
	lo, hi   float64
	category string
}{
	"8867-4":  {"/min", 35, 210, "vital-signs"},
	"29463-7": {"kg", 1.5, 300, "vital-signs"},
	"8302-2":  {"cm", 45, 215, "vital-signs"},
	"39156-5": {"kg/m2", 8, 80, "vital-signs"},
	"8310-5":  {"Cel", 35, 41.5, "vital-signs"},
	"8480-6":  {"mm[Hg]", 70, 230, "vital-signs"},
	"8462-4":  {"mm[Hg]", 40, 130, "vital-signs"},
	"2339-0":  {"mg/dL", 60, 450, "laboratory"},
	"4548-4":  {"%", 4, 14, "laboratory"},
	"2160-0":  {"mg/dL", 0.2, 8, "laboratory"},
	"2093-3":  {"mg/dL", 100, 400, "laboratory"},
	"718-7":   {"g/dL", 7, 19, "laboratory"},
}

// dateFields are the dateTime and instant elements the records use.
var dateFields = map[string]bool{
	"effectiveDateTime": true, "issued": true, "onsetDateTime": true, "abatementDateTime": true,
	"recordedDate": true, "authoredOn": true, "occurrenceDateTime": true, "performedDateTime": true,
	"start": true, "end": true,
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	for _, layout := range []string{time.RFC3339, time.DateOnly, "2006-01"} {
		if tm, err := time.Parse(layout, s); err == nil {
			return tm
		}
	}
	t.Fatalf("unreadable date %q", s)
	return time.Time{}
}

func firstCoding(v any) (system, code string) {
	c := v.(map[string]any)["coding"].([]any)[0].(map[string]any)
	return c["system"].(string), c["code"].(string)
}

func TestClinicalContent(t *testing.T) {
	p := New(Config{Seed: 6, Patients: 150})
	asOf := p.Config().AsOf
	classes, statuses := map[string]int{}, map[string]int{}
	monthOnly := 0
	for i := range p.Patients() {
		bd := parse(t, p.Record(i))
		pt := decode(t, bd.Entry[0].Resource)
		birthDate := pt["birthDate"].(string)
		if len(birthDate) == len("2006-01") {
			monthOnly++
		}
		birth := parseTime(t, birthDate)
		if birth.Before(BirthDateFirst) || birth.After(BirthDateLast) {
			t.Errorf("record %d: birth date %s out of range", i, birthDate)
		}
		type period struct{ start, end time.Time }
		encounters := map[string]period{}
		for _, e := range bd.Entry {
			if e.Request.URL != "Encounter" {
				continue
			}
			r := decode(t, e.Resource)
			pd := r["period"].(map[string]any)
			var per period
			per.start = parseTime(t, pd["start"].(string))
			per.end = asOf
			status := r["status"].(string)
			statuses[status]++
			_, class := firstCoding(map[string]any{"coding": []any{r["class"]}})
			classes[class]++
			if end, ok := pd["end"].(string); ok {
				per.end = parseTime(t, end)
				if status != "finished" || !per.end.After(per.start) {
					t.Errorf("record %d: %s encounter from %s to %s", i, status, pd["start"], end)
				}
			} else if status != "in-progress" {
				t.Errorf("record %d: %s encounter without an end", i, status)
			}
			encounters[e.FullURL] = per
		}
		for k, e := range bd.Entry {
			r := decode(t, e.Resource)
			walk(r, func(key string, v any) {
				s, ok := v.(string)
				if !ok || !dateFields[key] {
					return
				}
				tm := parseTime(t, s)
				if tm.After(asOf) || tm.Before(birth.AddDate(0, -1, 0)) {
					t.Errorf("record %d entry %d: %s %s is not between birth %s and AsOf", i, k, key, s, birthDate)
				}
			})
			if e.Request.URL != "Observation" {
				continue
			}
			enc := encounters[r["encounter"].(map[string]any)["reference"].(string)]
			eff := parseTime(t, r["effectiveDateTime"].(string))
			if eff.Before(enc.start) || eff.After(enc.end) {
				t.Errorf("record %d entry %d: effective %s outside its encounter %s to %s", i, k, eff, enc.start, enc.end)
			}
			_, category := firstCoding(r["category"].([]any)[0])
			system, code := firstCoding(r["code"])
			values := []any{r}
			if comps, ok := r["component"].([]any); ok {
				values = comps
			}
			for _, v := range values {
				m := v.(map[string]any)
				if len(values) > 1 {
					system, code = firstCoding(m["code"])
				}
				want, ok := plausible[code]
				if system != LOINC || !ok {
					t.Errorf("record %d entry %d: unexpected observation code %s|%s", i, k, system, code)
					continue
				}
				q := m["valueQuantity"].(map[string]any)
				value := q["value"].(float64)
				if q["system"] != UCUM || q["code"] != want.unit || q["unit"] != want.unit {
					t.Errorf("record %d entry %d: %s in %v|%v, want UCUM %s", i, k, code, q["system"], q["code"], want.unit)
				}
				if value < want.lo || value > want.hi {
					t.Errorf("record %d entry %d: %s = %v %s, want %v to %v", i, k, code, value, want.unit, want.lo, want.hi)
				}
				if category != want.category {
					t.Errorf("record %d entry %d: %s in category %s, want %s", i, k, code, category, want.category)
				}
			}
		}
	}
	t.Logf("encounter classes %v, statuses %v, %d month-only birth dates", classes, statuses, monthOnly)
	for _, c := range []string{"AMB", "EMER", "IMP"} {
		if classes[c] == 0 {
			t.Errorf("no %s encounter", c)
		}
	}
	if statuses["finished"] == 0 || statuses["in-progress"] == 0 {
		t.Errorf("encounter statuses %v, want finished and in-progress", statuses)
	}
	if monthOnly == 0 {
		t.Errorf("no month-only birth date")
	}
}

func TestPatientMatchesRecord(t *testing.T) {
	p := New(Config{Seed: 7, Patients: 30})
	for i := range p.Patients() {
		d := p.Patient(i)
		r := decode(t, parse(t, p.Record(i)).Entry[0].Resource)
		id := r["identifier"].([]any)[0].(map[string]any)
		name := r["name"].([]any)[0].(map[string]any)
		addr := r["address"].([]any)[0].(map[string]any)
		phone := r["telecom"].([]any)[0].(map[string]any)
		var given []string
		for _, g := range name["given"].([]any) {
			given = append(given, g.(string))
		}
		got := fmt.Sprint(id["system"], id["value"], name["family"], given, r["gender"], r["birthDate"], addr["city"], addr["postalCode"], addr["country"], phone["value"])
		want := fmt.Sprint(MRNSystem, d.MRN, d.Family, d.Given, d.Gender, d.BirthDate, d.City, d.PostalCode, d.Country, d.Phone)
		if got != want {
			t.Errorf("patient %d: record says %s, Patient says %s", i, got, want)
		}
		if d.MRN != p.MRN(i) {
			t.Errorf("patient %d: MRN %s, want %s", i, d.MRN, p.MRN(i))
		}
	}
	if got, want := p.MRN(1234), "S7-00001234"; got != want {
		t.Errorf("MRN(1234) = %s, want %s", got, want)
	}
}

func TestQueryInputs(t *testing.T) {
	p := New(Config{Seed: 8, Patients: 20001})
	q := p.QueryInputs()
	frequent, rare := 0, 0
	for i := range p.Patients() {
		switch p.Patient(i).Family {
		case FrequentFamily:
			frequent++
		case RareFamily:
			rare++
		}
	}
	if q.FrequentFamilyPatients != frequent || frequent < 20001/50 {
		t.Errorf("FrequentFamilyPatients = %d, counted %d, want about 3 %% of 20001", q.FrequentFamilyPatients, frequent)
	}
	if q.RareFamilyPatients != 3 || rare != 3 {
		t.Errorf("RareFamilyPatients = %d, counted %d, want 3 (patients 0, 10000, 20000)", q.RareFamilyPatients, rare)
	}
	// A string search matches names that start with its value, ignoring
	// case and accents: no other name may start with the query names.
	for _, f := range familyNames {
		for _, query := range []string{FrequentFamily, RareFamily} {
			if f.name != query && strings.HasPrefix(fhir.NormalizeString(f.name), fhir.NormalizeString(query)) {
				t.Errorf("family name %q starts with %q", f.name, query)
			}
		}
	}
	for _, typ := range []string{"Observation", "Condition", "MedicationRequest", "Encounter", "Immunization", "Procedure", "AllergyIntolerance"} {
		codes := q.CodesOf(typ)
		if len(codes) == 0 {
			t.Errorf("no %s codes", typ)
			continue
		}
		for k := 1; k < len(codes); k++ {
			if codes[k].PerRecord > codes[k-1].PerRecord {
				t.Errorf("%s codes not by decreasing frequency: %v", typ, codes)
				break
			}
		}
	}
	for _, c := range []string{LOINC + "|8867-4", LOINC + "|4548-4", SNOMED + "|44054006", SNOMED + "|38341003", RxNorm + "|860975", RxNorm + "|617312"} {
		found := false
		for _, cc := range q.Codes {
			found = found || cc.Token() == c
		}
		if !found {
			t.Errorf("code %s is not among the codes present", c)
		}
	}
	if !q.History.Start.Before(q.Recent.Start) || !q.Recent.End.Equal(p.Config().AsOf) || !q.Birth.End.After(q.Birth.Start) {
		t.Errorf("periods: history %v, recent %v, birth %v", q.History, q.Recent, q.Birth)
	}
}

func TestShared(t *testing.T) {
	p := New(Config{Seed: 9})
	paths := p.SharedPaths()
	bodies := p.Shared()
	if len(paths) != len(bodies) || len(bodies) != len(cities)+1+len(cities)*practitionersPerCity {
		t.Fatalf("%d shared resources and %d paths", len(bodies), len(paths))
	}
	for k, b := range bodies {
		for _, is := range fhir.Validate(b) {
			t.Errorf("shared %d: %s", k, is)
		}
		r := decode(t, b)
		if got := fmt.Sprint(r["resourceType"], "/", r["id"]); got != paths[k] {
			t.Errorf("shared %d is %s, path %s", k, got, paths[k])
		}
	}
	if !bytes.Equal(New(Config{Seed: 10}).Shared()[20], bodies[20]) {
		t.Errorf("shared resources depend on the seed")
	}
	sb := p.SharedBundle()
	for _, is := range fhir.Validate(sb) {
		t.Errorf("shared bundle: %s", is)
	}
	bd := parse(t, sb)
	for k, e := range bd.Entry {
		if e.Request.Method != "PUT" || e.Request.URL != paths[k] || !bytes.Equal(e.Resource, bodies[k]) {
			t.Errorf("shared bundle entry %d: %s %s", k, e.Request.Method, e.Request.URL)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"defaults", Config{Seed: 1, Patients: 10}, true},
		{"negative patients", Config{Patients: -1}, false},
		{"negative history", Config{HistoryYears: -1}, false},
		{"min above max", Config{MinEncounters: 10, MaxEncounters: 5}, false},
		{"min alone above default max", Config{MinEncounters: 200}, true},
		{"negative min", Config{MinEncounters: -1}, false},
		{"huge max", Config{MaxEncounters: 1 << 20}, false},
		{"AsOf before births", Config{AsOf: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}, false},
		{"AsOf later", Config{AsOf: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
		})
	}
}

func TestPanics(t *testing.T) {
	tests := []struct {
		name string
		fn   func()
	}{
		{"New with an invalid Config", func() { New(Config{Patients: -1}) }},
		{"Record past the end", func() { New(Config{Patients: 3}).Record(3) }},
		{"Record below zero", func() { New(Config{Patients: 3}).Record(-1) }},
		{"Patient past the end", func() { New(Config{Patients: 3}).Patient(3) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			tc.fn()
		})
	}
}

func TestDateFormatting(t *testing.T) {
	offsets := []int{0, 3600, -5 * 3600, 5*3600 + 1800, -3*3600 - 1800}
	for sec := int64(-2_000_000_000); sec < 4_000_000_000; sec += 7_777_777 {
		for _, off := range offsets {
			got := string(appendDateTime(nil, sec, off))
			want := time.Unix(sec, 0).In(time.FixedZone("", off)).Format("2006-01-02T15:04:05-07:00")
			if got != want {
				t.Fatalf("appendDateTime(%d, %d) = %s, want %s", sec, off, got, want)
			}
		}
		days := sec / day
		if got, want := string(appendDate(nil, days)), time.Unix(days*day, 0).UTC().Format(time.DateOnly); got != want {
			t.Fatalf("appendDate(%d) = %s, want %s", days, got, want)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `O'Brien "quoted" \ back`, "tab\tnew\nline\x01", "Nguyễn Zoë"} {
		var back string
		if err := json.Unmarshal(appendString(nil, s), &back); err != nil || back != s {
			t.Errorf("appendString(%q) = %s, reads back as %q, %v", s, appendString(nil, s), back, err)
		}
	}
}
