// Package store keeps resources, every one of their versions and the
// search index of their current versions in a SQL database through gorm:
// SQLite (the embedded default, pure Go), PostgreSQL and CockroachDB. The
// schema comes from the versioned migrations in package migrations, applied
// by Open.
//
// Writes run in SERIALIZABLE transactions through InTx, which retries the
// whole transaction on serialization conflicts (crdbgorm on CockroachDB);
// PutMany stores versions and their index values in a few multi-row
// statements. Bodies are stored as the bytes the caller hands in and
// returned unchanged; the store never re-marshals a resource. Search
// compiles a fhir.SearchQuery to SQL over the index tables (docs/search.md).
package store
