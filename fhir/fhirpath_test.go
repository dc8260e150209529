package fhir

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// fpUnsupported lists the R4 search expressions the FHIRPath subset cannot
// compile, by resource type and parameter code, with the reason. It is
// empty: every R4 expression compiles. A regenerated model with an
// expression the subset lacks fails TestCompileEverySearchExpression until
// the evaluator learns it or the parameter is listed here (it is then not
// indexed).
var fpUnsupported = map[string]string{}

// TestCompileEverySearchExpression compiles, for every resource type, the
// expression of every search parameter that applies to it and the
// expressions of composite components, type-checking each against the R4
// model: every element named must exist where the expression names it.
func TestCompileEverySearchExpression(t *testing.T) {
	n := 0
	for _, rt := range ResourceTypes() {
		ct := searchModel().types[rt].compile()
		for _, cp := range ct.params {
			key := rt + "." + cp.p.Code
			switch {
			case cp.p.Unsupported != "":
				if cp.err != nil || cp.expr != nil {
					t.Errorf("%s: unsupported parameter was compiled", key)
				}
			case cp.err != nil && fpUnsupported[key] == "":
				t.Errorf("%s: %v", key, cp.err)
			case cp.err == nil && fpUnsupported[key] != "":
				t.Errorf("%s: compiles now; take it off fpUnsupported", key)
			case cp.err == nil:
				n++
				if len(cp.comps) != len(cp.p.Components) {
					t.Errorf("%s: %d components compiled, want %d", key, len(cp.comps), len(cp.p.Components))
				}
			}
		}
	}
	// 3008 parameters over all types, less _content, _query (146 types
	// each), _text (143) and Location's near.
	if n != 2572 {
		t.Errorf("%d expressions compiled, want 2572", n)
	}
}

