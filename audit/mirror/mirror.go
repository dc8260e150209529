// Package mirror keeps a copy of each peer's log (docs/peers.md): it
// fetches the peer's cosigned checkpoint, its entry bundles and hash tiles,
// authenticates every tile against the signed root and every record
// against its leaf hash, checks the new tree extends the one copied
// before, and stores what it verified; the copy is served under
// /mirror/<origin>/ so that a peer's history stays available while the
// peer is down.
package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/store"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// width is the records of an entry bundle, the hashes of a tile.
const width = 1 << audit.TileHeight

// chunk bounds the records fetched and stored at a time while catching up.
const chunk = 16 * width

// maxBody bounds a tile or checkpoint fetched (a full bundle of maximal
// records is ~16 MiB).
const maxBody = 17 << 20

// ErrMismatch says a peer served tiles or records that do not match its
// signed checkpoint: its storage was altered, or it serves another tree.
var ErrMismatch = errors.New("mirror: the peer's data does not match its signed tree")

// Peer is a log to mirror.
type Peer struct {
	Origin   string
	Verifier note.Verifier // the log's checkpoint key
	URL      string        // the peer's base URL
}

// Store is what a mirror keeps: each peer's log as far as mirrored (its
// checkpoint and tiles), and the evidence against logs that signed two
// incompatible checkpoints (package store implements it).
type Store interface {
	Mirrored(ctx context.Context, origin string) (store.MirrorState, error)
	AdvanceMirror(ctx context.Context, from int64, next store.MirrorState) error
	MirrorTiles(ctx context.Context, origin string, keys []store.LedgerTileKey) ([]store.MirrorTile, error)
	PutMirrorTiles(ctx context.Context, origin string, tiles []store.MirrorTile) error
	Untrusted(ctx context.Context, origin string) (bool, error)
	audit.EvidenceStore
}

// Mirror copies peers' logs into the store.
type Mirror struct {
	st        Store
	peers     map[string]Peer
	cosigners []note.Verifier
	client    *http.Client
	log       *slog.Logger
	// OnEvidence, when set, is called once for each piece of evidence kept.
	OnEvidence func(origin string)

	mu     sync.Mutex
	status map[string]Status
}

// Status is how a peer's copy stands.
type Status struct {
	Origin  string    `json:"origin"`
	Size    int64     `json:"size"`
	Synced  time.Time `json:"last_sync,omitzero"`
	Error   string    `json:"last_error,omitempty"`
	Fetched int64     `json:"records_fetched"`
}

// New returns a mirror of peers. A checkpoint is mirrored only with a
// valid cosignature of one of cosigners (the witnesses known to this
// provider).
func New(st Store, peers []Peer, cosigners []note.Verifier, logger *slog.Logger) *Mirror {
	if logger == nil {
		logger = slog.Default()
	}
	m := &Mirror{st: st, peers: map[string]Peer{}, cosigners: cosigners, client: &http.Client{Timeout: 30 * time.Second}, log: logger, status: map[string]Status{}}
	for _, p := range peers {
		m.peers[p.Origin] = p
		m.status[p.Origin] = Status{Origin: p.Origin}
	}
	return m
}

// Origins lists the logs mirrored.
func (m *Mirror) Origins() []string {
	var out []string
	for o := range m.peers {
		out = append(out, o)
	}
	return out
}

// Status reports each copy.
func (m *Mirror) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Status
	for _, s := range m.status {
		out = append(out, s)
	}
	return out
}

