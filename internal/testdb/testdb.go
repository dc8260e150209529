// Package testdb gives integration tests real databases: a fresh SQLite file
// per test, and a fresh PostgreSQL database per test on the server that
// EHR_TEST_POSTGRES names (scripts/test.sh starts one and sets it).
//
// Without EHR_TEST_POSTGRES the PostgreSQL half of a test is skipped with a
// message, except under CI=true where it fails: CI must never pass with a
// database silently left out.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgres names the variable holding the PostgreSQL test server's DSN,
// e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable. Tests
// create and drop their own databases on it.
const EnvPostgres = "EHR_TEST_POSTGRES"

// Each runs fn as a subtest for every database: "sqlite" and "postgres".
func Each(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite returns the DSN of a new SQLite file in the test's temp dir.
func SQLite(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "ehrledger.db")
}

// Postgres creates a fresh database on the test server, drops it when the
// test ends, and returns its DSN. See the package doc for when it skips.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set under CI=true: run the tests with scripts/test.sh, which starts PostgreSQL", EnvPostgres)
		}
		t.Skipf("%s is not set: PostgreSQL half skipped (scripts/test.sh runs it)", EnvPostgres)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvPostgres, err)
	}
	defer conn.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	name := "ehr_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgres, err)
	}
	u.Path = "/" + name
	return u.String()
}
