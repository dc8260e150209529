package fhir

import (
	"math"
	"time"
)

// The conversion of one selected value into index entries, by search
// parameter type and the value's FHIR type: R4's search page, "Search
// parameter types" and the table of which data types each applies to. A
// value of a type the table does not pair with the parameter type gives no
// entry (a Procedure.performed that is a string, for the date parameter).

// convert adds the entries one item gives a parameter of the given type.
func (x *indexer) convert(code, typ string, it fpItem) {
	switch typ {
	case "string":
		x.stringValue(code, it)
	case "token":
		x.tokenValue(code, it)
	case "reference":
		x.referenceValue(code, it)
	case "date":
		x.dateValue(code, it)
	case "number":
		x.numberValue(code, it)
	case "quantity":
		x.quantityValue(code, it)
	case "uri":
		x.uriValue(code, it)
	}
}

// str returns an object's string member, or "".
func (x *indexer) str(obj *vjNode, key string) string {
	if v := vjMember(x.env.doc, obj, key); v != nil && v.kind == vjString {
		return v.text
	}
	return ""
}

// strs calls f with each string of an object's member that is a string or
// an array of strings.
func (x *indexer) strs(obj *vjNode, key string, f func(string)) {
	v := vjMember(x.env.doc, obj, key)
	switch {
	case v == nil:
	case v.kind == vjString:
		f(v.text)
	case v.kind == vjArray:
		kids := x.env.doc.kids(v)
		for k := range kids {
			if kids[k].kind == vjString {
				f(kids[k].text)
			}
		}
	}
}

// objs calls f with each object of an object's member that is an object
// or an array of objects.
func (x *indexer) objs(obj *vjNode, key string, f func(*vjNode)) {
	v := vjMember(x.env.doc, obj, key)
	switch {
	case v == nil:
	case v.kind == vjObject:
		f(v)
	case v.kind == vjArray:
		kids := x.env.doc.kids(v)
		for k := range kids {
			if kids[k].kind == vjObject {
				f(&kids[k])
			}
		}
	}
}

// object returns the item's JSON object, or nil.
func object(it fpItem) *vjNode {
	if it.node != nil && it.node.kind == vjObject {
		return it.node
	}
	return nil
}

// primitiveText returns a string or number primitive's text.
func primitiveText(it fpItem) (string, bool) {
	kind, s, _, ok := fpPrimitive(it)
	return s, ok && (kind == 's' || kind == 'n')
}

func (x *indexer) stringValue(code string, it fpItem) {
	add := func(s string) {
		if s == "" {
			return
		}
		e := StringEntry{Param: code, Value: s, Norm: NormalizeString(s)}
		x.ix.Strings = appendUnique(x.ix.Strings, x.from[0], &x.seen.strings, e)
	}
	obj := object(it)
	switch {
	case it.typ == "HumanName" && obj != nil:
		add(x.str(obj, "family"))
		x.strs(obj, "given", add)
		x.strs(obj, "prefix", add)
		x.strs(obj, "suffix", add)
		add(x.str(obj, "text"))
	case it.typ == "Address" && obj != nil:
		x.strs(obj, "line", add)
		for _, k := range []string{"city", "district", "state", "postalCode", "country", "text"} {
			add(x.str(obj, k))
		}
	case obj == nil:
		if s, ok := primitiveText(it); ok {
			add(s)
		}
	}
}

func (x *indexer) addToken(e TokenEntry) {
	if e.Code == "" && e.Text == "" {
		return
	}
	x.ix.Tokens = appendUnique(x.ix.Tokens, x.from[1], &x.seen.tokens, e)
}

func (x *indexer) tokenValue(code string, it fpItem) {
	obj := object(it)
	text := func(s string) string {
		if x.noText {
			return ""
		}
		return NormalizeString(s)
	}
	coding := func(c *vjNode) {
		x.addToken(TokenEntry{Param: code, System: x.str(c, "system"), Code: x.str(c, "code"), Text: text(x.str(c, "display"))})
	}
	switch {
	case obj == nil:
		kind, s, b, ok := fpPrimitive(it)
		switch {
		case !ok:
		case kind == 'b':
			s = "false"
			if b {
				s = "true"
			}
			fallthrough
		default:
			x.addToken(TokenEntry{Param: code, Code: s})
		}
	case it.typ == "Coding":
		coding(obj)
	case it.typ == "CodeableConcept":
		x.objs(obj, "coding", coding)
		x.addToken(TokenEntry{Param: code, Text: text(x.str(obj, "text"))})
	case it.typ == "Identifier":
		e := TokenEntry{Param: code, System: x.str(obj, "system"), Code: x.str(obj, "value")}
		typed := false
		if t := vjMember(x.env.doc, obj, "type"); t != nil && t.kind == vjObject {
			e.Text = text(x.str(t, "text"))
			x.objs(t, "coding", func(c *vjNode) {
				te := e
				te.TypeSystem, te.TypeCode = x.str(c, "system"), x.str(c, "code")
				if te.TypeCode != "" {
					x.addToken(te)
					typed = true
				}
			})
		}
		if !typed {
			x.addToken(e)
		}
	case it.typ == "ContactPoint":
		x.addToken(TokenEntry{Param: code, System: x.str(obj, "system"), Code: x.str(obj, "value")})
	}
}

