// Command ledger measures the disclosure ledger (package audit) on SQLite
// and PostgreSQL: appends per second and the wait for a durable index at
// several numbers of concurrent appenders, each append a ~300-byte record
// (a disclosure's size) waiting until it is sequenced and committed; and
// inclusion proofs generated per second in a log of many records. With
// -format 1,2 the appends alternate between leaves as record format 1
// wrote a disclosure (in clear: a patient pseudonym, the resource's
// reference and body digest; no opening) and records of format 2 sealed as
// the server seals them (a leaf with a commitment, and an opening sealed
// under the patient's data key, kept beside the log). The
// same append workload on transparency-dev/tessera with its POSIX driver,
// the reference, runs from its own module (go -C bench/tessera run .;
// bench/run.sh ledger runs both in one go).
//
//	go run ./bench/ledger -db sqlite,postgres -duration 5s -concurrency 1,16,256 -proof-leaves 1000000
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/bench/internal/benchenv"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	dbs := flag.String("db", "sqlite,postgres", "databases: sqlite, postgres")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	levels := flag.String("concurrency", "1,16,256", "concurrent appenders, comma-separated")
	size := flag.Int("size", 300, "bytes per record of format 1 in the proof log")
	formats := flag.String("format", "2", "record formats appended, comma-separated, alternating per level: 1 (a disclosure's leaf as format 1 wrote it), 2 (sealed as today)")
	patients := flag.Int("patients", 5000, "patients the records are about")
	proofLeaves := flag.Int64("proof-leaves", 1_000_000, "records in the log whose inclusion proofs are measured (0: skip)")
	pg := flag.String("postgres", os.Getenv("EHR_TEST_POSTGRES"), "PostgreSQL server DSN (a database is created on it)")
	flag.Parse()
	stopProfile, err := benchenv.CPUProfile(*cpuprofile)
	if err != nil {
		fatal(err)
	}
	defer stopProfile()
	conc, err := benchenv.Concurrency(*levels)
	if err != nil {
		fatal(err)
	}
	ctx := context.Background()
	fmt.Printf("ledger run: %s, %d CPUs, %s each, %s\n\n", runtime.Version(), runtime.NumCPU(), *duration, time.Now().UTC().Format(time.DateOnly))
	type row struct {
		db       string
		format   string
		c        int
		r        benchenv.Result
		behind   int64         // records without a lookup row when the load stopped
		caughtUp time.Duration // until every record had one
	}
	type proofRow struct {
		db     string
		leaves int64
		r      benchenv.Result
		fill   time.Duration
		verify time.Duration // Open's check of the whole stored log
	}
	var rows []row
	var proofs []proofRow
	sizes := map[string][2]int{} // format → bytes of a disclosure's leaf, and of its opening kept sealed
	for _, db := range strings.Split(*dbs, ",") {
		db = strings.TrimSpace(db)
		for _, c := range conc {
			for _, f := range strings.Split(*formats, ",") {
				l, _, stop := open(ctx, db, *pg)
				entry := entries(ctx, l, f, *patients)
				if sample, err := entry(1234567); err == nil {
					sz := [2]int{len(sample[0].Record), 0}
					if o := sample[0].Opening; o != nil {
						sz[1] = len(o.Sealed)
					}
					sizes[f] = sz
				}
				var seq atomic.Int64
				r := benchenv.Measure(*duration, c, func(int) error {
					e, err := entry(seq.Add(1))
					if err != nil {
						return err
					}
					_, err = l.Append(ctx, e)
					return err
				})
				behind, caughtUp := catchUp(ctx, l)
				stop()
				rows = append(rows, row{db, f, c, r, behind, caughtUp})
			}
		}
		if *proofLeaves > 0 {
			l, reopen, stop := open(ctx, db, *pg)
			start := time.Now()
			fill(ctx, l, *proofLeaves, *size)
			filled := time.Since(start)
			catchUp(ctx, l) // the proofs are measured without the lookup filler running beside
			r := benchenv.Measure(*duration, 1, func(int) error {
				_, err := l.ProveInclusion(ctx, mrand.Int64N(*proofLeaves), *proofLeaves)
				return err
			})
			start = time.Now()
			reopen()
			verified := time.Since(start)
			stop()
			proofs = append(proofs, proofRow{db, *proofLeaves, r, filled, verified})
		}
	}
	fmt.Println("| log | format | appenders | appends/s | p50 | p99 | errors | lookups behind at the end | caught up after |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| ehrledger %s | %s | %d | %.0f | %s | %s | %d | %d | %s |\n", r.db, r.format, r.c, r.r.Rate(), benchenv.Millis(r.r.Quantile(0.5)), benchenv.Millis(r.r.Quantile(0.99)), r.r.Errors,
			r.behind, benchenv.Millis(r.caughtUp))
	}
	fmt.Println("\n| format | leaf | opening kept (sealed) |")
	fmt.Println("|---:|---:|---:|")
	for _, f := range strings.Split(*formats, ",") {
		fmt.Printf("| %s | %d B | %d B |\n", f, sizes[f][0], sizes[f][1])
	}
	if len(proofs) > 0 {
		fmt.Println("\n| database | records | inclusion proofs/s | p50 | p99 | filled at | start-up check of the whole log |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
		for _, p := range proofs {
			fmt.Printf("| %s | %d | %.0f | %s | %s | %.0f records/s | %.1f s |\n", p.db, p.leaves, p.r.Rate(), benchenv.Millis(p.r.Quantile(0.5)), benchenv.Millis(p.r.Quantile(0.99)),
				float64(p.leaves)/p.fill.Seconds(), p.verify.Seconds())
		}
	}
}

