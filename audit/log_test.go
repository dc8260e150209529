package audit_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/store"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const origin = "test.example/ehrledger/main"

func keys(t *testing.T) (note.Signer, note.Verifier) {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return s, v
}

func run(t *testing.T, l *audit.Log) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// leaves are entries of raw leaves, without openings.
func leaves(recs ...[]byte) []store.LedgerEntry {
	out := make([]store.LedgerEntry, len(recs))
	for i, r := range recs {
		out[i].Record = r
	}
	return out
}

// runLogs opens n running logs on one store (n server replicas).
func runLogs(t *testing.T, st *store.Store, cfg audit.Config, n int) []*audit.Log {
	logs := make([]*audit.Log, n)
	for i := range logs {
		l, err := audit.Open(context.Background(), st, cfg)
		if err != nil {
			t.Fatal(err)
		}
		run(t, l)
		logs[i] = l
	}
	return logs
}

// appendConcurrently runs workers appenders at once, worker w appending
// each records one by one to logs[w%len(logs)], and returns the record
// given each index; an index given twice is an error.
func appendConcurrently(t *testing.T, logs []*audit.Log, workers, each int) map[int64]string {
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				rec := fmt.Sprintf(`{"v":1,"type":"disclosure","n":"%d-%d"}`, w, i)
				idx, err := logs[w%len(logs)].Append(context.Background(), leaves([]byte(rec)))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := seen[idx[0]]; dup {
					t.Errorf("index %d given to %s and %s", idx[0], prev, rec)
				}
				seen[idx[0]] = rec
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return seen
}

