package audit

import (
	"context"

	"github.com/ehrledger/ehrledger/store"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/mod/sumdb/tlog"
)

// hashCache reads the log's stored hashes (a tlog.HashReader) through an
// LRU cache of recent ones: placing record n reads the roots of the
// complete subtrees to its left, which the previous records just wrote.
type hashCache struct {
	st    *store.Store
	cache *lru.Cache[int64, tlog.Hash]
}

func newHashCache(st *store.Store) *hashCache {
	c, _ := lru.New[int64, tlog.Hash](1 << 16)
	return &hashCache{st: st, cache: c}
}

// ReadHashes implements tlog.HashReader.
func (h *hashCache) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return h.read(indexes, nil)
}

func (h *hashCache) read(indexes []int64, staged map[int64]tlog.Hash) ([]tlog.Hash, error) {
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
	got, err := h.st.LedgerHashes(context.Background(), miss)
	if err != nil {
		return nil, err
	}
	for j, b := range got {
		var v tlog.Hash
		copy(v[:], b)
		out[at[j]] = v
		h.cache.Add(miss[j], v)
	}
	return out, nil
}

// place computes the stored hashes that records numbered size, size+1, ...
// add, without caching them until commit.
func (h *hashCache) place(size int64, recs [][]byte) (map[int64]tlog.Hash, error) {
	staged := map[int64]tlog.Hash{}
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return h.read(idx, staged) })
	for i, data := range recs {
		n := size + int64(i)
		hs, err := tlog.StoredHashes(n, data, r)
		if err != nil {
			return nil, err
		}
		base := tlog.StoredHashIndex(0, n)
		for j, v := range hs {
			staged[base+int64(j)] = v
		}
	}
	return staged, nil
}

// commit caches the hashes of an integrated batch.
func (h *hashCache) commit(added map[int64]tlog.Hash) {
	for idx, v := range added {
		h.cache.Add(idx, v)
	}
}