// open makes a fresh database with a running ledger and a keyring over a
// local KMS; reopen opens the log again (verifying all of it, as a server
// does at start).
func open(ctx context.Context, db, pg string) (l *audit.Log, reopen, stop func()) {
	dsn, cleanup, err := benchenv.Database(ctx, db, pg)
	if err != nil {
		fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{DSN: dsn, Logger: log})
	if err != nil {
		fatal(err)
	}
	keyDir, err := os.MkdirTemp("", "ehrledger-bench-keys")
	if err != nil {
		fatal(err)
	}
	kms, err := keys.OpenLocal(filepath.Join(keyDir, "keys.json"))
	if err != nil {
		fatal(err)
	}
	kr, err := server.OpenKeys(ctx, st, kms, keys.Options{})
	if err != nil {
		fatal(err)
	}
	const origin = "bench.example/ehrledger/main"
	skey, vkey, _ := note.GenerateKey(rand.Reader, origin)
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	cfg := audit.Config{Origin: origin, Signer: signer, Verifier: verifier, Logger: log, Keys: kr}
	l, err = audit.Open(ctx, st, cfg)
	if err != nil {
		fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.Run(rctx); close(done) }()
	reopen = func() {
		if _, err := audit.Open(ctx, st, cfg); err != nil {
			fatal(err)
		}
	}
	return l, reopen, func() { cancel(); <-done; st.Close(); cleanup(); os.RemoveAll(keyDir) }
}

// catchUp waits until every appended record has its lookup row (the
// filler runs beside the appends), and returns how many had none when the
// load stopped and how long it took.
func catchUp(ctx context.Context, l *audit.Log) (int64, time.Duration) {
	start := time.Now()
	behind, err := l.LookupsBehind(ctx)
	if err != nil {
		fatal(err)
	}
	for n := behind; n > 0; {
		time.Sleep(10 * time.Millisecond)
		if n, err = l.LookupsBehind(ctx); err != nil {
			fatal(err)
		}
	}
	return behind, time.Since(start)
}

