package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Builders for a miniature set of StructureDefinitions.

type obj = map[string]any

func sysString(fhirType string) []obj {
	return []obj{{"code": systemTypes + "String", "extension": []obj{{"url": fhirTypeExt, "valueUrl": fhirType}}}}
}

func el(path string, min int, max string, types ...obj) obj {
	e := obj{"id": path, "path": path, "min": min, "max": max}
	if len(types) > 0 {
		e["type"] = types
	}
	return e
}

func code(c string, targets ...string) obj {
	t := obj{"code": c}
	if len(targets) > 0 {
		t["targetProfile"] = targets
	}
	return t
}

func sd(name, kind, base string, abstract bool, diff ...obj) obj {
	s := obj{
		"resourceType": "StructureDefinition",
		"url":          sdPrefix + name,
		"name":         name,
		"type":         name,
		"kind":         kind,
		"abstract":     abstract,
		"fhirVersion":  "4.0.1",
		"differential": obj{"element": append([]obj{el(name, 0, "*")}, diff...)},
		"snapshot":     obj{"element": []obj{el(name, 0, "*")}},
	}
	if base != "" {
		s["baseDefinition"] = sdPrefix + base
		s["derivation"] = "specialization"
	}
	return s
}

func bound(e obj, strength, valueSet string) obj {
	e["binding"] = obj{"strength": strength, "valueSet": valueSet}
	return e
}

func primitive(name, regex string) obj {
	t := obj{"code": systemTypes + "String", "extension": []obj{{"url": fhirTypeExt, "valueUrl": name}, {"url": regexExt, "valueString": regex}}}
	return sd(name, "primitive-type", "Element", false, el(name+".value", 0, "1", t))
}

