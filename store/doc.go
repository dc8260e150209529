// Package store keeps resources and every one of their versions in a SQL
// database through gorm: SQLite (the embedded default, pure Go), PostgreSQL
// and CockroachDB. The schema comes from the versioned migrations in package
// migrations, applied by Open.
//
// Writes run in SERIALIZABLE transactions through InTx, which retries the
// whole transaction on serialization conflicts (crdbgorm on CockroachDB).
// Bodies are stored as the bytes the caller hands in and returned unchanged;
// the store never re-marshals a resource.
package store
