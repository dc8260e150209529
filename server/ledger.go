package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/witness"
	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/tlog"
)

var _ witness.Source = (*audit.Log)(nil)

// The ledger's read-only HTTP face (docs/ledger.md).

// ledgerCheckpoint serves the newest signed checkpoint; with covers=N, a
// checkpoint whose tree holds record N, signed on demand when the newest
// does not (404 while record N is not integrated).
func (s *Server) ledgerCheckpoint(w http.ResponseWriter, r *http.Request) error {
	note := s.ledger.Checkpoint().Note
	if c := r.URL.Query().Get("covers"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 0 {
			return reqErr(errInvalid, "invalid", "covers must be a record index")
		}
		if note, err = s.ledger.SignCovering(r.Context(), n); err != nil {
			return err
		}
	}
	if note == nil {
		signed, err := s.ledger.Sign(r.Context())
		if err != nil {
			return reqErr(errUnavailable, "transient", "no checkpoint has been signed yet")
		}
		note = signed
	}
	writeNote(w, note)
	return nil
}

func (s *Server) ledgerKey(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(s.cfg.LedgerKey + "\n"))
	return nil
}

func (s *Server) ledgerTile(w http.ResponseWriter, r *http.Request) error {
	t, err := audit.ParseTilePath(strings.TrimPrefix(r.URL.Path, "/ledger/tile/"))
	if err != nil {
		return reqErr(errNotFound, "not-found", "no tile at %s", r.URL.Path)
	}
	data, err := s.ledger.Tile(r.Context(), t)
	if err != nil {
		return err
	}
	audit.WriteTile(w, t, data)
	return nil
}

func hashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func (s *Server) ledgerInclusion(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var size int64
	var checkpoint []byte
	var err error
	if q.Get("size") == "" {
		// Without a size: the tree of the checkpoint clients should trust,
		// the cosigned one when the log has witnesses, carried along.
		if size, checkpoint, err = s.trustedCheckpoint(r.Context()); err != nil {
			return err
		}
	} else if size, err = strconv.ParseInt(q.Get("size"), 10, 64); err != nil {
		return reqErr(errInvalid, "invalid", "size must be a tree size")
	}
	var index int64
	if h := q.Get("hash"); h != "" {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != tlog.HashSize {
			return reqErr(errInvalid, "invalid", "hash must be a base64 SHA-256 leaf hash")
		}
		if index, err = s.ledger.IndexOf(r.Context(), tlog.Hash(b)); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return reqErr(errNotFound, "not-found", "no record has that leaf hash")
			}
			return err
		}
	} else if index, err = strconv.ParseInt(q.Get("index"), 10, 64); err != nil {
		return reqErr(errInvalid, "invalid", "give index or hash")
	}
	proof, err := s.ledger.ProveInclusion(r.Context(), index, size)
	if err != nil {
		return err
	}
	leaves, err := s.ledgerLeafHash(r.Context(), index)
	if err != nil {
		return err
	}
	out := map[string]any{"index": index, "size": size, "leaf_hash": leaves, "proof": hashes(proof)}
	if checkpoint != nil {
		out["checkpoint"] = string(checkpoint)
	}
	writePlainJSON(w, out)
	return nil
}

// trustedCheckpoint is the newest checkpoint of the log cosigned by its
// witness policy's quorum or, for a log without witnesses, its newest
// signed checkpoint; with its size.
func (s *Server) trustedCheckpoint(ctx context.Context) (int64, []byte, error) {
	if s.cfg.Publisher != nil {
		size, cp, err := s.store.Cosigned(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil, reqErr(errUnavailable, "transient", "no checkpoint has been cosigned yet")
		}
		return size, cp, err
	}
	cp := s.ledger.Checkpoint()
	if cp.Note == nil {
		return 0, nil, reqErr(errUnavailable, "transient", "no checkpoint has been signed yet")
	}
	return cp.Size, cp.Note, nil
}

func (s *Server) ledgerLeafHash(ctx context.Context, index int64) (string, error) {
	rec, err := s.ledger.Record(ctx, index)
	if err != nil {
		return "", err
	}
	h := tlog.RecordHash(rec)
	return base64.StdEncoding.EncodeToString(h[:]), nil
}

func (s *Server) ledgerConsistency(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(q.Get("to"), 10, 64)
	if err1 != nil || err2 != nil {
		return reqErr(errInvalid, "invalid", "from and to must be tree sizes")
	}
	proof, err := s.ledger.ProveConsistency(r.Context(), from, to)
	if err != nil {
		return err
	}
	writePlainJSON(w, map[string]any{"from": from, "to": to, "proof": hashes(proof)})
	return nil
}

func writePlainJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v) // maps of numbers and strings always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}
