// Package witness makes the providers' ledgers keep each other honest
// (docs/peers.md): each provider cosigns its peers' checkpoints as a C2SP
// tlog-witness, only when they are consistent with the last one it
// cosigned, keeps evidence when two of them cannot both be true, and
// gathers its witnesses' cosignatures on its own log's checkpoints.
package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/store"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Log is a peer's log this provider witnesses.
type Log struct {
	// Origin names the log in its checkpoints.
	Origin string
	// Verifier checks the log's checkpoint signatures.
	Verifier note.Verifier
	// URL is the peer's base URL; the witness asks its /ledger for a
	// consistency proof of its own when one submitted does not verify.
	URL string
}

// Store is what a witness keeps: how far it has cosigned each peer's log,
// and the evidence against logs that signed two incompatible checkpoints
// (package store implements it).
type Store interface {
	Witnessed(ctx context.Context, origin string) (store.WitnessState, error)
	AdvanceWitness(ctx context.Context, from int64, next store.WitnessState) error
	Untrusted(ctx context.Context, origin string) (bool, error)
	audit.EvidenceStore
}

// Witness cosigns the checkpoints of its peers' logs. Its state lives in
// the database, so every replica of a provider answers alike.
type Witness struct {
	st     Store
	signer note.Signer
	logs   map[string]Log
	client *http.Client
	log    *slog.Logger
	// OnEvidence, when set, is called once for each piece of evidence kept.
	OnEvidence func(origin string)
}

// New returns a witness signing with signer (a cosignature/v1 key) for
// logs.
func New(st Store, signer note.Signer, logs []Log, logger *slog.Logger) *Witness {
	if logger == nil {
		logger = slog.Default()
	}
	w := &Witness{st: st, signer: signer, logs: map[string]Log{}, client: &http.Client{Timeout: 10 * time.Second}, log: logger}
	for _, l := range logs {
		w.logs[l.Origin] = l
	}
	return w
}

// Name is the witness's key name.
func (w *Witness) Name() string { return w.signer.Name() }

// Error is a refused add-checkpoint request, with the HTTP status C2SP
// tlog-witness gives it.
type Error struct {
	Status int
	Msg    string
	// Size is, for a 409 on a stale old size, the size of the checkpoint
	// the witness last cosigned.
	Size int64
}

func (e *Error) Error() string { return e.Msg }

func refuse(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// MaxRequest bounds an add-checkpoint request body; maxProof its proof
// lines (a consistency proof of a tree of 2⁶³ leaves has fewer).
const (
	MaxRequest = 16 << 10
	maxProof   = 63
)

// emptyRoot is the root of the empty tree (RFC 6962: SHA-256 of nothing).
var emptyRoot = tlog.Hash(sha256.Sum256(nil))

// request is a parsed add-checkpoint body.
type request struct {
	old   int64
	proof tlog.TreeProof
	note  []byte
}

func parseRequest(body []byte) (*request, error) {
	head, cp, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return nil, refuse(http.StatusBadRequest, "the body is not an old size line, proof lines, an empty line and a checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	n, ok := strings.CutPrefix(lines[0], "old ")
	old, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || old < 0 || strconv.FormatInt(old, 10) != n {
		return nil, refuse(http.StatusBadRequest, "the first line is not \"old <size>\"")
	}
	r := &request{old: old, note: cp}
	if len(lines)-1 > maxProof {
		return nil, refuse(http.StatusBadRequest, "the proof has %d lines, at most %d are possible", len(lines)-1, maxProof)
	}
	for i, l := range lines[1:] {
		h, err := base64.StdEncoding.DecodeString(l)
		if err != nil || len(h) != tlog.HashSize || base64.StdEncoding.EncodeToString(h) != l {
			return nil, refuse(http.StatusBadRequest, "proof line %d is not the base64 of a 32-byte hash", i+1)
		}
		r.proof = append(r.proof, tlog.Hash(h))
	}
	return r, nil
}

// checkpoint is a verified checkpoint of a known log.
type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
	text   string // what was signed
	signed []byte // the whole note as received
}

// open verifies a checkpoint note against the known logs.
func (w *Witness) open(signed []byte) (*checkpoint, error) {
	origin, _, _ := bytes.Cut(signed, []byte("\n"))
	l, ok := w.logs[string(origin)]
	if !ok {
		return nil, refuse(http.StatusNotFound, "this witness does not witness the log %q", origin)
	}
	n, err := note.Open(signed, note.VerifierList(l.Verifier))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified), errors.As(err, &invalid):
		return nil, refuse(http.StatusForbidden, "the checkpoint carries no valid signature of %s", l.Origin)
	case err != nil:
		return nil, refuse(http.StatusBadRequest, "the checkpoint is not a signed note: %v", err)
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal([]byte(n.Text)); err != nil || c.Origin != l.Origin || len(c.Hash) != tlog.HashSize || c.Size > 1<<62 {
		return nil, refuse(http.StatusBadRequest, "the checkpoint is malformed")
	}
	cp := &checkpoint{origin: c.Origin, size: int64(c.Size), root: tlog.Hash(c.Hash), text: n.Text, signed: signed}
	if cp.size == 0 && cp.root != emptyRoot {
		return nil, refuse(http.StatusUnprocessableEntity, "a checkpoint of the empty tree must carry its root")
	}
	return cp, nil
}

