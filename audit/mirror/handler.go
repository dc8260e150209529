package mirror

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/store"
)

// Handler serves this provider's copy of each peer's log as the peer
// serves it under /ledger/, at <origin>/checkpoint (the cosigned
// checkpoint mirrored, also at <origin>/checkpoint/cosigned) and
// <origin>/tile/... (C2SP tlog-tiles), the paths relative to where it is
// mounted. A question that fails goes to fail with an error wrapping
// audit.ErrNotInLog (404) or another; nil fail answers in plain text.
func (m *Mirror) Handler(fail func(http.ResponseWriter, *http.Request, error)) http.Handler {
	if fail == nil {
		fail = m.plain
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := m.serve(w, r); err != nil {
			fail(w, r, err)
		}
	})
}

func (m *Mirror) serve(w http.ResponseWriter, r *http.Request) error {
	origin, rest, ok := m.Find(strings.TrimPrefix(r.URL.Path, "/"))
	if !ok {
		return fmt.Errorf("%w: no mirrored log at %s", audit.ErrNotInLog, r.URL.Path)
	}
	switch {
	case rest == "checkpoint" || rest == "checkpoint/cosigned":
		cp, err := m.Checkpoint(r.Context(), origin)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: nothing of %s is mirrored yet", audit.ErrNotInLog, origin)
		}
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(cp)
	case strings.HasPrefix(rest, "tile/"):
		t, err := audit.ParseTilePath(strings.TrimPrefix(rest, "tile/"))
		if err != nil {
			return fmt.Errorf("%w: no tile at %s", audit.ErrNotInLog, r.URL.Path)
		}
		data, err := m.Tile(r.Context(), origin, t)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: the mirror of %s holds no tile %s", audit.ErrNotInLog, origin, rest)
		}
		if err != nil {
			return err
		}
		audit.WriteTile(w, t, data)
	default:
		return fmt.Errorf("%w: a mirror serves checkpoint and tile/...; no %s", audit.ErrNotInLog, rest)
	}
	return nil
}

// plain answers a failed question in plain text.
func (m *Mirror) plain(w http.ResponseWriter, _ *http.Request, err error) {
	if errors.Is(err, audit.ErrNotInLog) {
		http.Error(w, strings.TrimPrefix(err.Error(), "audit: "), http.StatusNotFound)
		return
	}
	m.log.Error("mirror: serving a mirrored log failed", "err", err)
	http.Error(w, "the mirror cannot be read just now; try again", http.StatusServiceUnavailable)
}
