// Command ledger measures the disclosure ledger (package audit) on SQLite
// and PostgreSQL: appends per second and the wait for a durable index at
// several numbers of concurrent appenders, each append a ~300-byte record
// (a disclosure's size) waiting until it is sequenced and committed; and
// inclusion proofs generated per second in a log of many records. The
// same append workload on transparency-dev/tessera with its POSIX driver,
// the reference, runs from its own module (go -C bench/tessera run .;
// bench/run.sh ledger runs both in one go).
//
//	go run ./bench/ledger -db sqlite,postgres -duration 5s -concurrency 1,16,256 -proof-leaves 1000000
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/bench/internal/benchenv"
	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/note"
)

func main() {
	dbs := flag.String("db", "sqlite,postgres", "databases: sqlite, postgres")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	levels := flag.String("concurrency", "1,16,256", "concurrent appenders, comma-separated")
	size := flag.Int("size", 300, "bytes per record")
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
	for _, db := range strings.Split(*dbs, ",") {
		db = strings.TrimSpace(db)
		for _, c := range conc {
			l, _, stop := open(ctx, db, *pg)
			var seq atomic.Int64
			r := benchenv.Measure(*duration, c, func(int) error {
				_, err := l.Append(ctx, []store.LedgerEntry{{Record: record(seq.Add(1), *size)}})
				return err
			})
			behind, caughtUp := catchUp(ctx, l)
			stop()
			rows = append(rows, row{db, c, r, behind, caughtUp})
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
	fmt.Println("| log | appenders | appends/s | p50 | p99 | errors | lookups behind at the end | caught up after |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Printf("| ehrledger %s | %d | %.0f | %s | %s | %d | %d | %s |\n", r.db, r.c, r.r.Rate(), benchenv.Millis(r.r.Quantile(0.5)), benchenv.Millis(r.r.Quantile(0.99)), r.r.Errors,
			r.behind, benchenv.Millis(r.caughtUp))
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

// open makes a fresh database with a running ledger; reopen opens the
// log again (verifying all of it, as a server does at start).
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
	const origin = "bench.example/ehrledger/main"
	skey, vkey, _ := note.GenerateKey(rand.Reader, origin)
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	cfg := audit.Config{Origin: origin, Signer: signer, Verifier: verifier, Logger: log}
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
	return l, reopen, func() { cancel(); <-done; st.Close(); cleanup() }
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
