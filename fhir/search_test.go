package fhir

import (
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestSearchParamsOfEveryType(t *testing.T) {
	inherited := []string{"_content", "_id", "_lastUpdated", "_profile", "_query", "_security", "_source", "_tag"}
	total := 0
	for _, rt := range ResourceTypes() {
		ps := SearchParams(rt)
		total += len(ps)
		if !sort.SliceIsSorted(ps, func(i, j int) bool { return ps[i].Code < ps[j].Code }) {
			t.Errorf("%s: parameters not sorted by code", rt)
		}
		codes := map[string]bool{}
		for _, p := range ps {
			codes[p.Code] = true
			if p.URL == "" || !strings.HasPrefix(p.URL, "http://hl7.org/fhir/SearchParameter/") {
				t.Errorf("%s.%s: URL %q", rt, p.Code, p.URL)
			}
			if p.Base != rt && p.Base != "Resource" && p.Base != "DomainResource" {
				t.Errorf("%s.%s: base %s", rt, p.Code, p.Base)
			}
			if p.Type != "reference" && len(p.Targets) > 0 {
				t.Errorf("%s.%s: type %s with targets %v", rt, p.Code, p.Type, p.Targets)
			}
			if (p.Type == "composite") != (len(p.Components) > 0) {
				t.Errorf("%s.%s: type %s with %d components", rt, p.Code, p.Type, len(p.Components))
			}
			for _, c := range p.Components {
				if c.Param == nil || c.Param.Base != rt || c.Code != c.Param.Code || c.Type != c.Param.Type || c.Expression == "" {
					t.Errorf("%s.%s: component %+v", rt, p.Code, c)
				}
			}
			switch p.Type {
			case "date", "number", "quantity":
				if want := []string{"eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap"}; !slices.Equal(p.Comparators, want) {
					t.Errorf("%s.%s: comparators %v, want %v", rt, p.Code, p.Comparators, want)
				}
			default:
				if len(p.Comparators) > 0 {
					t.Errorf("%s.%s: comparators on a %s parameter", rt, p.Code, p.Type)
				}
			}
			if p.MultipleOr != (p.Type != "composite") || !p.MultipleAnd {
				t.Errorf("%s.%s: multipleOr %t multipleAnd %t", rt, p.Code, p.MultipleOr, p.MultipleAnd)
			}
		}
		for _, c := range inherited {
			if !codes[c] {
				t.Errorf("%s lacks the inherited parameter %s", rt, c)
			}
		}
		if codes["_text"] != isDomainResource(r4Model(), rt) {
			t.Errorf("%s: has _text %t, is a DomainResource %t", rt, codes["_text"], isDomainResource(r4Model(), rt))
		}
	}
	// R4 has 1375 search parameters; applied to each resource type that
	// has them, with the inherited ones, they make 3008.
	if total != 3008 {
		t.Errorf("%d parameters over all types, want 3008", total)
	}
	urls := map[string]bool{}
	for _, rt := range ResourceTypes() {
		for _, p := range SearchParams(rt) {
			urls[p.URL] = true
		}
	}
	if len(urls) != 1375 {
		t.Errorf("%d distinct SearchParameters, want R4's 1375", len(urls))
	}
	if SearchParams("Nope") != nil || SearchParams("DomainResource") != nil {
		t.Error("SearchParams of a non-resource type is not nil")
	}
}

func TestLookupSearchParam(t *testing.T) {
	for _, tc := range []struct {
		name, typ, code    string
		wantType, wantExpr string
		wantBase           string
		wantTargets        []string
	}{
		{"own string parameter", "Patient", "name", "string", "Patient.name", "Patient", nil},
		{"shared parameter gets only its own branch", "Observation", "patient", "reference", "Observation.subject.where(resolve() is Patient)", "Observation", []string{"Patient"}},
		{"same parameter, another type", "Condition", "patient", "reference", "Condition.subject.where(resolve() is Patient)", "Condition", []string{"Patient"}},
		{"targets narrowed to the element's", "Composition", "encounter", "reference", "Composition.encounter", "Composition", []string{"Encounter"}},
		{"targets R4 gives where the element allows them", "DeviceUseStatement", "patient", "reference", "DeviceUseStatement.subject", "DeviceUseStatement", []string{"Patient", "Group"}},
		{"inherited from Resource", "Patient", "_id", "token", "Resource.id", "Resource", nil},
		{"inherited from DomainResource", "Patient", "_text", "string", "", "DomainResource", nil},
		{"relative branches of a single-base parameter", "InsurancePlan", "name", "string", "name | alias", "InsurancePlan", nil},
		{"choice narrowed by ofType", "Observation", "value-quantity", "quantity", "Observation.value.ofType(Quantity) | Observation.value.ofType(SampledData)", "Observation", nil},
		{"special", "Location", "near", "special", "Location.position", "Location", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := LookupSearchParam(tc.typ, tc.code)
			if !ok {
				t.Fatalf("LookupSearchParam(%s, %s) not found", tc.typ, tc.code)
			}
			if p.Code != tc.code || p.Type != tc.wantType || p.Expression != tc.wantExpr || p.Base != tc.wantBase {
				t.Errorf("got %s %s %q base %s, want %s %s %q base %s", p.Code, p.Type, p.Expression, p.Base, tc.code, tc.wantType, tc.wantExpr, tc.wantBase)
			}
			if !slices.Equal(p.Targets, tc.wantTargets) {
				t.Errorf("targets %v, want %v", p.Targets, tc.wantTargets)
			}
		})
	}
	for _, tc := range [][2]string{{"Bundle", "_text"}, {"Patient", "nope"}, {"Nope", "name"}, {"Resource", "_id"}, {"Patient", ""}} {
		if p, ok := LookupSearchParam(tc[0], tc[1]); ok {
			t.Errorf("LookupSearchParam(%s, %s) = %+v, want not found", tc[0], tc[1], p)
		}
	}
}

