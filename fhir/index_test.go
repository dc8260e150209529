package fhir

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden index files in testdata/search")

// formatIndex renders an index one entry a line, for golden files and
// diffs.
func formatIndex(ix *Index) string {
	var b strings.Builder
	for _, e := range ix.Strings {
		fmt.Fprintf(&b, "string %s %q norm=%q\n", e.Param, e.Value, e.Norm)
	}
	for _, e := range ix.Tokens {
		b.WriteString(formatToken(e) + "\n")
	}
	for _, e := range ix.References {
		b.WriteString(formatReference(e) + "\n")
	}
	for _, e := range ix.Dates {
		b.WriteString(formatDate(e) + "\n")
	}
	for _, e := range ix.Numbers {
		fmt.Fprintf(&b, "number %s %s [%s, %s) text=%q\n", e.Param, formatFloat(e.Value), formatFloat(e.Low), formatFloat(e.High), e.Text)
	}
	for _, e := range ix.Quantities {
		b.WriteString(formatQuantity(e) + "\n")
	}
	for _, e := range ix.URIs {
		fmt.Fprintf(&b, "uri %s %q\n", e.Param, e.Value)
	}
	for _, e := range ix.Composites {
		parts := make([]string, len(e.Parts))
		for i, p := range e.Parts {
			parts[i] = formatPart(p)
		}
		fmt.Fprintf(&b, "composite %s (%s)\n", e.Param, strings.Join(parts, " ; "))
	}
	if len(ix.PatientCompartment) > 0 {
		fmt.Fprintf(&b, "compartment Patient %s\n", strings.Join(ix.PatientCompartment, " "))
	}
	return b.String()
}

func formatToken(e TokenEntry) string {
	s := fmt.Sprintf("token %s %s|%s", e.Param, e.System, e.Code)
	if e.Text != "" {
		s += fmt.Sprintf(" text=%q", e.Text)
	}
	if e.TypeSystem != "" || e.TypeCode != "" {
		s += fmt.Sprintf(" type=%s|%s", e.TypeSystem, e.TypeCode)
	}
	return s
}

func formatReference(e ReferenceEntry) string {
	s := fmt.Sprintf("reference %s", e.Param)
	if e.Type != "" || e.ID != "" {
		s += fmt.Sprintf(" %s/%s", e.Type, e.ID)
	}
	if e.URL != "" {
		s += fmt.Sprintf(" url=%s", e.URL)
	}
	if e.Version != "" {
		s += " version=" + e.Version
	}
	if e.Local {
		s += " local"
	}
	if e.IdentifierSystem != "" || e.IdentifierValue != "" {
		s += fmt.Sprintf(" identifier=%s|%s", e.IdentifierSystem, e.IdentifierValue)
	}
	return s
}

func formatDate(e DateEntry) string {
	return fmt.Sprintf("date %s [%s, %s) %s", e.Param, e.Low.Format(time.RFC3339Nano), e.High.Format(time.RFC3339Nano), e.Precision)
}

func formatQuantity(e QuantityEntry) string {
	return fmt.Sprintf("quantity %s %s [%s, %s) %s|%s unit=%q", e.Param, formatFloat(e.Value), formatFloat(e.Low), formatFloat(e.High), e.System, e.Code, e.Unit)
}

func formatFloat(f float64) string {
	switch f {
	case math.MaxFloat64:
		return "+max"
	case -math.MaxFloat64:
		return "-max"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func formatPart(p CompositePart) string {
	switch {
	case p.String != nil:
		return fmt.Sprintf("string %s %q", p.String.Param, p.String.Value)
	case p.Token != nil:
		return formatToken(*p.Token)
	case p.Reference != nil:
		return formatReference(*p.Reference)
	case p.Date != nil:
		return formatDate(*p.Date)
	case p.Number != nil:
		return fmt.Sprintf("number %s %s", p.Number.Param, formatFloat(p.Number.Value))
	case p.Quantity != nil:
		return formatQuantity(*p.Quantity)
	case p.URI != nil:
		return fmt.Sprintf("uri %s %q", p.URI.Param, p.URI.Value)
	}
	return "?"
}

// TestExtractIndexGolden extracts the index of rich fixtures and compares
// it, entry by entry, with the reviewed golden files beside them (go test
// -run TestExtractIndexGolden -update rewrites them).
func TestExtractIndexGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/search/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var probe struct{ ResourceType string }
			if err := json.Unmarshal(body, &probe); err != nil {
				t.Fatal(err)
			}
			if issues := Validate(body); len(issues) > 0 {
				t.Fatalf("fixture is not valid R4: %v", issues)
			}
			ix, err := ExtractIndex(probe.ResourceType, body)
			if err != nil {
				t.Fatal(err)
			}
			got := formatIndex(ix)
			golden := strings.TrimSuffix(file, ".json") + ".index"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("index differs from %s:\n%s", golden, lineDiff(string(want), got))
			}
		})
	}
}

