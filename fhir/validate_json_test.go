package fhir

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// vjToAny converts a parsed node to what encoding/json with UseNumber
// decodes the same text to.
func vjToAny(d *vjDoc, n *vjNode) any {
	switch n.kind {
	case vjNull:
		return nil
	case vjBool:
		return n.boolean
	case vjNumber:
		return json.Number(n.text)
	case vjString:
		return n.text
	case vjArray:
		out := []any{}
		for i := range d.kids(n) {
			out = append(out, vjToAny(d, &d.kids(n)[i]))
		}
		return out
	}
	out := map[string]any{}
	for i := range d.kids(n) {
		m := &d.kids(n)[i]
		out[m.key] = vjToAny(d, m)
	}
	return out
}

// stdDecode decodes with encoding/json the way the package documents its
// reader to behave.
func stdDecode(src string) (any, error) {
	if !json.Valid([]byte(src)) {
		return nil, &vjSyntaxError{msg: "invalid per json.Valid"}
	}
	dec := json.NewDecoder(strings.NewReader(src))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// compareWithStd reports a difference between the reader and encoding/json.
func compareWithStd(t *testing.T, src string) {
	t.Helper()
	doc, err := vjParse(src)
	want, stdErr := stdDecode(src)
	if err != nil && strings.Contains(err.Error(), "deeply") {
		return // encoding/json allows deeper nesting
	}
	if (err == nil) != (stdErr == nil) {
		t.Fatalf("%q: reader error %v, encoding/json error %v", src, err, stdErr)
	}
	if err != nil {
		return
	}
	if got := vjToAny(doc, &doc.root); !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n reader        %#v\n encoding/json %#v", src, got, want)
	}
}

var jsonSamples = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.50`, `-1.5e-10`, `1E+2`, `"x"`, ` {"a" : [1, 2 ,{"b":null}] } `,
	`{"a":1,"a":2}`, `"\u00e9\ud83d\ude00\n\t\"\\\/"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"é日本"`,
	`[1,]`, `{"a":1,}`, `{"a"}`, `{a:1}`, `[01]`, `[1.]`, `[.5]`, `[-]`, `[1e]`, `[+1]`, `"\x"`, `"\u12"`, "\"a\tb\"",
	`[1 2]`, `{"a":1 "b":2}`, `tru`, `nul`, `[true false]`, `{"a":1}}`, `[[[]]]`, `"`, `[`, `{`, ``, ` `,
	`{"resourceType":"Patient","name":[{"given":["a",null]}]}`,
}

func TestJSONReaderMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonSamples {
		t.Run(s, func(t *testing.T) { compareWithStd(t, s) })
	}
}

func TestJSONReaderPositions(t *testing.T) {
	src := `{"a": [1, {"b" : "x"}], "c":true}`
	doc, err := vjParse(src)
	if err != nil {
		t.Fatal(err)
	}
	a := &doc.kids(&doc.root)[0]
	b := &doc.kids(&doc.kids(a)[1])[0]
	c := &doc.kids(&doc.root)[1]
	for _, tc := range []struct {
		name     string
		got      int32
		wantText string
	}{
		{"member key", a.keyPos, `"a"`},
		{"array value", a.pos, `[1`},
		{"nested key", b.keyPos, `"b"`},
		{"nested value", b.pos, `"x"`},
		{"last value", c.pos, `true`},
	} {
		if !strings.HasPrefix(src[tc.got:], tc.wantText) {
			t.Errorf("%s: offset %d points at %q, want %q", tc.name, tc.got, src[tc.got:], tc.wantText)
		}
	}
}

func TestJSONReaderRejectsInvalidUTF8(t *testing.T) {
	if _, err := vjParse("{\"a\":\"\xc3\x28\"}"); err == nil {
		t.Error("invalid UTF-8 accepted")
	}
}

// FuzzJSONReader checks that the reader accepts what encoding/json accepts
// and reads the same values (for valid UTF-8; invalid UTF-8 it rejects).
func FuzzJSONReader(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if !utf8.ValidString(src) || bytes.Count([]byte(src), []byte("[")) > 500 {
			return
		}
		compareWithStd(t, src)
	})
}
