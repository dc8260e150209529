// Command search loads a synthetic population (bench/synth) into ehrledger
// through transaction Bundles, measuring the ingest rate, then runs typical
// clinical searches over HTTP and, in the same run, the floor: a
// hand-written SQL query over the same tables returning the same rows
// (checked), straight through database/sql. It prints Markdown tables.
//
//	go run ./bench/search -db sqlite,postgres -resources 100000,1000000
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ehrledger/ehrledger/bench/internal/benchenv"
	"github.com/ehrledger/ehrledger/bench/synth"
	_ "github.com/glebarez/go-sqlite"
	_ "github.com/jackc/pgx/v5/stdlib"
)

func main() {
	dbs := flag.String("db", "sqlite,postgres", "databases: sqlite, postgres")
	sizes := flag.String("resources", "100000", "population sizes in resources, comma-separated")
	seed := flag.Uint64("seed", 1, "population seed")
	duration := flag.Duration("duration", 5*time.Second, "how long each query is measured")
	clients := flag.Int("clients", 4, "concurrent clients for queries")
	loaders := flag.Int("loaders", 4, "concurrent transactions while loading")
	pg := flag.String("postgres", os.Getenv("EHR_TEST_POSTGRES"), "PostgreSQL server DSN")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	stopProfile, err := benchenv.CPUProfile(*cpuprofile)
	if err != nil {
		fatal(err)
	}
	defer stopProfile()
	ctx := context.Background()
	fmt.Printf("search run: %s, %d CPUs, seed %d, %s per query, %d clients, %s\n\n", runtime.Version(), runtime.NumCPU(), *seed, *duration, *clients, time.Now().UTC().Format(time.DateOnly))

	var ingest []string
	var queries []string
	for _, sz := range strings.Split(*sizes, ",") {
		resources, err := strconv.Atoi(strings.TrimSpace(sz))
		if err != nil {
			fatal(err)
		}
		for _, db := range strings.Split(*dbs, ",") {
			db = strings.TrimSpace(db)
			dsn, cleanup, err := benchenv.Database(ctx, db, *pg)
			if err != nil {
				fatal(err)
			}
			env, err := benchenv.Start(ctx, dsn, benchenv.Options{})
			if err != nil {
				fatal(err)
			}
			base := env.Base
			// PatientsFor estimates from the first (up to) 5,000 records.
			pop := synth.New(synth.Config{Seed: *seed, Patients: synth.New(synth.Config{Seed: *seed, Patients: 5000}).PatientsFor(resources)})
			client := env.Client
			fmt.Fprintf(os.Stderr, "loading %d patients into %s...\n", pop.Patients(), db)
			load, err := benchenv.Load(client, base, pop, *loaders)
			if err != nil {
				fatal(err)
			}
			ingest = append(ingest, fmt.Sprintf("| %s | %d | %d | %.1f s | %.0f |", db, load.Resources, pop.Patients(), load.Elapsed.Seconds(), float64(load.Resources)/load.Elapsed.Seconds()))
			fmt.Fprintln(os.Stderr, ingest[len(ingest)-1])
			raw, err := openRaw(dsn)
			if err != nil {
				fatal(err)
			}
			if db == "postgres" {
				// After a bulk load, statistics come from ANALYZE, as
				// autovacuum would give them soon after.
				if _, err := raw.Exec("ANALYZE"); err != nil {
					fatal(err)
				}
			}
			for _, q := range clinicalQueries(pop, load.PatientIDs) {
				if err := q.check(client, base, raw, db); err != nil {
					fatal(fmt.Errorf("%s: the floor does not return the server's rows: %w", q.name, err))
				}
				srv := benchenv.Measure(*duration, *clients, func(w int) error {
					return q.serve(client, base, w)
				})
				flr := benchenv.Measure(*duration, *clients, func(w int) error {
					return q.floor(raw, db, w)
				})
				queries = append(queries, fmt.Sprintf("| %s | %d | %s | %.0f | %s | %s | %.0f | %s | %s | %.2f |", db, load.Resources, q.name,
					srv.Rate(), benchenv.Millis(srv.Quantile(0.5)), benchenv.Millis(srv.Quantile(0.99)),
					flr.Rate(), benchenv.Millis(flr.Quantile(0.5)), benchenv.Millis(flr.Quantile(0.99)), srv.Rate()/flr.Rate()))
				fmt.Fprintln(os.Stderr, queries[len(queries)-1])
				if srv.Errors > 0 || flr.Errors > 0 {
					fatal(fmt.Errorf("%s: %d server and %d floor errors", q.name, srv.Errors, flr.Errors))
				}
			}
			raw.Close()
			env.Stop()
			cleanup()
		}
	}
	fmt.Println("Ingest through transaction Bundles (one per patient, synthetic population):")
	fmt.Println()
	fmt.Println("| database | resources | patients | time | resources/s |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, l := range ingest {
		fmt.Println(l)
	}
	fmt.Println()
	fmt.Println("Searches over HTTP against the floor (the same rows by hand-written SQL, no HTTP):")
	fmt.Println()
	fmt.Println("| database | resources | search | req/s | p50 | p99 | floor q/s | floor p50 | floor p99 | ÷ floor |")
	fmt.Println("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, l := range queries {
		fmt.Println(l)
	}
}