func (x *indexer) addReference(e ReferenceEntry) {
	x.ix.References = appendUnique(x.ix.References, x.from[2], &x.seen.references, e)
}

func (x *indexer) referenceValue(code string, it fpItem) {
	obj := object(it)
	switch {
	case obj == nil:
		if s, ok := primitiveText(it); ok && s != "" {
			r := parseCanonical(s)
			x.addReference(ReferenceEntry{Param: code, Type: r.Type, ID: r.ID, URL: r.URL, Version: r.Version})
		}
	case it.typ == "Reference":
		ref := x.str(obj, "reference")
		r := parseReference(ref)
		e := ReferenceEntry{Param: code, Type: r.Type, ID: r.ID, URL: r.URL, Local: r.Local}
		if r.Local {
			if c := x.env.contained(ref[1:]); c != nil {
				e.Type = c.typ
			}
		}
		if e.Type == "" {
			if t := x.str(obj, "type"); IsResourceType(t) {
				e.Type = t
			}
		}
		if id := vjMember(x.env.doc, obj, "identifier"); id != nil && id.kind == vjObject {
			e.IdentifierSystem, e.IdentifierValue = x.str(id, "system"), x.str(id, "value")
		}
		if ref != "" || e.IdentifierValue != "" {
			x.addReference(e)
		}
	case it.st != nil && IsResourceType(it.typ):
		// A resource selected in place of a reference: Bundle's
		// composition and message are its first entry's resource.
		if id := x.str(obj, "id"); id != "" {
			x.addReference(ReferenceEntry{Param: code, Type: it.typ, ID: id})
		}
	}
}

func (x *indexer) addDate(e DateEntry) {
	k := dateKeyOf(e)
	if cur := x.ix.Dates[x.from[3]:]; len(cur) < linearDedup {
		for _, o := range cur {
			if sameDate(o, e) {
				return
			}
		}
	} else if x.seen.dates.holds(x.from[3], k, func() []dateKey {
		keys := make([]dateKey, len(cur))
		for i, o := range cur {
			keys[i] = dateKeyOf(o)
		}
		return keys
	}) {
		return
	}
	x.ix.Dates = append(x.ix.Dates, e)
}

// dateKey is what makes two DateEntry the same (sameDate).
type dateKey struct {
	param             string
	lowSec, highSec   int64
	lowNsec, highNsec int
	prec              DatePrecision
}

func dateKeyOf(e DateEntry) dateKey {
	return dateKey{e.Param, e.Low.Unix(), e.High.Unix(), e.Low.Nanosecond(), e.High.Nanosecond(), e.Precision}
}

func (x *indexer) dateValue(code string, it fpItem) {
	obj := object(it)
	switch {
	case obj == nil:
		if s, ok := primitiveText(it); ok {
			if low, high, prec, ok := parseDateRange(s); ok {
				x.addDate(DateEntry{Param: code, Low: low, High: high, Precision: prec})
			}
		}
	case it.typ == "Period":
		x.period(code, obj)
	case it.typ == "Timing":
		var low, high timeBound
		x.strs(obj, "event", func(s string) {
			if l, h, _, ok := parseDateRange(s); ok {
				low.min(l)
				high.max(h)
			}
		})
		if low.set {
			x.addDate(DateEntry{Param: code, Low: low.t, High: high.t})
		}
		if r := vjMember(x.env.doc, obj, "repeat"); r != nil {
			if b := vjMember(x.env.doc, r, "boundsPeriod"); b != nil && b.kind == vjObject {
				x.period(code, b)
			}
		}
	}
}

// period adds a Period: from its start's low to its end's high, an open or
// unreadable end standing for the far past or future. A Period with
// neither, or that ends before it starts (R4's per-1 forbids it), gives
// nothing.
func (x *indexer) period(code string, obj *vjNode) {
	low, high := SearchTimeMin, SearchTimeMax
	start, end := x.str(obj, "start"), x.str(obj, "end")
	if l, _, _, ok := parseDateRange(start); ok {
		low = l
	}
	if _, h, _, ok := parseDateRange(end); ok {
		high = h
	}
	if start == "" && end == "" || !low.Before(high) {
		return
	}
	x.addDate(DateEntry{Param: code, Low: low, High: high})
}

func (x *indexer) addNumber(e NumberEntry) {
	x.ix.Numbers = appendUnique(x.ix.Numbers, x.from[4], &x.seen.numbers, e)
}

func (x *indexer) numberValue(code string, it fpItem) {
	obj := object(it)
	switch {
	case obj == nil:
		if s, ok := primitiveText(it); ok {
			if v, lo, hi, ok := parseNumberRange(s); ok {
				x.addNumber(NumberEntry{Param: code, Value: v, Low: lo, High: hi, Text: s})
			}
		}
	case it.typ == "Range":
		if q, ok := x.rangeValue(obj); ok {
			x.addNumber(NumberEntry{Param: code, Value: q.Value, Low: q.Low, High: q.High})
		}
	case fpSystemType(it.typ) == "Quantity":
		if q, ok := x.quantity(obj); ok {
			x.addNumber(NumberEntry{Param: code, Value: q.Value, Low: q.Low, High: q.High, Text: x.numberText(obj)})
		}
	}
}

