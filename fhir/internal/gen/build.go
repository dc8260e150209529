package main

import (
	"fmt"
	"sort"
	"strings"
)

const (
	fhirVersion = "4.0.1"
	sdPrefix    = "http://hl7.org/fhir/StructureDefinition/"
	systemTypes = "http://hl7.org/fhirpath/System."
	fhirTypeExt = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
	regexExt    = "http://hl7.org/fhir/StructureDefinition/regex"
)

// model is what the generator writes: the kept definitions, primitives first,
// then complex types, then resources, each group sorted by name.
type model struct {
	defs      []*typeDef
	byName    map[string]*typeDef
	notes     []string    // what was dropped from the input, for -report
	valueSets []*valueSet // enumerated value sets, sorted by name (see terminology.go)
}

// typeDef is one kept StructureDefinition with its rebuilt element list.
type typeDef struct {
	sd       *structureDefinition
	elements []*element // without the root element; full paths
	jsonKind string     // primitives only: string, number or boolean
	regex    string     // primitives only: the value regex, if R4 gives one
}

// element is one rebuilt element. types holds the raw ElementDefinition.type
// entries; typeCode turns them into FHIR type names once the final path is
// known.
type element struct {
	path       string
	min        int
	max        string
	types      []elementType
	contentRef string
	summary    bool
	modifier   bool
	binding    *binding // as the definitions give it; shared by rebased copies
	valueSet   string   // the name of the enumerated value set checked, if any
}

// notR4 lists elements that the pinned package adds to R4 differentials
// (not only to snapshots), with the reason; they and their children are
// dropped. Each must be met, so a package update that removes one fails
// loudly and the list gets reviewed. (Found by comparing the output with an
// independent R4 element list; the snapshot edits are found by -report.)
var notR4 = map[string]string{
	// R5's ResearchStudy.studyDesign; R4 has no such element.
	"ResearchStudy.studyDesign": "later-version element added to the R4 differential",
}

// builder rebuilds element lists from differentials, memoising per type.
type builder struct {
	sds      map[string]*structureDefinition
	expanded map[string][]*element
	visiting map[string]bool
	notR4    map[string]string // elements to drop, with the reason
	dropped  map[string]bool   // notR4 entries met
}

