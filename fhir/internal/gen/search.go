package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// The search half of the generator: R4's SearchParameters
// (search-parameters.json) and the Patient compartment
// (compartmentdefinition-patient.json), checked against the structure model
// and written to fhir/searchparams_r4.txt in the format fhir/search.go
// describes.
//
// What is kept: SearchParameters whose url is under spPrefix and whose
// version is 4.0.1, except those listed in notR4Search. The package's own
// search-parameters-medplum.json and search-parameters-uscore.json are not
// read. A parameter shared by several resource types ("clinical-patient")
// has one FHIRPath expression with a branch per type, joined by "|"; each
// type gets only its own branches.
//
// What is checked: every base and target is a type of the model; every
// branch starts at its base (or, relative, at the only base) and its leading
// path (up to the first function or operator) resolves in the model; each
// composite component names a kept parameter of the same base; every
// compartment parameter is a reference parameter of its type; and every
// correction listed below is met, so that a package update that fixes or
// changes one fails loudly. The fhir package's tests go further: they
// compile every expression and type-check it against the model.

const (
	spPrefix          = "http://hl7.org/fhir/SearchParameter/"
	patientCompartURL = "http://hl7.org/fhir/CompartmentDefinition/patient"
	// compartmentSelf is R5's name for "the resource that defines the
	// compartment"; R4 says the same in prose ("the identity of the
	// compartment is the same as the patient").
	compartmentSelf = "{def}"
)

// notR4Search lists SearchParameters that the pinned package adds to R4's
// search-parameters.json under HL7's URLs and version 4.0.1, with the
// reason; they are dropped. (Found by comparing with the file HL7
// published; a later version's parameters are dropped by their version.)
var notR4Search = map[string]string{
	spPrefix + "DetectedIssue-status":        "not an R4 search parameter (R5 adds DetectedIssue-status)",
	spPrefix + "ServiceRequest-order-detail": "not an R4 search parameter (added by the package)",
}

// listFix replaces a list the package changed with R4's: from is what the
// package gives, to what R4 gives.
type listFix struct {
	from, to []string
	why      string
}

// r4SearchTargets restores the reference targets R4 gives where the package
// changed them, by SearchParameter URL.
var r4SearchTargets = map[string]listFix{
	spPrefix + "MeasureReport-subject": {
		from: []string{"Practitioner", "Group", "Organization", "CareTeam", "Device", "Patient", "HealthcareService", "PractitionerRole", "RelatedPerson", "Location"},
		to:   []string{"Practitioner", "Group", "Device", "Patient", "PractitionerRole", "RelatedPerson", "Location"},
		why:  "the package widened the targets to R5's",
	},
	spPrefix + "clinical-patient": {
		from: []string{"Patient"},
		to:   []string{"Patient", "Group"},
		why:  "the package narrowed the targets",
	},
}

// r4Components corrects composites whose component definitions R4 itself
// gets wrong, by SearchParameter URL: from and to are the definitions in
// order; the expressions stay in place. This is an erratum of R4, not an
// edit of the package: the model is what search needs.
var r4Components = map[string]listFix{
	spPrefix + "DocumentReference-relationship": {
		from: []string{spPrefix + "DocumentReference-relatesto", spPrefix + "DocumentReference-relation"},
		to:   []string{spPrefix + "DocumentReference-relation", spPrefix + "DocumentReference-relatesto"},
		why: "R4 pairs the expression code (relatesTo.code, a code) with relatesto, a reference parameter, " +
			"and target (a Reference) with relation, a token parameter; the composite is relation$relatesto",
	},
}

// r4Compartment restores the Patient compartment's parameters where the
// package changed them, by resource type.
var r4Compartment = map[string]listFix{
	"Encounter": {from: []string{"subject"}, to: []string{"patient"}, why: "R4 names the patient parameter"},
	"Task":      {from: []string{"patient", "focus"}, to: nil, why: "Task is not in R4's Patient compartment"},
}

// searchParameterDef is the part of a SearchParameter the generator reads.
type searchParameterDef struct {
	ResourceType string   `json:"resourceType"`
	ID           string   `json:"id"`
	URL          string   `json:"url"`
	Version      string   `json:"version"`
	Code         string   `json:"code"`
	Base         []string `json:"base"`
	Type         string   `json:"type"`
	Expression   string   `json:"expression"`
	XPathUsage   string   `json:"xpathUsage"`
	Target       []string `json:"target"`
	MultipleOr   *bool    `json:"multipleOr"`
	MultipleAnd  *bool    `json:"multipleAnd"`
	Comparator   []string `json:"comparator"`
	Modifier     []string `json:"modifier"`
	Chain        []string `json:"chain"`
	Component    []struct {
		Definition string `json:"definition"`
		Expression string `json:"expression"`
	} `json:"component"`
}

