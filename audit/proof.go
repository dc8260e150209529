package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/tlog"
)

// ProveInclusion returns the proof that record n is in the tree of the
// given size (RFC 6962 audit path).
func (l *Log) ProveInclusion(ctx context.Context, n, size int64) (tlog.RecordProof, error) {
	r, err := l.upTo(ctx, size)
	if err != nil {
		return nil, err
	}
	if n < 0 || n >= size {
		return nil, fmt.Errorf("%w: record %d is not in a tree of size %d", ErrBadRequest, n, size)
	}
	return tlog.ProveRecord(size, n, r)
}

// ProveConsistency returns the proof that the tree of size to extends the
// tree of size from.
func (l *Log) ProveConsistency(ctx context.Context, from, to int64) (tlog.TreeProof, error) {
	r, err := l.upTo(ctx, to)
	if err != nil {
		return nil, err
	}
	if from < 1 || from > to {
		return nil, fmt.Errorf("%w: no consistency proof from size %d to %d", ErrBadRequest, from, to)
	}
	return tlog.ProveTree(to, from, r)
}

// IndexOf returns the index of the record with the given leaf hash
// (store.ErrNotFound when none has it yet: records are found by hash a
// moment after their append, once their lookup rows are filled).
func (l *Log) IndexOf(ctx context.Context, leafHash tlog.Hash) (int64, error) {
	idx, err := l.st.LedgerIndexesByHash(ctx, hashKey(leafHash))
	if err != nil {
		return 0, err
	}
	recs, err := l.recordsAt(ctx, idx)
	if err != nil {
		return 0, err
	}
	for _, n := range idx {
		if r, ok := recs[n]; ok && tlog.RecordHash(r) == leafHash {
			return n, nil
		}
	}
	return 0, store.ErrNotFound
}

// RecordsOf lists the records about a patient (by pseudonym) with times
// in [fromUs, toUs), after index after (-1: from the start), in index
// order, at most limit. A record is listed a moment after its append,
// once its lookup row is filled.
func (l *Log) RecordsOf(ctx context.Context, pseudonym string, fromUs, toUs, after int64, limit int) ([]store.LedgerRecord, error) {
	idx, err := l.st.LedgerIndexesOf(ctx, patientKey(pseudonym), fromUs, toUs, after, limit)
	if err != nil {
		return nil, err
	}
	recs, err := l.recordsAt(ctx, idx)
	if err != nil {
		return nil, err
	}
	out := make([]store.LedgerRecord, 0, len(idx))
	for _, n := range idx {
		data, ok := recs[n]
		if !ok {
			return nil, fmt.Errorf("%w: record %d is missing from its entry bundle", ErrTampered, n)
		}
		var r struct{ Patient string }
		if json.Unmarshal(data, &r) == nil && r.Patient == pseudonym { // not another patient of the same key
			out = append(out, store.LedgerRecord{Index: n, Data: data})
		}
	}
	return out, nil
}

// TreeHash returns the root of the tree of the given size.
func (l *Log) TreeHash(ctx context.Context, size int64) (tlog.Hash, error) {
	r, err := l.upTo(ctx, size)
	if err != nil {
		return tlog.Hash{}, err
	}
	return tlog.TreeHash(size, r)
}

// upTo returns a reader of the stored tree, which must have at least size
// records.
func (l *Log) upTo(ctx context.Context, size int64) (tlog.HashReader, error) {
	r, n, err := l.stored(ctx, size)
	if err != nil {
		return nil, err
	}
	if size < 1 || size > n {
		return nil, fmt.Errorf("%w: the log has %d records, not %d", ErrBadRequest, n, size)
	}
	return r, nil
}

// ErrBadRequest says a proof or tile was asked for what the log does not
// hold (the server answers 400 or 404).
var ErrBadRequest = fmt.Errorf("audit: not in the log")
