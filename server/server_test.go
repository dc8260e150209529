package server_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/ehrledger/ehrledger/conformance"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

// newServer serves a fresh database on a loopback port.
func newServer(t *testing.T, dsn string) *httptest.Server {
	t.Helper()
	metrics := server.NewMetrics()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	st, kr := testkeys.Open(t, store.Config{DSN: dsn, OnRetry: metrics.DBRetry, Logger: log})
	ledger, pseudonyms, vkey := testkeys.Ledger(t, st, kr)
	srv, err := server.New(server.Config{Store: st, Keys: kr, Ledger: ledger, Pseudonyms: pseudonyms, LedgerKey: vkey, Metrics: metrics, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.RunAuditEvents(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return hs
}

// TestConformance runs the black-box suite in-process over every database.
func TestConformance(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		conformance.Run(t, newServer(t, dsn).URL)
	})
}

// TestSearch runs the search cases over every database, each on a fresh
// one.
func TestSearch(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		conformance.RunSearch(t, newServer(t, dsn).URL)
	})
}
