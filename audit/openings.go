package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ehrledger/ehrledger/keys"
	"github.com/ehrledger/ehrledger/store"
)

// The openings of records. A record's leaf commits to whom and what it is
// about (Record.Seal); the opening is kept in the database beside the
// log, under the record's index, sealed under the data key of the patient
// the record is about (the provider's key for a record about no patient),
// so that erasing the patient's key makes their records unopenable: the
// log stays whole and verifiable, and nothing in it can be linked to them
// any more. The lookup table finds a patient's records through keys the
// server derives from the opening's patient (Pseudonyms), never through a
// leaf.

// ErrNoKeys says a log opened without a keyring cannot seal or open
// records.
var ErrNoKeys = errors.New("audit: the ledger was opened without a keyring; it cannot seal or open records")

// openingAAD binds a sealed opening to the commitment it opens.
func openingAAD(commitment string) []byte { return []byte("ehrledger ledger opening\x00" + commitment) }

// ownerOf is whose data key seals a record's opening.
func ownerOf(r *Record) string {
	if r.Patient != "" {
		return r.Patient
	}
	return keys.ProviderOwner
}

// Entries seals records for the log: each leaf, with its opening sealed
// under the data key of the patient it is about. A write transaction
// queues them (store.Tx.QueueLedger); Append takes them too.
func (l *Log) Entries(ctx context.Context, recs []Record) ([]store.LedgerEntry, error) {
	if l.keys == nil {
		return nil, ErrNoKeys
	}
	owners := make([]string, 0, 1)
	for i := range recs {
		if o := ownerOf(&recs[i]); !slices.Contains(owners, o) {
			owners = append(owners, o)
		}
	}
	ks, err := l.keys.Ensure(ctx, owners)
	if err != nil {
		return nil, err
	}
	out := make([]store.LedgerEntry, len(recs))
	for i := range recs {
		r := &recs[i]
		leaf, opening := r.Seal()
		out[i].Record = leaf
		if opening == nil {
			continue
		}
		owner := ownerOf(r)
		k := ks[owner]
		if k == nil || k.Erased() {
			return nil, fmt.Errorf("audit: the data key of %s is erased: nothing about it can be recorded", owner)
		}
		sealed, err := k.Seal(openingAAD(Commitment(opening)), opening)
		if err != nil {
			return nil, err
		}
		t, _ := time.Parse(time.RFC3339Nano, r.Time)
		var pk int64
		if r.Patient != "" {
			pk = patientKey(l.pseudonyms.Of(patientID(r.Patient)))
		}
		out[i].Opening = &store.LedgerOpening{Owner: owner, PatientKey: pk, TimeUs: t.UnixMicro(), Sealed: sealed}
	}
	return out, nil
}

// AppendRecords seals records (Entries) and appends them.
func (l *Log) AppendRecords(ctx context.Context, recs []Record) ([]int64, error) {
	entries, err := l.Entries(ctx, recs)
	if err != nil {
		return nil, err
	}
	return l.Append(ctx, entries)
}

// patientID is the id of a "Patient/<id>" reference.
func patientID(ref string) string { return ref[len("Patient/"):] }

// Opened is a record read back with its opening.
type Opened struct {
	Index int64
	// Leaf is the record's leaf as the log holds it.
	Leaf []byte
	// Opening opens the leaf's commitment (nil: it commits to nothing).
	Opening []byte
	// Record is the whole record.
	Record *Record
}

// open reads records with the openings kept of them, in the order given;
// a record whose opening is gone (its key erased) or does not open is
// left out, and so is one about another patient than patient (when not
// "").
func (l *Log) open(ctx context.Context, idx []int64, leaves map[int64][]byte, patient string) ([]Opened, error) {
	if l.keys == nil {
		return nil, ErrNoKeys
	}
	kept, err := l.st.LedgerOpenings(ctx, idx)
	if err != nil {
		return nil, err
	}
	var owners []string
	for _, o := range kept {
		if !slices.Contains(owners, o.Owner) {
			owners = append(owners, o.Owner)
		}
	}
	ks, err := l.keys.Keys(ctx, owners)
	if err != nil {
		return nil, err
	}
	out := make([]Opened, 0, len(idx))
	for _, n := range idx {
		leaf, ok := leaves[n]
		if !ok {
			return nil, fmt.Errorf("%w: record %d is missing from its entry bundle", ErrTampered, n)
		}
		o := Opened{Index: n, Leaf: leaf}
		if k, ok := kept[n]; ok {
			dk := ks[k.Owner]
			if dk == nil || dk.Erased() {
				continue
			}
			lf, err := ParseLeaf(leaf)
			if err != nil {
				continue
			}
			if o.Opening, err = dk.Open(openingAAD(lf.Commitment), k.Sealed); err != nil {
				l.log.Error("ledger: a record's opening does not unseal", "index", n, "err", err)
				continue
			}
		}
		rec, err := OpenRecord(leaf, o.Opening)
		if err != nil {
			if o.Opening != nil {
				l.log.Error("ledger: a record's opening is not the one its leaf commits to", "index", n, "err", err)
			}
			continue
		}
		if patient != "" && rec.Patient != "Patient/"+patient {
			continue // another patient of the same lookup key
		}
		o.Record = rec
		out = append(out, o)
	}
	return out, nil
}

