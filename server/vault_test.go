package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/internal/testvault"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

// TestVault runs the server on the real Vault behind a proxy that can cut
// it off: patients whose keys are cached stay readable, the others answer
// 503, a write that needs a new key fails with nothing stored, service
// comes back by itself, and 1,000 reads cost a handful of Vault calls.
func TestVault(t *testing.T) {
	env := testvault.Get(t)
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		st, err := store.Open(ctx, store.Config{DSN: dsn, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() }) // after the ledgers stop
		proxy := testvault.NewProxy(t, env.Addr)
		transitKey := fmt.Sprintf("server-test-%d", time.Now().UnixNano())
		// start serves st with a keyring of its own, cold like a restarted
		// server's.
		start := func() *served {
			kms, err := keys.OpenVault(ctx, keys.VaultConfig{Address: proxy.URL, Token: env.Token, Key: transitKey, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			kr, err := server.OpenKeys(ctx, st, kms, keys.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ledger, _ := testkeys.Ledger(t, st, kr)
			hs, client := serveAuthed(t, server.Config{Store: st, Keys: kr, Ledger: ledger, Logger: log})
			return &served{hs, client}
		}
		do := func(hs *served, method, path, body string) (int, string) {
			t.Helper()
			req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
			if body != "" {
				req.Header.Set("Content-Type", "application/fhir+json")
			}
			res, err := hs.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(b)
		}
		want := func(hs *served, method, path, body string, status int) string {
			t.Helper()
			got, b := do(hs, method, path, body)
			if got != status {
				t.Fatalf("%s %s: %d, want %d: %s", method, path, got, status, b)
			}
			return b
		}

		first := start()
		for i := range 10 {
			want(first, "PUT", fmt.Sprintf("/Patient/v%d", i), fmt.Sprintf(`{"resourceType":"Patient","id":"v%d","name":[{"family":"Vaulted%d"}]}`, i, i), 201)
			want(first, "PUT", fmt.Sprintf("/Observation/v%d-o", i), fmt.Sprintf(`{"resourceType":"Observation","id":"v%d-o","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/v%d"}}`, i, i), 201)
		}
		first.Close()

		hs := start()
		defer hs.Close()
		for i := range 5 {
			want(hs, "GET", fmt.Sprintf("/Patient/v%d", i), "", 200)
		}
		proxy.Down()
		for i := range 5 {
			want(hs, "GET", fmt.Sprintf("/Patient/v%d", i), "", 200)
		}
		want(hs, "GET", "/Observation?subject=Patient/v1", "", 200)
		for _, path := range []string{"/Patient/v5", "/Observation/v7-o", "/Observation?subject=Patient/v1,Patient/v6"} {
			b := want(hs, "GET", path, "", 503)
			if !strings.Contains(b, "OperationOutcome") || !strings.Contains(b, "key management") {
				t.Errorf("GET %s with Vault down: %s", path, b)
			}
		}
		want(hs, "POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Newcomer"}]}`, 503)
		want(hs, "PUT", "/Patient/v0", `{"resourceType":"Patient","id":"v0","name":[{"family":"Renamed"}]}`, 200)

		proxy.Up(t)
		want(hs, "GET", "/Patient/v5", "", 200)
		if b := want(hs, "GET", "/Patient?family=Newcomer", "", 200); strings.Contains(b, `"entry"`) {
			t.Fatalf("the write refused while Vault was down left a resource: %s", b)
		}
		want(hs, "POST", "/Patient", `{"resourceType":"Patient","name":[{"family":"Newcomer"}]}`, 201)

		cold := start()
		defer cold.Close()
		before := proxy.Requests.Load()
		for i := range 1000 {
			want(cold, "GET", fmt.Sprintf("/Observation/v%d-o", i%10), "", 200)
		}
		calls := proxy.Requests.Load() - before
		t.Logf("Vault round trips for 1,000 reads of 10 patients' data on a cold server: %d", calls)
		if calls > 10 {
			t.Fatalf("1,000 reads of 10 patients cost %d Vault round trips", calls)
		}
	})
}

// served is a test server and a client acting as its admin.
type served struct {
	*httptest.Server
	client *http.Client
}
