package fhir

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Index holds the values of a resource that search matches against, one
// entry per value per search parameter, converted by the rules of R4's
// search page for each parameter type. ExtractIndex makes it on every
// write; the store keeps the entries in its index tables. Entries of one
// parameter are de-duplicated; their order is the order the values appear
// in the resource.
//
// Values inside contained resources are not indexed for their container
// (R4: contained resources are not searchable on their own), and neither
// are the parameters whose SearchParam.Unsupported is set. The strings of
// the entries share the memory of one copy of the resource's body.
type Index struct {
	Strings    []StringEntry
	Tokens     []TokenEntry
	References []ReferenceEntry
	Dates      []DateEntry
	Numbers    []NumberEntry
	Quantities []QuantityEntry
	URIs       []URIEntry
	Composites []CompositeEntry
	// PatientCompartment lists the ids of the patients whose compartment
	// the resource is in: a Patient's own id, and the ids of the relative
	// references to Patient (Patient/123) made through the parameters
	// PatientCompartmentParams names. Absolute references are not
	// counted: whether they point at this server is the server's to say
	// (see References).
	PatientCompartment []string
	// Patients lists the ids of every patient the resource is about or
	// refers to: those of PatientCompartment first, in its order, then
	// every other relative reference to a Patient ("Patient/123", with or
	// without "/_history/n") anywhere in the resource, extensions and
	// contained resources included, in document order. Its first entry
	// is the patient whose data the resource is (see PatientData).
	Patients []string
}

// StringEntry is a string parameter's value: a string or markdown, or one
// part of a HumanName (family, each given, prefix, suffix, text) or an
// Address (each line, city, district, state, postalCode, country, text).
type StringEntry struct {
	Param string
	Value string // as written
	Norm  string // NormalizeString(Value): what :exact does not use and the default match does
}

// TokenEntry is a token parameter's value:
//
//   - a Coding: System, Code, and Text its display;
//   - a CodeableConcept: one entry per coding, plus one for its text;
//   - an Identifier: System and Code its system and value, Text its
//     type.text, and TypeSystem and TypeCode one coding of its type (one
//     entry per type coding), for :of-type;
//   - a ContactPoint: System its system (phone, email, ...) and Code its
//     value, as HAPI does;
//   - a code, id, string, uri or other primitive: Code the value;
//   - a boolean: Code "true" or "false".
//
// An entry with an empty Code carries only text (a CodeableConcept's text
// without codings of its own), for :text.
type TokenEntry struct {
	Param  string
	System string
	Code   string
	// Text is the display or text, normalised by NormalizeString.
	Text string
	// TypeSystem and TypeCode are an Identifier's type coding.
	TypeSystem, TypeCode string
}

// ReferenceEntry is a reference parameter's value:
//
//   - a relative reference (Patient/123, Patient/123/_history/2): Type
//     and ID, the version dropped;
//   - an absolute URL: URL the whole (without /_history/n), and Type and
//     ID its last two segments when they are a resource type and an id;
//   - "urn:uuid:..." and other URIs: URL;
//   - a local reference "#id" to a contained resource: Local, URL "#id",
//     Type the contained resource's type, no ID (a contained id means
//     nothing outside the resource);
//   - a canonical or uri: URL without its "|version", which goes to
//     Version, and Type and ID as for an absolute URL;
//   - a Reference's identifier: IdentifierSystem and IdentifierValue, on
//     the same entry as its reference (for :identifier); Type is then
//     Reference.type when there is no reference;
//   - a resource (Bundle.entry[0].resource for Bundle's composition and
//     message): Type its type and ID its id.
type ReferenceEntry struct {
	Param                             string
	Type, ID                          string
	URL                               string
	Version                           string
	Local                             bool
	IdentifierSystem, IdentifierValue string
}

// DateEntry is a date parameter's value as the range of instants it
// covers, [Low, High) in UTC: a date, dateTime or instant as wide as its
// precision (see ParseSearchDate); a Period from its start's Low to its
// end's High, an open end being SearchTimeMin or SearchTimeMax (a Period
// that ends before it starts is left out); a Timing from its earliest
// event to its latest, and its repeat.boundsPeriod as an entry of its own.
type DateEntry struct {
	Param     string
	Low, High time.Time
	Precision DatePrecision // PrecisionRange for Period and Timing
}

