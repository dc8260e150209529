package audit

import (
	"context"
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

// IndexOf returns the index of the record with the given leaf hash.
func (l *Log) IndexOf(ctx context.Context, leafHash tlog.Hash) (int64, error) {
	return l.st.LedgerIndexByHash(ctx, hashKey(leafHash), leafHash[:])
}

// RecordsOf lists the records about a patient (by pseudonym) of the given
// types (none: all) with times in [fromUs, toUs), after index after (-1:
// from the start), in index order, at most limit. A record appears a
// moment after its append, once its lookup row is filled.
func (l *Log) RecordsOf(ctx context.Context, pseudonym string, types []string, fromUs, toUs, after int64, limit int) ([]store.LedgerRecord, error) {
	return l.st.LedgerRecordsOf(ctx, patientKey(pseudonym), pseudonym, types, fromUs, toUs, after, limit)
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
	r, n, err := l.stored(ctx)
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
