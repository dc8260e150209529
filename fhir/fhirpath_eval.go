package fhir

import (
	"strconv"
	"strings"
)

// Evaluating the FHIRPath subset of fhirpath.go, compiled by
// fhirpath_compile.go.
//
// Evaluation works on the validator's parsed JSON (vjDoc), item by item; an
// item carries its JSON value and its FHIR type, which the model gives for
// each element, and for a choice element the JSON name picks
// (valueQuantity is a Quantity). Collections are windows of one growing
// slice per evaluation (fpEnv.buf), so a whole extraction allocates almost
// nothing beyond the parse.

// fpItem is one value of a collection: a JSON value with its FHIR type, or
// a value computed by the expression (a literal, a boolean).
type fpItem struct {
	node *vjNode   // the JSON value; nil for computed values and unresolved references
	st   *r4Struct // the children of a complex value or resource
	typ  string    // FHIR type code: "HumanName", "string", "Patient", "BackboneElement"
	str  string    // a computed string, or a number's literal
	b    bool      // a computed boolean
}

// fpType is a static type: what an expression may yield.
type fpType struct {
	code string    // as fpItem.typ; "Resource" with st nil is a resource of any type
	st   *r4Struct // the children, for complex types
}

type fpTypes []fpType

func (ts fpTypes) add(t fpType) fpTypes {
	for _, u := range ts {
		if u == t {
			return ts
		}
	}
	return append(ts, t)
}

// fpMemberRef is what a member name denotes in one struct.
type fpMemberRef struct {
	st   *r4Struct
	elem *r4Element
}

// fpAnyResource is the static type of a resource not known until run time.
var fpAnyResource = fpType{code: "Resource"}

// fpEnv is the state of one evaluation: the document and the collections
// made so far.
type fpEnv struct {
	m    *r4Definitions
	doc  *vjDoc
	root []fpItem // %resource, as a collection of one
	buf  []fpItem

	// Reusable storage for parsing (index.go).
	nodes, stack []vjNode
	docv         vjDoc

	// Reusable storage for composites (index.go).
	scratch []Index
	parts   [][]CompositePart
	combo   []int
}

// window returns the items appended since start as a collection.
func (env *fpEnv) window(start int) []fpItem {
	return env.buf[start:len(env.buf):len(env.buf)]
}

// eval evaluates e on an input collection.
func (env *fpEnv) eval(e *fpExpr, in []fpItem) []fpItem {
	switch e.op {
	case fpMember, fpFunc, fpIndex, fpIs, fpAs:
		if e.left != nil {
			in = env.eval(e.left, in)
		}
	}
	start := len(env.buf)
	switch e.op {
	case fpLiteral:
		env.buf = append(env.buf, e.lit)
	case fpEmptySet:
	case fpThis:
		return in
	case fpRoot:
		return env.root
	case fpTypeRoot, fpAs:
		for _, it := range in {
			if fpIsType(env.m, it.typ, e.spec) {
				env.buf = append(env.buf, it)
			}
		}
	case fpMember:
		for i := range in {
			env.member(e, &in[i])
		}
	case fpIndex:
		n, _ := strconv.Atoi(e.args[0].lit.str)
		if n >= 0 && n < len(in) {
			return in[n : n+1 : n+1]
		}
	case fpIs:
		if len(in) == 1 {
			env.appendBool(fpIsType(env.m, in[0].typ, e.spec))
		}
	case fpUnion:
		l := env.eval(e.left, in)
		r := env.eval(e.right, in)
		start = len(env.buf)
		env.buf = append(env.buf, l...)
		for _, it := range r {
			if !fpContains(env.buf[start:], it) {
				env.buf = append(env.buf, it)
			}
		}
	case fpEq, fpNe:
		eq, known := fpEqual(env.eval(e.left, in), env.eval(e.right, in))
		start = len(env.buf)
		if known {
			env.appendBool(eq == (e.op == fpEq))
		}
	case fpAnd, fpOr, fpXor, fpImplies:
		a, aok := fpTruth(env.eval(e.left, in))
		b, bok := fpTruth(env.eval(e.right, in))
		start = len(env.buf)
		switch e.op {
		case fpAnd:
			switch {
			case aok && !a || bok && !b:
				env.appendBool(false)
			case aok && bok:
				env.appendBool(true)
			}
		case fpOr:
			switch {
			case aok && a || bok && b:
				env.appendBool(true)
			case aok && bok:
				env.appendBool(false)
			}
		case fpXor:
			if aok && bok {
				env.appendBool(a != b)
			}
		case fpImplies:
			switch {
			case aok && !a || bok && b:
				env.appendBool(true)
			case aok && bok:
				env.appendBool(false)
			}
		}
	case fpFunc:
		return env.function(e, in)
	}
	return env.window(start)
}

func (env *fpEnv) appendBool(b bool) {
	env.buf = append(env.buf, fpItem{typ: "boolean", b: b})
}

