package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ehrledger/ehrledger/keys"
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
	// MaxPending bounds the records appended in memory and waiting for the
	// sequencer (default 16,384, about half a second of appends on two
	// cores): past it Append fails at once with ErrPushback.
	MaxPending int
	// LeaseTTL is how long the sequencer lease lasts without renewal
	// (default 10 s); a replica whose sequencer died is replaced after it.
	LeaseTTL time.Duration
	// Holder names this sequencer in the lease. A server restarted with the
	// same name takes its lease back at once instead of waiting for it to
	// run out; default: a random name.
	Holder string
	// Keys seals and opens the openings of records (openings.go) and
	// holds the key of the patient lookup keys; a log without them only
	// takes entries already sealed (Append).
	Keys   *keys.Keyring
	Logger *slog.Logger
}

// Log is one provider's ledger. Append adds records and returns once they
// have durable indexes; Run integrates, signs checkpoints and must run
// for Append to return.
type Log struct {
	st     Store
	cfg    Config
	holder string
	log    *slog.Logger

	// handedOver are the goroutines waiting for the indexes of records
	// handed over to another replica's sequencer; Run waits for them.
	handedOver sync.WaitGroup

	mu      sync.Mutex
	stopped bool             // Run has returned: appends fail at once
	pending []*pendingRecord // appended in memory, waiting for the sequencer
	kick    chan struct{}

	keys       *keys.Keyring
	pseudonyms *Pseudonyms
	running    atomic.Bool // Run is filling the lookups

	hashes *hashCache
	edge   atomic.Pointer[edge] // the tree as this sequencer's last batch left it
	follow time.Time            // until then, queued records are left to the lease holder
	recent recentRecords

	cpMu       sync.RWMutex
	checkpoint store.LedgerCheckpoint // the newest signed one
	onDemand   sync.Mutex             // one on-demand signature at a time
}

type pendingRecord struct {
	entry store.LedgerEntry
	index int64
	err   error
	done  chan struct{}
}

// ErrStopped says the log is not running: nothing can be appended.
var ErrStopped = errors.New("audit: the ledger is not running")

// ErrPushback says as many records wait for the sequencer as the log
// takes (Config.MaxPending): the append was refused at once and nothing
// of it kept; the caller may try again a moment later.
var ErrPushback = errors.New("audit: too many records wait for the sequencer; try again later")

// ErrTampered says the stored log does not match what the log signed
// before: the server must not sign again until an operator acts.
var ErrTampered = errors.New("audit: the stored log does not match its signed checkpoints")

