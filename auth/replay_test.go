package auth

import (
	"testing"
	"time"
)

func TestReplayCacheBoundedAndExpiring(t *testing.T) {
	c := newReplayCache(3)
	t0 := time.Unix(1_800_000_000, 0)
	if got := c.add("a", "1", t0.Add(time.Minute), t0); got != replayFresh {
		t.Fatalf("first use: %v", got)
	}
	if got := c.add("a", "1", t0.Add(time.Minute), t0); got != replaySeen {
		t.Fatalf("replay: %v", got)
	}
	if got := c.add("b", "1", t0.Add(2*time.Minute), t0); got != replayFresh {
		t.Fatalf("same jti, other client: %v", got)
	}
	if got := c.add("a", "2", t0.Add(3*time.Minute), t0); got != replayFresh {
		t.Fatalf("third entry: %v", got)
	}
	// Full: a fourth unexpired entry is refused rather than stored.
	if got := c.add("a", "3", t0.Add(time.Minute), t0); got != replayOverflow {
		t.Fatalf("over the bound: %v", got)
	}
	if c.size() != 3 {
		t.Fatalf("size %d", c.size())
	}
	// Once the first entry expires it is dropped, making room, and its jti
	// is no longer remembered.
	t1 := t0.Add(time.Minute)
	if got := c.add("a", "3", t1.Add(time.Minute), t1); got != replayFresh {
		t.Fatalf("after expiry: %v", got)
	}
	if got := c.add("b", "1", t1.Add(time.Minute), t1); got != replaySeen {
		t.Fatalf("unexpired entry forgotten: %v", got)
	}
	t2 := t0.Add(10 * time.Minute)
	if got := c.add("a", "1", t2.Add(time.Minute), t2); got != replayFresh {
		t.Fatalf("expired jti: %v", got)
	}
	if c.size() != 1 {
		t.Fatalf("size %d after all expired, want 1", c.size())
	}
}