// TestSearchValueTypes checks, for every parameter of every type, what
// FHIR types its expression can yield against the conversions ExtractIndex
// makes: each pair of parameter type and value type is either converted or
// listed here as giving no entry, with R4's reason. A new pair fails the
// test until it is decided.
func TestSearchValueTypes(t *testing.T) {
	converted := map[string][]string{
		"string":    {"string", "markdown", "HumanName", "Address"},
		"token":     {"Coding", "CodeableConcept", "Identifier", "ContactPoint", "code", "id", "string", "uri", "boolean"},
		"reference": {"Reference", "canonical", "uri", "Resource"},
		"date":      {"date", "dateTime", "instant", "Period", "Timing"},
		"number":    {"integer", "decimal", "Range"},
		"quantity":  {"Quantity", "Age", "Duration", "Money", "Range"},
		"uri":       {"uri", "url", "canonical"},
	}
	// Pairs R4's expressions produce that the search page's type table
	// does not pair: the value is not of the parameter's kind.
	noEntry := map[string]string{
		"date <- Age":             "Procedure.performed[x] may be an Age: not a point in time",
		"date <- Range":           "Procedure.performed[x] may be a Range of ages",
		"date <- string":          "CarePlan, Immunization and Procedure allow a free-text date",
		"quantity <- SampledData": "R4 lists SampledData for quantity search but gives no rule to match it",
		"reference <- Attachment": "Consent.source[x] may be an Attachment, which references nothing",
		"token <- Quantity":       "Group.characteristic.value[x] may be a Quantity, not a code",
		"token <- Range":          "Group.characteristic.value[x] may be a Range, not a code",
		"token <- Reference":      "Group.characteristic.value[x] may be a Reference, not a code",
	}
	seen := map[string][]string{}
	note := func(ptype string, types fpTypes, where string) {
		for _, ty := range types {
			key := ptype + " <- " + ty.code
			seen[key] = append(seen[key], where)
		}
	}
	for _, rt := range ResourceTypes() {
		for _, cp := range searchModel().types[rt].compile().params {
			if cp.expr == nil {
				continue
			}
			if cp.p.Type != "composite" {
				note(cp.p.Type, cp.expr.types, rt+"."+cp.p.Code)
				continue
			}
			for i, ce := range cp.comps {
				note(cp.p.Components[i].Type, ce.types, rt+"."+cp.p.Code)
			}
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		ptype, vtype, _ := strings.Cut(key, " <- ")
		switch {
		case slices.Contains(converted[ptype], vtype):
		case noEntry[key] != "":
		default:
			t.Errorf("%s (%v): neither converted nor listed as giving no entry", key, seen[key][:min(3, len(seen[key]))])
		}
	}
	for key := range noEntry {
		if seen[key] == nil {
			t.Errorf("%s is listed as giving no entry but no expression yields it", key)
		}
	}
}

// evalFixture evaluates a FHIRPath expression on a fixture resource and
// renders what it selects, one string per item: a primitive's value, a
// complex value's type and JSON, "resolved Type" for a reference resolved
// to its type only.
func evalFixture(t *testing.T, file, expr string) []string {
	t.Helper()
	body, err := os.ReadFile("testdata/search/" + file)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := vjParse(string(body))
	if err != nil {
		t.Fatal(err)
	}
	m := r4Model()
	rt := vjMember(doc, &doc.root, "resourceType").text
	ctx := fpTypes{{code: rt, st: m.types[rt].body}}
	e, err := fpCompile(m, expr, ctx, ctx)
	if err != nil {
		t.Fatalf("compile %q: %v", expr, err)
	}
	root := []fpItem{{node: &doc.root, st: m.types[rt].body, typ: rt}}
	env := &fpEnv{m: m, doc: doc, root: root}
	got := []string{}
	for _, it := range env.eval(e, root) {
		got = append(got, renderItem(doc, it))
	}
	return got
}

func renderItem(doc *vjDoc, it fpItem) string {
	if kind, s, b, ok := fpPrimitive(it); ok {
		switch kind {
		case 'b':
			if b {
				return "true"
			}
			return "false"
		default:
			return s
		}
	}
	if it.node == nil {
		return "resolved " + it.typ
	}
	j, _ := json.Marshal(vjToAny(doc, it.node))
	return it.typ + " " + string(j)
}

func TestFHIRPathEvaluate(t *testing.T) {
	for _, tc := range []struct {
		name, file, expr string
		want             []string
	}{
		{"path through repeating elements", "patient.json", "Patient.name.given", []string{"Zoë", "Marie", "Zoë"}},
		{"contained resources are not entered", "patient.json", "Patient.name.family", []string{"Ångström"}},
		{"Resource root applies to any resource", "patient.json", "Resource.meta.lastUpdated", []string{"2024-03-01T12:00:00.123Z"}},
		{"where with equality", "patient.json", "Patient.telecom.where(system='email')", []string{`ContactPoint {"system":"email","value":"zoe@example.org"}`}},
		{"where on a nested path", "patient.json", "Patient.identifier.where(type.coding.code = 'MR').value", []string{"12345"}},
		{"where with or and exists", "patient.json", "Patient.name.where(use = 'official' or text.exists()).family", []string{"Ångström"}},
		{"choice element by base name", "patient.json", "Patient.deceased", []string{"false"}},
		{"R4's deceased expression on deceasedBoolean false", "patient.json", "Patient.deceased.exists() and Patient.deceased != false", []string{"false"}},
		{"union keeps order and drops duplicates", "patient.json", "Patient.address.city | Patient.address.country | Patient.address.city", []string{"Genève", "CH"}},
		{"indexer", "patient.json", "Patient.name[1].text", []string{"Zoe Angstrom"}},
		{"indexer past the end", "patient.json", "Patient.name[5]", []string{}},
		{"first and last", "patient.json", "Patient.name.given.first() | Patient.telecom.value.last()", []string{"Zoë", "+1 555 0100"}},
		{"count, empty, not", "patient.json", "Patient.name.count() | Patient.photo.empty() | Patient.active.not()", []string{"2", "true", "false"}},
		{"hasValue", "patient.json", "Patient.birthDate.hasValue()", []string{"true"}},
		{"%resource", "patient.json", "%resource.id", []string{"pat-1"}},
		{"$this", "patient.json", "Patient.gender.where($this = 'female')", []string{"female"}},
		{"string escapes", "patient.json", `Patient.address.line.where($this = 'Rue de l\'Église 5')`, []string{"Rue de l'Église 5"}},
		{"resolve() is Type on a relative reference", "patient.json", "Patient.link.other.where(resolve() is Patient).reference", []string{"Patient/pat-0"}},
		{"resolve() of a local reference finds the contained resource", "patient.json", "Patient.generalPractitioner.where(resolve() is Organization).reference", []string{"#org1", "https://other.example.org/fhir/Organization/ext-9"}},
		{"resolve() drops the version", "patient.json", "Patient.generalPractitioner.where(resolve() is Practitioner).reference", []string{"Practitioner/prac-1/_history/4"}},
		{"resolve() by Reference.type", "patient.json", "Patient.managingOrganization.resolve()", []string{"resolved Organization"}},
		{"resolve() of an unknown target", "observation.json", "Observation.specimen.resolve()", []string{}},
		{"ofType on a choice", "observation.json", "Observation.value.ofType(Quantity).value", []string{"1.50"}},
		{"as operator", "observation.json", "(Observation.value as Quantity).unit", []string{"mmol/l"}},
		{"is operator", "observation.json", "Observation.value is Quantity", []string{"true"}},
		{"as() function", "observation.json", "Observation.value.as(CodeableConcept)", []string{}},
		{"ofType skips other types", "observation.json", "Observation.component.value.ofType(CodeableConcept).coding.code", []string{"33586001"}},
		{"SampledData", "observation.json", "Observation.component.value.ofType(SampledData).data", []string{"1 2 3"}},
		{"Period by the choice's base name", "observation.json", "Observation.effective", []string{`Period {"end":"2024-02-29T09:45:00+01:00","start":"2024-02-29T09:30:00+01:00"}`}},
		{"FHIRPath type names", "condition.json", "Condition.onset.ofType(DateTime) | Condition.onset.ofType(System.DateTime)", []string{"2019-06-15T08:30:00-05:00"}},
		{"Age is a Quantity", "condition.json", "Condition.abatement.ofType(Quantity).value", []string{"52"}},
		{"resource type as a leading name of the context", "condition.json", "Condition.code.text", []string{"Type 2 diabetes"}},
		{"relative path", "condition.json", "code.coding.code | recordedDate", []string{"44054006", "2019-07-01"}},
		{"string of an array of primitives", "medicationrequest.json", "MedicationRequest.dosageInstruction.timing.event", []string{"2024-03-02T08:00:00Z", "2024-03-01T20:00:00Z"}},
		{"implies and xor", "patient.json", "(Patient.active implies Patient.gender = 'female') | (Patient.active xor true)", []string{"true", "false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := evalFixture(t, tc.file, tc.expr)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s\n got %q\nwant %q", tc.expr, got, tc.want)
			}
		})
	}
}

