// Package audit is the disclosure ledger: an append-only RFC 6962 Merkle
// log of PHI-free records (every write, every disclosure of patient data,
// erasures), kept in the same SQL database as the resources, with C2SP
// signed checkpoints, tiles, and inclusion and consistency proofs that
// anyone can check offline.
//
// The hashing and proof arithmetic are golang.org/x/mod/sumdb/tlog's;
// checkpoints are transparency-dev/formats checkpoints signed as
// golang.org/x/mod/sumdb/note signed notes (Ed25519).
package audit
