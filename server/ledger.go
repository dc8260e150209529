package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/store"
	"golang.org/x/mod/sumdb/tlog"
)

// disclosure is one resource version a response carries (or, denied,
// withholds), with the owner of its key (which names its patient) and the
// consent decision about it.
type disclosure struct {
	owner string
	res   audit.Resource
	// consent is the consent version that decided, "" for the default or
	// for data of no patient; breakGlass marks an emergency permit.
	consent    string
	breakGlass bool
	denied     bool
}

// disclosureOf is the disclosure of v as served (body: the bytes sent,
// which _summary and _elements may have cut).
func disclosureOf(v *store.Version, body []byte) disclosure {
	return disclosure{owner: v.Owner, res: audit.ResourceOf(v.Type, v.ID, v.VersionID, body)}
}

// maxResourcesPerRecord keeps a record well inside a C2SP entry's 64 KiB.
const maxResourcesPerRecord = 200

// disclose records what a response discloses and withholds (record),
// and names the disclosure records in the Ledger-Index header. When the
// ledger cannot record them the request fails with 503 and the data is
// not sent.
func (s *Server) disclose(w http.ResponseWriter, r *http.Request, interaction string, items []disclosure) error {
	idx, err := s.record(r.Context(), interaction, items)
	if err != nil {
		s.log.Error("ledger: a disclosure could not be recorded; nothing was sent", "request_id", requestID(r), "err", err)
		return reqErr(errUnavailable, "transient", "the disclosure could not be recorded in the ledger, so no data is sent; retry later")
	}
	if len(idx) > 0 {
		parts := make([]string, len(idx))
		for i, n := range idx {
			parts[i] = strconv.FormatInt(n, 10)
		}
		w.Header().Set("Ledger-Index", strings.Join(parts, ","))
	}
	return nil
}

// record appends one disclosure record per patient whose data items
// disclose, and one denial record per patient whose data the consents
// withheld, for the caller in ctx, waits until they are durable, and
// returns the indexes of the disclosure records. Resources of no patient
// (the provider's own) are not disclosures. A patient's resources are
// split over several records only past maxResourcesPerRecord.
func (s *Server) record(ctx context.Context, interaction string, items []disclosure) ([]int64, error) {
	type group struct {
		patient    string
		denied     bool
		res        []audit.Resource
		consents   []string
		breakGlass bool
	}
	var groups []*group
	byKey := map[[2]string]*group{}
	for _, d := range items {
		id, ok := strings.CutPrefix(d.owner, "Patient/")
		if !ok {
			continue
		}
		kind := "disclosure"
		if d.denied {
			kind = "denial"
		}
		g := byKey[[2]string{id, kind}]
		if g == nil {
			g = &group{patient: id, denied: d.denied}
			byKey[[2]string{id, kind}] = g
			groups = append(groups, g)
		}
		g.res = append(g.res, d.res)
		if d.breakGlass {
			s.metrics.breakGlassDisclosures.Inc()
		}
		if d.consent != "" && !slices.Contains(g.consents, d.consent) {
			g.consents = append(g.consents, d.consent)
		}
		g.breakGlass = g.breakGlass || d.breakGlass
	}
	if len(groups) == 0 {
		return nil, nil
	}
	var used []string
	for _, g := range groups {
		for _, c := range g.consents {
			if !slices.Contains(used, c) {
				used = append(used, c)
			}
		}
	}
	anchors, err := s.consentIndexes(ctx, used)
	if err != nil {
		return nil, err
	}
	now := audit.FormatTime(s.now())
	c := callerOf(ctx)
	var recs [][]byte
	var disclosures []bool // per record: a disclosure (named in Ledger-Index)
	for _, g := range groups {
		typ := audit.TypeDisclosure
		if g.denied {
			typ = audit.TypeDenial
		}
		for start := 0; start < len(g.res); start += maxResourcesPerRecord {
			rec := audit.Record{Type: typ, Time: now, Patient: s.pseudonyms.Of(g.patient),
				Recipient: c.recipient(), Purpose: c.purposeOfUse(), Interaction: interaction,
				Resources: g.res[start:min(start+maxResourcesPerRecord, len(g.res))], Consents: consentRefs(g.consents, anchors), BreakGlass: g.breakGlass}
			recs = append(recs, rec.Bytes())
			disclosures = append(disclosures, !g.denied)
		}
	}
	idx, err := s.ledger.Append(ctx, recs)
	if err != nil {
		return nil, err
	}
	var out []int64
	for i, n := range idx {
		if disclosures[i] {
			out = append(out, n)
		}
	}
	return out, nil
}

