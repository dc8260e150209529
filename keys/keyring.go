package keys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Record is a wrapped data key as the database holds it.
type Record struct {
	Owner   string
	KMS     string // KMS.Name of the service that wrapped it
	Version int    // its KMS key version
	Blob    []byte // the wrapped key; nil once erased
	Erased  bool
}

// Store keeps the wrapped data keys.
type Store interface {
	// WrappedKeys returns the records of those owners that have one.
	WrappedKeys(ctx context.Context, owners []string) ([]Record, error)
	// AddWrappedKeys stores records whose owners have none; an owner that
	// already has one (a concurrent creation won) keeps it.
	AddWrappedKeys(ctx context.Context, recs []Record) error
	// StaleWrappedKeys lists live records of kms wrapped under a version
	// below latest, owners after the given one, in owner order.
	StaleWrappedKeys(ctx context.Context, kms string, latest int, after string, limit int) ([]Record, error)
	// UpdateWrappedKeys replaces the blob and version of live records.
	UpdateWrappedKeys(ctx context.Context, recs []Record) error
	// EraseKey destroys owner's wrapped key and withdraws the resources
	// sealed under it from search, and, in the same transaction, records
	// the erasure (record: the ledger record, nil for none); it returns how
	// many resources were withdrawn, or ErrNoKey.
	EraseKey(ctx context.Context, owner string, record []byte) (int, error)
}

// ErrNoKey says an owner has no data key.
var ErrNoKey = errors.New("keys: no data key")

// Options tune a Keyring.
type Options struct {
	// CacheSize bounds the unwrapped keys held in memory (default 100,000).
	CacheSize int
	// TTL is how long an unwrapped key stays cached (default 10 minutes).
	TTL time.Duration
}

// Keyring hands out data keys: from its cache, or unwrapped by the KMS,
// each missing key once however many callers want it at the same time.
type Keyring struct {
	kms   KMS
	store Store
	cache *expirable.LRU[string, *DataKey]

	mu      sync.Mutex
	flights map[string]*flight

	kmsCalls atomic.Int64
}

type flight struct {
	done chan struct{}
	key  *DataKey
	err  error
}

// NewKeyring returns a keyring over kms and store.
func NewKeyring(kms KMS, store Store, opts Options) *Keyring {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100_000
	}
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Minute
	}
	return &Keyring{
		kms:     kms,
		store:   store,
		cache:   expirable.NewLRU[string, *DataKey](opts.CacheSize, nil, opts.TTL),
		flights: map[string]*flight{},
	}
}

// KMS returns the keyring's KMS.
func (k *Keyring) KMS() KMS { return k.kms }

// Purge drops every cached key, leaving the keyring as cold as a
// restarted server's.
func (k *Keyring) Purge() { k.cache.Purge() }

// KMSCalls counts the calls made to the KMS so far.
func (k *Keyring) KMSCalls() int64 { return k.kmsCalls.Load() }