func TestLog(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, _ := testkeys.Open(t, store.Config{DSN: dsn})
		signer, verifier := keys(t)
		cfg := audit.Config{Origin: origin, Signer: signer, Verifier: verifier, CheckpointEvery: time.Hour}
		l := runLogs(t, st, cfg, 1)[0]

		// 50 appenders at once, 20 records each: 1,000 distinct indexes.
		seen := appendConcurrently(t, []*audit.Log{l}, 50, 20)
		if len(seen) != 1000 {
			t.Fatalf("%d indexes for 1,000 records", len(seen))
		}
		for i := range int64(1000) {
			rec, err := l.Record(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if seen[i] != string(rec) {
				t.Fatalf("index %d holds %s, but was given to %s", i, rec, seen[i])
			}
		}

		// One append of many records: one batch that fills parts of
		// bundles and tiles across their boundaries.
		var many [][]byte
		for i := range 300 {
			many = append(many, fmt.Appendf(nil, `{"v":1,"type":"disclosure","n":"many-%d"}`, i))
		}
		idx, err := l.Append(ctx, leaves(many...))
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range idx {
			if n != 1000+int64(i) {
				t.Fatalf("record %d of one append got index %d", i, n)
			}
			if rec, err := l.Record(ctx, n); err != nil || string(rec) != string(many[i]) {
				t.Fatalf("index %d holds %s (%v), want %s", n, rec, err, many[i])
			}
		}

		// Records queued by a write transaction are integrated too.
		if _, err := st.QueueLedger(ctx, leaves([]byte(`{"v":1,"type":"write"}`))); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, _ := st.LedgerSize(ctx)
			if n == 1301 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("queued record not integrated: size %d", n)
			}
			time.Sleep(10 * time.Millisecond)
		}

		signed, err := l.Sign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cp, _, _, err := log.ParseCheckpoint(signed, origin, verifier)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != 1301 {
			t.Fatalf("checkpoint size %d", cp.Size)
		}
		// Every record's inclusion proof checks against the checkpoint.
		for _, n := range []int64{0, 1, 255, 256, 777, 1000, 1299, 1300} {
			p, err := l.ProveInclusion(ctx, n, int64(cp.Size))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := l.Record(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, int64(cp.Size), tlog.Hash(cp.Hash), n, tlog.RecordHash(rec)); err != nil {
				t.Fatalf("record %d: %v", n, err)
			}
		}

		// A later tree is consistent with the checkpoint.
		if _, err := l.Append(ctx, leaves([]byte(`{"v":1,"type":"disclosure","n":"later"}`))); err != nil {
			t.Fatal(err)
		}
		later, err := l.TreeHash(ctx, 1302)
		if err != nil {
			t.Fatal(err)
		}
		cproof, err := l.ProveConsistency(ctx, int64(cp.Size), 1302)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(cproof, 1302, later, int64(cp.Size), tlog.Hash(cp.Hash)); err != nil {
			t.Fatalf("consistency: %v", err)
		}

		// Reopening verifies the stored tree; tampering is caught.
		if _, err := audit.Open(ctx, st, cfg); err != nil {
			t.Fatalf("reopen: %v", err)
		}
		db := testdb.Raw(t, dsn)
		// A tile is stored as parts; the tests join them, and store a
		// changed tile as one part.
		tileData := func(level, n int) []byte {
			t.Helper()
			rows, err := db.Query(testdb.Rebind(dsn, `SELECT data FROM ledger_tiles WHERE level = ? AND n = ? ORDER BY pos`), level, n)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []byte
			for rows.Next() {
				var b []byte
				if err := rows.Scan(&b); err != nil {
					t.Fatal(err)
				}
				out = append(out, b...)
			}
			return out
		}
		setTile := func(level, n int, data []byte) {
			t.Helper()
			if _, err := db.Exec(testdb.Rebind(dsn, `DELETE FROM ledger_tiles WHERE level = ? AND n = ?`), level, n); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(testdb.Rebind(dsn, `INSERT INTO ledger_tiles (level, n, pos, data) VALUES (?, ?, 0, ?)`), level, n, data); err != nil {
				t.Fatal(err)
			}
		}
		original := tileData(-1, 1) // records 256 to 511
		recs := splitBundle(t, original)
		tampered := func(i int, rec []byte) []byte {
			var out []byte
			for j, r := range recs {
				if j == i {
					r = rec
				}
				out = append(out, byte(len(r)>>8), byte(len(r)))
				out = append(out, r...)
			}
			return out
		}
		setTile(-1, 1, tampered(500-256, []byte(`{"v":1,"type":"disclosure","n":"forged"}`)))
		if _, err := audit.Open(ctx, st, cfg); !errors.Is(err, audit.ErrTampered) {
			t.Fatalf("a changed record: %v, want ErrTampered", err)
		}
		setTile(-1, 1, tampered(500-256, recs[501-256]))
		if _, err := audit.Open(ctx, st, cfg); !errors.Is(err, audit.ErrTampered) {
			t.Fatalf("a record copied over another: %v, want ErrTampered", err)
		}
		setTile(-1, 1, original)
		if _, err := audit.Open(ctx, st, cfg); err != nil {
			t.Fatalf("restored record: %v", err)
		}
		tile := tileData(0, 0)
		changed := append([]byte(nil), tile...)
		changed[40*32] ^= 1 // the hash of record 40
		setTile(0, 0, changed)
		if _, err := audit.Open(ctx, st, cfg); !errors.Is(err, audit.ErrTampered) {
			t.Fatalf("a changed stored hash: %v, want ErrTampered", err)
		}
		// The running log reads tiles only through tlog, which
		// authenticates them against the root (or from what it already
		// authenticated): its proofs stay true.
		if p, err := l.ProveInclusion(ctx, 40, int64(cp.Size)); err == nil {
			rec, _ := l.Record(ctx, 40)
			if err := tlog.CheckRecord(p, int64(cp.Size), tlog.Hash(cp.Hash), 40, tlog.RecordHash(rec)); err != nil {
				t.Fatalf("a proof made after a tile changed: %v", err)
			}
		} else if !errors.Is(err, audit.ErrTampered) {
			t.Fatalf("a proof from a changed tile: %v, want a true proof or ErrTampered", err)
		}
		setTile(0, 0, tile)
		if _, err := db.Exec(testdb.Rebind(dsn, `UPDATE ledger_state SET root = ? WHERE id = 1`), make([]byte, 32)); err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Open(ctx, st, cfg); !errors.Is(err, audit.ErrTampered) {
			t.Fatalf("a changed root: %v, want ErrTampered", err)
		}
	})
}

func splitBundle(t *testing.T, b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])<<8 | int(b[1])
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

