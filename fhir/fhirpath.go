package fhir

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A FHIRPath subset: what R4's search parameter expressions use, parsed
// into a tree here, type-checked against the R4 model and evaluated over
// parsed JSON in fhirpath_eval.go.
//
// Supported (FHIRPath N1, the version R4 references):
//
//   - paths: Patient.name.given, with choice elements by their base name
//     (Observation.value) and a leading type name that filters the context
//     (Patient, Resource, DomainResource); relative paths (name | alias)
//   - literals: 'strings' with escapes, true, false, integers, decimals, {}
//   - $this, %resource, %rootResource, %context
//   - operators, by FHIRPath precedence: indexer [n]; is, as; |; =, !=;
//     and; or, xor; implies
//   - functions: where(criteria), exists([criteria]), empty(), not(),
//     hasValue(), count(), first(), last(), single(), ofType(T), as(T),
//     is(T), resolve(), extension(url)
//
// Anything else (arithmetic, comparisons, other functions) is rejected
// when the expression is compiled, naming what is missing, so a parameter
// that needs more is listed by the tests rather than silently
// mis-indexed.

// fpOp is the kind of an expression node.
type fpOp uint8

const (
	fpLiteral  fpOp = iota + 1 // lit
	fpEmptySet                 // {}
	fpThis                     // $this
	fpRoot                     // %resource, %rootResource, %context
	fpTypeRoot                 // a leading type name: filters the input by type
	fpMember                   // name, on left's result or the input
	fpFunc                     // name(args), on left's result or the input
	fpIndex                    // left[args[0]]
	fpIs                       // left is T
	fpAs                       // left as T
	fpUnion                    // left | right
	fpEq                       // left = right
	fpNe                       // left != right
	fpAnd
	fpOr
	fpXor
	fpImplies
)

// fpExpr is one node of a parsed expression. Invocations (members,
// functions, indexers, is/as) apply to left's result when left is set, and
// to the input collection otherwise.
type fpExpr struct {
	op          fpOp
	name        string // member, function or external constant name
	left, right *fpExpr
	args        []*fpExpr
	lit         fpItem     // fpLiteral
	spec        fpTypeSpec // fpIs, fpAs, and ofType/as/is functions; fpTypeRoot
	pos         int        // byte offset in the source, for errors

	// Filled in by compile (fhirpath_compile.go).
	members []fpMemberRef // fpMember: the element the name denotes in each struct the input may have
	types   fpTypes       // what the node may yield
}

// fpTypeSpec names a type: FHIR.Quantity, System.String, or unqualified.
type fpTypeSpec struct {
	ns   string // "FHIR", "System" or ""
	name string
}

func (s fpTypeSpec) String() string {
	if s.ns == "" {
		return s.name
	}
	return s.ns + "." + s.name
}

// fpSyntaxError is a problem parsing or compiling an expression.
type fpSyntaxError struct {
	expr string
	pos  int
	msg  string
}

func (e *fpSyntaxError) Error() string {
	return fmt.Sprintf("fhirpath: %s at offset %d in %q", e.msg, e.pos, e.expr)
}

// fpTokKind is the kind of a lexical token.
type fpTokKind uint8

const (
	fpTokEOF fpTokKind = iota
	fpTokIdent
	fpTokString
	fpTokNumber
	fpTokOp      // punctuation and symbolic operators
	fpTokConst   // %name
	fpTokSpecial // $this, $index, $total
)

type fpToken struct {
	kind   fpTokKind
	text   string // identifier name (without backticks), unescaped string, number, operator
	pos    int
	quoted bool // a `delimited` identifier, which is never a keyword
}

