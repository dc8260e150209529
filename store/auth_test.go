package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/store"
)

func TestAuthClients(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		if _, err := s.AuthClient(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown client: %v, want ErrNotFound", err)
		}
		if ok, err := s.AddAuthClient(ctx, "b", []byte(`{"v":1}`)); err != nil || !ok {
			t.Fatalf("add: %v %v", ok, err)
		}
		if ok, err := s.AddAuthClient(ctx, "b", []byte(`{"v":2}`)); err != nil || ok {
			t.Fatalf("add of a taken id: %v %v, want false", ok, err)
		}
		if doc, err := s.AuthClient(ctx, "b"); err != nil || string(doc) != `{"v":1}` {
			t.Fatalf("add of a taken id changed it: %s %v", doc, err)
		}
		if created, err := s.PutAuthClient(ctx, "b", []byte(`{"v":3}`)); err != nil || created {
			t.Fatalf("put over b: %v %v", created, err)
		}
		if created, err := s.PutAuthClient(ctx, "a", []byte(`{"v":4}`)); err != nil || !created {
			t.Fatalf("put of a: %v %v", created, err)
		}
		docs, err := s.AuthClients(ctx)
		if err != nil || len(docs) != 2 || string(docs[0]) != `{"v":4}` || string(docs[1]) != `{"v":3}` {
			t.Fatalf("list: %q %v", docs, err)
		}
		if ok, err := s.DeleteAuthClient(ctx, "a"); err != nil || !ok {
			t.Fatalf("delete: %v %v", ok, err)
		}
		if ok, err := s.DeleteAuthClient(ctx, "a"); err != nil || ok {
			t.Fatalf("second delete: %v %v", ok, err)
		}
		if _, err := s.AuthClient(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted client: %v", err)
		}
	})
}

func TestUseAssertion(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		s := open(t, dsn)
		ctx := context.Background()
		now := time.Unix(1_800_000_000, 0)
		use := func(client, jti string, until, at time.Time) bool {
			t.Helper()
			ok, err := s.UseAssertion(ctx, client, jti, until, at)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !use("c", "1", now.Add(time.Minute), now) {
			t.Fatal("first use refused")
		}
		if use("c", "1", now.Add(time.Minute), now.Add(30*time.Second)) {
			t.Fatal("replay accepted")
		}
		if !use("d", "1", now.Add(time.Minute), now) {
			t.Fatal("the same jti of another client refused")
		}
		// Once expired, the pair is forgotten.
		if !use("c", "1", now.Add(3*time.Minute), now.Add(2*time.Minute)) {
			t.Fatal("an expired assertion's jti is still remembered")
		}
		if use("c", "1", now.Add(3*time.Minute), now.Add(2*time.Minute)) {
			t.Fatal("replay after reuse accepted")
		}

		// Reopened (a restart), the store still remembers.
		s.Close()
		s = open(t, dsn)
		if use("c", "1", now.Add(3*time.Minute), now.Add(2*time.Minute)) {
			t.Fatal("replay after a restart accepted")
		}

		// Many at once: exactly one wins.
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				ok, err := s.UseAssertion(ctx, "c", "race", now.Add(time.Minute), now)
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d concurrent uses accepted, want 1", wins.Load())
		}
	})
}
