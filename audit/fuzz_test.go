package audit

import (
	"math/big"
	"testing"
)

// FuzzTilePath parses tile paths as the ledger's HTTP face takes them
// (anyone may send one) and checks the bounds a tile is served within:
// never a panic, never a tile past the tree, whatever the numbers.
func FuzzTilePath(f *testing.F) {
	for _, seed := range []string{"0/000", "0/x001/234", "1/000.p/7", "entries/000", "entries/x001/002.p/5",
		"0/x001/x002/x003/x004/x005/x006/007", "9/000", "-1/000", "0/x999/x999/x999/x999/x999/x999/x999/999"} {
		f.Add(seed, int64(1000))
	}
	f.Fuzz(func(t *testing.T, path string, size int64) {
		if size < 0 {
			size = -size
		}
		tile, err := ParseTilePath(path)
		if err != nil || !tileIn(tile, size) {
			return
		}
		// The same bound in big integers, where nothing overflows.
		level := uint(max(tile.L, 0)) * TileHeight
		end := new(big.Int).Lsh(big.NewInt(tile.N), TileHeight)
		end.Add(end, big.NewInt(int64(tile.W)))
		if end.Cmp(new(big.Int).Rsh(big.NewInt(size), level)) > 0 {
			t.Fatalf("tile %s (N %d, W %d, L %d) is served from a tree of size %d", path, tile.N, tile.W, tile.L, size)
		}
	})
}