// Run syncs every peer every interval until ctx ends.
func (m *Mirror) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for origin := range m.peers {
			wg.Go(func() {
				m.mu.Lock()
				before := m.status[origin].Error
				m.mu.Unlock()
				_, err := m.Sync(ctx, origin)
				switch {
				case err == nil || ctx.Err() != nil:
				case errors.Is(err, ErrMismatch) && err.Error() != before:
					m.log.Error("ALARM: a peer serves a log that does not match its signed checkpoint; the copy keeps what was verified", "origin", origin, "err", err)
				default:
					m.log.Debug("mirror: sync waits", "origin", origin, "err", err)
				}
			})
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync brings the copy of origin up to the peer's newest cosigned
// checkpoint and returns the records fetched.
func (m *Mirror) Sync(ctx context.Context, origin string) (n int64, err error) {
	defer func() {
		m.mu.Lock()
		s := m.status[origin]
		s.Synced, s.Error = time.Now().UTC(), ""
		if err != nil {
			s.Error = err.Error()
		}
		s.Fetched += n
		if cur, e := m.st.Mirrored(context.WithoutCancel(ctx), origin); e == nil {
			s.Size = cur.Size
		}
		m.status[origin] = s
		m.mu.Unlock()
	}()
	p, ok := m.peers[origin]
	if !ok {
		return 0, fmt.Errorf("mirror: %s is not a peer", origin)
	}
	// The copy of a log under suspicion stays as it was until an operator
	// acts.
	if untrusted, err := m.st.Untrusted(ctx, origin); err != nil {
		return 0, err
	} else if untrusted {
		return 0, fmt.Errorf("mirror: %s is untrusted: evidence is held against it", origin)
	}
	signed, err := m.get(ctx, p, "/ledger/checkpoint/cosigned")
	if err != nil {
		return 0, err
	}
	tree, err := m.open(p, signed)
	if err != nil {
		return 0, err
	}
	cur, err := m.st.Mirrored(ctx, origin)
	if errors.Is(err, store.ErrNotFound) {
		cur = store.MirrorState{Origin: origin}
	} else if err != nil {
		return 0, err
	}
	switch {
	case tree.N < cur.Size:
		return 0, nil // an older checkpoint, from a replica behind
	case tree.N == cur.Size && cur.Size > 0:
		if tree.Hash != tlog.Hash(cur.Root) {
			m.keepEvidence(ctx, origin, "two cosigned checkpoints of one size with different roots", cur.Note, signed)
			return 0, fmt.Errorf("mirror: %s signed two roots for size %d", origin, tree.N)
		}
		return 0, nil
	}
	tr := &tileReader{ctx: ctx, m: m, p: p, saved: map[tlog.Tile][]byte{}}
	hashes := tlog.TileHashReader(tree, tr)
	if cur.Size > 0 {
		// The new tree must hold the one copied before.
		old, err := tlog.TreeHash(cur.Size, hashes)
		if err != nil {
			return 0, fmt.Errorf("mirror: %s: %w", origin, err)
		}
		if old != tlog.Hash(cur.Root) {
			m.keepEvidence(ctx, origin, fmt.Sprintf("the tree of size %d does not extend the one of size %d", tree.N, cur.Size), cur.Note, signed)
			return 0, fmt.Errorf("mirror: %s's size %d does not extend size %d", origin, tree.N, cur.Size)
		}
	}
	for from := cur.Size; from < tree.N; from += chunk - from%chunk {
		to := min(tree.N, from+chunk-from%chunk)
		if err := m.copyRange(ctx, p, tr, hashes, from, to, tree.N); err != nil {
			return n, err
		}
		n += to - from
	}
	next := store.MirrorState{Origin: origin, Size: tree.N, Root: tree.Hash[:], Note: signed}
	if err := m.st.AdvanceMirror(ctx, cur.Size, next); err != nil {
		return n, err
	}
	return n, nil
}

// copyRange fetches records [from, to) of a tree of size, checks each
// against its authenticated leaf hash, and stores their bundles with the
// hash tiles authenticated on the way.
func (m *Mirror) copyRange(ctx context.Context, p Peer, tr *tileReader, hashes tlog.HashReader, from, to, size int64) error {
	// Every record of the bundles fetched is checked, those copied before
	// in a bundle that was partial too: the copy keeps a bundle's widest
	// version, which replaces the narrower one.
	first := from / width * width
	idx := make([]int64, 0, to-first)
	for i := first; i < to; i++ {
		idx = append(idx, tlog.StoredHashIndex(0, i))
	}
	leaves, err := hashes.ReadHashes(idx)
	if err != nil {
		return fmt.Errorf("%w: %s: the hash tiles do not lead to the signed root: %v", ErrMismatch, p.Origin, err)
	}
	var tiles []store.MirrorTile
	for b := from / width; b*width < to; b++ {
		w := int(min(width, size-b*width))
		t := tlog.Tile{H: audit.TileHeight, L: -1, N: b, W: w}
		data, err := m.get(ctx, p, "/ledger/"+audit.TilePath(t))
		if err != nil {
			return err
		}
		recs, err := audit.Entries(data)
		if err != nil || len(recs) != w {
			return fmt.Errorf("mirror: %s: entry bundle %d holds %d records, want %d", p.Origin, b, len(recs), w)
		}
		for i, r := range recs {
			n := b*width + int64(i)
			if n < to && tlog.RecordHash(r) != leaves[n-first] {
				return fmt.Errorf("%w: %s: record %d does not match its leaf hash", ErrMismatch, p.Origin, n)
			}
		}
		tiles = append(tiles, store.MirrorTile{Level: -1, N: b, Width: w, Data: data})
	}
	for t, data := range tr.saved {
		tiles = append(tiles, store.MirrorTile{Level: t.L, N: t.N, Width: t.W, Data: data})
	}
	clear(tr.saved)
	return m.st.PutMirrorTiles(ctx, p.Origin, tiles)
}

// open checks a checkpoint's log signature and that one of the known
// witnesses cosigned it, and returns its tree.
func (m *Mirror) open(p Peer, signed []byte) (tlog.Tree, error) {
	if _, err := note.Open(signed, note.VerifierList(p.Verifier)); err != nil {
		return tlog.Tree{}, fmt.Errorf("mirror: %s's checkpoint does not verify: %w", p.Origin, err)
	}
	cosigned := false
	for _, v := range m.cosigners {
		if n, err := note.Open(signed, note.VerifierList(v)); err == nil && len(n.Sigs) > 0 {
			cosigned = true
			break
		}
	}
	if !cosigned {
		return tlog.Tree{}, fmt.Errorf("mirror: %s's checkpoint carries no cosignature of a known witness", p.Origin)
	}
	var c log.Checkpoint
	if _, err := c.Unmarshal(signed); err != nil || c.Origin != p.Origin || len(c.Hash) != tlog.HashSize || c.Size > 1<<62 {
		return tlog.Tree{}, fmt.Errorf("mirror: %s's checkpoint is malformed", p.Origin)
	}
	return tlog.Tree{N: int64(c.Size), Hash: tlog.Hash(c.Hash)}, nil
}

func (m *Mirror) keepEvidence(ctx context.Context, origin, reason string, first, second []byte) {
	audit.KeepEvidence(ctx, m.st, m.log, store.Evidence{Origin: origin, Reason: reason, First: first, Second: second}, m.OnEvidence)
}

func (m *Mirror) get(ctx context.Context, p Peer, path string) ([]byte, error) {
	u := strings.TrimSuffix(p.URL, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u, maxBody)
	}
	return b, nil
}

