package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/store"
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
	return s.serveOpening(w, r, n)
}

// ledgerWritten is GET /ledger/written/{type}/{id}/{vid}, for
// administrators: what GET /ledger/opening/{n} answers for the record of
// that version's write, by which the provider proves that a stored
// version is the one its write record committed to (ehrledger verify
// --opening FILE --version FILE). 404 when the version has no such record
// in the log (yet), or its patient's key was erased.
func (s *Server) ledgerWritten(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	v := store.VersionRef{Type: chi.URLParam(r, "type"), ID: chi.URLParam(r, "id")}
	vid, err := strconv.ParseInt(chi.URLParam(r, "vid"), 10, 64)
	if err != nil || vid < 1 {
		return reqErr(errInvalid, "invalid", "a version id is a positive integer")
	}
	v.VersionID = vid
	found, err := s.store.WrittenIndexes(r.Context(), []store.VersionRef{v})
	if err != nil {
		return err
	}
	n, ok := found[v]
	if !ok {
		return reqErr(errNotFound, "not-found", "no write record of %s/%s/_history/%d is in the log: there is no such version, its record is not integrated yet, or its patient's key was erased", v.Type, v.ID, vid)
	}
	return s.serveOpening(w, r, n)
}

// serveOpening answers record n's leaf and opening, to those who may see
// them (see ledgerOpening).
func (s *Server) serveOpening(w http.ResponseWriter, r *http.Request, n int64) error {
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
