// Package erasure crypto-shreds a patient (docs/security.md): the one
// implementation behind POST /Patient/{id}/$erase and "ehrledger keys
// erase". The patient's data key is destroyed, so every version sealed
// under it can never be read again; the Bulk Data exports that may hold
// their data are deleted, before and again after; the ledger forgets
// which of its records were about them; and an erasure record is
// appended, whose opening (it names the patient) is kept nowhere but in
// the Result.
package erasure

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/export"
	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// ErrNoKey says the patient has no data key: no data was ever stored for
// them.
var ErrNoKey = keys.ErrNoKey

// Result is what an erasure did.
type Result struct {
	// Withdrawn is how many resources can no longer be read.
	Withdrawn int
	// Exports is how many Bulk Data exports were deleted.
	Exports int
	// Record is the erasure record's leaf, and Opening the opening of its
	// commitment, which no one keeps: the caller's to hand on.
	Record, Opening []byte
	// Incomplete, when not nil, is what failed after the key was erased
	// (the key is gone whatever it says): forgetting the ledger's lookup
	// rows of the patient, or deleting an export started meanwhile.
	Incomplete error
}

// Patient erases the data key of the patient with id in st and kr. With
// ledger (a running log), the ledger's lookups are forgotten once its
// filler has gone past the erasure (audit.Log.Forget); without, once
// (audit.ForgetPatient, for a process that does not run the log).
// ErrNoKey when the patient has no key.
func Patient(ctx context.Context, st *store.Store, kr *keys.Keyring, ledger *audit.Log, id string, now time.Time) (*Result, error) {
	res := &Result{}
	n, err := export.DropPatient(ctx, st, kr, id)
	if err != nil {
		return nil, err
	}
	res.Exports = n
	rec := audit.Record{Type: audit.TypeErasure, Time: audit.FormatTime(now), Patient: keys.PatientOwner(id), Interaction: "erase"}
	res.Record, res.Opening = rec.Seal()
	if res.Withdrawn, err = kr.Erase(ctx, keys.PatientOwner(id), res.Record); err != nil {
		return nil, err
	}
	var left []error
	if ledger != nil {
		err = ledger.Forget(ctx, id)
	} else {
		err = audit.ForgetPatient(ctx, st, kr, id)
	}
	if err != nil {
		left = append(left, fmt.Errorf("the ledger's lookup rows of the patient could not be cleared: %w", err))
	}
	more, err := export.DropPatient(ctx, st, kr, id)
	if err != nil {
		left = append(left, fmt.Errorf("an export started meanwhile could not be deleted: %w", err))
	}
	res.Exports += more
	res.Incomplete = errors.Join(left...)
	return res, nil
}
