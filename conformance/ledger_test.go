package conformance

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
)

// TestLedgerVerifyAndTamper runs the binary, checks records with
// "ehrledger verify" as an outsider would, then changes a record in the
// database: verify --full reports it, and the server refuses to start on
// it.
func TestLedgerVerifyAndTamper(t *testing.T) {
	bin := binary(t)
	data := t.TempDir()
	p := serve(t, bin, "--data", data, "--ledger-checkpoint-interval", "100ms")
	c := p.client(t)
	for i := range 300 {
		c.do(http.MethodPut, fmt.Sprintf("/Patient/v%d", i), fmt.Sprintf(`{"resourceType":"Patient","id":"v%d"}`, i)).want(t, http.StatusCreated)
	}
	var last int64
	for i := range 20 {
		idx := ledgerIndexes(t, c.do(http.MethodGet, fmt.Sprintf("/Patient/v%d", i), nil).want(t, http.StatusOK))
		last = idx[0]
	}
	c.checkpoint(t, last)
	key := strings.TrimSpace(string(c.do(http.MethodGet, "/ledger/key", nil).body))

	out := runCmd(t, bin, "verify", "--log", p.url, "--index", fmt.Sprint(last), "--key", key)
	if !strings.Contains(out, fmt.Sprintf("record %d is in the log", last)) {
		t.Fatalf("verify --index: %s", out)
	}
	if out := runCmd(t, bin, "verify", "--log", p.url, "--full", "--key", key); !strings.Contains(out, "recompute to the signed root") {
		t.Fatalf("verify --full: %s", out)
	}

	db, err := sql.Open("sqlite", filepath.Join(data, "ehrledger.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	forgeRecord(t, db, 7, []byte(`{"v":1,"type":"write","time":"2026-01-01T00:00:00.000000Z"}`))
	cmd := exec.Command(bin, "verify", "--log", p.url, "--full", "--key", key)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "record 7") {
		t.Fatalf("verify --full on a changed record: %v\n%s", err, out)
	}
	if err := p.stop(t); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", data)
	out2, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out2), "ALARM") || !strings.Contains(string(out2), "record 7") {
		t.Fatalf("the server started on a tampered ledger: %v\n%s", err, out2)
	}
}

// forgeRecord replaces record n in the stored entry bundle part that holds
// it (docs/ledger.md: parts of bundles, each entry after its length in two
// bytes).
func forgeRecord(t *testing.T, db *sql.DB, n int64, forged []byte) {
	t.Helper()
	var pos int
	var data []byte
	if err := db.QueryRow(`SELECT pos, data FROM ledger_tiles WHERE level = -1 AND n = ? AND pos <= ? ORDER BY pos DESC LIMIT 1`, n/256, n%256).Scan(&pos, &data); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := pos; len(data) > 0; i++ {
		l := int(data[0])<<8 | int(data[1])
		rec := data[2 : 2+l]
		data = data[2+l:]
		if int64(i) == n%256 {
			rec = forged
		}
		out = append(out, byte(len(rec)>>8), byte(len(rec)))
		out = append(out, rec...)
	}
	if _, err := db.Exec(`UPDATE ledger_tiles SET data = ? WHERE level = -1 AND n = ? AND pos = ?`, out, n/256, pos); err != nil {
		t.Fatal(err)
	}
}

// TestLedgerSurvivesKill reads under load, kills the server with SIGKILL,
// restarts it, and checks that every read answered 200 has its record at
// the index the response named, describing that read.
func TestLedgerSurvivesKill(t *testing.T) {
	bin := binary(t)
	data := t.TempDir()
	p := serve(t, bin, "--data", data)
	c := p.client(t)
	for i := range 20 {
		c.do(http.MethodPut, fmt.Sprintf("/Patient/k%d", i), fmt.Sprintf(`{"resourceType":"Patient","id":"k%d"}`, i)).want(t, http.StatusCreated)
	}
	type answered struct {
		index int64
		ref   string
	}
	var (
		mu   sync.Mutex
		got  []answered
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("k%d", (w+i)%20)
				req, _ := http.NewRequest(http.MethodGet, p.url+"/Patient/"+id, nil)
				req.Header.Set("Authorization", "Bearer "+c.token)
				res, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					continue
				}
				var n int64
				fmt.Sscan(res.Header.Get("Ledger-Index"), &n)
				mu.Lock()
				got = append(got, answered{n, "Patient/" + id + "/_history/1"})
				mu.Unlock()
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	p.cmd.Process.Kill()
	stop.Store(true)
	wg.Wait()
	<-p.done
	if len(got) < 50 {
		t.Fatalf("only %d reads answered before the kill", len(got))
	}

	p = serve(t, bin, "--data", data)
	c = p.client(t)
	var maxIdx int64
	for _, a := range got {
		maxIdx = max(maxIdx, a.index)
	}
	cp := c.checkpoint(t, maxIdx)
	for _, a := range got {
		rec, raw := c.record(t, cp, a.index)
		if rec.Type != "disclosure" || len(rec.Resources) != 1 || rec.Resources[0].Ref != a.ref {
			t.Fatalf("a read of %s answered 200 naming record %d, which after the kill holds %s", a.ref, a.index, raw)
		}
	}
	t.Logf("%d reads answered before SIGKILL, all recorded where they said", len(got))
}

