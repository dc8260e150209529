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
	recs := l.recent.from(last+1, limit)
	if recs == nil {
		size, err := l.st.LedgerSize(ctx)
		if err != nil {
			return 0, err
		}
		if recs, err = l.Records(ctx, last+1, min(last+1+int64(limit), size)); err != nil {
			return 0, err
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	rows, err := l.lookupsOf(ctx, recs)
	if err != nil {
		return 0, err
	}
	if err := l.st.AddLedgerLookups(ctx, last, rows); errors.Is(err, store.ErrCursorMoved) {
		return 0, nil // another filler added them
	} else if err != nil {
		return 0, err
	}
	return len(rows), nil
}

// lookupsOf is the lookup rows of records: each by its leaf hash, and by
// the patient and exact time its kept opening gives (none: no patient,
// the leaf's time).
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
		m := store.LedgerLookup{Index: r.Index, HashKey: hashKey(tlog.RecordHash(r.Data))}
		if o, ok := kept[r.Index]; ok {
			m.PatientKey, m.TimeUs = o.PatientKey, o.TimeUs
		} else {
			var lf struct{ Time string } // what a lookup keeps, and no more decoded
			json.Unmarshal(r.Data, &lf)
			if t, err := time.Parse(time.RFC3339Nano, lf.Time); err == nil {
				m.TimeUs = t.UnixMicro()
			}
		}
		rows[i] = m
	}
	return rows, nil
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

// recentRecords holds the records this sequencer integrated lately, in
// index order without gaps, until their lookup rows are filled.
type recentRecords struct {
	mu   sync.Mutex
	recs []store.LedgerRecord
}

// recentMax bounds the records held (about 20 MB of disclosures); past it
// the filler reads the stored bundles.
const recentMax = 1 << 16

func (r *recentRecords) add(first int64, data [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.recs); n > 0 && r.recs[n-1].Index+1 != first || n+len(data) > recentMax {
		r.recs = nil // a gap (another sequencer integrated meanwhile) or too many
	}
	for i, d := range data {
		r.recs = append(r.recs, store.LedgerRecord{Index: first + int64(i), Data: d})
	}
}

// from returns up to limit records from index start on, or nil when the
// memory does not begin there; it forgets the records before start.
func (r *recentRecords) from(start int64, limit int) []store.LedgerRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := 0
	for i < len(r.recs) && r.recs[i].Index < start {
		i++
	}
	r.recs = r.recs[i:]
	if len(r.recs) == 0 || r.recs[0].Index != start {
		return nil
	}
	return append([]store.LedgerRecord(nil), r.recs[:min(limit, len(r.recs))]...)
}
