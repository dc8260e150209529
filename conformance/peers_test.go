package conformance

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/ehrledger/ehrledger/internal/testdb"
)

// provider is one of several ehrledger processes that witness each other.
type provider struct {
	name, addr, data, config string
	origin, logVKey          string
	logSigner                note.Signer // for the test to forge with
	witnessVKey              string      // cosignature/v1
	proc                     *process
	admin                    *client
}

func (p *provider) url() string { return "http://" + p.addr }

// freeAddr is a loopback address nobody listens on (for a provider that
// restarts on the address its peers know).
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeKey writes a key file as "ehrledger serve" keeps them.
func writeKey(t *testing.T, path, skey, vkey string) {
	b, _ := json.Marshal(map[string]string{"signer": skey, "verifier": vkey})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// newProviders prepares n providers, each with its own SQLite database,
// keys made beforehand so that each one's configuration names the others',
// and a policy of required cosignatures.
func newProviders(t *testing.T, names []string, required int) []*provider {
	var ps []*provider
	for _, n := range names {
		p := &provider{name: n, addr: freeAddr(t), data: t.TempDir(), origin: n + ".test/ehrledger/main"}
		skey, vkey, _ := note.GenerateKey(rand.Reader, p.origin)
		writeKey(t, filepath.Join(p.data, "ledger-key.json"), skey, vkey)
		p.logVKey = vkey
		p.logSigner, _ = note.NewSigner(skey)
		wskey, wvkey, _ := note.GenerateKey(rand.Reader, n+".test/ehrledger/witness")
		writeKey(t, filepath.Join(p.data, "witness-key.json"), wskey, wvkey)
		p.witnessVKey, _ = fnote.VKeyToCosignatureV1(wvkey)
		ps = append(ps, p)
	}
	for _, p := range ps {
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "ledger_origin: %s\nledger_checkpoint_interval: 200ms\nwitness:\n  name: %s.test/ehrledger/witness\n  required: %d\n  interval: 200ms\npeers:\n", p.origin, p.name, required)
		for _, q := range ps {
			if q != p {
				fmt.Fprintf(&cfg, "  - name: %s\n    url: %s\n    origin: %s\n    log_key: %s\n    witness_key: %s\n", q.name, q.url(), q.origin, q.logVKey, q.witnessVKey)
			}
		}
		p.config = filepath.Join(p.data, "config.yaml")
		if err := os.WriteFile(p.config, []byte(cfg.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ps
}

func (p *provider) start(t *testing.T, bin string) {
	p.proc = serve(t, bin, "--data", p.data, "--config", p.config, "--addr", p.addr)
	if p.admin == nil {
		p.admin = p.proc.client(t)
	}
}

// kill stops the provider at once, as a crash does.
func (p *provider) kill(t *testing.T) {
	p.proc.cmd.Process.Kill()
	<-p.proc.done
}

// get fetches a ledger or witness path as text.
func (p *provider) get(t *testing.T, path string) (int, string) {
	res, err := http.Get(p.url() + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", p.url(), path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// peerStatus is GET /ledger/peers.
type peerStatus struct {
	Published int64 `json:"published_size"`
	Witnesses []struct {
		Name     string `json:"name"`
		Cosigned int64  `json:"cosigned_size"`
		Error    string `json:"last_error"`
	} `json:"witnesses"`
	Witnessed []struct {
		Origin   string `json:"origin"`
		Cosigned int64  `json:"cosigned_size"`
		Trusted  bool   `json:"trusted"`
		Evidence int    `json:"evidence"`
	} `json:"witnessed"`
	Mirrored []struct {
		Origin string `json:"origin"`
		Size   int64  `json:"size"`
	} `json:"mirrored"`
}

// mirrors reports the size of w's copy of p's log.
func (w *provider) mirrors(t *testing.T, p *provider) int64 {
	for _, m := range w.peers(t).Mirrored {
		if m.Origin == p.origin {
			return m.Size
		}
	}
	return 0
}

func (p *provider) peers(t *testing.T) peerStatus {
	code, body := p.get(t, "/ledger/peers")
	var s peerStatus
	if code != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("GET /ledger/peers: %d %s", code, body)
	}
	return s
}

// size is the size of the provider's newest signed checkpoint.
func (p *provider) size(t *testing.T) int64 {
	_, body := p.get(t, "/ledger/checkpoint")
	return checkpointSize(t, body)
}

func checkpointSize(t *testing.T, note string) int64 {
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(note)); err != nil {
		t.Fatalf("not a checkpoint: %q", note)
	}
	return int64(c.Size)
}

// eventually polls cond for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("30 s on, still not: %s", what)
		}
	}
}