func TestFHIRPathExtension(t *testing.T) {
	body := `{"resourceType":"Patient","id":"x","extension":[
		{"url":"http://example.org/birth-place","valueAddress":{"city":"Bern"}},
		{"url":"http://example.org/other","valueString":"no"}],
		"name":[{"family":"A","extension":[{"url":"http://example.org/birth-place","valueString":"nested"}]}]}`
	doc, err := vjParse(body)
	if err != nil {
		t.Fatal(err)
	}
	m := r4Model()
	ctx := fpTypes{{code: "Patient", st: m.types["Patient"].body}}
	e, err := fpCompile(m, "Patient.extension('http://example.org/birth-place').value.ofType(Address).city | Patient.name.extension('http://example.org/birth-place').value", ctx, ctx)
	if err != nil {
		t.Fatal(err)
	}
	root := []fpItem{{node: &doc.root, st: ctx[0].st, typ: "Patient"}}
	env := &fpEnv{m: m, doc: doc, root: root}
	var got []string
	for _, it := range env.eval(e, root) {
		got = append(got, renderItem(doc, it))
	}
	if want := []string{"Bern", "nested"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFHIRPathCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, expr, want string
	}{
		{"unknown element", "Patient.nme", "nme is not an element of Patient"},
		{"element of another type", "Patient.name.system", "system is not an element of HumanName"},
		{"another resource's root", "Observation.code", "Observation does not apply to Patient"},
		{"unknown type", "Patient.deceased.ofType(Nope)", "unknown type Nope"},
		{"type that cannot match", "Patient.name.ofType(Quantity)", "HumanName can never be a Quantity"},
		{"resolve on a non-reference", "Patient.name.resolve()", "holds no references"},
		{"unsupported function", "Patient.name.select(given)", "unsupported function select()"},
		{"unsupported operator", "Patient.name.count() > 1", `unsupported operator ">"`},
		{"unsupported arithmetic", "Patient.name.count() + 1", `unsupported operator "+"`},
		{"unsupported constant", "%ucum", "unsupported external constant"},
		{"wrong arity", "Patient.name.where()", "takes [1] arguments"},
		{"indexer must be a literal", "Patient.name[Patient.name.count()]", "only an integer literal may index"},
		{"extension needs a literal", "Patient.extension(Patient.id)", "string literal"},
		{"syntax: dangling dot", "Patient.name.", "expected a name"},
		{"syntax: unbalanced", "(Patient.name", `expected ")"`},
		{"syntax: unterminated string", "Patient.name.where(use = 'x)", "unterminated string"},
		{"syntax: trailing input", "Patient.name )", `unexpected ")"`},
		{"syntax: unknown character", "Patient.name#", "unexpected character"},
		{"navigation into an unknown resource", "Patient.contained.id", "id is not an element of Resource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := r4Model()
			ctx := fpTypes{{code: "Patient", st: m.types["Patient"].body}}
			_, err := fpCompile(m, tc.expr, ctx, ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("fpCompile(%q) err = %v, want %q", tc.expr, err, tc.want)
			}
		})
	}
}

