package fhir

import (
	"sort"
	"strconv"
	"strings"
)

// Issue is one problem found in a resource, in OperationOutcome terms.
type Issue struct {
	// Severity is "fatal" (the body could not be read as a resource at
	// all) or "error"; "warning" and "information" are reserved.
	Severity string
	// Code is the OperationOutcome issue type: "structure" (unknown
	// element, wrong JSON shape, empty or null value, duplicate property),
	// "required" (missing element), "value" (malformed primitive, unknown
	// resource type), "code-invalid" (a code not in the value set its
	// element is bound to), or, for the rules BusinessRule reports,
	// "invariant" (a named R4 constraint such as dom-2 or ext-1) and
	// "business-rule".
	Code string
	// Expression locates the problem, FHIRPath-style, using JSON property
	// names: "Patient.name[0].given[1]", "Observation.valueQuantity.value",
	// "Patient._birthDate.extension[0].url". Resources inside others
	// continue their container's path: "Patient.contained[0].name[0]",
	// "Bundle.entry[2].resource.status". Problems with the top-level
	// resourceType have Expression "resourceType"; a body that cannot be
	// read has "".
	Expression string
	// Diagnostics says what is wrong and what was expected, e.g. `invalid
	// date "2023-02-30": day 30 does not exist in 2023-02`.
	Diagnostics string
}

// String formats an issue for logs: "error structure Patient.foo: ...".
func (i Issue) String() string {
	return i.Severity + " " + i.Code + " " + i.Expression + ": " + i.Diagnostics
}

// BusinessRule reports whether an issue code is a business-rule or
// invariant violation, which a server answers with 422 Unprocessable
// Entity, rather than a structural problem (400 Bad Request).
func BusinessRule(code string) bool {
	return code == "invariant" || code == "business-rule"
}

// Validate checks a resource against the FHIR R4 definitions and returns
// every problem found, in document order; an empty result means the
// resource is valid. body is expected to be a syntactically valid JSON
// object whose UTF-8 and nesting depth the caller has already checked;
// anything else yields a single fatal issue.
//
// What is checked:
//   - resourceType: present, a string, and a concrete R4 resource type;
//   - every property is an element of the type (including inside data
//     types, backbone elements, extensions and nested resources, each
//     contained resource, Bundle entry and Parameters resource being
//     checked against its own resourceType);
//   - JSON shape: the JSON kind each type is written as, arrays exactly for
//     repeating elements, no duplicate properties, no null, {}, [] or "";
//   - cardinality: required elements present (a primitive's _element
//     counts), at most one type of a choice element;
//   - primitive values: R4's regex for each primitive type, integer
//     ranges, real calendar dates, time zones on times, 1 MB strings, and
//     narrative XHTML starting with a div;
//   - required bindings of code elements: a code (each item of a
//     repeating one too) must be one of the codes of the bound value set,
//     exactly, case included ("Patient.gender" one of male, female, other
//     and unknown). Only value sets that the R4 definitions enumerate
//     exactly are checked: not those with filters or external code
//     systems, such as mime types (Attachment.contentType) or currencies
//     (Money.currency);
//   - primitive extensions: _element holds only id and extension, exists
//     only for primitive elements, and parallels its element's array,
//     null marking a position the other array fills;
//   - invariants: ext-1 (an extension has a value or extensions, not both),
//     dom-2, dom-4, dom-5 (a contained resource holds no contained
//     resources, versionId, lastUpdated or security labels), ref-1 (a
//     local reference "#id" names a contained resource of the same
//     resource), and, as a business rule, that a contained resource has an
//     id.
//
// Not checked: other FHIRPath invariants, other terminology bindings
// (Coding and CodeableConcept, extensible and weaker bindings, extension
// values), profiles (including SimpleQuantity), reference target types and
// dom-3 (that each contained resource is referenced).
//
// Issues are ordered by where they occur in body; an element missing from
// an object is placed at the object's start. Validate is safe for
// concurrent use.
func Validate(body []byte) []Issue {
	doc, err := vjParse(string(body))
	if err != nil {
		return []Issue{{Severity: "fatal", Code: "structure", Diagnostics: "invalid JSON: " + err.Error()}}
	}
	if doc.root.kind != vjObject {
		return []Issue{{Severity: "fatal", Code: "structure", Diagnostics: "a resource must be a JSON object, found " + doc.root.kind.String()}}
	}
	v := newResourceValidator(r4Model(), doc)
	v.resource(&doc.root, "", false)
	return v.result()
}

