package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Terminology: the codes that a code element with a required binding may
// take.
//
// For every element whose only type is the primitive code and whose binding
// strength is required, the generator resolves the bound ValueSet into its
// codes, but only when the definitions give them exactly: every
// compose.include (and compose.exclude) entry must list its concepts or name
// a whole CodeSystem that the terminology files define with content
// "complete" (all its concepts, nested ones too, except those marked
// notSelectable or abstract, which are groupings rather than codes), and
// valueSet imports must resolve the same way. A value set that uses a
// filter, names a code system defined elsewhere (SNOMED CT, UCUM,
// BCP-47 languages, BCP-13 mime types, ISO 4217 currencies) or is otherwise
// not exactly enumerable is not checked at all, so that a valid code is
// never rejected; -report lists each with the reason. Where a value set
// carries a published expansion, the codes must agree with it.
//
// Codes from several systems are merged: a code element carries no system.

// terminologyFiles are the Bundles of ValueSets and CodeSystems read
// besides the profiles (from the same directory).
var terminologyFiles = []string{"valuesets.json", "v3-codesystems.json", "v2-tables.json"}

// r4Bindings corrects required bindings of code elements that the pinned
// package changed in the R4 differentials, with R4's binding and the
// reason. As with notR4, each must be met with exactly the binding named
// in from, so that a package update that changes it fails loudly and the
// list gets reviewed. (A binding whose version does not match the value
// set the definitions have is an error until listed here; the snapshot
// edits are found by -report.)
var r4Bindings = map[string]bindingFix{
	"ResearchStudy.status": {
		from: "http://hl7.org/fhir/ValueSet/publication-status|5.0.0",
		to:   "http://hl7.org/fhir/ValueSet/research-study-status|4.0.1",
		why:  "R5's binding back-ported into the R4 differential",
	},
}

type bindingFix struct{ from, to, why string }

// valueSet is an enumerated value set as the model file records it.
type valueSet struct {
	name  string   // the last segment of the canonical URL; elements refer to it
	url   string   // canonical URL, with "|version" when the definition has one
	codes []string // in definition order, without duplicates
	paths []string // the elements bound to it
}

// valueSetDef is the part of a ValueSet the generator reads.
type valueSetDef struct {
	URL     string `json:"url"`
	Version string `json:"version"`
	Compose *struct {
		Include []composeSet `json:"include"`
		Exclude []composeSet `json:"exclude"`
	} `json:"compose"`
	Expansion *struct {
		Contains []expansionItem `json:"contains"`
	} `json:"expansion"`
}

// composeSet is one ValueSet.compose.include or exclude entry.
type composeSet struct {
	System  string `json:"system"`
	Version string `json:"version"`
	Concept []struct {
		Code string `json:"code"`
	} `json:"concept"`
	Filter   []json.RawMessage `json:"filter"`
	ValueSet []string          `json:"valueSet"`
}

type expansionItem struct {
	Code     string          `json:"code"`
	Abstract bool            `json:"abstract"`
	Contains []expansionItem `json:"contains"`
}

// codeSystemDef is the part of a CodeSystem the generator reads.
type codeSystemDef struct {
	URL           string    `json:"url"`
	Version       string    `json:"version"`
	Content       string    `json:"content"`
	CaseSensitive *bool     `json:"caseSensitive"`
	Concept       []concept `json:"concept"`
}

type concept struct {
	Code     string `json:"code"`
	Property []struct {
		Code         string `json:"code"`
		ValueBoolean *bool  `json:"valueBoolean"`
	} `json:"property"`
	Concept []concept `json:"concept"`
}

// selectable reports whether a concept may be used as a code: R4 marks
// grouping concepts (Questionnaire item type "question") notSelectable.
func (c *concept) selectable() bool {
	for _, p := range c.Property {
		if (p.Code == "notSelectable" || p.Code == "abstract") && p.ValueBoolean != nil && *p.ValueBoolean {
			return false
		}
	}
	return true
}