// TestTwoReplicasShareOneLog runs two logs (two server replicas) on one
// database: one holds the sequencer lease, the other hands its records
// over through the queue; every record gets one index, and the tree is
// whole.
func TestTwoReplicasShareOneLog(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, _ := testkeys.Open(t, store.Config{DSN: dsn})
		signer, verifier := keys(t)
		cfg := audit.Config{Origin: origin, Signer: signer, Verifier: verifier, CheckpointEvery: 50 * time.Millisecond}
		logs := runLogs(t, st, cfg, 2)
		seen := appendConcurrently(t, logs, 20, 10)
		if n, _ := st.LedgerSize(ctx); n != 200 || len(seen) != 200 {
			t.Fatalf("size %d, %d distinct indexes, want 200", n, len(seen))
		}
		// The sequencer signs; the other replica serves what it signed.
		deadline := time.Now().Add(5 * time.Second)
		for logs[0].Checkpoint().Size != 200 || logs[1].Checkpoint().Size != 200 {
			if time.Now().After(deadline) {
				t.Fatalf("the replicas serve checkpoints of %d and %d records, want 200", logs[0].Checkpoint().Size, logs[1].Checkpoint().Size)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := audit.Open(ctx, st, cfg); err != nil {
			t.Fatalf("the shared log does not verify: %v", err)
		}
	})
}

// TestSequencerTakesOverAPartialTree runs two logs that sequence in turn
// (the same holder name, as a restarted server has): each finds the tree
// grown by the other since its last batch, and extends the partial tiles
// and bundle the other left.
func TestSequencerTakesOverAPartialTree(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, _ := testkeys.Open(t, store.Config{DSN: dsn})
		signer, verifier := keys(t)
		cfg := audit.Config{Origin: origin, Signer: signer, Verifier: verifier, CheckpointEvery: time.Hour, Holder: "host:/data"}
		logs := runLogs(t, st, cfg, 2)
		want := map[int64]string{}
		for i := range 600 {
			rec := fmt.Sprintf(`{"v":1,"type":"disclosure","n":"%d"}`, i)
			idx, err := logs[i/7%2].Append(ctx, leaves([]byte(rec)))
			if err != nil {
				t.Fatal(err)
			}
			want[idx[0]] = rec
		}
		if len(want) != 600 {
			t.Fatalf("%d distinct indexes for 600 records", len(want))
		}
		for i, rec := range want {
			got, err := logs[0].Record(ctx, i)
			if err != nil || string(got) != rec {
				t.Fatalf("record %d: %s, %v; want %s", i, got, err, rec)
			}
		}
		if _, err := logs[1].Sign(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := audit.Open(ctx, st, cfg); err != nil {
			t.Fatalf("the tree two sequencers built does not verify: %v", err)
		}
	})
}

// TestRecordsOfManyRecords lists over a thousand records of one patient
// at once, each in a bundle part of its own (SQLite refuses a query whose
// conditions nest over 1,000 deep).
func TestRecordsOfManyRecords(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, kr := testkeys.Open(t, store.Config{DSN: dsn})
		signer, verifier := keys(t)
		l := runLogs(t, st, audit.Config{Origin: origin, Signer: signer, Verifier: verifier, CheckpointEvery: time.Hour, Keys: kr}, 1)[0]
		const n = 1200
		for i := range n {
			rec := audit.Record{Type: audit.TypeDisclosure, Time: fmt.Sprintf("2026-12-04T10:00:00.%06dZ", i), Patient: "Patient/many",
				Interaction: "read", Resources: []audit.Resource{{Ref: fmt.Sprintf("Observation/o%d/_history/1", i)}}}
			if _, err := l.AppendRecords(ctx, []audit.Record{rec}); err != nil {
				t.Fatal(err)
			}
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			behind, err := l.LookupsBehind(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if behind == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lookups %d behind", behind)
			}
		}
		recs, next, err := l.RecordsOf(ctx, "many", math.MinInt64, math.MaxInt64, -1, n+1)
		if err != nil || len(recs) != n || next != -1 {
			t.Fatalf("RecordsOf: %d records, then %d, %v", len(recs), next, err)
		}
		for i, r := range recs {
			if want := fmt.Sprintf("Observation/o%d/_history/1", i); r.Record.Resources[0].Ref != want || r.Record.Patient != "Patient/many" {
				t.Fatalf("record %d of the list is %+v, want %s", i, r.Record, want)
			}
		}
	})
}

