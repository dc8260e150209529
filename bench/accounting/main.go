// Command accounting measures the accounting of disclosures
// (GET /Patient/{id}/$disclosures) for a patient with many disclosures,
// against the baseline of listing the same records through AuditEvent
// search (the records as AuditEvents, paged, without their proofs), in
// the same run.
//
//	go run ./bench/accounting -db sqlite,postgres -disclosures 10000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ehrledger/ehrledger/bench/internal/benchenv"
)

func main() {
	dbs := flag.String("db", "sqlite,postgres", "databases: sqlite, postgres")
	n := flag.Int("disclosures", 10_000, "disclosures of the patient before the accounting is asked")
	runs := flag.Int("runs", 5, "accountings asked (the median is reported)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the accountings asked to this file")
	pg := flag.String("postgres", os.Getenv("EHR_TEST_POSTGRES"), "PostgreSQL server DSN (a database is created on it)")
	flag.Parse()
	ctx := context.Background()
	fmt.Printf("accounting run: %s, %d CPUs, %d disclosures of one patient, median of %d, %s\n\n", runtime.Version(), runtime.NumCPU(), *n, *runs, time.Now().UTC().Format(time.DateOnly))
	fmt.Println("| database | $disclosures (with proofs) | bytes | AuditEvent search, all pages (baseline) | ratio |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, db := range strings.Split(*dbs, ",") {
		dsn, drop, err := benchenv.Database(ctx, db, *pg)
		if err != nil {
			fatal(err)
		}
		env, err := benchenv.Start(ctx, dsn, benchenv.Options{})
		if err != nil {
			fatal(err)
		}
		put(env, "/Patient/acct", `{"resourceType":"Patient","id":"acct"}`)
		put(env, "/Observation/acct-o", `{"resourceType":"Observation","id":"acct-o","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/acct"}}`)
		var left atomic.Int64
		left.Store(int64(*n))
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					req, _ := http.NewRequest(http.MethodGet, env.Base+"/Observation/acct-o", nil)
					if err := benchenv.Do(env.Client, req); err != nil {
						fatal(err)
					}
				}
			})
		}
		wg.Wait()
		var acc, base []time.Duration
		size := 0
		stopProfile, err := benchenv.CPUProfile(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		for range *runs {
			t0 := time.Now()
			body := get(env, "/Patient/acct/$disclosures")
			acc = append(acc, time.Since(t0))
			size = len(body)
			var b struct{ Entry []json.RawMessage }
			json.Unmarshal(body, &b)
			if len(b.Entry) != *n+1 {
				fatal(fmt.Errorf("the accounting holds %d entries, want %d", len(b.Entry)-1, *n))
			}
			t0 = time.Now()
			for path := "/AuditEvent?patient=Patient/acct&_count=1000"; path != ""; {
				var page struct {
					Link []struct{ Relation, URL string }
				}
				json.Unmarshal(get(env, path), &page)
				path = ""
				for _, l := range page.Link {
					if l.Relation == "next" {
						path = strings.TrimPrefix(l.URL, env.Base)
					}
				}
			}
			base = append(base, time.Since(t0))
		}
		stopProfile()
		a, bl := median(acc), median(base)
		fmt.Printf("| %s | %s | %d | %s | %.2f |\n", db, benchenv.Millis(a), size, benchenv.Millis(bl), a.Seconds()/bl.Seconds())
		env.Stop()
		drop()
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func put(env *benchenv.Env, path, body string) {
	req, _ := http.NewRequest(http.MethodPut, env.Base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	if err := benchenv.Do(env.Client, req); err != nil {
		fatal(err)
	}
}

func get(env *benchenv.Env, path string) []byte {
	req, _ := http.NewRequest(http.MethodGet, env.Base+path, nil)
	res, err := env.Client.Do(req)
	if err != nil {
		fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		fatal(fmt.Errorf("GET %s: %s %s", path, res.Status, b))
	}
	return b
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "accounting:", err)
	os.Exit(1)
}