func TestFHIRPathLexer(t *testing.T) {
	toks, err := fpLex("Patient.`name` /* c */ | %`ext` // end\n != 'a\\u00e9\\n' 1.5 $this {}")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		got = append(got, tk.text)
	}
	want := []string{"Patient", ".", "name", "|", "ext", "!=", "aé\n", "1.5", "$this", "{}", ""}
	if !slices.Equal(got, want) {
		t.Errorf("tokens %q, want %q", got, want)
	}
}

// renderShort renders an item compactly: primitives by value, a few data
// types by their telling fields, other complex values by type.
func renderShort(doc *vjDoc, it fpItem) string {
	if _, _, _, ok := fpPrimitive(it); ok || it.node == nil {
		return renderItem(doc, it)
	}
	str := func(key string) string {
		if v := vjMember(doc, it.node, key); v != nil && (v.kind == vjString || v.kind == vjNumber) {
			return v.text
		}
		return ""
	}
	switch it.typ {
	case "Reference":
		return "Reference " + str("reference")
	case "ContactPoint":
		return "ContactPoint " + str("system") + "|" + str("value")
	case "Quantity", "Age", "Duration", "Money":
		return it.typ + " " + str("value") + " " + str("unit") + str("currency")
	case "Period":
		return "Period " + str("start") + ".." + str("end")
	case "CodeableConcept":
		return "CodeableConcept " + str("text")
	}
	if IsResourceType(it.typ) {
		return it.typ + "/" + str("id")
	}
	return it.typ
}

