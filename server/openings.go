package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/go-chi/chi/v5"
)

// ledgerOpening is GET /ledger/opening/{n}: record n's leaf and the
// opening of its commitment, which says whom and what it is about
// (docs/ledger.md). The opening of a record about a patient is part of the
// patient's audit trail: given, and recorded, as the AuditEvent view is
// (their own app, administrators, and whom their consent permits); that of
// a record about no patient is given to administrators. A record whose
// opening is not kept (it commits to nothing, or its patient's key was
// erased) answers 404.
func (s *Server) ledgerOpening(w http.ResponseWriter, r *http.Request) error {
	n, err := strconv.ParseInt(chi.URLParam(r, "n"), 10, 64)
	if err != nil || n < 0 {
		return reqErr(errInvalid, "invalid", "a record's index is a non-negative integer")
	}
	size, err := s.store.LedgerSize(r.Context())
	if err != nil {
		return err
	}
	if n >= size {
		return reqErr(errNotFound, "not-found", "the log has no record %d yet", n)
	}
	opened, err := s.ledger.OpenedAt(r.Context(), []int64{n})
	if err != nil {
		return err
	}
	if len(opened) == 0 || opened[0].Opening == nil {
		return reqErr(errNotFound, "not-found", "no opening of record %d is kept: it commits to nothing, or its patient's key was erased", n)
	}
	o := opened[0]
	doc, _ := json.Marshal(map[string]any{"index": n, // plain maps always marshal
		"record": base64.StdEncoding.EncodeToString(o.Leaf), "opening": base64.StdEncoding.EncodeToString(o.Opening)})
	patient, ok := strings.CutPrefix(o.Record.Patient, "Patient/")
	if !ok {
		if err := requireAdmin(r); err != nil {
			return err
		}
		s.writeBody(w, r, http.StatusOK, doc)
		return nil
	}
	resp := s.gate.Respond("read", nil)
	err = resp.AuditTrail(r.Context(), patient, func(string) ([]disclosure.Derived, error) {
		return []disclosure.Derived{{Type: "AuditEvent", ID: "ledger-" + strconv.FormatInt(n, 10), Body: doc}}, nil
	})
	if err != nil {
		return err
	}
	shown, err := resp.Record(r.Context())
	if err != nil {
		return err
	}
	setLedgerIndex(w, shown)
	s.writeBody(w, r, http.StatusOK, doc)
	return nil
}