// compartmentDef is the part of a CompartmentDefinition the generator
// reads.
type compartmentDef struct {
	ResourceType string `json:"resourceType"`
	URL          string `json:"url"`
	Version      string `json:"version"`
	Code         string `json:"code"`
	Resource     []struct {
		Code  string   `json:"code"`
		Param []string `json:"param"`
	} `json:"resource"`
}

// searchModel is what the generator writes for search.
type searchModel struct {
	byBase      map[string][]*searchParam // sorted by code
	anyTarget   []string                  // every concrete resource type but Parameters, sorted
	bases       []string                  // sorted; Resource and DomainResource included
	compartment map[string][]string       // resource type -> parameter codes, R4's order
	notes       []string
}

// searchParam is one parameter as it applies to one base.
type searchParam struct {
	def        *searchParameterDef
	name       string // URL without spPrefix
	expression string // this base's branches, joined by " | "
	targets    []string
	components []searchComponent
}

type searchComponent struct {
	name       string // the component parameter's URL without spPrefix
	expression string
}

// runSearch generates the search model file from the definitions in dir,
// with the corrections listed above.
func runSearch(in, out, source string, report bool) error {
	return generateSearch(in, out, source, report, notR4, searchFixes{
		drop: notR4Search, targets: r4SearchTargets, components: r4Components, compartment: r4Compartment,
	})
}