// NumberEntry is a number parameter's value: Value, the range [Low, High)
// its precision implies (see ParseSearchNumber), and the decimal as
// written.
type NumberEntry struct {
	Param            string
	Value, Low, High float64
	Text             string
}

// QuantityEntry is a quantity parameter's value:
//
//   - a Quantity (and Age, Count, Distance, Duration, SimpleQuantity):
//     Value with its precision range as for numbers, and its System, Code
//     and Unit;
//   - a Money: Value, System "urn:iso:std:iso:4217" and Code and Unit its
//     currency;
//   - a Range: every value in it matches, so Low is its low's lower bound
//     and High its high's upper bound (±math.MaxFloat64 when open), Value
//     its low value (its high when there is no low), and System, Code and
//     Unit those of its low (or high); a Range whose high is below its low
//     is left out.
//
// SampledData is not indexed.
type QuantityEntry struct {
	Param              string
	Value, Low, High   float64
	System, Code, Unit string
}

// URIEntry is a uri parameter's value, as written.
type URIEntry struct {
	Param string
	Value string
}

// CompositeEntry is one tuple of a composite parameter: for each item its
// expression selects (an Observation, each Observation.component), one
// value per component, in the components' order. A component with several
// values gives one tuple per combination.
type CompositeEntry struct {
	Param string
	Parts []CompositePart
}

// CompositePart is one component value of a composite: exactly one of the
// pointers is set, by the component parameter's type, and its Param is the
// component parameter's code. Token parts carry no Text, and a
// CodeableConcept's text alone makes no part: a composite matches codes.
type CompositePart struct {
	String    *StringEntry
	Token     *TokenEntry
	Reference *ReferenceEntry
	Date      *DateEntry
	Number    *NumberEntry
	Quantity  *QuantityEntry
	URI       *URIEntry
}

// maxCompositeTuples bounds the tuples one composite item may give, so that
// hostile input (many codings times many values) stays cheap.
const maxCompositeTuples = 64

// ExtractIndex evaluates every search parameter of resourceType over body,
// a FHIR JSON resource of that type, and returns the values to index. It
// fails, with a *ParseError, only when resourceType is not an R4 resource
// type (code not-supported) or body is not a JSON object whose resourceType
// is resourceType (structure, invalid); the values themselves are taken as
// they come (a value that does not convert, such as a malformed date, is
// left out), since body is expected to have been validated. It is safe
// for concurrent use.
//
// _id and _lastUpdated come from the body's id and meta.lastUpdated, so
// pass the resource as stored, after the server has set them.
func ExtractIndex(resourceType string, body []byte) (*Index, error) {
	st := searchModel().types[resourceType]
	if st == nil {
		return nil, &ParseError{Code: "not-supported", Msg: fmt.Sprintf("index: %q is not a FHIR R4 resource type", resourceType)}
	}
	env := fpEnvPool.Get().(*fpEnv)
	defer env.release()
	doc, err := env.parse(string(body))
	if err != nil {
		return nil, &ParseError{Code: "structure", Msg: "index: " + err.Error()}
	}
	if doc.root.kind != vjObject {
		return nil, &ParseError{Code: "structure", Msg: "index: the resource is not a JSON object"}
	}
	if rt := vjMember(doc, &doc.root, "resourceType"); rt == nil || rt.kind != vjString || rt.text != resourceType {
		return nil, &ParseError{Code: "invalid", Msg: fmt.Sprintf("index: resourceType is not %q", resourceType)}
	}
	ct := st.compile()
	m := r4Model()
	root := fpItem{node: &doc.root, st: m.types[resourceType].body, typ: resourceType}
	env.m, env.doc = m, doc
	env.buf = append(env.buf[:0], root)
	env.root = env.buf[0:1:1]
	x := &indexer{env: env, ix: ct.newIndex()}
	for i := range ct.params {
		cp := &ct.params[i]
		if cp.expr == nil {
			continue
		}
		mark := len(env.buf)
		x.startParam()
		items := env.eval(cp.expr, env.root)
		if cp.p.Type == "composite" {
			x.composite(cp, items)
		} else {
			for _, it := range items {
				x.convert(cp.p.Code, cp.p.Type, it)
			}
		}
		env.buf = env.buf[:mark]
	}
	x.compartment(st, resourceType, doc)
	x.ix.Patients = patientsOf(x.ix.PatientCompartment, body)
	ct.remember(x.ix)
	return x.ix, nil
}

