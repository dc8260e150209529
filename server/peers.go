package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/ehrledger/ehrledger/audit/mirror"
	"github.com/ehrledger/ehrledger/audit/witness"
	"github.com/ehrledger/ehrledger/store"
)

// The peers' endpoints (docs/peers.md): this provider as a witness of its
// peers' logs (C2SP tlog-witness), its own log's cosigned checkpoint, and
// the state of both. They speak plain text and JSON, not FHIR.

// witnessAdd is POST /witness/add-checkpoint, C2SP tlog-witness's, which
// the witness answers itself (witness.Witness.ServeHTTP).
func (s *Server) witnessAdd(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Witness == nil {
		http.Error(w, "this provider witnesses no log", http.StatusNotFound)
		return nil
	}
	s.cfg.Witness.ServeHTTP(w, r)
	return nil
}

// witnessCheckpoint is GET /witness/checkpoint?origin=O: the newest
// checkpoint of O this provider cosigned.
func (s *Server) witnessCheckpoint(w http.ResponseWriter, r *http.Request) error {
	origin := r.URL.Query().Get("origin")
	if s.cfg.Witness == nil || origin == "" {
		return reqErr(errNotFound, "not-found", "give the origin of a log this provider witnesses")
	}
	cp, err := s.cfg.Witness.Latest(r.Context(), origin)
	if err != nil {
		return err
	}
	writeNote(w, cp)
	return nil
}

// witnessKey is GET /witness/key: the witness's cosignature/v1 verifier
// key, for peers to configure (trust in it comes from that configuration).
func (s *Server) witnessKey(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.WitnessKey == "" {
		return reqErr(errNotFound, "not-found", "this provider has no witness key")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(s.cfg.WitnessKey + "\n"))
	return nil
}

// ledgerCosigned is GET /ledger/checkpoint/cosigned: the newest checkpoint
// of this provider's log that its witness policy's quorum cosigned.
func (s *Server) ledgerCosigned(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Publisher == nil {
		return reqErr(errNotFound, "not-found", "this provider's log has no witnesses")
	}
	_, cp, err := s.store.Cosigned(r.Context())
	if errors.Is(err, store.ErrNotFound) {
		return reqErr(errNotFound, "not-found", "no checkpoint has been cosigned yet")
	}
	if err != nil {
		return err
	}
	writeNote(w, cp)
	return nil
}

func writeNote(w http.ResponseWriter, note []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(note)
}

// peersStatus is GET /ledger/peers: this provider's witnesses and what
// they last cosigned, and the logs it witnesses, with the evidence held
// against them.
func (s *Server) peersStatus(w http.ResponseWriter, r *http.Request) error {
	type witnessed struct {
		Origin    string `json:"origin"`
		Cosigned  int64  `json:"cosigned_size"`
		Trusted   bool   `json:"trusted"`
		Evidence  int    `json:"evidence"`
		LastError string `json:"reason,omitempty"`
	}
	out := struct {
		Origin    string               `json:"origin"`
		Required  int                  `json:"witnesses_required"`
		Published int64                `json:"published_size"`
		Witnesses []witness.PeerStatus `json:"witnesses"`
		Witnessed []witnessed          `json:"witnessed"`
		Mirrored  []mirror.Status      `json:"mirrored"`
	}{Origin: s.ledger.Origin(), Witnesses: []witness.PeerStatus{}, Witnessed: []witnessed{}, Mirrored: []mirror.Status{}}
	if m := s.cfg.Mirror; m != nil {
		out.Mirrored = append(out.Mirrored, m.Status()...)
	}
	if p := s.cfg.Publisher; p != nil {
		out.Witnesses, out.Published = p.Status()
		out.Required = p.Required()
	}
	if wt := s.cfg.Witness; wt != nil {
		for _, origin := range wt.Origins() {
			st := witnessed{Origin: origin, Trusted: true}
			if cur, err := s.store.Witnessed(r.Context(), origin); err == nil {
				st.Cosigned = cur.Size
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			ev, err := s.store.EvidenceAgainst(r.Context(), origin)
			if err != nil {
				return err
			}
			for _, e := range ev {
				if !e.Cleared {
					st.Trusted, st.LastError = false, e.Reason
					st.Evidence++
				}
			}
			out.Witnessed = append(out.Witnessed, st)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	return json.NewEncoder(w).Encode(out)
}

// peerEvidence is GET /ledger/peers/evidence?origin=O: the pairs of
// checkpoints kept as evidence against O (every log without origin).
func (s *Server) peerEvidence(w http.ResponseWriter, r *http.Request) error {
	ev, err := s.store.EvidenceAgainst(r.Context(), r.URL.Query().Get("origin"))
	if err != nil {
		return err
	}
	type item struct {
		Origin  string `json:"origin"`
		Found   string `json:"found"`
		Reason  string `json:"reason"`
		First   string `json:"first"`
		Second  string `json:"second"`
		Cleared bool   `json:"cleared"`
	}
	out := []item{}
	for _, e := range ev {
		out = append(out, item{e.Origin, e.Found.UTC().Format("2006-01-02T15:04:05.000000Z"), e.Reason, string(e.First), string(e.Second), e.Cleared})
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

// trustPeer is POST /ledger/peers/trust?origin=O (ehrledger/admin): an
// operator who looked into the evidence against O trusts its log again.
func (s *Server) trustPeer(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	origin := r.URL.Query().Get("origin")
	if origin == "" {
		return reqErr(errInvalid, "required", "origin is required")
	}
	n, err := s.store.ClearEvidence(r.Context(), origin)
	if err != nil {
		return err
	}
	s.log.Warn("an operator trusts a peer's log again", "origin", origin, "evidence_cleared", n)
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]string{"origin": origin, "cleared": strconv.FormatInt(n, 10)})
}

// mirrored is GET /mirror/<origin>/...: this provider's copy of a peer's
// log, which the mirror serves itself (mirror.Mirror.Handler).
func (s *Server) mirrored(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Mirror == nil {
		return reqErr(errNotFound, "not-found", "this provider mirrors no log")
	}
	http.StripPrefix("/mirror", s.cfg.Mirror.Handler(s.writeError)).ServeHTTP(w, r)
	return nil
}
