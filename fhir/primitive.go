package fhir

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Checks of primitive values against the R4 rules. Each R4 primitive has a
// regex in its definition (kept in the model file); the checks here are
// hand-written equivalents, which are much faster than regexp, plus what a
// regex cannot say: integer ranges, calendar dates and the 1 MB string limit.
// The tests compare each syntax check with R4's regex. In those regexes \s
// means ASCII white space (space, \t, \n, \v, \f, \r) and \S anything else,
// as in Java and Perl.

// primStringMax is R4's limit on string length: 1 MB, counted in characters
// (string.value has maxLength 1048576).
const primStringMax = 1 << 20

// primProblem describes why a primitive value is invalid.
type primProblem struct {
	code string // OperationOutcome issue type: "structure" or "value"
	msg  string
}

// primCheck checks one JSON value (not null) against primitive type t.
func primCheck(t *r4Type, v *vjNode) *primProblem {
	want := vjString
	switch t.jsonKind {
	case "number":
		want = vjNumber
	case "boolean":
		want = vjBool
	}
	if v.kind != want {
		return &primProblem{"structure", "expected a JSON " + want.String() + " for type " + t.name + ", found " + vjDescribe(v)}
	}
	if want == vjBool {
		return nil
	}
	s := v.text
	if want == vjString && s == "" {
		return &primProblem{"value", "empty string is not a valid " + t.name + " (FHIR JSON does not allow empty strings)"}
	}
	if want == vjString && strings.IndexFunc(s, primIsControl) >= 0 {
		return &primProblem{"value", "invalid " + t.name + ": it holds a control character (below U+0020 other than tab, line feed and carriage return), which FHIR strings must not"}
	}
	if msg := primSyntax(t.name, s); msg != "" {
		return &primProblem{"value", "invalid " + t.name + " " + vQuote(s) + ": " + msg}
	}
	if t.name == "decimal" {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			// Search compares decimals as IEEE doubles: a value past their
			// range could be stored but never found.
			return &primProblem{"value", "decimal " + vQuote(s) + " is out of range: decimals are taken up to ±1.7976931348623157e308"}
		}
	}
	return nil
}

// primSyntax returns why s is not a valid value of the named primitive, or
// "" if it is. Numbers are given as their JSON literal.
func primSyntax(name, s string) string {
	switch name {
	case "integer":
		return primInteger(s, -1<<31)
	case "unsignedInt":
		return primInteger(s, 0)
	case "positiveInt":
		return primInteger(s, 1)
	case "decimal":
		if !primIsDecimal(s) {
			return "must match -?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?"
		}

	case "string", "markdown":
		return primText(s)
	case "code":
		if !primIsCode(s) {
			return "must not have leading, trailing or repeated white space"
		}
	case "id":
		if !primIsID(s) {
			return "must be 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'"
		}
	case "uri", "url", "canonical":
		if strings.IndexFunc(s, primIsSpace) >= 0 {
			return "must not contain white space"
		}
	case "oid":
		if !primIsOID(s) {
			return "must match urn:oid:[0-2](\\.(0|[1-9][0-9]*))+"
		}
	case "uuid":
		if !primIsUUID(s) {
			return "must be urn:uuid: followed by a lower-case UUID"
		}
	case "base64Binary":
		if !primIsBase64(s) {
			return "must be base64 (groups of four characters from A-Z, a-z, 0-9, '+', '/', '=')"
		}
	case "date":
		return primDateTime(s, primDateOnly)
	case "dateTime":
		return primDateTime(s, primDateOrDateTime)
	case "instant":
		return primDateTime(s, primInstant)
	case "time":
		if !primIsTime(s) {
			return "must be hh:mm:ss with optional fraction and no time zone"
		}
	case "xhtml":
		if !primIsXHTML(s) {
			return "must be an XHTML div element (start with \"<div\")"
		}
	}
	return ""
}

