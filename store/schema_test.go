package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/store"
	"github.com/jackc/pgx/v5"
)

// schema is what the migrations made of a database: the migrations
// applied, each table's columns ("name" or "name NOT NULL"), and each
// index created by name (constraint indexes aside) with its table.
type schema struct {
	migrations []int
	tables     map[string][]string
	indexes    map[string]string
}

// schemaDifferences are the known differences between the dialects'
// schemas, each with its reason; anything else the test reports.
var schemaDifferences = map[string]string{}

// TestSchemasAgree migrates a fresh SQLite and a fresh PostgreSQL
// database and compares what each holds: the same migration numbers, the
// same tables with the same columns and nullability, the same indexes.
// Two migration files that drift apart (a column added on one dialect
// only, an index forgotten) fail here.
func TestSchemasAgree(t *testing.T) {
	ctx := context.Background()
	lite, pg := testdb.SQLite(t), testdb.Postgres(t)
	for _, dsn := range []string{lite, pg} {
		s, err := store.Open(ctx, store.Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	a, b := sqliteSchema(t, strings.TrimPrefix(lite, "sqlite:")), postgresSchema(t, pg)
	if len(a.migrations) < 12 || !slices.Equal(a.migrations, b.migrations) {
		t.Errorf("migrations applied: SQLite %v, PostgreSQL %v", a.migrations, b.migrations)
	}
	var diffs []string
	for _, name := range sortedKeys(a.tables, b.tables) {
		ca, cb := a.tables[name], b.tables[name]
		switch {
		case ca == nil:
			diffs = append(diffs, "table "+name+" only on PostgreSQL")
		case cb == nil:
			diffs = append(diffs, "table "+name+" only on SQLite")
		default:
			for _, c := range sortedKeys(set(ca), set(cb)) {
				switch {
				case !slices.Contains(cb, c):
					diffs = append(diffs, fmt.Sprintf("column %s.%s only on SQLite", name, c))
				case !slices.Contains(ca, c):
					diffs = append(diffs, fmt.Sprintf("column %s.%s only on PostgreSQL", name, c))
				}
			}
		}
	}
	for _, name := range sortedKeys(a.indexes, b.indexes) {
		if ta, tb := a.indexes[name], b.indexes[name]; ta != tb {
			diffs = append(diffs, fmt.Sprintf("index %s: on %q in SQLite, on %q in PostgreSQL", name, ta, tb))
		}
	}
	for _, d := range diffs {
		if _, known := schemaDifferences[d]; !known {
			t.Errorf("the dialects' schemas differ: %s", d)
		}
	}
	for d := range schemaDifferences {
		if !slices.Contains(diffs, d) {
			t.Errorf("a known difference is gone; delete it from schemaDifferences: %s", d)
		}
	}
	if len(a.tables) < 20 || len(a.indexes) < 10 {
		t.Fatalf("the check sees too little: %d tables, %d indexes", len(a.tables), len(a.indexes))
	}
}

// sqliteSchema reads the schema of the SQLite database at path and of its
// lookup file beside it.
func sqliteSchema(t *testing.T, path string) schema {
	t.Helper()
	s := schema{tables: map[string][]string{}, indexes: map[string]string{}}
	for _, file := range []string{path, path + "-lookup"} {
		db, err := sql.Open("sqlite", file)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND (type = 'table' OR sql IS NOT NULL)`)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var typ, name, table string
			if err := rows.Scan(&typ, &name, &table); err != nil {
				t.Fatal(err)
			}
			if typ == "table" {
				tables = append(tables, name)
			} else if typ == "index" {
				s.indexes[name] = table
			}
		}
		rows.Close()
		for _, table := range tables {
			rows, err := db.Query(`SELECT name, "notnull", pk FROM pragma_table_info(?)`, table)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var name string
				var notNull, pk int
				if err := rows.Scan(&name, &notNull, &pk); err != nil {
					t.Fatal(err)
				}
				s.tables[table] = append(s.tables[table], column(name, notNull == 1 || pk > 0))
			}
			rows.Close()
		}
		if file == path {
			s.migrations = migrationsOf(t, db)
		}
	}
	return s
}

// postgresSchema reads the schema of the PostgreSQL database at dsn.
func postgresSchema(t *testing.T, dsn string) schema {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	s := schema{tables: map[string][]string{}, indexes: map[string]string{}}
	rows, err := conn.Query(ctx, `SELECT table_name, column_name, is_nullable FROM information_schema.columns WHERE table_schema = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var table, name, nullable string
		if err := rows.Scan(&table, &name, &nullable); err != nil {
			t.Fatal(err)
		}
		s.tables[table] = append(s.tables[table], column(name, nullable == "NO"))
	}
	rows.Close()
	rows, err = conn.Query(ctx, `SELECT i.relname, c.relname FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			t.Fatal(err)
		}
		s.indexes[name] = table
	}
	rows.Close()
	rows, err = conn.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		s.migrations = append(s.migrations, v)
	}
	rows.Close()
	return s
}

func migrationsOf(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func column(name string, notNull bool) string {
	if notNull {
		return name + " NOT NULL"
	}
	return name
}

func set(xs []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// sortedKeys are the keys of a and b, sorted, once each.
func sortedKeys[V any](a, b map[string]V) []string {
	keys := slices.Collect(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
