// Command peers measures providers that witness each other
// (docs/peers.md). It builds ehrledger, starts three providers on
// loopback, each with its own SQLite database and a 1-of-2 witness
// policy, and runs a disclosure load (a write and a read of a patient,
// over and over) on all three. It reports, for each disclosure, the time
// from its answer to the first checkpoint of its provider's log holding
// it (the baseline) and to the first k-cosigned checkpoint holding it,
// p50 and p99. Then a fourth provider starts and mirrors the three logs
// from scratch: its catch-up rate (records per second) against the rate
// of downloading the same entry bundles without checking or storing them,
// in the same run.
//
//	go run ./bench/peers -duration 20s -workers 4
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/bench/internal/benchenv"
	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type provider struct {
	name, addr, data, origin, logVKey, witnessVKey string
	cmd                                            *exec.Cmd
	token                                          string
}

func (p *provider) url() string { return "http://" + p.addr }

func main() {
	duration := flag.Duration("duration", 20*time.Second, "how long the disclosure load runs")
	workers := flag.Int("workers", 4, "concurrent clients per provider")
	interval := flag.Duration("interval", time.Second, "checkpoint and witness interval")
	flag.Parse()
	dir, err := os.MkdirTemp("", "ehrledger-peers-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "ehrledger")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ehrledger").CombinedOutput(); err != nil {
		fatal(fmt.Errorf("go build: %v\n%s", err, out))
	}
	fmt.Printf("peers run: %s, %d CPUs, 3 providers on SQLite, 1-of-2 witnesses, %s load with %d clients each, checkpoint and witness interval %s, %s\n\n",
		runtime.Version(), runtime.NumCPU(), *duration, *workers, *interval, time.Now().UTC().Format(time.DateOnly))

	ps := prepare(dir, []string{"a", "b", "c"})
	for _, p := range ps {
		configure(p, ps, 1, *interval)
	}
	for _, p := range ps {
		start(bin, p)
		defer p.cmd.Process.Kill()
	}

	// The load, and pollers that note when each size first appears in a
	// checkpoint and in a cosigned checkpoint.
	ctx, stop := context.WithTimeout(context.Background(), *duration)
	defer stop()
	type seen struct {
		mu            sync.Mutex
		local, cosign []sizeAt
		answered      []answer
	}
	obs := map[string]*seen{}
	var wg sync.WaitGroup
	for _, p := range ps {
		s := &seen{}
		obs[p.name] = s
		for w := range *workers {
			wg.Go(func() {
				client := benchenv.Client()
				for i := 0; ctx.Err() == nil; i++ {
					id := fmt.Sprintf("peers-%s-%d-%d", p.name, w, i)
					if _, err := call(client, p, http.MethodPut, "/Patient/"+id, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id)); err != nil {
						continue
					}
					idx, err := call(client, p, http.MethodGet, "/Patient/"+id, "")
					if err == nil && idx >= 0 {
						s.mu.Lock()
						s.answered = append(s.answered, answer{idx, time.Now()})
						s.mu.Unlock()
					}
				}
			})
		}
		for path, into := range map[string]*[]sizeAt{"/ledger/checkpoint": &s.local, "/ledger/checkpoint/cosigned": &s.cosign} {
			wg.Go(func() {
				last := int64(-1)
				for deadline := time.Now().Add(*duration + 15**interval); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if n := size(p.url() + path); n > last {
						last = n
						s.mu.Lock()
						*into = append(*into, sizeAt{n, time.Now()})
						s.mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()

	fmt.Println("| provider | disclosures | to its log's checkpoint, p50 / p99 | to a 1-of-2 cosigned checkpoint, p50 / p99 | ratio p50 / p99 |")
	fmt.Println("|---|---:|---:|---:|---:|")
	var allLocal, allCosigned []time.Duration
	for _, p := range ps {
		s := obs[p.name]
		local, missL := delays(s.answered, s.local)
		cosigned, missC := delays(s.answered, s.cosign)
		allLocal, allCosigned = append(allLocal, local...), append(allCosigned, cosigned...)
		if missL+missC > 0 {
			fmt.Fprintf(os.Stderr, "%s: %d disclosures never seen in a checkpoint, %d never cosigned\n", p.name, missL, missC)
		}
		row(p.name, len(s.answered), local, cosigned)
	}
	row("all", len(allLocal), allLocal, allCosigned)

	// A fourth provider mirrors the three logs from scratch.
	d := prepare(dir, []string{"d"})[0]
	configure(d, append(slices.Clone(ps), d), 0, *interval)
	total := int64(0)
	for _, p := range ps {
		total += size(p.url() + "/ledger/checkpoint/cosigned")
	}
	began := time.Now()
	start(bin, d)
	defer d.cmd.Process.Kill()
	for {
		var have int64
		for _, p := range ps {
			have += mirrored(d, p.origin)
		}
		if have >= total {
			break
		}
		if time.Since(began) > 10*time.Minute {
			fatal(fmt.Errorf("the mirror holds %d of %d records after 10 minutes", have, total))
		}
		time.Sleep(20 * time.Millisecond)
	}
	catchUp := time.Since(began)
	began = time.Now()
	downloaded := int64(0)
	for _, p := range ps {
		downloaded += download(p, size(p.url()+"/ledger/checkpoint/cosigned"))
	}
	raw := time.Since(began)
	fmt.Printf("\n| mirror of 3 logs from scratch | records | time | records/s |\n|---|---:|---:|---:|\n")
	fmt.Printf("| a new provider's mirror (start included) | %d | %s | %.0f |\n", total, catchUp.Round(time.Millisecond), float64(total)/catchUp.Seconds())
	fmt.Printf("| baseline: the entry bundles downloaded, unchecked | %d | %s | %.0f |\n", downloaded, raw.Round(time.Millisecond), float64(downloaded)/raw.Seconds())
	fmt.Printf("\nmirror rate ÷ download rate: %.2f\n", (float64(total)/catchUp.Seconds())/(float64(downloaded)/raw.Seconds()))
}

type answer struct {
	index int64
	at    time.Time
}

type sizeAt struct {
	size int64
	at   time.Time
}

// delays is, for each disclosure, the time from its answer to the first
// size seen that holds it; and how many were never seen.
func delays(answered []answer, sizes []sizeAt) ([]time.Duration, int) {
	var out []time.Duration
	missed := 0
	for _, a := range answered {
		i := slices.IndexFunc(sizes, func(s sizeAt) bool { return s.size > a.index })
		if i < 0 {
			missed++
			continue
		}
		out = append(out, max(0, sizes[i].at.Sub(a.at)))
	}
	return out, missed
}

func row(name string, n int, local, cosigned []time.Duration) {
	q := func(ds []time.Duration, f float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[min(len(s)-1, int(f*float64(len(s))))]
	}
	l50, l99, c50, c99 := q(local, .5), q(local, .99), q(cosigned, .5), q(cosigned, .99)
	fmt.Printf("| %s | %d | %s / %s | %s / %s | %.2f / %.2f |\n", name, n, benchenv.Millis(l50), benchenv.Millis(l99), benchenv.Millis(c50), benchenv.Millis(c99),
		c50.Seconds()/max(l50.Seconds(), 1e-9), c99.Seconds()/max(l99.Seconds(), 1e-9))
}

func prepare(dir string, names []string) []*provider {
	var ps []*provider
	for _, n := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fatal(err)
		}
		p := &provider{name: n, addr: ln.Addr().String(), data: filepath.Join(dir, n), origin: n + ".bench/ehrledger/main"}
		ln.Close()
		os.MkdirAll(p.data, 0o700)
		skey, vkey, _ := note.GenerateKey(rand.Reader, p.origin)
		writeKey(filepath.Join(p.data, "ledger-key.json"), skey, vkey)
		p.logVKey = vkey
		wskey, wvkey, _ := note.GenerateKey(rand.Reader, n+".bench/ehrledger/witness")
		writeKey(filepath.Join(p.data, "witness-key.json"), wskey, wvkey)
		p.witnessVKey, _ = fnote.VKeyToCosignatureV1(wvkey)
		ps = append(ps, p)
	}
	return ps
}

func writeKey(path, skey, vkey string) {
	b, _ := json.Marshal(map[string]string{"signer": skey, "verifier": vkey})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		fatal(err)
	}
}

func configure(p *provider, all []*provider, required int, interval time.Duration) {
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "ledger_origin: %s\nledger_checkpoint_interval: %s\nlog_level: error\nwitness:\n  name: %s.bench/ehrledger/witness\n  required: %d\n  interval: %s\npeers:\n",
		p.origin, interval, p.name, required, interval)
	for _, q := range all {
		if q != p {
			fmt.Fprintf(&cfg, "  - name: %s\n    url: %s\n    origin: %s\n    log_key: %s\n    witness_key: %s\n", q.name, q.url(), q.origin, q.logVKey, q.witnessVKey)
		}
	}
	if err := os.WriteFile(filepath.Join(p.data, "config.yaml"), []byte(cfg.String()), 0o600); err != nil {
		fatal(err)
	}
}

