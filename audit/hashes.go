package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/ehrledger/ehrledger/store"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/mod/sumdb/tlog"
)

// hashCache reads the log's stored hashes through an LRU cache of recent
// ones: placing record n reads the roots of the complete subtrees to its
// left, which the previous records just made. Hashes not cached come from
// the stored tiles, which tlog authenticates against the tree's root
// before they are used.
type hashCache struct {
	tiles *tileStore
	cache *lru.Cache[int64, tlog.Hash]
}

func newHashCache(st Tiles) *hashCache {
	c, _ := lru.New[int64, tlog.Hash](1 << 16)
	return &hashCache{tiles: newTileStore(st), cache: c}
}

// reader returns a tlog.HashReader of the tree, which must be the stored
// one (or one the stored tiles extend), seeing staged hashes first.
func (h *hashCache) reader(tree tlog.Tree, staged map[int64]tlog.Hash) tlog.HashReader {
	tiles := tlog.TileHashReader(tree, h.tiles)
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		var miss []int64
		var at []int
		for i, x := range indexes {
			if v, ok := staged[x]; ok {
				out[i] = v
			} else if v, ok := h.cache.Get(x); ok {
				out[i] = v
			} else {
				miss = append(miss, x)
				at = append(at, i)
			}
		}
		if len(miss) == 0 {
			return out, nil
		}
		got, err := tiles.ReadHashes(miss)
		var read readError
		if errors.As(err, &read) {
			return nil, read.err // the store failed, the tiles were not checked
		}
		if err != nil {
			return nil, fmt.Errorf("%w: the stored tiles do not give the tree of size %d: %v", ErrTampered, tree.N, err)
		}
		for j, v := range got {
			out[at[j]] = v
			h.cache.Add(miss[j], v)
		}
		return out, nil
	})
}

// commit caches the hashes of an integrated batch.
func (h *hashCache) commit(added map[int64]tlog.Hash) {
	for idx, v := range added {
		h.cache.Add(idx, v)
	}
}

// stored returns a reader of a stored tree of at least atLeast records (the
// one this sequencer last committed when it has that many, else the one
// stored now), and its size.
func (l *Log) stored(ctx context.Context, atLeast int64) (tlog.HashReader, int64, error) {
	if e := l.edge.Load(); e != nil && e.size >= atLeast && e.size > 0 {
		return l.hashes.reader(tlog.Tree{N: e.size, Hash: e.root}, nil), e.size, nil
	}
	size, root, err := l.st.LedgerState(ctx)
	if err != nil {
		return nil, 0, err
	}
	return l.hashes.reader(tlog.Tree{N: size, Hash: pad(root)}, nil), size, nil
}

// pad returns a stored root as a hash (the empty tree's stored root is
// empty).
func pad(root []byte) (h tlog.Hash) {
	copy(h[:], root)
	return h
}

// edge is the size and root of the stored tree, which the sequencer's
// next batch extends.
type edge struct {
	size int64
	root tlog.Hash
}

// edgeAt returns the stored tree of the given size: the sequencer's own
// from its last batch, or read from the store when another sequencer
// integrated since.
func (l *Log) edgeAt(ctx context.Context, size int64) (edge, error) {
	if e := l.edge.Load(); e != nil && e.size == size {
		return *e, nil
	}
	got, root, err := l.st.LedgerState(ctx)
	if err != nil {
		return edge{}, err
	}
	if got != size {
		return edge{}, fmt.Errorf("audit: the log has %d records, not the %d its lease row gave", got, size)
	}
	return edge{size: size, root: pad(root)}, nil
}

// place computes what records numbered size, size+1, ... add to the tree:
// their parts of the tiles and bundles they extend, the new root and
// edge, and the stored hashes they make, which are cached only once
// committed.
func (l *Log) place(ctx context.Context, size int64, recs [][]byte) (*store.LedgerPlacement, edge, map[int64]tlog.Hash, error) {
	e, err := l.edgeAt(ctx, size)
	if err != nil {
		return nil, edge{}, nil, err
	}
	staged := map[int64]tlog.Hash{}
	r := l.hashes.reader(tlog.Tree{N: size, Hash: e.root}, staged)
	for i, data := range recs {
		if len(data) > store.MaxLedgerRecord {
			return nil, edge{}, nil, fmt.Errorf("audit: a record of %d bytes is larger than the %d an entry bundle holds", len(data), store.MaxLedgerRecord)
		}
		n := size + int64(i)
		hs, err := tlog.StoredHashes(n, data, r)
		if err != nil {
			return nil, edge{}, nil, err
		}
		base := tlog.StoredHashIndex(0, n)
		for j, v := range hs {
			staged[base+int64(j)] = v
		}
	}
	end := size + int64(len(recs))
	root, err := tlog.TreeHash(end, r)
	if err != nil {
		return nil, edge{}, nil, err
	}
	p := &store.LedgerPlacement{Root: root[:]}
	for level := -1; level == -1 || end>>(TileHeight*level) > 0; level++ {
		shift := TileHeight * max(level, 0)
		from, to := size>>shift, end>>shift
		var cur []byte
		pos := int(from % tileWidth)
		for i := from; i < to; i++ {
			if level == -1 {
				cur = appendEntry(cur, recs[i-size])
			} else {
				h, ok := staged[tlog.StoredHashIndex(level*TileHeight, i)]
				if !ok {
					return nil, edge{}, nil, fmt.Errorf("audit: record %d made no hash %d at level %d", end-1, i, level*TileHeight)
				}
				cur = append(cur, h[:]...)
			}
			// Entry bundles are stored in parts of at most partEntries
			// records, aligned, so that one record is read without its
			// whole bundle (lookups.go).
			if (i+1)%tileWidth == 0 || i+1 == to || level == -1 && (i+1)%partEntries == 0 {
				p.Parts = append(p.Parts, store.LedgerTilePart{Level: level, N: i / tileWidth, Pos: pos, Data: cur})
				cur, pos = nil, int((i+1)%tileWidth)
			}
		}
	}
	return p, edge{size: end, root: root}, staged, nil
}