func TestSearchComposites(t *testing.T) {
	for _, tc := range []struct {
		typ, code, expr string
		components      []string // code type expression
	}{
		{"Observation", "code-value-quantity", "Observation", []string{"code token code", "value-quantity quantity value.ofType(Quantity)"}},
		{"Observation", "component-code-value-concept", "Observation.component", []string{"component-code token code", "component-value-concept token value.ofType(CodeableConcept)"}},
		{"Observation", "combo-code-value-quantity", "Observation | Observation.component", []string{"combo-code token code", "combo-value-quantity quantity value.ofType(Quantity)"}},
		{"MolecularSequence", "chromosome-variant-coordinate", "MolecularSequence.variant", []string{
			"chromosome token %resource.referenceSeq.chromosome", "variant-start number start", "variant-end number end"}},
		// R4 swaps the definitions of these two; the model puts them right.
		{"DocumentReference", "relationship", "DocumentReference.relatesTo", []string{"relation token code", "relatesto reference target"}},
	} {
		t.Run(tc.typ+"."+tc.code, func(t *testing.T) {
			p, ok := LookupSearchParam(tc.typ, tc.code)
			if !ok {
				t.Fatal("not found")
			}
			var got []string
			for _, c := range p.Components {
				got = append(got, c.Param.Code+" "+c.Param.Type+" "+c.Expression)
			}
			if p.Type != "composite" || p.Expression != tc.expr || !slices.Equal(got, tc.components) || p.MultipleOr {
				t.Errorf("got %s %q %q multipleOr %t, want composite %q %q", p.Type, p.Expression, got, p.MultipleOr, tc.expr, tc.components)
			}
		})
	}
}

// TestSearchModelIsR4 pins where the model departs from the source
// package to stay R4, so that a regenerated model that lost a correction
// fails here (see fhir/internal/gen/search.go).
func TestSearchModelIsR4(t *testing.T) {
	notR4 := [][2]string{
		{"DetectedIssue", "status"},            // R5's, added by the package
		{"ServiceRequest", "order-detail"},     // added by the package
		{"DeviceDefinition", "classification"}, // R5's (version 5.0.0-snapshot1)
	}
	for _, tc := range notR4 {
		if _, ok := LookupSearchParam(tc[0], tc[1]); ok {
			t.Errorf("%s.%s is in the model but not in R4", tc[0], tc[1])
		}
	}
	p, _ := LookupSearchParam("MeasureReport", "subject")
	if want := []string{"Practitioner", "Group", "Device", "Patient", "PractitionerRole", "RelatedPerson", "Location"}; !slices.Equal(p.Targets, want) {
		t.Errorf("MeasureReport.subject targets %v, want R4's %v", p.Targets, want)
	}
	// clinical-patient: R4 gives Patient and Group, the package Patient.
	p, _ = LookupSearchParam("DeviceUseStatement", "patient")
	if want := []string{"Patient", "Group"}; !slices.Equal(p.Targets, want) {
		t.Errorf("DeviceUseStatement.patient targets %v, want R4's %v", p.Targets, want)
	}
	p, _ = LookupSearchParam("Observation", "focus")
	if len(p.Targets) != 145 || slices.Contains(p.Targets, "Parameters") {
		t.Errorf("Observation.focus has %d targets, want every resource type but Parameters", len(p.Targets))
	}
	// Every branch of every expression starts at its own type (or is
	// relative): no type carries another's branches.
	for _, rt := range ResourceTypes() {
		for _, p := range SearchParams(rt) {
			for _, br := range strings.Split(p.Expression, " | ") {
				head := strings.TrimLeft(br, "(")
				if i := strings.IndexAny(head, ".( "); i >= 0 {
					head = head[:i]
				}
				if head != "" && head[0] >= 'A' && head[0] <= 'Z' && head != rt && head != p.Base {
					t.Errorf("%s.%s: branch %q belongs to %s", rt, p.Code, br, head)
				}
			}
		}
	}
}

