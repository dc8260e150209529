package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ehrledger/ehrledger/store"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Config configures a Log.
type Config struct {
	// Origin names the log in its checkpoints:
	// <provider-domain>/ehrledger/<log-name>.
	Origin string
	// Signer signs checkpoints (an Ed25519 note key whose name is Origin).
	Signer note.Signer
	// Verifier checks them (the signer's public half).
	Verifier note.Verifier
	// CheckpointEvery is how often a new checkpoint is signed when the log
	// grew (default 1 s).
	CheckpointEvery time.Duration
	// MaxBatch bounds the records integrated in one transaction (default
	// 1,000).
	MaxBatch int
	// LeaseTTL is how long the sequencer lease lasts without renewal
	// (default 10 s); a replica whose sequencer died is replaced after it.
	LeaseTTL time.Duration
	// Holder names this sequencer in the lease. A server restarted with the
	// same name takes its lease back at once instead of waiting for it to
	// run out; default: a random name.
	Holder string
	Logger *slog.Logger
}

// Log is one provider's ledger. Append adds records and returns once they
// have durable indexes; Run integrates, signs checkpoints and must run
// for Append to return.
type Log struct {
	st     *store.Store
	cfg    Config
	holder string
	log    *slog.Logger

	mu      sync.Mutex
	stopped bool             // Run has returned: appends fail at once
	pending []*pendingRecord // appended in memory, waiting for the sequencer
	kick    chan struct{}

	hashes *hashCache

	cpMu       sync.RWMutex
	checkpoint store.LedgerCheckpoint // the newest signed one
}

type pendingRecord struct {
	data  []byte
	index int64
	err   error
	done  chan struct{}
}

// ErrStopped says the log is not running: nothing can be appended.
var ErrStopped = errors.New("audit: the ledger is not running")

// ErrTampered says the stored log does not match what the log signed
// before: the server must not sign again until an operator acts.
var ErrTampered = errors.New("audit: the stored log does not match its signed checkpoints")

// Open opens the log stored in st and verifies it against the newest
// checkpoint it signed: every leaf, every stored hash and the root. A
// mismatch is ErrTampered.
func Open(ctx context.Context, st *store.Store, cfg Config) (*Log, error) {
	if cfg.Origin == "" || cfg.Signer == nil || cfg.Verifier == nil {
		return nil, errors.New("audit: a log needs an origin, a signer and a verifier")
	}
	if cfg.Signer.Name() != cfg.Origin {
		return nil, fmt.Errorf("audit: the checkpoint key is named %q, not the origin %q", cfg.Signer.Name(), cfg.Origin)
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Holder == "" {
		var id [8]byte
		rand.Read(id[:])
		cfg.Holder = hex.EncodeToString(id[:])
	}
	l := &Log{
		st: st, cfg: cfg, holder: cfg.Holder, log: cfg.Logger,
		kick:   make(chan struct{}, 1),
		hashes: newHashCache(st),
	}
	if err := l.verifyStored(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Append adds records to the log and returns their indexes once they are
// durable. Records appended at the same time share one transaction (group
// commit).
func (l *Log) Append(ctx context.Context, records [][]byte) ([]int64, error) {
	ps := make([]*pendingRecord, len(records))
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil, ErrStopped
	}
	for i, r := range records {
		ps[i] = &pendingRecord{data: r, done: make(chan struct{})}
		l.pending = append(l.pending, ps[i])
	}
	l.mu.Unlock()
	l.poke()
	out := make([]int64, len(ps))
	for i, p := range ps {
		select {
		case <-p.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if p.err != nil {
			return nil, p.err
		}
		out[i] = p.index
	}
	return out, nil
}

func (l *Log) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Run integrates records, fills the lookup table and signs checkpoints
// until ctx ends.
func (l *Log) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { l.fillLookups(ctx); close(done) }()
	defer func() { <-done }()
	sign := time.NewTicker(l.cfg.CheckpointEvery)
	defer sign.Stop()
	poll := time.NewTicker(10 * time.Millisecond) // records queued by writes and other replicas (a cheap read)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			l.failPending(ctx.Err())
			return ctx.Err()
		case <-l.kick:
			l.integrate(ctx)
		case <-poll.C:
			l.integrate(ctx)
		case <-sign.C:
			if _, err := l.Sign(ctx); err != nil && !errors.Is(err, store.ErrNotLeaseHolder) {
				l.log.Error("ledger: signing a checkpoint failed", "err", err)
			}
		}
	}
}

func (l *Log) failPending(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	for _, p := range l.pending {
		p.err = err
		close(p.done)
	}
	l.pending = nil
}

