package keys

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strings"
	"sync"

	"github.com/ehrledger/ehrledger/fhir"
)

// Blind computes the blind search index: the values that identify a
// patient are stored as HMAC-SHA-256 under a key the KMS wraps (owner
// BlindOwner), truncated to 128 bits. The parameter is part of the MAC's
// input, so equal values of different parameters do not look alike.
//
// Which values are blind (Blinds): on every type whose resources can be
// patient data (fhir.PatientData), all string parameters (names,
// addresses, free text), the free text of CodeableConcepts (:text, what a
// clinician typed where no code fits, or beside one), and the token
// parameters identifier, telecom, phone and email (the system stays
// clear, the value is hashed). Dates, numbers, quantities, codes, the
// displays of codings (":display", the name a terminology gives a code
// that is itself clear), references and URIs stay clear: search ranges
// and sorts on them, and they do not name a person on their own
// (docs/security.md).
type Blind struct {
	pool  sync.Pool // of hash.Hash keyed with the blind key
	types map[string]bool
}

// blindTokens are the token parameters whose values identify a person.
var blindTokens = map[string]bool{"identifier": true, "telecom": true, "phone": true, "email": true}

// NewBlind returns the blind index keyed with key (BlindOwner's data key).
func NewBlind(key *DataKey) *Blind {
	raw := key.raw
	b := &Blind{types: map[string]bool{"Person": true}}
	b.pool.New = func() any { return hmac.New(sha256.New, raw) }
	for _, t := range fhir.PatientDataTypes() {
		b.types[t] = true
	}
	return b
}

// Blinds reports whether values of param (as the store names it:
// "name", "code:text", "code:display", "identifier:of-type") on typ are
// stored blind.
func (b *Blind) Blinds(typ, param string) bool {
	if !b.types[typ] {
		return false
	}
	base, modifier, _ := strings.Cut(param, ":")
	switch modifier {
	case "text", "of-type":
		return true
	case "display":
		return false
	}
	sp, ok := fhir.LookupSearchParam(typ, base)
	if !ok {
		return false
	}
	return sp.Type == "string" || (sp.Type == "token" && blindTokens[base])
}

// Blind returns the blind form of value for param of typ.
func (b *Blind) Blind(typ, param, value string) string {
	h := b.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write([]byte(param))
	h.Write([]byte{0})
	h.Write([]byte(value))
	var sum [sha256.Size]byte
	out := base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:16])
	b.pool.Put(h)
	return out
}
