package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrNoCheckpoint says no checkpoint clients should trust exists yet.
var ErrNoCheckpoint = errors.New("audit: no checkpoint has been signed (or cosigned) yet")

// BadQuestion is a malformed question to the log's HTTP face.
type BadQuestion struct{ Msg string }

func (e *BadQuestion) Error() string { return e.Msg }

// Handler is the log's read-only HTTP face (docs/ledger.md), the paths
// relative to where it is mounted: checkpoint (?covers=N signs one that
// holds record N, on demand), key (the checkpoint verifier key vkey),
// tile/... (C2SP tlog-tiles), proof/inclusion and proof/consistency.
// trusted is the checkpoint clients should trust, which an inclusion
// proof without a size is to (the cosigned one, for a log with
// witnesses); nil means the newest. Answers are plain text and JSON. A
// question that fails goes to fail with a *BadQuestion (400), an error
// wrapping ErrNotInLog (404) or ErrNoCheckpoint (503), or another; nil
// fail answers in plain text.
func (l *Log) Handler(vkey string, trusted func(context.Context) (size int64, note []byte, err error), fail func(http.ResponseWriter, *http.Request, error)) http.Handler {
	if trusted == nil {
		trusted = func(context.Context) (int64, []byte, error) {
			cp := l.Checkpoint()
			if cp.Note == nil {
				return 0, nil, ErrNoCheckpoint
			}
			return cp.Size, cp.Note, nil
		}
	}
	h := &handler{l: l, vkey: vkey, trusted: trusted, fail: fail}
	if fail == nil {
		h.fail = h.plain
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkpoint", h.checkpoint)
	mux.HandleFunc("GET /key", h.key)
	mux.HandleFunc("GET /tile/", h.tile)
	mux.HandleFunc("GET /proof/inclusion", h.inclusion)
	mux.HandleFunc("GET /proof/consistency", h.consistency)
	return mux
}

type handler struct {
	l       *Log
	vkey    string
	trusted func(context.Context) (int64, []byte, error)
	fail    func(http.ResponseWriter, *http.Request, error)
}

func (h *handler) checkpoint(w http.ResponseWriter, r *http.Request) {
	note := h.l.Checkpoint().Note
	if c := r.URL.Query().Get("covers"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 0 {
			h.fail(w, r, &BadQuestion{"covers must be a record index"})
			return
		}
		if note, err = h.l.SignCovering(r.Context(), n); h.failed(w, r, err) {
			return
		}
	}
	if note == nil {
		signed, err := h.l.Sign(r.Context())
		if err != nil {
			h.failed(w, r, ErrNoCheckpoint)
			return
		}
		note = signed
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(note)
}

func (h *handler) key(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(h.vkey + "\n"))
}

func (h *handler) tile(w http.ResponseWriter, r *http.Request) {
	t, err := ParseTilePath(strings.TrimPrefix(r.URL.Path, "/tile/"))
	if err != nil {
		h.fail(w, r, fmt.Errorf("%w: no tile at %s", ErrNotInLog, r.URL.Path))
		return
	}
	data, err := h.l.Tile(r.Context(), t)
	if h.failed(w, r, err) {
		return
	}
	WriteTile(w, t, data)
}

func (h *handler) inclusion(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var size int64
	var checkpoint []byte
	var err error
	if q.Get("size") == "" {
		// Without a size: the tree of the checkpoint clients should trust,
		// carried along.
		if size, checkpoint, err = h.trusted(r.Context()); h.failed(w, r, err) {
			return
		}
	} else if size, err = strconv.ParseInt(q.Get("size"), 10, 64); err != nil {
		h.fail(w, r, &BadQuestion{"size must be a tree size"})
		return
	}
	var index int64
	if hs := q.Get("hash"); hs != "" {
		b, err := base64.StdEncoding.DecodeString(hs)
		if err != nil || len(b) != tlog.HashSize {
			h.fail(w, r, &BadQuestion{"hash must be a base64 SHA-256 leaf hash"})
			return
		}
		if index, err = h.l.IndexOf(r.Context(), tlog.Hash(b)); errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("%w: no record has that leaf hash", ErrNotInLog)
		}
		if h.failed(w, r, err) {
			return
		}
	} else if index, err = strconv.ParseInt(q.Get("index"), 10, 64); err != nil {
		h.fail(w, r, &BadQuestion{"give index or hash"})
		return
	}
	proof, err := h.l.ProveInclusion(r.Context(), index, size)
	if h.failed(w, r, err) {
		return
	}
	rec, err := h.l.Record(r.Context(), index)
	if h.failed(w, r, err) {
		return
	}
	leaf := tlog.RecordHash(rec)
	out := map[string]any{"index": index, "size": size, "leaf_hash": base64.StdEncoding.EncodeToString(leaf[:]), "proof": Base64Hashes(proof)}
	if checkpoint != nil {
		out["checkpoint"] = string(checkpoint)
	}
	writeJSON(w, out)
}

func (h *handler) consistency(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(q.Get("to"), 10, 64)
	if err1 != nil || err2 != nil {
		h.fail(w, r, &BadQuestion{"from and to must be tree sizes"})
		return
	}
	proof, err := h.l.ProveConsistency(r.Context(), from, to)
	if h.failed(w, r, err) {
		return
	}
	writeJSON(w, map[string]any{"from": from, "to": to, "proof": Base64Hashes(proof)})
}

// failed answers err, when there is one.
func (h *handler) failed(w http.ResponseWriter, r *http.Request, err error) bool {
	if err == nil {
		return false
	}
	h.fail(w, r, err)
	return true
}

// plain answers a failed question in plain text.
func (h *handler) plain(w http.ResponseWriter, _ *http.Request, err error) {
	var bad *BadQuestion
	switch {
	case errors.As(err, &bad):
		http.Error(w, bad.Msg, http.StatusBadRequest)
	case errors.Is(err, ErrNotInLog):
		http.Error(w, strings.TrimPrefix(err.Error(), "audit: "), http.StatusNotFound)
	case errors.Is(err, ErrNoCheckpoint):
		w.Header().Set("Retry-After", "1")
		http.Error(w, strings.TrimPrefix(err.Error(), "audit: "), http.StatusServiceUnavailable)
	case errors.Is(err, ErrTampered):
		h.l.log.Error("ALARM: the ledger's stored data does not match what it signed", "err", err)
		http.Error(w, "the ledger's stored data failed its check; the operator is alerted", http.StatusInternalServerError)
	default:
		h.l.log.Error("ledger: answering a question of its HTTP face failed", "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the ledger cannot be read just now; try again", http.StatusServiceUnavailable)
	}
}

// Base64Hashes are hashes as the log's proofs carry them, standard
// base64 each.
func Base64Hashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v) // maps of numbers and strings always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}