// TestAppendPushesBack checks that the records waiting for the sequencer
// are bounded: past Config.MaxPending an append fails at once with
// ErrPushback and leaves nothing in the log, and appends succeed again
// once the sequencer has caught up.
func TestAppendPushesBack(t *testing.T) {
	ctx := context.Background()
	st, _ := testkeys.Open(t, store.Config{DSN: testdb.SQLite(t)})
	signer, verifier := keys(t)
	l, err := audit.Open(ctx, st, audit.Config{Origin: origin, Signer: signer, Verifier: verifier, CheckpointEvery: time.Hour, MaxPending: 4})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(i int) []byte {
		return fmt.Appendf(nil, `{"v":2,"type":"write","time":"2026-12-08T00:00:%02dZ"}`, i)
	}
	// Not running yet: four records wait (their appender gave up waiting).
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(gone, leaves(rec(0), rec(1), rec(2), rec(3))); !errors.Is(err, context.Canceled) {
		t.Fatalf("append while the log does not run: %v", err)
	}
	start := time.Now()
	if _, err := l.Append(ctx, leaves(rec(4))); !errors.Is(err, audit.ErrPushback) {
		t.Fatalf("a fifth waiting record: got %v, want ErrPushback", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the pushback took %s: it must not wait", d)
	}
	run(t, l)
	var idx []int64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if idx, err = l.Append(ctx, leaves(rec(5))); !errors.Is(err, audit.ErrPushback) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("append once the sequencer runs: %v", err)
	}
	if idx[0] != 4 {
		t.Fatalf("the record after the refused one has index %d, want 4: the refused record must leave nothing", idx[0])
	}
	for i := range int64(5) {
		got, err := l.Record(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if want := rec(map[int64]int{0: 0, 1: 1, 2: 2, 3: 3, 4: 5}[i]); string(got) != string(want) {
			t.Errorf("record %d is %s, want %s", i, got, want)
		}
	}
}

// TestHandler asks the log's own HTTP face, as mounted without a server
// (plain-text failures): a checkpoint, an inclusion proof that verifies,
// and 400, 404 for malformed and unheld questions.
func TestHandler(t *testing.T) {
	ctx := context.Background()
	st, _ := testkeys.Open(t, store.Config{DSN: testdb.SQLite(t)})
	signer, verifier := keys(t)
	l := runLogs(t, st, audit.Config{Origin: origin, Signer: signer, Verifier: verifier, CheckpointEvery: time.Hour}, 1)[0]
	idx, err := l.Append(ctx, leaves([]byte("r0"), []byte("r1"), []byte("r2")))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler("the-key", nil, nil))
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := get(fmt.Sprintf("/checkpoint?covers=%d", idx[2]))
	if code != http.StatusOK || !strings.HasPrefix(body, origin+"\n3\n") {
		t.Fatalf("checkpoint: %d %q", code, body)
	}
	code, body = get("/proof/inclusion?index=1&size=3")
	var p struct {
		LeafHash string `json:"leaf_hash"`
		Proof    []string
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &p) != nil || len(p.Proof) == 0 {
		t.Fatalf("inclusion proof: %d %s", code, body)
	}
	if code, body := get("/key"); code != http.StatusOK || body != "the-key\n" {
		t.Fatalf("key: %d %q", code, body)
	}
	for path, want := range map[string]int{
		"/proof/inclusion?index=x":        http.StatusBadRequest,
		"/proof/inclusion?index=3&size=3": http.StatusNotFound,
		"/tile/0/x001/x002/x003/x004/005": http.StatusNotFound,
		"/proof/consistency?from=1&to=9":  http.StatusNotFound,
		"/checkpoint?covers=-1":           http.StatusBadRequest,
		"/proof/consistency?from=a&to=3":  http.StatusBadRequest,
	} {
		if code, body := get(path); code != want || strings.Contains(body, "{") {
			t.Errorf("%s: %d %q, want %d in plain text", path, code, body, want)
		}
	}
}
