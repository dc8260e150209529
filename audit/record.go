package audit

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/tlog"
)

// RecordVersion is the version of the record format written today.
const RecordVersion = 1

// Record types.
const (
	TypeWrite       = "write"
	TypeDisclosure  = "disclosure"
	TypeDenial      = "denial"
	TypeConsent     = "consent"
	TypeErasure     = "erasure"
	TypeKeyRotation = "key-rotation"
)

// Record is one ledger entry. It holds no PHI: the patient appears as a
// pseudonym, resources by type, id and version with a hash of their
// content. Its JSON (fields in this order, no spaces) is the leaf.
type Record struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	// Time is when it happened, RFC 3339 in UTC with microseconds.
	Time string `json:"time"`
	// Patient is the pseudonym of the patient the record is about.
	Patient     string     `json:"patient,omitempty"`
	Recipient   *Recipient `json:"recipient,omitempty"`
	Purpose     string     `json:"purpose,omitempty"`
	Interaction string     `json:"interaction,omitempty"`
	// Resources are the versions written, disclosed or denied.
	Resources []Resource `json:"resources,omitempty"`
	// Consents are the consent versions that decided a disclosure or
	// denial; none when the provider's default policy did.
	Consents []ConsentRef `json:"consents,omitempty"`
	// BreakGlass marks a disclosure that only an emergency access
	// (purpose ETREAT with a reason) permitted.
	BreakGlass bool `json:"break_glass,omitempty"`
}

// Recipient is who received a disclosure (or made a write).
type Recipient struct {
	Client       string `json:"client,omitempty"`
	Organization string `json:"organization,omitempty"`
}

// ConsentRef is a consent version that decided, and the index of its own
// consent record in this log (absent when it was not integrated yet).
type ConsentRef struct {
	Ref   string `json:"ref"` // Consent/id/_history/version
	Index *int64 `json:"index,omitempty"`
}

// Resource is one resource version and the SHA-256 of the stored JSON.
type Resource struct {
	Ref    string `json:"ref"` // Type/id/_history/version
	SHA256 string `json:"sha256"`
}

// Bytes is the record's leaf: its canonical JSON.
func (r *Record) Bytes() []byte {
	if r.V == 0 {
		r.V = RecordVersion
	}
	b, _ := json.Marshal(r) // plain fields always marshal
	return b
}

// FormatTime is a record's time format.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// ResourceOf is the Resource entry of a stored version.
func ResourceOf(typ, id string, version int64, body []byte) Resource {
	sum := sha256.Sum256(body)
	return Resource{Ref: typ + "/" + id + "/_history/" + strconv.FormatInt(version, 10), SHA256: hex.EncodeToString(sum[:])}
}

// Pseudonyms turns patient ids into the pseudonyms records carry: an
// HMAC-SHA-256 of "Patient/<id>" under the provider's pseudonym key
// (keys.PseudonymOwner, kept wrapped by the KMS), truncated to 128 bits.
type Pseudonyms struct{ mac func([]byte) []byte }

// NewPseudonyms makes pseudonyms with mac, an HMAC-SHA-256 under the
// pseudonym key.
func NewPseudonyms(mac func([]byte) []byte) *Pseudonyms { return &Pseudonyms{mac: mac} }

// Of returns the pseudonym of a patient id.
func (p *Pseudonyms) Of(patientID string) string {
	return base64.RawURLEncoding.EncodeToString(p.mac([]byte("Patient/" + patientID))[:16])
}

// lookupOf is the lookup row of a record; one that does not parse (none
// should) is listed under no patient.
func lookupOf(rec store.LedgerRecord) store.LedgerLookup {
	var r struct{ Time, Patient string } // what a lookup keeps, and no more decoded
	json.Unmarshal(rec.Data, &r)
	m := store.LedgerLookup{Index: rec.Index, HashKey: hashKey(tlog.RecordHash(rec.Data)), PatientKey: patientKey(r.Patient)}
	if t, err := time.Parse(time.RFC3339Nano, r.Time); err == nil {
		m.TimeUs = t.UnixMicro()
	}
	return m
}

// ParseRecord reads a leaf.
func ParseRecord(data []byte) (*Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// hashKey is the lookup key of a leaf hash: its first eight bytes.
func hashKey(h tlog.Hash) int64 { return int64(binary.BigEndian.Uint64(h[:8])) }

// patientKey is the lookup key of a pseudonym: the first eight bytes of
// its SHA-256 (0 for none).
func patientKey(pseudonym string) int64 {
	if pseudonym == "" {
		return 0
	}
	h := sha256.Sum256([]byte(pseudonym))
	return int64(binary.BigEndian.Uint64(h[:8]))
}