// generateSearch is runSearch with the structure model's drop list (see
// notR4) and the search corrections given.
func generateSearch(in, out, source string, report bool, notR4 map[string]string, fixes searchFixes) error {
	var all []*structureDefinition
	for _, name := range []string{"profiles-types.json", "profiles-resources.json"} {
		sds, err := readBundle(filepath.Join(in, name))
		if err != nil {
			return err
		}
		all = append(all, sds...)
	}
	m, err := buildModel(all, notR4)
	if err != nil {
		return err
	}
	params, err := readSearchParameters(filepath.Join(in, "search-parameters.json"))
	if err != nil {
		return err
	}
	comp, err := readCompartment(filepath.Join(in, "compartmentdefinition-patient.json"))
	if err != nil {
		return err
	}
	sm, err := buildSearch(m, params, comp, fixes)
	if err != nil {
		return err
	}
	if report {
		for _, n := range sm.notes {
			fmt.Fprintln(os.Stderr, n)
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := writeSearch(f, sm, source); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readSearchParameters(path string) ([]*searchParameterDef, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	var out []*searchParameterDef
	for i, e := range b.Entry {
		sp := new(searchParameterDef)
		if err := json.Unmarshal(e.Resource, sp); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", filepath.Base(path), i, err)
		}
		if sp.ResourceType == "SearchParameter" {
			out = append(out, sp)
		}
	}
	return out, nil
}

func readCompartment(path string) (*compartmentDef, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := new(compartmentDef)
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return c, nil
}

// searchFixes are the corrections buildSearch applies (see notR4Search,
// r4SearchTargets, r4Components, r4Compartment); each must be met.
type searchFixes struct {
	drop                             map[string]string
	targets, components, compartment map[string]listFix
}

// buildSearch selects R4's parameters, applies the corrections, splits the
// expressions per base and checks the result against the structure model.
func buildSearch(m *model, defs []*searchParameterDef, comp *compartmentDef, fixes searchFixes) (*searchModel, error) {
	drop, targets, components := fixes.drop, fixes.targets, fixes.components
	sm := &searchModel{byBase: map[string][]*searchParam{}, compartment: map[string][]string{}}
	paths := elementIndex(m)
	isResource := func(name string) bool {
		td := m.byName[name]
		return td != nil && td.sd.Kind == "resource"
	}
	met := map[string]bool{}
	kept := map[string]*searchParameterDef{}
	for _, sp := range defs {
		switch {
		case !strings.HasPrefix(sp.URL, spPrefix):
			sm.notes = append(sm.notes, fmt.Sprintf("search %s: dropped (not an HL7 core parameter)", sp.URL))
			continue
		case drop[sp.URL] != "":
			met[sp.URL] = true
			sm.notes = append(sm.notes, fmt.Sprintf("search %s: dropped (%s)", sp.URL, drop[sp.URL]))
			continue
		case sp.Version != fhirVersion:
			sm.notes = append(sm.notes, fmt.Sprintf("search %s: dropped (version %q is not R4's)", sp.URL, sp.Version))
			continue
		}
		if kept[sp.URL] != nil {
			return nil, fmt.Errorf("search %s: defined twice", sp.URL)
		}
		if fix, ok := targets[sp.URL]; ok {
			if !slices.Equal(sp.Target, fix.from) {
				return nil, fmt.Errorf("search %s: listed in r4SearchTargets with targets %v, but the input has %v; review r4SearchTargets", sp.URL, fix.from, sp.Target)
			}
			met[sp.URL] = true
			sp.Target = fix.to
			sm.notes = append(sm.notes, fmt.Sprintf("search %s: targets %v replaced by %v (%s)", sp.URL, fix.from, fix.to, fix.why))
		}
		if fix, ok := components[sp.URL]; ok {
			var defs []string
			for _, c := range sp.Component {
				defs = append(defs, c.Definition)
			}
			if !slices.Equal(defs, fix.from) || len(fix.to) != len(defs) {
				return nil, fmt.Errorf("search %s: listed in r4Components with %v, but the input has %v; review r4Components", sp.URL, fix.from, defs)
			}
			met["components "+sp.URL] = true
			for i := range sp.Component {
				sp.Component[i].Definition = fix.to[i]
			}
			sm.notes = append(sm.notes, fmt.Sprintf("search %s: component definitions %v replaced by %v (%s)", sp.URL, fix.from, fix.to, fix.why))
		}
		kept[sp.URL] = sp
	}
	for url := range drop {
		if !met[url] {
			return nil, fmt.Errorf("search %s: listed in notR4Search but not in the input; review notR4Search", url)
		}
	}
	for url := range targets {
		if !met[url] {
			return nil, fmt.Errorf("search %s: listed in r4SearchTargets but not in the input; review r4SearchTargets", url)
		}
	}
	for url := range components {
		if !met["components "+url] {
			return nil, fmt.Errorf("search %s: listed in r4Components but not in the input; review r4Components", url)
		}
	}

	narrowed := 0
	for _, sp := range kept {
		if err := checkSearchDef(sp, m, isResource); err != nil {
			return nil, err
		}
		branches, err := splitUnion(sp.Expression)
		if err != nil {
			return nil, fmt.Errorf("search %s: %w", sp.URL, err)
		}
		perBase := map[string][]string{}
		for _, br := range branches {
			base := branchBase(br, sp.Base)
			if base == "" {
				return nil, fmt.Errorf("search %s: branch %q belongs to none of the bases %v", sp.URL, br, sp.Base)
			}
			if err := checkLeadingPath(paths, base, br); err != nil {
				return nil, fmt.Errorf("search %s: %w", sp.URL, err)
			}
			perBase[base] = append(perBase[base], br)
		}
		for _, base := range sp.Base {
			if sp.Expression != "" && len(perBase[base]) == 0 {
				return nil, fmt.Errorf("search %s: no branch of the expression for %s", sp.URL, base)
			}
			p := &searchParam{
				def:        sp,
				name:       strings.TrimPrefix(sp.URL, spPrefix),
				expression: strings.Join(perBase[base], " | "),
				targets:    sp.Target,
			}
			if sp.Type == "reference" {
				p.targets = narrowTargets(paths, base, perBase[base], sp.Target)
				if len(p.targets) < len(sp.Target) {
					narrowed++
				}
			}
			for _, c := range sp.Component {
				cd := kept[c.Definition]
				if cd == nil || !slices.Contains(cd.Base, base) {
					return nil, fmt.Errorf("search %s: component %s is not a parameter of %s", sp.URL, c.Definition, base)
				}
				if c.Expression == "" || strings.ContainsAny(c.Expression, "\r\n") {
					return nil, fmt.Errorf("search %s: component %s has an unusable expression", sp.URL, c.Definition)
				}
				p.components = append(p.components, searchComponent{name: strings.TrimPrefix(c.Definition, spPrefix), expression: c.Expression})
			}
			sm.byBase[base] = append(sm.byBase[base], p)
		}
	}
	for base, ps := range sm.byBase {
		sort.Slice(ps, func(i, j int) bool { return ps[i].def.Code < ps[j].def.Code })
		for i := 1; i < len(ps); i++ {
			if ps[i].def.Code == ps[i-1].def.Code {
				return nil, fmt.Errorf("search: %s has two parameters %s (%s, %s)", base, ps[i].def.Code, ps[i-1].def.URL, ps[i].def.URL)
			}
		}
		sm.bases = append(sm.bases, base)
	}
	sort.Strings(sm.bases)
	// A parameter of Resource or DomainResource applies to every resource
	// that inherits it; a type's own parameter may not reuse its code.
	for _, base := range sm.bases {
		if base == "Resource" || base == "DomainResource" {
			continue
		}
		for _, p := range sm.byBase[base] {
			for _, inherited := range []string{"Resource", "DomainResource"} {
				for _, q := range sm.byBase[inherited] {
					if q.def.Code == p.def.Code {
						return nil, fmt.Errorf("search: %s redefines %s's parameter %s", base, inherited, p.def.Code)
					}
				}
			}
		}
	}
	sm.notes = append(sm.notes, fmt.Sprintf("search: targets narrowed to what the type's expression can select for %d (parameter, type) pairs", narrowed))
	if err := buildCompartment(sm, m, comp, fixes.compartment); err != nil {
		return nil, err
	}
	sort.Strings(sm.notes)
	return sm, nil
}

// checkSearchDef checks what a parameter says apart from its expression.
func checkSearchDef(sp *searchParameterDef, m *model, isResource func(string) bool) error {
	switch sp.Type {
	case "number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special":
	default:
		return fmt.Errorf("search %s: unknown type %q", sp.URL, sp.Type)
	}
	if sp.Code == "" || strings.ContainsAny(sp.Code, " \t:") || len(sp.Base) == 0 {
		return fmt.Errorf("search %s: unusable code %q or no base", sp.URL, sp.Code)
	}
	if name := strings.TrimPrefix(sp.URL, spPrefix); name == "" || strings.ContainsAny(name, " \t:=") {
		return fmt.Errorf("search %s: unusable URL", sp.URL)
	}
	for _, b := range sp.Base {
		if !isResource(b) {
			return fmt.Errorf("search %s: base %s is not a resource type of the model", sp.URL, b)
		}
	}
	for _, t := range sp.Target {
		if !isResource(t) || m.byName[t].sd.Abstract {
			return fmt.Errorf("search %s: target %s is not a resource type of the model", sp.URL, t)
		}
	}
	if (sp.Type == "composite") != (len(sp.Component) > 0) {
		return fmt.Errorf("search %s: components and type %s disagree", sp.URL, sp.Type)
	}
	if len(sp.Target) > 0 && sp.Type != "reference" {
		return fmt.Errorf("search %s: targets on a %s parameter", sp.URL, sp.Type)
	}
	if strings.ContainsAny(sp.Expression, "\r\n") {
		return fmt.Errorf("search %s: expression spans lines", sp.URL)
	}
	for _, list := range [][]string{sp.Target, sp.Comparator, sp.Modifier, sp.Chain} {
		for _, s := range list {
			if s == "" || strings.ContainsAny(s, " \t,=") {
				return fmt.Errorf("search %s: unusable list item %q", sp.URL, s)
			}
		}
	}
	return nil
}

// buildCompartment reads the Patient compartment: which parameters put a
// resource of each type in a patient's compartment.
func buildCompartment(sm *searchModel, m *model, comp *compartmentDef, fixes map[string]listFix) error {
	if comp.ResourceType != "CompartmentDefinition" || comp.URL != patientCompartURL || comp.Version != fhirVersion || comp.Code != "Patient" {
		return fmt.Errorf("compartment: not R4's Patient compartment (%s %s|%s)", comp.ResourceType, comp.URL, comp.Version)
	}
	listed := map[string]bool{}
	met := map[string]bool{}
	for _, r := range comp.Resource {
		td := m.byName[r.Code]
		if td == nil || td.sd.Kind != "resource" || td.sd.Abstract {
			return fmt.Errorf("compartment: %s is not a resource type of the model", r.Code)
		}
		if listed[r.Code] {
			return fmt.Errorf("compartment: %s listed twice", r.Code)
		}
		listed[r.Code] = true
		params := r.Param
		if fix, ok := fixes[r.Code]; ok {
			if !slices.Equal(params, fix.from) {
				return fmt.Errorf("compartment: %s listed in r4Compartment with %v, but the input has %v; review r4Compartment", r.Code, fix.from, params)
			}
			met[r.Code] = true
			params = fix.to
			sm.notes = append(sm.notes, fmt.Sprintf("compartment %s: parameters %v replaced by %v (%s)", r.Code, fix.from, fix.to, fix.why))
		}
		for _, p := range params {
			sp := sm.find(r.Code, p)
			if sp == nil || sp.def.Type != "reference" {
				return fmt.Errorf("compartment: %s.%s is not a reference parameter of %s", r.Code, p, r.Code)
			}
		}
		if r.Code == "Patient" {
			// SPEC (R4 compartmentdefinition-patient): "the identity of
			// the compartment is the same as the patient".
			params = append([]string{compartmentSelf}, params...)
		}
		if len(params) > 0 {
			sm.compartment[r.Code] = params
		}
	}
	for code := range fixes {
		if !met[code] {
			return fmt.Errorf("compartment: %s listed in r4Compartment but not in the input; review r4Compartment", code)
		}
	}
	for _, td := range m.defs {
		if td.sd.Kind == "resource" && !td.sd.Abstract && td.sd.Name != "Parameters" {
			sm.anyTarget = append(sm.anyTarget, td.sd.Name)
		}
		if td.sd.Kind == "resource" && !td.sd.Abstract && !listed[td.sd.Name] {
			sm.notes = append(sm.notes, fmt.Sprintf("compartment: resource type %s is not listed (never in the compartment)", td.sd.Name))
		}
	}
	return nil
}

// find returns the parameter with the code that applies to a resource type,
// its own or inherited.
func (sm *searchModel) find(resourceType, code string) *searchParam {
	for _, base := range []string{resourceType, "DomainResource", "Resource"} {
		for _, p := range sm.byBase[base] {
			if p.def.Code == code {
				return p
			}
		}
	}
	return nil
}

// writeSearch renders the search model in the line format fhir/search.go
// describes.
func writeSearch(w io.Writer, sm *searchModel, source string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# FHIR R4 search parameters and Patient compartment for package fhir. Generated by fhir/internal/gen; DO NOT EDIT.")
	if source != "" {
		fmt.Fprintf(bw, "# source: %s\n", source)
	}
	fmt.Fprintln(bw, "# format: see fhir/search.go")
	fmt.Fprintf(bw, "fhir %s\n", fhirVersion)
	names := slices.Clone(sm.bases)
	for name := range sm.compartment {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, base := range names {
		fmt.Fprintf(bw, "resource %s\n", base)
		if c := sm.compartment[base]; len(c) > 0 {
			fmt.Fprintf(bw, "compartment Patient %s\n", strings.Join(c, " "))
		}
		for _, p := range sm.byBase[base] {
			d := p.def
			line := fmt.Sprintf("p %s %s %s", d.Code, d.Type, p.name)
			switch {
			case sameSet(p.targets, sm.anyTarget):
				// R4's "any resource": every type that a Reference can
				// point to, which leaves out Parameters.
				line += " target=*"
			case len(p.targets) > 0:
				line += " target=" + strings.Join(p.targets, ",")
			}
			if d.XPathUsage != "" && d.XPathUsage != "normal" {
				line += " usage=" + d.XPathUsage
			}
			if len(d.Comparator) > 0 {
				line += " comparator=" + strings.Join(d.Comparator, ",")
			}
			if len(d.Modifier) > 0 {
				line += " modifier=" + strings.Join(d.Modifier, ",")
			}
			if len(d.Chain) > 0 {
				line += " chain=" + strings.Join(d.Chain, ",")
			}
			if d.MultipleOr != nil {
				line += fmt.Sprintf(" multipleOr=%t", *d.MultipleOr)
			}
			if d.MultipleAnd != nil {
				line += fmt.Sprintf(" multipleAnd=%t", *d.MultipleAnd)
			}
			if p.expression != "" {
				line += " : " + p.expression
			}
			fmt.Fprintln(bw, line)
			for _, c := range p.components {
				fmt.Fprintf(bw, "c %s : %s\n", c.name, c.expression)
			}
		}
	}
	return bw.Flush()
}