// load is a steady disclosure load on some providers: each worker writes a
// patient and reads it back, and keeps the ledger indexes it was given.
type load struct {
	mu      sync.Mutex
	indexes map[string][]int64 // by provider
	paused  map[string]bool
	stop    chan struct{}
	done    sync.WaitGroup
}

func startLoad(t *testing.T, ps []*provider) *load {
	l := &load{indexes: map[string][]int64{}, paused: map[string]bool{}, stop: make(chan struct{})}
	for _, p := range ps {
		token := p.admin.token
		l.done.Go(func() {
			hc := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.mu.Lock()
				paused := l.paused[p.name]
				l.mu.Unlock()
				if paused {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				id := fmt.Sprintf("load-%s-%d", p.name, i)
				for _, m := range []string{http.MethodPut, http.MethodGet} {
					var body io.Reader
					if m == http.MethodPut {
						body = strings.NewReader(fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id))
					}
					req, _ := http.NewRequest(m, p.url()+"/Patient/"+id, body)
					req.Header.Set("Authorization", "Bearer "+token)
					req.Header.Set("Content-Type", "application/fhir+json")
					res, err := hc.Do(req)
					if err != nil {
						break // the provider is down: the test pauses it
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if h := res.Header.Get("Ledger-Index"); h != "" && res.StatusCode == http.StatusOK {
						var n int64
						fmt.Sscan(h, &n)
						l.mu.Lock()
						l.indexes[p.name] = append(l.indexes[p.name], n)
						l.mu.Unlock()
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	t.Cleanup(l.end)
	return l
}

func (l *load) pause(name string, paused bool) {
	l.mu.Lock()
	l.paused[name] = paused
	l.mu.Unlock()
}

func (l *load) given(name string) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.indexes[name])
}

func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.done.Wait()
}

// verify runs "ehrledger verify" and returns its output and whether it
// passed.
func verify(t *testing.T, bin string, args ...string) (string, bool) {
	out, err := exec.Command(bin, append([]string{"verify"}, args...)...).CombinedOutput()
	return string(out), err == nil
}

// published waits until p's cosigned checkpoint reaches size n and
// returns it.
func (p *provider) published(t *testing.T, n int64) string {
	t.Helper()
	var cp string
	eventually(t, fmt.Sprintf("%s publishes a cosigned checkpoint of size %d", p.name, n), func() bool {
		code, body := p.get(t, "/ledger/checkpoint/cosigned")
		cp = body
		return code == http.StatusOK && checkpointSize(t, body) >= n
	})
	return cp
}

// TestThreeProviders runs three providers that witness each other under a
// steady disclosure load: one killed and restarted, then a forged and a
// tampered checkpoint of another.
func TestThreeProviders(t *testing.T) {
	bin := binary(t)
	ps := newProviders(t, []string{"a", "b", "c"}, 1)
	a, b, c := ps[0], ps[1], ps[2]
	for _, p := range ps {
		p.start(t, bin)
	}
	ld := startLoad(t, ps)

	// Each publishes checkpoints its two witnesses cosigned; a client
	// requiring both cosignatures verifies a record.
	eventually(t, "every provider discloses under load", func() bool {
		return len(ld.given("a")) > 5 && len(ld.given("b")) > 5 && len(ld.given("c")) > 5
	})
	for _, p := range ps {
		n := slices.Max(ld.given(p.name))
		p.published(t, n+1)
		var wargs []string
		for _, q := range ps {
			if q != p {
				wargs = append(wargs, "--witness", q.witnessVKey)
			}
		}
		eventually(t, p.name+"'s record verifies with both cosignatures", func() bool {
			_, ok := verify(t, bin, append([]string{"--log", p.url(), "--index", fmt.Sprint(n), "--key", p.logVKey}, wargs...)...)
			return ok
		})
		// A proof asked without a size is to the cosigned checkpoint, which
		// comes with it.
		_, body := p.get(t, fmt.Sprintf("/ledger/proof/inclusion?index=%d", n))
		var proof struct {
			Size       int64  `json:"size"`
			Checkpoint string `json:"checkpoint"`
		}
		json.Unmarshal([]byte(body), &proof)
		if proof.Size <= n || checkpointSize(t, proof.Checkpoint) != proof.Size || strings.Count(proof.Checkpoint, "\n— ") < 2 {
			t.Fatalf("%s's proof without a size: %s", p.name, body)
		}
	}

	// B reads a patient's records from A as a Backend Services client with
	// its own key; A decides on the patient's consent for B, and records
	// the disclosure, which B's mirror of A's log then holds.
	shared := shareRecords(t, bin, a, b, c)

	// C crashes. A and B keep serving and publishing with 1 of 2, and
	// A's mirror of C's log holds C's records: a client checks C's last
	// record with A's copy and C's cosigned checkpoint alone.
	cGiven := ld.given("c")
	ld.pause("c", true)
	last := slices.Max(cGiven)
	c.published(t, last+1)
	eventually(t, "a mirrors c's log", func() bool { return a.mirrors(t, c) > last })
	c.kill(t)
	mirrorURL := a.url() + "/mirror/" + c.origin
	if out, ok := verify(t, bin, "--log", mirrorURL, "--index", fmt.Sprint(last), "--key", c.logVKey, "--witness", a.witnessVKey, "--witness", b.witnessVKey, "--witnesses", "1"); !ok {
		t.Fatalf("c's record does not verify from a's mirror while c is down: %s", out)
	}
	for _, p := range []*provider{a, b} {
		n := p.size(t) + 5
		eventually(t, p.name+" grows while c is down", func() bool { return p.size(t) >= n })
		p.published(t, n)
		for _, w := range p.peers(t).Witnesses {
			if strings.HasPrefix(w.Name, "c.") && w.Error == "" {
				t.Fatalf("%s reports no error from the dead witness c: %+v", p.name, w)
			}
		}
	}

	// C restarts: nothing it acknowledged is lost, it publishes again,
	// and its witness state catches up consistently.
	c.start(t, bin)
	ld.pause("c", false)
	if code, body := c.get(t, fmt.Sprintf("/ledger/checkpoint?covers=%d", last)); code != http.StatusOK {
		t.Fatalf("c restarted without record %d, which it had given out: %d %s", last, code, body)
	}
	if out, ok := verify(t, bin, "--log", c.url(), "--index", fmt.Sprint(last), "--key", c.logVKey); !ok {
		t.Fatalf("c's last record before the crash does not verify: %s", out)
	}
	c.published(t, c.size(t))
	for _, p := range []*provider{a, b} {
		target := p.size(t)
		eventually(t, "c cosigns "+p.name+"'s log again", func() bool {
			for _, w := range c.peers(t).Witnessed {
				if w.Origin == p.origin && w.Cosigned >= target && w.Trusted {
					return true
				}
			}
			return false
		})
		// Its mirror of p's log catches up on what it missed.
		published := checkpointSize(t, p.published(t, target))
		eventually(t, "c's mirror of "+p.name+" catches up", func() bool { return c.mirrors(t, p) >= published })
		// What c cosigned is a checkpoint of p's log that p's newest
		// extends.
		_, cosigned := c.get(t, "/witness/checkpoint?origin="+p.origin)
		file := filepath.Join(t.TempDir(), "cp")
		os.WriteFile(file, []byte(cosigned), 0o600)
		if out, ok := verify(t, bin, "--log", p.url(), "--consistency", file, "--key", p.logVKey); !ok {
			t.Fatalf("c's witness state of %s is not consistent with %s's log: %s", p.name, p.name, out)
		}
	}

	// The witness endpoint's refusals, over HTTP: plain text, C2SP statuses.
	for _, c := range []struct {
		body string
		want int
	}{
		{strings.Repeat("x", 20<<10), http.StatusRequestEntityTooLarge},
		{"old 0\n", http.StatusBadRequest},
		{"old 0\n\n" + forgeCheckpoint(t, &provider{origin: "z.test/ehrledger/main", logSigner: a.logSigner}, 1), http.StatusNotFound},
	} {
		res, err := http.Post(b.url()+"/witness/add-checkpoint", "text/plain", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Fatalf("add-checkpoint %.20q...: %d, want %d", c.body, res.StatusCode, c.want)
		}
	}

	// A forks: it signs another tree of the size B last cosigned. B
	// refuses, keeps the evidence and distrusts A.
	if got := submit(t, b, a, func(old int64) string { return fmt.Sprintf("old %d\n\n%s", old, forgeCheckpoint(t, a, old)) }); got != http.StatusUnprocessableEntity {
		t.Fatalf("b answers a forked checkpoint with %d, want 422", got)
	}
	// A's stored tree is tampered with: A signs a larger tree whose proof
	// fails, and which A's log, asked by C, cannot prove either. C refuses
	// too.
	tampered := func(old int64) string {
		eventually(t, "a grows past what c cosigned", func() bool { return a.size(t) > old })
		junk := base64.StdEncoding.EncodeToString(make([]byte, 32))
		return fmt.Sprintf("old %d\n%s\n\n%s", old, junk, forgeCheckpoint(t, a, a.size(t)))
	}
	if got := submit(t, c, a, tampered); got != http.StatusUnprocessableEntity {
		t.Fatalf("c answers a tampered checkpoint with %d, want 422", got)
	}
	for _, w := range []*provider{b, c} {
		found := false
		for _, st := range w.peers(t).Witnessed {
			if st.Origin == a.origin {
				found = !st.Trusted && st.Evidence == 1
			}
		}
		if !found {
			t.Fatalf("%s holds no evidence against a: %+v", w.name, w.peers(t))
		}
		_, metrics := w.get(t, "/metrics")
		if !strings.Contains(metrics, fmt.Sprintf(`ehrledger_witness_evidence_total{origin=%q} 1`, a.origin)) {
			t.Fatalf("%s's evidence metric is missing", w.name)
		}
		_, ev := w.get(t, "/ledger/peers/evidence?origin="+a.origin)
		if !strings.Contains(ev, a.origin) {
			t.Fatalf("%s's evidence: %s", w.name, ev)
		}
	}
	// Neither cosigns A any more: a client that requires a cosignature of
	// B or C cannot verify A's new records, and is told why.
	n := a.size(t) + 3
	eventually(t, "a grows", func() bool { return a.size(t) >= n })
	out, ok := verify(t, bin, "--log", a.url(), "--index", fmt.Sprint(n-1), "--key", a.logVKey, "--witness", b.witnessVKey, "--witness", c.witnessVKey, "--witnesses", "1")
	if ok || !strings.Contains(out, "witnesses have not cosigned it") {
		t.Fatalf("verifying a's record after b and c distrust it: %v\n%s", ok, out)
	}
	eventually(t, "a hears 403 from both its witnesses", func() bool {
		ws := a.peers(t).Witnesses
		return len(ws) == 2 && strings.Contains(ws[0].Error, "403") && strings.Contains(ws[1].Error, "403")
	})
	// A client shown A's forged checkpoint (as a split view would show
	// it) finds no cosignature of the witnesses on it.
	file := filepath.Join(t.TempDir(), "forged")
	os.WriteFile(file, []byte(forgeCheckpoint(t, a, 1)), 0o600)
	rec, proof := filepath.Join(t.TempDir(), "rec"), filepath.Join(t.TempDir(), "proof")
	os.WriteFile(rec, []byte("{}"), 0o600)
	os.WriteFile(proof, []byte(`{"index":0,"size":1,"proof":[]}`), 0o600)
	out, ok = verify(t, bin, "--checkpoint", file, "--record", rec, "--proof", proof, "--index", "0", "--key", a.logVKey, "--witness", b.witnessVKey, "--witness", c.witnessVKey, "--witnesses", "1")
	if ok || !strings.Contains(out, "carries 0 of the 1 witness cosignatures required") {
		t.Fatalf("verifying against a forged checkpoint: %v\n%s", ok, out)
	}
	// B and C still cosign each other.
	b.published(t, b.size(t))
	c.published(t, c.size(t))

	// B's operator looks into the evidence (A's real tree was never
	// forked: the test forged it) and trusts A again; B cosigns A's new
	// checkpoints, and a client requiring B's cosignature verifies A's
	// records again.
	b.admin.do(http.MethodPost, "/ledger/peers/trust?origin="+url.QueryEscape(a.origin), nil).want(t, http.StatusOK)
	c.admin.do(http.MethodPost, "/ledger/peers/trust?origin="+url.QueryEscape(a.origin), nil, "Authorization", "Bearer not-a-token").want(t, http.StatusUnauthorized)
	n = a.size(t)
	a.published(t, n)
	if out, ok := verify(t, bin, "--log", a.url(), "--index", fmt.Sprint(n-1), "--key", a.logVKey, "--witness", b.witnessVKey); !ok {
		t.Fatalf("a's record after b trusts it again: %s", out)
	}

	// Someone holding A's database rewrites A's record of the disclosure
	// to B. A client checking it at A is told it no longer matches the
	// signed tree; B's mirror still holds, and proves, what A recorded.
	db := testdb.Raw(t, "sqlite:"+filepath.Join(a.data, "ehrledger.db"))
	rows, err := db.Query(`SELECT pos, data FROM ledger_tiles WHERE level = -1 AND n = ?`, shared/256)
	if err != nil {
		t.Fatal(err)
	}
	var pos int64 = -1
	var part []byte
	for rows.Next() {
		var p int64
		var d []byte
		rows.Scan(&p, &d)
		if bytes.Contains(d, []byte(`"client":"provider-b"`)) {
			pos, part = p, d
		}
	}
	rows.Close()
	if pos < 0 {
		t.Fatal("a's record of the disclosure to b is not in its stored bundle")
	}
	// A part holds up to 16 records: change the purpose of this one.
	start := bytes.LastIndex(part[:bytes.Index(part, []byte(`"client":"provider-b"`))], []byte(`{"v":`))
	at := start + bytes.Index(part[start:], []byte(`"purpose":"TREAT"`))
	copy(part[at:], `"purpose":"HRSCH"`)
	if _, err := db.Exec(`UPDATE ledger_tiles SET data = ? WHERE level = -1 AND n = ? AND pos = ?`, part, shared/256, pos); err != nil {
		t.Fatal(err)
	}
	if out, ok := verify(t, bin, "--log", a.url(), "--index", fmt.Sprint(shared), "--key", a.logVKey); ok || !strings.Contains(out, "does not lead to") {
		t.Fatalf("a's rewritten record verifies at a: %v\n%s", ok, out)
	}
	out, ok = verify(t, bin, "--log", b.url()+"/mirror/"+a.origin, "--index", fmt.Sprint(shared), "--key", a.logVKey, "--witness", b.witnessVKey, "--witness", c.witnessVKey, "--witnesses", "1")
	if !ok || !strings.Contains(out, `"purpose":"TREAT"`) {
		t.Fatalf("b's mirror of a's record: %v\n%s", ok, out)
	}
}

// shareRecords has b fetch a patient's records from a (and c be refused
// by the patient's consent) and checks the disclosure in a's log through
// b's mirror.
func shareRecords(t *testing.T, bin string, a, b, c *provider) int64 {
	t.Helper()
	fetch := func(p *provider, args ...string) (string, string, error) {
		cmd := exec.Command(bin, append([]string{"fetch", "--key-file", filepath.Join(p.data, "client-key.json")}, args...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	for _, p := range []*provider{b, c} {
		jwks, stderr, err := fetch(p, "--public-key")
		if err != nil {
			t.Fatalf("ehrledger fetch --public-key: %v %s", err, stderr)
		}
		var keys any
		json.Unmarshal([]byte(jwks), &keys)
		a.admin.register(t, "provider-"+p.name, map[string]any{"actor": "Organization/" + p.name, "scope": "system/*.rs", "purposes": []string{"TREAT"}, "jwks": keys})
	}
	a.admin.do(http.MethodPut, "/Patient/shared-x", `{"resourceType":"Patient","id":"shared-x"}`).want(t, http.StatusCreated)
	a.admin.do(http.MethodPut, "/Observation/shared-obs", `{"resourceType":"Observation","id":"shared-obs","status":"final","code":{"text":"HbA1c"},"subject":{"reference":"Patient/shared-x"}}`).want(t, http.StatusCreated)
	consentID, _ := created(t, a.admin, "Consent", consentOf("shared-x", map[string]any{"type": "deny", "provision": []any{
		map[string]any{"type": "permit", "actor": actorRef("Organization/b"),
			"purpose": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}}},
	}}))

	out, stderr, err := fetch(b, "--server", a.url(), "--client", "provider-b", "--purpose", "TREAT", "/Patient/shared-x/$everything")
	if err != nil || !strings.Contains(out, `"shared-obs"`) {
		t.Fatalf("b fetching from a: %v\n%s\n%s", err, stderr, out)
	}
	var n int64
	if _, err := fmt.Sscanf(stderr[strings.Index(stderr, "Ledger-Index: "):], "Ledger-Index: %d", &n); err != nil {
		t.Fatalf("no Ledger-Index from a: %q", stderr)
	}
	if out, stderr, err := fetch(c, "--server", a.url(), "--client", "provider-c", "--purpose", "TREAT", "/Observation/shared-obs"); err == nil || !strings.Contains(stderr, "403") || strings.Contains(out, "HbA1c") {
		t.Fatalf("c, which the consent does not permit, read: %v %s %s", err, stderr, out)
	}
	out, _, _ = fetch(c, "--server", a.url(), "--client", "provider-c", "--purpose", "TREAT", "/Patient/shared-x/Observation")
	if strings.Contains(out, "shared-obs") {
		t.Fatalf("c's search shows what the consent denies it: %s", out)
	}

	// X's accounting at A proves to A's cosigned checkpoint: it verifies
	// offline with the witnesses' cosignatures required.
	r := a.admin.do(http.MethodGet, "/Patient/shared-x/$disclosures", nil).want(t, http.StatusOK)
	file := filepath.Join(t.TempDir(), "accounting.json")
	os.WriteFile(file, r.body, 0o600)
	if out, ok := verify(t, bin, "--accounting", file, "--key", a.logVKey, "--witness", b.witnessVKey, "--witness", c.witnessVKey, "--witnesses", "1"); !ok || !strings.Contains(out, "all 1 disclosures") {
		t.Fatalf("x's accounting at a: %s", out)
	}

	// B checks A's record of the disclosure with its own mirror.
	a.published(t, n+1)
	eventually(t, "b mirrors the disclosure to it", func() bool { return b.mirrors(t, a) > n })
	rec, ok := verify(t, bin, "--log", b.url()+"/mirror/"+a.origin, "--index", fmt.Sprint(n), "--key", a.logVKey, "--witness", b.witnessVKey, "--witness", c.witnessVKey, "--witnesses", "1")
	if !ok {
		t.Fatalf("a's disclosure to b does not verify from b's mirror: %s", rec)
	}
	for _, want := range []string{`"type":"disclosure"`, `"client":"provider-b"`, `"organization":"Organization/b"`, `"purpose":"TREAT"`} {
		if !strings.Contains(rec, want) {
			t.Fatalf("a's record of the disclosure to b lacks %s:\n%s", want, rec)
		}
	}
	// The mirrored leaf names neither the consent nor the data; the
	// opening a keeps says both, and opens the very leaf b mirrors.
	for _, hidden := range []string{"Consent/", "shared-obs", "shared-x"} {
		if strings.Contains(rec, hidden) {
			t.Fatalf("a's record as b mirrors it shows %s:\n%s", hidden, rec)
		}
	}
	var o struct{ Record, Opening string }
	json.Unmarshal(a.admin.do(http.MethodGet, fmt.Sprintf("/ledger/opening/%d", n), nil).want(t, http.StatusOK).body, &o)
	leaf, _ := base64.StdEncoding.DecodeString(o.Record)
	opening, _ := base64.StdEncoding.DecodeString(o.Opening)
	var l struct{ Commitment string }
	json.Unmarshal(leaf, &l)
	opened := openLeaf(t, leaf, opening)
	if !strings.Contains(rec, l.Commitment) || opened.Patient != "Patient/shared-x" || len(opened.Consents) != 1 || opened.Consents[0].Ref != "Consent/"+consentID+"/_history/1" ||
		!slices.ContainsFunc(opened.Resources, func(r struct {
			Ref    string `json:"ref"`
			SHA256 string `json:"sha256"`
		}) bool {
			return strings.HasPrefix(r.Ref, "Observation/shared-obs")
		}) {
		t.Fatalf("a's opening of record %d (%+v) does not open the leaf b mirrors:\n%s", n, opened, rec)
	}
	return n
}

// submit posts to witness w the add-checkpoint body that body makes for
// the size w last cosigned of p's log, again when that size moved
// meanwhile (409), and returns the final status.
func submit(t *testing.T, w, p *provider, body func(old int64) string) int {
	t.Helper()
	for range 20 {
		var old int64
		for _, st := range w.peers(t).Witnessed {
			if st.Origin == p.origin {
				old = st.Cosigned
			}
		}
		res, err := http.Post(w.url()+"/witness/add-checkpoint", "text/plain", strings.NewReader(body(old)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusConflict {
			return res.StatusCode
		}
	}
	t.Fatalf("%s's witness state of %s kept moving", w.name, p.name)
	return 0
}

// forgeCheckpoint signs, with p's log key, a checkpoint of size n whose
// root is not p's tree's.
func forgeCheckpoint(t *testing.T, p *provider, n int64) string {
	root := tlog.Hash{}
	rand.Read(root[:])
	body := log.Checkpoint{Origin: p.origin, Size: uint64(n), Hash: root[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, p.logSigner)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(signed)) + "\n"
}