// primInteger checks an integer-family JSON number: an integer literal
// (no fraction or exponent) between lowest and 2^31-1.
func primInteger(s string, lowest int64) string {
	if !primIntegerSyntax(s, lowest) {
		if lowest < 0 {
			return "must be a whole number without fraction or exponent"
		}
		return "must be a whole number without sign, fraction or exponent"
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lowest || n > 1<<31-1 {
		return "must be between " + strconv.FormatInt(lowest, 10) + " and 2147483647"
	}
	return ""
}

// primIntegerSyntax matches -?([0]|([1-9][0-9]*)) (integer), [0]|([1-9][0-9]*)
// (unsignedInt, lowest 0) or [1-9][0-9]* (positiveInt, lowest 1).
func primIntegerSyntax(s string, lowest int64) bool {
	digits := s
	if lowest < 0 {
		digits = strings.TrimPrefix(s, "-")
	}
	if digits == "" || (len(digits) > 1 && digits[0] == '0') || (lowest == 1 && digits == "0") {
		return false
	}
	return primDigits(digits)
}

// primIsDecimal matches -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
// which is the JSON number grammar.
func primIsDecimal(s string) bool {
	p := vjParser{src: s}
	_, err := p.number()
	return err == nil && p.i == len(s)
}

// primText checks string and markdown: [ \r\n\t\S]+, that is no white space
// other than space, tab, CR and LF, and at most 1 MB of characters.
func primText(s string) string {
	if strings.ContainsAny(s, "\v\f") {
		return "must not contain vertical tab or form feed"
	}
	if len(s) > primStringMax && utf8.RuneCountInString(s) > primStringMax {
		return "longer than 1 MB (1048576 characters)"
	}
	return ""
}

// primIsControl reports whether r is a character FHIR strings must not
// hold: below U+0020 but tab, line feed and carriage return.
func primIsControl(r rune) bool {
	return r < 0x20 && r != '\t' && r != '\n' && r != '\r'
}

// primIsSpace is \s: ASCII white space.
func primIsSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// primIsCode matches [^\s]+(\s[^\s]+)*.
func primIsCode(s string) bool {
	if s == "" {
		return false
	}
	prevSpace := true // no leading space
	for i := 0; i < len(s); i++ {
		sp := primIsSpace(rune(s[i]))
		if sp && prevSpace {
			return false
		}
		prevSpace = sp
	}
	return !prevSpace
}

// primIsID matches [A-Za-z0-9\-\.]{1,64}.
func primIsID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// primIsOID matches urn:oid:[0-2](\.(0|[1-9][0-9]*))+.
func primIsOID(s string) bool {
	rest, ok := strings.CutPrefix(s, "urn:oid:")
	if !ok || len(rest) < 3 || rest[0] < '0' || rest[0] > '2' {
		return false
	}
	arcs := strings.Split(rest[1:], ".")
	if arcs[0] != "" || len(arcs) < 2 {
		return false
	}
	for _, a := range arcs[1:] {
		if a == "" || (len(a) > 1 && a[0] == '0') {
			return false
		}
		for i := 0; i < len(a); i++ {
			if a[i] < '0' || a[i] > '9' {
				return false
			}
		}
	}
	return true
}

// primIsUUID matches
// urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}.
func primIsUUID(s string) bool {
	rest, ok := strings.CutPrefix(s, "urn:uuid:")
	if !ok || len(rest) != 36 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// primIsBase64 matches (\s*([0-9a-zA-Z\+/=]){4}\s*)+: runs of base64
// characters whose lengths are multiples of four, separated by white space,
// at least one run.
func primIsBase64(s string) bool {
	run, runs := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/', c == '=':
			run++
		case primIsSpace(rune(c)):
			if run%4 != 0 {
				return false
			}
			if run > 0 {
				runs++
			}
			run = 0
		default:
			return false
		}
	}
	if run%4 != 0 {
		return false
	}
	return runs > 0 || run > 0
}

// primIsTime matches ([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?.
func primIsTime(s string) bool {
	n, ok := primClock(s)
	return ok && n == len(s)
}

// primClock matches the time-of-day part shared by time, dateTime and
// instant at the start of s and returns its length.
func primClock(s string) (int, bool) {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' {
		return 0, false
	}
	h, m, sec := primTwo(s[0:2]), primTwo(s[3:5]), primTwo(s[6:8])
	if h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60 {
		return 0, false
	}
	n := 8
	if n < len(s) && s[n] == '.' {
		n++
		start := n
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		if n == start {
			return 0, false
		}
	}
	return n, true
}

// primTwo parses two ASCII digits, or returns -1.
func primTwo(s string) int {
	if len(s) != 2 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return -1
	}
	return int(s[0]-'0')*10 + int(s[1]-'0')
}