// terminology indexes the ValueSets and CodeSystems of the terminology
// files by canonical URL.
type terminology struct {
	valueSets   map[string]*valueSetDef
	codeSystems map[string]*codeSystemDef
	twice       map[string]bool // "ValueSet URL" or "CodeSystem URL" defined more than once
	notes       []string
	expanded    map[string]expansion
}

// expansion is a value set's codes, or why it has none the model can use.
type expansion struct {
	codes []string
	why   string
}

func newTerminology() *terminology {
	return &terminology{
		valueSets:   map[string]*valueSetDef{},
		codeSystems: map[string]*codeSystemDef{},
		twice:       map[string]bool{},
		expanded:    map[string]expansion{},
	}
}

// readTerminology reads the terminology files from dir.
func readTerminology(dir string) (*terminology, error) {
	t := newTerminology()
	for _, name := range terminologyFiles {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if err := t.add(name, data); err != nil {
			return nil, err
		}
	}
	sort.Strings(t.notes)
	return t, nil
}

// add indexes the ValueSets and CodeSystems of one Bundle. Resources that
// the core specification publishes (canonical URLs under
// http://hl7.org/fhir/) in a version other than 4.0.1 are a later
// version's, which a package may carry alongside R4; they are dropped.
func (t *terminology) add(file string, data []byte) error {
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for i, e := range b.Entry {
		var probe struct {
			ResourceType string `json:"resourceType"`
			URL          string `json:"url"`
			Version      string `json:"version"`
		}
		if err := json.Unmarshal(e.Resource, &probe); err != nil {
			return fmt.Errorf("%s: entry %d: %w", file, i, err)
		}
		if probe.ResourceType != "ValueSet" && probe.ResourceType != "CodeSystem" {
			continue
		}
		key := probe.ResourceType + " " + probe.URL
		if strings.HasPrefix(probe.URL, "http://hl7.org/fhir/") && probe.Version != fhirVersion {
			t.notes = append(t.notes, fmt.Sprintf("%s: dropped (version %q is not R4's)", key, probe.Version))
			continue
		}
		if t.valueSets[probe.URL] != nil && probe.ResourceType == "ValueSet" ||
			t.codeSystems[probe.URL] != nil && probe.ResourceType == "CodeSystem" {
			t.twice[key] = true
			t.notes = append(t.notes, fmt.Sprintf("%s: defined more than once (not used)", key))
			continue
		}
		var err error
		if probe.ResourceType == "ValueSet" {
			vs := new(valueSetDef)
			err = json.Unmarshal(e.Resource, vs)
			t.valueSets[vs.URL] = vs
		} else {
			cs := new(codeSystemDef)
			err = json.Unmarshal(e.Resource, cs)
			t.codeSystems[cs.URL] = cs
		}
		if err != nil {
			return fmt.Errorf("%s: entry %d: %w", file, i, err)
		}
	}
	return nil
}

// expand returns the codes of the value set with the given canonical URL
// (no version), or why it cannot be enumerated exactly. stack holds the
// value sets being expanded, to catch circular imports.
func (t *terminology) expand(url string, stack []string) ([]string, string) {
	if x, ok := t.expanded[url]; ok {
		return x.codes, x.why
	}
	if slices.Contains(stack, url) {
		return nil, "value set " + url + " imports itself"
	}
	codes, why := t.expandCompose(url, append(stack, url))
	if why != "" {
		codes = nil
	}
	t.expanded[url] = expansion{codes, why}
	return codes, why
}

