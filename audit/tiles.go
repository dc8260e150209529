package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ehrledger/ehrledger/store"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/mod/sumdb/tlog"
)

// The log is stored as what C2SP tlog-tiles serves: hash tiles of height
// TileHeight (each row of them holds the hashes of one tree level that is
// a multiple of TileHeight) and entry bundles (tlog level -1). The newest
// tile of each level is partial and grows; a full one never changes.

// TileHeight is the height of the log's tiles (C2SP tlog-tiles: 256
// hashes or entries per tile).
const TileHeight = 8

const tileWidth = 1 << TileHeight

// appendEntry adds a record to an entry bundle: its length in two
// big-endian bytes, then the record.
func appendEntry(bundle, record []byte) []byte {
	bundle = binary.BigEndian.AppendUint16(bundle, uint16(len(record)))
	return append(bundle, record...)
}

// TilePath is a tile's C2SP tlog-tiles path: tile/<L>/<N>[.p/<W>], or
// tile/entries/<N>[.p/<W>] for an entry bundle.
func TilePath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), fmt.Sprintf("tile/%d/", t.H))
	if rest, ok := strings.CutPrefix(p, "data/"); ok {
		p = "entries/" + rest
	}
	return "tile/" + p
}

// ParseTilePath reads a C2SP tile path after its "tile/".
func ParseTilePath(rest string) (tlog.Tile, error) {
	if e, ok := strings.CutPrefix(rest, "entries/"); ok {
		return tlog.ParseTilePath(fmt.Sprintf("tile/%d/data/%s", TileHeight, e))
	}
	return tlog.ParseTilePath(fmt.Sprintf("tile/%d/%s", TileHeight, rest))
}

// Entries splits a C2SP entry bundle into its records.
func Entries(bundle []byte) ([][]byte, error) {
	var out [][]byte
	for len(bundle) > 0 {
		if len(bundle) < 2 {
			return nil, errors.New("a truncated entry bundle")
		}
		n := int(binary.BigEndian.Uint16(bundle))
		if len(bundle) < 2+n {
			return nil, errors.New("a truncated entry bundle")
		}
		out = append(out, bundle[2:2+n:2+n])
		bundle = bundle[2+n:]
	}
	return out, nil
}

// tileStore reads hash tiles from the store (a tlog.TileReader), keeping
// those tlog authenticated in a cache.
type tileStore struct {
	st    Tiles
	cache *lru.Cache[tlog.Tile, []byte] // by tile and width
}

func newTileStore(st Tiles) *tileStore {
	c, _ := lru.New[tlog.Tile, []byte](1024) // 8 MiB
	return &tileStore{st: st, cache: c}
}

func (ts *tileStore) Height() int { return TileHeight }

// ReadTiles implements tlog.TileReader: a stored tile wider than asked
// (the log grew since) is cut to the width asked for.
func (ts *tileStore) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	var keys []store.LedgerTileKey
	var at []int
	for i, t := range tiles {
		if d, ok := ts.cache.Get(t); ok {
			out[i] = d
			continue
		}
		keys = append(keys, store.LedgerTileKey{Level: t.L, N: t.N})
		at = append(at, i)
	}
	if len(keys) == 0 {
		return out, nil
	}
	got, err := ts.st.LedgerTiles(context.Background(), keys)
	if err != nil {
		return nil, readError{err}
	}
	for j, d := range got {
		t := tiles[at[j]]
		want := t.W * tlog.HashSize
		if t.L == -1 {
			return nil, errors.New("audit: entry bundles are not hash tiles")
		}
		if len(d) < want {
			return nil, fmt.Errorf("%w: tile %s holds %d bytes, not %d", ErrTampered, t.Path(), len(d), want)
		}
		out[at[j]] = d[:want:want]
	}
	return out, nil
}

// readError is a store error reading tiles, told apart from tlog finding
// them inconsistent.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// SaveTiles implements tlog.TileReader: it caches the tiles tlog
// authenticated. A partial one is cached too: a tile of a given width
// never changes, the log only adds wider ones.
func (ts *tileStore) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	for i, t := range tiles {
		ts.cache.Add(t, data[i])
	}
}

// Tile returns the data of a C2SP hash tile (t.L >= 0) or entry bundle
// (t.L == -1) of the tree as it is now; a tile beyond the tree is
// ErrNotInLog.
func (l *Log) Tile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	size, err := l.st.LedgerSize(ctx)
	if err != nil {
		return nil, err
	}
	if !tileIn(t, size) {
		return nil, fmt.Errorf("%w: the tree of size %d has no tile %s", ErrNotInLog, size, t.Path())
	}
	got, err := l.st.LedgerTiles(ctx, []store.LedgerTileKey{{Level: t.L, N: t.N}})
	if err != nil {
		return nil, err
	}
	data := got[0]
	if t.L >= 0 {
		if len(data) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("%w: tile %s is shorter than the tree says", ErrTampered, t.Path())
		}
		return data[:t.W*tlog.HashSize], nil
	}
	out, ok := FirstEntries(data, t.W)
	if !ok {
		return nil, fmt.Errorf("%w: entry bundle %s is shorter than the tree says", ErrTampered, t.Path())
	}
	return out, nil
}

