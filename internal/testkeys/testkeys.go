// Package testkeys opens stores for tests the way the server runs them:
// with a keyring over a real local KMS (a key file in the test's temp
// directory) sealing every body and blinding PHI search values, and a
// running ledger.
package testkeys

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/node"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/mod/sumdb/note"
)

// keyFile is the key file of a database: one per DSN in a directory that
// lives as long as the test process, so that a test (or a subtest) that
// reopens a database finds its keys.
func keyFile(t testing.TB, dsn string) string {
	dirOnce.Do(func() { dir, dirErr = os.MkdirTemp("", "ehrledger-testkeys-") })
	if dirErr != nil {
		t.Fatal(dirErr)
	}
	sum := sha256.Sum256([]byte(dsn))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".json")
}

var (
	dirOnce sync.Once
	dir     string
	dirErr  error
)

// Open opens the store cfg names, closed when the test ends, with a
// local-KMS keyring in front of it.
func Open(t testing.TB, cfg store.Config) (*store.Store, *keys.Keyring) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	kms, err := keys.OpenLocal(keyFile(t, cfg.DSN))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := server.OpenKeys(ctx, st, kms, keys.Options{})
	if err != nil {
		t.Fatalf("open keys: %v", err)
	}
	return st, kr
}

// ledgerOrigin is the origin of the tests' ledgers.
const ledgerOrigin = "test.example/ehrledger/main"

var ledgerKeys sync.Map // database (its *store.Store, or its DSN) → [signer, verifier] note keys

// ledgerKey is the checkpoint key of a database: one per database, so
// that a test that serves a database again opens its ledger with the key
// that signed it.
func ledgerKey(t testing.TB, db any) (note.Signer, note.Verifier, string) {
	pair, _ := ledgerKeys.LoadOrStore(db, func() [2]string {
		skey, vkey, err := note.GenerateKey(rand.Reader, ledgerOrigin)
		if err != nil {
			t.Fatal(err)
		}
		return [2]string{skey, vkey}
	}())
	skey, vkey := pair.([2]string)[0], pair.([2]string)[1]
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	return signer, verifier, vkey
}

// Ledger opens the ledger in st with a fresh checkpoint key and runs it
// until the test ends. It returns what server.Config wants.
func Ledger(t testing.TB, st *store.Store, kr *keys.Keyring) (*audit.Log, string) {
	t.Helper()
	signer, verifier, vkey := ledgerKey(t, st)
	l, err := server.OpenLedger(context.Background(), st, kr, audit.Config{Origin: ledgerOrigin, Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l, vkey
}

// Authority is an embedded authorization server with a fresh signing key
// and the embedded mode's admin client.
func Authority(t testing.TB) *server.Authority {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &server.Authority{Key: &jose.JSONWebKey{Key: priv, KeyID: "test"}, Bootstrap: []auth.Client{server.AdminClient()}}
}

// Token mints an access token of a's server over st, for the server at
// base, valid for an hour, as "ehrledger token" does.
func Token(t testing.TB, st *store.Store, a *server.Authority, base string, req auth.TokenRequest) string {
	t.Helper()
	if req.Lifetime == 0 {
		req.Lifetime = auth.MaxLifetime
	}
	tok, err := server.MintToken(context.Background(), st, a, base, req, nil)
	if err != nil {
		t.Fatalf("mint a token for %s: %v", req.Client, err)
	}
	return tok.AccessToken
}

// AdminScope is the scope of tests that act as the provider's
// administrator: every resource interaction and the administration.
const AdminScope = "system/*.cruds " + auth.AdminScope

// Bearer returns a copy of c whose requests carry token.
func Bearer(c *http.Client, token string) *http.Client {
	cc := *c
	next := cc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cc.Transport = bearer{token: token, next: next}
	return &cc
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// ReadBody reads the current body of a stored resource, opened, straight
// from the store.
func ReadBody(t testing.TB, st *store.Store, typ, id string) []byte {
	t.Helper()
	v, err := st.Read(context.Background(), typ, id)
	if err != nil {
		t.Fatalf("read %s/%s: %v", typ, id, err)
	}
	return v.Body
}

// Node builds, as "ehrledger serve" does (package node), a server of the
// database dsn on a loopback port, with the database's key file, a
// checkpoint key of its own (the same each time the test serves it) and,
// unless cfg has one, an embedded authorization server. It runs until the
// test ends, and cfg.BaseURL is the port's. It returns the node and its
// base URL.
func Node(t testing.TB, dsn string, cfg server.Config, logger *slog.Logger) (*node.Node, string) {
	t.Helper()
	ctx := context.Background()
	signer, verifier, vkey := ledgerKey(t, dsn)
	kms, err := keys.OpenLocal(keyFile(t, dsn))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Authority == nil {
		cfg.Authority = Authority(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseURL = "http://" + ln.Addr().String()
	n, err := node.Open(ctx, node.Config{Store: store.Config{DSN: dsn}, KMS: kms, Logger: logger,
		Ledger: audit.Config{Origin: ledgerOrigin, Signer: signer, Verifier: verifier}, LedgerKey: vkey, Server: cfg})
	if err != nil {
		ln.Close()
		t.Fatalf("open node: %v", err)
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- n.Run(rctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("the node stopped with %v", err)
		}
	})
	return n, cfg.BaseURL
}