// resourceValidator holds the state of one Validate call.
type resourceValidator struct {
	m       *r4Definitions
	doc     *vjDoc
	issues  []vIssue
	scratch []vUse   // per-object tables, used as a stack
	path    []vSeg   // the location being checked
	refs    *vRefCtx // the resource that local references resolve in

	// Structs with extra rules.
	extension, reference, element *r4Struct
	extValue, extExtension        int // element indexes in Extension
}

// vIssue is an issue with the byte offset that orders it.
type vIssue struct {
	pos int32
	Issue
}

// vUse records, for one element of an object being checked, which member
// holds its value and which its _element (member index + 1, 0 for none) and
// which of a choice's types each named.
type vUse struct {
	val, ext       int32
	valTyp, extTyp int16
}

func newResourceValidator(m *r4Definitions, doc *vjDoc) *resourceValidator {
	v := &resourceValidator{
		m:         m,
		doc:       doc,
		scratch:   make([]vUse, 0, 128),
		path:      make([]vSeg, 0, 16),
		extension: m.types["Extension"].body,
		reference: m.types["Reference"].body,
		element:   m.types["Element"].body,
	}
	v.extValue = v.extension.byJSON["valueString"].elem.idx
	v.extExtension = v.extension.byJSON["extension"].elem.idx
	return v
}

// result returns the issues in document order.
func (v *resourceValidator) result() []Issue {
	if len(v.issues) == 0 {
		return nil
	}
	sort.SliceStable(v.issues, func(i, j int) bool { return v.issues[i].pos < v.issues[j].pos })
	out := make([]Issue, len(v.issues))
	for i, is := range v.issues {
		out[i] = is.Issue
	}
	return out
}

// The location being checked is kept as a stack of segments (pushed on the
// way down, popped on the way up) and rendered only when an issue is
// reported, so that checking a valid resource builds no path strings.

// vSeg is one segment of the location being checked: a property name with
// an optional array index.
type vSeg struct {
	name  string
	index int // -1 for none
}

func (v *resourceValidator) push(name string, index int) { v.path = append(v.path, vSeg{name, index}) }
func (v *resourceValidator) pop()                        { v.path = v.path[:len(v.path)-1] }

// pathTo renders the current location, followed by name[index] if name is
// not empty.
func (v *resourceValidator) pathTo(name string, index int) string {
	var b strings.Builder
	for _, s := range v.path {
		vWriteSegment(&b, s.name, s.index)
	}
	if name != "" {
		vWriteSegment(&b, name, index)
	}
	return b.String()
}

func vWriteSegment(b *strings.Builder, name string, index int) {
	if b.Len() > 0 {
		b.WriteByte('.')
	}
	b.WriteString(name)
	if index >= 0 {
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(index))
		b.WriteByte(']')
	}
}

// report records an error at the current location.
func (v *resourceValidator) report(pos int32, code, msg string) {
	v.reportAt(pos, code, "", -1, msg)
}

// reportAt records an error at the child name[index] of the current
// location (index -1 for none).
func (v *resourceValidator) reportAt(pos int32, code, name string, index int, msg string) {
	v.issues = append(v.issues, vIssue{pos, Issue{Severity: "error", Code: code, Expression: v.pathTo(name, index), Diagnostics: msg}})
}

// object checks the members of a JSON object against a struct (a type's
// or backbone element's children).
func (v *resourceValidator) object(st *r4Struct, obj *vjNode) {
	if obj.n == 0 {
		v.report(obj.pos, "structure", "empty object is not allowed")
		return
	}
	base := len(v.scratch)
	for range st.elems {
		v.scratch = append(v.scratch, vUse{})
	}
	defer func() { v.scratch = v.scratch[:base] }()

	members := v.doc.kids(obj)
	for i := range members {
		mb := &members[i]
		key := mb.key
		if key == "resourceType" && st.resource {
			continue // the resource's own; checked by resource
		}
		name, ext := strings.CutPrefix(key, "_")
		slot, ok := st.byJSON[name]
		if !ok || (ext && name == "") {
			v.unknown(st, mb)
			continue
		}
		e := slot.elem
		if ext && !slot.primitive() {
			v.reportAt(mb.keyPos, "structure", key, -1,
				"\""+key+"\" is not allowed: "+name+" is not a primitive element, so it has no _"+name)
			continue
		}
		if ext && slot.elem.types[slot.typ].code == "xhtml" {
			v.reportAt(mb.keyPos, "structure", key, -1,
				"\""+key+"\" is not allowed: xhtml cannot have extensions")
			continue
		}
		u := &v.scratch[base+e.idx]
		seen, other := &u.val, u.ext
		if ext {
			seen, other = &u.ext, u.val
		}
		if *seen != 0 {
			prev := v.doc.kids(obj)[*seen-1].key
			if prev == key {
				v.reportAt(mb.keyPos, "structure", key, -1, "duplicate property \""+key+"\"")
			} else {
				v.choiceConflict(e, prev, key, mb.keyPos)
			}
			continue
		}
		if other != 0 {
			if prev := strings.TrimPrefix(v.doc.kids(obj)[other-1].key, "_"); prev != name {
				v.choiceConflict(e, prev, key, mb.keyPos)
				continue
			}
		}
		*seen = int32(i + 1)
		if ext {
			u.extTyp = int16(slot.typ)
		} else {
			u.valTyp = int16(slot.typ)
		}
	}

	for idx, e := range st.elems {
		u := v.scratch[base+idx] // a copy: checking children grows scratch
		if u.val == 0 && u.ext == 0 {
			if e.min > 0 {
				name := e.name
				if e.choice {
					name += "[x]"
				}
				v.reportAt(obj.pos, "required", name, -1,
					"missing required element \""+name+"\" (cardinality "+r4Cardinality(e)+")")
			}
			continue
		}
		v.elementValue(e, u, obj)
	}

	switch st {
	case v.extension:
		hasValue := v.scratch[base+v.extValue] != vUse{}
		hasExtensions := v.scratch[base+v.extExtension].val != 0
		if hasValue == hasExtensions {
			msg := "ext-1: an extension must have either extensions or a value[x], not both"
			if !hasValue {
				msg = "ext-1: an extension must have either extensions or a value[x], and has neither"
			}
			v.report(obj.pos, "invariant", msg)
		}
	case v.reference:
		v.localReference(obj)
	}
}