// Open returns the data keys of stored records: cached ones at once, the
// others unwrapped in one KMS call. An erased record yields the erased
// key's tombstone.
func (k *Keyring) Open(ctx context.Context, recs []Record) (map[string]*DataKey, error) {
	out := make(map[string]*DataKey, len(recs))
	mine := map[string]*flight{}
	waits := map[string]*flight{}
	var todo []Record
	k.mu.Lock()
	for _, r := range recs {
		if out[r.Owner] != nil || mine[r.Owner] != nil || waits[r.Owner] != nil {
			continue
		}
		if r.Erased {
			dk := erasedKey(r.Owner)
			k.cache.Add(r.Owner, dk)
			out[r.Owner] = dk
			continue
		}
		if dk, ok := k.cache.Get(r.Owner); ok && !dk.erased {
			out[r.Owner] = dk
			continue
		}
		if f := k.flights[r.Owner]; f != nil {
			waits[r.Owner] = f
			continue
		}
		f := &flight{done: make(chan struct{})}
		k.flights[r.Owner] = f
		mine[r.Owner] = f
		todo = append(todo, r)
	}
	k.mu.Unlock()

	if len(todo) > 0 {
		keys, err := k.unwrap(ctx, todo)
		k.mu.Lock()
		for i, r := range todo {
			f := mine[r.Owner]
			if err != nil {
				f.err = err
			} else {
				f.key = keys[i]
				k.cache.Add(r.Owner, keys[i])
				out[r.Owner] = keys[i]
			}
			delete(k.flights, r.Owner)
			close(f.done)
		}
		k.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	for owner, f := range waits {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err != nil {
			return nil, f.err
		}
		out[owner] = f.key
	}
	return out, nil
}

func (k *Keyring) unwrap(ctx context.Context, recs []Record) ([]*DataKey, error) {
	ws := make([]Wrapped, len(recs))
	for i, r := range recs {
		if r.KMS != k.kms.Name() {
			return nil, fmt.Errorf("keys: the data key of %s was wrapped by %q, but the configured KMS is %q", r.Owner, r.KMS, k.kms.Name())
		}
		ws[i] = Wrapped{Owner: r.Owner, Version: r.Version, Blob: r.Blob}
	}
	k.kmsCalls.Add(1)
	plain, err := k.kms.Unwrap(ctx, ws)
	if err != nil {
		return nil, err
	}
	out := make([]*DataKey, len(recs))
	for i, r := range recs {
		if out[i], err = newDataKey(r.Owner, plain[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Keys returns the data keys the owners have, reading their records from
// the store for those not cached. Owners without a key are absent.
func (k *Keyring) Keys(ctx context.Context, owners []string) (map[string]*DataKey, error) {
	out := make(map[string]*DataKey, len(owners))
	var missing []string
	for _, o := range owners {
		if dk, ok := k.cache.Get(o); ok {
			out[o] = dk
		} else if out[o] == nil {
			missing = append(missing, o)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	recs, err := k.store.WrappedKeys(ctx, missing)
	if err != nil {
		return nil, err
	}
	if err := k.openInto(ctx, recs, out); err != nil {
		return nil, err
	}
	return out, nil
}

// openInto opens recs (Open) and adds their keys to out.
func (k *Keyring) openInto(ctx context.Context, recs []Record, out map[string]*DataKey) error {
	opened, err := k.Open(ctx, recs)
	for o, dk := range opened {
		out[o] = dk
	}
	return err
}

// Ensure returns the data keys of owners, creating the missing ones: fresh
// random keys, wrapped in one KMS call and stored before they are used.
// An erased owner yields its tombstone; it never gets a new key.
func (k *Keyring) Ensure(ctx context.Context, owners []string) (map[string]*DataKey, error) {
	out, err := k.Keys(ctx, owners)
	if err != nil {
		return nil, err
	}
	var create []string
	for _, o := range owners {
		if out[o] == nil && !contains(create, o) {
			create = append(create, o)
		}
	}
	if len(create) == 0 {
		return out, nil
	}
	plain := make([][]byte, len(create))
	for i := range create {
		if plain[i], err = randomKey(); err != nil {
			return nil, err
		}
	}
	k.kmsCalls.Add(1)
	wrapped, err := k.kms.Wrap(ctx, create, plain)
	if err != nil {
		return nil, err
	}
	recs := make([]Record, len(wrapped))
	for i, w := range wrapped {
		recs[i] = Record{Owner: w.Owner, KMS: k.kms.Name(), Version: w.Version, Blob: w.Blob}
	}
	if err := k.store.AddWrappedKeys(ctx, recs); err != nil {
		return nil, err
	}
	// Read back: where a concurrent creation won, its key is the one.
	stored, err := k.store.WrappedKeys(ctx, create)
	if err != nil {
		return nil, err
	}
	var others []Record
	for _, r := range stored {
		i := indexOf(create, r.Owner)
		if !r.Erased && bytes.Equal(r.Blob, recs[i].Blob) {
			dk, err := newDataKey(r.Owner, plain[i])
			if err != nil {
				return nil, err
			}
			k.cache.Add(r.Owner, dk)
			out[r.Owner] = dk
		} else {
			others = append(others, r)
		}
	}
	if err := k.openInto(ctx, others, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Erase destroys a patient's (or an export's) data key: the wrapped key
// is deleted from the store (a tombstone stays), the resources sealed
// under it leave search, and the cached key is dropped; record, the
// erasure's ledger record, is stored in the same transaction. It returns
// how many resources were withdrawn. The provider's own keys cannot be
// erased.
func (k *Keyring) Erase(ctx context.Context, owner string, record []byte) (int, error) {
	if !strings.HasPrefix(owner, "Patient/") && !strings.HasPrefix(owner, ExportOwner("")) {
		return 0, fmt.Errorf("keys: only a patient's or an export's key can be erased, not %q", owner)
	}
	n, err := k.store.EraseKey(ctx, owner, record)
	if err != nil {
		return 0, err
	}
	k.cache.Add(owner, erasedKey(owner))
	return n, nil
}

// Rotate makes the KMS start a new key version; Rewrap then moves every
// data key onto it.
func (k *Keyring) Rotate(ctx context.Context) (int, error) {
	k.kmsCalls.Add(1)
	return k.kms.Rotate(ctx)
}

// Rewrap rewraps every live data key wrapped under an older KMS key
// version to the newest one, batch keys per KMS call, and returns how many
// it rewrapped. The plaintext keys never leave the KMS. Each batch is
// stored as it completes, so an interrupted run is resumed by running it
// again. progress, when set, is told the running count after each batch.
func (k *Keyring) Rewrap(ctx context.Context, batch int, progress func(done int)) (int, error) {
	if batch <= 0 {
		batch = 250
	}
	k.kmsCalls.Add(1)
	latest, err := k.kms.Latest(ctx)
	if err != nil {
		return 0, err
	}
	done, after := 0, ""
	for {
		recs, err := k.store.StaleWrappedKeys(ctx, k.kms.Name(), latest, after, batch)
		if err != nil {
			return done, err
		}
		if len(recs) == 0 {
			return done, nil
		}
		ws := make([]Wrapped, len(recs))
		for i, r := range recs {
			ws[i] = Wrapped{Owner: r.Owner, Version: r.Version, Blob: r.Blob}
		}
		k.kmsCalls.Add(1)
		nw, err := k.kms.Rewrap(ctx, ws)
		if err != nil {
			return done, err
		}
		for i := range recs {
			recs[i].Blob, recs[i].Version = nw[i].Blob, nw[i].Version
		}
		if err := k.store.UpdateWrappedKeys(ctx, recs); err != nil {
			return done, err
		}
		done += len(recs)
		after = recs[len(recs)-1].Owner
		if progress != nil {
			progress(done)
		}
	}
}

func contains(s []string, v string) bool { return indexOf(s, v) >= 0 }

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