func (t *terminology) expandCompose(url string, stack []string) ([]string, string) {
	vs := t.valueSets[url]
	switch {
	case t.twice["ValueSet "+url]:
		return nil, "value set " + url + " is defined more than once"
	case vs == nil:
		return nil, "value set " + url + " is not in the definitions"
	case vs.Compose == nil || len(vs.Compose.Include) == 0:
		return nil, "value set " + url + " has no compose.include"
	}
	var codes []string
	seen := map[string]bool{}
	for _, inc := range vs.Compose.Include {
		got, why := t.composeCodes(inc, stack)
		if why != "" {
			return nil, why
		}
		for _, c := range got {
			if !seen[c] {
				seen[c] = true
				codes = append(codes, c)
			}
		}
	}
	for _, exc := range vs.Compose.Exclude {
		got, why := t.composeCodes(exc, stack)
		if why != "" {
			return nil, "exclude: " + why
		}
		codes = slices.DeleteFunc(codes, func(c string) bool { return slices.Contains(got, c) })
	}
	if vs.Expansion != nil && len(vs.Expansion.Contains) > 0 {
		var published []string
		var walk func([]expansionItem)
		walk = func(items []expansionItem) {
			for _, it := range items {
				if !it.Abstract && it.Code != "" {
					published = append(published, it.Code)
				}
				walk(it.Contains)
			}
		}
		walk(vs.Expansion.Contains)
		if !sameSet(codes, published) {
			return nil, "value set " + url + ": compose does not give the published expansion"
		}
	}
	if len(codes) == 0 {
		return nil, "value set " + url + " has no codes"
	}
	for _, c := range codes {
		if c == "" || strings.ContainsAny(c, " \t\r\n") {
			return nil, fmt.Sprintf("value set %s: code %q cannot be written in the model", url, c)
		}
	}
	return codes, ""
}

// composeCodes returns the codes of one include or exclude entry.
func (t *terminology) composeCodes(cs composeSet, stack []string) ([]string, string) {
	if len(cs.Filter) > 0 {
		return nil, "filter on " + cs.System
	}
	var codes []string
	have := false
	switch {
	case cs.System != "" && len(cs.Concept) > 0:
		for _, c := range cs.Concept {
			codes = append(codes, c.Code)
		}
		have = true
	case cs.System != "":
		sys := t.codeSystems[cs.System]
		switch {
		case t.twice["CodeSystem "+cs.System]:
			return nil, "code system " + cs.System + " is defined more than once"
		case sys == nil:
			return nil, "code system " + cs.System + " is not in the definitions"
		case sys.Content != "complete":
			return nil, fmt.Sprintf("code system %s has content %q", cs.System, sys.Content)
		case cs.Version != "" && cs.Version != sys.Version:
			return nil, fmt.Sprintf("code system %s is included in version %s, the definitions have %s", cs.System, cs.Version, sys.Version)
		case sys.CaseSensitive != nil && !*sys.CaseSensitive:
			return nil, "code system " + cs.System + " is not case-sensitive"
		}
		var walk func([]concept)
		walk = func(cc []concept) {
			for i := range cc {
				if cc[i].selectable() {
					codes = append(codes, cc[i].Code)
				}
				walk(cc[i].Concept)
			}
		}
		walk(sys.Concept)
		have = true
	}
	for _, ref := range cs.ValueSet {
		url, version, _ := strings.Cut(ref, "|")
		if vs := t.valueSets[url]; vs != nil && version != "" && version != vs.Version {
			return nil, fmt.Sprintf("imports %s, the definitions have version %s", ref, vs.Version)
		}
		got, why := t.expand(url, stack)
		if why != "" {
			return nil, why
		}
		if have {
			codes = slices.DeleteFunc(codes, func(c string) bool { return !slices.Contains(got, c) })
		} else {
			codes, have = append([]string(nil), got...), true
		}
	}
	if !have {
		return nil, "an include names neither a code system nor a value set"
	}
	return codes, ""
}

