package disclosure

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ehrledger/ehrledger/store"
)

// TestReadChunks checks that the chunks of a batch's keys cover every key
// once, one type per chunk, in sizes that are powers of two.
func TestReadChunks(t *testing.T) {
	var ks []store.OwnedKey
	for i := range 700 {
		owner := fmt.Sprintf("Patient/p%d", i%7)
		ks = append(ks, store.OwnedKey{Owner: owner, Key: store.Key{Type: "Observation", ID: fmt.Sprintf("o%03d", i)}})
		if i < 3 {
			ks = append(ks, store.OwnedKey{Owner: owner, Key: store.Key{Type: "Condition", ID: fmt.Sprintf("c%d", i)}})
		}
	}
	chunks := readChunks(ks)
	var sizes []int
	seen := map[store.Key]int{}
	for _, c := range chunks {
		sizes = append(sizes, len(c))
		for _, k := range c {
			if k.Type != c[0].Type {
				t.Fatalf("a chunk mixes %s and %s", c[0].Type, k.Type)
			}
		}
		for _, k := range slices.Compact(slices.Clone(c)) {
			seen[k]++
		}
	}
	if !slices.Equal(sizes, []int{4, 512, 256}) {
		t.Fatalf("chunk sizes %v, want [4 512 256]", sizes)
	}
	if len(seen) != len(ks) {
		t.Fatalf("%d distinct keys read, want %d", len(seen), len(ks))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%v read in %d chunks", k, n)
		}
	}
}