// fill appends n records, 1,000 per call from 8 appenders.
func fill(ctx context.Context, l *audit.Log, n int64, size int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				from := next.Add(1000) - 1000
				if from >= n {
					return
				}
				batch := make([]store.LedgerEntry, 0, 1000)
				for i := from; i < min(from+1000, n); i++ {
					batch = append(batch, store.LedgerEntry{Record: record(i, size)})
				}
				if _, err := l.Append(ctx, batch); err != nil {
					fatal(err)
				}
			}
		})
	}
	wg.Wait()
}

// entries returns, for format f, what the n-th append appends: one
// disclosure of an Observation of one of patients patients, to one of
// three organizations. The patients' data keys are made first, as a
// server has them before it discloses their data.
func entries(ctx context.Context, l *audit.Log, f string, patients int) func(n int64) ([]store.LedgerEntry, error) {
	switch f {
	case "1":
		return func(n int64) ([]store.LedgerEntry, error) {
			return []store.LedgerEntry{{Record: format1Leaf(disclosure(n, patients))}}, nil
		}
	case "2":
		for from := 0; from < patients; from += 500 {
			recs := make([]audit.Record, 0, 500)
			for i := from; i < min(from+500, patients); i++ {
				recs = append(recs, disclosure(int64(i), patients))
			}
			if _, err := l.Entries(ctx, recs); err != nil {
				fatal(err)
			}
		}
		return func(n int64) ([]store.LedgerEntry, error) {
			return l.Entries(ctx, []audit.Record{disclosure(n, patients)})
		}
	}
	fatal(fmt.Errorf("unknown record format %q (1, 2)", f))
	return nil
}

// disclosure is the record of the n-th read of an Observation.
func disclosure(n int64, patients int) audit.Record {
	body := fmt.Appendf(nil, `{"resourceType":"Observation","id":"obs-%d","status":"final","subject":{"reference":"Patient/pat-%d"},"valueQuantity":{"value":%d}}`,
		n, n%int64(patients), n%200)
	org := "Organization/hospital-" + string(rune('a'+n%3))
	return audit.Record{Type: audit.TypeDisclosure, Time: audit.FormatTime(time.Now()), Patient: fmt.Sprintf("Patient/pat-%d", n%int64(patients)),
		Recipient: &audit.Recipient{Client: "ward-app", Organization: org}, Purpose: "TREAT", Interaction: "read",
		Resources: []audit.Resource{audit.ResourceOf("Observation", fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n), 1, body)}}
}

// format1Leaf is the leaf record format 1 wrote of r: every field in
// clear, the patient as a 128-bit pseudonym.
func format1Leaf(r audit.Record) []byte {
	mac := sha256.Sum256([]byte("pseudonym key\x00" + r.Patient)) // as long as an HMAC-SHA-256; its cost is within noise
	b, _ := json.Marshal(struct {
		V           int              `json:"v"`
		Type        string           `json:"type"`
		Time        string           `json:"time"`
		Patient     string           `json:"patient,omitempty"`
		Recipient   *audit.Recipient `json:"recipient,omitempty"`
		Purpose     string           `json:"purpose,omitempty"`
		Interaction string           `json:"interaction,omitempty"`
		Resources   []audit.Resource `json:"resources,omitempty"`
	}{1, r.Type, r.Time, base64.RawURLEncoding.EncodeToString(mac[:16]), r.Recipient, r.Purpose, r.Interaction, r.Resources})
	return b
}

// record is a disclosure-like record of about size bytes.
func record(n int64, size int) []byte {
	b := fmt.Appendf(nil, `{"v":1,"type":"disclosure","time":"2026-11-25T00:00:00.000000Z","patient":"p%d","resources":[{"ref":"Observation/%d/_history/1","sha256":"`, n%5000, n)
	for len(b) < size-3 {
		b = append(b, "0123456789abcdef"[mrand.IntN(16)])
	}
	return append(b, `"}]}`...)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "ledger:", err)
	os.Exit(1)
}
