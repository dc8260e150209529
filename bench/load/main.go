// Command load measures ehrledger's FHIR interactions over HTTP on loopback:
// create, read and update at several concurrency levels, on SQLite and on
// PostgreSQL, and in the same run the floor: the same router answering
// reads of a fixed Patient from memory. It prints a Markdown table of
// throughput and latency with each figure's ratio to the floor.
//
//	go run ./bench/load -db sqlite,postgres -duration 5s -concurrency 1,4,16
//
// PostgreSQL comes from -postgres or EHR_TEST_POSTGRES (bench/run.sh starts a
// throwaway server); each run creates and drops its own database.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
	"github.com/jackc/pgx/v5"
)

const patientTemplate = `{"resourceType":"Patient","identifier":[{"system":"http://hospital.example.org/mrn","value":"MRN-%d"}],` +
	`"active":true,"name":[{"use":"official","family":"Lovelace","given":["Ada","Augusta"]}],"telecom":[{"system":"phone","value":"+44 20 7946 0000","use":"home"}],` +
	`"gender":"female","birthDate":"1815-12-10","address":[{"line":["12 St James's Square"],"city":"London","postalCode":"SW1Y 4JH","country":"GB"}],` +
	`"extension":[{"url":"http://example.org/fhir/StructureDefinition/weight-at-birth","valueDecimal":3.250}]%s}`

func main() {
	dbs := flag.String("db", "sqlite,postgres", "databases to measure: sqlite, postgres")
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	levels := flag.String("concurrency", "1,4,16", "concurrent clients, comma-separated")
	seed := flag.Int("seed", 1000, "patients created before reads and updates")
	pg := flag.String("postgres", os.Getenv("EHR_TEST_POSTGRES"), "PostgreSQL server DSN (a database is created on it)")
	ops := flag.String("ops", "create,read,update", "interactions to measure")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (server and clients) to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var conc []int
	for _, s := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("bad concurrency %q", s))
		}
		conc = append(conc, n)
	}
	ctx := context.Background()
	fmt.Printf("load run: %s, %d CPUs, %s each, concurrency %v, %s\n\n", runtime.Version(), runtime.NumCPU(), *duration, conc, time.Now().UTC().Format(time.DateOnly))

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	var rows []row
	floor := map[int]result{}
	for _, db := range strings.Split(*dbs, ",") {
		dsn, cleanup, err := database(ctx, strings.TrimSpace(db), *pg)
		if err != nil {
			fatal(err)
		}
		srv, base, stop, err := start(ctx, dsn)
		if err != nil {
			fatal(err)
		}
		if len(floor) == 0 {
			// The floor runs in the same process and conditions as the
			// first database's server, just before it.
			body := []byte(fmt.Sprintf(patientTemplate, 0, `,"id":"floor","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00.000000Z"}`))
			fbase, fstop, err := listen(srv.Floor(body))
			if err != nil {
				fatal(err)
			}
			for _, c := range conc {
				floor[c] = measure(*duration, c, func(int) (*http.Request, error) {
					return http.NewRequest("GET", fbase+"/Patient/floor", nil)
				}, client)
				rows = append(rows, row{db: "floor (memory)", op: "read", c: c, r: floor[c]})
			}
			fstop()
		}
		ids, err := seedPatients(client, base, *seed)
		if err != nil {
			fatal(err)
		}
		var counter sync.Mutex
		n := *seed
		all := []struct {
			name string
			req  func(worker int) (*http.Request, error)
		}{
			{"create", func(int) (*http.Request, error) {
				counter.Lock()
				n++
				i := n
				counter.Unlock()
				return post(base+"/Patient", fmt.Sprintf(patientTemplate, i, ""))
			}},
			{"read", func(int) (*http.Request, error) {
				return http.NewRequest("GET", base+"/Patient/"+ids[mrand.IntN(len(ids))], nil)
			}},
			{"update", func(int) (*http.Request, error) {
				id := ids[mrand.IntN(len(ids))]
				req, err := post(base+"/Patient/"+id, fmt.Sprintf(patientTemplate, 1, `,"id":"`+id+`"`))
				if req != nil {
					req.Method = "PUT"
				}
				return req, err
			}},
		}
		for _, op := range all {
			if !slices.Contains(strings.Split(*ops, ","), op.name) {
				continue
			}
			for _, c := range conc {
				rows = append(rows, row{db: db, op: op.name, c: c, r: measure(*duration, c, op.req, client)})
			}
		}
		stop()
		cleanup()
	}
	fmt.Println("| server | interaction | clients | req/s | p50 | p99 | errors | req/s ÷ floor read |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		ratio := r.r.rate() / floor[r.c].rate()
		fmt.Printf("| %s | %s | %d | %.0f | %s | %s | %d | %.3f |\n", r.db, r.op, r.c, r.r.rate(), ms(r.r.quantile(0.5)), ms(r.r.quantile(0.99)), r.r.errors, ratio)
	}
}

