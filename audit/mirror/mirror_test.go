package mirror_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/mirror"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/internal/testlog"
	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const origin = "a.test/ehrledger/main"

// peer serves a log kept in memory as a provider serves its own: the
// cosigned checkpoint, hash tiles and entry bundles.
type peer struct {
	mu       sync.Mutex
	tree     testlog.Tree
	signer   note.Signer
	cosigner note.Signer // nil: the checkpoint is not cosigned
	badEntry int64       // serve this record altered (-1: none)
}

func (p *peer) add(n int, tag string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range n {
		p.tree.Add(fmt.Appendf(nil, `{"v":1,"type":"disclosure","n":"%s-%d"}`, tag, p.tree.Size()))
	}
}

func (p *peer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	size := p.tree.Size()
	switch rest := strings.TrimPrefix(r.URL.Path, "/ledger/"); {
	case rest == "checkpoint/cosigned":
		signers := []note.Signer{p.signer}
		if p.cosigner != nil {
			signers = append(signers, p.cosigner)
		}
		w.Write(p.tree.Checkpoint(origin, signers...))
	case strings.HasPrefix(rest, "tile/"):
		t, err := audit.ParseTilePath(strings.TrimPrefix(rest, "tile/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if t.L == -1 {
			var out []byte
			for i := t.N * 256; i < t.N*256+int64(t.W) && i < size; i++ {
				rec := p.tree.Records[i]
				if i == p.badEntry {
					rec = []byte(`{"v":1,"altered":true}`)
				}
				out = binary.BigEndian.AppendUint16(out, uint16(len(rec)))
				out = append(out, rec...)
			}
			w.Write(out)
			return
		}
		data, err := tlog.ReadTileData(t, p.tree.Reader())
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	default:
		http.NotFound(w, r)
	}
}

func TestMirror(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, _ := testkeys.Open(t, store.Config{DSN: dsn})
		signer, verifier := testlog.LogKey(t, origin)
		cosigner, cosigVerifier := testlog.WitnessKey(t, "w.test/ehrledger/witness")

		p := &peer{signer: signer, badEntry: -1}
		srv := httptest.NewServer(p)
		t.Cleanup(srv.Close)
		evidence := 0
		m := mirror.New(st, []mirror.Peer{{Origin: origin, Verifier: verifier, URL: srv.URL}}, []note.Verifier{cosigVerifier}, nil)
		m.OnEvidence = func(string) { evidence++ }

		// Not cosigned by a known witness: nothing is copied.
		p.add(700, "r")
		if _, err := m.Sync(ctx, origin); err == nil || !strings.Contains(err.Error(), "cosignature") {
			t.Fatalf("an uncosigned checkpoint: %v", err)
		}
		p.cosigner = cosigner

		// A record altered in its bundle is refused, and is no evidence.
		p.badEntry = 300
		if _, err := m.Sync(ctx, origin); err == nil || !strings.Contains(err.Error(), "record 300") {
			t.Fatalf("an altered record: %v", err)
		}
		p.badEntry = -1
		if _, err := st.Mirrored(ctx, origin); err != store.ErrNotFound {
			t.Fatalf("a refused copy left a state: %v", err)
		}

		// The whole log, then what it grew by (across the 4,096-record
		// steps and a partial bundle). The copy serves the peer's bytes.
		if n, err := m.Sync(ctx, origin); err != nil || n != 700 {
			t.Fatalf("first sync: %d records, %v", n, err)
		}
		// A record copied before, in a bundle that was partial, altered
		// when the bundle is fetched wider: refused too.
		p.badEntry = 600
		p.add(10, "r")
		if _, err := m.Sync(ctx, origin); err == nil || !strings.Contains(err.Error(), "record 600") {
			t.Fatalf("an altered record in a widened bundle: %v", err)
		}
		p.badEntry = -1
		p.add(4490, "r")
		if n, err := m.Sync(ctx, origin); err != nil || n != 4500 {
			t.Fatalf("second sync: %d records, %v", n, err)
		}
		for _, tile := range []tlog.Tile{{H: 8, L: -1, N: 2, W: 256}, {H: 8, L: -1, N: 20, W: 5200 - 20*256}, {H: 8, L: 0, N: 19, W: 256}, {H: 8, L: 1, N: 0, W: 20}} {
			got, err := m.Tile(ctx, origin, tile)
			if err != nil {
				t.Fatalf("tile %v: %v", tile, err)
			}
			want := httptest.NewRecorder()
			path := "/ledger/tile/" + strings.TrimPrefix(strings.Replace(tile.Path(), "tile/8/data/", "tile/8/entries/", 1), "tile/8/")
			p.ServeHTTP(want, httptest.NewRequest(http.MethodGet, path, nil))
			if !bytes.Equal(got, want.Body.Bytes()) {
				t.Fatalf("tile %v of the copy differs from the peer's", tile)
			}
		}
		if _, err := m.Tile(ctx, origin, tlog.Tile{H: 8, L: -1, N: 21, W: 1}); err != store.ErrNotFound {
			t.Fatalf("a tile past the copy: %v", err)
		}

		// A fork: the peer now serves another tree that does not hold the
		// one copied. The pair is evidence; the copy stays as it was.
		fork := &peer{signer: signer, cosigner: cosigner, badEntry: -1}
		fork.add(5300, "x")
		p.mu.Lock()
		p.tree = fork.tree
		p.mu.Unlock()
		if _, err := m.Sync(ctx, origin); err == nil || evidence != 1 {
			t.Fatalf("a forked tree: %v, %d pieces of evidence", err, evidence)
		}
		if cur, _ := st.Mirrored(ctx, origin); cur.Size != 5200 {
			t.Fatalf("the copy moved to %d after a fork", cur.Size)
		}
		if _, err := m.Sync(ctx, origin); err == nil || !strings.Contains(err.Error(), "untrusted") {
			t.Fatalf("syncing an untrusted log: %v", err)
		}
	})
}