func openRaw(dsn string) (*sql.DB, error) {
	var db *sql.DB
	var err error
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=cache_size(-65536)")
	} else {
		db, err = sql.Open("pgx", dsn+"&plan_cache_mode=force_custom_plan") // as the server does
	}
	if err == nil {
		// database/sql keeps only 2 idle connections by default: the
		// floor would reconnect for most queries.
		db.SetMaxIdleConns(32)
	}
	return db, err
}

// query is one clinical search: its URL for the server, the same rows by
// hand-written SQL for the floor, and the random inputs both draw (the
// same sequence for both, one generator per worker).
type query struct {
	name string
	// path makes the search for a random draw.
	path func(r *rand.Rand) string
	// sql makes the floor's statements for the same draw: the page query
	// returning (id, body), then, when the server counts matches on a first
	// page, the count query.
	sql  func(r *rand.Rand, dialect string) (page, count string, args []any)
	rngs sync.Map
}

func (q *query) rng(worker int, floor bool) *rand.Rand {
	key := worker*2 + map[bool]int{false: 0, true: 1}[floor]
	r, _ := q.rngs.LoadOrStore(key, rand.New(rand.NewPCG(uint64(worker), 7)))
	return r.(*rand.Rand)
}

func (q *query) serve(client *http.Client, base string, worker int) error {
	req, err := http.NewRequest("GET", base+q.path(q.rng(worker, false)), nil)
	if err != nil {
		return err
	}
	return benchenv.Do(client, req)
}

func (q *query) floor(db *sql.DB, dialect string, worker int) error {
	_, err := q.floorRows(db, dialect, q.rng(worker, true))
	return err
}