// tileIn reports whether the tree of size has tile t (of TileHeight, at
// most as wide as the tree has filled it).
func tileIn(t tlog.Tile, size int64) bool {
	if t.H != TileHeight || t.W < 1 || t.W > tileWidth || t.N < 0 || t.L < -1 {
		return false
	}
	level := max(t.L, 0)
	if level*TileHeight >= 63 {
		return false
	}
	// N is compared before it is shifted: a huge N would overflow.
	width := size >> (TileHeight * level) // the level's nodes
	return t.N <= width>>TileHeight && t.N<<TileHeight+int64(t.W) <= width
}

// FirstEntries is the entry bundle of the first w records of bundle, as
// a partial bundle of width w is served; false when it holds fewer.
func FirstEntries(bundle []byte, w int) ([]byte, bool) {
	recs, err := Entries(bundle)
	if err != nil || len(recs) < w {
		return nil, false
	}
	var out []byte
	for _, r := range recs[:w] {
		out = appendEntry(out, r)
	}
	return out, true
}

// Record returns the record at index n.
func (l *Log) Record(ctx context.Context, n int64) ([]byte, error) {
	size, err := l.st.LedgerSize(ctx)
	if err != nil {
		return nil, err
	}
	if n < 0 || n >= size {
		return nil, fmt.Errorf("%w: no record %d", ErrNotInLog, n)
	}
	got, err := l.recordsAt(ctx, []int64{n})
	if err != nil {
		return nil, err
	}
	if got[n] == nil {
		return nil, fmt.Errorf("%w: record %d is missing from its entry bundle", ErrTampered, n)
	}
	return got[n], nil
}

// partEntries bounds the records of one stored part of an entry bundle;
// parts begin at multiples of it or after them (hashes.go).
const partEntries = 16

// recordsAt reads the records at the given indexes from the parts of the
// entry bundles that hold them; an index not stored has no entry.
func (l *Log) recordsAt(ctx context.Context, indexes []int64) (map[int64][]byte, error) {
	ranges := make([]store.LedgerPartRange, 0, len(indexes))
	seen := map[store.LedgerPartRange]bool{}
	for _, n := range indexes {
		off := int(n % tileWidth)
		r := store.LedgerPartRange{N: n / tileWidth, From: off - off%partEntries, To: off}
		if !seen[r] {
			seen[r] = true
			ranges = append(ranges, r)
		}
	}
	parts, err := l.st.LedgerBundleParts(ctx, ranges)
	if err != nil {
		return nil, err
	}
	want := make(map[int64]bool, len(indexes))
	for _, n := range indexes {
		want[n] = true
	}
	out := make(map[int64][]byte, len(indexes))
	for _, p := range parts {
		recs, err := Entries(p.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: entry bundle %d: %v", ErrTampered, p.N, err)
		}
		for i, r := range recs {
			if n := p.N*tileWidth + int64(p.Pos+i); want[n] {
				out[n] = r
			}
		}
	}
	return out, nil
}

// Records returns the stored records with indexes in [from, to) (those
// stored: the caller checks the count against the tree size), in order.
func (l *Log) Records(ctx context.Context, from, to int64) ([]store.LedgerRecord, error) {
	if from >= to {
		return nil, nil
	}
	bundles, err := l.st.LedgerTileRange(ctx, -1, from>>TileHeight, (to-1)>>TileHeight+1)
	if err != nil {
		return nil, err
	}
	var out []store.LedgerRecord
	for _, b := range bundles {
		recs, err := Entries(b.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: entry bundle %d: %v", ErrTampered, b.N, err)
		}
		for i, r := range recs {
			if n := b.N<<TileHeight + int64(i); n >= from && n < to {
				out = append(out, store.LedgerRecord{Index: n, Data: r})
			}
		}
	}
	return out, nil
}

// WriteTile answers tile t's data over HTTP as C2SP tlog-tiles serves it:
// a full tile or bundle never changes and may be cached for a year, a
// partial one not at all. The log's own tiles and the mirrors of peers'
// are written by it alike.
func WriteTile(w http.ResponseWriter, t tlog.Tile, data []byte) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.W == 1<<TileHeight {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Write(data)
}