// RecordsOf lists the records about a patient with times in [fromUs,
// toUs), after index after (-1: from the start), in index order, each
// opened, going through at most limit lookup rows. It returns them and
// the index to go on after, -1 when there are no more. A record is listed
// a moment after its append, once its lookup row is filled; after the
// patient's erasure, none is.
func (l *Log) RecordsOf(ctx context.Context, patient string, fromUs, toUs, after int64, limit int) ([]Opened, int64, error) {
	if l.keys == nil {
		return nil, 0, ErrNoKeys
	}
	idx, err := l.st.LedgerIndexesOf(ctx, patientKey(l.pseudonyms.Of(patient)), fromUs, toUs, after, limit)
	if err != nil {
		return nil, 0, err
	}
	leaves, err := l.recordsAt(ctx, idx)
	if err != nil {
		return nil, 0, err
	}
	out, err := l.open(ctx, idx, leaves, patient)
	if err != nil || len(idx) < limit {
		return out, -1, err
	}
	return out, idx[len(idx)-1], nil
}

// OpenedAt returns the records at the given indexes that open (see
// OpenedRange), in the order given.
func (l *Log) OpenedAt(ctx context.Context, idx []int64) ([]Opened, error) {
	leaves, err := l.recordsAt(ctx, idx)
	if err != nil {
		return nil, err
	}
	return l.open(ctx, idx, leaves, "")
}

// OpenedRange returns the records from index from up to (not including)
// to that open: those that commit to nothing, and those whose openings
// are kept and unseal.
func (l *Log) OpenedRange(ctx context.Context, from, to int64) ([]Opened, error) {
	recs, err := l.Records(ctx, from, to)
	if err != nil {
		return nil, err
	}
	idx := make([]int64, len(recs))
	leaves := make(map[int64][]byte, len(recs))
	for i, r := range recs {
		idx[i], leaves[r.Index] = r.Index, r.Data
	}
	return l.open(ctx, idx, leaves, "")
}

// Forget clears what the lookup table says of a patient's records once
// their key is erased (whose erasure deleted the openings): then nothing
// the server keeps links a record to them. A record sealed just before
// the erasure may be integrated, and its lookup row written, after the
// first clearing; when this log fills the lookups, Forget waits for the
// filler to go past the records integrated so far (up to 30 s) and clears
// again, deleting any opening of theirs left.
func (l *Log) Forget(ctx context.Context, patient string) error {
	if l.keys == nil {
		return ErrNoKeys
	}
	size, err := l.st.LedgerSize(ctx)
	if err != nil {
		return err
	}
	if err := ForgetPatient(ctx, l.st, l.keys, patient); err != nil || !l.running.Load() {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		done, err := l.st.LedgerLookedUp(ctx)
		if err != nil {
			return err
		}
		if done >= size-1 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return ForgetPatient(ctx, l.st, l.keys, patient)
}

// ForgetPatient clears, once, the patient key of a patient's lookup rows
// in st, and deletes any of their openings left (Log.Forget, for a process
// that does not run the log).
func ForgetPatient(ctx context.Context, st Lookups, kr *keys.Keyring, patient string) error {
	ks, err := kr.Ensure(ctx, []string{keys.PseudonymOwner})
	if err != nil {
		return err
	}
	return st.ForgetLedgerPatient(ctx, keys.PatientOwner(patient), patientKey(NewPseudonyms(ks[keys.PseudonymOwner].MAC).Of(patient)))
}
