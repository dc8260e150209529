package fhir

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// primitiveCases are JSON values for each primitive type, valid or not.
// code is the issue code expected ("" for valid).
var primitiveCases = []struct {
	name, typ, json, code string
}{
	{"boolean true", "boolean", `true`, ""},
	{"boolean false", "boolean", `false`, ""},
	{"boolean as string", "boolean", `"true"`, "structure"},
	{"boolean as number", "boolean", `1`, "structure"},

	{"integer", "integer", `42`, ""},
	{"integer negative", "integer", `-7`, ""},
	{"integer minus zero", "integer", `-0`, ""},
	{"integer min", "integer", `-2147483648`, ""},
	{"integer max", "integer", `2147483647`, ""},
	{"integer above max", "integer", `2147483648`, "value"},
	{"integer below min", "integer", `-2147483649`, "value"},
	{"integer huge", "integer", `123456789012345678901234567890`, "value"},
	{"integer with fraction", "integer", `1.0`, "value"},
	{"integer with exponent", "integer", `1e3`, "value"},
	{"integer as string", "integer", `"1"`, "structure"},
	{"unsignedInt zero", "unsignedInt", `0`, ""},
	{"unsignedInt negative", "unsignedInt", `-1`, "value"},
	{"unsignedInt minus zero", "unsignedInt", `-0`, "value"},
	{"positiveInt one", "positiveInt", `1`, ""},
	{"positiveInt zero", "positiveInt", `0`, "value"},
	{"positiveInt above max", "positiveInt", `2147483648`, "value"},

	{"decimal with trailing zero", "decimal", `1.50`, ""},
	{"decimal integer", "decimal", `3`, ""},
	{"decimal negative", "decimal", `-0.0001`, ""},
	{"decimal exponent", "decimal", `6.02e23`, ""},
	{"decimal long", "decimal", `3.14159265358979323846264338327950288`, ""},
	{"decimal as string", "decimal", `"1.5"`, "structure"},
	{"decimal past a double's range", "decimal", `1e400`, "value"},
	{"decimal tiny", "decimal", `1e-400`, ""},

	{"string", "string", `"hello"`, ""},
	{"string only spaces", "string", `"   "`, ""},
	{"string with newline and tab", "string", `"a\n\tb\r\n"`, ""},
	{"string with leading space", "string", `" a"`, ""},
	{"string empty", "string", `""`, "value"},
	{"string with form feed", "string", `"a\fb"`, "value"},
	{"string with vertical tab", "string", `"a\u000bb"`, "value"},
	{"string with NUL", "string", `"a\u0000b"`, "value"},
	{"string with a control character", "string", `"a\u001bb"`, "value"},
	{"code with NUL", "code", `"a\u0000"`, "value"},
	{"string as number", "string", `12`, "structure"},
	{"markdown", "markdown", `"**bold**\n\n* item"`, ""},
	{"markdown empty", "markdown", `""`, "value"},

	{"code", "code", `"final"`, ""},
	{"code with single spaces", "code", `"a b c"`, ""},
	{"code with double space", "code", `"a  b"`, "value"},
	{"code with leading space", "code", `" a"`, "value"},
	{"code with trailing space", "code", `"a "`, "value"},
	{"code with tab", "code", `"a\tb"`, ""},
	{"code empty", "code", `""`, "value"},

	{"id", "id", `"a-B.9"`, ""},
	{"id 64 characters", "id", `"` + strings.Repeat("a", 64) + `"`, ""},
	{"id 65 characters", "id", `"` + strings.Repeat("a", 65) + `"`, "value"},
	{"id with underscore", "id", `"a_b"`, "value"},
	{"id with space", "id", `"a b"`, "value"},

	{"uri", "uri", `"http://example.org/fhir?x=1"`, ""},
	{"uri urn", "uri", `"urn:oid:1.2.3"`, ""},
	{"uri with space", "uri", `"http://example.org/a b"`, "value"},
	{"uri empty", "uri", `""`, "value"},
	{"url", "url", `"https://example.org"`, ""},
	{"url with tab", "url", `"https://example.org/\t"`, "value"},
	{"canonical with version", "canonical", `"http://hl7.org/fhir/ValueSet/x|4.0.1"`, ""},

	{"oid", "oid", `"urn:oid:2.16.840.1.113883"`, ""},
	{"oid without prefix", "oid", `"2.16.840"`, "value"},
	{"oid leading zero arc", "oid", `"urn:oid:1.02"`, "value"},
	{"oid first arc 3", "oid", `"urn:oid:3.1"`, "value"},
	{"oid single arc", "oid", `"urn:oid:1"`, "value"},
	{"uuid", "uuid", `"urn:uuid:c757873d-ec9a-4326-a141-556f43239520"`, ""},
	{"uuid upper case", "uuid", `"urn:uuid:C757873D-EC9A-4326-A141-556F43239520"`, "value"},
	{"uuid without prefix", "uuid", `"c757873d-ec9a-4326-a141-556f43239520"`, "value"},

	{"base64Binary", "base64Binary", `"aGVsbG8gd29ybGQ="`, ""},
	{"base64Binary with line breaks", "base64Binary", `"aGVs\nbG8g\r\nd29y bGQ="`, ""},
	{"base64Binary short group", "base64Binary", `"aGVsbG8"`, "value"},
	{"base64Binary bad character", "base64Binary", `"aGV*bG8="`, "value"},
	{"base64Binary only white space", "base64Binary", `" "`, "value"},

	{"date year", "date", `"2024"`, ""},
	{"date year and month", "date", `"2024-02"`, ""},
	{"date leap day", "date", `"2024-02-29"`, ""},
	{"date 2000 leap day", "date", `"2000-02-29"`, ""},
	{"date not a leap year", "date", `"2023-02-29"`, "value"},
	{"date 1900 not a leap year", "date", `"1900-02-29"`, "value"},
	{"date February 30", "date", `"2023-02-30"`, "value"},
	{"date April 31", "date", `"2023-04-31"`, "value"},
	{"date month 13", "date", `"2023-13-01"`, "value"},
	{"date year 0000", "date", `"0000"`, "value"},
	{"date with time", "date", `"2023-01-01T00:00:00Z"`, "value"},
	{"date short year", "date", `"123"`, "value"},
	{"date as number", "date", `2024`, "structure"},

	{"dateTime date only", "dateTime", `"2024-03-01"`, ""},
	{"dateTime year only", "dateTime", `"2024"`, ""},
	{"dateTime with zone", "dateTime", `"2024-03-01T10:15:30+01:00"`, ""},
	{"dateTime with fraction and Z", "dateTime", `"2024-03-01T10:15:30.123456Z"`, ""},
	{"dateTime leap second", "dateTime", `"2016-12-31T23:59:60Z"`, ""},
	{"dateTime zone +14:00", "dateTime", `"2024-03-01T10:15:30+14:00"`, ""},
	{"dateTime zone +14:30", "dateTime", `"2024-03-01T10:15:30+14:30"`, "value"},
	{"dateTime without zone", "dateTime", `"2024-03-01T10:15:30"`, "value"},
	{"dateTime without seconds", "dateTime", `"2024-03-01T10:15Z"`, "value"},
	{"dateTime hour 24", "dateTime", `"2024-03-01T24:00:00Z"`, "value"},
	{"dateTime invalid day", "dateTime", `"2024-02-30T10:00:00Z"`, "value"},
	{"dateTime lower-case t", "dateTime", `"2024-03-01t10:15:30Z"`, "value"},
	{"dateTime month and time", "dateTime", `"2024-03T10:15:30Z"`, "value"},
	{"instant", "instant", `"2024-03-01T10:15:30.000Z"`, ""},
	{"instant with offset", "instant", `"2024-03-01T10:15:30-05:00"`, ""},
	{"instant without zone", "instant", `"2024-03-01T10:15:30"`, "value"},
	{"instant date only", "instant", `"2024-03-01"`, "value"},
	{"time", "time", `"23:59:59"`, ""},
	{"time with fraction", "time", `"00:00:00.5"`, ""},
	{"time hour 25", "time", `"25:00:00"`, "value"},
	{"time with zone", "time", `"10:00:00Z"`, "value"},
	{"time without seconds", "time", `"10:00"`, "value"},

	{"xhtml div", "xhtml", `"<div xmlns=\"http://www.w3.org/1999/xhtml\">text</div>"`, ""},
	{"xhtml bare div", "xhtml", `"<div>text</div>"`, ""},
	{"xhtml paragraph", "xhtml", `"<p>text</p>"`, "value"},
	{"xhtml divider", "xhtml", `"<divider/>"`, "value"},
	{"xhtml plain text", "xhtml", `"text"`, "value"},
}