// integrate runs batches until nothing is pending.
func (l *Log) integrate(ctx context.Context) {
	for {
		l.mu.Lock()
		batch := l.pending[:min(len(l.pending), l.cfg.MaxBatch)]
		l.pending = l.pending[len(batch):]
		l.mu.Unlock()
		n, err := l.integrateBatch(ctx, batch)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Error("ledger: integrating records failed", "records", len(batch), "err", err)
			}
			for _, p := range batch {
				p.err = fmt.Errorf("audit: %w", err)
				close(p.done)
			}
			return
		}
		l.mu.Lock()
		more := len(l.pending) > 0
		l.mu.Unlock()
		if !more && n < l.cfg.MaxBatch {
			return
		}
	}
}

// integrateBatch places the in-memory batch and then queued records in
// one transaction, and tells their waiters. It returns how many records
// it placed.
func (l *Log) integrateBatch(ctx context.Context, batch []*pendingRecord) (int, error) {
	if len(batch) == 0 {
		if queued, err := l.st.LedgerQueued(ctx); err != nil || !queued {
			return 0, err
		}
	}
	mem := make([][]byte, len(batch))
	for i, p := range batch {
		mem[i] = p.data
	}
	var first int64
	var added map[int64]tlog.Hash
	size, err := l.st.IntegrateLedger(ctx, l.holder, l.cfg.LeaseTTL, mem, l.cfg.MaxBatch,
		func(size int64, recs [][]byte) (*store.LedgerPlacement, error) {
			first = size
			var err error
			added, err = l.hashes.place(size, recs)
			if err != nil {
				return nil, err
			}
			p := &store.LedgerPlacement{Hashes: make(map[int64][]byte, len(added))}
			for idx, h := range added {
				p.Hashes[idx] = h[:]
			}
			return p, nil
		})
	if errors.Is(err, store.ErrNotLeaseHolder) {
		// Another replica sequences: hand the records over through the
		// queue and wait for their indexes there.
		if len(batch) == 0 {
			return 0, nil
		}
		return len(batch), l.handOver(ctx, batch)
	}
	if err != nil {
		return 0, err // nothing of the batch was cached
	}
	l.hashes.commit(added)
	for i, p := range batch {
		p.index = first + int64(i)
		close(p.done)
	}
	return int(size - first), nil
}

