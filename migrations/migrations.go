// Package migrations holds the versioned SQL schema of ehrledger, one folder
// per dialect. Files are named NNNN_name.sql and applied in order, each in
// its own transaction, by store.Open; applied versions are recorded in the
// schema_migrations table. A migration, once released, is never edited:
// changes come as a new file.
//
// CockroachDB speaks the PostgreSQL dialect for everything used here and runs
// the postgres folder. The postgres-only folder holds what PostgreSQL alone
// accepts (storage settings): its NNNN file runs on PostgreSQL in the same
// transaction as the postgres migration NNNN, after it.
package migrations

import "embed"

// FS holds sqlite/*.sql, postgres/*.sql and postgres-only/*.sql.
//
//go:embed sqlite/*.sql postgres/*.sql postgres-only/*.sql
var FS embed.FS
