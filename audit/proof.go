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
		return nil, fmt.Errorf("%w: record %d is not in a tree of size %d", ErrNotInLog, n, size)
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
		return nil, fmt.Errorf("%w: no consistency proof from size %d to %d", ErrNotInLog, from, to)
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
		return nil, fmt.Errorf("%w: the log has %d records, not %d", ErrNotInLog, n, size)
	}
	return r, nil
}

// ErrNotInLog says a proof or tile was asked for what the log does not
// hold (the server answers 400 or 404).
var ErrNotInLog = fmt.Errorf("audit: not in the log")