// handOver queues records for the replica that holds the sequencer lease
// and waits, beside the loop, for their indexes.
func (l *Log) handOver(ctx context.Context, batch []*pendingRecord) error {
	data := make([][]byte, len(batch))
	for i, p := range batch {
		data[i] = p.data
	}
	ids, err := l.st.QueueLedger(ctx, data)
	if err != nil {
		return err
	}
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			got, err := l.st.LedgerIndexes(ctx, ids)
			if err == nil && len(got) == len(ids) {
				for i, p := range batch {
					p.index = got[ids[i]]
					close(p.done)
				}
				return
			}
			select {
			case <-ctx.Done():
				for _, p := range batch {
					p.err = ctx.Err()
					close(p.done)
				}
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Sign signs a checkpoint of the current tree, if it grew since the last
// one (or none was signed yet), after checking that it is consistent with
// the last one. Only the sequencer (lease holder) signs.
func (l *Log) Sign(ctx context.Context) ([]byte, error) {
	size, err := l.st.LedgerSize(ctx)
	if err != nil {
		return nil, err
	}
	l.cpMu.RLock()
	last := l.checkpoint
	l.cpMu.RUnlock()
	if last.Note != nil && size == last.Size {
		return last.Note, nil
	}
	if size < last.Size {
		return nil, fmt.Errorf("%w: the tree has %d records but a checkpoint of %d was signed", ErrTampered, size, last.Size)
	}
	root, err := tlog.TreeHash(size, l.hashes)
	if err != nil {
		return nil, err
	}
	if last.Note != nil && last.Size > 0 {
		proof, err := tlog.ProveTree(size, last.Size, l.hashes)
		if err != nil {
			return nil, err
		}
		if err := tlog.CheckTree(proof, size, root, last.Size, tlog.Hash(last.Root)); err != nil {
			return nil, fmt.Errorf("%w: size %d is not an extension of the checkpoint of size %d: %v", ErrTampered, size, last.Size, err)
		}
	}
	body := log.Checkpoint{Origin: l.cfg.Origin, Size: uint64(size), Hash: root[:]}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.cfg.Signer)
	if err != nil {
		return nil, err
	}
	cp := store.LedgerCheckpoint{Size: size, Root: root[:], Note: signed}
	if err := l.st.AddLedgerCheckpoint(ctx, cp); err != nil {
		return nil, err
	}
	l.cpMu.Lock()
	if cp.Size >= l.checkpoint.Size {
		l.checkpoint = cp
	}
	l.cpMu.Unlock()
	return signed, nil
}

// Checkpoint returns the newest signed checkpoint (nil before the first).
func (l *Log) Checkpoint() store.LedgerCheckpoint {
	l.cpMu.RLock()
	defer l.cpMu.RUnlock()
	return l.checkpoint
}

// Origin is the log's origin line.
func (l *Log) Origin() string { return l.cfg.Origin }

// verifyStored recomputes every leaf hash and stored hash from the leaves
// and checks the newest checkpoint's root and signature against them.
func (l *Log) verifyStored(ctx context.Context) error {
	size, err := l.st.LedgerSize(ctx)
	if err != nil {
		return err
	}
	cps, err := l.st.LedgerCheckpoints(ctx, 1)
	if err != nil {
		return err
	}
	const batch = 1000
	for from := int64(0); from < size; from += batch {
		leaves, err := l.st.LedgerLeaves(ctx, from, min(from+batch, size))
		if err != nil {
			return err
		}
		if int64(len(leaves)) != min(batch, size-from) {
			return fmt.Errorf("%w: records %d to %d are incomplete", ErrTampered, from, min(from+batch, size)-1)
		}
		for _, lf := range leaves {
			n := lf.Index
			rh := tlog.RecordHash(lf.Data)
			want, err := tlog.StoredHashesForRecordHash(n, rh, l.hashes)
			if err != nil {
				return err
			}
			idx := make([]int64, len(want))
			for i := range want {
				idx[i] = tlog.StoredHashIndex(0, n) + int64(i)
			}
			got, err := l.hashes.ReadHashes(idx)
			if err != nil {
				return err
			}
			for i := range want {
				if got[i] != want[i] {
					return fmt.Errorf("%w: stored hash %d (record %d) differs from the one its records give", ErrTampered, idx[i], n)
				}
			}
		}
	}
	if len(cps) == 0 {
		return nil
	}
	cp := cps[0]
	if _, _, _, err := log.ParseCheckpoint(cp.Note, l.cfg.Origin, l.cfg.Verifier); err != nil {
		return fmt.Errorf("%w: the stored checkpoint of size %d does not verify with the configured key: %v", ErrTampered, cp.Size, err)
	}
	if cp.Size > size {
		return fmt.Errorf("%w: a checkpoint of size %d was signed but only %d records are stored", ErrTampered, cp.Size, size)
	}
	root, err := tlog.TreeHash(cp.Size, l.hashes)
	if err != nil {
		return err
	}
	if string(root[:]) != string(cp.Root) {
		return fmt.Errorf("%w: the stored tree of size %d has another root than its signed checkpoint", ErrTampered, cp.Size)
	}
	l.checkpoint = cp
	return nil
}

// lookupBatch bounds the lookup rows added per transaction: big enough to
// amortise the random index pages, small enough that appends do not wait
// long for the lock (BENCHMARKS.md).
const lookupBatch = 1000

// fillLookups adds the lookup rows (leaf hash, type, patient, time) of
// integrated records, in batches, off the appends' path: AuditEvent
// search and proofs by leaf hash see a record a moment after its append.
func (l *Log) fillLookups(ctx context.Context) {
	// Batches every 200 ms: each takes the database's write lock (on
	// SQLite the appends wait for it) and writes pages all over two
	// indexes, which many rows per batch amortise.
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := l.addLookups(ctx, lookupBatch)
			if err != nil {
				if ctx.Err() == nil {
					l.log.Error("ledger: filling the lookup table failed", "err", err)
				}
				break
			}
			if n < lookupBatch {
				break
			}
		}
	}
}

// addLookups adds the lookup rows of up to limit records after the last
// one looked up, and returns how many.
func (l *Log) addLookups(ctx context.Context, limit int) (int, error) {
	last, err := l.st.LedgerLookedUp(ctx)
	if err != nil {
		return 0, err
	}
	leaves, err := l.st.LedgerLeaves(ctx, last+1, last+1+int64(limit))
	if err != nil || len(leaves) == 0 {
		return 0, err
	}
	rows := make([]store.LedgerLookup, len(leaves))
	for i, lf := range leaves {
		rows[i] = lookupOf(lf)
	}
	return len(rows), l.st.AddLedgerLookups(ctx, rows)
}
