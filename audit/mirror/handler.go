package mirror

import (
	"errors"
	"net/http"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/store"
)

// ServeHTTP serves this provider's copy of each peer's log as the peer
// serves it under /ledger/, at <origin>/checkpoint (the cosigned
// checkpoint mirrored, also at <origin>/checkpoint/cosigned) and
// <origin>/tile/... (C2SP tlog-tiles), the path relative to where it is
// mounted. Answers are plain text: 404 for what it does not hold, 503
// when its store fails.
func (m *Mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin, rest, ok := m.Find(strings.TrimPrefix(r.URL.Path, "/"))
	if !ok {
		http.Error(w, "no mirrored log at "+r.URL.Path, http.StatusNotFound)
		return
	}
	switch {
	case rest == "checkpoint" || rest == "checkpoint/cosigned":
		cp, err := m.Checkpoint(r.Context(), origin)
		if m.failed(w, err) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(cp)
	case strings.HasPrefix(rest, "tile/"):
		t, err := audit.ParseTilePath(strings.TrimPrefix(rest, "tile/"))
		if err != nil {
			http.Error(w, "no tile at "+r.URL.Path, http.StatusNotFound)
			return
		}
		data, err := m.Tile(r.Context(), origin, t)
		if m.failed(w, err) {
			return
		}
		audit.WriteTile(w, t, data)
	default:
		http.Error(w, "a mirror serves checkpoint and tile/...; no "+rest, http.StatusNotFound)
	}
}

// failed answers err, when there is one: 404 for what is not held, 503
// (logged) otherwise.
func (m *Mirror) failed(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, "not mirrored (yet)", http.StatusNotFound)
	default:
		m.log.Error("mirror: serving a mirrored log failed", "err", err)
		http.Error(w, "the mirror cannot be read just now; try again", http.StatusServiceUnavailable)
	}
	return true
}
