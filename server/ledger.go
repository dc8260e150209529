package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/witness"
	"github.com/ehrledger/ehrledger/store"
)

var _ witness.Source = (*audit.Log)(nil)

// The ledger's read-only HTTP face (docs/ledger.md) is the log's own
// handler (audit.Log.Handler), mounted under /ledger/.

// ledgerFace serves GET /ledger/checkpoint, key, tile/..., and the
// proofs through the log's handler.
func (s *Server) ledgerFace(w http.ResponseWriter, r *http.Request) error {
	if s.ledgerHandler == nil {
		return reqErr(errNotFound, "not-found", "this server keeps no ledger")
	}
	s.ledgerHandler.ServeHTTP(w, r)
	return nil
}

// trustedCheckpoint is the newest checkpoint of the log cosigned by its
// witness policy's quorum or, for a log without witnesses, its newest
// signed checkpoint; with its size. audit.ErrNoCheckpoint before there is
// one.
func (s *Server) trustedCheckpoint(ctx context.Context) (int64, []byte, error) {
	if s.cfg.Publisher != nil {
		size, cp, err := s.store.Cosigned(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil, fmt.Errorf("%w: none has been cosigned yet", audit.ErrNoCheckpoint)
		}
		return size, cp, err
	}
	cp := s.ledger.Checkpoint()
	if cp.Note == nil {
		return 0, nil, audit.ErrNoCheckpoint
	}
	return cp.Size, cp.Note, nil
}

func writePlainJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v) // maps of numbers and strings always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}
