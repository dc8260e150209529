// Package keys keeps patient data unreadable to anyone holding only the
// database: per-owner 256-bit data keys (one per patient, one for the
// provider's own resources) seal resource bodies with AES-256-GCM, and the
// data keys themselves are stored only wrapped by a key management service
// (Vault Transit in production, a local key-encryption key file in embedded
// mode).
//
// A Keyring unwraps data keys through a bounded cache with a TTL and loads
// each missing key once however many requests want it. It creates keys for
// new owners, rewraps every key to the KMS's newest key version (rotation)
// and destroys a patient's key (erasure, which makes every byte sealed
// under it unreadable). Blind keys the search indexes with HMACs so that
// the values that identify a patient are never stored in clear.
package keys