// fpLex splits an expression into tokens.
func fpLex(src string) ([]fpToken, error) {
	var toks []fpToken
	fail := func(pos int, msg string) error { return &fpSyntaxError{src, pos, msg} }
	for i := 0; i < len(src); {
		c := src[i]
		start := i
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
			continue
		case c == '/' && strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fail(i, "unterminated comment")
			}
			i += end + 4
			continue
		case fpIdentStart(c):
			for i < len(src) && fpIdentPart(src[i]) {
				i++
			}
			toks = append(toks, fpToken{kind: fpTokIdent, text: src[start:i], pos: start})
		case c == '`':
			s, n, err := fpUnquote(src[i:], '`')
			if err != nil {
				return nil, fail(i, err.Error())
			}
			i += n
			toks = append(toks, fpToken{kind: fpTokIdent, text: s, pos: start, quoted: true})
		case c == '\'':
			s, n, err := fpUnquote(src[i:], '\'')
			if err != nil {
				return nil, fail(i, err.Error())
			}
			i += n
			toks = append(toks, fpToken{kind: fpTokString, text: s, pos: start})
		case c >= '0' && c <= '9':
			for i < len(src) && src[i] >= '0' && src[i] <= '9' {
				i++
			}
			if i+1 < len(src) && src[i] == '.' && src[i+1] >= '0' && src[i+1] <= '9' {
				i++
				for i < len(src) && src[i] >= '0' && src[i] <= '9' {
					i++
				}
			}
			toks = append(toks, fpToken{kind: fpTokNumber, text: src[start:i], pos: start})
		case c == '%':
			i++
			switch {
			case i < len(src) && fpIdentStart(src[i]):
				for i < len(src) && fpIdentPart(src[i]) {
					i++
				}
				toks = append(toks, fpToken{kind: fpTokConst, text: src[start+1 : i], pos: start})
			case i < len(src) && (src[i] == '`' || src[i] == '\''):
				s, n, err := fpUnquote(src[i:], src[i])
				if err != nil {
					return nil, fail(i, err.Error())
				}
				i += n
				toks = append(toks, fpToken{kind: fpTokConst, text: s, pos: start})
			default:
				return nil, fail(start, "malformed external constant")
			}
		case c == '$':
			i++
			for i < len(src) && fpIdentPart(src[i]) {
				i++
			}
			toks = append(toks, fpToken{kind: fpTokSpecial, text: src[start:i], pos: start})
		default:
			op := ""
			for _, o := range []string{"!=", "!~", "<=", ">=", "{}", ".", ",", "(", ")", "[", "]", "|", "=", "~", "<", ">", "+", "-", "*", "/", "&", "{", "}"} {
				if strings.HasPrefix(src[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, fail(i, fmt.Sprintf("unexpected character %q", r))
			}
			i += len(op)
			toks = append(toks, fpToken{kind: fpTokOp, text: op, pos: start})
		}
	}
	return append(toks, fpToken{kind: fpTokEOF, pos: len(src)}), nil
}

func fpIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func fpIdentPart(c byte) bool { return fpIdentStart(c) || c >= '0' && c <= '9' }

