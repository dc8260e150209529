package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
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
	recs, err := s.ledger.Records(ctx, through+1, min(through+1+int64(limit), size))
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	var writes []store.Write
	for _, lr := range recs {
		rec, err := audit.ParseRecord(lr.Data)
		if err != nil || rec.Type != audit.TypeWrite || len(rec.Resources) == 0 {
			continue
		}
		w, err := s.writeAuditEvent(ctx, lr.Index, rec)
		if err != nil {
			return 0, err
		}
		if w != nil {
			writes = append(writes, *w)
		}
	}
	last := recs[len(recs)-1].Index
	err = s.inTx(ctx, func(tx *store.Tx) error {
		if err := tx.AdvanceLedgerCursor(ctx, writeAuditCursor, through, last); err != nil {
			return err
		}
		fresh := writes[:0:0]
		for _, w := range writes {
			// A client may have written an AuditEvent of that id first.
			if cur, err := currentOrNil(ctx, tx, "AuditEvent", w.Version.ID); err != nil {
				return err
			} else if cur == nil {
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
	return len(recs), nil
}

// writeAuditEvent builds the stored AuditEvent of write record n, or nil
// when the patient it is about was erased meanwhile.
func (s *Server) writeAuditEvent(ctx context.Context, n int64, rec *audit.Record) (*store.Write, error) {
	var patient string
	if rec.Patient != "" {
		// The record names the patient only by pseudonym: the patient is
		// the owner of the version it records (of the one before, for a
		// deletion).
		typ, id, vid, ok := splitVersionRef(rec.Resources[0].Ref)
		if !ok {
			return nil, nil
		}
		v, err := s.store.VRead(ctx, typ, id, vid)
		if err == nil && v.Deleted && vid > 1 {
			v, err = s.store.VRead(ctx, typ, id, vid-1)
		}
		var erased *store.ErasedError
		if errors.As(err, &erased) || errors.Is(err, store.ErrNotFound) || err == nil && v.Erased {
			return nil, nil // crypto-shredded: nothing about the patient is stored any more
		}
		if err != nil {
			return nil, err
		}
		patient, _ = strings.CutPrefix(v.Owner, "Patient/")
		if patient == "" || s.pseudonyms.Of(patient) != rec.Patient {
			return nil, nil // not the patient the record names: nothing true to store
		}
	}
	body, err := json.Marshal(s.auditEvent(n, rec, patient))
	if err != nil {
		return nil, err
	}
	in, err := s.parseResource(body, "AuditEvent")
	if err != nil {
		// Not transient: retrying would stop every later AuditEvent.
		s.log.Error("ledger: the AuditEvent of a write record is not valid; not stored", "index", n, "err", err)
		return nil, nil
	}
	return s.newVersion(in, nil, http.MethodPost, http.StatusCreated).write, nil
}

// splitVersionRef splits "Type/id/_history/vid".
func splitVersionRef(ref string) (typ, id string, vid int64, ok bool) {
	parts := strings.Split(ref, "/")
	if len(parts) != 4 || parts[2] != "_history" {
		return "", "", 0, false
	}
	vid, err := strconv.ParseInt(parts[3], 10, 64)
	return parts[0], parts[1], vid, err == nil
}