// lineDiff lists the lines only one side has.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)"
	}
	return b.String()
}

func TestExtractIndexErrors(t *testing.T) {
	for _, tc := range []struct {
		name, typ, body string
		code            string
	}{
		{"unknown resource type", "Nope", `{"resourceType":"Nope"}`, "not-supported"},
		{"abstract type", "DomainResource", `{"resourceType":"DomainResource"}`, "not-supported"},
		{"invalid JSON", "Patient", `{"resourceType":"Patient"`, "structure"},
		{"not an object", "Patient", `["Patient"]`, "structure"},
		{"type mismatch", "Patient", `{"resourceType":"Observation"}`, "invalid"},
		{"no resourceType", "Patient", `{"id":"x"}`, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ExtractIndex(tc.typ, []byte(tc.body))
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Errorf("err = %v, want a ParseError with code %s", err, tc.code)
			}
		})
	}
}

// paramLines returns the formatted entries of one parameter.
func paramLines(ix *Index, code string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(formatIndex(ix)), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == code {
			out = append(out, l)
		}
	}
	return out
}

// TestExtractIndexConversions pins the conversion rules on small
// resources, one parameter at a time.
func TestExtractIndexConversions(t *testing.T) {
	for _, tc := range []struct {
		name, typ, body, param string
		want                   []string
	}{
		{"HumanName parts are separate strings", "Patient",
			`{"resourceType":"Patient","name":[{"text":"Dr Ann Lee","family":"Lee","given":["Ann","B."],"prefix":["Dr"],"suffix":["MD"]}]}`, "name",
			[]string{`string name "Lee" norm="lee"`, `string name "Ann" norm="ann"`, `string name "B." norm="b."`, `string name "Dr" norm="dr"`, `string name "MD" norm="md"`, `string name "Dr Ann Lee" norm="dr ann lee"`}},
		{"identical values are indexed once", "Patient",
			`{"resourceType":"Patient","identifier":[{"system":"s","value":"1"},{"system":"s","value":"1"},{"system":"s","value":"2"}]}`, "identifier",
			[]string{"token identifier s|1", "token identifier s|2"}},
		{"identifier type codings for :of-type", "Patient",
			`{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"t","code":"MR"},{"system":"u","code":"X"}],"text":"Chart No"},"system":"s","value":"1"}]}`, "identifier",
			[]string{`token identifier s|1 text="chart no" type=t|MR`, `token identifier s|1 text="chart no" type=u|X`}},
		{"ContactPoint system and value", "Patient",
			`{"resourceType":"Patient","telecom":[{"system":"phone","value":"555"},{"value":"bare"}]}`, "telecom",
			[]string{"token telecom phone|555", "token telecom |bare"}},
		{"boolean token", "Patient", `{"resourceType":"Patient","active":false}`, "active", []string{"token active |false"}},
		{"deceasedDateTime makes deceased true", "Patient", `{"resourceType":"Patient","deceasedDateTime":"2020-01-01"}`, "deceased", []string{"token deceased |true"}},
		{"no deceased makes deceased false", "Patient", `{"resourceType":"Patient"}`, "deceased", []string{"token deceased |false"}},
		{"CodeableConcept text without codings", "Condition",
			`{"resourceType":"Condition","subject":{"reference":"Patient/1"},"code":{"text":"Ça fait mal"}}`, "code", []string{`token code | text="ca fait mal"`}},
		{"identifier-only reference", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"type":"Patient","identifier":{"system":"mrn","value":"7"}}}`, "subject",
			[]string{"reference subject Patient/ identifier=mrn|7"}},
		{"display-only reference gives nothing", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"display":"Someone"}}`, "subject", nil},
		{"reference to a patient of a group is not patient", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Group/g1"}}`, "patient", nil},
		{"canonical with a version", "QuestionnaireResponse",
			`{"resourceType":"QuestionnaireResponse","status":"completed","questionnaire":"http://example.org/fhir/Questionnaire/q1|2.0"}`, "questionnaire",
			[]string{"reference questionnaire Questionnaire/q1 url=http://example.org/fhir/Questionnaire/q1 version=2.0"}},
		{"Bundle composition is its first entry's resource", "Bundle",
			`{"resourceType":"Bundle","type":"document","entry":[{"resource":{"resourceType":"Composition","id":"c1","status":"final","type":{"text":"x"},"date":"2020","author":[{"display":"a"}],"title":"t"}},{"resource":{"resourceType":"Patient","id":"p"}}]}`, "composition",
			[]string{"reference composition Composition/c1"}},
		{"Period with an open end", "Encounter",
			`{"resourceType":"Encounter","status":"in-progress","class":{"code":"AMB"},"period":{"start":"2024-01-01T10:00:00Z"}}`, "date",
			[]string{"date date [2024-01-01T10:00:00Z, 9999-12-31T23:59:59.999999999Z) range"}},
		{"Period with an open start", "Encounter",
			`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"period":{"end":"2024-01"}}`, "date",
			[]string{"date date [0001-01-01T00:00:00Z, 2024-02-01T00:00:00Z) range"}},
		{"Timing: events and bounds", "CarePlan",
			`{"resourceType":"CarePlan","status":"active","intent":"plan","subject":{"reference":"Patient/1"},"activity":[{"detail":{"status":"scheduled","scheduledTiming":{"event":["2024-05-02","2024-05-01T08:00:00Z"],"repeat":{"boundsPeriod":{"start":"2024-05-01","end":"2024-05-31"}}}}}]}`, "activity-date",
			[]string{"date activity-date [2024-05-01T08:00:00Z, 2024-05-03T00:00:00Z) range", "date activity-date [2024-05-01T00:00:00Z, 2024-06-01T00:00:00Z) range"}},
		{"a Period that ends before it starts gives nothing", "Encounter",
			`{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"period":{"start":"2001","end":"1999"}}`, "date", nil},
		{"a Range whose high is below its low gives nothing", "RiskAssessment",
			`{"resourceType":"RiskAssessment","status":"final","subject":{"reference":"Patient/1"},"prediction":[{"probabilityRange":{"low":{"value":0.3},"high":{"value":0.1}}}]}`, "probability", nil},
		{"free-text date gives nothing", "Procedure",
			`{"resourceType":"Procedure","status":"completed","subject":{"reference":"Patient/1"},"performedString":"last spring"}`, "date", nil},
		{"malformed date gives nothing", "Patient", `{"resourceType":"Patient","birthDate":"1974-13-01"}`, "birthdate", nil},
		{"decimal number with its precision", "RiskAssessment",
			`{"resourceType":"RiskAssessment","status":"final","subject":{"reference":"Patient/1"},"prediction":[{"probabilityDecimal":0.020}]}`, "probability",
			[]string{`number probability 0.02 [0.0195, 0.0205) text="0.020"`}},
		{"Range number covers the range", "RiskAssessment",
			`{"resourceType":"RiskAssessment","status":"final","subject":{"reference":"Patient/1"},"prediction":[{"probabilityRange":{"low":{"value":0.1},"high":{"value":0.3}}}]}`, "probability",
			[]string{`number probability 0.1 [0.05, 0.35) text=""`}},
		{"Money", "Invoice", `{"resourceType":"Invoice","status":"issued","totalGross":{"value":12.5,"currency":"CHF"}}`, "totalgross",
			[]string{`quantity totalgross 12.5 [12.45, 12.55) urn:iso:std:iso:4217|CHF unit="CHF"`}},
		{"Range quantity with an open high", "Library",
			`{"resourceType":"Library","status":"active","type":{"text":"x"},"useContext":[{"code":{"code":"age"},"valueRange":{"low":{"value":18,"system":"http://unitsofmeasure.org","code":"a","unit":"yr"}}}]}`, "context-quantity",
			[]string{`quantity context-quantity 18 [17.5, +max) http://unitsofmeasure.org|a unit="yr"`}},
		{"uri", "ValueSet", `{"resourceType":"ValueSet","status":"active","url":"http://example.org/vs|ignored-by-uri"}`, "url",
			[]string{`uri url "http://example.org/vs|ignored-by-uri"`}},
		{"composite gives every combination", "Observation",
			`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"a","code":"1"},{"system":"b","code":"2"}]},"valueQuantity":{"value":5,"code":"mg"}}`, "code-value-quantity",
			[]string{"composite code-value-quantity (token code a|1 ; quantity value-quantity 5 [4.5, 5.5) |mg unit=\"\")", "composite code-value-quantity (token code b|2 ; quantity value-quantity 5 [4.5, 5.5) |mg unit=\"\")"}},
		{"composite with %resource", "MolecularSequence",
			`{"resourceType":"MolecularSequence","coordinateSystem":0,"referenceSeq":{"chromosome":{"coding":[{"system":"c","code":"1"}]}},"variant":[{"start":10,"end":20}]}`, "chromosome-variant-coordinate",
			[]string{"composite chromosome-variant-coordinate (token chromosome c|1 ; number variant-start 10 ; number variant-end 20)"}},
		{"special parameters are not indexed", "Location", `{"resourceType":"Location","position":{"longitude":1,"latitude":2}}`, "near", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := ExtractIndex(tc.typ, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := paramLines(ix, tc.param); !slices.Equal(got, tc.want) {
				t.Errorf("%s entries:\n got %q\nwant %q", tc.param, got, tc.want)
			}
		})
	}
}