func TestPrimitiveValues(t *testing.T) {
	m := r4Model()
	for _, tc := range primitiveCases {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := vjParse(tc.json)
			if err != nil {
				t.Fatal(err)
			}
			p := primCheck(m.types[tc.typ], &doc.root)
			got := ""
			if p != nil {
				got = p.code
				if p.msg == "" {
					t.Error("empty message")
				}
			}
			if got != tc.code {
				t.Errorf("%s %s: code %q, want %q (%v)", tc.typ, tc.json, got, tc.code, p)
			}
		})
	}
}

func TestPrimitiveStringLimit(t *testing.T) {
	if msg := primText(strings.Repeat("é", primStringMax)); msg != "" {
		t.Errorf("1 MB of two-byte characters rejected: %s", msg)
	}
	if msg := primText(strings.Repeat("a", primStringMax+1)); msg == "" {
		t.Error("string over 1 MB accepted")
	}
}

// primSyntaxOnly is the part of the primitive checks that R4's regexes
// express: syntax without ranges or calendar.
func primSyntaxOnly(name, s string) bool {
	switch name {
	case "integer":
		return primIntegerSyntax(s, -1)
	case "unsignedInt":
		return primIntegerSyntax(s, 0)
	case "positiveInt":
		return primIntegerSyntax(s, 1)
	case "boolean":
		return s == "true" || s == "false"
	case "date":
		return primDateSyntax(s, primDateOnly) == ""
	case "dateTime":
		return primDateSyntax(s, primDateOrDateTime) == ""
	case "instant":
		return primDateSyntax(s, primInstant) == ""
	case "string", "markdown":
		return s != "" && !strings.ContainsAny(s, "\v\f")
	case "uri", "url", "canonical":
		return strings.IndexFunc(s, primIsSpace) < 0
	}
	return primSyntax(name, s) == ""
}