func TestPatientCompartmentParams(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		want []string
	}{
		{"Patient", []string{CompartmentSelf, "link"}},
		{"Observation", []string{"subject", "performer"}},
		{"Encounter", []string{"patient"}}, // the package says subject; R4 patient
		{"AllergyIntolerance", []string{"patient", "recorder", "asserter"}},
		{"Coverage", []string{"policy-holder", "subscriber", "beneficiary", "payor"}},
		{"Task", nil}, // the package adds Task; R4 does not have it in the compartment
		{"Organization", nil},
		{"Parameters", nil},
		{"Nope", nil},
	} {
		if got := PatientCompartmentParams(tc.typ); !slices.Equal(got, tc.want) {
			t.Errorf("PatientCompartmentParams(%s) = %v, want %v", tc.typ, got, tc.want)
		}
	}
	n := 0
	for _, rt := range ResourceTypes() {
		for _, code := range PatientCompartmentParams(rt) {
			if code == CompartmentSelf {
				continue
			}
			if p, ok := LookupSearchParam(rt, code); !ok || p.Type != "reference" {
				t.Errorf("%s: compartment parameter %s is not a reference parameter", rt, code)
			}
		}
		if PatientCompartmentParams(rt) != nil {
			n++
		}
	}
	if n != 66 {
		t.Errorf("%d resource types in the Patient compartment, want R4's 66", n)
	}
}

func TestUnsupportedSearchParams(t *testing.T) {
	var got []string
	for _, rt := range ResourceTypes() {
		for _, p := range SearchParams(rt) {
			if p.Unsupported != "" && !slices.Contains(got, p.Base+"."+p.Code) {
				got = append(got, p.Base+"."+p.Code)
			}
		}
	}
	sort.Strings(got)
	want := []string{"DomainResource._text", "Location.near", "Resource._content", "Resource._query"}
	if !slices.Equal(got, want) {
		t.Errorf("unsupported parameters %v, want %v", got, want)
	}
}

func TestParseSearchModelErrors(t *testing.T) {
	m := r4Model()
	for _, tc := range []struct {
		name, text, want string
	}{
		{"no version", "resource Patient\n", "no fhir version"},
		{"wrong version", "fhir 4.3.0\n", "unsupported FHIR version"},
		{"unknown resource", "fhir 4.0.1\nresource Nope\n", "not a resource type"},
		{"parameter outside a resource", "fhir 4.0.1\np name string Patient-name : Patient.name\n", "malformed parameter"},
		{"unknown type", "fhir 4.0.1\nresource Patient\np name text Patient-name : Patient.name\n", "unknown type"},
		{"unknown key", "fhir 4.0.1\nresource Patient\np name string Patient-name colour=red : Patient.name\n", "unknown key"},
		{"bad boolean", "fhir 4.0.1\nresource Patient\np name string Patient-name multipleOr=maybe : Patient.name\n", "malformed"},
		{"component without composite", "fhir 4.0.1\nresource Patient\nc Patient-name : name\n", "malformed component"},
		{"component of another type", "fhir 4.0.1\nresource Patient\np x composite Patient-x : Patient\nc Observation-code : code\n", "is not a parameter of Patient"},
		{"duplicate code", "fhir 4.0.1\nresource Resource\np _id token Resource-id : Resource.id\nresource Patient\np _id token Patient-id : Patient.id\n", "defined twice"},
		{"compartment parameter not a reference", "fhir 4.0.1\nresource Patient\ncompartment Patient name\np name string Patient-name : Patient.name\n", "not a reference parameter"},
		{"unknown record", "fhir 4.0.1\nx y\n", "unknown record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSearchModel(tc.text, m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func BenchmarkLoadSearchModel(b *testing.B) {
	m := r4Model()
	for b.Loop() {
		if _, err := parseSearchModel(searchModelText, m); err != nil {
			b.Fatal(err)
		}
	}
}