// member appends the values of the element e names in one item.
func (env *fpEnv) member(e *fpExpr, it *fpItem) {
	if it.node == nil || it.node.kind != vjObject || it.st == nil {
		return
	}
	var el *r4Element
	for _, m := range e.members {
		if m.st == it.st {
			el = m.elem
			break
		}
	}
	if el == nil {
		// A struct the compiler did not foresee (it cannot happen for a
		// type-checked expression, but costs nothing to handle).
		if el = fpFindElement(it.st, e.name); el == nil {
			return
		}
	}
	kids := env.doc.kids(it.node)
	for k := range kids {
		kid := &kids[k]
		if el.choice {
			if len(kid.key) <= len(el.name) || !strings.HasPrefix(kid.key, el.name) {
				continue
			}
			slot, ok := it.st.byJSON[kid.key]
			if !ok || slot.elem != el {
				continue
			}
			env.appendValue(kid, el, slot.typ)
		} else if kid.key == el.name {
			env.appendValue(kid, el, 0)
		}
	}
}

// appendValue appends the items of an element's JSON value: each item of
// an array, the value itself otherwise; nulls are skipped.
func (env *fpEnv) appendValue(v *vjNode, el *r4Element, typ int) {
	types := el.typeRefs()
	if typ >= len(types) {
		return
	}
	t := fpElemType(el, types, typ)
	if v.kind == vjArray {
		kids := env.doc.kids(v)
		for k := range kids {
			env.appendTyped(&kids[k], t)
		}
		return
	}
	env.appendTyped(v, t)
}

func (env *fpEnv) appendTyped(v *vjNode, t fpType) {
	switch {
	case v.kind == vjNull:
		return
	case t == fpAnyResource:
		rt := vjMember(env.doc, v, "resourceType")
		if v.kind != vjObject || rt == nil || rt.kind != vjString {
			return
		}
		def := env.m.types[rt.text]
		if def == nil || def.kind != r4KindResource || def.abstract {
			return
		}
		t = fpType{code: rt.text, st: def.body}
	case t.st != nil && v.kind != vjObject:
		return // a complex element written as something else
	case t.st == nil && (v.kind == vjObject || v.kind == vjArray):
		return // a primitive written as an object or array
	}
	env.buf = append(env.buf, fpItem{node: v, st: t.st, typ: t.code})
}

// function evaluates a function call on its input.
func (env *fpEnv) function(e *fpExpr, in []fpItem) []fpItem {
	start := len(env.buf)
	switch e.name {
	case "where":
		for i := range in {
			mark := len(env.buf)
			env.buf = append(env.buf, in[i])
			ok, known := fpTruth(env.eval(e.args[0], env.buf[mark:mark+1:mark+1]))
			env.buf = env.buf[:mark]
			if ok && known {
				env.buf = append(env.buf, in[i])
			}
		}
	case "exists":
		found := len(in) > 0
		if len(e.args) == 1 {
			found = false
			for i := range in {
				mark := len(env.buf)
				env.buf = append(env.buf, in[i])
				ok, known := fpTruth(env.eval(e.args[0], env.buf[mark:mark+1:mark+1]))
				env.buf = env.buf[:mark]
				if ok && known {
					found = true
					break
				}
			}
		}
		env.appendBool(found)
	case "empty":
		env.appendBool(len(in) == 0)
	case "not":
		if b, ok := fpTruth(in); ok {
			env.appendBool(!b)
		}
	case "hasValue":
		has := false
		if len(in) == 1 {
			_, _, _, has = fpPrimitive(in[0])
		}
		env.appendBool(has)
	case "count":
		env.buf = append(env.buf, fpItem{typ: "integer", str: strconv.Itoa(len(in))})
	case "first":
		if len(in) > 0 {
			return in[:1:1]
		}
	case "last":
		if len(in) > 0 {
			return in[len(in)-1:]
		}
	case "single":
		if len(in) == 1 {
			return in
		}
	case "ofType", "as":
		for _, it := range in {
			if fpIsType(env.m, it.typ, e.spec) {
				env.buf = append(env.buf, it)
			}
		}
	case "is":
		if len(in) == 1 {
			env.appendBool(fpIsType(env.m, in[0].typ, e.spec))
		}
	case "resolve":
		for i := range in {
			if it, ok := env.resolve(&in[i]); ok {
				env.buf = append(env.buf, it)
			}
		}
	case "extension":
		url := e.args[0].lit.str
		ext := env.m.types["Extension"].body
		for _, it := range in {
			if it.node == nil || it.node.kind != vjObject {
				continue
			}
			list := vjMember(env.doc, it.node, "extension")
			if list == nil || list.kind != vjArray {
				continue
			}
			kids := env.doc.kids(list)
			for k := range kids {
				x := &kids[k]
				if u := vjMember(env.doc, x, "url"); x.kind == vjObject && u != nil && u.kind == vjString && u.text == url {
					env.buf = append(env.buf, fpItem{node: x, st: ext, typ: "Extension"})
				}
			}
		}
	}
	return env.window(start)
}

