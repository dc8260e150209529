// Package benchenv is what the load commands under bench/ share: fresh
// databases, an in-process server on a loopback port, and timed runs of
// concurrent clients with their latency quantiles.
package benchenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/keys"
	"golang.org/x/mod/sumdb/note"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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

// Database creates a fresh database of the kind named ("sqlite" or
// "postgres", the latter on the server pgAdmin names) and returns its DSN
// and a cleanup that drops it.
func Database(ctx context.Context, kind, pgAdmin string) (string, func(), error) {
	switch kind {
	case "sqlite":
		dir, err := os.MkdirTemp("", "ehrledger-bench-")
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
		name := "ehr_bench_" + hex.EncodeToString(b[:])
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

// Start serves a store on a loopback port, sealed as in production under
// a local KMS; stop shuts both down.
func Start(ctx context.Context, dsn string) (srv *server.Server, base string, stop func(), err error) {
	srv, base, _, stop, err = StartKeys(ctx, dsn, "sealed")
	return srv, base, stop, err
}

// StartKeys is Start with the keys chosen by mode: "sealed" (a local KMS
// key file), "vault" (the Vault that EHR_TEST_VAULT_ADDR and
// EHR_TEST_VAULT_TOKEN name) or "plain", the baseline: the same key
// bookkeeping with a pass-through cipher and search values in clear.
func StartKeys(ctx context.Context, dsn, mode string) (srv *server.Server, base string, kr *keys.Keyring, stop func(), err error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{DSN: dsn, Logger: log})
	if err != nil {
		return nil, "", nil, nil, err
	}
	keyDir, err := os.MkdirTemp("", "ehrledger-bench-keys")
	if err != nil {
		return nil, "", nil, nil, err
	}
	var kms keys.KMS
	switch mode {
	case "sealed", "plain":
		kms, err = keys.OpenLocal(filepath.Join(keyDir, "keys.json"))
	case "vault":
		kms, err = keys.OpenVault(ctx, keys.VaultConfig{Address: os.Getenv("EHR_TEST_VAULT_ADDR"), Token: os.Getenv("EHR_TEST_VAULT_TOKEN"),
			Key: fmt.Sprintf("bench-%d", time.Now().UnixNano())})
	default:
		err = fmt.Errorf("unknown key mode %q (sealed, vault, plain)", mode)
	}
	if err != nil {
		return nil, "", nil, nil, err
	}
	kr, err = server.OpenKeys(ctx, st, kms, keys.Options{})
	if err != nil {
		return nil, "", nil, nil, err
	}
	if mode == "plain" {
		st.UseKeys(passThrough{}, nil)
	}
	const origin = "bench.example/ehrledger/main"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, "", nil, nil, err
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	ledger, pseudonyms, err := server.OpenLedger(ctx, st, kr, audit.Config{Origin: origin, Signer: signer, Verifier: verifier, Logger: log})
	if err != nil {
		return nil, "", nil, nil, err
	}
	lctx, stopLedger := context.WithCancel(context.Background())
	ledgerDone := make(chan struct{})
	go func() { ledger.Run(lctx); close(ledgerDone) }()
	srv, err = server.New(server.Config{Store: st, Keys: kr, Ledger: ledger, Pseudonyms: pseudonyms, LedgerKey: vkey,
		Logger: log, Timeout: 10 * time.Minute, MaxBodyBytes: 256 << 20})
	if err != nil {
		stopLedger()
		return nil, "", nil, nil, err
	}
	auditDone := make(chan struct{})
	go func() { srv.RunAuditEvents(lctx); close(auditDone) }()
	base, stopHTTP, err := Listen(srv)
	if err != nil {
		stopLedger()
		return nil, "", nil, nil, err
	}
	return srv, base, kr, func() {
		stopHTTP()
		stopLedger()
		<-ledgerDone
		<-auditDone
		st.Close()
		os.RemoveAll(keyDir)
	}, nil
}

// passThrough is the baseline cipher: bodies stored as they are.
type passThrough struct{}

func (passThrough) Keys(_ context.Context, wrapped []store.WrappedKey) (map[string]store.DataKey, error) {
	out := make(map[string]store.DataKey, len(wrapped))
	for _, w := range wrapped {
		out[w.Owner] = plainKey{}
	}
	return out, nil
}

type plainKey struct{}

func (plainKey) Seal(_, plaintext []byte) ([]byte, error) { return plaintext, nil }
func (plainKey) Open(_, sealed []byte) ([]byte, error)    { return sealed, nil }
func (plainKey) Erased() bool                             { return false }

// Listen serves h on a loopback port.
func Listen(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), func() { hs.Close() }, nil
}

// Client is an HTTP client for many concurrent loopback requests.
func Client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
}

// Result is a timed run: how many operations, how many failed, how long,
// and each one's latency, sorted.
type Result struct {
	N, Errors int
	Elapsed   time.Duration
	Latencies []time.Duration
}

// Rate is operations per second.
func (r Result) Rate() float64 { return float64(r.N) / r.Elapsed.Seconds() }

// Quantile returns the q-quantile latency.
func (r Result) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(r.Latencies)))) - 1
	return r.Latencies[max(i, 0)]
}

// Millis formats a duration as milliseconds.
func Millis(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// Measure runs c workers calling op for d; op returns an error for a
// failed operation.
func Measure(d time.Duration, c int, op func(worker int) error) Result {
	var mu sync.Mutex
	var all Result
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			for time.Now().Before(deadline) {
				t := time.Now()
				if err := op(w); err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all.Latencies = append(all.Latencies, lat...)
			all.Errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	all.Elapsed = time.Since(start)
	all.N = len(all.Latencies)
	slices.Sort(all.Latencies)
	return all
}

// Do sends a request and drains the answer, failing on any status of 300
// or above.
func Do(client *http.Client, req *http.Request) error {
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: status %d", req.Method, req.URL.Path, res.StatusCode)
	}
	return nil
}

// CPUProfile starts a CPU profile into path ("" for none) and returns its
// stop.
func CPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// Concurrency reads a comma-separated list of concurrency levels.
func Concurrency(list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad concurrency %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}