// fpUnquote reads a quoted string or delimited identifier at the start of
// s and returns its value and length.
func fpUnquote(s string, q byte) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			i++
			switch e := s[i]; e {
			case '\'', '"', '`', '\\', '/':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				if i+4 >= len(s) {
					return "", 0, fmt.Errorf("malformed \\u escape")
				}
				r, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
				if err != nil {
					return "", 0, fmt.Errorf("malformed \\u escape")
				}
				b.WriteRune(rune(r))
				i += 4
			default:
				return "", 0, fmt.Errorf("unknown escape \\%c", e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

// fpParser is a precedence-climbing parser over the tokens.
type fpParser struct {
	src  string
	toks []fpToken
	i    int
}

// fpParse parses an expression into a tree.
func fpParse(src string) (*fpExpr, error) {
	toks, err := fpLex(src)
	if err != nil {
		return nil, err
	}
	p := &fpParser{src: src, toks: toks}
	e, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != fpTokEOF {
		return nil, p.fail(t.pos, "unexpected "+strconv.Quote(t.text))
	}
	return e, nil
}

func (p *fpParser) peek() fpToken { return p.toks[p.i] }

func (p *fpParser) next() fpToken {
	t := p.toks[p.i]
	if t.kind != fpTokEOF {
		p.i++
	}
	return t
}

func (p *fpParser) fail(pos int, msg string) error { return &fpSyntaxError{p.src, pos, msg} }

func (p *fpParser) expect(op string) error {
	t := p.next()
	if t.kind != fpTokOp || t.text != op {
		return p.fail(t.pos, "expected "+strconv.Quote(op))
	}
	return nil
}

// Binary operator precedence, lowest first, as FHIRPath defines it. The
// levels the subset does not support are recognised so that they are
// reported as unsupported rather than as syntax errors.
const (
	fpPrecImplies = iota + 1
	fpPrecOr
	fpPrecAnd
	fpPrecMembership
	fpPrecEquality
	fpPrecInequality
	fpPrecUnion
	fpPrecType
	fpPrecAdditive
	fpPrecMultiplicative
)

// binaryOp returns the precedence of the token as a binary operator, or 0.
func binaryOp(t fpToken) int {
	switch t.kind {
	case fpTokIdent:
		if t.quoted {
			return 0
		}
		switch t.text {
		case "implies":
			return fpPrecImplies
		case "or", "xor":
			return fpPrecOr
		case "and":
			return fpPrecAnd
		case "in", "contains":
			return fpPrecMembership
		case "is", "as":
			return fpPrecType
		case "div", "mod":
			return fpPrecMultiplicative
		}
	case fpTokOp:
		switch t.text {
		case "=", "!=", "~", "!~":
			return fpPrecEquality
		case "<", ">", "<=", ">=":
			return fpPrecInequality
		case "|":
			return fpPrecUnion
		case "+", "-", "&":
			return fpPrecAdditive
		case "*", "/":
			return fpPrecMultiplicative
		}
	}
	return 0
}

// expr parses operators of at least the given precedence.
func (p *fpParser) expr(minPrec int) (*fpExpr, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		prec := binaryOp(t)
		if prec == 0 || prec < minPrec {
			return left, nil
		}
		p.next()
		if prec == fpPrecType {
			spec, err := p.typeSpec()
			if err != nil {
				return nil, err
			}
			op := fpIs
			if t.text == "as" {
				op = fpAs
			}
			left = &fpExpr{op: op, left: left, spec: spec, pos: t.pos}
			continue
		}
		var op fpOp
		switch t.text {
		case "|":
			op = fpUnion
		case "=":
			op = fpEq
		case "!=":
			op = fpNe
		case "and":
			op = fpAnd
		case "or":
			op = fpOr
		case "xor":
			op = fpXor
		case "implies":
			op = fpImplies
		default:
			return nil, p.fail(t.pos, "unsupported operator "+strconv.Quote(t.text))
		}
		// All supported binary operators are left-associative.
		right, err := p.expr(prec + 1)
		if err != nil {
			return nil, err
		}
		left = &fpExpr{op: op, left: left, right: right, pos: t.pos}
	}
}

func (p *fpParser) unary() (*fpExpr, error) {
	if t := p.peek(); t.kind == fpTokOp && (t.text == "+" || t.text == "-") {
		return nil, p.fail(t.pos, "unsupported unary "+strconv.Quote(t.text))
	}
	e, err := p.term()
	if err != nil {
		return nil, err
	}
	// Invocations and indexers bind tightest.
	for {
		t := p.peek()
		switch {
		case t.kind == fpTokOp && t.text == ".":
			p.next()
			inv, err := p.invocation()
			if err != nil {
				return nil, err
			}
			inv.left = e
			e = inv
		case t.kind == fpTokOp && t.text == "[":
			p.next()
			idx, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			e = &fpExpr{op: fpIndex, left: e, args: []*fpExpr{idx}, pos: t.pos}
		default:
			return e, nil
		}
	}
}

// invocation parses what follows a ".": a member name or a function call.
func (p *fpParser) invocation() (*fpExpr, error) {
	t := p.next()
	if t.kind != fpTokIdent {
		return nil, p.fail(t.pos, "expected a name after \".\"")
	}
	if n := p.peek(); n.kind == fpTokOp && n.text == "(" {
		return p.call(t)
	}
	return &fpExpr{op: fpMember, name: t.text, pos: t.pos}, nil
}

// call parses a function's arguments; ofType, as and is take a type.
func (p *fpParser) call(name fpToken) (*fpExpr, error) {
	p.next() // (
	e := &fpExpr{op: fpFunc, name: name.text, pos: name.pos}
	if n := p.peek(); n.kind == fpTokOp && n.text == ")" {
		p.next()
		return e, nil
	}
	switch name.text {
	case "ofType", "as", "is":
		spec, err := p.typeSpec()
		if err != nil {
			return nil, err
		}
		e.spec = spec
		return e, p.expect(")")
	}
	for {
		a, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		e.args = append(e.args, a)
		t := p.next()
		if t.kind == fpTokOp && t.text == ")" {
			return e, nil
		}
		if t.kind != fpTokOp || t.text != "," {
			return nil, p.fail(t.pos, "expected \",\" or \")\"")
		}
	}
}

// typeSpec parses a type name, optionally qualified (FHIR.Quantity,
// System.String).
func (p *fpParser) typeSpec() (fpTypeSpec, error) {
	t := p.next()
	if t.kind != fpTokIdent {
		return fpTypeSpec{}, p.fail(t.pos, "expected a type name")
	}
	if n := p.peek(); n.kind == fpTokOp && n.text == "." && (t.text == "FHIR" || t.text == "System") {
		p.next()
		u := p.next()
		if u.kind != fpTokIdent {
			return fpTypeSpec{}, p.fail(u.pos, "expected a type name")
		}
		return fpTypeSpec{ns: t.text, name: u.text}, nil
	}
	return fpTypeSpec{name: t.text}, nil
}

func (p *fpParser) term() (*fpExpr, error) {
	t := p.next()
	switch t.kind {
	case fpTokString:
		return &fpExpr{op: fpLiteral, lit: fpItem{typ: "string", str: t.text}, pos: t.pos}, nil
	case fpTokNumber:
		typ := "integer"
		if strings.Contains(t.text, ".") {
			typ = "decimal"
		}
		return &fpExpr{op: fpLiteral, lit: fpItem{typ: typ, str: t.text}, pos: t.pos}, nil
	case fpTokConst:
		switch t.text {
		case "resource", "rootResource", "context":
			return &fpExpr{op: fpRoot, name: t.text, pos: t.pos}, nil
		}
		return nil, p.fail(t.pos, "unsupported external constant %"+t.text)
	case fpTokSpecial:
		if t.text == "$this" {
			return &fpExpr{op: fpThis, pos: t.pos}, nil
		}
		return nil, p.fail(t.pos, "unsupported "+t.text)
	case fpTokIdent:
		if !t.quoted {
			switch t.text {
			case "true", "false":
				return &fpExpr{op: fpLiteral, lit: fpItem{typ: "boolean", b: t.text == "true"}, pos: t.pos}, nil
			}
		}
		if n := p.peek(); n.kind == fpTokOp && n.text == "(" {
			return p.call(t)
		}
		// Whether a leading name is a type or a member is decided when
		// the expression is compiled against a context type.
		return &fpExpr{op: fpMember, name: t.text, pos: t.pos}, nil
	case fpTokOp:
		switch t.text {
		case "(":
			e, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			return e, p.expect(")")
		case "{}":
			return &fpExpr{op: fpEmptySet, pos: t.pos}, nil
		case "{":
			if err := p.expect("}"); err != nil {
				return nil, err
			}
			return &fpExpr{op: fpEmptySet, pos: t.pos}, nil
		}
	case fpTokEOF:
		return nil, p.fail(t.pos, "unexpected end of expression")
	}
	return nil, p.fail(t.pos, "unexpected "+strconv.Quote(t.text))
}