// specRegex compiles a primitive's R4 regex for Go, matching whole values,
// with \s and \S meaning ASCII white space and its complement as in Java.
func specRegex(t testing.TB, src string) *regexp.Regexp {
	const space, nonSpace = `\t-\r `, `\x00-\x08\x0E-\x1F\x21-\x{10FFFF}`
	var b strings.Builder
	inClass := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\\' && i+1 < len(src):
			i++
			switch esc := src[i]; {
			case esc == 's' && inClass:
				b.WriteString(space)
			case esc == 'S' && inClass:
				b.WriteString(nonSpace)
			case esc == 's':
				b.WriteString("[" + space + "]")
			case esc == 'S':
				b.WriteString("[" + nonSpace + "]")
			default:
				b.WriteByte('\\')
				b.WriteByte(esc)
			}
		case c == '[':
			inClass = true
			b.WriteByte(c)
		case c == ']':
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	re, err := regexp.Compile(`^(?:` + b.String() + `)$`)
	if err != nil {
		t.Fatalf("regex %q: %v", src, err)
	}
	return re
}

// regexSamples are extra strings to try against every primitive's regex.
var regexSamples = []string{
	"", " ", "a", "0", "00", "01", "-0", "-", "1.", ".5", "1e5", "1E+5", "-1.5e-3", "2147483648",
	"true", "false", "True", "a b", "a  b", " a", "a ", "\t", "a\nb", "a\vb", "a\fb", "é", "日本",
	"urn:oid:1.2", "urn:oid:0.0", "urn:oid:1.", "urn:uuid:00000000-0000-0000-0000-000000000000",
	"abcd", "ab==", "abc", "abcd efgh", " abcd ", "ab cd",
	"2024", "2024-1", "2024-01", "2024-00", "2024-01-00", "2024-01-32", "2024-01-31", "0001", "0000",
	"2024-01-01T00:00:00Z", "2024-01-01T00:00:00", "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00.1+13:59",
	"2024-01-01T00:00:00-14:00", "2024-01-01T00:00:00+14:01", "2024-01-01T00:00:60Z", "2024-01-01T00:00:61Z",
	"23:59:59", "24:00:00", "00:00:00.000", "00:00", "<div>", "<div/>",
}

func TestPrimitiveSyntaxMatchesSpecRegex(t *testing.T) {
	samples := append([]string(nil), regexSamples...)
	for _, tc := range primitiveCases {
		samples = append(samples, strings.Trim(tc.json, `"`))
	}
	for name, typ := range r4Model().types {
		if typ.kind != r4KindPrimitive || typ.regex == "" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			re := specRegex(t, typ.regex)
			for _, s := range samples {
				if got, want := primSyntaxOnly(name, s), re.MatchString(s); got != want {
					t.Errorf("%q: check says %v, regex %s says %v", s, got, typ.regex, want)
				}
			}
		})
	}
}

// FuzzPrimitiveSyntax compares each primitive's syntax check with its R4
// regex on arbitrary strings.
func FuzzPrimitiveSyntax(f *testing.F) {
	for _, s := range regexSamples {
		f.Add(s)
	}
	var names []string
	var res []*regexp.Regexp
	for name, typ := range r4Model().types {
		if typ.kind == r4KindPrimitive && typ.regex != "" {
			names = append(names, name)
			res = append(res, specRegex(f, typ.regex))
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for i, name := range names {
			if got, want := primSyntaxOnly(name, s), res[i].MatchString(s); got != want {
				t.Errorf("%s %q: check says %v, regex says %v", name, s, got, want)
			}
		}
	})
}
