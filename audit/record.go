package audit

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// RecordVersion is the version of the record format written today.
const RecordVersion = 2

// Record types.
const (
	TypeWrite       = "write"
	TypeDisclosure  = "disclosure"
	TypeDenial      = "denial"
	TypeConsent     = "consent"
	TypeErasure     = "erasure"
	TypeKeyRotation = "key-rotation"
)

// Record is one ledger entry as the provider knows it. Its leaf (Seal)
// shows in clear only what links no record to a patient: the type, the
// time to the second, the recipient, purpose, interaction and
// break-glass. Whom and what it is about (the patient, each resource
// version and the SHA-256 of its body, the consents that decided, the
// exact time) the leaf only commits to; the opening that reveals them is
// kept by the provider, sealed under the patient's data key, and goes
// with that key (docs/ledger.md).
type Record struct {
	Type string
	// Time is when it happened, RFC 3339 in UTC with microseconds.
	Time string
	// Patient is the patient the record is about, "Patient/<id>"; "" for
	// none.
	Patient     string
	Recipient   *Recipient
	Purpose     string
	Interaction string
	// Resources are the versions written, disclosed or denied.
	Resources []Resource
	// Consents are the consent versions that decided a disclosure or
	// denial; none when the provider's default policy did.
	Consents []ConsentRef
	// BreakGlass marks a disclosure that only an emergency access
	// (purpose ETREAT with a reason) permitted.
	BreakGlass bool
}

// Recipient is who received a disclosure (or made a write).
type Recipient struct {
	Client       string `json:"client,omitempty"`
	Organization string `json:"organization,omitempty"`
	// PatientContext says the token acted in a patient's context (their
	// own app, or one registered for them): such a client may be the
	// patient's alone, so a leaf shows only this mark, and the client in
	// the opening.
	PatientContext bool `json:"patient_context,omitempty"`
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

// Leaf is what a record's leaf shows: compact JSON, fields in this order.
type Leaf struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	// Time is the record's time to the second.
	Time        string     `json:"time"`
	Recipient   *Recipient `json:"recipient,omitempty"`
	Purpose     string     `json:"purpose,omitempty"`
	Interaction string     `json:"interaction,omitempty"`
	BreakGlass  bool       `json:"break_glass,omitempty"`
	// Commitment is base64url(SHA-256(CommitmentDomain ‖ opening)); absent
	// when the record is about no one and nothing.
	Commitment string `json:"commitment,omitempty"`
}

// CommitmentDomain prefixes an opening in its commitment's hash.
const CommitmentDomain = "ehrledger record opening v2\x00"

// saltSize is the length of the random salt an opening begins with.
const saltSize = 32

// opened is what an opening reveals, after its salt: compact JSON,
// fields in this order.
type opened struct {
	Patient   string       `json:"patient,omitempty"`
	Time      string       `json:"time"`
	Recipient *Recipient   `json:"recipient,omitempty"`
	Resources []Resource   `json:"resources,omitempty"`
	Consents  []ConsentRef `json:"consents,omitempty"`
}

// Seal returns the record's leaf and the opening of its commitment: a
// fresh random salt followed by the JSON of what the leaf hides. A record
// about no one and nothing (a key rotation) has no opening.
func (r *Record) Seal() (leaf, opening []byte) {
	l := Leaf{V: RecordVersion, Type: r.Type, Time: leafTime(r.Time), Recipient: r.Recipient, Purpose: r.Purpose,
		Interaction: r.Interaction, BreakGlass: r.BreakGlass}
	hidden := opened{Patient: r.Patient, Time: r.Time, Resources: r.Resources, Consents: r.Consents}
	if rc := r.Recipient; rc != nil && rc.PatientContext {
		l.Recipient, hidden.Recipient = &Recipient{PatientContext: true}, rc
	}
	if hidden.Patient != "" || hidden.Recipient != nil || len(hidden.Resources) > 0 || len(hidden.Consents) > 0 {
		body, _ := json.Marshal(hidden) // plain fields always marshal
		opening = make([]byte, saltSize, saltSize+len(body))
		if _, err := rand.Read(opening); err != nil {
			panic("audit: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
		}
		opening = append(opening, body...)
		l.Commitment = Commitment(opening)
	}
	leaf, _ = json.Marshal(l) // plain fields always marshal
	return leaf, opening
}

// Commitment is the commitment to an opening.
func Commitment(opening []byte) string {
	h := sha256.New()
	h.Write([]byte(CommitmentDomain))
	h.Write(opening)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// leafTime is a record's time as its leaf shows it: to the second, so
// that it does not name the instant a version was written
// (meta.lastUpdated).
func leafTime(t string) string {
	if len(t) >= 19 {
		return t[:19] + "Z"
	}
	return t
}

// FormatTime is a record's time format.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// ResourceOf is the Resource entry of a stored version.
func ResourceOf(typ, id string, version int64, body []byte) Resource {
	sum := sha256.Sum256(body)
	return Resource{Ref: typ + "/" + id + "/_history/" + strconv.FormatInt(version, 10), SHA256: hex.EncodeToString(sum[:])}
}

// ParseLeaf reads a leaf.
func ParseLeaf(data []byte) (*Leaf, error) {
	var l Leaf
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, err
	}
	if l.V != RecordVersion {
		return nil, fmt.Errorf("audit: a record of format %d, not %d", l.V, RecordVersion)
	}
	return &l, nil
}

// ErrOpening says an opening is not the one its leaf commits to.
var ErrOpening = errors.New("audit: the opening does not match the record's commitment")

// OpenRecord reads a leaf with the opening of its commitment (nil for a
// record that commits to nothing) into the whole record, after checking
// that the opening is the one the leaf commits to.
func OpenRecord(leaf, opening []byte) (*Record, error) {
	l, err := ParseLeaf(leaf)
	if err != nil {
		return nil, err
	}
	r := &Record{Type: l.Type, Time: l.Time, Recipient: l.Recipient, Purpose: l.Purpose, Interaction: l.Interaction, BreakGlass: l.BreakGlass}
	if l.Commitment == "" && opening == nil {
		return r, nil
	}
	if len(opening) < saltSize || Commitment(opening) != l.Commitment {
		return nil, ErrOpening
	}
	var o opened
	if err := json.Unmarshal(opening[saltSize:], &o); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOpening, err)
	}
	if leafTime(o.Time) != l.Time {
		return nil, fmt.Errorf("%w: its time is not the leaf's", ErrOpening)
	}
	r.Patient, r.Time, r.Resources, r.Consents = o.Patient, o.Time, o.Resources, o.Consents
	if o.Recipient != nil {
		r.Recipient = o.Recipient
	}
	return r, nil
}

// Pseudonyms turns patient ids into the keys by which the server finds
// the records about a patient in its own lookup table (never in a leaf):
// an HMAC-SHA-256 of "Patient/<id>" under the provider's pseudonym key
// (keys.PseudonymOwner, kept wrapped by the KMS), truncated to 128 bits.
type Pseudonyms struct{ mac func([]byte) []byte }

// NewPseudonyms makes pseudonyms with mac, an HMAC-SHA-256 under the
// pseudonym key.
func NewPseudonyms(mac func([]byte) []byte) *Pseudonyms { return &Pseudonyms{mac: mac} }

// Of returns the pseudonym of a patient id.
func (p *Pseudonyms) Of(patientID string) string {
	return base64.RawURLEncoding.EncodeToString(p.mac([]byte("Patient/" + patientID))[:16])
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
