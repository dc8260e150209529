package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/store"
)

// Write AuditEvents. Every write record of the ledger becomes an IHE BALP
// AuditEvent (PatientCreate, PatientUpdate, PatientDelete; Create, Update,
// Delete for data about no patient) stored as a FHIR resource with id
// ledger-<index>, citing the record's index: readable, in the patient's
// compartment, sealed under the patient's key like the data it is about.
// The server stores them shortly after their records are integrated (the
// index is known only then), going through the log in order with a
// cursor that advances in the same transaction as the resources it
// stores. They are derived from the ledger and are not themselves
// recorded in it. Disclosure AuditEvents are not stored: they are built
// from their records when searched (auditevent.go), so that a read costs
// one durable write.

const writeAuditCursor = "write-auditevents"

// writeAuditBatch bounds the records gone through per transaction.
const writeAuditBatch = 500

// RunAuditEvents stores the AuditEvents of write records as the ledger
// integrates them, until ctx ends.
func (s *Server) RunAuditEvents(ctx context.Context) {
	audit.Follow(ctx, 250*time.Millisecond, writeAuditBatch, s.storeWriteAuditEvents, func(err error) {
		s.log.Error("ledger: storing write AuditEvents failed", "err", err)
	})
}

// storeWriteAuditEvents stores the AuditEvents of the write records among
// the next limit records past the cursor, and returns how many records it
// went through.
func (s *Server) storeWriteAuditEvents(ctx context.Context, limit int) (int, error) {
	through, err := s.store.LedgerCursor(ctx, writeAuditCursor)
	if err != nil {
		return 0, err
	}
	size, err := s.store.LedgerSize(ctx)
	if err != nil || through+1 >= size {
		return 0, err
	}
	to := min(through+1+int64(limit), size)
	recs, err := s.ledger.OpenedRange(ctx, through+1, to)
	if err != nil {
		return 0, err
	}
	// A record whose opening is gone (its patient's key was erased) is
	// not among them: nothing true can be stored of it.
	var writes []store.Write
	var ids []string
	for _, o := range recs {
		rec := o.Record
		if (rec.Type != audit.TypeWrite && rec.Type != audit.TypeConsent) || len(rec.Resources) == 0 {
			continue
		}
		patient := strings.TrimPrefix(rec.Patient, "Patient/")
		if w := s.writeAuditEvent(o.Index, rec, patient); w != nil {
			writes = append(writes, *w)
			ids = append(ids, w.Version.ID)
		}
	}
	last := to - 1
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.AdvanceLedgerCursor(ctx, writeAuditCursor, through, last); err != nil {
			return err
		}
		// A client may have written an AuditEvent of one of these ids first.
		existing, err := tx.Existing(ctx, "AuditEvent", ids)
		if err != nil {
			return err
		}
		fresh := make([]store.Write, 0, len(writes))
		for _, w := range writes {
			if !existing[w.Version.ID] {
				fresh = append(fresh, w)
			}
		}
		return tx.PutMany(ctx, fresh)
	})
	if errors.Is(err, store.ErrCursorMoved) {
		return 0, nil // another replica stored them
	}
	if err != nil {
		return 0, err
	}
	return int(to - through - 1), nil
}

// writeAuditEvent builds the stored AuditEvent of write record n about
// patient ("" for none), or nil when it does not validate.
func (s *Server) writeAuditEvent(n int64, rec *audit.Record, patient string) *store.Write {
	body, err := json.Marshal(s.auditEvent(n, rec, patient))
	if err == nil {
		var in *incoming
		if in, err = s.parseResource(body, "AuditEvent"); err == nil {
			return s.newVersion(in, nil, http.MethodPost, http.StatusCreated).write
		}
	}
	// Not transient: retrying would stop every later AuditEvent.
	s.log.Error("ledger: the AuditEvent of a write record is not valid; not stored", "index", n, "err", err)
	return nil
}
