package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/fhir"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/store"
	_ "github.com/glebarez/go-sqlite"
)

func open(t *testing.T, dsn string) *store.Store {
	t.Helper()
	s, _ := testkeys.Open(t, store.Config{DSN: dsn})
	return s
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

// identifier is the index of a resource with one identifier.
func identifier(system, value string) *fhir.Index {
	return &fhir.Index{Tokens: []fhir.TokenEntry{{Param: "identifier", System: system, Code: value}}}
}

func put(t *testing.T, s *store.Store, v store.Version, idx ...*fhir.Index) {
	t.Helper()
	var index *fhir.Index
	if len(idx) > 0 {
		index = idx[0]
	}
	if v.Owner == "" {
		v.Owner = "provider"
	}
	err := s.InTx(context.Background(), func(tx *store.Tx) error { return tx.Put(context.Background(), &v, index) })
	if err != nil {
		t.Fatalf("put %s/%s/%d: %v", v.Type, v.ID, v.VersionID, err)
	}
}

// TestStore runs the store's contract against every database.
func TestStore(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		t.Run("migrations apply once and reopen cleanly", func(t *testing.T) {
			open(t, dsn).Close()
			s := open(t, dsn)
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
		s := open(t, dsn)
		ctx := context.Background()

		t.Run("read of a resource never written is ErrNotFound", func(t *testing.T) {
			if _, err := s.Read(ctx, "Patient", "nobody"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		})

		body1 := []byte(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},"birthDate":"1970-01-01","x":1.50}`)
		body2 := []byte(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"2"},"birthDate":"1970-01-02"}`)
		put(t, s, store.Version{Type: "Patient", ID: "p1", VersionID: 1, Updated: t0, Method: "POST", Body: body1},
			identifier("http://mrn", "42"))
		put(t, s, store.Version{Type: "Patient", ID: "p1", VersionID: 2, Updated: t0.Add(time.Second), Method: "PUT", Body: body2},
			identifier("http://mrn", "43"))

		t.Run("read returns the current version byte for byte", func(t *testing.T) {
			v, err := s.Read(ctx, "Patient", "p1")
			if err != nil {
				t.Fatal(err)
			}
			if v.VersionID != 2 || string(v.Body) != string(body2) || !v.Updated.Equal(t0.Add(time.Second)) || v.Method != "PUT" {
				t.Fatalf("got %+v", v)
			}
		})
		t.Run("vread returns an old version byte for byte", func(t *testing.T) {
			v, err := s.VRead(ctx, "Patient", "p1", 1)
			if err != nil {
				t.Fatal(err)
			}
			if string(v.Body) != string(body1) || !v.Updated.Equal(t0) {
				t.Fatalf("got %s at %v", v.Body, v.Updated)
			}
			if _, err := s.VRead(ctx, "Patient", "p1", 3); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("version 3: got %v, want ErrNotFound", err)
			}
		})
		t.Run("match sees only the current version's tokens", func(t *testing.T) {
			for _, tc := range []struct {
				query string
				want  int
			}{
				{"identifier=http://mrn|43", 1},
				{"identifier=http://mrn|42", 0},
				{"identifier=43", 1},
				{"identifier=|43", 0},
				{"identifier=http://mrn|", 1},
				{"identifier=http://other|43,http://mrn|43", 1},
				{"_id=p1&identifier=http://mrn|43", 1},
				{"_id=p2&identifier=http://mrn|43", 0},
			} {
				var ids []string
				err := s.InTx(ctx, func(tx *store.Tx) (err error) { ids, err = matchIn(ctx, tx, criteria(t, tc.query)); return err })
				if err != nil || len(ids) != tc.want {
					t.Errorf("%s: got %v, %v; want %d match(es)", tc.query, ids, err, tc.want)
				}
			}
		})
		t.Run("a delete hides the resource and keeps its history", func(t *testing.T) {
			put(t, s, store.Version{Type: "Patient", ID: "p1", VersionID: 3, Updated: t0.Add(2 * time.Second), Method: "DELETE", Deleted: true})
			_, err := s.Read(ctx, "Patient", "p1")
			var del *store.DeletedError
			if !errors.As(err, &del) || del.VersionID != 3 || !errors.Is(err, store.ErrDeleted) {
				t.Fatalf("got %v, want DeletedError for version 3", err)
			}
			v, err := s.VRead(ctx, "Patient", "p1", 3)
			if err != nil || !v.Deleted || v.Body != nil {
				t.Fatalf("vread of the delete: %+v, %v", v, err)
			}
			var ids []string
			s.InTx(ctx, func(tx *store.Tx) (err error) {
				ids, err = matchIn(ctx, tx, criteria(t, "identifier=http://mrn|43"))
				return err
			})
			if len(ids) != 0 {
				t.Fatalf("a deleted resource still matches: %v", ids)
			}
		})
		t.Run("writing an existing version number conflicts", func(t *testing.T) {
			err := s.InTx(ctx, func(tx *store.Tx) error {
				return tx.Put(ctx, &store.Version{Type: "Patient", ID: "p1", VersionID: 3, Updated: t0, Method: "PUT", Body: []byte(`{}`), Owner: "provider"}, nil)
			})
			if err == nil {
				t.Fatal("a second version 3 was stored")
			}
		})
		t.Run("history pages newest first with a cursor", func(t *testing.T) {
			for i := 1; i <= 5; i++ {
				put(t, s, store.Version{Type: "Observation", ID: fmt.Sprintf("o%d", i), VersionID: 1,
					Updated: t0.Add(time.Duration(10+i) * time.Second), Method: "POST", Body: []byte(`{}`)})
			}
			var got []string
			q := store.HistoryQuery{Limit: 3}
			for {
				page, err := s.History(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range page {
					got = append(got, fmt.Sprintf("%s/%s/%d", v.Type, v.ID, v.VersionID))
				}
				if len(page) < q.Limit {
					break
				}
				q.After = store.CursorOf(&page[len(page)-1])
				if _, err := store.ParseCursor(q.After.String()); err != nil {
					t.Fatal(err)
				}
			}
			want := []string{"Observation/o5/1", "Observation/o4/1", "Observation/o3/1", "Observation/o2/1", "Observation/o1/1",
				"Patient/p1/3", "Patient/p1/2", "Patient/p1/1"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("system history\n got %v\nwant %v", got, want)
			}
			typ, err := s.History(ctx, store.HistoryQuery{Type: "Patient", Limit: 10})
			if err != nil || len(typ) != 3 {
				t.Fatalf("type history: %d versions, %v", len(typ), err)
			}
			inst, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1", Since: t0.Add(time.Second), Limit: 10})
			if err != nil || len(inst) != 2 || inst[0].VersionID != 3 {
				t.Fatalf("instance history since: %+v, %v", inst, err)
			}
		})
		t.Run("concurrent increments lose nothing", func(t *testing.T) {
			put(t, s, store.Version{Type: "Basic", ID: "counter", VersionID: 1, Updated: t0, Method: "PUT", Body: []byte(`{}`)})
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for range 20 {
				wg.Go(func() {
					errs <- s.InTx(ctx, func(tx *store.Tx) error {
						cur, err := tx.Current(ctx, "Basic", "counter")
						if err != nil {
							return err
						}
						return tx.Put(ctx, &store.Version{Type: "Basic", ID: "counter", VersionID: cur.VersionID + 1,
							Updated: cur.Updated.Add(time.Microsecond), Method: "PUT", Body: []byte(`{}`), Owner: "provider"}, nil)
					})
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			v, err := s.Read(ctx, "Basic", "counter")
			if err != nil || v.VersionID != 21 {
				t.Fatalf("got version %v, %v; want 21", v, err)
			}
		})
	})
}

// criteria parses a Patient search query.
func criteria(t *testing.T, query string) *fhir.SearchQuery {
	t.Helper()
	params, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	q, err := fhir.ParseSearch("Patient", params, fhir.SearchOptions{Strict: true})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return q
}

func TestOpenRejectsUnknownScheme(t *testing.T) {
	_, err := store.Open(context.Background(), store.Config{DSN: "mysql://u:secret@h/db"})
	if err == nil {
		t.Fatal("mysql:// was accepted")
	}
	if got := err.Error(); strings.Contains(got, "secret") {
		t.Fatalf("error leaks the password: %s", got)
	}
}

// matchIn returns up to two ids matching q inside tx, as a conditional
// interaction asks.
func matchIn(ctx context.Context, tx *store.Tx, q *fhir.SearchQuery) ([]string, error) {
	qq := *q
	qq.Count, qq.Total = 2, "none"
	res, err := tx.Search(ctx, &qq)
	if err != nil {
		return nil, err
	}
	return res.IDs, nil
}

// TestManyTokenValues checks that a token criterion of many values (an
// IN list per system, past eight) matches exactly what one value at a
// time does, whatever the mix of systems, bare codes, "|code" and
// "system|".
func TestManyTokenValues(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		codes := []struct{ id, system, code string }{
			{"a1", "http://a", "1"}, {"a2", "http://a", "2"}, {"b1", "http://b", "1"}, {"n3", "", "3"},
			{"c9", "http://c", "9"}, {"b7", "http://b", "7"}, {"x5", "http://x", "5"},
		}
		for _, c := range codes {
			put(t, s, store.Version{Type: "Observation", ID: c.id, VersionID: 1, Updated: t0, Method: "PUT", Body: []byte(`{}`)},
				&fhir.Index{Tokens: []fhir.TokenEntry{{Param: "code", System: c.system, Code: c.code}}})
		}
		search := func(values ...string) []string {
			params := url.Values{"code": {strings.Join(values, ",")}}
			q, err := fhir.ParseSearch("Observation", params, fhir.SearchOptions{Strict: true, DefaultCount: 100})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Search(ctx, q)
			if err != nil {
				t.Fatalf("%v: %v", values, err)
			}
			slices.Sort(res.IDs)
			return res.IDs
		}
		values := []string{"http://a|1", "http://a|2", "1", "|3", "http://c|", "http://b|8", "http://nothing|1", "7", "http://zz|", "|9"}
		var want []string
		for _, v := range values {
			want = append(want, search(v)...)
		}
		slices.Sort(want)
		want = slices.Compact(want)
		if got := search(values...); !slices.Equal(got, want) {
			t.Fatalf("%d values together match %v; one by one %v", len(values), got, want)
		}
		if !slices.Equal(want, []string{"a1", "a2", "b1", "b7", "c9", "n3"}) {
			t.Fatalf("one by one: %v", want)
		}
	})
}

// TestRefusesLedgerOfFormat1 checks that a database whose ledger holds
// records written before migration 0011 (format 1, whose leaves can be
// linked to patients) is not upgraded: opening it fails and says why.
func TestRefusesLedgerOfFormat1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	s := open(t, "sqlite:"+path)
	if _, err := s.QueueLedger(ctx, []store.LedgerEntry{{Record: []byte(`{"v":1,"type":"write","time":"2026-01-01T00:00:00.000000Z","patient":"p"}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	// As the release before format 2 left it: migrations up to 0010.
	if _, err := db.Exec(`DELETE FROM schema_migrations WHERE version >= 11`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = store.Open(ctx, store.Config{DSN: "sqlite:" + path})
	if err == nil || !strings.Contains(err.Error(), "records of format 1") || !strings.Contains(err.Error(), "does not convert") {
		t.Fatalf("a ledger of format 1 opened: %v", err)
	}
}