// primitive reports whether the slot's type is a primitive, which alone
// may have a _element.
func (s r4Slot) primitive() bool {
	if s.elem.inline != nil {
		return false
	}
	d := s.elem.types[s.typ].def
	return d != nil && d.kind == r4KindPrimitive
}

func (v *resourceValidator) unknown(st *r4Struct, mb *vjNode) {
	msg := "unknown element \"" + mb.key + "\" (not defined for " + st.path + ")"
	if st == v.element {
		msg = "unknown element \"" + mb.key + "\" (a primitive's _element may hold only id and extension)"
	}
	v.reportAt(mb.keyPos, "structure", mb.key, -1, msg)
}

func (v *resourceValidator) choiceConflict(e *r4Element, prev, key string, pos int32) {
	v.reportAt(pos, "structure", key, -1,
		"only one type of "+e.name+"[x] may be present, found \""+prev+"\" and \""+key+"\"")
}

func r4Cardinality(e *r4Element) string {
	if e.max == Unbounded {
		return strconv.Itoa(e.min) + "..*"
	}
	return strconv.Itoa(e.min) + ".." + strconv.Itoa(e.max)
}

// elementValue checks an element's value and _element members.
func (v *resourceValidator) elementValue(e *r4Element, u vUse, obj *vjNode) {
	var val, ext *vjNode
	typ := int(u.valTyp)
	if u.val != 0 {
		val = &v.doc.kids(obj)[u.val-1]
	}
	if u.ext != 0 {
		ext = &v.doc.kids(obj)[u.ext-1]
		if val == nil {
			typ = int(u.extTyp)
		}
	}
	jsonName, pos := "", int32(0)
	if val != nil {
		jsonName, pos = val.key, val.keyPos
	} else {
		jsonName, pos = ext.key[1:], ext.keyPos
	}
	if e.max == 0 {
		v.reportAt(pos, "structure", jsonName, -1, "\""+jsonName+"\" is not allowed here (cardinality 0..0)")
		return
	}
	repeating := e.max == Unbounded
	if val != nil {
		value := val
		switch {
		case repeating && value.kind != vjArray:
			v.push(jsonName, -1)
			v.report(value.pos, "structure",
				"\""+jsonName+"\" must be a JSON array (cardinality "+r4Cardinality(e)+"), found "+value.kind.String())
			v.item(e, typ, value)
			v.pop()
		case !repeating && value.kind == vjArray:
			v.reportAt(value.pos, "structure", jsonName, -1,
				"\""+jsonName+"\" must not be a JSON array (cardinality "+r4Cardinality(e)+")")
		case repeating:
			items := v.doc.kids(value)
			if len(items) == 0 {
				v.reportAt(value.pos, "structure", jsonName, -1, "empty array is not allowed")
			}
			for i := range items {
				it := &items[i]
				v.push(jsonName, i)
				if it.kind == vjNull {
					if !v.parallelFilled(ext, i) {
						v.report(it.pos, "structure",
							"null is not allowed here (only where _"+jsonName+" has a value at the same position)")
					}
				} else {
					v.item(e, typ, it)
				}
				v.pop()
			}
		default:
			v.push(jsonName, -1)
			v.item(e, typ, value)
			v.pop()
		}
	}
	if ext != nil {
		v.primitiveExtension(e, jsonName, ext, val)
	}
}

