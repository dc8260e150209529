package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Owner names of the keys that are not a patient's.
const (
	// ProviderOwner seals resources outside every patient's compartment.
	ProviderOwner = "provider"
	// BlindOwner is the HMAC key of the blind search indexes.
	BlindOwner = "blind-index"
	// PseudonymOwner is the HMAC key of the patient pseudonyms in ledger
	// records.
	PseudonymOwner = "ledger-pseudonym"
)

// PatientOwner is the owner name of a patient's data key.
func PatientOwner(id string) string { return "Patient/" + id }

// ExportOwner is the owner name of the data key that seals the output of
// Bulk Data export job id, erased with the job.
func ExportOwner(id string) string { return "export/" + id }

// OwnerOf says whose data key seals a resource, which names whose data
// it is: a Patient's own, else the first patient it is about or refers to
// (patients lists their ids, those of the Patient compartment first:
// fhir.Index.Patients), or else the provider's.
func OwnerOf(typ, id string, patients []string) string {
	switch {
	case typ == "Patient":
		return PatientOwner(id)
	case len(patients) > 0:
		return PatientOwner(patients[0])
	}
	return ProviderOwner
}

// ErrErased says the data key was destroyed: what it sealed is gone.
var ErrErased = errors.New("keys: the data key was erased")

// ErrTampered says a sealed body failed authentication: it was altered,
// moved to another row, or sealed under another key.
var ErrTampered = errors.New("keys: sealed data failed authentication")

// sealVersion is the first byte of every sealed body, so that the format
// can change without guessing.
const sealVersion = 1

// DataKey is one owner's unwrapped 256-bit data key, or the tombstone of
// an erased one. It is safe for concurrent use.
type DataKey struct {
	Owner  string
	erased bool
	aead   cipher.AEAD
	raw    []byte // for HMAC (the blind index key); never logged
}

func newDataKey(owner string, raw []byte) (*DataKey, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("keys: data key of %s has %d bytes, want 32", owner, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &DataKey{Owner: owner, aead: aead, raw: raw}, nil
}

// MAC returns HMAC-SHA-256 of msg under the key (for keys used as MAC
// keys: the blind index, pseudonyms).
func (k *DataKey) MAC(msg []byte) []byte {
	m := hmac.New(sha256.New, k.raw)
	m.Write(msg)
	return m.Sum(nil)
}

func erasedKey(owner string) *DataKey { return &DataKey{Owner: owner, erased: true} }

// Erased reports whether the key was destroyed.
func (k *DataKey) Erased() bool { return k.erased }

// Seal encrypts plaintext, binding aad (which Open must be given again).
// The result is a version byte, a random 96-bit nonce and the ciphertext
// with its tag.
func (k *DataKey) Seal(aad, plaintext []byte) ([]byte, error) {
	if k.erased {
		return nil, fmt.Errorf("%w: %s", ErrErased, k.Owner)
	}
	ns := k.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[1:], plaintext, aad), nil
}

// Open decrypts what Seal returned for the same aad.
func (k *DataKey) Open(aad, sealed []byte) ([]byte, error) {
	if k.erased {
		return nil, fmt.Errorf("%w: %s", ErrErased, k.Owner)
	}
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: not a sealed body", ErrTampered)
	}
	out, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w (key %s)", ErrTampered, k.Owner)
	}
	return out, nil
}

func randomKey() ([]byte, error) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}
