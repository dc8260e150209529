package audit

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/tlog"
)

// The lookup table (by leaf hash; by patient and time) is filled beside
// the appends, not in their transactions: its keys are random, and
// indexing them in an append's transaction made every append write pages
// all over both indexes (BENCHMARKS.md).

// lookupBatch bounds the lookup rows added per transaction: big enough to
// amortise the random index pages, small enough that appends do not wait
// long for the lock (SQLite has one writer).
const lookupBatch = 5000

// fillLookups adds the lookup rows of integrated records, in batches, off
// the appends' path: AuditEvent search and proofs by leaf hash see a
// record a moment after its append. Only the sequencer fills them.
func (l *Log) fillLookups(ctx context.Context) {
	Follow(ctx, 200*time.Millisecond, lookupBatch, l.addLookups, func(err error) {
		l.log.Error("ledger: filling the lookup table failed", "err", err)
	})
}

// Follow runs work derived from the log: every interval, step (which
// goes through at most limit records past where its work stands, and
// says how many) runs again and again until it has caught up; an error
// goes to fail and waits for the next interval. Follow returns when ctx
// ends.
func Follow(ctx context.Context, every time.Duration, limit int, step func(ctx context.Context, limit int) (int, error), fail func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := step(ctx, limit)
			if err != nil {
				if ctx.Err() == nil {
					fail(err)
				}
				break
			}
			if n < limit {
				break
			}
		}
	}
}

// addLookups adds the lookup rows of up to limit records after the last
// one looked up, and returns how many. The records come from memory when
// this sequencer integrated them, else from the stored bundles.
func (l *Log) addLookups(ctx context.Context, limit int) (int, error) {
	holder, until, err := l.st.LedgerLease(ctx)
	if err != nil || (holder != l.holder && until.After(time.Now())) {
		return 0, err // the sequencer of another replica fills them
	}
	last, err := l.st.LedgerLookedUp(ctx)
	if err != nil {
		return 0, err
	}
	rows := l.recent.from(last+1, limit)
	if rows == nil {
		size, err := l.st.LedgerSize(ctx)
		if err != nil {
			return 0, err
		}
		recs, err := l.Records(ctx, last+1, min(last+1+int64(limit), size))
		if err != nil {
			return 0, err
		}
		if rows, err = l.lookupsOf(ctx, recs); err != nil {
			return 0, err
		}
	}
	if len(rows) == 0 {
		return 0, nil
	}
	if err := l.st.AddLedgerLookups(ctx, last, rows); errors.Is(err, store.ErrCursorMoved) {
		return 0, nil // another filler added them
	} else if err != nil {
		return 0, err
	}
	return len(rows), nil
}

// lookupsOf is the lookup rows of stored records, with the openings kept
// of them.
func (l *Log) lookupsOf(ctx context.Context, recs []store.LedgerRecord) ([]store.LedgerLookup, error) {
	idx := make([]int64, len(recs))
	for i, r := range recs {
		idx[i] = r.Index
	}
	kept, err := l.st.LedgerOpenings(ctx, idx)
	if err != nil {
		return nil, err
	}
	rows := make([]store.LedgerLookup, len(recs))
	for i, r := range recs {
		var o *store.LedgerOpening
		if k, ok := kept[r.Index]; ok {
			o = &k
		}
		rows[i] = lookupOf(r.Index, r.Data, o)
	}
	return rows, nil
}

// lookupOf is the lookup row of record n: by its leaf hash, and by the
// patient and exact time its opening gives (none: no patient, the leaf's
// time).
func lookupOf(n int64, leaf []byte, o *store.LedgerOpening) store.LedgerLookup {
	m := store.LedgerLookup{Index: n, HashKey: hashKey(tlog.RecordHash(leaf))}
	if o != nil {
		m.PatientKey, m.TimeUs = o.PatientKey, o.TimeUs
		return m
	}
	var lf struct{ Time string } // what a lookup keeps, and no more decoded
	json.Unmarshal(leaf, &lf)
	if t, err := time.Parse(time.RFC3339Nano, lf.Time); err == nil {
		m.TimeUs = t.UnixMicro()
	}
	return m
}

// LookupsBehind returns how many integrated records have no lookup row
// yet: those AuditEvent search and proofs by leaf hash do not see yet.
func (l *Log) LookupsBehind(ctx context.Context) (int64, error) {
	last, err := l.st.LedgerLookedUp(ctx)
	if err != nil {
		return 0, err
	}
	size, err := l.st.LedgerSize(ctx)
	if err != nil {
		return 0, err
	}
	return max(size-last-1, 0), nil
}

// recentRecords holds the lookup rows of the records this sequencer
// integrated lately, made from what it integrated (each leaf, and the
// patient key and time of its opening), in index order without gaps,
// until they are filled: the filler does not read back what the
// sequencer just wrote.
type recentRecords struct {
	mu   sync.Mutex
	rows []store.LedgerLookup
}

// recentMax bounds the rows held; past it the filler reads the stored
// bundles and openings.
const recentMax = 1 << 16

func (r *recentRecords) add(first int64, entries []store.LedgerEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.rows); n > 0 && r.rows[n-1].Index+1 != first || n+len(entries) > recentMax {
		r.rows = nil // a gap (another sequencer integrated meanwhile) or too many
	}
	for i, e := range entries {
		r.rows = append(r.rows, lookupOf(first+int64(i), e.Record, e.Opening))
	}
}

// from returns up to limit rows from index start on, or nil when the
// memory does not begin there; it forgets the rows before start.
func (r *recentRecords) from(start int64, limit int) []store.LedgerLookup {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := 0
	for i < len(r.rows) && r.rows[i].Index < start {
		i++
	}
	r.rows = r.rows[i:]
	if len(r.rows) == 0 || r.rows[0].Index != start {
		return nil
	}
	return append([]store.LedgerLookup(nil), r.rows[:min(limit, len(r.rows))]...)
}
