package fhir

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// r4ResourceCount is the number of concrete resource types in FHIR R4
// 4.0.1 (Account ... VisionPrescription; Resource and DomainResource are
// abstract).
const r4ResourceCount = 146

func TestResourceTypes(t *testing.T) {
	got := ResourceTypes()
	if len(got) != r4ResourceCount {
		t.Fatalf("len(ResourceTypes()) = %d, want %d", len(got), r4ResourceCount)
	}
	if !slices.IsSorted(got) {
		t.Error("ResourceTypes() is not sorted")
	}
	if got[0] != "Account" || got[len(got)-1] != "VisionPrescription" {
		t.Errorf("first/last = %s/%s", got[0], got[len(got)-1])
	}
	got[0] = "Changed"
	if ResourceTypes()[0] != "Account" {
		t.Error("ResourceTypes returned the model's own slice")
	}
}

func TestIsResourceType(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"Patient", true},
		{"Observation", true},
		{"Bundle", true},
		{"Parameters", true},
		{"Binary", true},
		{"EffectEvidenceSynthesis", true},
		{"MedicinalProductUndesirableEffect", true},
		{"patient", false},
		{"PATIENT", false},
		{"", false},
		{"Resource", false},
		{"DomainResource", false},
		{"MetadataResource", false},
		{"SubscriptionStatus", false}, // R4B/R5, shipped alongside R4 in the source package
		{"HumanName", false},
		{"string", false},
		{"Project", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsResourceType(tc.name); got != tc.want {
				t.Errorf("IsResourceType(%q) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}

func TestIsPrimitiveType(t *testing.T) {
	for name, want := range map[string]bool{
		"string": true, "dateTime": true, "xhtml": true, "positiveInt": true,
		"String": false, "HumanName": false, "Patient": false, "Element": false,
	} {
		if got := IsPrimitiveType(name); got != want {
			t.Errorf("IsPrimitiveType(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestLookupElement(t *testing.T) {
	typ := func(code string, targets ...string) ElementType {
		return ElementType{Code: code, Targets: targets}
	}
	for _, tc := range []struct {
		name string
		path string
		want ElementDefinition
	}{
		{"primitive element", "Patient.birthDate",
			ElementDefinition{Path: "Patient.birthDate", Name: "birthDate", Types: []ElementType{typ("date")}, Max: 1, Summary: true}},
		{"resource id is an id", "Patient.id",
			ElementDefinition{Path: "Patient.id", Name: "id", Types: []ElementType{typ("id")}, Max: 1, Summary: true}},
		{"through a data type", "Patient.name.given",
			ElementDefinition{Path: "HumanName.given", Name: "given", Types: []ElementType{typ("string")}, Max: Unbounded, Summary: true}},
		{"backbone element", "Patient.contact",
			ElementDefinition{Path: "Patient.contact", Name: "contact", Types: []ElementType{typ("BackboneElement")}, Max: Unbounded}},
		{"required element", "Observation.status",
			ElementDefinition{Path: "Observation.status", Name: "status", Types: []ElementType{typ("code")}, Min: 1, Max: 1, Summary: true, Modifier: true}},
		{"reference targets", "Patient.managingOrganization",
			ElementDefinition{Path: "Patient.managingOrganization", Name: "managingOrganization", Types: []ElementType{typ("Reference", "Organization")}, Max: 1, Summary: true}},
		{"choice by base name", "Patient.deceased",
			ElementDefinition{Path: "Patient.deceased[x]", Name: "deceased", Choice: true, Types: []ElementType{typ("boolean"), typ("dateTime")}, Max: 1, Summary: true, Modifier: true}},
		{"choice by definition name", "Patient.deceased[x]",
			ElementDefinition{Path: "Patient.deceased[x]", Name: "deceased", Choice: true, Types: []ElementType{typ("boolean"), typ("dateTime")}, Max: 1, Summary: true, Modifier: true}},
		{"choice narrowed by JSON name", "Observation.valueQuantity",
			ElementDefinition{Path: "Observation.value[x]", Name: "value", Choice: true, Types: []ElementType{typ("Quantity")}, Max: 1, Summary: true}},
		{"through a narrowed choice", "Observation.valueQuantity.unit",
			ElementDefinition{Path: "Quantity.unit", Name: "unit", Types: []ElementType{typ("string")}, Max: 1, Summary: true}},
		{"content reference", "Questionnaire.item.item",
			ElementDefinition{Path: "Questionnaire.item.item", Name: "item", Types: []ElementType{typ("BackboneElement")}, Max: Unbounded, ContentReference: "#Questionnaire.item"}},
		{"through a content reference", "Questionnaire.item.item.item.linkId",
			ElementDefinition{Path: "Questionnaire.item.linkId", Name: "linkId", Types: []ElementType{typ("string")}, Min: 1, Max: 1}},
		{"content reference to a sibling branch", "ValueSet.compose.exclude.system",
			ElementDefinition{Path: "ValueSet.compose.include.system", Name: "system", Types: []ElementType{typ("uri")}, Max: 1, Summary: true}},
		{"abstract base", "Resource.meta.lastUpdated",
			ElementDefinition{Path: "Meta.lastUpdated", Name: "lastUpdated", Types: []ElementType{typ("instant")}, Max: 1, Summary: true}},
		{"domain resource", "DomainResource.text",
			ElementDefinition{Path: "DomainResource.text", Name: "text", Types: []ElementType{typ("Narrative")}, Max: 1}},
		{"extension url is a uri", "Extension.url",
			ElementDefinition{Path: "Extension.url", Name: "url", Types: []ElementType{typ("uri")}, Min: 1, Max: 1}},
		{"element id is a string", "Patient.contact.id",
			ElementDefinition{Path: "Patient.contact.id", Name: "id", Types: []ElementType{typ("string")}, Max: 1}},
		{"inline Element type", "Timing.repeat",
			ElementDefinition{Path: "Timing.repeat", Name: "repeat", Types: []ElementType{typ("Element")}, Max: 1, Summary: true}},
		{"entry resource is any resource", "Bundle.entry.resource",
			ElementDefinition{Path: "Bundle.entry.resource", Name: "resource", Types: []ElementType{typ("Resource")}, Max: 1, Summary: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := LookupElement(tc.path)
			if !ok {
				t.Fatalf("LookupElement(%q) not found", tc.path)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("LookupElement(%q)\n got %+v\nwant %+v", tc.path, got, tc.want)
			}
		})
	}
}

func TestLookupElementNotFound(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"unknown element", "Patient.foo"},
		{"lower-case type", "patient.name"},
		{"type alone", "Patient"},
		{"empty", ""},
		{"unknown type", "Foo.bar"},
		{"below a primitive", "Patient.birthDate.value"},
		{"below a choice of several types", "Observation.value.unit"},
		{"wrong choice type", "Observation.valueHumanName"},
		{"index brackets", "Patient.name[0]"},
		{"trailing dot", "Patient.name."},
		{"not R4: added by the source package", "Meta.project"},
		{"not R4: later version element", "ResearchStudy.studyDesign"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := LookupElement(tc.path); ok {
				t.Errorf("LookupElement(%q) = %+v, want not found", tc.path, got)
			}
		})
	}
}

func TestLookupElementReturnsCopies(t *testing.T) {
	a, _ := LookupElement("Patient.managingOrganization")
	a.Types[0].Targets[0] = "Changed"
	a.Types[0].Code = "Changed"
	b, _ := LookupElement("Patient.managingOrganization")
	if b.Types[0].Code != "Reference" || b.Types[0].Targets[0] != "Organization" {
		t.Errorf("model changed through a returned definition: %+v", b)
	}
}

func TestElementsOf(t *testing.T) {
	names := func(path string) []string {
		t.Helper()
		els, ok := ElementsOf(path)
		if !ok {
			t.Fatalf("ElementsOf(%q) not found", path)
		}
		var out []string
		for _, e := range els {
			out = append(out, e.Name)
		}
		return out
	}
	if got, want := names("Patient")[:9], []string{"id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension", "identifier"}; !slices.Equal(got, want) {
		t.Errorf("Patient starts %v, want %v", got, want)
	}
	if got, want := names("Patient.communication"), []string{"id", "extension", "modifierExtension", "language", "preferred"}; !slices.Equal(got, want) {
		t.Errorf("Patient.communication = %v, want %v", got, want)
	}
	if got, want := names("Patient.name"), names("HumanName"); !slices.Equal(got, want) {
		t.Errorf("Patient.name = %v, want HumanName's %v", got, want)
	}
	if got, want := names("Questionnaire.item.item"), names("Questionnaire.item"); !slices.Equal(got, want) {
		t.Errorf("Questionnaire.item.item = %v, want %v", got, want)
	}
	if got, want := names("Bundle")[:4], []string{"id", "meta", "implicitRules", "language"}; !slices.Equal(got, want) {
		t.Errorf("Bundle (a Resource, not a DomainResource) starts %v", got)
	}
	for _, path := range []string{"string", "Patient.birthDate", "Observation.value", "Nope", "Patient.nope"} {
		if _, ok := ElementsOf(path); ok {
			t.Errorf("ElementsOf(%q) found, want not", path)
		}
	}
}

// TestModelIsR4 pins facts where the source package departs from R4 4.0.1,
// so that a regenerated model that lost a correction fails here.
func TestModelIsR4(t *testing.T) {
	has := func(path string) bool { _, ok := LookupElement(path); return ok }
	for _, path := range []string{"Meta.project", "Meta.author", "Meta.account", "Meta.compartment", "Binary.url",
		"ObservationDefinition.publisher", "DeviceDefinition.classification", "HealthcareService.offeredIn",
		"ResearchStudy.label", "ResearchStudy.studyDesign", "EvidenceVariable.characteristic.linkId"} {
		if has(path) {
			t.Errorf("%s is in the model but not in R4", path)
		}
	}
	for _, path := range []string{"EvidenceVariable.characteristic.definitionReference", "EvidenceVariable.characteristic.groupMeasure",
		"ResearchStudy.arm.name", "ResearchStudy.objective.type"} {
		if !has(path) {
			t.Errorf("R4 element %s is missing", path)
		}
	}
	if e, _ := LookupElement("EvidenceVariable.characteristic"); e.Min != 1 {
		t.Errorf("EvidenceVariable.characteristic min = %d, want 1", e.Min)
	}
	if e, _ := LookupElement("EvidenceVariable.characteristic.description"); e.Types[0].Code != "string" {
		t.Errorf("EvidenceVariable.characteristic.description is %s, want string", e.Types[0].Code)
	}
	if e, _ := LookupElement("Bundle.entry.response.outcome"); e.Types[0].Code != "Resource" {
		t.Errorf("Bundle.entry.response.outcome is %s, want Resource", e.Types[0].Code)
	}
	e, _ := LookupElement("AuditEvent.agent.who")
	if want := []string{"PractitionerRole", "Practitioner", "Organization", "Device", "Patient", "RelatedPerson"}; !slices.Equal(e.Types[0].Targets, want) {
		t.Errorf("AuditEvent.agent.who targets %v, want %v", e.Types[0].Targets, want)
	}
}

// TestModelTerminologyIsR4 pins the value sets that code elements with a
// required binding are checked against, where the source package departs
// from R4 or where a change would reject valid codes.
func TestModelTerminologyIsR4(t *testing.T) {
	m := r4Model()
	valueSet := func(path string) *r4ValueSet {
		t.Helper()
		e, _, ok := m.lookup(path)
		if !ok {
			t.Fatalf("%s not found", path)
		}
		return e.valueSet
	}
	for _, tc := range []struct {
		path, url string
		codes     []string
	}{
		{"Patient.gender", "http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1", []string{"male", "female", "other", "unknown"}},
		{"Patient.contact.gender", "http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1", []string{"male", "female", "other", "unknown"}},
		{"Observation.status", "http://hl7.org/fhir/ValueSet/observation-status|4.0.1",
			[]string{"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}},
		{"Bundle.type", "http://hl7.org/fhir/ValueSet/bundle-type|4.0.1",
			[]string{"document", "message", "transaction", "transaction-response", "batch", "batch-response", "history", "searchset", "collection"}},
		{"Bundle.entry.request.method", "http://hl7.org/fhir/ValueSet/http-verb|4.0.1", []string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}},
		{"Subscription.channel.type", "http://hl7.org/fhir/ValueSet/subscription-channel-type|4.0.1", []string{"rest-hook", "websocket", "email", "sms", "message"}},
		{"Quantity.comparator", "http://hl7.org/fhir/ValueSet/quantity-comparator|4.0.1", []string{"<", "<=", ">=", ">"}},
		{"Age.comparator", "http://hl7.org/fhir/ValueSet/quantity-comparator|4.0.1", []string{"<", "<=", ">=", ">"}},
		// The package's snapshot binds DetectedIssue.status to an R5 value
		// set; R4's differential to the observation statuses.
		{"DetectedIssue.status", "http://hl7.org/fhir/ValueSet/observation-status|4.0.1",
			[]string{"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}},
		// The package's differential binds it to R5's publication-status.
		{"ResearchStudy.status", "http://hl7.org/fhir/ValueSet/research-study-status|4.0.1",
			[]string{"active", "administratively-completed", "approved", "closed-to-accrual", "closed-to-accrual-and-intervention", "completed",
				"disapproved", "in-review", "temporarily-closed-to-accrual", "temporarily-closed-to-accrual-and-intervention", "withdrawn"}},
		// "question" groups the answerable types; it is not a code.
		{"Questionnaire.item.item.type", "http://hl7.org/fhir/ValueSet/item-type|4.0.1",
			[]string{"group", "display", "boolean", "decimal", "integer", "date", "dateTime", "time", "string", "text", "url", "choice", "open-choice", "attachment", "reference", "quantity"}},
	} {
		vs := valueSet(tc.path)
		if vs == nil {
			t.Errorf("%s: not bound", tc.path)
			continue
		}
		if vs.url != tc.url || !slices.Equal(vs.codeList(), tc.codes) {
			t.Errorf("%s: bound to %s %v, want %s %v", tc.path, vs.url, vs.codeList(), tc.url, tc.codes)
		}
	}

	// Resource types: exactly R4's, including the abstract Resource and
	// DomainResource (SearchParameter.base "Resource"), and none of the
	// package's own (Bot, Project, ...).
	resourceTypes := append(ResourceTypes(), "DomainResource", "Resource")
	slices.Sort(resourceTypes)
	for _, path := range []string{"SearchParameter.base", "CapabilityStatement.rest.resource.type", "Questionnaire.subjectType", "GraphDefinition.link.target.type"} {
		got := valueSet(path).codeList()
		slices.Sort(got)
		if !slices.Equal(got, resourceTypes) {
			t.Errorf("%s: %d resource types, want R4's %d", path, len(got), len(resourceTypes))
		}
	}
	// All types: the resource types, every data type and primitive of the
	// model, the constraint profiles R4 lists (SimpleQuantity,
	// MoneyQuantity) and the abstract Type and Any.
	all := valueSet("OperationDefinition.parameter.type")
	for _, name := range append(resourceTypes, "string", "HumanName", "Element", "BackboneElement", "SimpleQuantity", "MoneyQuantity", "Type", "Any") {
		if !all.has(name) {
			t.Errorf("all-types lacks %s", name)
		}
	}
	for name, typ := range m.types {
		if !all.has(name) {
			t.Errorf("all-types lacks %s (%v)", name, typ.kind)
		}
	}
	if n := len(all.codeList()); n != 213 {
		t.Errorf("all-types has %d codes, want 213", n)
	}
	for _, vs := range m.valueSets {
		for _, c := range []string{"Bot", "Project", "ClientApplication", "AccessPolicy", "SubscriptionStatus"} {
			if vs.has(c) {
				t.Errorf("value set %s has %s, not an R4 code", vs.url, c)
			}
		}
	}

	// Not checked: value sets that R4 does not enumerate (mime types,
	// currencies), bindings that are not required, and types other than
	// code.
	for _, path := range []string{"Attachment.contentType", "Binary.contentType", "CapabilityStatement.format", "Money.currency",
		"Resource.language", "Patient.language", "AllergyIntolerance.clinicalStatus", "Extension.valueCode"} {
		if vs := valueSet(path); vs != nil {
			t.Errorf("%s: bound to %s, want not checked", path, vs.url)
		}
	}
}

func TestValueSetHas(t *testing.T) {
	vs := &r4ValueSet{codes: "a ab b-c < <= AFT AFT.early x"}
	for code, want := range map[string]bool{
		"a": true, "ab": true, "b-c": true, "<": true, "<=": true, "AFT": true, "AFT.early": true, "x": true,
		"": false, "b": false, "c": false, "A": false, "aft": false, "AFT.": false, "early": false, "=": false,
		"a ab": false, "ab ": false, " x": false, "a b": false, "xy": false, "a ab b-c < <= AFT AFT.early x": false,
	} {
		if got := vs.has(code); got != want {
			t.Errorf("has(%q) = %v, want %v", code, got, want)
		}
	}
}

// TestModelShape checks properties every R4 definition has.
func TestModelShape(t *testing.T) {
	m := r4Model()
	for _, name := range ResourceTypes() {
		st := m.types[name].body
		for _, el := range []string{"id", "meta", "implicitRules", "language"} {
			if _, ok := st.byJSON[el]; !ok {
				t.Errorf("%s has no %s", name, el)
			}
		}
		domain := name != "Bundle" && name != "Binary" && name != "Parameters"
		if _, ok := st.byJSON["contained"]; ok != domain {
			t.Errorf("%s: contained present = %v, want %v", name, ok, domain)
		}
	}
	for _, st := range m.structs {
		for _, e := range st.elems {
			if e.inline != nil && e.contentRef == "" && e.inline.owner != e {
				t.Errorf("%s: inline struct owned by another element", e.path)
			}
			if e.inline == nil && len(e.types) == 0 {
				t.Errorf("%s: no type", e.path)
			}
			if e.inline != nil && e.contentRef == "" && e.inline.path != e.path {
				t.Errorf("%s: inline struct has path %s", e.path, e.inline.path)
			}
			if e.inline != nil && !slices.ContainsFunc(e.inline.elems, func(c *r4Element) bool { return c.name == "id" }) {
				t.Errorf("%s: inline struct has no id", e.path)
			}
			if strings.Contains(e.name, ".") {
				t.Errorf("%s: bad name %q", e.path, e.name)
			}
		}
	}
	if n := len(m.types["Extension"].body.byJSON); n != 3+50 {
		t.Errorf("Extension has %d JSON names, want 53 (id, extension, url and 50 value types)", n)
	}
}

func TestParseR4ModelErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"no version", "type A\n", "no fhir version"},
		{"wrong version", "fhir 5.0.0\n", "unsupported FHIR version"},
		{"unknown record", "fhir 4.0.1\nwhat\n", "unknown record"},
		{"element outside a type", "fhir 4.0.1\ne a 0 1 string\n", "outside a type"},
		{"orphan element", "fhir 4.0.1\nprimitive string string\ntype A\ne b.c 0 1 string\n", "parent not defined"},
		{"bad max", "fhir 4.0.1\nprimitive string string\ntype A\ne b 0 2 string\n", "bad max"},
		{"unknown type", "fhir 4.0.1\ntype A\ne b 0 1 Nope\n", "unknown type"},
		{"bad content reference", "fhir 4.0.1\ntype A\ne b 0 1 #A.c\n", "content reference"},
		{"duplicate type", "fhir 4.0.1\ntype A\ntype A\n", "defined twice"},
		{"choice without types", "fhir 4.0.1\nprimitive string string\ntype A\ne b[x] 0 1 string\n", "choice marker"},
		{"binding of a string", "fhir 4.0.1\nvalueset vs u x\nprimitive string string\ntype A\ne b 0 1 string\nb vs\n", "binding not after an element of type code"},
		{"binding outside a type", "fhir 4.0.1\nvalueset vs u x\nprimitive code string\nb vs\n", "binding not after"},
		{"binding twice", "fhir 4.0.1\nvalueset vs u x\nprimitive code string\ntype A\ne b 0 1 code\nb vs\nb vs\n", "binding not after"},
		{"unknown value set", "fhir 4.0.1\nprimitive code string\ntype A\ne b 0 1 code\nb vs\n", "unknown value set vs"},
		{"binding without a value set", "fhir 4.0.1\nprimitive code string\ntype A\ne b 0 1 code\nb\n", "malformed binding"},
		{"binding to two value sets", "fhir 4.0.1\nvalueset vs u x\nprimitive code string\ntype A\ne b 0 1 code\nb vs vs\n", "malformed binding"},
		{"value set after its binding", "fhir 4.0.1\nprimitive code string\ntype A\ne b 0 1 code\nb vs\nvalueset vs u x\n", "unknown value set vs"},
		{"value set without codes", "fhir 4.0.1\nvalueset vs u\n", "malformed valueset"},
		{"value set with an empty code", "fhir 4.0.1\nvalueset vs u a  b\n", "malformed valueset"},
		{"value set with a trailing space", "fhir 4.0.1\nvalueset vs u a b \n", "malformed valueset"},
		{"value set twice", "fhir 4.0.1\nvalueset vs u x\nvalueset vs u y\n", "defined twice"},
		{"element after a value set", "fhir 4.0.1\nprimitive code string\ntype A\nvalueset vs u x\ne b 0 1 code\n", "outside a type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseR4Model(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseR4Model: err = %v, want %q", err, tc.want)
			}
		})
	}
}

// BenchmarkLoadModel measures what the first use of the package costs:
// parsing the embedded model.
func BenchmarkLoadModel(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseR4Model(r4ModelText); err != nil {
			b.Fatal(err)
		}
	}
}
