package audit

import (
	"context"
	"time"

	"github.com/ehrledger/ehrledger/store"
)

// What the log keeps in its database, as the small interfaces it needs
// (package store implements them all): the tree as tiles, the sequencer's
// lease and queue, signed checkpoints, the records' openings, and the
// lookup table derived from the log.

// Tiles reads the tree: its size and root, hash tiles and entry bundles.
type Tiles interface {
	LedgerState(ctx context.Context) (size int64, root []byte, err error)
	LedgerSize(ctx context.Context) (int64, error)
	LedgerTiles(ctx context.Context, keys []store.LedgerTileKey) ([][]byte, error)
	LedgerTileRange(ctx context.Context, level int, from, to int64) ([]store.LedgerTile, error)
	LedgerBundleParts(ctx context.Context, ranges []store.LedgerPartRange) ([]store.LedgerTilePart, error)
}

// Sequencing is the sequencer's: its lease, the queue of records written
// by write transactions or handed over by other replicas, and the
// integration of a batch in one transaction.
type Sequencing interface {
	LedgerLease(ctx context.Context) (holder string, until time.Time, err error)
	LedgerQueued(ctx context.Context) (bool, error)
	QueueLedger(ctx context.Context, entries []store.LedgerEntry) ([]int64, error)
	LedgerIndexes(ctx context.Context, queueIDs []int64) (map[int64]int64, error)
	IntegrateLedger(ctx context.Context, holder string, ttl time.Duration, entries []store.LedgerEntry, limit int,
		place func(size int64, records []store.LedgerEntry) (*store.LedgerPlacement, error)) (int64, error)
}

// Checkpoints keeps the signed checkpoints.
type Checkpoints interface {
	AddLedgerCheckpoint(ctx context.Context, c store.LedgerCheckpoint) error
	LedgerCheckpoints(ctx context.Context, limit int) ([]store.LedgerCheckpoint, error)
}

// Openings reads the records' openings kept beside the log.
type Openings interface {
	LedgerOpenings(ctx context.Context, idx []int64) (map[int64]store.LedgerOpening, error)
}

// Lookups is the lookup table: records by leaf hash and by patient.
type Lookups interface {
	AddLedgerLookups(ctx context.Context, through int64, rows []store.LedgerLookup) error
	LedgerLookedUp(ctx context.Context) (int64, error)
	LedgerIndexesOf(ctx context.Context, patientKey, fromUs, toUs, after int64, limit int) ([]int64, error)
	LedgerIndexesByHash(ctx context.Context, hashKey int64) ([]int64, error)
	ForgetLedgerPatient(ctx context.Context, owner string, patientKey int64) error
}

// Store is all the log keeps.
type Store interface {
	Tiles
	Sequencing
	Checkpoints
	Openings
	Lookups
}

var _ Store = (*store.Store)(nil)
