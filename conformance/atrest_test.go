package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/internal/testdb"
	"golang.org/x/mod/sumdb/tlog"
)

// phi is what identifies one synthetic patient, and the free text of
// their Observation (its code's text). The display of its coding is
// searched, but it may be in clear (docs/security.md: the name of a code
// that is clear).
type phi struct {
	family, given, identifier, phone, line, text, display string
}

// loadPatients creates n patients with random identifying values through
// the API (transaction Bundles of 100), each with an Observation, and
// checks that search still finds a patient by each of them.
func loadPatients(t *testing.T, c *client, n int) []phi {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	var out []phi
	for start := 0; start < n; start += 100 {
		var entries []map[string]any
		for i := start; i < min(n, start+100); i++ {
			p := phi{
				family:     randomWord(r, 10),
				given:      randomWord(r, 8),
				identifier: fmt.Sprintf("MRN%09d", r.IntN(1e9)),
				phone:      fmt.Sprintf("+1-555-%07d", r.IntN(1e7)),
				line:       fmt.Sprintf("%d %s Street", 1+r.IntN(999), randomWord(r, 9)),
				text:       "finding " + randomWord(r, 10),
				display:    "shown " + randomWord(r, 10),
			}
			out = append(out, p)
			full := fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", i)
			entries = append(entries, map[string]any{
				"fullUrl": full,
				"resource": map[string]any{
					"resourceType": "Patient",
					"identifier":   []any{map[string]any{"system": "http://hospital.example/mrn", "value": p.identifier}},
					"name":         []any{map[string]any{"family": p.family, "given": []any{p.given}}},
					"telecom":      []any{map[string]any{"system": "phone", "value": p.phone}},
					"address":      []any{map[string]any{"line": []any{p.line}, "city": "Springfield"}},
				},
				"request": map[string]any{"method": "POST", "url": "Patient"},
			}, map[string]any{
				"resource": map[string]any{
					"resourceType": "Observation", "status": "final",
					"code": map[string]any{"text": p.text, "coding": []any{map[string]any{
						"system": "http://hospital.example/codes", "code": "c1", "display": p.display}}},
					"subject": map[string]any{"reference": full},
				},
				"request": map[string]any{"method": "POST", "url": "Observation"},
			})
		}
		c.do(http.MethodPost, "/", map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries}).want(t, http.StatusOK)
	}
	// Read every patient, so that the ledger holds a disclosure record for
	// each (scanned with the rest of the database).
	var b struct {
		Entry []struct {
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
		Link []struct {
			Relation, URL string
		} `json:"link"`
	}
	read := 0
	for next := "/Patient?_count=200"; next != ""; {
		res := c.do(http.MethodGet, next, nil).want(t, http.StatusOK)
		json.Unmarshal(res.body, &b)
		for _, e := range b.Entry {
			c.do(http.MethodGet, "/Patient/"+e.Resource.ID, nil).want(t, http.StatusOK)
			read++
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = strings.TrimPrefix(l.URL, c.base)
			}
		}
	}
	if read != n {
		t.Fatalf("read %d patients back, want %d", read, n)
	}
	p := out[len(out)/2]
	for _, q := range []string{
		"family=" + p.family, "family=" + strings.ToLower(p.family[:4]), "given:exact=" + p.given,
		"identifier=" + url.QueryEscape("http://hospital.example/mrn|"+p.identifier),
		"phone=" + url.QueryEscape(p.phone), "address=" + url.QueryEscape(p.line[:6]),
	} {
		var b struct {
			Total int `json:"total"`
		}
		res := c.do(http.MethodGet, "/Patient?"+q+"&_total=accurate", nil).want(t, http.StatusOK)
		json.Unmarshal(res.body, &b)
		if b.Total < 1 {
			t.Errorf("Patient?%s finds nothing: blind indexes lost the search", q)
		}
	}
	for _, q := range []string{"code:text=" + url.QueryEscape(p.text), "code:text=" + url.QueryEscape(strings.ToLower(p.display[:10]))} {
		var b struct {
			Total int `json:"total"`
		}
		res := c.do(http.MethodGet, "/Observation?"+q+"&_total=accurate", nil).want(t, http.StatusOK)
		json.Unmarshal(res.body, &b)
		if b.Total != 1 {
			t.Errorf("Observation?%s finds %d, want 1: blind indexes lost the search", q, b.Total)
		}
	}
	return out
}

