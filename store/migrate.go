package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/migrations"
	"gorm.io/gorm"
)

// migration is one versioned SQL file.
type migration struct {
	version int
	name    string
	sql     string
	extra   string // postgres-only: run after sql on PostgreSQL (not CockroachDB)
}

// migrationsFor lists the embedded migrations of a dialect in order.
func migrationsFor(d Dialect) ([]migration, error) {
	dir := string(d)
	if d == Cockroach {
		dir = string(Postgres)
	}
	out, err := readMigrations(dir)
	if err != nil {
		return nil, err
	}
	if d == Postgres {
		extra, err := readMigrations("postgres-only")
		if err != nil {
			return nil, err
		}
		for _, e := range extra {
			i := sort.Search(len(out), func(i int) bool { return out[i].version >= e.version })
			if i == len(out) || out[i].version != e.version {
				return nil, fmt.Errorf("store: postgres-only migration %s has no postgres migration of its number", e.name)
			}
			out[i].extra = e.sql
		}
	}
	return out, nil
}

// readMigrations reads one folder's NNNN_name.sql files, in order.
func readMigrations(dir string) ([]migration, error) {
	entries, err := fs.ReadDir(migrations.FS, dir)
	if err != nil {
		return nil, fmt.Errorf("store: migrations in %s: %w", dir, err)
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("store: migration file %s is not named NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(migrations.FS, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("store: two migrations numbered %d", out[i].version)
		}
	}
	return out, nil
}

// migrate applies every migration not yet recorded in schema_migrations,
// each in its own transaction together with its record, so that replicas
// starting at once apply each migration exactly once: the loser of the race
// on the record's primary key rolls back and finds it applied.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrationsFor(s.dialect)
	if err != nil {
		return err
	}
	db := s.db.WithContext(ctx)
	if err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_us BIGINT NOT NULL
)`).Error; err != nil {
		return s.classify(fmt.Errorf("store: create schema_migrations: %w", err))
	}
	for _, m := range ms {
		applied, err := s.applied(ctx, m.version)
		if err != nil {
			return err
		}
		if applied {
			continue
		}
		if m.version == sealedSince {
			if err := s.refuseClearBodies(ctx); err != nil {
				return err
			}
		}
		if m.version == tiledSince {
			if err := s.refuseUntiledLedger(ctx); err != nil {
				return err
			}
		}
		if m.version == openedSince {
			if err := s.refuseFormat1Ledger(ctx); err != nil {
				return err
			}
		}
		err = db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec(`INSERT INTO schema_migrations (version, name, applied_us) VALUES (?, ?, ?)`,
				m.version, m.name, time.Now().UnixMicro()).Error; err != nil {
				return err
			}
			if err := tx.Exec(m.sql).Error; err != nil {
				return err
			}
			if m.extra != "" {
				return tx.Exec(m.extra).Error
			}
			return nil
		})
		if err != nil {
			if applied, _ := s.applied(ctx, m.version); applied {
				continue // another replica applied it meanwhile
			}
			return s.classify(fmt.Errorf("store: migration %s: %w", m.name, err))
		}
		s.log.Info("applied migration", "dialect", s.dialect, "migration", m.name)
	}
	return nil
}

func (s *Store) applied(ctx context.Context, version int) (bool, error) {
	var n int64
	if err := s.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n).Error; err != nil {
		return false, s.classify(fmt.Errorf("store: read schema_migrations: %w", err))
	}
	return n > 0, nil
}

// sealedSince is the migration from which resource bodies are sealed
// under data keys.
const sealedSince = 3

// refuseClearBodies stops a database that holds bodies written in clear
// by a pre-release from being upgraded in place: sealing them needs their
// patients' keys, which that release never made. Such a database is
// exported through the API and loaded into a fresh one.
func (s *Store) refuseClearBodies(ctx context.Context) error {
	var n int64
	if err := s.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM (SELECT 1 FROM resource_versions LIMIT 1) t`).Scan(&n).Error; err != nil {
		return s.classify(fmt.Errorf("store: check for clear bodies: %w", err))
	}
	if n > 0 {
		return errors.New("store: this database holds resource bodies stored in clear by a pre-release; they cannot be sealed in place: export its resources through the API and load them into a new database")
	}
	return nil
}

// openedSince is the migration from which ledger records are of format 2,
// whose openings the store keeps.
const openedSince = 11

// refuseFormat1Ledger stops a database whose ledger holds records of
// format 1 from being upgraded: their leaves name patients by a stable
// pseudonym and resources by id, and a log cannot be rewritten. Such a
// database stays with the release that wrote it.
func (s *Store) refuseFormat1Ledger(ctx context.Context) error {
	var n int64
	if err := s.db.WithContext(ctx).Raw(`SELECT COALESCE((SELECT size FROM ledger_state WHERE id = 1), 0) + (SELECT COUNT(*) FROM (SELECT 1 FROM ledger_queue LIMIT 1) t)`).Scan(&n).Error; err != nil {
		return s.classify(fmt.Errorf("store: check the ledger's format: %w", err))
	}
	if n > 0 {
		return errors.New("store: this database's ledger holds records of format 1, whose leaves can be linked to patients; this release writes format 2 (docs/ledger.md) and does not convert a log: keep running the release that wrote it, or start from a new database")
	}
	return nil
}

// tiledSince is the migration from which the ledger is stored as tiles
// and entry bundles.
const tiledSince = 5

// refuseUntiledLedger stops a database whose ledger already holds records
// in the pre-release layout of migration 0004 (a row per record and per
// stored hash) from being upgraded: that layout is not converted, and
// dropping it would lose signed history. Such a database stays with the
// release that wrote it.
func (s *Store) refuseUntiledLedger(ctx context.Context) error {
	var n int64
	if err := s.db.WithContext(ctx).Raw(`SELECT COUNT(*) FROM (SELECT 1 FROM ledger_leaves LIMIT 1) t`).Scan(&n).Error; err != nil {
		return s.classify(fmt.Errorf("store: check the ledger's layout: %w", err))
	}
	if n > 0 {
		return errors.New("store: this database holds a ledger in a pre-release layout that this release does not convert; keep running the release that wrote it")
	}
	return nil
}
