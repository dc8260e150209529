// Command load measures ehrledger's FHIR interactions over HTTP on loopback:
// create, read and update at several concurrency levels, on SQLite and on
// PostgreSQL, and in the same run the floor: the same router answering
// reads of a fixed Patient from memory. It prints a Markdown table of
// throughput and latency with each figure's ratio to the floor.
//
// read-org reads Organizations of the same size as the Patients: the
// same path without a disclosure, hence without a ledger record: the
// ledger's cost is read against read-org.
//
// -auth measures with access tokens (token: the product, every request
// carrying a JWT the server verifies) and without (none:
// --insecure-no-auth, the baseline); a table gives each figure's ratio to
// none.
//
// -consent measures reads and searches of patients without a Consent
// (absent: the consent gate's cheap path, one query a request) and of
// patients each with a Consent of 20 provisions that permits the reader
// (20: decided provision by provision); a table gives each figure's
// ratio to absent. read-org, which no consent gates, is the floor of
// both.
//
// -keys measures each database with several key set-ups: sealed (the
// product: bodies sealed under per-patient keys from a local KMS, PHI
// search values blind), vault (the same through Vault Transit) and plain
// (the baseline: a pass-through cipher, values in clear); a second table
// gives each figure's ratio to plain. read-cold empties the key cache
// before it starts, as a restart would; the KMS column counts KMS calls per
// 1,000 requests.
//
//	go run ./bench/load -db sqlite,postgres -duration 5s -concurrency 1,4,16
//	go run ./bench/load -keys sealed,plain -ops create,read,read-cold,update
//	go run ./bench/load -auth token,none -ops read,read-org
//	go run ./bench/load -consent absent,20 -ops read,search,read-org
//
// PostgreSQL comes from -postgres or EHR_TEST_POSTGRES (bench/run.sh starts a
// throwaway server); each run creates and drops its own database.
package main

import (
	"context"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ehrledger/ehrledger/bench/internal/benchenv"
)

// patientTemplate is a ~700-byte Patient; patient(i) fills in an MRN and
// names of its own, as a real population has.
const patientTemplate = `{"resourceType":"Patient","identifier":[{"system":"http://hospital.example.org/mrn","value":"MRN-%d"}],` +
	`"active":true,"name":[{"use":"official","family":"%s","given":["%s","Augusta"]}],"telecom":[{"system":"phone","value":"+44 20 7946 0000","use":"home"}],` +
	`"gender":"female","birthDate":"1815-12-10","address":[{"line":["12 St James's Square"],"city":"London","postalCode":"SW1Y 4JH","country":"GB"}],` +
	`"extension":[{"url":"http://example.org/fhir/StructureDefinition/weight-at-birth","valueDecimal":3.250}]%s}`

// orgTemplate is an Organization of about the same size: the provider's
// own data, whose reads are not disclosures and append no ledger record.
const orgTemplate = `{"resourceType":"Organization","id":"%s","identifier":[{"system":"http://hospital.example.org/org","value":"ORG-%d"}],` +
	`"active":true,"name":"St James's Square Clinic %d","telecom":[{"system":"phone","value":"+44 20 7946 0000","use":"work"}],` +
	`"address":[{"line":["12 St James's Square"],"city":"London","postalCode":"SW1Y 4JH","country":"GB"}],` +
	`"alias":["Ada Lovelace Memorial Practice","The Square Practice"],"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/organization-type","code":"prov"}]}],` +
	`"extension":[{"url":"http://example.org/fhir/StructureDefinition/founded","valueDecimal":1815.125}]}`

// patient is patientTemplate for the i-th patient, extra appended.
func patient(i int, extra string) string {
	word := func(seed uint64) string {
		r := mrand.New(mrand.NewPCG(seed, uint64(i)))
		b := []byte{byte('A' + r.IntN(26))}
		for range 5 + r.IntN(4) {
			b = append(b, byte('a'+r.IntN(26)))
		}
		return string(b)
	}
	return fmt.Sprintf(patientTemplate, i, word(1), word(2), extra)
}