func (x *indexer) numberText(obj *vjNode) string {
	if v := vjMember(x.env.doc, obj, "value"); v != nil && v.kind == vjNumber {
		return v.text
	}
	return ""
}

// quantity reads a Quantity's value, its precision range and its units.
func (x *indexer) quantity(obj *vjNode) (QuantityEntry, bool) {
	v := vjMember(x.env.doc, obj, "value")
	if v == nil || v.kind != vjNumber {
		return QuantityEntry{}, false
	}
	val, lo, hi, ok := parseNumberRange(v.text)
	if !ok {
		return QuantityEntry{}, false
	}
	return QuantityEntry{Value: val, Low: lo, High: hi, System: x.str(obj, "system"), Code: x.str(obj, "code"), Unit: x.str(obj, "unit")}, true
}

// rangeValue reads a Range as one entry covering every value in it.
func (x *indexer) rangeValue(obj *vjNode) (QuantityEntry, bool) {
	var lowQ, highQ QuantityEntry
	var hasLow, hasHigh bool
	if l := vjMember(x.env.doc, obj, "low"); l != nil {
		lowQ, hasLow = x.quantity(l)
	}
	if h := vjMember(x.env.doc, obj, "high"); h != nil {
		highQ, hasHigh = x.quantity(h)
	}
	switch {
	case hasLow && hasHigh:
		if highQ.Value < lowQ.Value {
			return QuantityEntry{}, false // R4's rng-2 forbids it
		}
		e := lowQ
		e.High = highQ.High
		return e, true
	case hasLow:
		e := lowQ
		e.High = math.MaxFloat64
		return e, true
	case hasHigh:
		e := highQ
		e.Low = -math.MaxFloat64
		return e, true
	}
	return QuantityEntry{}, false
}

func (x *indexer) quantityValue(code string, it fpItem) {
	obj := object(it)
	if obj == nil {
		return
	}
	var e QuantityEntry
	var ok bool
	switch {
	case fpSystemType(it.typ) == "Quantity":
		e, ok = x.quantity(obj)
	case it.typ == "Money":
		if e, ok = x.quantity(obj); ok {
			cur := x.str(obj, "currency")
			e.System, e.Code, e.Unit = "urn:iso:std:iso:4217", cur, cur
			if cur == "" {
				e.System = ""
			}
		}
	case it.typ == "Range":
		e, ok = x.rangeValue(obj)
	}
	if !ok {
		return
	}
	e.Param = code
	x.ix.Quantities = appendUnique(x.ix.Quantities, x.from[5], &x.seen.quantities, e)
}

func (x *indexer) uriValue(code string, it fpItem) {
	s, ok := primitiveText(it)
	if !ok || s == "" || object(it) != nil {
		return
	}
	e := URIEntry{Param: code, Value: s}
	x.ix.URIs = appendUnique(x.ix.URIs, x.from[6], &x.seen.uris, e)
}

// timeBound keeps the earliest or latest of some instants.
type timeBound struct {
	t   time.Time
	set bool
}

func (b *timeBound) min(t time.Time) {
	if !b.set || t.Before(b.t) {
		b.t, b.set = t, true
	}
}

func (b *timeBound) max(t time.Time) {
	if !b.set || t.After(b.t) {
		b.t, b.set = t, true
	}
}

// linearDedup is how many entries of one parameter are compared one by
// one before a set takes over, so that a resource with thousands of
// values of a parameter is indexed in time proportional to them.
const linearDedup = 32

// seenSet is the set of the entries of the parameter being indexed, built
// once it holds linearDedup of them.
type seenSet[K comparable] struct {
	from int // the parameter's first entry, for which m was built
	m    map[K]struct{}
}

// holds reports whether the parameter starting at entry from already has
// an entry whose key is k, and when it does not, adds k (the caller
// appends the entry). existing gives the keys of the parameter's entries
// so far, read when the set is built.
func (s *seenSet[K]) holds(from int, k K, existing func() []K) bool {
	if s.m == nil || s.from != from {
		s.from, s.m = from, map[K]struct{}{}
		for _, o := range existing() {
			s.m[o] = struct{}{}
		}
	}
	if _, ok := s.m[k]; ok {
		return true
	}
	s.m[k] = struct{}{}
	return false
}

// appendUnique appends e to list unless list[from:], the entries of the
// parameter being indexed, already holds it: one by one for the first
// linearDedup entries, through seen after.
func appendUnique[T comparable](list []T, from int, seen *seenSet[T], e T) []T {
	if cur := list[from:]; len(cur) < linearDedup {
		for _, o := range cur {
			if o == e {
				return list
			}
		}
		return append(list, e)
	}
	if seen.holds(from, e, func() []T { return list[from:] }) {
		return list
	}
	return append(list, e)
}