// writeRecords queues, inside tx, a write record (a consent record for a
// Consent) for each version written, so that a version and its record
// commit together.
func (s *Server) writeRecords(ctx context.Context, tx *store.Tx, writes []store.Write) error {
	now := audit.FormatTime(s.now())
	c := callerOf(ctx)
	recs := make([][]byte, 0, len(writes))
	for _, wr := range writes {
		v := wr.Version
		rec := audit.Record{Type: audit.TypeWrite, Time: now, Interaction: writeInteraction(v.Method),
			Recipient: c.recipient(), Purpose: c.purposeOfUse()}
		if v.Type == "Consent" {
			// A Consent version is anchored in the ledger by its own kind
			// of record, which decisions cite.
			rec.Type = audit.TypeConsent
		}
		if id, ok := strings.CutPrefix(v.Owner, "Patient/"); ok {
			rec.Patient = s.pseudonyms.Of(id)
		}
		res := audit.ResourceOf(v.Type, v.ID, v.VersionID, v.Body)
		if v.Deleted {
			res.SHA256 = ""
		}
		rec.Resources = []audit.Resource{res}
		recs = append(recs, rec.Bytes())
	}
	queued, err := tx.QueueLedger(ctx, recs)
	if err != nil {
		return err
	}
	for i, wr := range writes {
		if v := wr.Version; v.Type == "Consent" {
			if err := tx.AnchorConsent(ctx, v.ID, v.VersionID, queued[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeInteraction(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "update"
}

// putAndRecord stores writes and queues their records in tx.
func (s *Server) putAndRecord(ctx context.Context, tx *store.Tx, writes []store.Write) error {
	if err := tx.PutMany(ctx, writes); err != nil {
		return err
	}
	return s.writeRecords(ctx, tx, writes)
}

// The ledger's read-only HTTP face (docs/ledger.md).

// ledgerCheckpoint serves the newest signed checkpoint; with covers=N, a
// checkpoint whose tree holds record N, signed on demand when the newest
// does not (404 while record N is not integrated).
func (s *Server) ledgerCheckpoint(w http.ResponseWriter, r *http.Request) error {
	note := s.ledger.Checkpoint().Note
	if c := r.URL.Query().Get("covers"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 0 {
			return reqErr(errInvalid, "invalid", "covers must be a record index")
		}
		if note, err = s.ledger.SignCovering(r.Context(), n); err != nil {
			return err
		}
	}
	if note == nil {
		signed, err := s.ledger.Sign(r.Context())
		if err != nil {
			return reqErr(errUnavailable, "transient", "no checkpoint has been signed yet")
		}
		note = signed
	}
	writeNote(w, note)
	return nil
}

func (s *Server) ledgerKey(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(s.cfg.LedgerKey + "\n"))
	return nil
}

func (s *Server) ledgerTile(w http.ResponseWriter, r *http.Request) error {
	t, err := audit.ParseTilePath(strings.TrimPrefix(r.URL.Path, "/ledger/tile/"))
	if err != nil {
		return reqErr(errNotFound, "not-found", "no tile at %s", r.URL.Path)
	}
	data, err := s.ledger.Tile(r.Context(), t)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if t.W == 1<<audit.TileHeight {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Write(data)
	return nil
}

func hashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func (s *Server) ledgerInclusion(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	var size int64
	var checkpoint []byte
	var err error
	if q.Get("size") == "" {
		// Without a size: the tree of the checkpoint clients should trust,
		// the cosigned one when the log has witnesses, carried along.
		if size, checkpoint, err = s.trustedCheckpoint(r.Context()); err != nil {
			return err
		}
	} else if size, err = strconv.ParseInt(q.Get("size"), 10, 64); err != nil {
		return reqErr(errInvalid, "invalid", "size must be a tree size")
	}
	var index int64
	if h := q.Get("hash"); h != "" {
		b, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(b) != tlog.HashSize {
			return reqErr(errInvalid, "invalid", "hash must be a base64 SHA-256 leaf hash")
		}
		if index, err = s.ledger.IndexOf(r.Context(), tlog.Hash(b)); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return reqErr(errNotFound, "not-found", "no record has that leaf hash")
			}
			return err
		}
	} else if index, err = strconv.ParseInt(q.Get("index"), 10, 64); err != nil {
		return reqErr(errInvalid, "invalid", "give index or hash")
	}
	proof, err := s.ledger.ProveInclusion(r.Context(), index, size)
	if err != nil {
		return err
	}
	leaves, err := s.ledgerLeafHash(r.Context(), index)
	if err != nil {
		return err
	}
	out := map[string]any{"index": index, "size": size, "leaf_hash": leaves, "proof": hashes(proof)}
	if checkpoint != nil {
		out["checkpoint"] = string(checkpoint)
	}
	writePlainJSON(w, out)
	return nil
}

// trustedCheckpoint is the newest checkpoint of the log cosigned by its
// witness policy's quorum or, for a log without witnesses, its newest
// signed checkpoint; with its size.
func (s *Server) trustedCheckpoint(ctx context.Context) (int64, []byte, error) {
	if s.cfg.Publisher != nil {
		size, cp, err := s.store.Cosigned(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil, reqErr(errUnavailable, "transient", "no checkpoint has been cosigned yet")
		}
		return size, cp, err
	}
	cp := s.ledger.Checkpoint()
	if cp.Note == nil {
		return 0, nil, reqErr(errUnavailable, "transient", "no checkpoint has been signed yet")
	}
	return cp.Size, cp.Note, nil
}

func (s *Server) ledgerLeafHash(ctx context.Context, index int64) (string, error) {
	rec, err := s.ledger.Record(ctx, index)
	if err != nil {
		return "", err
	}
	h := tlog.RecordHash(rec)
	return base64.StdEncoding.EncodeToString(h[:]), nil
}

func (s *Server) ledgerConsistency(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	to, err2 := strconv.ParseInt(q.Get("to"), 10, 64)
	if err1 != nil || err2 != nil {
		return reqErr(errInvalid, "invalid", "from and to must be tree sizes")
	}
	proof, err := s.ledger.ProveConsistency(r.Context(), from, to)
	if err != nil {
		return err
	}
	writePlainJSON(w, map[string]any{"from": from, "to": to, "proof": hashes(proof)})
	return nil
}

func writePlainJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v) // maps of numbers and strings always marshal
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}