// scan fails the test for each identifying value found in dump, as
// written or case-folded (the way search normalises it): one pass over the
// case-folded dump, looking each position's first 8 bytes up among the
// values' first 8 bytes, then comparing whole values.
func scan(t *testing.T, what string, dump []byte, patients []phi) {
	t.Helper()
	lower := bytes.ToLower(dump)
	byPrefix := map[string][]string{}
	for _, p := range patients {
		for _, v := range []string{p.family, p.given, p.identifier, p.phone, p.line, p.text} {
			v = strings.ToLower(v)
			byPrefix[v[:8]] = append(byPrefix[v[:8]], v)
		}
	}
	hits := 0
	for i := 0; i+8 <= len(lower); i++ {
		for _, v := range byPrefix[string(lower[i:i+8])] {
			if bytes.HasPrefix(lower[i:], []byte(v)) {
				if hits++; hits <= 5 {
					t.Errorf("%s contains %q at byte %d", what, v, i)
				}
			}
		}
	}
	if hits > 0 {
		t.Errorf("%s: %d identifying values in clear", what, hits)
	}
	t.Logf("%s: %d bytes scanned for %d values, %d hits", what, len(dump), 6*len(patients), hits)
}

// TestNoPHIAtRest loads 1,000 patients through the API and looks for every
// one's family name, given name, identifier, phone number, address line
// and the free text of their Observation's code in the raw SQLite files
// and in a pg_dump of PostgreSQL.
func TestNoPHIAtRest(t *testing.T) {
	bin := binary(t)
	t.Run("sqlite", func(t *testing.T) {
		data := t.TempDir()
		p := serve(t, bin, "--data", data)
		start := time.Now()
		c := p.client(t)
		patients := loadPatients(t, c, 1000)
		t.Logf("loaded in %v", time.Since(start))
		// Every ledger record, as anyone may download it, is free of them
		// too: the leaves are publishable.
		cp := c.checkpoint(t, 3999) // 2,000 writes, 1,000 reads, searches
		var leaves []byte
		for n := int64(0); n < int64(cp.Size); n += 256 {
			w := min(256, int64(cp.Size)-n)
			path := strings.Replace(tlog.Tile{H: 8, L: -1, N: n / 256, W: int(w)}.Path(), "tile/8/data/", "/ledger/tile/entries/", 1)
			leaves = append(leaves, c.do(http.MethodGet, path, nil).want(t, http.StatusOK).body...)
		}
		scan(t, fmt.Sprintf("the ledger's %d records", cp.Size), leaves, patients)
		if err := p.stop(t); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs)
		}
		files, _ := filepath.Glob(filepath.Join(data, "ehrledger.db*"))
		var dump []byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dump = append(dump, b...)
		}
		if len(dump) < 1<<20 {
			t.Fatalf("the SQLite files hold only %d bytes: nothing was stored?", len(dump))
		}
		scan(t, "SQLite files", dump, patients)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testdb.Postgres(t)
		p := serve(t, bin, "--data", t.TempDir(), "--db", dsn)
		patients := loadPatients(t, p.client(t), 1000)
		dump, err := exec.Command(pgDump(t), "--no-owner", dsn).Output()
		if err != nil {
			t.Fatalf("pg_dump: %v", err)
		}
		if !bytes.Contains(dump, []byte("COPY public.resource_versions")) {
			t.Fatal("pg_dump holds no resource_versions")
		}
		scan(t, "pg_dump", dump, patients)
	})
}

// pgDump finds pg_dump on PATH or in Debian's PostgreSQL directories.
func pgDump(t *testing.T) string {
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(found) == 0 {
		t.Fatal("pg_dump not found (scripts/test.sh installs PostgreSQL)")
	}
	return found[len(found)-1]
}