// parallelFilled reports whether the parallel array member m has a non-null
// item at i.
func (v *resourceValidator) parallelFilled(m *vjNode, i int) bool {
	return m != nil && m.kind == vjArray && i < int(m.n) && v.doc.kids(m)[i].kind != vjNull
}

// item checks one value (not an array) of an element with the given type,
// at the current location.
func (v *resourceValidator) item(e *r4Element, typ int, value *vjNode) {
	if value.kind == vjNull {
		v.report(value.pos, "structure", "null is not allowed")
		return
	}
	if e.inline != nil {
		if value.kind != vjObject {
			v.report(value.pos, "structure", "expected a JSON object for "+e.inline.path+", found "+vjDescribe(value))
			return
		}
		v.object(e.inline, value)
		return
	}
	tr := &e.types[typ]
	switch tr.def.kind {
	case r4KindPrimitive:
		if p := primCheck(tr.def, value); p != nil {
			v.report(value.pos, p.code, p.msg)
		} else if e.valueSet != nil && value.kind == vjString && !e.valueSet.has(value.text) {
			v.report(value.pos, "code-invalid", codeInvalid(e.valueSet, value.text))
		}
	case r4KindComplex:
		if value.kind != vjObject {
			v.report(value.pos, "structure", "expected a JSON object for type "+tr.code+", found "+vjDescribe(value))
			return
		}
		v.object(tr.def.body, value)
	case r4KindResource:
		want := tr.code
		if tr.def.abstract {
			want = ""
		}
		v.resource(value, want, e.name == "contained" && e.max == Unbounded)
	}
}

// primitiveExtension checks a primitive's _element member: an object with
// id and/or extension, or for a repeating element an array parallel to the
// values with null where there is nothing to say.
func (v *resourceValidator) primitiveExtension(e *r4Element, jsonName string, ext, val *vjNode) {
	x := ext
	if e.max != Unbounded {
		if x.kind == vjArray {
			v.reportAt(x.pos, "structure", ext.key, -1, "\""+ext.key+"\" must not be a JSON array (cardinality "+r4Cardinality(e)+")")
			return
		}
		v.push(ext.key, -1)
		v.extensionObject(x)
		v.pop()
		return
	}
	if x.kind != vjArray {
		v.reportAt(x.pos, "structure", ext.key, -1, "\""+ext.key+"\" must be a JSON array parallel to \""+jsonName+"\", found "+x.kind.String())
		return
	}
	items := v.doc.kids(x)
	if len(items) == 0 {
		v.reportAt(x.pos, "structure", ext.key, -1, "empty array is not allowed")
		return
	}
	valArray := val != nil && val.kind == vjArray
	if valArray && val.n != x.n {
		v.reportAt(x.pos, "structure", ext.key, -1, "\""+ext.key+"\" has "+strconv.Itoa(int(x.n))+
			" items but \""+jsonName+"\" has "+strconv.Itoa(int(val.n))+"; the arrays must be parallel")
	}
	for i := range items {
		it := &items[i]
		if it.kind == vjNull {
			// With a value array, a null in both is reported on that side.
			if !valArray {
				v.reportAt(it.pos, "structure", ext.key, i, "null is not allowed here (only where \""+jsonName+"\" has a value at the same position)")
			}
			continue
		}
		v.push(ext.key, i)
		v.extensionObject(it)
		v.pop()
	}
}

// extensionObject checks one item of a _element, {"id": ..., "extension":
// [...]}, at the current location.
func (v *resourceValidator) extensionObject(x *vjNode) {
	if x.kind != vjObject {
		v.report(x.pos, "structure", "expected a JSON object with id and/or extension, found "+vjDescribe(x))
		return
	}
	v.object(v.element, x)
}

// codeInvalidList is how many of a value set's codes an issue lists.
const codeInvalidList = 20

// codeInvalid describes a code that is not in the value set its element is
// bound to: `invalid code "nope": not in the required value set
// http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1; expected one of
// male, female, other, unknown`.
func codeInvalid(vs *r4ValueSet, code string) string {
	var b strings.Builder
	b.WriteString("invalid code " + vQuote(code) + ": not in the required value set " + vs.url + "; expected one of ")
	codes := vs.codeList()
	for i, c := range codes {
		if i == codeInvalidList {
			b.WriteString(", ... (" + strconv.Itoa(len(codes)) + " codes in all)")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c)
	}
	for _, c := range codes {
		if strings.EqualFold(c, code) {
			b.WriteString(" (codes are case-sensitive: did you mean \"" + c + "\"?)")
			break
		}
	}
	return b.String()
}
