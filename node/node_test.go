package node_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/node"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

// TestRunStopsEverything runs a node, then ends its context: Run returns
// once HTTP, the workers, the ledger and the store are all stopped; the
// port no longer answers, the ledger takes no record, the store is
// closed. (The binary's TestGracefulShutdownAndRestart checks that a
// request in flight finishes with its record.)
func TestRunStopsEverything(t *testing.T) {
	ctx := context.Background()
	kms, err := keys.OpenLocal(filepath.Join(t.TempDir(), "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	const origin = "test.example/ehrledger/node"
	skey, vkey, _ := note.GenerateKey(rand.Reader, origin)
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	n, err := node.Open(ctx, node.Config{Store: store.Config{DSN: testdb.SQLite(t)}, KMS: kms,
		Ledger: audit.Config{Origin: origin, Signer: signer, Verifier: verifier}, LedgerKey: vkey,
		Server: server.Config{BaseURL: base, InsecureNoAuth: true}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- n.Run(rctx, ln) }()
	res, err := http.Get(base + "/healthz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz while running: %v %v", err, res)
	}
	res.Body.Close()
	if _, err := n.Ledger.Append(ctx, []store.LedgerEntry{{Record: []byte(`{"v":2,"type":"write","time":"2026-12-08T00:00:00Z"}`)}}); err != nil {
		t.Fatalf("append while running: %v", err)
	}

	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the port still answers after Run returned")
	}
	if _, err := n.Ledger.Append(ctx, []store.LedgerEntry{{Record: []byte(`{"v":2,"type":"write","time":"2026-12-08T00:00:01Z"}`)}}); !errors.Is(err, audit.ErrStopped) {
		t.Errorf("append after Run returned: %v, want ErrStopped", err)
	}
	if err := n.Store.Ping(ctx); err == nil {
		t.Error("the store is still open after Run returned")
	}
}