func main() {
	dbs := flag.String("db", "sqlite,postgres", "databases to measure: sqlite, postgres")
	duration := flag.Duration("duration", 5*time.Second, "how long each measurement runs")
	levels := flag.String("concurrency", "1,4,16", "concurrent clients, comma-separated")
	seed := flag.Int("seed", 1000, "patients created before reads and updates")
	pg := flag.String("postgres", os.Getenv("EHR_TEST_POSTGRES"), "PostgreSQL server DSN (a database is created on it)")
	ops := flag.String("ops", "create,read,update", "interactions to measure: create, read, read-cold, read-org, search, search-chain, everything, metadata, update")
	keyModes := flag.String("keys", "sealed", "key set-ups to measure: sealed, vault, plain")
	authModes := flag.String("auth", "token", "authentication set-ups to measure: token, none")
	consentModes := flag.String("consent", "absent", "consent set-ups to measure: absent, 20")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (server and clients) to this file")
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
	fmt.Printf("load run: %s, %d CPUs, %s each, concurrency %v, %s\n\n", runtime.Version(), runtime.NumCPU(), *duration, conc, time.Now().UTC().Format(time.DateOnly))

	var rows []row
	floor := map[int]benchenv.Result{}
	for _, db := range strings.Split(*dbs, ",") {
		for _, setup := range setups(*keyModes, *authModes, *consentModes) {
			mode, authMode, consentMode := setup[0], setup[1], setup[2]
			dsn, cleanup, err := benchenv.Database(ctx, strings.TrimSpace(db), *pg)
			if err != nil {
				fatal(err)
			}
			env, err := benchenv.Start(ctx, dsn, benchenv.Options{Keys: mode, NoAuth: authMode == "none"})
			if err != nil {
				fatal(err)
			}
			srv, base, kr, client := env.Server, env.Base, env.Keys, env.Client
			label := db + " (" + mode + ", " + authMode + ", consent " + consentMode + ")"
			if len(floor) == 0 {
				// The floor runs in the same process and conditions as the
				// first database's server, just before it.
				body := []byte(patient(0, `,"id":"floor","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00.000000Z"}`))
				fbase, fstop, err := benchenv.Listen(srv.Floor(body))
				if err != nil {
					fatal(err)
				}
				for _, c := range conc {
					floor[c] = measure(*duration, c, client, func(int) (*http.Request, error) {
						return http.NewRequest("GET", fbase+"/Patient/floor", nil)
					})
					rows = append(rows, row{db: "floor (memory)", op: "read", c: c, r: floor[c]})
				}
				fstop()
			}
			// For search-chain, each patient's managing organisation is one
			// of the seeded Organizations.
			chain := strings.Contains(*ops, "search-chain")
			ids, err := seedPatients(client, base, *seed, chain)
			if err != nil {
				fatal(err)
			}
			if consentMode == "20" {
				if err := seedConsents(client, base, ids); err != nil {
					fatal(err)
				}
			}
			var orgs []string
			if strings.Contains(*ops, "read-org") || chain {
				for i := range *seed {
					id := fmt.Sprintf("org-%d", i)
					req, _ := post(base+"/Organization/"+id, fmt.Sprintf(orgTemplate, id, i, i))
					req.Method = "PUT"
					if err := benchenv.Do(client, req); err != nil {
						fatal(err)
					}
					orgs = append(orgs, id)
				}
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
					return post(base+"/Patient", patient(i, ""))
				}},
				{"read", func(int) (*http.Request, error) {
					return http.NewRequest("GET", base+"/Patient/"+ids[mrand.IntN(len(ids))], nil)
				}},
				{"search", func(int) (*http.Request, error) {
					return http.NewRequest("GET", base+"/Patient?_id="+ids[mrand.IntN(len(ids))], nil)
				}},
				{"search-chain", func(int) (*http.Request, error) {
					i := mrand.IntN(len(ids))
					return http.NewRequest("GET", fmt.Sprintf("%s/Patient?_id=%s&organization.identifier=ORG-%d", base, ids[i], i), nil)
				}},
				{"metadata", func(int) (*http.Request, error) {
					return http.NewRequest("GET", base+"/metadata", nil)
				}},
				{"everything", func(int) (*http.Request, error) {
					return http.NewRequest("GET", base+"/Patient/"+ids[mrand.IntN(len(ids))]+"/$everything", nil)
				}},
				{"read-org", func(int) (*http.Request, error) {
					return http.NewRequest("GET", base+"/Organization/"+orgs[mrand.IntN(len(orgs))], nil)
				}},
				{"read-cold", func(int) (*http.Request, error) {
					return http.NewRequest("GET", base+"/Patient/"+ids[mrand.IntN(len(ids))], nil)
				}},
				{"update", func(int) (*http.Request, error) {
					id := ids[mrand.IntN(len(ids))]
					req, err := post(base+"/Patient/"+id, patient(1, `,"id":"`+id+`"`))
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
					if op.name == "read-cold" {
						kr.Purge()
					}
					calls := kr.KMSCalls()
					r := measure(*duration, c, client, op.req)
					perK := float64(kr.KMSCalls()-calls) * 1000 / float64(max(1, r.N))
					rows = append(rows, row{db: label, mode: mode, auth: authMode, consent: consentMode, base: db, op: op.name, c: c, r: r, kms: perK})
				}
			}
			env.Stop()
			cleanup()
		}
	}
	fmt.Println("| server | interaction | clients | req/s | p50 | p99 | errors | KMS calls per 1,000 req | req/s ÷ floor read |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		ratio := r.r.Rate() / floor[r.c].Rate()
		fmt.Printf("| %s | %s | %d | %.0f | %s | %s | %d | %.1f | %.3f |\n", r.db, r.op, r.c, r.r.Rate(), benchenv.Millis(r.r.Quantile(0.5)), benchenv.Millis(r.r.Quantile(0.99)), r.r.Errors, r.kms, ratio)
	}
	ratios(rows, "plain", func(r row) string { return r.mode }, func(r row) string { return fmt.Sprint(r.base, r.auth, r.consent, r.op, r.c) })
	ratios(rows, "none", func(r row) string { return r.auth }, func(r row) string { return fmt.Sprint(r.base, r.mode, r.consent, r.op, r.c) })
	ratios(rows, "absent", func(r row) string { return r.consent }, func(r row) string { return fmt.Sprint(r.base, r.mode, r.auth, r.op, r.c) })
}

