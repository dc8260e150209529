package fhir

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The validator reads the body with its own small JSON reader rather than
// encoding/json: it needs object members in document order (to report
// problems in that order and to see duplicate keys), numbers as their
// literal text (as json.Decoder.UseNumber gives them, so 1.50 stays 1.50),
// and speed (a Patient parses in a few microseconds, where Decoder.Token
// takes tens). It accepts what encoding/json accepts and reads the same
// values, except that it rejects invalid UTF-8 and nesting deeper than
// vjMaxDepth (both of which callers check before); the tests compare the
// two on fuzzed input.

// vjKind is the kind of a JSON value.
type vjKind uint8

const (
	vjNull vjKind = iota
	vjBool
	vjNumber
	vjString
	vjArray
	vjObject
)

func (k vjKind) String() string {
	switch k {
	case vjNull:
		return "null"
	case vjBool:
		return "boolean"
	case vjNumber:
		return "number"
	case vjString:
		return "string"
	case vjArray:
		return "array"
	}
	return "object"
}

// vjNode is a parsed JSON value. All nodes of a document live in one
// slice, vjDoc.nodes; an array's items and an object's members are a run of
// consecutive nodes there, each member carrying its key. The layout keeps a
// parsed resource small (56 bytes a value, one allocation for all of them).
type vjNode struct {
	text    string // string contents (unescaped) or number literal
	key     string // the member name, for object members
	pos     int32  // byte offset where the value starts
	keyPos  int32  // byte offset of the member name
	first   int32  // arrays and objects: index of the first child
	n       int32  // arrays and objects: number of children
	kind    vjKind
	boolean bool
}

// vjDoc is a parsed JSON document.
type vjDoc struct {
	nodes []vjNode
	root  vjNode
}

// kids returns the items of an array or the members of an object.
func (d *vjDoc) kids(n *vjNode) []vjNode {
	return d.nodes[n.first : n.first+n.n]
}

// vjMaxDepth bounds nesting so that hostile input cannot exhaust the stack;
// callers are expected to have enforced a smaller limit already.
const vjMaxDepth = 1000

// vjMaxSize is the largest document the int32 offsets can describe.
const vjMaxSize = 1<<31 - 1

// vjSyntaxError is a JSON syntax error at a byte offset.
type vjSyntaxError struct {
	pos int
	msg string
}

func (e *vjSyntaxError) Error() string {
	return e.msg + " at offset " + strconv.Itoa(e.pos)
}

// vjParse parses one JSON value that makes up the whole of src (surrounding
// whitespace allowed).
func vjParse(src string) (*vjDoc, error) {
	if len(src) > vjMaxSize {
		return nil, &vjSyntaxError{0, "document too large"}
	}
	// Every value but the top-level one follows a '{', '[' or ',', so
	// counting those (fast, and only over-counting the ones inside strings)
	// sizes the node slice so that it is allocated once.
	n := strings.Count(src, ",") + strings.Count(src, "{") + strings.Count(src, "[")
	p := vjParser{
		src:   src,
		nodes: make([]vjNode, 0, n),
		stack: make([]vjNode, 0, 32),
	}
	p.skipSpace()
	root, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.src) {
		return nil, p.fail("unexpected data after the top-level value")
	}
	return &vjDoc{nodes: p.nodes, root: root}, nil
}

type vjParser struct {
	src   string
	i     int
	nodes []vjNode // finished children, in runs
	stack []vjNode // children of the arrays and objects being read
}

func (p *vjParser) fail(msg string) error {
	return &vjSyntaxError{pos: p.i, msg: msg}
}

func (p *vjParser) skipSpace() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *vjParser) value(depth int) (vjNode, error) {
	if p.i >= len(p.src) {
		return vjNode{}, p.fail("unexpected end of JSON input")
	}
	start := int32(p.i)
	switch c := p.src[p.i]; {
	case c == '{':
		return p.container(depth+1, vjObject, '}')
	case c == '[':
		return p.container(depth+1, vjArray, ']')
	case c == '"':
		s, err := p.str()
		return vjNode{kind: vjString, pos: start, text: s}, err
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := p.number()
		return vjNode{kind: vjNumber, pos: start, text: n}, err
	case strings.HasPrefix(p.src[p.i:], "true"):
		p.i += 4
		return vjNode{kind: vjBool, pos: start, boolean: true}, nil
	case strings.HasPrefix(p.src[p.i:], "false"):
		p.i += 5
		return vjNode{kind: vjBool, pos: start}, nil
	case strings.HasPrefix(p.src[p.i:], "null"):
		p.i += 4
		return vjNode{kind: vjNull, pos: start}, nil
	}
	return vjNode{}, p.fail("invalid character looking for a value")
}