// Add answers a C2SP tlog-witness add-checkpoint request: it cosigns the
// checkpoint when it is consistent with the last one cosigned for its log
// and returns the cosignature lines; the new state is durable first. A
// refusal is an *Error.
func (w *Witness) Add(ctx context.Context, body []byte) ([]byte, error) {
	req, err := parseRequest(body)
	if err != nil {
		return nil, err
	}
	cp, err := w.open(req.note)
	if err != nil {
		return nil, err
	}
	if req.old > cp.size {
		return nil, refuse(http.StatusBadRequest, "the old size %d is larger than the checkpoint's %d", req.old, cp.size)
	}
	if untrusted, err := w.st.Untrusted(ctx, cp.origin); err != nil {
		return nil, err
	} else if untrusted {
		return nil, refuse(http.StatusForbidden, "the log %s is untrusted: this witness holds evidence against it", cp.origin)
	}
	cur, err := w.st.Witnessed(ctx, cp.origin)
	switch {
	case errors.Is(err, store.ErrNotFound):
		cur = store.WitnessState{Origin: cp.origin, Root: emptyRoot[:]}
	case err != nil:
		return nil, err
	}
	if req.old != cur.Size {
		return nil, &Error{Status: http.StatusConflict, Msg: fmt.Sprintf("this witness last cosigned size %d", cur.Size), Size: cur.Size}
	}
	if req.old == 0 && len(req.proof) > 0 {
		return nil, refuse(http.StatusUnprocessableEntity, "a proof from the empty tree must be empty")
	}
	if cp.size == cur.Size {
		if !bytes.Equal(cp.root[:], cur.Root) {
			// One log, one size, two roots: a fork.
			w.keepEvidence(ctx, cp.origin, "two checkpoints of one size with different roots", cur.Note, cp.signed)
			return nil, refuse(http.StatusUnprocessableEntity, "the checkpoint's root differs from the one cosigned for size %d", cur.Size)
		}
	} else if req.old > 0 {
		if tlog.CheckTree(req.proof, cp.size, cp.root, cur.Size, tlog.Hash(cur.Root)) != nil {
			w.checkWithLog(ctx, cp, cur)
			return nil, refuse(http.StatusUnprocessableEntity, "the proof does not show size %d consistent with size %d", cp.size, cur.Size)
		}
	}
	sig, err := w.cosign(cp)
	if err != nil {
		return nil, err
	}
	if cp.size == cur.Size {
		return sig, nil // cosigned already: nothing changes
	}
	next := store.WitnessState{Origin: cp.origin, Size: cp.size, Root: cp.root[:], Note: append(bytes.Clone(cp.signed), sig...)}
	if err := w.st.AdvanceWitness(ctx, cur.Size, next); errors.Is(err, store.ErrWitnessMoved) {
		now, err := w.st.Witnessed(ctx, cp.origin)
		if err != nil {
			return nil, err
		}
		return nil, &Error{Status: http.StatusConflict, Msg: fmt.Sprintf("this witness last cosigned size %d", now.Size), Size: now.Size}
	} else if err != nil {
		return nil, err
	}
	return sig, nil
}

// cosign returns the witness's signature line on cp.
func (w *Witness) cosign(cp *checkpoint) ([]byte, error) {
	signed, err := note.Sign(&note.Note{Text: cp.text}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("witness: cosign: %w", err)
	}
	_, sig, _ := bytes.Cut(signed, []byte("\n\n"))
	return sig, nil
}

// checkWithLog asks the log itself to prove cp consistent with the
// checkpoint cosigned before. A submitted proof that fails may just be a
// bad proof from anyone; a log that cannot prove two checkpoints it
// signed consistent has forked, and the pair is kept as evidence.
func (w *Witness) checkWithLog(ctx context.Context, cp *checkpoint, cur store.WitnessState) {
	l := w.logs[cp.origin]
	if l.URL == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := fmt.Sprintf("%s/ledger/proof/consistency?from=%d&to=%d", strings.TrimSuffix(l.URL, "/"), cur.Size, cp.size)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return
	}
	resp, err := w.client.Do(req)
	if err != nil {
		w.log.Warn("witness: the log is unreachable to prove its checkpoint", "origin", cp.origin, "err", err)
		return
	}
	defer resp.Body.Close()
	var p struct {
		Proof [][]byte `json:"proof"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, MaxRequest)).Decode(&p) != nil {
		// A log that signed size cp.size must be able to prove it; one
		// that does not answer may be down or behind a load balancer
		// still catching up: no evidence.
		w.log.Warn("witness: the log did not prove its checkpoint", "origin", cp.origin, "status", resp.StatusCode)
		return
	}
	proof := make(tlog.TreeProof, 0, len(p.Proof))
	for _, h := range p.Proof {
		if len(h) != tlog.HashSize {
			return
		}
		proof = append(proof, tlog.Hash(h))
	}
	if tlog.CheckTree(proof, cp.size, cp.root, cur.Size, tlog.Hash(cur.Root)) != nil {
		w.keepEvidence(ctx, cp.origin, fmt.Sprintf("the log cannot prove size %d consistent with size %d", cp.size, cur.Size), cur.Note, cp.signed)
	}
}

func (w *Witness) keepEvidence(ctx context.Context, origin, reason string, first, second []byte) {
	audit.KeepEvidence(ctx, w.st, w.log, store.Evidence{Origin: origin, Reason: reason, First: first, Second: second}, w.OnEvidence)
}

// Latest returns the newest checkpoint of origin this witness cosigned,
// with the log's signature and its own, or store.ErrNotFound.
func (w *Witness) Latest(ctx context.Context, origin string) ([]byte, error) {
	if _, ok := w.logs[origin]; !ok {
		return nil, store.ErrNotFound
	}
	st, err := w.st.Witnessed(ctx, origin)
	if err != nil {
		return nil, err
	}
	return st.Note, nil
}

// Origins lists the logs witnessed.
func (w *Witness) Origins() []string {
	var out []string
	for o := range w.logs {
		out = append(out, o)
	}
	return out
}
