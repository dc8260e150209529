package fhir

import (
	"fmt"
	"strings"
)

// Compiling the FHIRPath subset of fhirpath.go: type-checking an expression
// against the R4 model, starting from the type of its context (the resource
// type a search parameter applies to, or the items a composite selects).
// Every member name must be an element of some type the input may have,
// every type test must be able to succeed, and a leading type name must
// match the context. That is how the tests know that each R4 expression
// names only R4 elements. Compiling also records, for each member step,
// which element the name denotes in each struct the input may have, so
// evaluation (fhirpath_eval.go) needs no lookups by name.

// fpCompiler type-checks expressions against the model.
type fpCompiler struct {
	m    *r4Definitions
	src  string
	root fpTypes // %resource
}

// fpCompile parses src and type-checks it for a context of the given
// types; root is the type of %resource.
func fpCompile(m *r4Definitions, src string, context, root fpTypes) (*fpExpr, error) {
	e, err := fpParse(src)
	if err != nil {
		return nil, err
	}
	c := &fpCompiler{m: m, src: src, root: root}
	if _, err := c.compile(e, context); err != nil {
		return nil, err
	}
	return e, nil
}

func (c *fpCompiler) fail(e *fpExpr, format string, args ...any) error {
	return &fpSyntaxError{c.src, e.pos, fmt.Sprintf(format, args...)}
}

var fpBoolean = fpTypes{{code: "boolean"}}

// compile type-checks e for an input of the given types and records what
// it yields in e.types.
func (c *fpCompiler) compile(e *fpExpr, in fpTypes) (fpTypes, error) {
	// Invocations apply to left's result.
	switch e.op {
	case fpMember, fpFunc, fpIndex, fpIs, fpAs:
		if e.left != nil {
			var err error
			if in, err = c.compile(e.left, in); err != nil {
				return nil, err
			}
		}
	}
	var out fpTypes
	switch e.op {
	case fpLiteral:
		out = fpTypes{{code: e.lit.typ}}
	case fpEmptySet:
	case fpThis:
		out = in
	case fpRoot:
		out = c.root
	case fpMember:
		if e.left == nil && c.isTypeName(e.name) {
			e.op, e.spec = fpTypeRoot, fpTypeSpec{name: e.name}
			out = c.filter(in, e.spec)
			if len(out) == 0 {
				return nil, c.fail(e, "%s does not apply to %s", e.name, describeTypes(in))
			}
			break
		}
		for _, t := range in {
			if t.st == nil {
				continue
			}
			el := fpFindElement(t.st, e.name)
			if el == nil {
				continue
			}
			e.members = append(e.members, fpMemberRef{t.st, el})
			types := el.typeRefs()
			for i := range types {
				out = out.add(fpElemType(el, types, i))
			}
		}
		if len(e.members) == 0 {
			return nil, c.fail(e, "%s is not an element of %s", e.name, describeTypes(in))
		}
	case fpIndex:
		idx := e.args[0]
		if idx.op != fpLiteral || idx.lit.typ != "integer" {
			return nil, c.fail(e, "only an integer literal may index")
		}
		out = in
	case fpIs:
		if err := c.checkSpec(e, in); err != nil {
			return nil, err
		}
		out = fpBoolean
	case fpAs:
		if err := c.checkSpec(e, in); err != nil {
			return nil, err
		}
		out = c.filter(in, e.spec)
	case fpUnion:
		l, err := c.compile(e.left, in)
		if err != nil {
			return nil, err
		}
		r, err := c.compile(e.right, in)
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
		for _, t := range r {
			out = out.add(t)
		}
	case fpEq, fpNe, fpAnd, fpOr, fpXor, fpImplies:
		if _, err := c.compile(e.left, in); err != nil {
			return nil, err
		}
		if _, err := c.compile(e.right, in); err != nil {
			return nil, err
		}
		out = fpBoolean
	case fpFunc:
		var err error
		if out, err = c.function(e, in); err != nil {
			return nil, err
		}
	default:
		return nil, c.fail(e, "unsupported expression")
	}
	e.types = out
	return out, nil
}

// function type-checks a function call on an input of the given types.
func (c *fpCompiler) function(e *fpExpr, in fpTypes) (fpTypes, error) {
	nargs := func(n ...int) error {
		for _, k := range n {
			if len(e.args) == k {
				return nil
			}
		}
		return c.fail(e, "%s() takes %v arguments, not %d", e.name, n, len(e.args))
	}
	switch e.name {
	case "where", "exists":
		want := 1
		if e.name == "exists" {
			if err := nargs(0, 1); err != nil {
				return nil, err
			}
			want = len(e.args)
		} else if err := nargs(1); err != nil {
			return nil, err
		}
		if want == 1 {
			if _, err := c.compile(e.args[0], in); err != nil {
				return nil, err
			}
		}
		if e.name == "where" {
			return in, nil
		}
		return fpBoolean, nil
	case "empty", "not", "hasValue":
		return fpBoolean, nargs(0)
	case "count":
		return fpTypes{{code: "integer"}}, nargs(0)
	case "first", "last", "single":
		return in, nargs(0)
	case "ofType", "as", "is":
		if e.spec.name == "" {
			return nil, c.fail(e, "%s() needs a type", e.name)
		}
		if err := c.checkSpec(e, in); err != nil {
			return nil, err
		}
		if e.name == "is" {
			return fpBoolean, nil
		}
		return c.filter(in, e.spec), nil
	case "resolve":
		if err := nargs(0); err != nil {
			return nil, err
		}
		for _, t := range in {
			switch t.code {
			case "Reference", "canonical", "uri", "url":
				return fpTypes{fpAnyResource}, nil
			}
		}
		return nil, c.fail(e, "resolve() on %s, which holds no references", describeTypes(in))
	case "extension":
		if err := nargs(1); err != nil {
			return nil, err
		}
		if a := e.args[0]; a.op != fpLiteral || a.lit.typ != "string" {
			return nil, c.fail(e, "extension() takes a string literal")
		}
		ext := c.m.types["Extension"]
		for _, t := range in {
			if t.st != nil && fpFindElement(t.st, "extension") != nil {
				return fpTypes{{code: "Extension", st: ext.body}}, nil
			}
		}
		return nil, c.fail(e, "extension() on %s, which has no extensions", describeTypes(in))
	}
	return nil, c.fail(e, "unsupported function %s()", e.name)
}