// setups combines every key, authentication and consent set-up.
func setups(keyModes, authModes, consentModes string) [][3]string {
	var out [][3]string
	for _, k := range strings.Split(keyModes, ",") {
		for _, a := range strings.Split(authModes, ",") {
			for _, c := range strings.Split(consentModes, ",") {
				out = append(out, [3]string{strings.TrimSpace(k), strings.TrimSpace(a), strings.TrimSpace(c)})
			}
		}
	}
	return out
}

// consentTemplate is a Consent of 20 provisions for patient %s: a base
// deny, twelve organisations permitted for treatment (the bench's reader,
// Organization/admin, last of them), a clinic's exception for restricted
// data with an exception for one code inside it, a denied diagnosis, the
// patient's own requests, a registry limited to a data period, a partner
// limited to one report and what refers to it.
const consentTemplate = `{"resourceType":"Consent","status":"active",` +
	`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
	`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/%s"},"dateTime":"2024-01-01",` +
	`"provision":{"type":"deny","provision":[%s]}}`

func consentOf(patient string) string {
	actor := func(ref string) string {
		return `"actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"IRCP"}]},"reference":{"reference":"` + ref + `"}}]`
	}
	var provs []string
	for i := range 11 {
		provs = append(provs, `{"type":"permit",`+actor(fmt.Sprintf("Organization/org-%d", i))+`,"purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}`)
	}
	provs = append(provs,
		`{"type":"permit",`+actor("Organization/admin")+`,"purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"TREAT"}]}`,
		`{"type":"permit",`+actor("Organization/clinic")+`,"purpose":[{"code":"TREAT"}],"provision":[{"type":"deny","securityLabel":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}],"provision":[{"type":"permit","code":[{"coding":[{"system":"http://loinc.org","code":"2339-0"}]}]}]}]}`,
		`{"type":"deny","code":[{"coding":[{"system":"http://snomed.info/sct","code":"86406008"}]}]}`,
		`{"type":"permit","purpose":[{"code":"PATRQT"}]}`,
		`{"type":"permit",`+actor("Organization/registry")+`,"dataPeriod":{"start":"2020","end":"2021"}}`,
		`{"type":"permit",`+actor("Organization/partner")+`,"data":[{"meaning":"dependents","reference":{"reference":"DiagnosticReport/dr1"}}]}`,
	)
	return fmt.Sprintf(consentTemplate, patient, strings.Join(provs, ","))
}

// seedConsents gives each patient its Consent, with 8 clients.
func seedConsents(client *http.Client, base string, ids []string) error {
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(ids); i += 8 {
				req, _ := post(base+"/Consent", consentOf(ids[i]))
				if err := benchenv.Do(client, req); err != nil {
					errs <- fmt.Errorf("consent of %s: %w", ids[i], err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// ratios prints each row's figures against the baseline row that differs
// from it only in the set-up setup returns (baseline is its value there);
// same gives what must match. Nothing is printed without baselines.
func ratios(rows []row, baseline string, setup, same func(row) string) {
	base := map[string]benchenv.Result{}
	for _, r := range rows {
		if setup(r) == baseline {
			base[same(r)] = r.r
		}
	}
	if len(base) == 0 {
		return
	}
	fmt.Printf("\n| server | interaction | clients | req/s ÷ %s | p50 ÷ %s |\n", baseline, baseline)
	fmt.Println("|---|---|---:|---:|---:|")
	for _, r := range rows {
		p, ok := base[same(r)]
		if !ok || setup(r) == baseline {
			continue
		}
		fmt.Printf("| %s | %s | %d | %.3f | %.3f |\n", r.db, r.op, r.c, r.r.Rate()/p.Rate(), float64(r.r.Quantile(0.5))/float64(p.Quantile(0.5)))
	}
}

type row struct {
	db, mode, auth, consent, base, op string
	c                                 int
	r                                 benchenv.Result
	kms                               float64 // KMS calls per 1,000 requests
}

// measure runs c clients sending the requests next makes.
func measure(d time.Duration, c int, client *http.Client, next func(worker int) (*http.Request, error)) benchenv.Result {
	return benchenv.Measure(d, c, func(w int) error {
		req, err := next(w)
		if err != nil {
			fatal(err)
		}
		return benchenv.Do(client, req)
	})
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
func seedPatients(client *http.Client, base string, n int, withOrg bool) ([]string, error) {
	ids := make([]string, n)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				extra := ""
				if withOrg {
					extra = fmt.Sprintf(`,"managingOrganization":{"reference":"Organization/org-%d"}`, i)
				}
				req, _ := post(base+"/Patient", patient(i, extra))
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

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}
