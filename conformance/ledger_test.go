package conformance

import (
	"database/sql"
	"fmt"
	"net/http"
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
