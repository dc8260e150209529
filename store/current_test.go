package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/store"
)

func TestCurrentOf(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		s, kr := testkeys.Open(t, store.Config{DSN: dsn})
		ctx := context.Background()
		if _, err := kr.Ensure(ctx, []string{"Patient/a", "Patient/b"}); err != nil {
			t.Fatal(err)
		}
		body := []byte(`{"resourceType":"Consent"}`)
		put(t, s, store.Version{Type: "Consent", ID: "c1", VersionID: 1, Updated: t0, Method: "PUT", Body: body, Owner: "Patient/a"})
		put(t, s, store.Version{Type: "Consent", ID: "c1", VersionID: 2, Updated: t0, Method: "PUT", Body: body, Owner: "Patient/a"})
		put(t, s, store.Version{Type: "Consent", ID: "c2", VersionID: 1, Updated: t0, Method: "PUT", Body: body, Owner: "Patient/b"})
		put(t, s, store.Version{Type: "Consent", ID: "c3", VersionID: 1, Updated: t0, Method: "PUT", Body: body, Owner: "Patient/a"})
		put(t, s, store.Version{Type: "Consent", ID: "c3", VersionID: 2, Updated: t0, Method: "DELETE", Deleted: true, Owner: "Patient/a"})
		put(t, s, store.Version{Type: "Observation", ID: "o1", VersionID: 1, Updated: t0, Method: "PUT", Body: []byte(`{"resourceType":"Observation"}`), Owner: "Patient/a"})
		got, err := s.CurrentOf(ctx, "Consent", []string{"Patient/a", "Patient/c", "Patient/a"})
		if err != nil {
			t.Fatal(err)
		}
		want := []store.OwnedVersion{{Owner: "Patient/a", VersionRef: store.VersionRef{Type: "Consent", ID: "c1", VersionID: 2}}}
		if !slices.Equal(got, want) {
			t.Fatalf("got %+v, want %+v (current, live, of the owners asked)", got, want)
		}
	})
}