// fpEnvPool keeps evaluation environments, with their storage for parsed
// JSON and collections, from one extraction to the next.
var fpEnvPool = sync.Pool{New: func() any { return &fpEnv{buf: make([]fpItem, 0, 256)} }}

// parse parses a resource as vjParse does, into the environment's reusable
// node storage: nothing an Index holds points into the nodes (entries hold
// strings of src), so they can serve the next extraction.
func (env *fpEnv) parse(src string) (*vjDoc, error) {
	if len(src) > vjMaxSize {
		return nil, &vjSyntaxError{0, "document too large"}
	}
	n := strings.Count(src, ",") + strings.Count(src, "{") + strings.Count(src, "[")
	if cap(env.nodes) < n {
		env.nodes = make([]vjNode, 0, n)
	}
	p := vjParser{src: src, nodes: env.nodes[:0], stack: env.stack[:0]}
	p.skipSpace()
	root, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.src) {
		return nil, p.fail("unexpected data after the top-level value")
	}
	env.nodes, env.stack = p.nodes, p.stack
	env.docv = vjDoc{nodes: p.nodes, root: root}
	return &env.docv, nil
}

// release clears what the environment holds of the last document and
// returns it to the pool.
func (env *fpEnv) release() {
	clear(env.buf[:cap(env.buf)])
	clear(env.nodes[:cap(env.nodes)])
	clear(env.stack[:cap(env.stack)])
	for i := range env.scratch {
		env.scratch[i].wipe()
		clear(env.parts[i][:cap(env.parts[i])])
		env.parts[i] = env.parts[i][:0]
	}
	env.buf, env.doc, env.root, env.docv = env.buf[:0], nil, nil, vjDoc{}
	fpEnvPool.Put(env)
}

// compiledType is a resource type's parameters, compiled.
type compiledType struct {
	params []compiledParam
	// sizes are the entry counts of the type's last index, per kind: the
	// next index starts with that capacity, which saves most of the
	// reallocation of growing slices.
	sizes [8]atomic.Int32
}

// newIndex returns an empty index sized like the last one of the type.
func (ct *compiledType) newIndex() *Index {
	n := func(i int) int { return int(ct.sizes[i].Load()) }
	return &Index{
		Strings:    make([]StringEntry, 0, n(0)),
		Tokens:     make([]TokenEntry, 0, n(1)),
		References: make([]ReferenceEntry, 0, n(2)),
		Dates:      make([]DateEntry, 0, n(3)),
		Numbers:    make([]NumberEntry, 0, n(4)),
		Quantities: make([]QuantityEntry, 0, n(5)),
		URIs:       make([]URIEntry, 0, n(6)),
		Composites: make([]CompositeEntry, 0, n(7)),
	}
}

// remember records the sizes of an index for newIndex; a type's sizes
// follow its most recent resource, bounded so that one huge resource does
// not make every later index large.
func (ct *compiledType) remember(ix *Index) {
	for i, n := range []int{len(ix.Strings), len(ix.Tokens), len(ix.References), len(ix.Dates),
		len(ix.Numbers), len(ix.Quantities), len(ix.URIs), len(ix.Composites)} {
		ct.sizes[i].Store(int32(min(n, 256)))
	}
}

// compiledParam is one parameter compiled for one resource type. expr is
// nil when the parameter is not indexed: Unsupported, or err says why.
type compiledParam struct {
	p     *SearchParam
	expr  *fpExpr
	comps []*fpExpr
	err   error
}

// compile compiles the type's parameters, once.
func (t *searchType) compile() *compiledType {
	t.once.Do(func() {
		m := r4Model()
		ct := &compiledType{params: make([]compiledParam, len(t.all))}
		for i, p := range t.all {
			ct.params[i] = compileParam(m, t.name, p)
		}
		t.compiled = ct
	})
	return t.compiled
}

