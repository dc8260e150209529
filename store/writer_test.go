package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/store"
)

// TestWriteAfterCanceledTransaction cancels a write transaction midway, as
// a request's deadline does, and checks that the next write succeeds: on
// SQLite the canceled transaction's connection is the one all writes use,
// and database/sql discards it.
func TestWriteAfterCanceledTransaction(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx, cancel := context.WithCancel(context.Background())
		err := s.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.Put(ctx, &store.Version{Type: "Organization", ID: "gone", VersionID: 1, Updated: t0, Method: "PUT",
				Body: []byte(`{"resourceType":"Organization"}`), Owner: "provider"}, nil); err != nil {
				return err
			}
			cancel()
			time.Sleep(50 * time.Millisecond) // database/sql rolls back on the cancellation
			return tx.Put(ctx, &store.Version{Type: "Organization", ID: "gone2", VersionID: 1, Updated: t0, Method: "PUT",
				Body: []byte(`{"resourceType":"Organization"}`), Owner: "provider"}, nil)
		})
		if err == nil {
			t.Fatal("a canceled transaction committed")
		}
		put(t, s, store.Version{Type: "Organization", ID: "after", VersionID: 1, Updated: t0, Method: "PUT", Body: []byte(`{"resourceType":"Organization"}`)})
		if _, err := s.Read(context.Background(), "Organization", "gone"); err == nil {
			t.Fatal("the canceled transaction's first write was kept")
		}
	})
}