// TestVerifyStoredVersion shows that the provider can prove a stored
// version is the one its write record committed to, though the public
// leaf names neither the version nor its digest: the version's write
// record and opening (/ledger/written, administrators only) and the
// version as read check with "ehrledger verify --opening --version"; an
// altered version, another version, or an opening of another record do
// not. After the patient's erasure nothing of the kind is produced.
func TestVerifyStoredVersion(t *testing.T) {
	bin := binary(t)
	p := serve(t, bin, "--data", t.TempDir(), "--ledger-checkpoint-interval", "100ms")
	c := p.client(t)
	c.do(http.MethodPut, "/Patient/pv", `{"resourceType":"Patient","id":"pv"}`).want(t, http.StatusCreated)
	obs := `{"resourceType":"Observation","id":"ov","status":"final","code":{"text":"glucose"},"subject":{"reference":"Patient/pv"},"valueQuantity":{"value":%d,"unit":"mmol/L"}}`
	c.do(http.MethodPut, "/Observation/ov", fmt.Sprintf(obs, 5)).want(t, http.StatusCreated)
	c.do(http.MethodPut, "/Observation/ov", fmt.Sprintf(obs, 9)).want(t, http.StatusOK)
	c.do(http.MethodPut, "/Organization/prov", `{"resourceType":"Organization","id":"prov","name":"Ward 7"}`).want(t, http.StatusCreated)
	key := strings.TrimSpace(string(c.do(http.MethodGet, "/ledger/key", nil).body))
	dir := t.TempDir()
	save := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	written := func(ref string) string {
		t.Helper()
		var r *response
		eventually(t, "the write record of "+ref, func() bool {
			r = c.do(http.MethodGet, "/ledger/written/"+ref, nil)
			return r.StatusCode == http.StatusOK
		})
		var o struct{ Index int64 }
		if err := json.Unmarshal(r.body, &o); err != nil {
			t.Fatal(err)
		}
		c.checkpoint(t, o.Index)
		return save(strings.ReplaceAll(ref, "/", "-")+".opening", r.body)
	}
	v1, v2 := written("Observation/ov/1"), written("Observation/ov/2")
	body1 := c.do(http.MethodGet, "/Observation/ov/_history/1", nil).want(t, http.StatusOK).body
	body2 := c.do(http.MethodGet, "/Observation/ov/_history/2", nil).want(t, http.StatusOK).body
	f1, f2 := save("v1.json", body1), save("v2.json", body2)

	out := runCmd(t, bin, "verify", "--log", p.url, "--opening", v1, "--version", f1, "--key", key)
	if !strings.Contains(out, "Observation/ov/_history/1 (SHA-256 ") || !strings.Contains(out, "committed to") ||
		!strings.Contains(out, "about Patient/pv") {
		t.Fatalf("verify --opening --version of version 1:\n%s", out)
	}
	if out := runCmd(t, bin, "verify", "--log", p.url, "--opening", v2, "--version", f2, "--key", key); !strings.Contains(out, "Observation/ov/_history/2 (SHA-256 ") {
		t.Fatalf("verify --opening --version of version 2:\n%s", out)
	}
	org := written("Organization/prov/1")
	orgBody := c.do(http.MethodGet, "/Organization/prov/_history/1", nil).want(t, http.StatusOK).body
	if out := runCmd(t, bin, "verify", "--log", p.url, "--opening", org, "--version", save("org.json", orgBody), "--key", key); !strings.Contains(out, "about no patient") {
		t.Fatalf("verify of the provider's own version:\n%s", out)
	}

	altered := bytes.Replace(body1, []byte(`"value":5`), []byte(`"value":6`), 1)
	if bytes.Equal(altered, body1) {
		t.Fatalf("version 1 does not read as written: %s", body1)
	}
	for _, bad := range []struct{ name, opening, version, want string }{
		{"an altered version", v1, save("altered.json", altered), "this is not the version it recorded"},
		{"another version", v1, f2, "does not name Observation/ov/_history/2"},
		{"an opening of another record", swapOpening(t, v1, v2, save), f1, "does not commit to the opening"},
	} {
		out, ok := verify(t, bin, "--log", p.url, "--opening", bad.opening, "--version", bad.version, "--key", key)
		if ok || !strings.Contains(out, bad.want) {
			t.Errorf("verify with %s: want a failure saying %q, got ok=%v:\n%s", bad.name, bad.want, ok, out)
		}
	}

	// Only administrators get a version's write record.
	clinician := c.caller(t, "pv", "ward", "Organization/prov", "system/*.rs", []string{"TREAT"}, "")
	clinician.do(http.MethodGet, "/ledger/written/Observation/ov/1", nil).want(t, http.StatusForbidden)
	c.do(http.MethodGet, "/ledger/written/Observation/nothing/1", nil).want(t, http.StatusNotFound)
	c.do(http.MethodGet, "/ledger/written/Observation/ov/x", nil).want(t, http.StatusBadRequest)

	// Erased with the patient's key: the versions' write records are gone.
	c.do(http.MethodPost, "/Patient/pv/$erase", nil).want(t, http.StatusOK)
	for _, ref := range []string{"Observation/ov/1", "Observation/ov/2", "Patient/pv/1"} {
		c.do(http.MethodGet, "/ledger/written/"+ref, nil).want(t, http.StatusNotFound)
	}
	c.do(http.MethodGet, "/ledger/written/Organization/prov/1", nil).want(t, http.StatusOK)
}

// swapOpening is the opening file a with the opening of b: record a's
// leaf with an opening it does not commit to.
func swapOpening(t *testing.T, a, b string, save func(string, []byte) string) string {
	t.Helper()
	var fa, fb map[string]any
	for path, into := range map[string]*map[string]any{a: &fa, b: &fb} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, into); err != nil {
			t.Fatal(err)
		}
	}
	fa["opening"] = fb["opening"]
	out, _ := json.Marshal(fa)
	return save("swapped.opening", out)
}