func sameSet(a, b []string) bool {
	x := slices.Clone(a)
	y := slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// onlyCode reports whether an element's only type is the primitive code.
func onlyCode(e *element) bool {
	return e.contentRef == "" && len(e.types) == 1 && e.types[0].Code == "code"
}

// bindTerminology resolves the required bindings of code elements, after
// applying fixes (see r4Bindings), and records on each element the value
// set to check and on the model the value sets, with notes for -report.
func bindTerminology(m *model, t *terminology, fixes map[string]bindingFix) error {
	byURL := map[string]*valueSet{}
	byName := map[string]*valueSet{}
	skipped := map[string]*skippedSet{} // by binding, for the report
	met := map[string]bool{}
	bound := 0
	var notes []string
	for _, td := range m.defs {
		for _, e := range td.elements {
			if e.binding == nil || e.binding.Strength != "required" || !onlyCode(e) {
				continue
			}
			ref := e.binding.ValueSet
			if fix, ok := fixes[e.path]; ok {
				if ref != fix.from {
					return fmt.Errorf("%s: listed in r4Bindings as bound to %s, but the input binds it to %s; review r4Bindings", e.path, fix.from, ref)
				}
				met[e.path] = true
				ref = fix.to
				e.binding = &binding{Strength: e.binding.Strength, ValueSet: ref}
				notes = append(notes, fmt.Sprintf("%s: binding %s replaced by %s (%s)", e.path, fix.from, fix.to, fix.why))
			}
			url, version, _ := strings.Cut(ref, "|")
			if vs := t.valueSets[url]; vs != nil && version != "" && version != vs.Version {
				return fmt.Errorf("%s: bound to %s, but the definitions have version %q of that value set; if the package changed the binding, list R4's in r4Bindings", e.path, ref, vs.Version)
			}
			codes, why := t.expand(url, nil)
			if url == "" {
				why = "binding without a value set"
			}
			if why != "" {
				if skipped[ref] == nil {
					skipped[ref] = &skippedSet{why: why}
				}
				skipped[ref].paths = append(skipped[ref].paths, e.path)
				continue
			}
			vs := byURL[url]
			if vs == nil {
				name := url[strings.LastIndexByte(url, '/')+1:]
				if name == "" || strings.ContainsAny(name, " \t|") {
					return fmt.Errorf("%s: cannot name value set %s", e.path, url)
				}
				if other := byName[name]; other != nil {
					return fmt.Errorf("value sets %s and %s have the same name %q", other.url, url, name)
				}
				full := url
				if v := t.valueSets[url].Version; v != "" {
					full += "|" + v
				}
				if strings.ContainsAny(full, " \t\r\n") {
					return fmt.Errorf("%s: value set URL %q cannot be written in the model", e.path, full)
				}
				vs = &valueSet{name: name, url: full, codes: codes}
				byURL[url], byName[name] = vs, vs
				m.valueSets = append(m.valueSets, vs)
			}
			vs.paths = append(vs.paths, e.path)
			e.valueSet = vs.name
			bound++
		}
	}
	for path := range fixes {
		if !met[path] {
			return fmt.Errorf("%s: listed in r4Bindings but not a required code binding in the input; review r4Bindings", path)
		}
	}
	sort.Slice(m.valueSets, func(i, j int) bool { return m.valueSets[i].name < m.valueSets[j].name })
	unchecked := 0
	for ref, s := range skipped {
		unchecked += len(s.paths)
		notes = append(notes, fmt.Sprintf("%s: not enumerable, not checked (%s): %s", ref, s.why, strings.Join(s.paths, ", ")))
	}
	sort.Strings(notes)
	notes = append(notes, fmt.Sprintf("terminology: %d code elements with a required binding checked against %d enumerated value sets; %d elements bound to %d value sets not checked",
		bound, len(m.valueSets), unchecked, len(skipped)))
	m.notes = append(m.notes, t.notes...)
	m.notes = append(m.notes, notes...)
	return nil
}

// skippedSet is a binding that cannot be checked, with the reason.
type skippedSet struct {
	why   string
	paths []string
}