// resolve finds what a reference points to, as far as a search needs it:
// its resource type. A local reference ("#id") resolves to the contained
// resource; any other to a placeholder of the type the reference names
// (its Type/id segments, or Reference.type), with no content. A reference
// whose type cannot be told resolves to nothing.
func (env *fpEnv) resolve(it *fpItem) (fpItem, bool) {
	var ref, typ string
	switch {
	case it.typ == "Reference" && it.node != nil && it.node.kind == vjObject:
		if r := vjMember(env.doc, it.node, "reference"); r != nil && r.kind == vjString {
			ref = r.text
		}
		if t := vjMember(env.doc, it.node, "type"); t != nil && t.kind == vjString {
			typ = t.text
		}
	case it.node != nil && it.node.kind == vjString:
		ref = it.node.text
	default:
		return fpItem{}, false
	}
	if id, ok := strings.CutPrefix(ref, "#"); ok && ref != "" {
		if c := env.contained(id); c != nil {
			return *c, true
		}
		return fpItem{}, false
	}
	if ref != "" {
		if r := parseReference(ref); r.Type != "" {
			typ = r.Type
		}
	}
	def := env.m.types[typ]
	if def == nil || def.kind != r4KindResource || def.abstract {
		return fpItem{}, false
	}
	return fpItem{typ: typ, st: def.body}, true
}

// contained returns the contained resource with the given id.
func (env *fpEnv) contained(id string) *fpItem {
	if len(env.root) == 0 || env.root[0].node == nil {
		return nil
	}
	list := vjMember(env.doc, env.root[0].node, "contained")
	if list == nil || list.kind != vjArray {
		return nil
	}
	kids := env.doc.kids(list)
	for k := range kids {
		c := &kids[k]
		if v := vjMember(env.doc, c, "id"); c.kind == vjObject && v != nil && v.kind == vjString && v.text == id {
			start := len(env.buf)
			env.appendTyped(c, fpAnyResource)
			if len(env.buf) > start {
				it := env.buf[start]
				env.buf = env.buf[:start]
				return &it
			}
		}
	}
	return nil
}

// vjMember returns an object's member with the given key, or nil.
func vjMember(d *vjDoc, obj *vjNode, key string) *vjNode {
	if obj == nil || obj.kind != vjObject {
		return nil
	}
	kids := d.kids(obj)
	for k := range kids {
		if kids[k].key == key {
			return &kids[k]
		}
	}
	return nil
}

// fpPrimitive returns the value of a primitive item: its kind ('s' string,
// 'n' number, 'b' boolean), text and truth.
func fpPrimitive(it fpItem) (kind byte, s string, b bool, ok bool) {
	if it.node == nil {
		switch it.typ {
		case "boolean":
			return 'b', "", it.b, true
		case "integer", "decimal":
			return 'n', it.str, false, true
		case "string":
			return 's', it.str, false, true
		}
		return 0, "", false, false
	}
	switch it.node.kind {
	case vjString:
		return 's', it.node.text, false, true
	case vjNumber:
		return 'n', it.node.text, false, true
	case vjBool:
		return 'b', "", it.node.boolean, true
	}
	return 0, "", false, false
}

// fpTruth is a collection as a boolean: empty is unknown, a single boolean
// is its value, any other single item is true; several items are unknown
// (FHIRPath makes that an error).
func fpTruth(c []fpItem) (value, known bool) {
	if len(c) != 1 {
		return false, false
	}
	if kind, _, b, ok := fpPrimitive(c[0]); ok && kind == 'b' {
		return b, true
	}
	return true, true
}

// fpEqual is FHIRPath's "=": unknown when either side is empty, false
// when the sizes differ, else item by item. Primitives compare by value
// (numbers numerically); complex values only when they are the same JSON
// value.
func fpEqual(a, b []fpItem) (eq, known bool) {
	if len(a) == 0 || len(b) == 0 {
		return false, false
	}
	if len(a) != len(b) {
		return false, true
	}
	for i := range a {
		if !fpItemEqual(a[i], b[i]) {
			return false, true
		}
	}
	return true, true
}

func fpItemEqual(x, y fpItem) bool {
	xk, xs, xb, xok := fpPrimitive(x)
	yk, ys, yb, yok := fpPrimitive(y)
	switch {
	case !xok || !yok:
		return x.node != nil && x.node == y.node
	case xk != yk:
		return false
	case xk == 'b':
		return xb == yb
	case xk == 'n':
		fx, err1 := strconv.ParseFloat(xs, 64)
		fy, err2 := strconv.ParseFloat(ys, 64)
		return err1 == nil && err2 == nil && fx == fy
	}
	return xs == ys
}

// fpContains reports whether a collection holds the same value as it, for
// union's removal of duplicates: the same JSON value, or an equal computed
// one.
func fpContains(c []fpItem, it fpItem) bool {
	for _, o := range c {
		if it.node != nil && o.node == it.node {
			return true
		}
		if it.node == nil && o.node == nil && o.typ == it.typ && o.str == it.str && o.b == it.b {
			return true
		}
	}
	return false
}