// tileReader reads a peer's hash tiles from the peer, never from the
// copy (a fork must show as a root that differs, not as a copy that does
// not fit), and keeps those tlog authenticated.
type tileReader struct {
	ctx   context.Context
	m     *Mirror
	p     Peer
	saved map[tlog.Tile][]byte
}

func (r *tileReader) Height() int { return audit.TileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		var err error
		if out[i], err = r.m.get(r.ctx, r.p, "/ledger/"+audit.TilePath(t)); err != nil {
			return nil, err
		}
		if len(out[i]) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("mirror: %s: tile %s has %d bytes, want %d", r.p.Origin, audit.TilePath(t), len(out[i]), t.W*tlog.HashSize)
		}
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	for i, t := range tiles {
		r.saved[t] = bytes.Clone(data[i])
	}
}

// Tile returns the data of a tile of origin's copy as of its mirrored
// checkpoint, or store.ErrNotFound.
func (m *Mirror) Tile(ctx context.Context, origin string, t tlog.Tile) ([]byte, error) {
	cur, err := m.st.Mirrored(ctx, origin)
	if err != nil {
		return nil, err
	}
	level := max(t.L, 0)
	if t.W < 1 || t.W > width || t.N < 0 || level*audit.TileHeight >= 63 || t.N<<audit.TileHeight+int64(t.W) > cur.Size>>(audit.TileHeight*level) {
		return nil, store.ErrNotFound
	}
	got, err := m.st.MirrorTiles(ctx, origin, []store.LedgerTileKey{{Level: t.L, N: t.N}})
	if err != nil {
		return nil, err
	}
	s := got[0]
	if s.Width < t.W {
		return nil, store.ErrNotFound
	}
	if t.L >= 0 {
		return s.Data[:t.W*tlog.HashSize], nil
	}
	out, ok := audit.FirstEntries(s.Data, t.W)
	if !ok {
		return nil, fmt.Errorf("mirror: %s: stored bundle %d is damaged", origin, t.N)
	}
	return out, nil
}

// Checkpoint returns origin's mirrored checkpoint, or store.ErrNotFound.
func (m *Mirror) Checkpoint(ctx context.Context, origin string) ([]byte, error) {
	if _, ok := m.peers[origin]; !ok {
		return nil, store.ErrNotFound
	}
	cur, err := m.st.Mirrored(ctx, origin)
	if err != nil {
		return nil, err
	}
	return cur.Note, nil
}

// Find splits a path under /mirror/ into the origin it names and the rest.
func (m *Mirror) Find(path string) (origin, rest string, ok bool) {
	for o := range m.peers {
		if r, found := strings.CutPrefix(path, o+"/"); found && len(o) > len(origin) {
			origin, rest, ok = o, r, true
		}
	}
	return origin, rest, ok
}
