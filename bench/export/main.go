// Command export measures Bulk Data export (GET /Patient/$export) of the
// synthetic population: resources per second from the kick-off to the
// last file downloaded, and the peak memory of the process (its resident
// set high-water mark, reset after loading), against the baseline of
// paging through the same resources with a search of each type
// (_count=1000), measured the same way in the same run.
//
//	go run ./bench/export -db sqlite,postgres -resources 100000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/bench/internal/benchenv"
	"github.com/ehrledger/ehrledger/bench/synth"
)

func main() {
	dbs := flag.String("db", "sqlite,postgres", "databases: sqlite, postgres")
	size := flag.Int("resources", 100_000, "population size in resources")
	seed := flag.Uint64("seed", 1, "population seed")
	loaders := flag.Int("loaders", 4, "concurrent transactions while loading")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the exports to this file")
	memprofile := flag.String("memprofile", "", "write heap profiles taken before (FILE.before) and after the export to this file")
	pg := flag.String("postgres", os.Getenv("EHR_TEST_POSTGRES"), "PostgreSQL server DSN (a database is created on it)")
	flag.Parse()
	ctx := context.Background()
	fmt.Printf("export run: %s, %d CPUs, seed %d, %s\n\n", runtime.Version(), runtime.NumCPU(), *seed, time.Now().UTC().Format(time.DateOnly))
	var rows []string
	for _, db := range strings.Split(*dbs, ",") {
		dsn, drop, err := benchenv.Database(ctx, db, *pg)
		if err != nil {
			fatal(err)
		}
		env, err := benchenv.Start(ctx, dsn, benchenv.Options{})
		if err != nil {
			fatal(err)
		}
		pop := synth.New(synth.Config{Seed: *seed, Patients: synth.New(synth.Config{Seed: *seed, Patients: 5000}).PatientsFor(*size)})
		fmt.Fprintf(os.Stderr, "loading %d patients into %s...\n", pop.Patients(), db)
		load, err := benchenv.Load(env.Client, env.Base, pop, *loaders)
		if err != nil {
			fatal(err)
		}
		fmt.Fprintf(os.Stderr, "loaded %d resources in %s\n", load.Resources, load.Elapsed.Round(time.Second))

		awaitWriteAuditEvents(env)
		stopProfile, err := benchenv.CPUProfile(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		if *memprofile != "" {
			writeHeapProfile(*memprofile + ".before")
		}
		idle := settle()
		live := sampleLive()
		t0 := time.Now()
		types, exported := export(env)
		exportTime, exportPeak, exportLive := time.Since(t0), peak(), live()
		stopProfile()
		if *memprofile != "" {
			writeHeapProfile(*memprofile)
		}
		if exported != load.Resources {
			fatal(fmt.Errorf("%s: exported %d resources, loaded %d", db, exported, load.Resources))
		}
		fmt.Fprintf(os.Stderr, "exported %d in %s, peak RSS %d MB\n", exported, exportTime.Round(time.Millisecond), exportPeak>>20)

		settle()
		live = sampleLive()
		t0 = time.Now()
		paged := 0
		for _, typ := range types {
			paged += page(env, "/"+typ+"?_count=1000")
		}
		pageTime, pagePeak, pageLive := time.Since(t0), peak(), live()
		if paged != load.Resources {
			fatal(fmt.Errorf("%s: searches returned %d resources, loaded %d", db, paged, load.Resources))
		}
		rate := func(d time.Duration) float64 { return float64(load.Resources) / d.Seconds() }
		rows = append(rows, fmt.Sprintf("| %s | %d | %d | %.1f s | %.0f | %d MB | %d MB | %.1f s | %.0f | %d MB | %d MB | %.2f |", db, load.Resources, pop.Patients(),
			exportTime.Seconds(), rate(exportTime), (exportPeak-idle)>>20, exportLive>>20,
			pageTime.Seconds(), rate(pageTime), (pagePeak-idle)>>20, pageLive>>20, rate(exportTime)/rate(pageTime)))
		fmt.Fprintln(os.Stderr, rows[len(rows)-1])
		env.Stop()
		drop()
	}
	fmt.Println("| database | resources | patients | $export to last file | resources/s | peak RSS above idle | peak live heap growth | type searches, all pages (baseline) | resources/s | peak RSS above idle | peak live heap growth | throughput ratio |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

// clinical are the types of the synthetic records. The write AuditEvents
// the server stores in each patient's compartment as the ledger
// integrates the load (docs/ledger.md) are left out: their number depends
// on how far the ledger got.
var clinical = []string{"AllergyIntolerance", "Condition", "Encounter", "Immunization", "MedicationRequest", "Observation", "Patient", "Procedure"}

// export kicks off a Patient-level export of the clinical types, waits for it, downloads every
// file and returns the types exported and the resources counted.
func export(env *benchenv.Env) ([]string, int) {
	req, _ := http.NewRequest(http.MethodGet, env.Base+"/Patient/$export?_type="+strings.Join(clinical, ","), nil)
	req.Header.Set("Prefer", "respond-async")
	res, err := env.Client.Do(req)
	if err != nil {
		fatal(err)
	}
	res.Body.Close()
	status := res.Header.Get("Content-Location")
	if res.StatusCode != http.StatusAccepted || status == "" {
		fatal(fmt.Errorf("kick-off: %d", res.StatusCode))
	}
	var m struct {
		Output []struct {
			Type  string `json:"type"`
			URL   string `json:"url"`
			Count int    `json:"count"`
		} `json:"output"`
	}
	for {
		code, body := get(env, status)
		if code == http.StatusAccepted {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if code != http.StatusOK {
			fatal(fmt.Errorf("status: %d %.300s", code, body))
		}
		if err := json.Unmarshal(body, &m); err != nil {
			fatal(err)
		}
		break
	}
	var types []string
	n := 0
	for _, o := range m.Output {
		if len(types) == 0 || types[len(types)-1] != o.Type {
			types = append(types, o.Type)
		}
		res, err := env.Client.Get(o.URL)
		if err != nil {
			fatal(err)
		}
		lines := 0
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			lines++
		}
		res.Body.Close()
		if sc.Err() != nil || res.StatusCode != http.StatusOK || lines != o.Count {
			fatal(fmt.Errorf("%s: %d, %d lines of %d, %v", o.URL, res.StatusCode, lines, o.Count, sc.Err()))
		}
		n += lines
	}
	return types, n
}

// awaitWriteAuditEvents waits until the server has stored the AuditEvent
// of the load's last write, so that the runs measured do not share the
// machine with that catching up.
func awaitWriteAuditEvents(env *benchenv.Env) {
	_, body := get(env, env.Base+"/ledger/checkpoint")
	lines := strings.Split(string(body), "\n")
	if len(lines) < 2 {
		fatal(fmt.Errorf("checkpoint: %q", body))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fatal(err)
	}
	for {
		if code, _ := get(env, env.Base+"/AuditEvent/ledger-"+strconv.FormatInt(size-1, 10)); code == http.StatusOK {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// page follows a search's next links to the end and returns the
// resources it returned.
func page(env *benchenv.Env, path string) int {
	n := 0
	next := env.Base + path
	for next != "" {
		code, body := get(env, next)
		if code != http.StatusOK {
			fatal(fmt.Errorf("%s: %d %.300s", next, code, body))
		}
		var b struct {
			Link []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			} `json:"link"`
			Entry []struct {
				Search struct {
					Mode string `json:"mode"`
				} `json:"search"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			fatal(err)
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		for _, e := range b.Entry {
			if e.Search.Mode == "match" {
				n++
			}
		}
	}
	return n
}

// get fetches url and returns the status and body.
func get(env *benchenv.Env, url string) (int, []byte) {
	res, err := env.Client.Get(url)
	if err != nil {
		fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		fatal(err)
	}
	return res.StatusCode, body
}

// settle returns memory to the system, resets the high-water mark of the
// resident set and returns the resident set size.
func settle() int64 {
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fatal(fmt.Errorf("resetting the peak RSS: %w", err))
	}
	return status("VmRSS")
}

// sampleLive samples the live heap (as of each GC) every 20 ms until the
// function it returns is called, which returns its largest growth over
// the live heap at the start.
func sampleLive() func() int64 {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() int64 {
		metrics.Read(sample)
		return int64(sample[0].Value.Uint64())
	}
	start, high := read(), int64(0)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			high = max(high, read())
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return max(high, read()) - start
	}
}

func writeHeapProfile(path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		fatal(err)
	}
}

// peak is the resident set's high-water mark since settle.
func peak() int64 { return status("VmHWM") }

// status reads a size field of /proc/self/status, in bytes.
func status(field string) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fatal(err)
	}
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(v)), " kB"), 10, 64)
			if err != nil {
				fatal(err)
			}
			return kb << 10
		}
	}
	fatal(fmt.Errorf("no %s in /proc/self/status", field))
	return 0
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "export:", err)
	os.Exit(1)
}