// primDateForm says which of the date-like primitives is being checked.
type primDateForm uint8

const (
	primDateOnly       primDateForm = iota // date: YYYY, YYYY-MM or YYYY-MM-DD
	primDateOrDateTime                     // dateTime: a date, or a full date with time and zone
	primInstant                            // instant: full date, time and zone
)

// primDateTime checks date, dateTime and instant: the R4 regex (year 0001
// to 9999, month, day, time with zone (Z or +/-hh:mm up to 14:00) when a
// time is given) and that the day exists in that month.
func primDateTime(s string, form primDateForm) string {
	if msg := primDateSyntax(s, form); msg != "" {
		return msg
	}
	if len(s) >= 10 {
		y, _ := strconv.Atoi(s[0:4])
		m, d := primTwo(s[5:7]), primTwo(s[8:10])
		if d > primDaysIn(y, m) {
			return "day " + s[8:10] + " does not exist in " + s[0:7]
		}
	}
	return ""
}

// primDateSyntax is the regex part of primDateTime.
func primDateSyntax(s string, form primDateForm) string {
	const (
		dateMsg     = "must be YYYY, YYYY-MM or YYYY-MM-DD"
		dateTimeMsg = "must be YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff] with a time zone (Z or +hh:mm)"
		instantMsg  = "must be YYYY-MM-DDThh:mm:ss[.fff] with a time zone (Z or +hh:mm)"
	)
	msg := dateMsg
	switch form {
	case primDateOrDateTime:
		msg = dateTimeMsg
	case primInstant:
		msg = instantMsg
	}
	// partial is the verdict on a value that stops after its year, month
	// or day: fine for date and dateTime, too short for an instant.
	partial := func() string {
		if form == primInstant {
			return msg
		}
		return ""
	}
	if len(s) < 4 || !primDigits(s[:4]) || s[:4] == "0000" {
		return msg
	}
	rest := s[4:]
	if rest == "" {
		return partial()
	}
	if len(rest) < 3 || rest[0] != '-' || !primMonth(rest[1:3]) {
		return msg
	}
	rest = rest[3:]
	if rest == "" {
		return partial()
	}
	if len(rest) < 3 || rest[0] != '-' {
		return msg
	}
	if d := primTwo(rest[1:3]); d < 1 || d > 31 {
		return msg
	}
	rest = rest[3:]
	if rest == "" {
		return partial()
	}
	if form == primDateOnly || rest[0] != 'T' {
		return msg
	}
	n, ok := primClock(rest[1:])
	if !ok {
		return msg
	}
	zone := rest[1+n:]
	if zone == "" {
		return "a time needs a time zone (Z or +hh:mm)"
	}
	if !primZone(zone) {
		return msg
	}
	return ""
}

// primZone matches Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00).
func primZone(z string) bool {
	if z == "Z" {
		return true
	}
	if len(z) != 6 || (z[0] != '+' && z[0] != '-') || z[3] != ':' {
		return false
	}
	h, m := primTwo(z[1:3]), primTwo(z[4:6])
	if h < 0 || m < 0 || m > 59 {
		return false
	}
	return h <= 13 || (h == 14 && m == 0)
}

func primMonth(s string) bool {
	m := primTwo(s)
	return m >= 1 && m <= 12
}

func primDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// primDaysIn returns the number of days in a month of the proleptic
// Gregorian calendar.
func primDaysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// primIsXHTML is the simple check of narrative XHTML: a string that starts
// with a div element. The XHTML itself is not parsed.
func primIsXHTML(s string) bool {
	rest, ok := strings.CutPrefix(s, "<div")
	if !ok || rest == "" {
		return false
	}
	switch rest[0] {
	case '>', '/', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// vjDescribe names a JSON value's kind for diagnostics.
func vjDescribe(v *vjNode) string {
	if v.kind == vjBool {
		return "boolean " + strconv.FormatBool(v.boolean)
	}
	if v.kind == vjNumber {
		return "number " + vQuote(v.text)
	}
	if v.kind == vjString {
		return "string " + vQuote(v.text)
	}
	return v.kind.String()
}

// vQuote quotes a value for a diagnostic, shortening long ones.
func vQuote(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut] + "...")
	}
	return strconv.Quote(s)
}
