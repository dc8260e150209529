package audit

import (
	"context"
	"encoding/binary"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the height of the log's tiles (C2SP tlog-tiles: 256
// hashes or entries per tile).
const TileHeight = 8

// Tile returns the data of a C2SP hash tile (t.L >= 0) or entry bundle
// (t.L == -1) of the tree as it is now; a tile beyond the tree is
// ErrBadRequest.
func (l *Log) Tile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	size, err := l.st.LedgerSize(ctx)
	if err != nil {
		return nil, err
	}
	if t.H != TileHeight || t.W < 1 || t.W > 1<<TileHeight || t.N < 0 {
		return nil, fmt.Errorf("%w: no such tile", ErrBadRequest)
	}
	level := max(t.L, 0)
	if t.N<<TileHeight+int64(t.W) > size>>(TileHeight*level) {
		return nil, fmt.Errorf("%w: the tree of size %d has no tile %s", ErrBadRequest, size, t.Path())
	}
	if t.L >= 0 {
		return tlog.ReadTileData(t, l.hashes)
	}
	from := t.N << TileHeight
	leaves, err := l.st.LedgerLeaves(ctx, from, from+int64(t.W))
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, lf := range leaves {
		out = binary.BigEndian.AppendUint16(out, uint16(len(lf.Data)))
		out = append(out, lf.Data...)
	}
	return out, nil
}
