package testdb

import (
	"database/sql"
	"strconv"
	"strings"
	"testing"

	_ "github.com/glebarez/go-sqlite"  // database/sql driver "sqlite"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// Raw opens the database behind dsn directly, the way someone holding
// the database (and not the keys) could change it; closed when the test
// ends.
func Raw(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	driver, name := "pgx", dsn
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		driver, name = "sqlite", path+"?_pragma=busy_timeout(5000)"
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Rebind turns the ? placeholders of q into PostgreSQL's $1, $2, ... when
// dsn is a PostgreSQL one.
func Rebind(dsn, q string) string {
	if strings.HasPrefix(dsn, "sqlite:") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