// container reads an object or an array. Children collect on the stack and
// move to nodes as one run when the container ends.
func (p *vjParser) container(depth int, kind vjKind, end byte) (vjNode, error) {
	if depth > vjMaxDepth {
		return vjNode{}, p.fail("JSON nested too deeply")
	}
	v := vjNode{kind: kind, pos: int32(p.i)}
	p.i++ // { or [
	p.skipSpace()
	if p.i < len(p.src) && p.src[p.i] == end {
		p.i++
		return v, nil
	}
	base := len(p.stack)
	defer func() { p.stack = p.stack[:base] }()
	for {
		var key string
		keyPos := int32(p.i)
		if kind == vjObject {
			if p.i >= len(p.src) || p.src[p.i] != '"' {
				return vjNode{}, p.fail("expected a property name")
			}
			var err error
			if key, err = p.str(); err != nil {
				return vjNode{}, err
			}
			p.skipSpace()
			if p.i >= len(p.src) || p.src[p.i] != ':' {
				return vjNode{}, p.fail("expected ':' after a property name")
			}
			p.i++
			p.skipSpace()
		}
		child, err := p.value(depth)
		if err != nil {
			return vjNode{}, err
		}
		if kind == vjObject {
			child.key, child.keyPos = key, keyPos
		}
		p.stack = append(p.stack, child)
		p.skipSpace()
		if p.i < len(p.src) && p.src[p.i] == ',' {
			p.i++
			p.skipSpace()
			continue
		}
		if p.i < len(p.src) && p.src[p.i] == end {
			p.i++
			v.first, v.n = int32(len(p.nodes)), int32(len(p.stack)-base)
			p.nodes = append(p.nodes, p.stack[base:]...)
			return v, nil
		}
		if kind == vjObject {
			return vjNode{}, p.fail("expected ',' or '}' in an object")
		}
		return vjNode{}, p.fail("expected ',' or ']' in an array")
	}
}

// number scans a number per the JSON grammar and returns its literal.
func (p *vjParser) number() (string, error) {
	start := p.i
	s := p.src
	if p.i < len(s) && s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(s) && s[p.i] == '0':
		p.i++
	case p.i < len(s) && s[p.i] >= '1' && s[p.i] <= '9':
		p.skipDigits()
	default:
		return "", p.fail("invalid number")
	}
	if p.i < len(s) && s[p.i] == '.' {
		p.i++
		if !p.skipDigits() {
			return "", p.fail("invalid number")
		}
	}
	if p.i < len(s) && (s[p.i] == 'e' || s[p.i] == 'E') {
		p.i++
		if p.i < len(s) && (s[p.i] == '+' || s[p.i] == '-') {
			p.i++
		}
		if !p.skipDigits() {
			return "", p.fail("invalid number")
		}
	}
	return s[start:p.i], nil
}

func (p *vjParser) skipDigits() bool {
	start := p.i
	for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// str scans a string literal and returns its contents. Strings without
// escapes are returned as substrings of the source, without copying.
func (p *vjParser) str() (string, error) {
	p.i++ // opening quote
	start := p.i
	s := p.src
	for p.i < len(s) {
		c := s[p.i]
		switch {
		case c == '"':
			p.i++
			return s[start : p.i-1], nil
		case c == '\\':
			return p.strEscaped(start)
		case c < 0x20:
			return "", p.fail("control character in string")
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(s[p.i:])
			if r == utf8.RuneError && size == 1 {
				return "", p.fail("invalid UTF-8 in string")
			}
			p.i += size
		}
	}
	return "", p.fail("unterminated string")
}

// strEscaped finishes a string that has escapes, from its content start.
func (p *vjParser) strEscaped(start int) (string, error) {
	s := p.src
	var b strings.Builder
	b.WriteString(s[start:p.i])
	for p.i < len(s) {
		c := s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\':
			if p.i+1 >= len(s) {
				return "", p.fail("unterminated string")
			}
			p.i += 2
			switch s[p.i-1] {
			case '"', '\\', '/':
				b.WriteByte(s[p.i-1])
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.fail("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					// A pair makes one rune; a lone half becomes U+FFFD,
					// as encoding/json does.
					save := p.i
					if strings.HasPrefix(s[p.i:], "\\u") {
						p.i += 2
						if r2, ok := p.hex4(); ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								b.WriteRune(d)
								continue
							}
						}
					}
					p.i = save
					r = utf8.RuneError
				}
				b.WriteRune(r)
			default:
				return "", p.fail("invalid escape in string")
			}
		case c < 0x20:
			return "", p.fail("control character in string")
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(s[p.i:])
			if r == utf8.RuneError && size == 1 {
				return "", p.fail("invalid UTF-8 in string")
			}
			b.WriteString(s[p.i : p.i+size])
			p.i += size
		}
	}
	return "", p.fail("unterminated string")
}

func (p *vjParser) hex4() (rune, bool) {
	if p.i+4 > len(p.src) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.src[p.i : p.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}
