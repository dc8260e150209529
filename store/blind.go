package store

import (
	"fmt"
	"strings"
)

// Blinder hides the search values that identify a patient behind keyed
// hashes (blind indexes): equal values still compare equal, so exact and
// token matching work unchanged, and prefix matching works through rows of
// hashed prefixes (search_string.plen), but the database holds no value in
// clear.
type Blinder interface {
	// Blinds reports whether the values of param (as stored: "name",
	// "code:text", "identifier:of-type") of resources of typ are blind.
	Blinds(typ, param string) bool
	// Blind returns the blind form of one value of param of typ.
	Blind(typ, param, value string) string
}

// blindPrefixMax is the longest prefix stored for a blind string. A
// longer prefix search matches on its first blindPrefixMax characters.
const blindPrefixMax = 64

// stringRows queues a string parameter's row, or when the parameter is
// blind, the rows of its hashed value and of each hashed prefix.
func (w *rowWriter) stringRows(typ, id, param, norm, exact string) {
	const cols = "res_type, res_id, param, plen, norm, exact"
	if w.blind == nil || !w.blind.Blinds(typ, param) {
		w.add("search_string", cols, "", typ, id, param, 0, norm, exact)
		return
	}
	b := w.blind
	w.add("search_string", cols, "", typ, id, param, 0, b.Blind(typ, param, norm), b.Blind(typ, param, exact))
	runes := []rune(norm)
	for n := 1; n < len(runes) && n <= blindPrefixMax; n++ {
		w.add("search_string", cols, "", typ, id, param, n, b.Blind(typ, param, string(runes[:n])), "")
	}
}

// blindCode returns the code of a token row as stored: hashed when the
// parameter is blind, except that an identifier type's code stays clear
// before "|" in :of-type rows.
func blindCode(b Blinder, typ, param, code string) string {
	if b == nil || !b.Blinds(typ, param) {
		return code
	}
	if strings.HasSuffix(param, ":of-type") {
		typeCode, value, _ := strings.Cut(code, "|")
		return typeCode + "|" + b.Blind(typ, param, value)
	}
	return b.Blind(typ, param, code)
}

// blindPrefix writes the condition that blind string row x starts with p
// (already normalised): its whole value is p, or its prefix of p's length
// is.
func (b *builder) blindPrefix(x, typ, param, p string) {
	runes := []rune(p)
	if len(runes) == 0 {
		b.w(x + ".plen = 0")
		return
	}
	n := min(len(runes), blindPrefixMax)
	b.w("(" + x + ".plen = 0 AND " + x + ".norm = ").arg(b.blind.Blind(typ, param, p)).
		w(") OR (" + x + ".plen = ").arg(n).w(" AND " + x + ".norm = ").arg(b.blind.Blind(typ, param, string(runes[:n]))).w(")")
}

func notBlind(what, typ, param string) error {
	return &CriteriaError{Msg: fmt.Sprintf("%s is not supported on %s.%s: its values identify patients and are stored as keyed hashes", what, typ, param)}
}