func start(bin string, p *provider) {
	p.cmd = exec.Command(bin, "serve", "--data", p.data, "--config", filepath.Join(p.data, "config.yaml"), "--addr", p.addr)
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, os.Stderr
	if err := p.cmd.Start(); err != nil {
		fatal(err)
	}
	for range 600 {
		if res, err := http.Get(p.url() + "/healthz"); err == nil {
			res.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := exec.Command(bin, "token", "--data", p.data, "--config", filepath.Join(p.data, "config.yaml"), "--addr", p.addr,
		"--client", "admin", "--scope", "system/*.cruds").Output()
	if err != nil {
		fatal(fmt.Errorf("ehrledger token: %v", err))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p.token = lines[len(lines)-1]
}

// call runs one request and returns the Ledger-Index it named (-1: none).
func call(c *http.Client, p *provider, method, path, body string) (int64, error) {
	req, _ := http.NewRequest(method, p.url()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/fhir+json")
	res, err := c.Do(req)
	if err != nil {
		return -1, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode >= 300 {
		return -1, fmt.Errorf("%s %s: %s", method, path, res.Status)
	}
	var n int64 = -1
	if h := res.Header.Get("Ledger-Index"); h != "" {
		fmt.Sscan(h, &n)
	}
	return n, nil
}

// size is the size of the checkpoint at u, or -1.
func size(u string) int64 {
	res, err := http.Get(u)
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var c log.Checkpoint
	if res.StatusCode != http.StatusOK {
		return -1
	}
	if _, err := c.Unmarshal(b); err != nil {
		return -1
	}
	return int64(c.Size)
}

// mirrored is the size of d's copy of origin.
func mirrored(d *provider, origin string) int64 {
	res, err := http.Get(d.url() + "/ledger/peers")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	var st struct {
		Mirrored []struct {
			Origin string `json:"origin"`
			Size   int64  `json:"size"`
		} `json:"mirrored"`
	}
	json.NewDecoder(res.Body).Decode(&st)
	for _, m := range st.Mirrored {
		if m.Origin == origin {
			return m.Size
		}
	}
	return 0
}

// download fetches the entry bundles of p's first n records and returns
// how many records they held.
func download(p *provider, n int64) int64 {
	got := int64(0)
	for b := int64(0); b*256 < n; b++ {
		w := min(256, n-b*256)
		path := "/ledger/" + audit.TilePath(tlog.Tile{H: audit.TileHeight, L: -1, N: b, W: int(w)})
		res, err := http.Get(p.url() + path)
		if err != nil {
			fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		got += w
	}
	return got
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "peers:", err)
	os.Exit(1)
}
