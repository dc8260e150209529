package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// DefaultMaxDepth is the nesting depth of JSON objects and arrays that Parse
// accepts when Limits.MaxDepth is zero. The deepest R4 resources seen in
// practice (Questionnaire items nested a dozen times) stay well under it.
const DefaultMaxDepth = 100

// Limits bound what Parse accepts.
type Limits struct {
	// MaxDepth is the deepest nesting of objects and arrays allowed;
	// 0 means DefaultMaxDepth.
	MaxDepth int
}

// ParseError says why a request body is not a FHIR JSON resource at all.
// Its Code is an OperationOutcome issue type ("structure", "invalid",
// "too-costly"); callers answer it with 400.
type ParseError struct {
	Code string
	Msg  string
}

func (e *ParseError) Error() string { return "fhir: " + e.Msg }

// member is one top-level property of a resource, its value kept as the
// client sent it (compacted).
type member struct {
	key   string
	value json.RawMessage
}

// Resource is a FHIR resource as JSON whose property values are kept as the
// client sent them: numbers keep their digits (1.50 stays 1.50), extensions,
// primitive extensions (_field), contained resources and everything else
// are carried through untouched. Only id and meta are ever rewritten.
type Resource struct {
	Type    string
	ID      string
	members []member
}

// Parse reads one FHIR JSON resource. It checks that body is valid UTF-8,
// nests no deeper than the limit, is a single syntactically valid JSON object
// with no duplicate top-level keys, and has a string resourceType. It does
// not check the resource against the R4 definitions: that is Validate.
func Parse(body []byte, lim Limits) (*Resource, error) {
	if err := CheckJSON(body, lim); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	compact.Grow(len(body))
	if err := json.Compact(&compact, body); err != nil {
		return nil, &ParseError{Code: "structure", Msg: "malformed JSON: " + err.Error()}
	}
	members, err := splitObject(compact.Bytes())
	if err != nil {
		return nil, err
	}
	r := &Resource{members: members}
	rt := r.Member("resourceType")
	if rt == nil {
		return nil, &ParseError{Code: "required", Msg: "resourceType is missing"}
	}
	if err := json.Unmarshal(rt, &r.Type); err != nil || r.Type == "" {
		return nil, &ParseError{Code: "structure", Msg: "resourceType must be a non-empty string"}
	}
	if raw := r.Member("id"); raw != nil {
		if err := json.Unmarshal(raw, &r.ID); err != nil {
			return nil, &ParseError{Code: "structure", Msg: "id must be a string"}
		}
	}
	return r, nil
}