// compileParam compiles a parameter's expression, and a composite's
// components against the items its expression selects.
func compileParam(m *r4Definitions, resourceType string, p *SearchParam) compiledParam {
	cp := compiledParam{p: p}
	if p.Unsupported != "" {
		return cp
	}
	root := fpTypes{{code: resourceType, st: m.types[resourceType].body}}
	expr, err := fpCompile(m, p.Expression, root, root)
	if err != nil {
		cp.err = err
		return cp
	}
	for _, c := range p.Components {
		ce, err := fpCompile(m, c.Expression, expr.types, root)
		if err != nil {
			cp.err = fmt.Errorf("component %s: %w", c.Param.Code, err)
			return cp
		}
		cp.comps = append(cp.comps, ce)
	}
	cp.expr = expr
	return cp
}

// indexer converts the items expressions select into index entries.
type indexer struct {
	env    *fpEnv
	ix     *Index
	from   [7]int // where the current parameter's entries start, per kind, for de-duplication
	noText bool   // leave TokenEntry.Text empty (composite parts match codes only)
	// seen are the sets de-duplication takes to once a parameter has many
	// entries of a kind (appendUnique).
	seen struct {
		strings    seenSet[StringEntry]
		tokens     seenSet[TokenEntry]
		references seenSet[ReferenceEntry]
		dates      seenSet[dateKey]
		numbers    seenSet[NumberEntry]
		quantities seenSet[QuantityEntry]
		uris       seenSet[URIEntry]
	}
}

// startParam marks where the next parameter's entries start.
func (x *indexer) startParam() {
	ix := x.ix
	x.from = [7]int{len(ix.Strings), len(ix.Tokens), len(ix.References), len(ix.Dates), len(ix.Numbers), len(ix.Quantities), len(ix.URIs)}
}

// composite adds the tuples of a composite parameter. Each component's
// values are converted into a scratch index reused from item to item; the
// tuples copy the values they use.
func (x *indexer) composite(cp *compiledParam, items []fpItem) {
	scratch, parts, idx := x.env.compositeScratch(len(cp.comps))
	for i := range items {
		n := 1
		for c, ce := range cp.comps {
			sub := &indexer{env: x.env, ix: &scratch[c], noText: true}
			sub.ix.reset()
			sub.startParam()
			mark := len(x.env.buf)
			x.env.buf = append(x.env.buf, items[i])
			vals := x.env.eval(ce, x.env.buf[mark:mark+1:mark+1])
			comp := cp.p.Components[c].Param
			for _, v := range vals {
				sub.convert(comp.Code, comp.Type, v)
			}
			x.env.buf = x.env.buf[:mark]
			parts[c] = sub.ix.parts(parts[c][:0])
			n *= len(parts[c])
		}
		if n == 0 || n > maxCompositeTuples {
			continue
		}
		// Every combination, the first component varying slowest.
		clear(idx)
		for k := 0; k < n; k++ {
			e := CompositeEntry{Param: cp.p.Code, Parts: make([]CompositePart, len(parts))}
			for c := range parts {
				e.Parts[c] = parts[c][idx[c]]
			}
			if !containsComposite(x.ix.Composites, e) {
				for c := range e.Parts {
					e.Parts[c] = e.Parts[c].clone()
				}
				x.ix.Composites = append(x.ix.Composites, e)
			}
			for c := len(idx) - 1; c >= 0; c-- {
				if idx[c]++; idx[c] < len(parts[c]) {
					break
				}
				idx[c] = 0
			}
		}
	}
}

// compositeScratch returns the environment's reusable storage for a
// composite of n components: an index per component, the parts of each,
// and the combination counters.
func (env *fpEnv) compositeScratch(n int) ([]Index, [][]CompositePart, []int) {
	for len(env.scratch) < n {
		env.scratch = append(env.scratch, Index{})
		env.parts = append(env.parts, nil)
		env.combo = append(env.combo, 0)
	}
	return env.scratch[:n], env.parts[:n], env.combo[:n]
}

// reset empties an index, keeping its storage.
func (ix *Index) reset() {
	ix.Strings, ix.Tokens, ix.References, ix.Dates = ix.Strings[:0], ix.Tokens[:0], ix.References[:0], ix.Dates[:0]
	ix.Numbers, ix.Quantities, ix.URIs = ix.Numbers[:0], ix.Quantities[:0], ix.URIs[:0]
}

