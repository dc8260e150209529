package witness_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ehrledger/ehrledger/audit/witness"
	"github.com/ehrledger/ehrledger/internal/testlog"
	"github.com/ehrledger/ehrledger/store"
)

// memStore is a witness.Store in memory, for the witness's own logic;
// TestWitness runs it over the SQL store on every database.
type memStore struct {
	mu       sync.Mutex
	states   map[string]store.WitnessState
	evidence []store.Evidence
}

func (m *memStore) Witnessed(_ context.Context, origin string) (store.WitnessState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.states[origin]
	if !ok {
		return store.WitnessState{}, store.ErrNotFound
	}
	return s, nil
}

func (m *memStore) AdvanceWitness(_ context.Context, from int64, next store.WitnessState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.states[next.Origin].Size != from {
		return store.ErrWitnessMoved
	}
	m.states[next.Origin] = next
	return nil
}

func (m *memStore) Untrusted(_ context.Context, origin string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.evidence {
		if e.Origin == origin && !e.Cleared {
			return true, nil
		}
	}
	return false, nil
}

func (m *memStore) AddEvidence(_ context.Context, e store.Evidence) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.evidence = append(m.evidence, e)
	return nil
}

// TestWitnessInMemory runs the witness over a store in memory, as the
// interface it declares allows: it cosigns a log's growth, keeps a fork
// as evidence and then refuses the log.
func TestWitnessInMemory(t *testing.T) {
	ctx := context.Background()
	st := &memStore{states: map[string]store.WitnessState{}}
	logSigner, logVerifier := testlog.LogKey(t, origin)
	a := &memLog{signer: logSigner}
	cosigner, _ := testlog.WitnessKey(t, "w.test/ehrledger/witness")
	w := witness.New(st, cosigner, []witness.Log{{Origin: origin, Verifier: logVerifier, URL: serveProofs(t, a)}}, nil)

	a.add("r0", "r1", "r2")
	cp3 := a.checkpoint()
	if _, err := w.Add(ctx, request(0, nil, cp3)); err != nil {
		t.Fatalf("first checkpoint: %v", err)
	}
	a.add("r3")
	if _, err := w.Add(ctx, request(3, a.proof(3), a.checkpoint())); err != nil {
		t.Fatalf("the log's growth: %v", err)
	}
	if got := st.states[origin].Size; got != 4 {
		t.Fatalf("the witness stands at size %d, want 4", got)
	}
	fork := &memLog{signer: logSigner}
	fork.add("r0", "r1", "r2", "X")
	if got := status(wErr(w.Add(ctx, request(4, nil, fork.checkpoint())))); got != http.StatusUnprocessableEntity {
		t.Fatalf("a fork of one size: status %d, want 422", got)
	}
	if len(st.evidence) != 1 {
		t.Fatalf("%d pieces of evidence, want 1", len(st.evidence))
	}
	a.add("r4")
	if got := status(wErr(w.Add(ctx, request(4, a.proof(4), a.checkpoint())))); got != http.StatusForbidden {
		t.Fatalf("an untrusted log's next checkpoint: status %d, want 403", got)
	}
}

// TestAddCheckpointHandler speaks C2SP tlog-witness to the witness's own
// handler: a cosignature, then 409 with the size it stands at, 405 for a
// GET.
func TestAddCheckpointHandler(t *testing.T) {
	st := &memStore{states: map[string]store.WitnessState{}}
	logSigner, logVerifier := testlog.LogKey(t, origin)
	a := &memLog{signer: logSigner}
	cosigner, _ := testlog.WitnessKey(t, "w.test/ehrledger/witness")
	w := witness.New(st, cosigner, []witness.Log{{Origin: origin, Verifier: logVerifier, URL: serveProofs(t, a)}}, nil)
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	a.add("r0", "r1")
	post := func(body []byte) (int, string, string) {
		res, err := http.Post(srv.URL, "text/plain", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), string(b)
	}
	if code, _, body := post(request(0, nil, a.checkpoint())); code != http.StatusOK || !strings.HasPrefix(body, "— w.test/ehrledger/witness ") {
		t.Fatalf("a first checkpoint: %d %q", code, body)
	}
	a.add("r2")
	if code, typ, body := post(request(0, nil, a.checkpoint())); code != http.StatusConflict || typ != "text/x.tlog.size" || body != "2\n" {
		t.Fatalf("a stale old size: %d %q %q, want 409 text/x.tlog.size 2", code, typ, body)
	}
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("a GET: %d", res.StatusCode)
	}
}
