package server_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/note"
)

// TestNoRecordNoData stops the ledger: reads of patient data then answer
// 503 with an OperationOutcome and none of the data, while the
// provider's own resources, whose reads are not disclosures, stay
// readable.
func TestNoRecordNoData(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		st, kr := testkeys.Open(t, store.Config{DSN: dsn, Logger: log})
		const origin = "test.example/ehrledger/stopped"
		skey, vkey, _ := note.GenerateKey(rand.Reader, origin)
		signer, _ := note.NewSigner(skey)
		verifier, _ := note.NewVerifier(vkey)
		ledger, pseudonyms, err := server.OpenLedger(ctx, st, kr, audit.Config{Origin: origin, Signer: signer, Verifier: verifier, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		lctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { ledger.Run(lctx); close(done) }()
		srv, err := server.New(server.Config{Store: st, Keys: kr, Ledger: ledger, Pseudonyms: pseudonyms, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		defer hs.Close()
		put := func(path, body string) {
			req, _ := http.NewRequest("PUT", hs.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			res, err := hs.Client().Do(req)
			if err != nil || res.StatusCode != 201 {
				t.Fatalf("PUT %s: %v %v", path, err, res.Status)
			}
			res.Body.Close()
		}
		put("/Patient/secret", `{"resourceType":"Patient","id":"secret","name":[{"family":"Confidential"}]}`)
		put("/Organization/clinic", `{"resourceType":"Organization","id":"clinic","name":"Clinic"}`)
		stop()
		<-done
		for _, path := range []string{"/Patient/secret", "/Patient?_id=secret", "/Patient/secret/_history"} {
			res, err := hs.Client().Get(hs.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 503 || !strings.Contains(string(b), "OperationOutcome") || strings.Contains(string(b), "Confidential") {
				t.Fatalf("GET %s with the ledger stopped: %d %s", path, res.StatusCode, b)
			}
			if res.Header.Get("Ledger-Index") != "" {
				t.Fatalf("GET %s names a record that was not written", path)
			}
		}
		res, err := hs.Client().Get(hs.URL + "/Organization/clinic")
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("the provider's own Organization with the ledger stopped: %v %v", err, res.Status)
		}
		res.Body.Close()
	})
}