type row struct {
	db, op string
	c      int
	r      result
}

type result struct {
	n, errors int
	elapsed   time.Duration
	latencies []time.Duration
}

func (r result) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r result) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(r.latencies)))) - 1
	return r.latencies[max(i, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// measure runs c clients sending requests for d and collects latencies.
func measure(d time.Duration, c int, next func(worker int) (*http.Request, error), client *http.Client) result {
	var mu sync.Mutex
	var all result
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			for time.Now().Before(deadline) {
				req, err := next(w)
				if err != nil {
					fatal(err)
				}
				t := time.Now()
				res, err := client.Do(req)
				if err != nil {
					errs++
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				lat = append(lat, time.Since(t))
				if res.StatusCode >= 300 {
					errs++
				}
			}
			mu.Lock()
			all.latencies = append(all.latencies, lat...)
			all.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	all.n = len(all.latencies)
	slices.Sort(all.latencies)
	return all
}

func post(u, body string) (*http.Request, error) {
	req, err := http.NewRequest("POST", u, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	return req, nil
}

// seedPatients creates n patients with 8 clients and returns their ids.
func seedPatients(client *http.Client, base string, n int) ([]string, error) {
	ids := make([]string, n)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				req, _ := post(base+"/Patient", fmt.Sprintf(patientTemplate, i, ""))
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				res.Body.Close()
				loc := res.Header.Get("Location")
				parts := strings.Split(loc, "/")
				if res.StatusCode != 201 || len(parts) < 4 {
					errs <- fmt.Errorf("seed: status %d, Location %q", res.StatusCode, loc)
					return
				}
				ids[i] = parts[len(parts)-3]
			}
		})
	}
	wg.Wait()
	close(errs)
	return ids, <-errs
}

// database returns a fresh database of the kind named and a cleanup.
func database(ctx context.Context, kind, pgAdmin string) (string, func(), error) {
	switch kind {
	case "sqlite":
		dir, err := os.MkdirTemp("", "ehrledger-load-")
		if err != nil {
			return "", nil, err
		}
		return "sqlite:" + filepath.Join(dir, "ehrledger.db"), func() { os.RemoveAll(dir) }, nil
	case "postgres":
		if pgAdmin == "" {
			return "", nil, errors.New("postgres needs -postgres or EHR_TEST_POSTGRES (bench/run.sh starts a server)")
		}
		var b [6]byte
		rand.Read(b[:])
		name := "ehr_load_" + hex.EncodeToString(b[:])
		conn, err := pgx.Connect(ctx, pgAdmin)
		if err != nil {
			return "", nil, err
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return "", nil, err
		}
		u, err := url.Parse(pgAdmin)
		if err != nil {
			return "", nil, err
		}
		u.Path = "/" + name
		return u.String(), func() {
			if conn, err := pgx.Connect(ctx, pgAdmin); err == nil {
				conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
				conn.Close(ctx)
			}
		}, nil
	}
	return "", nil, fmt.Errorf("unknown database %q", kind)
}

// start serves a store on a loopback port.
func start(ctx context.Context, dsn string) (*server.Server, string, func(), error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{DSN: dsn, Logger: log})
	if err != nil {
		return nil, "", nil, err
	}
	srv, err := server.New(server.Config{Store: st, Logger: log})
	if err != nil {
		return nil, "", nil, err
	}
	base, stop, err := listen(srv)
	if err != nil {
		return nil, "", nil, err
	}
	return srv, base, func() { stop(); st.Close() }, nil
}

func listen(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), func() { hs.Close() }, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}