// wipe empties an index and zeroes its storage, which it keeps.
func (ix *Index) wipe() {
	clear(ix.Strings[:cap(ix.Strings)])
	clear(ix.Tokens[:cap(ix.Tokens)])
	clear(ix.References[:cap(ix.References)])
	clear(ix.Dates[:cap(ix.Dates)])
	clear(ix.Numbers[:cap(ix.Numbers)])
	clear(ix.Quantities[:cap(ix.Quantities)])
	clear(ix.URIs[:cap(ix.URIs)])
	ix.reset()
}

// clone copies the value a part points to.
func (p CompositePart) clone() CompositePart {
	switch {
	case p.String != nil:
		v := *p.String
		return CompositePart{String: &v}
	case p.Token != nil:
		v := *p.Token
		return CompositePart{Token: &v}
	case p.Reference != nil:
		v := *p.Reference
		return CompositePart{Reference: &v}
	case p.Date != nil:
		v := *p.Date
		return CompositePart{Date: &v}
	case p.Number != nil:
		v := *p.Number
		return CompositePart{Number: &v}
	case p.Quantity != nil:
		v := *p.Quantity
		return CompositePart{Quantity: &v}
	case p.URI != nil:
		v := *p.URI
		return CompositePart{URI: &v}
	}
	return p
}

// parts returns the entries of an index as composite parts. A token
// entry that carries only text is left out: a composite matches codes.
func (ix *Index) parts(out []CompositePart) []CompositePart {
	for i := range ix.Strings {
		out = append(out, CompositePart{String: &ix.Strings[i]})
	}
	for i := range ix.Tokens {
		if ix.Tokens[i].Code != "" {
			out = append(out, CompositePart{Token: &ix.Tokens[i]})
		}
	}
	for i := range ix.References {
		out = append(out, CompositePart{Reference: &ix.References[i]})
	}
	for i := range ix.Dates {
		out = append(out, CompositePart{Date: &ix.Dates[i]})
	}
	for i := range ix.Numbers {
		out = append(out, CompositePart{Number: &ix.Numbers[i]})
	}
	for i := range ix.Quantities {
		out = append(out, CompositePart{Quantity: &ix.Quantities[i]})
	}
	for i := range ix.URIs {
		out = append(out, CompositePart{URI: &ix.URIs[i]})
	}
	return out
}

func containsComposite(list []CompositeEntry, e CompositeEntry) bool {
	for _, o := range list {
		if o.Param != e.Param || len(o.Parts) != len(e.Parts) {
			continue
		}
		same := true
		for i := range o.Parts {
			if !samePart(o.Parts[i], e.Parts[i]) {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

func samePart(a, b CompositePart) bool {
	switch {
	case a.String != nil && b.String != nil:
		return *a.String == *b.String
	case a.Token != nil && b.Token != nil:
		return *a.Token == *b.Token
	case a.Reference != nil && b.Reference != nil:
		return *a.Reference == *b.Reference
	case a.Date != nil && b.Date != nil:
		return sameDate(*a.Date, *b.Date)
	case a.Number != nil && b.Number != nil:
		return *a.Number == *b.Number
	case a.Quantity != nil && b.Quantity != nil:
		return *a.Quantity == *b.Quantity
	case a.URI != nil && b.URI != nil:
		return *a.URI == *b.URI
	}
	return false
}

func sameDate(a, b DateEntry) bool {
	return a.Param == b.Param && a.Low.Equal(b.Low) && a.High.Equal(b.High) && a.Precision == b.Precision
}

// compartment fills in PatientCompartment.
func (x *indexer) compartment(st *searchType, resourceType string, doc *vjDoc) {
	add := func(id string) {
		for _, o := range x.ix.PatientCompartment {
			if o == id {
				return
			}
		}
		x.ix.PatientCompartment = append(x.ix.PatientCompartment, id)
	}
	for _, code := range st.compartment {
		if code == CompartmentSelf {
			if id := vjMember(doc, &doc.root, "id"); id != nil && id.kind == vjString && primIsID(id.text) {
				add(id.text)
			}
			continue
		}
		for _, r := range x.ix.References {
			if r.Param == code && r.Type == "Patient" && r.ID != "" && r.URL == "" {
				add(r.ID)
			}
		}
	}
}