func TestExtractIndexPatientCompartment(t *testing.T) {
	for _, tc := range []struct {
		name, typ, body string
		want            []string
	}{
		{"a patient is in its own compartment and its links'", "Patient", `{"resourceType":"Patient","id":"p1","link":[{"other":{"reference":"Patient/p0"},"type":"seealso"},{"other":{"reference":"RelatedPerson/r"},"type":"seealso"}]}`, []string{"p1", "p0"}},
		{"through each compartment parameter, once", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"},"performer":[{"reference":"Patient/b"},{"reference":"Patient/a"},{"reference":"Practitioner/c"}]}`, []string{"a", "b"}},
		{"not through other parameters", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"focus":[{"reference":"Patient/a"}]}`, nil},
		{"not through absolute or local references", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"http://other.org/Patient/a"},"performer":[{"reference":"#p"}],"contained":[{"resourceType":"Patient","id":"p"}]}`, nil},
		{"types outside the compartment", "Organization", `{"resourceType":"Organization","id":"o","partOf":{"reference":"Patient/a"}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := ExtractIndex(tc.typ, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ix.PatientCompartment, tc.want) {
				t.Errorf("PatientCompartment = %v, want %v", ix.PatientCompartment, tc.want)
			}
		})
	}
}

// TestExtractIndexDeduplicatesMany checks that a parameter with many
// values keeps each once, past the first linearDedup compared one by one.
func TestExtractIndexDeduplicatesMany(t *testing.T) {
	ix, err := ExtractIndex("Patient", manyIdentifiers(500))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range ix.Tokens {
		if e.Param == "identifier" {
			count[e.Code]++
		}
	}
	given := 0
	for _, e := range ix.Strings {
		if e.Param == "given" {
			given++
		}
	}
	if len(count) != 500 || given != 500 {
		t.Fatalf("%d distinct identifiers and %d given names, want 500 each", len(count), given)
	}
	for code, n := range count {
		if n != 1 {
			t.Fatalf("identifier %s indexed %d times", code, n)
		}
	}
}

func TestExtractIndexPatients(t *testing.T) {
	for _, tc := range []struct {
		name, typ, body string
		want            []string
	}{
		{"the compartment's first, in its order", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"performer":[{"reference":"Patient/b"}],"subject":{"reference":"Patient/a"}}`, []string{"a", "b"}},
		{"then any other reference to a Patient", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"focus":[{"reference":"Patient/c"}],"subject":{"reference":"Patient/a"}}`, []string{"a", "c"}},
		{"outside the compartment", "Task", `{"resourceType":"Task","status":"requested","intent":"order","for":{"reference":"Patient/a"}}`, []string{"a"}},
		{"in extensions, contained resources and versioned references", "Organization", `{"resourceType":"Organization","extension":[{"url":"http://x","valueReference":{"reference":"Patient/e/_history/2"}}],` +
			`"contained":[{"resourceType":"Basic","id":"b","code":{"text":"x"},"subject":{"reference":"Patient/f"}}]}`, []string{"e", "f"}},
		{"not absolute, local or other types' references", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"http://other.org/Patient/a"},"performer":[{"reference":"#p"},{"reference":"Practitioner/p"}]}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix, err := ExtractIndex(tc.typ, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ix.Patients, tc.want) {
				t.Errorf("Patients = %v, want %v", ix.Patients, tc.want)
			}
		})
	}
}

// TestExtractIndexIgnoresContained puts each fixture inside a resource of
// the same type: the container's index must be what it is without it.
func TestExtractIndexIgnoresContained(t *testing.T) {
	files, _ := filepath.Glob("testdata/search/*.json")
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var res map[string]any
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		delete(res, "contained")
		typ := res["resourceType"].(string)
		bare := map[string]any{"resourceType": typ, "id": "container"}
		withContained := map[string]any{"resourceType": typ, "id": "container", "contained": []any{res}}
		var want, got string
		for i, r := range []map[string]any{bare, withContained} {
			b, _ := json.Marshal(r)
			ix, err := ExtractIndex(typ, b)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				want = formatIndex(ix)
			} else {
				got = formatIndex(ix)
			}
		}
		if got != want {
			t.Errorf("%s: contained values were indexed:\n%s", file, lineDiff(want, got))
		}
	}
}

// FuzzExtractIndex checks that extraction never panics on a JSON object
// of any resource type and that what it returns is well formed.
func FuzzExtractIndex(f *testing.F) {
	files, _ := filepath.Glob("testdata/search/*.json")
	valid, _ := filepath.Glob("testdata/valid/*.json")
	for _, file := range append(files, valid...) {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	for _, rt := range ResourceTypes() {
		f.Add([]byte(`{"resourceType":"` + rt + `","id":"x","meta":{"lastUpdated":"2020"},"contained":[{"resourceType":"Patient"}]}`))
	}
	f.Add([]byte(`{"resourceType":"Observation","valueQuantity":"x","component":[1,null,{"code":[]}],"subject":{"reference":7}}`))
	f.Add([]byte(`{"resourceType":"Patient","name":{"given":"x"},"telecom":[{"system":["phone"]}],"deceasedBoolean":"no","link":[{"other":{"reference":"#"}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var probe struct {
			ResourceType string `json:"resourceType"`
		}
		typ := "Patient"
		if json.Unmarshal(body, &probe) == nil && IsResourceType(probe.ResourceType) {
			typ = probe.ResourceType
		}
		ix, err := ExtractIndex(typ, body)
		if err != nil {
			return
		}
		codes := map[string]bool{}
		for _, p := range SearchParams(typ) {
			codes[p.Code] = true
		}
		check := func(param string) {
			if !codes[param] {
				t.Fatalf("entry for %q, not a parameter of %s", param, typ)
			}
		}
		for _, e := range ix.Strings {
			check(e.Param)
		}
		for _, e := range ix.Tokens {
			check(e.Param)
		}
		for _, e := range ix.References {
			check(e.Param)
		}
		for _, e := range ix.Dates {
			check(e.Param)
			if !e.Low.Before(e.High) {
				t.Fatalf("date %s: empty range [%v, %v)", e.Param, e.Low, e.High)
			}
		}
		for _, e := range ix.Numbers {
			check(e.Param)
			if !(e.Low <= e.Value && e.Value <= e.High) {
				t.Fatalf("number %s: %v outside [%v, %v)", e.Param, e.Value, e.Low, e.High)
			}
		}
		for _, e := range ix.Quantities {
			check(e.Param)
			if !(e.Low <= e.Value && e.Value <= e.High) {
				t.Fatalf("quantity %s: %v outside [%v, %v)", e.Param, e.Value, e.Low, e.High)
			}
		}
		for _, e := range ix.URIs {
			check(e.Param)
		}
		for _, e := range ix.Composites {
			check(e.Param)
			for _, p := range e.Parts {
				if p.clone() == (CompositePart{}) {
					t.Fatalf("composite %s: empty part", e.Param)
				}
			}
		}
	})
}

// TestExtractIndexConcurrent extracts the fixtures from several goroutines
// at once (compilation, pooled environments and size hints are shared)
// and compares with one goroutine's results.
func TestExtractIndexConcurrent(t *testing.T) {
	files, _ := filepath.Glob("testdata/search/*.json")
	type job struct {
		typ  string
		body []byte
		want string
	}
	var jobs []job
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var probe struct{ ResourceType string }
		_ = json.Unmarshal(body, &probe)
		ix, err := ExtractIndex(probe.ResourceType, body)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, job{probe.ResourceType, body, formatIndex(ix)})
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 20 {
				j := jobs[(g+i)%len(jobs)]
				ix, err := ExtractIndex(j.typ, j.body)
				if err == nil && formatIndex(ix) != j.want {
					err = fmt.Errorf("%s: index differs under concurrency", j.typ)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