// buildModel selects the R4 base definitions and rebuilds their elements,
// dropping the elements in drop (see notR4).
func buildModel(all []*structureDefinition, drop map[string]string) (*model, error) {
	b := &builder{
		notR4:    drop,
		sds:      map[string]*structureDefinition{},
		expanded: map[string][]*element{},
		visiting: map[string]bool{},
		dropped:  map[string]bool{},
	}
	for _, sd := range all {
		if !keep(sd) {
			continue
		}
		if sd.URL != sdPrefix+sd.Name || sd.Type != sd.Name {
			return nil, fmt.Errorf("%s: unexpected url %q or type %q", sd.Name, sd.URL, sd.Type)
		}
		if b.sds[sd.Name] != nil {
			return nil, fmt.Errorf("%s: defined twice", sd.Name)
		}
		if d := sd.Differential.Element; len(d) == 0 || d[0].Path != sd.Name {
			return nil, fmt.Errorf("%s: differential does not start at the type", sd.Name)
		}
		b.sds[sd.Name] = sd
	}
	m := &model{byName: map[string]*typeDef{}}
	for name, sd := range b.sds {
		td := &typeDef{sd: sd}
		if sd.Kind == "primitive-type" {
			regex, err := primitiveRegex(sd)
			if err != nil {
				return nil, err
			}
			td.regex = regex
			td.jsonKind = jsonKind(sd, b.sds)
		} else {
			els, err := b.expand(name)
			if err != nil {
				return nil, err
			}
			td.elements = els
		}
		m.defs = append(m.defs, td)
		m.byName[name] = td
	}
	sort.Slice(m.defs, func(i, j int) bool {
		a, c := m.defs[i].sd, m.defs[j].sd
		if ka, kc := kindOrder(a.Kind), kindOrder(c.Kind); ka != kc {
			return ka < kc
		}
		return a.Name < c.Name
	})
	for path, why := range drop {
		if !b.dropped[path] {
			return nil, fmt.Errorf("%s: listed as not R4 but not in the input; review notR4", path)
		}
		m.notes = append(m.notes, fmt.Sprintf("%s: dropped (%s)", path, why))
	}
	m.dropForeignTargets()
	sort.Strings(m.notes)
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// dropForeignTargets removes reference and canonical targets that are not
// HL7 definitions (a redistributed package may add its own resource types as
// targets); they name types R4 does not have.
func (m *model) dropForeignTargets() {
	for _, td := range m.defs {
		for _, e := range td.elements {
			var types []elementType
			for _, t := range e.types {
				var keep []string
				for _, p := range t.TargetProfile {
					if strings.HasPrefix(p, sdPrefix) {
						keep = append(keep, p)
					} else {
						m.notes = append(m.notes, fmt.Sprintf("%s: dropped target %s", e.path, p))
					}
				}
				t.TargetProfile = keep
				types = append(types, t)
			}
			e.types = types
		}
	}
}

// keep reports whether a StructureDefinition is an R4 base type or resource.
func keep(sd *structureDefinition) bool {
	if sd.FhirVersion != fhirVersion || sd.Derivation == "constraint" {
		return false
	}
	switch sd.Kind {
	case "resource", "complex-type", "primitive-type":
		return true
	}
	return false
}

func kindOrder(kind string) int {
	switch kind {
	case "primitive-type":
		return 0
	case "complex-type":
		return 1
	}
	return 2
}

// expand returns the element list of a type the way snapshot generation
// would: the base type's elements re-rooted at this type, with the
// differential merged over them and its new elements added below their
// parents. A new element whose type is BackboneElement or Element gets that
// type's elements (id, extension, modifierExtension) as its first children.
func (b *builder) expand(name string) ([]*element, error) {
	if els, ok := b.expanded[name]; ok {
		return els, nil
	}
	sd := b.sds[name]
	if sd == nil {
		return nil, fmt.Errorf("type %q is not defined", name)
	}
	if b.visiting[name] {
		return nil, fmt.Errorf("%s: circular base definitions", name)
	}
	b.visiting[name] = true
	defer delete(b.visiting, name)

	var els []*element
	if base := strings.TrimPrefix(sd.BaseDefinition, sdPrefix); sd.BaseDefinition != "" {
		if sd.Derivation != "specialization" || base == sd.BaseDefinition {
			return nil, fmt.Errorf("%s: unsupported base %q (%s)", name, sd.BaseDefinition, sd.Derivation)
		}
		inherited, err := b.expand(base)
		if err != nil {
			return nil, err
		}
		els = rebase(inherited, base, name)
	}
	for _, de := range sd.Differential.Element[1:] {
		if root := b.droppedRoot(de.Path); root != "" {
			b.dropped[root] = true
			continue
		}
		if de.ID != de.Path {
			return nil, fmt.Errorf("%s: sliced or renamed element %q is not supported", de.Path, de.ID)
		}
		if i := indexOf(els, de.Path); i >= 0 {
			merge(els[i], de)
			continue
		}
		e, err := newElement(de)
		if err != nil {
			return nil, err
		}
		parent := de.Path[:max(strings.LastIndexByte(de.Path, '.'), 0)]
		at := subtreeEnd(els, parent)
		if at < 0 && parent != name {
			return nil, fmt.Errorf("%s: parent element not defined", de.Path)
		}
		if at < 0 {
			at = len(els)
		}
		add := []*element{e}
		if e.contentRef == "" && len(e.types) == 1 {
			if code := e.types[0].Code; code == "BackboneElement" || code == "Element" {
				implicit, err := b.expand(code)
				if err != nil {
					return nil, err
				}
				add = append(add, rebase(implicit, code, de.Path)...)
			}
		}
		els = append(els[:at], append(add, els[at:]...)...)
	}
	b.expanded[name] = els
	return els, nil
}

// droppedRoot returns the element of the drop list that path is or is
// below, or "".
func (b *builder) droppedRoot(path string) string {
	for p := range b.notR4 {
		if path == p || strings.HasPrefix(path, p+".") {
			return p
		}
	}
	return ""
}

// rebase copies elements, moving their paths from one root to another.
func rebase(els []*element, from, to string) []*element {
	out := make([]*element, len(els))
	for i, e := range els {
		c := *e
		c.path = to + strings.TrimPrefix(e.path, from)
		out[i] = &c
	}
	return out
}

func indexOf(els []*element, path string) int {
	for i, e := range els {
		if e.path == path {
			return i
		}
	}
	return -1
}

// subtreeEnd returns the index just past the last descendant of parent, or
// -1 if parent is not in the list (the root is never in it).
func subtreeEnd(els []*element, parent string) int {
	i := indexOf(els, parent)
	if i < 0 {
		return -1
	}
	i++
	for i < len(els) && strings.HasPrefix(els[i].path, parent+".") {
		i++
	}
	return i
}

// newElement makes an element from a differential entry that defines a new
// element, which must give its cardinality and its type or content
// reference.
func newElement(de elementDefinition) (*element, error) {
	if de.Min == nil || de.Max == nil || (len(de.Type) == 0) == (de.ContentReference == "") {
		return nil, fmt.Errorf("%s: new element lacks cardinality or type", de.Path)
	}
	e := &element{path: de.Path}
	merge(e, de)
	return e, nil
}

// merge lays the properties a differential entry gives over an element.
func merge(e *element, de elementDefinition) {
	if de.Min != nil {
		e.min = *de.Min
	}
	if de.Max != nil {
		e.max = *de.Max
	}
	if len(de.Type) > 0 {
		e.types = de.Type
		e.contentRef = ""
	}
	if de.ContentReference != "" {
		e.contentRef = de.ContentReference
		e.types = nil
	}
	if de.IsSummary != nil {
		e.summary = *de.IsSummary
	}
	if de.IsModifier != nil {
		e.modifier = *de.IsModifier
	}
	if de.Binding != nil {
		e.binding = de.Binding
	}
}

// check verifies that the model hangs together: every type an element uses
// is defined, content references point at inline elements of the same type,
// and choice markers agree with the number of types.
func (m *model) check() error {
	for _, td := range m.defs {
		sd := td.sd
		for _, e := range td.elements {
			if e.max != "*" && e.max != "0" && e.max != "1" {
				return fmt.Errorf("%s: unsupported max %q", e.path, e.max)
			}
			if e.contentRef != "" {
				target, ok := strings.CutPrefix(e.contentRef, "#")
				i := -1
				for j, o := range td.elements {
					if o.path == target {
						i = j
					}
				}
				if !ok || i < 0 || !isInline(td.elements[i]) {
					return fmt.Errorf("%s: unsupported contentReference %q", e.path, e.contentRef)
				}
				continue
			}
			if strings.HasSuffix(e.path, "[x]") != (len(e.types) > 1) {
				// A one-type choice is still written valueX in JSON; R4 has
				// none, and several types without [x] cannot be written.
				return fmt.Errorf("%s: choice marker and type count disagree", e.path)
			}
			for _, t := range e.types {
				code, err := typeCode(sd, e.path, t)
				if err != nil {
					return err
				}
				if m.byName[code] == nil {
					return fmt.Errorf("%s: type %q is not defined", e.path, code)
				}
			}
		}
	}
	return nil
}

func isInline(e *element) bool {
	return e.contentRef == "" && len(e.types) == 1 &&
		(e.types[0].Code == "BackboneElement" || e.types[0].Code == "Element")
}

// typeCode names the FHIR type of one of an element's types. R4 gives the
// elements that are attributes in XML (id, Extension.url, a primitive's
// value) FHIRPath system types such as http://hl7.org/fhirpath/System.String,
// with the FHIR type in an extension; a resource's own id is conceptually an
// id.
func typeCode(sd *structureDefinition, path string, t elementType) (string, error) {
	if !strings.HasPrefix(t.Code, systemTypes) {
		return t.Code, nil
	}
	if sd.Kind == "resource" && path == sd.Name+".id" {
		return "id", nil
	}
	for _, e := range t.Extension {
		if e.URL == fhirTypeExt && e.ValueURL != "" {
			return e.ValueURL, nil
		}
	}
	switch strings.TrimPrefix(t.Code, systemTypes) {
	case "String":
		return "string", nil
	case "Boolean":
		return "boolean", nil
	}
	return "", fmt.Errorf("%s: cannot map system type %q", path, t.Code)
}

// primitiveRegex returns the regex R4 gives for a primitive's value, if any.
func primitiveRegex(sd *structureDefinition) (string, error) {
	for _, el := range sd.Differential.Element {
		if el.Path != sd.Name+".value" {
			continue
		}
		for _, t := range el.Type {
			for _, e := range t.Extension {
				if e.URL == regexExt {
					if strings.ContainsAny(e.ValueString, "\r\n") {
						return "", fmt.Errorf("%s: regex spans lines", sd.Name)
					}
					return e.ValueString, nil
				}
			}
		}
		return "", nil
	}
	return "", fmt.Errorf("%s: primitive without value element", sd.Name)
}

// jsonKind is how a primitive is written in FHIR JSON: boolean as a JSON
// boolean, integer and decimal and their specialisations as JSON numbers,
// everything else as a JSON string.
func jsonKind(sd *structureDefinition, sds map[string]*structureDefinition) string {
	for cur := sd; cur != nil; cur = sds[strings.TrimPrefix(cur.BaseDefinition, sdPrefix)] {
		switch cur.Name {
		case "boolean":
			return "boolean"
		case "integer", "decimal":
			return "number"
		}
	}
	return "string"
}
