package auth

import (
	"container/heap"
	"sync"
	"time"
)

// maxReplayEntries bounds the number of unexpired assertion ids the replay
// cache holds; past it, new assertions are refused until some expire.
const maxReplayEntries = 100_000

// replayCache remembers the (client, jti) pairs of accepted assertions
// until their expiry, so that each assertion is used once.
type replayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[replayKey]time.Time
	queue expiryHeap
}

// replayKey identifies one assertion.
type replayKey struct{ client, jti string }

// replayOutcome is the answer of replayCache.add.
type replayOutcome int

const (
	replayFresh    replayOutcome = iota // first use, now remembered
	replaySeen                          // already used and not yet expired
	replayOverflow                      // the cache is full
)

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: map[replayKey]time.Time{}}
}

// add records the assertion (client, jti) valid until until, first
// dropping the entries expired at now.
func (c *replayCache) add(client, jti string, until, now time.Time) replayOutcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && !c.queue[0].until.After(now) {
		e := heap.Pop(&c.queue).(expiryEntry)
		delete(c.seen, e.key)
	}
	k := replayKey{client, jti}
	if _, ok := c.seen[k]; ok {
		return replaySeen
	}
	if len(c.seen) >= c.max {
		return replayOverflow
	}
	c.seen[k] = until
	heap.Push(&c.queue, expiryEntry{key: k, until: until})
	return replayFresh
}

// size returns the number of remembered assertions.
func (c *replayCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// expiryEntry is one remembered assertion in expiry order.
type expiryEntry struct {
	key   replayKey
	until time.Time
}

// expiryHeap is a min-heap of entries by expiry, for container/heap.
type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
