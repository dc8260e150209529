package witness_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ehrledger/ehrledger/audit/witness"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/internal/testlog"
	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const origin = "a.test/ehrledger/main"

// memLog is a peer's log kept in memory: enough to sign checkpoints and
// prove them, and to fork.
type memLog struct {
	testlog.Tree
	signer note.Signer
}

func (m *memLog) add(records ...string) {
	for _, r := range records {
		m.Add([]byte(r))
	}
}

func (m *memLog) checkpoint() []byte { return m.Checkpoint(origin, m.signer) }

func (m *memLog) proof(from int64) tlog.TreeProof { return m.Proof(from) }

// request is an add-checkpoint body.
func request(old int64, proof tlog.TreeProof, cp []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(cp)
	return b.Bytes()
}

func status(err error) int {
	var e *witness.Error
	if errors.As(err, &e) {
		return e.Status
	}
	if err == nil {
		return http.StatusOK
	}
	return -1
}

// serveProofs serves GET /ledger/proof/consistency for m, as a peer does.
func serveProofs(t *testing.T, m *memLog) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseInt(r.URL.Query().Get("to"), 10, 64)
		if r.URL.Path != "/ledger/proof/consistency" || to != m.Size() {
			http.NotFound(w, r)
			return
		}
		var out struct {
			Proof [][]byte `json:"proof"`
		}
		for _, h := range m.proof(from) {
			out.Proof = append(out.Proof, h[:])
		}
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestWitness(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		st, _ := testkeys.Open(t, store.Config{DSN: dsn})

		logSigner, logVerifier := testlog.LogKey(t, origin)
		a := &memLog{signer: logSigner}
		cosigner, cosigVerifier := testlog.WitnessKey(t, "w.test/ehrledger/witness")
		evidence := 0
		newWitness := func() *witness.Witness {
			w := witness.New(st, cosigner, []witness.Log{{Origin: origin, Verifier: logVerifier, URL: serveProofs(t, a)}}, nil)
			w.OnEvidence = func(string) { evidence++ }
			return w
		}
		w := newWitness()

		// The cosignature verifies over the checkpoint with the witness's
		// cosignature/v1 key.
		cosigned := func(cp, sig []byte) {
			t.Helper()
			n, err := note.Open(append(bytes.Clone(cp), sig...), note.VerifierList(cosigVerifier))
			if err != nil || len(n.Sigs) != 1 {
				t.Fatalf("the answer %q is not a cosignature of the witness: %v", sig, err)
			}
		}
		a.add("r0", "r1", "r2")
		cp3 := a.checkpoint()
		sig, err := w.Add(ctx, request(0, nil, cp3))
		if err != nil {
			t.Fatalf("first checkpoint: %v", err)
		}
		cosigned(cp3, sig)
		// Cosigning it again changes nothing.
		if sig, err := w.Add(ctx, request(3, nil, cp3)); err != nil {
			t.Fatalf("the same checkpoint again: %v", err)
		} else {
			cosigned(cp3, sig)
		}

		a.add("r3", "r4", "r5", "r6", "r7", "r8")
		cp9 := a.checkpoint()
		if got := status(wErr(w.Add(ctx, request(0, nil, cp9)))); got != http.StatusConflict {
			t.Fatalf("a stale old size: status %d, want 409", got)
		}
		var stale *witness.Error
		_, err = w.Add(ctx, request(0, nil, cp9))
		if !errors.As(err, &stale) || stale.Size != 3 {
			t.Fatalf("the 409 gives size %+v, want 3", err)
		}

		// Refusals, each with its status, and nothing stored.
		forger, _ := testlog.LogKey(t, origin)
		forged := &memLog{Tree: a.Tree, signer: forger}
		unknownSigner, _ := testlog.LogKey(t, "z.test/ehrledger/main")
		unknown, _ := note.Sign(&note.Note{Text: "z.test/ehrledger/main\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"}, unknownSigner)
		badProof := append(tlog.TreeProof{}, a.proof(3)...)
		badProof[0][0] ^= 1
		for _, c := range []struct {
			name string
			body []byte
			want int
		}{
			{"no empty line", []byte("old 3\n"), http.StatusBadRequest},
			{"no old line", request(3, nil, cp9)[6:], http.StatusBadRequest},
			{"old size past the checkpoint", request(10, nil, cp9), http.StatusBadRequest},
			{"a proof line not base64", bytes.Replace(request(3, a.proof(3), cp9), []byte("\n"), []byte("\n!!"), 1), http.StatusBadRequest},
			{"unknown origin", request(0, nil, unknown), http.StatusNotFound},
			{"signed by another key", request(3, a.proof(3), forged.checkpoint()), http.StatusForbidden},
			{"not a signed note", request(3, a.proof(3), []byte(origin+"\n9\nAAAA\n")), http.StatusBadRequest},
			{"a wrong proof", request(3, badProof, cp9), http.StatusUnprocessableEntity},
			{"no proof", request(3, nil, cp9), http.StatusUnprocessableEntity},
		} {
			if got := status(wErr(w.Add(ctx, c.body))); got != c.want {
				t.Errorf("%s: status %d, want %d", c.name, got, c.want)
			}
		}
		if cur, _ := st.Witnessed(ctx, origin); cur.Size != 3 {
			t.Fatalf("after refusals the witness is at size %d, want 3", cur.Size)
		}
		if evidence != 0 {
			t.Fatal("a wrong proof the log itself can fix was kept as evidence")
		}

		// Concurrent requests from one state: exactly one advances it, the
		// others hear 409 (or cosign the same checkpoint again).
		var wg sync.WaitGroup
		results := make([]int, 8)
		for i := range results {
			wg.Go(func() { results[i] = status(wErr(newWitness().Add(ctx, request(3, a.proof(3), cp9)))) })
		}
		wg.Wait()
		for _, r := range results {
			if r != http.StatusOK && r != http.StatusConflict {
				t.Fatalf("concurrent adds: statuses %v", results)
			}
		}
		// The state is durable: a new witness on the same database
		// continues from size 9.
		w = newWitness()
		if got := status(wErr(w.Add(ctx, request(3, a.proof(3), cp9)))); got != http.StatusConflict {
			t.Fatalf("after the concurrent adds, from size 3: status %d, want 409", got)
		}
		latest, err := w.Latest(ctx, origin)
		if err != nil || !bytes.HasPrefix(latest, cp9) {
			t.Fatalf("the latest cosigned checkpoint: %q, %v", latest, err)
		}
		cosigned(cp9, latest[len(cp9):])

		// A fork: the log signs another tree of size 9. The pair is kept
		// as evidence, and the log is untrusted until an operator acts.
		fork := &memLog{signer: logSigner}
		fork.add("r0", "r1", "r2", "r3", "X", "r5", "r6", "r7", "r8")
		if got := status(wErr(w.Add(ctx, request(9, nil, fork.checkpoint())))); got != http.StatusUnprocessableEntity {
			t.Fatalf("a fork of one size: status %d, want 422", got)
		}
		if evidence != 1 {
			t.Fatalf("%d pieces of evidence, want 1", evidence)
		}
		ev, _ := st.EvidenceAgainst(ctx, origin)
		if len(ev) != 1 || !bytes.Equal(ev[0].First[:len(cp9)], cp9) || !bytes.Equal(ev[0].Second, fork.checkpoint()) {
			t.Fatalf("the evidence kept: %+v", ev)
		}
		a.add("r9")
		cp10 := a.checkpoint()
		if got := status(wErr(w.Add(ctx, request(9, a.proof(9), cp10)))); got != http.StatusForbidden {
			t.Fatalf("an untrusted log's next checkpoint: status %d, want 403", got)
		}
		if n, err := st.ClearEvidence(ctx, origin); err != nil || n != 1 {
			t.Fatalf("clear evidence: %d, %v", n, err)
		}
		if _, err := w.Add(ctx, request(9, a.proof(9), cp10)); err != nil {
			t.Fatalf("once an operator trusts the log again: %v", err)
		}

		// A larger tree the log itself cannot prove consistent: evidence.
		fork.add("r9", "r10")
		a.Tree = fork.Tree // the peer now serves the forked tree
		if got := status(wErr(w.Add(ctx, request(10, badProof, fork.checkpoint())))); got != http.StatusUnprocessableEntity {
			t.Fatalf("an inconsistent larger tree: status %d, want 422", got)
		}
		if evidence != 2 {
			t.Fatalf("%d pieces of evidence, want 2", evidence)
		}
		if untrusted, _ := st.Untrusted(ctx, origin); !untrusted {
			t.Fatal("the log is trusted despite the evidence")
		}
	})
}

// wErr drops the answer of Add.
func wErr(_ []byte, err error) error { return err }

func TestParseLimits(t *testing.T) {
	w := witness.New(nil, nil, nil, nil)
	long := "old 1\n" + strings.Repeat(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n", 64) + "\n" + origin + "\n2\n"
	if got := status(wErr(w.Add(context.Background(), []byte(long)))); got != http.StatusBadRequest {
		t.Fatalf("64 proof lines: status %d, want 400", got)
	}
}