// Open opens the log stored in st and verifies it against the newest
// checkpoint it signed: every leaf, every stored hash and the root. A
// mismatch is ErrTampered.
func Open(ctx context.Context, st Store, cfg Config) (*Log, error) {
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
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 16384
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
		keys:   cfg.Keys,
	}
	if cfg.Keys != nil {
		ks, err := cfg.Keys.Ensure(ctx, []string{keys.PseudonymOwner})
		if err != nil {
			return nil, err
		}
		l.pseudonyms = NewPseudonyms(ks[keys.PseudonymOwner].MAC)
	}
	if err := l.verifyStored(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Append adds entries (records sealed by Entries) to the log and returns
// their indexes once they are durable, with their openings. Entries
// appended at the same time share one transaction (group commit).
func (l *Log) Append(ctx context.Context, entries []store.LedgerEntry) ([]int64, error) {
	for _, e := range entries {
		if len(e.Record) > store.MaxLedgerRecord {
			return nil, store.ErrLedgerRecordTooLarge
		}
	}
	ps := make([]*pendingRecord, len(entries))
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil, ErrStopped
	}
	// An append larger than the bound alone is taken when nothing waits.
	if n := len(l.pending); n > 0 && n+len(entries) > l.cfg.MaxPending {
		l.mu.Unlock()
		return nil, ErrPushback
	}
	for i, e := range entries {
		ps[i] = &pendingRecord{entry: e, done: make(chan struct{})}
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
	l.running.Store(true)
	defer l.running.Store(false)
	defer l.handedOver.Wait()
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
			if err := l.signOrFollow(ctx); err != nil && ctx.Err() == nil {
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
		if time.Now().Before(l.follow) {
			return 0, nil // another replica sequences: its lease is not checked again yet
		}
		if queued, err := l.st.LedgerQueued(ctx); err != nil || !queued {
			return 0, err
		}
	}
	mem := make([]store.LedgerEntry, len(batch))
	for i, p := range batch {
		mem[i] = p.entry
	}
	var first int64
	var placed []store.LedgerEntry
	var next edge
	var added map[int64]tlog.Hash
	size, err := l.st.IntegrateLedger(ctx, l.holder, l.cfg.LeaseTTL, mem, l.cfg.MaxBatch,
		func(size int64, entries []store.LedgerEntry) (*store.LedgerPlacement, error) {
			first, placed = size, entries
			recs := make([][]byte, len(entries))
			for i, e := range entries {
				recs[i] = e.Record
			}
			var p *store.LedgerPlacement
			var err error
			p, next, added, err = l.place(ctx, size, recs)
			return p, err
		})
	if errors.Is(err, store.ErrNotLeaseHolder) {
		// Another replica sequences: hand the records over through the
		// queue and wait for their indexes there; leave queued records to
		// it for a second instead of trying its lease every poll (a dead
		// sequencer's lease runs out only after LeaseTTL anyway).
		l.follow = time.Now().Add(time.Second)
		if len(batch) == 0 {
			return 0, nil
		}
		return len(batch), l.handOver(ctx, batch)
	}
	if err != nil {
		return 0, err // nothing of the batch was cached
	}
	l.hashes.commit(added)
	l.edge.Store(&next)
	l.recent.add(first, placed)
	for i, p := range batch {
		p.index = first + int64(i)
		close(p.done)
	}
	return int(size - first), nil
}

// handOver queues records for the replica that holds the sequencer lease
// and waits, beside the loop, for their indexes.
func (l *Log) handOver(ctx context.Context, batch []*pendingRecord) error {
	entries := make([]store.LedgerEntry, len(batch))
	for i, p := range batch {
		entries[i] = p.entry
	}
	ids, err := l.st.QueueLedger(ctx, entries)
	if err != nil {
		return err
	}
	l.handedOver.Go(func() {
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
	})
	return nil
}

// Sign signs a checkpoint of the current tree, if it grew since the last
// one (or none was signed yet), after checking that it is consistent with
// the last one. Only the sequencer (lease holder) signs.
func (l *Log) Sign(ctx context.Context) ([]byte, error) {
	size, rootB, err := l.st.LedgerState(ctx)
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
	root := pad(rootB)
	if last.Note != nil && last.Size > 0 {
		// Read through tiles authenticated against the stored root, the
		// proof shows that root extends the one signed before.
		proof, err := tlog.ProveTree(size, last.Size, l.hashes.reader(tlog.Tree{N: size, Hash: root}, nil))
		if err != nil {
			return nil, err
		}
		if err := tlog.CheckTree(proof, size, root, last.Size, pad(last.Root)); err != nil {
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
	l.keepNewest(cp)
	return signed, nil
}

// signOrFollow signs a checkpoint when this log is the sequencer (or
// none is); a replica that is not takes the newest one the sequencer
// stored, after checking its signature, instead of signing its own.
func (l *Log) signOrFollow(ctx context.Context) error {
	holder, until, err := l.st.LedgerLease(ctx)
	if err != nil {
		return err
	}
	if holder == l.holder || !until.After(time.Now()) {
		_, err := l.Sign(ctx)
		return err
	}
	cps, err := l.st.LedgerCheckpoints(ctx, 1)
	if err != nil || len(cps) == 0 {
		return err
	}
	if _, _, _, err := log.ParseCheckpoint(cps[0].Note, l.cfg.Origin, l.cfg.Verifier); err != nil {
		return fmt.Errorf("%w: the newest stored checkpoint does not verify with the configured key: %v", ErrTampered, err)
	}
	l.keepNewest(cps[0])
	return nil
}

// keepNewest makes cp the checkpoint served, unless a larger one is.
func (l *Log) keepNewest(cp store.LedgerCheckpoint) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if cp.Size >= l.checkpoint.Size {
		l.checkpoint = cp
	}
}

// SignCovering returns a signed checkpoint whose tree holds record n:
// the newest one if it does, else one it signs now (on demand). A record
// not integrated yet is ErrNotInLog.
func (l *Log) SignCovering(ctx context.Context, n int64) ([]byte, error) {
	if cp := l.Checkpoint(); cp.Note != nil && cp.Size > n {
		return cp.Note, nil
	}
	l.onDemand.Lock() // requests that arrive together share one signature
	defer l.onDemand.Unlock()
	if cp := l.Checkpoint(); cp.Note != nil && cp.Size > n {
		return cp.Note, nil
	}
	signed, err := l.Sign(ctx)
	if err != nil {
		return nil, err
	}
	if cp := l.Checkpoint(); cp.Size <= n {
		return nil, fmt.Errorf("%w: the log has %d records, not record %d yet", ErrNotInLog, cp.Size, n)
	}
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

// verifyStored recomputes the tree from the stored records and checks
// every stored tile, the stored root and the newest checkpoint's root and
// signature against it.
func (l *Log) verifyStored(ctx context.Context) error {
	size, root, err := l.st.LedgerState(ctx)
	if err != nil {
		return err
	}
	cps, err := l.st.LedgerCheckpoints(ctx, 1)
	if err != nil {
		return err
	}
	var cp *store.LedgerCheckpoint
	if len(cps) > 0 {
		cp = &cps[0]
		if _, _, _, err := log.ParseCheckpoint(cp.Note, l.cfg.Origin, l.cfg.Verifier); err != nil {
			return fmt.Errorf("%w: the stored checkpoint of size %d does not verify with the configured key: %v", ErrTampered, cp.Size, err)
		}
		if cp.Size > size {
			return fmt.Errorf("%w: a checkpoint of size %d was signed but only %d records are stored", ErrTampered, cp.Size, size)
		}
	}
	var f frontier
	tiles := tileWalk{st: l.st}
	const batch = 16 * tileWidth
	for from := int64(0); from < size; from += batch {
		to := min(from+batch, size)
		recs, err := l.Records(ctx, from, to)
		if err != nil {
			return err
		}
		if int64(len(recs)) != to-from {
			return fmt.Errorf("%w: records %d to %d are incomplete", ErrTampered, from, to-1)
		}
		for _, rec := range recs {
			n := rec.Index
			hs, err := tlog.StoredHashes(n, rec.Data, &f)
			if err != nil {
				return err
			}
			base := tlog.StoredHashIndex(0, n)
			for j, h := range hs {
				level, i := tlog.SplitStoredHashIndex(base + int64(j))
				f.add(level, i, h)
				if level%TileHeight == 0 {
					if err := tiles.check(ctx, level/TileHeight, i, h); err != nil {
						return err
					}
				}
			}
			if cp != nil && n+1 == cp.Size {
				if err := checkRoot(&f, cp.Size, cp.Root, "its signed checkpoint"); err != nil {
					return err
				}
			}
		}
	}
	if size > 0 {
		if err := checkRoot(&f, size, root, "the root stored with it"); err != nil {
			return err
		}
	}
	if cp != nil {
		l.checkpoint = *cp
	}
	return nil
}

func checkRoot(f *frontier, size int64, root []byte, what string) error {
	got, err := tlog.TreeHash(size, f)
	if err != nil {
		return err
	}
	if string(got[:]) != string(root) {
		return fmt.Errorf("%w: the stored records give the tree of size %d another root than %s", ErrTampered, size, what)
	}
	return nil
}

// frontier is a tlog.HashReader holding, per level, the newest hash: all
// that placing the next record or hashing the tree so far reads.
type frontier struct {
	n [64]int64
	h [64]tlog.Hash
	k int // levels seen
}

func (f *frontier) add(level int, n int64, h tlog.Hash) {
	f.n[level], f.h[level] = n, h
	f.k = max(f.k, level+1)
}

func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		if level >= f.k || f.n[level] != n {
			return nil, fmt.Errorf("audit: hash %d of level %d is not on the frontier", n, level)
		}
		out[i] = f.h[level]
	}
	return out, nil
}

// tileWalk compares recomputed hashes with the stored tiles, reading each
// level's tiles in order, several at a time.
type tileWalk struct {
	st   Tiles
	have map[int][]store.LedgerTile // per level: the tiles read ahead
}

func (w *tileWalk) check(ctx context.Context, level int, i int64, h tlog.Hash) error {
	n := i / tileWidth
	if w.have == nil {
		w.have = map[int][]store.LedgerTile{}
	}
	ts := w.have[level]
	for len(ts) > 0 && ts[0].N < n {
		ts = ts[1:]
	}
	if len(ts) == 0 || ts[0].N != n {
		got, err := w.st.LedgerTileRange(ctx, level, n, n+64)
		if err != nil {
			return err
		}
		ts = got
	}
	w.have[level] = ts
	off := int(i%tileWidth) * tlog.HashSize
	if len(ts) == 0 || ts[0].N != n || len(ts[0].Data) < off+tlog.HashSize || string(ts[0].Data[off:off+tlog.HashSize]) != string(h[:]) {
		if level == 0 {
			return fmt.Errorf("%w: record %d does not hash to its leaf hash in tile 0/%d", ErrTampered, i, n)
		}
		return fmt.Errorf("%w: stored hash %d of level %d (tile %d/%d) differs from the one its records give", ErrTampered, i, level*TileHeight, level, n)
	}
	return nil
}
