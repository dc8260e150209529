package auth

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

var _ AssertionLog = (*replayCache)(nil)

// maxReplayEntries bounds the number of unexpired assertion ids the replay
// cache holds; past it, new assertions are refused until some expire.
const maxReplayEntries = 100_000

// AssertionLog remembers the client assertions the token endpoint
// accepted, so that each is used once (RFC 7523, section 3).
type AssertionLog interface {
	// UseAssertion records that client used the assertion jti, which
	// stays valid until until. It returns false when that pair is already
	// recorded and not expired at now. Of concurrent calls with one pair,
	// exactly one returns true. An error wrapping ErrAssertionLogFull
	// says no more can be recorded for now.
	UseAssertion(ctx context.Context, client, jti string, until, now time.Time) (bool, error)
}

// ErrAssertionLogFull is returned by an AssertionLog that is full.
var ErrAssertionLogFull = errors.New("auth: too many client assertions in use")

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

// UseAssertion implements AssertionLog in memory, for one process.
func (c *replayCache) UseAssertion(_ context.Context, client, jti string, until, now time.Time) (bool, error) {
	switch c.add(client, jti, until, now) {
	case replaySeen:
		return false, nil
	case replayOverflow:
		return false, ErrAssertionLogFull
	}
	return true, nil
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
