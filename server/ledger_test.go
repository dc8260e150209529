package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

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
		ledger, err := server.OpenLedger(ctx, st, kr, audit.Config{Origin: origin, Signer: signer, Verifier: verifier, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		lctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { ledger.Run(lctx); close(done) }()
		hs, client := serveAuthed(t, server.Config{Store: st, Keys: kr, Ledger: ledger, Logger: log})
		put := func(path, body string) {
			req, _ := http.NewRequest("PUT", hs.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			res, err := client.Do(req)
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
			res, err := client.Get(hs.URL + path)
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
		res, err := client.Get(hs.URL + "/Organization/clinic")
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("the provider's own Organization with the ledger stopped: %v %v", err, res.Status)
		}
		res.Body.Close()
	})
}

// TestPushbackNoData fills the records waiting for a replica's sequencer
// to their bound: a read through that replica answers 503 with
// Retry-After and none of the data, at once, while the replica whose
// ledger keeps up answers.
func TestPushbackNoData(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, kr := testkeys.Open(t, store.Config{DSN: testdb.SQLite(t), Logger: log})
	const origin = "test.example/ehrledger/pushback"
	skey, vkey, _ := note.GenerateKey(rand.Reader, origin)
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	cfg := audit.Config{Origin: origin, Signer: signer, Verifier: verifier, Logger: log}
	running, err := server.OpenLedger(ctx, st, kr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { running.Run(lctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	hs, client := serveAuthed(t, server.Config{Store: st, Keys: kr, Ledger: running, Logger: log})
	req, _ := http.NewRequest("PUT", hs.URL+"/Patient/busy", strings.NewReader(`{"resourceType":"Patient","id":"busy","name":[{"family":"Confidential"}]}`))
	req.Header.Set("Content-Type", "application/fhir+json")
	if res, err := client.Do(req); err != nil || res.StatusCode != 201 {
		t.Fatalf("PUT: %v %v", err, res.Status)
	}

	// A replica whose sequencer is stuck: one record waits, the bound.
	cfg.MaxPending = 1
	stuck, err := server.OpenLedger(ctx, st, kr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	stuck.Append(gone, []store.LedgerEntry{{Record: []byte(`{"v":2,"type":"write","time":"2026-12-08T00:00:00Z"}`)}})
	hs2, client2 := serveAuthed(t, server.Config{Store: st, Keys: kr, Ledger: stuck, Logger: log})
	start := time.Now()
	res, err := client2.Get(hs2.URL + "/Patient/busy")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "retry") ||
		strings.Contains(string(b), "Confidential") || res.Header.Get("Ledger-Index") != "" {
		t.Fatalf("a read while the ledger pushes back: %d Retry-After %q %s", res.StatusCode, res.Header.Get("Retry-After"), b)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the pushback took %s", d)
	}
	res, err = client.Get(hs.URL + "/Patient/busy")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("the replica that keeps up: %v %v", err, res.Status)
	}
	res.Body.Close()
}

// TestAuditEventsByAgent lists a patient's records by recipient: records
// appended with recipients (as authorised requests make them) are found by
// client id or organisation, and paged.
func TestAuditEventsByAgent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		st, kr := testkeys.Open(t, store.Config{DSN: dsn, Logger: log})
		ledger, vkey := testkeys.Ledger(t, st, kr)
		hs, client := serveAuthed(t, server.Config{Store: st, Keys: kr, Ledger: ledger, LedgerKey: vkey, Logger: log})
		var recs []audit.Record
		for i, who := range []audit.Recipient{{Client: "client-a"}, {Client: "client-b", Organization: "Organization/o1"}, {Client: "client-a"},
			{Client: "client-b", Organization: "Organization/o1"}, {Client: "client-a"}} {
			rec := audit.Record{Type: audit.TypeDisclosure, Time: audit.FormatTime(time.Now()), Patient: "Patient/p", Recipient: &who,
				Interaction: "read", Resources: []audit.Resource{{Ref: fmt.Sprintf("Observation/o%d/_history/1", i)}}}
			recs = append(recs, rec)
		}
		if _, err := ledger.AppendRecords(ctx, recs); err != nil {
			t.Fatal(err)
		}
		list := func(query string) (clients []string, next string) {
			t.Helper()
			res, err := client.Get(hs.URL + "/AuditEvent?" + query)
			if err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("GET /AuditEvent?%s: %v %v", query, err, res.Status)
			}
			defer res.Body.Close()
			var b struct {
				Entry []struct {
					Resource struct {
						Agent []struct {
							Who struct {
								Identifier struct{ Value string } `json:"identifier"`
								Reference  string                 `json:"reference"`
							} `json:"who"`
						} `json:"agent"`
					} `json:"resource"`
				} `json:"entry"`
				Link []struct{ Relation, URL string } `json:"link"`
			}
			json.NewDecoder(res.Body).Decode(&b)
			for _, e := range b.Entry {
				clients = append(clients, e.Resource.Agent[0].Who.Identifier.Value+" "+e.Resource.Agent[0].Who.Reference)
			}
			for _, l := range b.Link {
				if l.Relation == "next" {
					next = l.URL[strings.Index(l.URL, "?")+1:]
				}
			}
			return clients, next
		}
		deadline := time.Now().Add(10 * time.Second)
		const p = "patient=Patient/p"
		for all, _ := list(p); len(all) < 5; all, _ = list(p) {
			if time.Now().After(deadline) {
				t.Fatalf("the patient's records are not listed: %v", all)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for query, want := range map[string][]string{
			"&agent=client-a":                       {"client-a ", "client-a ", "client-a "},
			"&agent=Organization/o1":                {"client-b Organization/o1", "client-b Organization/o1"},
			"&agent=client-a,Organization/o1":       {"client-a ", "client-b Organization/o1", "client-a ", "client-b Organization/o1", "client-a "},
			"&agent=client-a&agent=client-b":        nil,
			"&agent=nobody":                         nil,
			"&agent=client-b&agent=Organization/o1": {"client-b Organization/o1", "client-b Organization/o1"},
		} {
			if got, _ := list(p + query); !slices.Equal(got, want) {
				t.Errorf("%s lists %q, want %q", query, got, want)
			}
		}
		page, next := list(p + "&agent=client-a&_count=2")
		if len(page) != 2 || next == "" {
			t.Fatalf("agent=client-a&_count=2: %q, next %q", page, next)
		}
		if rest, _ := list(next); len(rest) != 1 {
			t.Fatalf("the next page of agent=client-a lists %q, want the third", rest)
		}
	})
}