func (q *query) floorRows(db *sql.DB, dialect string, r *rand.Rand) ([]string, error) {
	page, count, args := q.sql(r, dialect)
	rows, err := db.Query(rebind(page, dialect), args...)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if count != "" {
		var n int
		if err := db.QueryRow(rebind(count, dialect), args...).Scan(&n); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// check compares the first page's ids from the server and the floor for a
// few draws.
func (q *query) check(client *http.Client, base string, db *sql.DB, dialect string) error {
	for seed := range uint64(5) {
		path := q.path(rand.New(rand.NewPCG(seed, 99)))
		res, err := client.Get(base + path)
		if err != nil {
			return err
		}
		var b struct {
			Entry []struct {
				Resource struct{ ID string }
				Search   struct{ Mode string }
			}
		}
		err = json.NewDecoder(res.Body).Decode(&b)
		res.Body.Close()
		if err != nil {
			return err
		}
		var got []string
		for _, e := range b.Entry {
			if e.Search.Mode == "match" {
				got = append(got, e.Resource.ID)
			}
		}
		want, err := q.floorRows(db, dialect, rand.New(rand.NewPCG(seed, 99)))
		if err != nil {
			return err
		}
		if len(want) > len(got) {
			want = want[:len(got)] // the floor asks one more row, to know of a next page
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s:\n server %v\n floor  %v", path, got, want)
		}
	}
	return nil
}

// rebind turns ? placeholders into PostgreSQL's $n.
func rebind(q, dialect string) string {
	if dialect != "postgres" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// body is the SQL that joins a resource id to its current body.
const body = `JOIN resources r ON r.res_type = %[1]q AND r.res_id = %[2]s AND r.deleted = false
JOIN resource_versions v ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version_id = r.version_id`

func joinBody(typ, idCol string) string {
	return strings.ReplaceAll(fmt.Sprintf(body, typ, idCol), `"`, `'`)
}

// clinicalQueries are the searches measured, with their floors.
func clinicalQueries(pop *synth.Population, ids []string) []*query {
	in := pop.QueryInputs()
	patient := func(r *rand.Rand) (int, string) {
		i := r.IntN(len(ids))
		return i, ids[i]
	}
	heartRate := "http://loinc.org|8867-4"
	since := in.History.End.AddDate(-2, 0, 0).Format("2006") // the last two years or so
	return []*query{
		{
			name: "Patient?identifier=MRN",
			path: func(r *rand.Rand) string {
				i, _ := patient(r)
				return "/Patient?identifier=" + url.QueryEscape(synth.MRNSystem+"|"+pop.MRN(i))
			},
			sql: func(r *rand.Rand, dialect string) (string, string, []any) {
				i, _ := patient(r)
				where := `FROM search_token t ` + joinBody("Patient", "t.res_id") + `
WHERE t.res_type = 'Patient' AND t.param = 'identifier' AND t.system = ? AND t.code = ?`
				return `SELECT r.res_id, v.body ` + where + ` ORDER BY r.res_id LIMIT 51`,
					`SELECT COUNT(*) ` + where, []any{synth.MRNSystem, pop.MRN(i)}
			},
		},
		{
			name: "Patient?family=" + in.FrequentFamily + "&_count=20",
			path: func(r *rand.Rand) string {
				return "/Patient?family=" + url.QueryEscape(in.FrequentFamily) + "&_count=20"
			},
			sql: func(r *rand.Rand, dialect string) (string, string, []any) {
				norm := strings.ToLower(in.FrequentFamily)
				where := `FROM resources r JOIN resource_versions v ON v.res_type = r.res_type AND v.res_id = r.res_id AND v.version_id = r.version_id
WHERE r.res_type = 'Patient' AND r.deleted = false AND r.res_id IN (SELECT s.res_id FROM search_string s
  WHERE s.res_type = 'Patient' AND s.param = 'family' AND s.plen = 0 AND s.norm >= ? AND s.norm < ?)`
				return `SELECT r.res_id, v.body ` + where + ` ORDER BY r.res_id LIMIT 21`,
					`SELECT COUNT(*) ` + where, []any{norm, norm + "\U0010FFFF"}
			},
		},
		{
			name: "Observation?patient=X&code=heart-rate&_sort=-date&_count=20",
			path: func(r *rand.Rand) string {
				_, id := patient(r)
				return "/Observation?patient=" + id + "&code=" + url.QueryEscape(heartRate) + "&_sort=-date&_count=20"
			},
			sql: func(r *rand.Rand, dialect string) (string, string, []any) {
				_, id := patient(r)
				where := `FROM search_reference p ` + joinBody("Observation", "p.res_id") + `
WHERE p.res_type = 'Observation' AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id = ?
  AND ` + has(dialect, "search_token", "x.res_type = 'Observation' AND x.param = 'code' AND x.system = ? AND x.code = ?")
				return `SELECT r.res_id, v.body ` + where + `
ORDER BY COALESCE((SELECT MAX(d.high_us) FROM search_date d WHERE d.res_type = 'Observation' AND d.res_id = r.res_id AND d.param = 'date'), -9223372036854775808) DESC, r.res_id LIMIT 21`,
					`SELECT COUNT(*) ` + where, []any{id, "http://loinc.org", "8867-4"}
			},
		},
		{
			name: "Observation?patient=X&category=laboratory&date=ge" + since,
			path: func(r *rand.Rand) string {
				_, id := patient(r)
				return "/Observation?patient=" + id + "&category=laboratory&date=ge" + since
			},
			sql: func(r *rand.Rand, dialect string) (string, string, []any) {
				_, id := patient(r)
				from, _ := time.Parse("2006", since)
				to := from.AddDate(1, 0, 0)
				where := `FROM search_reference p ` + joinBody("Observation", "p.res_id") + `
WHERE p.res_type = 'Observation' AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id = ?
  AND ` + has(dialect, "search_token", "x.res_type = 'Observation' AND x.param = 'category' AND x.code = 'laboratory'") + `
  AND ` + has(dialect, "search_date", "x.res_type = 'Observation' AND x.param = 'date' AND (x.high_us > ? OR (x.low_us >= ? AND x.high_us <= ?))")
				return `SELECT r.res_id, v.body ` + where + ` ORDER BY r.res_id LIMIT 51`,
					`SELECT COUNT(*) ` + where, []any{id, to.UnixMicro(), from.UnixMicro(), to.UnixMicro()}
			},
		},
		{
			name: "Condition?patient=X&clinical-status=active",
			path: func(r *rand.Rand) string {
				_, id := patient(r)
				return "/Condition?patient=" + id + "&clinical-status=active"
			},
			sql: func(r *rand.Rand, dialect string) (string, string, []any) {
				_, id := patient(r)
				where := `FROM search_reference p ` + joinBody("Condition", "p.res_id") + `
WHERE p.res_type = 'Condition' AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id = ?
  AND ` + has(dialect, "search_token", "x.res_type = 'Condition' AND x.param = 'clinical-status' AND x.code = 'active'")
				return `SELECT r.res_id, v.body ` + where + ` ORDER BY r.res_id LIMIT 51`,
					`SELECT COUNT(*) ` + where, []any{id}
			},
		},
		{
			name: "MedicationRequest?patient=X&status=active",
			path: func(r *rand.Rand) string {
				_, id := patient(r)
				return "/MedicationRequest?patient=" + id + "&status=active"
			},
			sql: func(r *rand.Rand, dialect string) (string, string, []any) {
				_, id := patient(r)
				where := `FROM search_reference p ` + joinBody("MedicationRequest", "p.res_id") + `
WHERE p.res_type = 'MedicationRequest' AND p.param = 'patient' AND p.target_type = 'Patient' AND p.target_id = ?
  AND ` + has(dialect, "search_token", "x.res_type = 'MedicationRequest' AND x.param = 'status' AND x.code = 'active'")
				return `SELECT r.res_id, v.body ` + where + ` ORDER BY r.res_id LIMIT 51`,
					`SELECT COUNT(*) ` + where, []any{id}
			},
		},
		{
			name: "Patient?family=" + in.RareFamily,
			path: func(r *rand.Rand) string { return "/Patient?family=" + url.QueryEscape(in.RareFamily) },
			sql: func(r *rand.Rand, dialect string) (string, string, []any) {
				norm := rareNorm
				where := `FROM search_string s ` + joinBody("Patient", "s.res_id") + `
WHERE s.res_type = 'Patient' AND s.param = 'family' AND s.plen = 0 AND s.norm >= ? AND s.norm < ?`
				return `SELECT r.res_id, v.body ` + where + ` ORDER BY r.res_id LIMIT 51`,
					`SELECT COUNT(*) ` + where, []any{norm, norm + "\U0010FFFF"}
			},
		},
	}
}

// has is a criterion of a floor query on the driving index row p: written
// the way each database answers fastest (PostgreSQL plans IN semi-joins
// well; SQLite would list every match of one, so it probes with EXISTS).
func has(dialect, table, cond string) string {
	if dialect == "postgres" {
		return "p.res_id IN (SELECT x.res_id FROM " + table + " x WHERE " + cond + ")"
	}
	return "EXISTS (SELECT 1 FROM " + table + " x WHERE x.res_id = p.res_id AND " + cond + ")"
}

// rareNorm is the normalised form of synth's rare family name.
const rareNorm = "brzeczyszczykiewicz"

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "search:", err)
	os.Exit(1)
}
