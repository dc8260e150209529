// Package benchenv is what the load commands under bench/ share: fresh
// databases, an in-process server on a loopback port, and timed runs of
// concurrent clients with their latency quantiles.
package benchenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/node"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
)

var (
	_ store.Sealer  = passThrough{}
	_ store.DataKey = plainKey{}
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

// Options choose how a server is set up for a run.
type Options struct {
	// Keys is "sealed" (the default: a local KMS key file), "vault" (the
	// Vault that EHR_TEST_VAULT_ADDR and EHR_TEST_VAULT_TOKEN name) or
	// "plain", the baseline: the same key bookkeeping with a pass-through
	// cipher and search values in clear.
	Keys string
	// NoAuth serves without access tokens (--insecure-no-auth), the
	// baseline of authentication's cost.
	NoAuth bool
}

// Env is a server started for a run.
type Env struct {
	Server *server.Server
	Base   string
	Keys   *keys.Keyring
	// Client sends many concurrent loopback requests, each with a token
	// of the admin client (none when authentication is off), renewed
	// before it expires.
	Client *http.Client
	Stop   func()
}

// Start serves a store on a loopback port, sealed as in production under
// a local KMS unless opt says otherwise, with its embedded authorization
// server, built and run as "ehrledger serve" is (package node);
// Env.Stop shuts it all down.
func Start(ctx context.Context, dsn string, opt Options) (*Env, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	keyDir, err := os.MkdirTemp("", "ehrledger-bench-keys")
	if err != nil {
		return nil, err
	}
	var kms keys.KMS
	switch opt.Keys {
	case "sealed", "plain", "":
		kms, err = keys.OpenLocal(filepath.Join(keyDir, "keys.json"))
	case "vault":
		kms, err = keys.OpenVault(ctx, keys.VaultConfig{Address: os.Getenv("EHR_TEST_VAULT_ADDR"), Token: os.Getenv("EHR_TEST_VAULT_TOKEN"),
			Key: fmt.Sprintf("bench-%d", time.Now().UnixNano())})
	default:
		err = fmt.Errorf("unknown key mode %q (sealed, vault, plain)", opt.Keys)
	}
	if err != nil {
		return nil, err
	}
	const origin = "bench.example/ehrledger/main"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, err
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	authKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	authority := &server.Authority{Key: &jose.JSONWebKey{Key: authKey, KeyID: "bench"}, Bootstrap: []auth.Client{server.AdminClient()}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	n, err := node.Open(ctx, node.Config{Store: store.Config{DSN: dsn}, KMS: kms, Logger: log,
		Ledger: audit.Config{Origin: origin, Signer: signer, Verifier: verifier}, LedgerKey: vkey,
		Server: server.Config{BaseURL: base, Timeout: 10 * time.Minute, MaxBodyBytes: 256 << 20, Authority: authority, InsecureNoAuth: opt.NoAuth}})
	if err != nil {
		ln.Close()
		return nil, err
	}
	if opt.Keys == "plain" {
		n.Store.UseKeys(passThrough{}, nil)
	}
	rctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { n.Run(rctx, ln); close(ran) }()
	client := Client()
	if !opt.NoAuth {
		client.Transport = &bearer{next: client.Transport, mint: func() (*auth.Token, error) {
			return server.MintToken(ctx, n.Store, authority, base, auth.TokenRequest{Client: "admin", Scope: "system/*.cruds " + auth.AdminScope, Lifetime: auth.MaxLifetime}, nil)
		}}
	}
	return &Env{Server: n.Server, Base: base, Keys: n.Keys, Client: client, Stop: func() {
		stop()
		<-ran
		os.RemoveAll(keyDir)
	}}, nil
}

// bearer adds an access token to each request, minting a new one when
// the one it holds has less than a quarter of its life left.
type bearer struct {
	next http.RoundTripper
	mint func() (*auth.Token, error)

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	b.mu.Lock()
	if time.Now().After(b.renewAt) {
		tok, err := b.mint()
		if err != nil {
			b.mu.Unlock()
			return nil, err
		}
		life := time.Duration(tok.ExpiresIn) * time.Second
		b.token, b.renewAt = tok.AccessToken, time.Now().Add(life*3/4)
	}
	token := b.token
	b.mu.Unlock()
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+token)
	return b.next.RoundTrip(r)
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
	return "http://" + ln.Addr().String(), serve(ln, h), nil
}

// serve serves h on ln until the function it returns is called.
func serve(ln net.Listener, h http.Handler) func() {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return func() { hs.Close() }
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