// CheckJSON checks that body is valid UTF-8 and nests no deeper than the
// limit, without decoding it. It runs before any decoder so that a
// hostile body costs one linear scan.
func CheckJSON(body []byte, lim Limits) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &ParseError{Code: "structure", Msg: "request body is empty"}
	}
	if !utf8.Valid(body) {
		return &ParseError{Code: "structure", Msg: "request body is not valid UTF-8"}
	}
	max := lim.MaxDepth
	if max <= 0 {
		max = DefaultMaxDepth
	}
	depth, inString, escaped := 0, false, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if inString {
			switch {
			case escaped && c == 'u':
				escaped = false
				n, ok := surrogateEscape(body, i)
				if !ok {
					return &ParseError{Code: "structure", Msg: "a \\u escape holds half of a UTF-16 surrogate pair: JSON strings must hold characters"}
				}
				i += n // past a pair's second half
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > max {
				return &ParseError{Code: "too-costly", Msg: fmt.Sprintf("JSON nests deeper than %d levels", max)}
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// surrogateEscape checks the \u escape whose u is at body[i]: it is a
// character when it is no surrogate, or a high surrogate followed by the
// \u escape of a low one, which it then spans (n is how far past i the
// scan goes on). A malformed escape is the decoder's to refuse.
func surrogateEscape(body []byte, i int) (n int, ok bool) {
	r, ok := hex4(body, i+1)
	switch {
	case !ok || r < 0xD800 || r > 0xDFFF:
		return 0, true
	case r >= 0xDC00:
		return 0, false // a low half on its own
	}
	if i+6 >= len(body) || body[i+5] != '\\' || body[i+6] != 'u' {
		return 0, false
	}
	low, ok := hex4(body, i+7)
	return 10, ok && low >= 0xDC00 && low <= 0xDFFF
}

// hex4 reads four hexadecimal digits at body[at:].
func hex4(body []byte, at int) (rune, bool) {
	if at+4 > len(body) {
		return 0, false
	}
	var r rune
	for _, c := range body[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// splitObject splits a compact JSON object into its members, in order.
func splitObject(data []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, &ParseError{Code: "structure", Msg: "malformed JSON: " + err.Error()}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &ParseError{Code: "structure", Msg: "a resource must be a JSON object"}
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &ParseError{Code: "structure", Msg: "malformed JSON: " + err.Error()}
		}
		key := tok.(string) // inside an object the decoder only yields string keys
		if seen[key] {
			return nil, &ParseError{Code: "structure", Msg: fmt.Sprintf("property %q appears twice", key)}
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, &ParseError{Code: "structure", Msg: "malformed JSON: " + err.Error()}
		}
		members = append(members, member{key: key, value: raw})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, &ParseError{Code: "structure", Msg: "malformed JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &ParseError{Code: "structure", Msg: "unexpected data after the JSON object"}
	}
	return members, nil
}

// Member returns the raw value of a top-level property, or nil.
func (r *Resource) Member(key string) json.RawMessage {
	for _, m := range r.members {
		if m.key == key {
			return m.value
		}
	}
	return nil
}

func (r *Resource) set(key string, value json.RawMessage) {
	for i := range r.members {
		if r.members[i].key == key {
			r.members[i].value = value
			return
		}
	}
	r.members = append(r.members, member{key: key, value: value})
}

// SetID sets the resource's id.
func (r *Resource) SetID(id string) {
	r.ID = id
	r.set("id", quote(id))
}

// SetMeta sets meta.versionId and meta.lastUpdated, keeping every other
// meta property (profile, security, tag, source, extensions) as sent.
func (r *Resource) SetMeta(versionID int64, lastUpdated time.Time) {
	var meta []member
	if raw := r.Member("meta"); raw != nil {
		if m, err := splitObject(raw); err == nil {
			meta = m
		}
	}
	out := []member{
		{key: "versionId", value: quote(strconv.FormatInt(versionID, 10))},
		{key: "lastUpdated", value: quote(FormatInstant(lastUpdated))},
	}
	for _, m := range meta {
		if m.key != "versionId" && m.key != "lastUpdated" {
			out = append(out, m)
		}
	}
	r.set("meta", encodeObject(out))
}

// Bytes returns the resource as compact JSON: resourceType, id and meta
// first, then every other property in the order the client sent them.
func (r *Resource) Bytes() []byte {
	ordered := make([]member, 0, len(r.members))
	for _, k := range []string{"resourceType", "id", "meta"} {
		if v := r.Member(k); v != nil {
			ordered = append(ordered, member{key: k, value: v})
		}
	}
	for _, m := range r.members {
		switch m.key {
		case "resourceType", "id", "meta":
		default:
			ordered = append(ordered, m)
		}
	}
	return encodeObject(ordered)
}

func encodeObject(members []member) []byte {
	n := 2
	for _, m := range members {
		n += len(m.key) + len(m.value) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, quote(m.key)...)
		b = append(b, ':')
		b = append(b, m.value...)
	}
	return append(b, '}')
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// InstantLayout is how the server writes FHIR instants: UTC with
// microseconds, the precision versions are stored with.
const InstantLayout = "2006-01-02T15:04:05.000000Z07:00"

// FormatInstant writes t as a FHIR instant in UTC.
func FormatInstant(t time.Time) string { return t.UTC().Format(InstantLayout) }

// Identifier is the system and value of one of a resource's identifiers.
type Identifier struct{ System, Value string }

// Identifiers returns the top-level identifiers of the resource that have a
// value (the identifier element is a list in most types, a single value in
// a few such as Bundle).
func (r *Resource) Identifiers() []Identifier {
	raw := r.Member("identifier")
	if raw == nil {
		return nil
	}
	var list []Identifier
	var one struct{ System, Value string }
	var many []struct{ System, Value string }
	switch {
	case json.Unmarshal(raw, &many) == nil:
	case json.Unmarshal(raw, &one) == nil:
		many = append(many, one)
	}
	for _, id := range many {
		if id.Value != "" {
			list = append(list, Identifier{System: id.System, Value: id.Value})
		}
	}
	return list
}

// AddSecurity adds the security label system|code to meta.security,
// keeping the labels and every other meta property as sent; it reports
// whether the label was new.
func (r *Resource) AddSecurity(system, code string) bool {
	var meta []member
	if raw := r.Member("meta"); raw != nil {
		m, err := splitObject(raw)
		if err != nil {
			return false
		}
		meta = m
	}
	var labels []json.RawMessage
	at := -1
	for i, m := range meta {
		if m.key != "security" {
			continue
		}
		at = i
		if err := json.Unmarshal(m.value, &labels); err != nil {
			return false
		}
	}
	for _, l := range labels {
		var c struct{ System, Code string }
		if json.Unmarshal(l, &c) == nil && c.System == system && c.Code == code {
			return false
		}
	}
	label, _ := json.Marshal(struct {
		System string `json:"system,omitempty"`
		Code   string `json:"code"`
	}{system, code}) // plain strings always marshal
	labels = append(labels, label)
	value, _ := json.Marshal(labels) // raw JSON values always marshal
	if at >= 0 {
		meta[at].value = value
	} else {
		meta = append(meta, member{key: "security", value: value})
	}
	r.set("meta", encodeObject(meta))
	return true
}