// isTypeName reports whether a leading name is a type rather than a
// member: a resource type, Resource or DomainResource. (Element names
// start with a lower-case letter.)
func (c *fpCompiler) isTypeName(name string) bool {
	t := c.m.types[name]
	return t != nil && t.kind == r4KindResource
}

// checkSpec reports an unknown type, or a type test that cannot succeed on
// the input.
func (c *fpCompiler) checkSpec(e *fpExpr, in fpTypes) error {
	// An unqualified name that only FHIRPath defines (DateTime, String) is
	// FHIRPath's; qualifying it here saves the lookup at run time.
	if e.spec.ns == "" && fpSystemTypes[e.spec.name] && c.m.types[e.spec.name] == nil {
		e.spec.ns = "System"
	}
	if !c.knownType(e.spec) {
		return c.fail(e, "unknown type %s", e.spec)
	}
	if len(c.filter(in, e.spec)) == 0 {
		return c.fail(e, "%s can never be a %s", describeTypes(in), e.spec)
	}
	return nil
}

func (c *fpCompiler) knownType(s fpTypeSpec) bool {
	if s.ns != "FHIR" && fpSystemTypes[s.name] {
		return true
	}
	return s.ns != "System" && c.m.types[s.name] != nil
}

// filter returns the input types that may be of the named type. A
// resource not known until run time may be of any resource type.
func (c *fpCompiler) filter(in fpTypes, spec fpTypeSpec) fpTypes {
	var out fpTypes
	for _, t := range in {
		switch {
		case fpIsType(c.m, t.code, spec):
			out = out.add(t)
		case t == fpAnyResource && c.isTypeName(spec.name) && spec.ns != "System":
			rt := c.m.types[spec.name]
			if rt.abstract {
				out = out.add(t)
			} else {
				out = out.add(fpType{code: spec.name, st: rt.body})
			}
		}
	}
	return out
}

func describeTypes(ts fpTypes) string {
	if len(ts) == 0 {
		return "an empty collection"
	}
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.code
	}
	return strings.Join(names, "|")
}

// fpSystemTypes are FHIRPath's own types; a FHIR primitive is one of them
// as fpSystemType says.
var fpSystemTypes = map[string]bool{
	"Boolean": true, "String": true, "Integer": true, "Decimal": true,
	"Date": true, "DateTime": true, "Time": true, "Quantity": true,
}

// fpSystemType is the FHIRPath type of a FHIR type's values.
func fpSystemType(code string) string {
	switch code {
	case "boolean":
		return "Boolean"
	case "string", "code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid", "base64Binary", "xhtml":
		return "String"
	case "integer", "positiveInt", "unsignedInt":
		return "Integer"
	case "decimal":
		return "Decimal"
	case "date":
		return "Date"
	case "dateTime", "instant":
		return "DateTime"
	case "time":
		return "Time"
	case "Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity", "MoneyQuantity":
		return "Quantity"
	}
	return ""
}

// fpIsType reports whether a value of FHIR type code is of the named type:
// the type itself, a specialisation of it (code of string, Age of
// Quantity, Patient of Resource), or for a FHIRPath type (System.DateTime;
// the compiler qualifies an unqualified DateTime, which FHIR does not
// define) the FHIR types whose values it holds.
func fpIsType(m *r4Definitions, code string, spec fpTypeSpec) bool {
	if spec.ns == "System" {
		return fpSystemType(code) == spec.name
	}
	if code == spec.name {
		return true
	}
	switch spec.name {
	case "Resource", "DomainResource":
		t := m.types[code]
		if t == nil || t.kind != r4KindResource {
			return false
		}
		return spec.name == "Resource" || isDomainResource(m, code)
	case "Quantity":
		switch code {
		case "Age", "Count", "Distance", "Duration", "SimpleQuantity", "MoneyQuantity":
			return true
		}
	case "string":
		return code == "code" || code == "id" || code == "markdown"
	case "uri":
		return code == "url" || code == "canonical" || code == "oid" || code == "uuid"
	case "integer":
		return code == "positiveInt" || code == "unsignedInt"
	}
	return false
}

// fpFindElement returns the element of a struct with the given name (a
// choice element by its name without [x]).
func fpFindElement(st *r4Struct, name string) *r4Element {
	for _, e := range st.elems {
		if e.name == name {
			return e
		}
	}
	return nil
}

// typeRefs returns an element's types; a content reference has those of
// the element it refers to.
func (e *r4Element) typeRefs() []r4TypeRef {
	if e.contentRef != "" && e.inline != nil && e.inline.owner != nil {
		return e.inline.owner.types
	}
	return e.types
}

// fpElemType is the static type of an element's i'th type.
func fpElemType(e *r4Element, types []r4TypeRef, i int) fpType {
	code := types[i].code
	switch {
	case e.inline != nil:
		return fpType{code: code, st: e.inline}
	case code == "Resource":
		return fpAnyResource
	case types[i].def != nil:
		return fpType{code: code, st: types[i].def.body}
	}
	return fpType{code: code}
}