// TestSearchExpressionsSelect evaluates the model's own expressions, as
// SearchParams gives them, on the fixtures and checks what they select.
func TestSearchExpressionsSelect(t *testing.T) {
	for _, tc := range []struct {
		file, param string
		want        []string
	}{
		{"patient.json", "email", []string{"ContactPoint email|zoe@example.org"}},
		{"patient.json", "phone", []string{"ContactPoint phone|+1 555 0100", "ContactPoint phone|+1 555 0100"}},
		{"patient.json", "deceased", []string{"false"}},
		{"patient.json", "death-date", []string{}},
		{"patient.json", "general-practitioner", []string{"Reference Practitioner/prac-1/_history/4", "Reference #org1", "Reference https://other.example.org/fhir/Organization/ext-9"}},
		{"patient.json", "organization", []string{"Reference "}},
		{"patient.json", "language", []string{"CodeableConcept Français"}},
		{"patient.json", "address-city", []string{"Genève"}},
		{"patient.json", "name", []string{"HumanName", "HumanName"}},
		{"patient.json", "_lastUpdated", []string{"2024-03-01T12:00:00.123Z"}},
		{"patient.json", "_profile", []string{"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|6.1.0"}},
		{"patient.json", "_id", []string{"pat-1"}},
		{"observation.json", "value-quantity", []string{"Quantity 1.50 mmol/l"}},
		{"observation.json", "combo-value-quantity", []string{"Quantity 1.50 mmol/l", "Quantity 107 mmHg", "Quantity 60 mmHg", "SampledData"}},
		{"observation.json", "value-string", []string{}},
		{"observation.json", "patient", []string{"Reference Patient/pat-1"}},
		{"observation.json", "date", []string{"Period 2024-02-29T09:30:00+01:00..2024-02-29T09:45:00+01:00"}},
		{"observation.json", "combo-code-value-quantity", []string{"Observation/obs-bp", "BackboneElement", "BackboneElement", "BackboneElement", "BackboneElement"}},
		{"condition.json", "onset-date", []string{"2019-06-15T08:30:00-05:00"}},
		{"condition.json", "abatement-age", []string{"Age 52 a"}},
		{"condition.json", "onset-age", []string{}},
		{"medicationrequest.json", "code", []string{"CodeableConcept Metformin 500 mg"}},
		{"medicationrequest.json", "medication", []string{}},
		{"medicationrequest.json", "date", []string{"2024-03-02T08:00:00Z", "2024-03-01T20:00:00Z"}},
		{"documentreference.json", "relatesto", []string{"Reference DocumentReference/doc-0", "Reference DocumentReference/doc-00"}},
		{"documentreference.json", "relation", []string{"replaces", "appends"}},
		{"documentreference.json", "location", []string{"http://example.org/docs/d-42.pdf"}},
		{"encounter.json", "length", []string{"Duration 30 min"}},
		{"encounter.json", "date", []string{"Period 2024-02-29..2024-03-01T10:00:00Z"}},
		{"encounter.json", "practitioner", []string{"Reference Practitioner/prac-1"}},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".json")+"."+tc.param, func(t *testing.T) {
			body, err := os.ReadFile("testdata/search/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := vjParse(string(body))
			if err != nil {
				t.Fatal(err)
			}
			rt := vjMember(doc, &doc.root, "resourceType").text
			p, ok := LookupSearchParam(rt, tc.param)
			if !ok {
				t.Fatalf("no parameter %s.%s", rt, tc.param)
			}
			m := r4Model()
			ctx := fpTypes{{code: rt, st: m.types[rt].body}}
			e, err := fpCompile(m, p.Expression, ctx, ctx)
			if err != nil {
				t.Fatal(err)
			}
			root := []fpItem{{node: &doc.root, st: ctx[0].st, typ: rt}}
			env := &fpEnv{m: m, doc: doc, root: root}
			got := []string{}
			for _, it := range env.eval(e, root) {
				got = append(got, renderShort(doc, it))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s\n got %q\nwant %q", p.Expression, got, tc.want)
			}
		})
	}
}