func writeBundle(t *testing.T, dir, name string, sds ...obj) {
	t.Helper()
	var entries []obj
	for _, s := range sds {
		entries = append(entries, obj{"resource": s})
	}
	b, err := json.Marshal(obj{"resourceType": "Bundle", "entry": entries})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Builders for ValueSets and CodeSystems.

func codeSystem(url, content string, concepts ...obj) obj {
	return obj{"resourceType": "CodeSystem", "url": url, "version": "1", "content": content, "concept": concepts}
}

// csConcept makes a CodeSystem concept; a code ending in "!" is
// notSelectable (the "!" is dropped).
func csConcept(code string, children ...obj) obj {
	c := obj{"code": strings.TrimSuffix(code, "!")}
	if strings.HasSuffix(code, "!") {
		c["property"] = []obj{{"code": "notSelectable", "valueBoolean": true}}
	}
	if len(children) > 0 {
		c["concept"] = children
	}
	return c
}

func valueSetDefinition(url string, include []obj, exclude ...obj) obj {
	compose := obj{"include": include}
	if len(exclude) > 0 {
		compose["exclude"] = exclude
	}
	return obj{"resourceType": "ValueSet", "url": url, "version": "1", "compose": compose}
}

// system includes a whole code system or, with codes, those concepts.
func system(url string, codes ...string) obj {
	s := obj{"system": url}
	if len(codes) > 0 {
		var concepts []obj
		for _, c := range codes {
			concepts = append(concepts, obj{"code": c})
		}
		s["concept"] = concepts
	}
	return s
}

// terminologyFixture is what the miniature's bindings resolve against.
func terminologyFixture() []obj {
	return []obj{
		codeSystem("http://example.org/cs/a", "complete", csConcept("a"), csConcept("group!", csConcept("b"), csConcept("c"))),
		valueSetDefinition("http://example.org/ValueSet/kinds",
			[]obj{system("http://example.org/cs/a"), system("http://example.org/cs/ext", "z")},
			system("http://example.org/cs/a", "c")),
		valueSetDefinition("http://example.org/ValueSet/external", []obj{system("http://snomed.info/sct")}),
	}
}

// miniature returns type and resource definitions in the shape R4 has.
func miniature() (types, resources []obj) {
	types = []obj{
		sd("Element", "complex-type", "", true,
			el("Element.id", 0, "1", sysString("string")...),
			el("Element.extension", 0, "*", code("Extension"))),
		sd("BackboneElement", "complex-type", "Element", true,
			el("BackboneElement.modifierExtension", 0, "*", code("Extension"))),
		primitive("string", `[ \r\n\t\S]+`),
		primitive("uri", `\S*`),
		primitive("id", `[A-Za-z0-9\-\.]{1,64}`),
		primitive("code", `[^\s]+(\s[^\s]+)*`),
		sd("Extension", "complex-type", "Element", false,
			el("Extension.url", 1, "1", sysString("uri")...),
			el("Extension.value[x]", 0, "1", code("string"), code("Reference"))),
		sd("Reference", "complex-type", "Element", false,
			el("Reference.reference", 0, "1", code("string"))),
		sd("Meta", "complex-type", "Element", false,
			el("Meta.versionId", 0, "1", code("id"))),
	}
	// A constraint profile and a later version's type are left out.
	simple := sd("SimpleThing", "complex-type", "Element", false)
	simple["derivation"] = "constraint"
	later := sd("Later", "complex-type", "Element", false)
	later["fhirVersion"] = "4.3.0"
	types = append(types, simple, later)

	resources = []obj{
		sd("Resource", "resource", "", true,
			el("Resource.id", 0, "1", sysString("string")...),
			el("Resource.meta", 0, "1", code("Meta"))),
		sd("DomainResource", "resource", "Resource", true,
			el("DomainResource.contained", 0, "*", code("Resource")),
			el("DomainResource.extension", 0, "*", code("Extension"))),
		sd("Thing", "resource", "DomainResource", false,
			el("Thing.status", 1, "1", code("string")),
			el("Thing.owner", 0, "1", code("Reference", sdPrefix+"Thing", "https://vendor.example/StructureDefinition/Bot")),
			el("Thing.part", 0, "*", code("BackboneElement")),
			el("Thing.part.name", 1, "1", code("string")),
			el("Thing.part.part", 0, "*", obj{}),
			el("Thing.added", 0, "1", code("string")),
			// Required bindings of code elements are checked when the
			// value set can be enumerated; other bindings are not.
			bound(el("Thing.kind", 0, "*", code("code")), "required", "http://example.org/ValueSet/kinds|1"),
			bound(el("Thing.format", 0, "1", code("code")), "required", "http://example.org/ValueSet/external|1"),
			bound(el("Thing.label", 0, "1", code("string")), "required", "http://example.org/ValueSet/kinds|1"),
			bound(el("Thing.hint", 0, "1", code("code")), "preferred", "http://example.org/ValueSet/kinds|1"),
			bound(el("Thing.part.mood", 0, "1", code("code")), "required", "http://example.org/ValueSet/kinds")),
	}
	// Thing.part.part refers back to Thing.part.
	diff := resources[2]["differential"].(obj)["element"].([]obj)
	delete(diff[5], "type")
	diff[5]["contentReference"] = "#Thing.part"
	// The published snapshot carries an element the differential lacks.
	resources[2]["snapshot"] = obj{"element": []obj{el("Thing", 0, "*"), el("Thing.vendorOnly", 0, "1", code("string"))}}
	return types, resources
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	types, resources := miniature()
	writeBundle(t, dir, "profiles-types.json", types...)
	writeBundle(t, dir, "profiles-resources.json", resources...)
	writeBundle(t, dir, "valuesets.json", terminologyFixture()...)
	writeBundle(t, dir, "v3-codesystems.json")
	writeBundle(t, dir, "v2-tables.json")
	out := filepath.Join(dir, "model.txt")
	if err := run(dir, out, "test-source", false, map[string]string{"Thing.added": "test"}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{
		"# FHIR R4 model for package fhir. Generated by fhir/internal/gen; DO NOT EDIT.",
		"# source: test-source",
		"# format: see fhir/definitions.go",
		"fhir 4.0.1",
		"# value sets of required bindings (b records below), codes in definition order",
		"valueset kinds http://example.org/ValueSet/kinds|1 a b z",
		`primitive code string [^\s]+(\s[^\s]+)*`,
		`primitive id string [A-Za-z0-9\-\.]{1,64}`,
		`primitive string string [ \r\n\t\S]+`,
		`primitive uri string \S*`,
		"abstract-type BackboneElement",
		"e id 0 1 string",
		"e extension 0 * Extension",
		"e modifierExtension 0 * Extension",
		"abstract-type Element",
		"e id 0 1 string",
		"e extension 0 * Extension",
		"type Extension",
		"e id 0 1 string",
		"e extension 0 * Extension",
		"e url 1 1 uri",
		"e value[x] 0 1 string,Reference",
		"type Meta",
		"e id 0 1 string",
		"e extension 0 * Extension",
		"e versionId 0 1 id",
		"type Reference",
		"e id 0 1 string",
		"e extension 0 * Extension",
		"e reference 0 1 string",
		"abstract-resource DomainResource",
		"e id 0 1 id",
		"e meta 0 1 Meta",
		"e contained 0 * Resource",
		"e extension 0 * Extension",
		"abstract-resource Resource",
		"e id 0 1 id",
		"e meta 0 1 Meta",
		"resource Thing",
		"e id 0 1 id",
		"e meta 0 1 Meta",
		"e contained 0 * Resource",
		"e extension 0 * Extension",
		"e status 1 1 string",
		"e owner 0 1 Reference(Thing)",
		"e part 0 * BackboneElement",
		"e part.id 0 1 string",
		"e part.extension 0 * Extension",
		"e part.modifierExtension 0 * Extension",
		"e part.name 1 1 string",
		"e part.part 0 * #Thing.part",
		"e part.mood 0 1 code",
		"b kinds",
		"e kind 0 * code",
		"b kinds",
		"e format 0 1 code",
		"e label 0 1 string",
		"e hint 0 1 code",
	}
	if !slices.Equal(got, want) {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestGenerateReport(t *testing.T) {
	types, resources := miniature()
	all := definitions(t, types, resources)
	m, err := buildModel(all, map[string]string{"Thing.added": "test"})
	if err != nil {
		t.Fatal(err)
	}
	report := strings.Join(append(m.notes, compareSnapshots(m)...), "\n")
	for _, w := range []string{
		"Thing.added: dropped (test)",
		"Thing.owner: dropped target https://vendor.example/StructureDefinition/Bot",
		"Thing.vendorOnly: only in the published snapshot (dropped)",
		"Thing.status: not in the published snapshot",
	} {
		if !strings.Contains(report, w) {
			t.Errorf("report lacks %q:\n%s", w, report)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(types, resources []obj) ([]obj, []obj)
		drop   map[string]string
		want   string
	}{
		{"stale drop list", nil, map[string]string{"Thing.gone": "test"}, "not in the input"},
		{"unknown type", func(ty, rs []obj) ([]obj, []obj) {
			rs[2]["differential"].(obj)["element"] = append(rs[2]["differential"].(obj)["element"].([]obj), el("Thing.x", 0, "1", code("Nope")))
			return ty, rs
		}, nil, `type "Nope" is not defined`},
		{"orphan element", func(ty, rs []obj) ([]obj, []obj) {
			rs[2]["differential"].(obj)["element"] = append(rs[2]["differential"].(obj)["element"].([]obj), el("Thing.a.b", 0, "1", code("string")))
			return ty, rs
		}, nil, "parent element not defined"},
		{"element without type", func(ty, rs []obj) ([]obj, []obj) {
			rs[2]["differential"].(obj)["element"] = append(rs[2]["differential"].(obj)["element"].([]obj), el("Thing.y", 0, "1"))
			return ty, rs
		}, nil, "lacks cardinality or type"},
		{"sliced element", func(ty, rs []obj) ([]obj, []obj) {
			e := el("Thing.z", 0, "1", code("string"))
			e["id"] = "Thing.z:slice"
			rs[2]["differential"].(obj)["element"] = append(rs[2]["differential"].(obj)["element"].([]obj), e)
			return ty, rs
		}, nil, "sliced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			types, resources := miniature()
			if tc.change != nil {
				types, resources = tc.change(types, resources)
			}
			all := definitions(t, types, resources)
			drop := tc.drop
			if drop == nil {
				drop = map[string]string{"Thing.added": "test"}
			}
			_, err := buildModel(all, drop)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// terminologyOf indexes ValueSets and CodeSystems as readTerminology does.
func terminologyOf(t *testing.T, resources ...obj) *terminology {
	t.Helper()
	var entries []obj
	for _, r := range resources {
		entries = append(entries, obj{"resource": r})
	}
	b, err := json.Marshal(obj{"resourceType": "Bundle", "entry": entries})
	if err != nil {
		t.Fatal(err)
	}
	terms := newTerminology()
	if err := terms.add("test.json", b); err != nil {
		t.Fatal(err)
	}
	return terms
}

func TestTerminologyExpand(t *testing.T) {
	const cs, other, vs = "http://example.org/cs/a", "http://example.org/cs/b", "http://example.org/ValueSet/test"
	a := codeSystem(cs, "complete", csConcept("one"), csConcept("group!", csConcept("two", csConcept("three"))), csConcept("four"))
	b := codeSystem(other, "complete", csConcept("four"), csConcept("five"))
	withFilter := system(cs)
	withFilter["filter"] = []obj{{"property": "concept", "op": "is-a", "value": "group"}}
	importing := func(refs ...string) obj { return obj{"valueSet": refs} }
	withExpansion := func(v obj, codes ...string) obj {
		var contains []obj
		for _, c := range codes {
			contains = append(contains, obj{"system": cs, "code": c})
		}
		v["expansion"] = obj{"contains": contains}
		return v
	}
	laterVersion := codeSystem("http://hl7.org/fhir/later", "complete", csConcept("x"))
	laterVersion["version"] = "5.0.0"
	for _, tc := range []struct {
		name      string
		resources []obj
		want      []string // codes in order, or nil
		why       string   // words of the reason when not enumerable
	}{
		{"whole code system, nested concepts, not the notSelectable group",
			[]obj{a, valueSetDefinition(vs, []obj{system(cs)})}, []string{"one", "two", "three", "four"}, ""},
		{"explicit concepts, even from a system defined elsewhere",
			[]obj{valueSetDefinition(vs, []obj{system("http://unitsofmeasure.org", "s", "min")})}, []string{"s", "min"}, ""},
		{"several includes merged without duplicates",
			[]obj{a, b, valueSetDefinition(vs, []obj{system(cs), system(other)})}, []string{"one", "two", "three", "four", "five"}, ""},
		{"exclude",
			[]obj{a, valueSetDefinition(vs, []obj{system(cs)}, system(cs, "two", "four"))}, []string{"one", "three"}, ""},
		{"excluded value set",
			[]obj{a, b, valueSetDefinition(vs, []obj{system(cs)}, importing("http://example.org/ValueSet/b")),
				valueSetDefinition("http://example.org/ValueSet/b", []obj{system(other)})}, []string{"one", "two", "three"}, ""},
		{"imported value sets, recursively",
			[]obj{a, b, valueSetDefinition(vs, []obj{importing("http://example.org/ValueSet/mid|1"), system(other, "five")}),
				valueSetDefinition("http://example.org/ValueSet/mid", []obj{importing("http://example.org/ValueSet/a")}),
				valueSetDefinition("http://example.org/ValueSet/a", []obj{system(cs)})}, []string{"one", "two", "three", "four", "five"}, ""},
		{"system and value set in one include intersect",
			[]obj{a, b, valueSetDefinition(vs, []obj{{"system": cs, "valueSet": []string{"http://example.org/ValueSet/b"}}}),
				valueSetDefinition("http://example.org/ValueSet/b", []obj{system(other)})}, []string{"four"}, ""},
		{"published expansion agrees",
			[]obj{a, withExpansion(valueSetDefinition(vs, []obj{system(cs)}), "four", "three", "two", "one")}, []string{"one", "two", "three", "four"}, ""},

		{"filter", []obj{a, valueSetDefinition(vs, []obj{withFilter})}, nil, "filter on " + cs},
		{"external code system", []obj{valueSetDefinition(vs, []obj{system("urn:ietf:bcp:13")})}, nil, "code system urn:ietf:bcp:13 is not in the definitions"},
		{"code system not complete", []obj{codeSystem(cs, "fragment", csConcept("one")), valueSetDefinition(vs, []obj{system(cs)})}, nil, `content "fragment"`},
		{"filter in an imported value set", []obj{a, valueSetDefinition(vs, []obj{importing("http://example.org/ValueSet/f")}),
			valueSetDefinition("http://example.org/ValueSet/f", []obj{withFilter})}, nil, "filter"},
		{"filter in an exclude", []obj{a, valueSetDefinition(vs, []obj{system(cs)}, withFilter)}, nil, "exclude: filter"},
		{"missing import", []obj{valueSetDefinition(vs, []obj{importing("http://example.org/ValueSet/gone")})}, nil, "not in the definitions"},
		{"import of another version", []obj{a, valueSetDefinition(vs, []obj{importing("http://example.org/ValueSet/a|2")}),
			valueSetDefinition("http://example.org/ValueSet/a", []obj{system(cs)})}, nil, "version"},
		{"circular import", []obj{valueSetDefinition(vs, []obj{importing(vs)})}, nil, "imports itself"},
		{"published expansion disagrees", []obj{a, withExpansion(valueSetDefinition(vs, []obj{system(cs)}), "one")}, nil, "published expansion"},
		{"code system defined twice", []obj{a, a, valueSetDefinition(vs, []obj{system(cs)})}, nil, "more than once"},
		{"later version's code system dropped", []obj{laterVersion, valueSetDefinition(vs, []obj{system("http://hl7.org/fhir/later")})}, nil, "not in the definitions"},
		{"code with white space", []obj{valueSetDefinition(vs, []obj{system(cs, "a b")})}, nil, "cannot be written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := terminologyOf(t, tc.resources...).expand(vs, nil)
			if tc.want != nil && (why != "" || !slices.Equal(got, tc.want)) {
				t.Errorf("expand = %q (%s), want %q", got, why, tc.want)
			}
			if tc.want == nil && (got != nil || !strings.Contains(why, tc.why)) {
				t.Errorf("expand = %q (%q), want not enumerable: %q", got, why, tc.why)
			}
		})
	}
}

// buildMiniature builds the miniature model as run does, before terminology.
func buildMiniature(t *testing.T) *model {
	t.Helper()
	types, resources := miniature()
	all := definitions(t, types, resources)
	m, err := buildModel(all, map[string]string{"Thing.added": "test"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBindTerminologyReport(t *testing.T) {
	m := buildMiniature(t)
	if err := bindTerminology(m, terminologyOf(t, terminologyFixture()...), nil); err != nil {
		t.Fatal(err)
	}
	report := strings.Join(m.notes, "\n")
	for _, w := range []string{
		"http://example.org/ValueSet/external|1: not enumerable, not checked (code system http://snomed.info/sct is not in the definitions): Thing.format",
		"terminology: 2 code elements with a required binding checked against 1 enumerated value sets; 1 elements bound to 1 value sets not checked",
	} {
		if !strings.Contains(report, w) {
			t.Errorf("report lacks %q:\n%s", w, report)
		}
	}
}

func TestBindTerminologyFixes(t *testing.T) {
	const kinds, other = "http://example.org/ValueSet/kinds|1", "http://example.org/ValueSet/other|1"
	terms := func(t *testing.T) *terminology {
		return terminologyOf(t, append(terminologyFixture(),
			valueSetDefinition("http://example.org/ValueSet/other", []obj{system("http://example.org/cs/x", "p", "q")}))...)
	}
	t.Run("applied", func(t *testing.T) {
		m := buildMiniature(t)
		fixes := map[string]bindingFix{"Thing.kind": {from: kinds, to: other, why: "test"}}
		if err := bindTerminology(m, terms(t), fixes); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, vs := range m.valueSets {
			names = append(names, vs.name+" "+strings.Join(vs.paths, ","))
		}
		if want := []string{"kinds Thing.part.mood", "other Thing.kind"}; !slices.Equal(names, want) {
			t.Errorf("value sets %q, want %q", names, want)
		}
		if report := strings.Join(m.notes, "\n"); !strings.Contains(report, "Thing.kind: binding "+kinds+" replaced by "+other+" (test)") {
			t.Errorf("report lacks the fix:\n%s", report)
		}
	})
	for _, tc := range []struct {
		name  string
		fixes map[string]bindingFix
		want  string
	}{
		{"fix for a binding the input no longer has", map[string]bindingFix{"Thing.kind": {from: other, to: kinds}}, "review r4Bindings"},
		{"fix for an element without a required code binding", map[string]bindingFix{"Thing.label": {from: kinds, to: other}}, "review r4Bindings"},
		{"binding to another version of the value set", nil, `definitions have version "1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := buildMiniature(t)
			if tc.fixes == nil {
				for _, e := range m.byName["Thing"].elements {
					if e.path == "Thing.kind" {
						e.binding = &binding{Strength: "required", ValueSet: "http://example.org/ValueSet/kinds|5.0.0"}
					}
				}
			}
			err := bindTerminology(m, terms(t), tc.fixes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// definitions reads miniature StructureDefinitions as the generator reads
// the published ones.
func definitions(t *testing.T, types, resources []obj) []*structureDefinition {
	t.Helper()
	var all []*structureDefinition
	for _, o := range append(types, resources...) {
		b, _ := json.Marshal(o)
		s := new(structureDefinition)
		if err := json.Unmarshal(b, s); err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	return all
}
