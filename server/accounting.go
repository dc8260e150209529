package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/balp"
	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/fhir"
	"github.com/go-chi/chi/v5"
	"github.com/transparency-dev/formats/log"
)

// The accounting of a patient's disclosures (HIPAA §164.528): the
// disclosure records of the ledger about the patient, as IHE BALP
// PrivacyDisclosure AuditEvents, each with the record itself and its
// inclusion proof to one checkpoint the Bundle carries, and the opening of
// what the record commits to, so that anyone can check it offline (ehrledger verify --accounting, docs/accounting.md).

// Extensions of an accounting's AuditEvents.
const (
	// ledgerRecordExt carries the record's exact bytes (the leaf).
	ledgerRecordExt = "urn:ehrledger:fhir:ledger-record"
	// ledgerOpeningExt carries the opening of the leaf's commitment,
	// which says whom and what the record is about.
	ledgerOpeningExt = "urn:ehrledger:fhir:ledger-opening"
	// inclusionProofExt carries its inclusion proof: base64 hashes,
	// space-separated, in tlog.RecordProof order.
	inclusionProofExt = "urn:ehrledger:fhir:inclusion-proof"
	// checkpointURL names the Bundle entry holding the checkpoint.
	checkpointURL = "urn:ehrledger:checkpoint"
	// accountingTags is the code system of the accounting's tags.
	accountingTags = "urn:ehrledger:accounting"
)

// DefaultAccountingWindow is the period an accounting covers by default:
// the six years §164.528 gives.
const DefaultAccountingWindow = 6 * 365 * 24 * time.Hour

// maxAccounted bounds the disclosures in one accounting; a narrower
// window asks for fewer.
const maxAccounted = 100_000

// disclosures is GET /Patient/{id}/$disclosures?start=&end=: the
// accounting of the patient's disclosures in the window (default: the
// last six years), for the patient's own app or an administrator.
func (s *Server) disclosures(w http.ResponseWriter, r *http.Request) error {
	typ, id := chi.URLParam(r, "type"), chi.URLParam(r, "id")
	if typ != "Patient" {
		return reqErr(errNotFound, "not-supported", "$disclosures is supported on Patient only")
	}
	if c := callerOf(r.Context()); !c.Admin() && c.Self() != id {
		return forbidden("an accounting of disclosures is given to the patient's own app or to the ehrledger/admin scope")
	}
	q := r.URL.Query()
	now := s.now()
	start, end := now.Add(-DefaultAccountingWindow), now
	for _, p := range []struct {
		name string
		into *time.Time
		high bool
	}{{"start", &start, false}, {"end", &end, true}} {
		if v := q.Get(p.name); v != "" {
			low, high, err := fhir.ParseSearchDate(v)
			if err != nil {
				return reqErr(errInvalid, "invalid", "%s %q: %v", p.name, v, err)
			}
			*p.into = low
			if p.high {
				*p.into = high
			}
		}
	}
	if !start.Before(end) {
		return reqErr(errInvalid, "invalid", "start must come before end")
	}
	if err := s.awaitLookups(r.Context()); err != nil {
		return err
	}
	var found []audit.Opened
	for after := int64(-1); ; {
		recs, next, err := s.ledger.RecordsOf(r.Context(), id, start.UnixMicro(), end.UnixMicro(), after, 1000)
		if err != nil {
			return err
		}
		for _, o := range recs {
			if o.Record.Type == audit.TypeDisclosure {
				found = append(found, o)
			}
		}
		after = next
		if len(found) > maxAccounted {
			return reqErr(errUnprocessable, "too-costly", "more than %d disclosures in the window: ask for a narrower one (start, end)", maxAccounted)
		}
		if next < 0 {
			break
		}
	}
	last := int64(-1)
	if len(found) > 0 {
		last = found[len(found)-1].Index
	}
	size, checkpoint, err := s.checkpointCovering(r.Context(), last)
	if err != nil {
		return err
	}
	exempt := s.cfg.AccountingExempt
	if exempt == nil {
		exempt = DefaultAccountingExempt
	}
	names := map[string]string{}
	for _, f := range found {
		if rc := f.Record.Recipient; rc != nil && rc.Client != "" {
			if _, ok := names[rc.Client]; !ok {
				names[rc.Client] = s.clientName(r.Context(), rc.Client)
			}
		}
	}
	base := s.baseURL(r)
	cp, _ := json.Marshal(struct {
		ResourceType string `json:"resourceType"`
		ContentType  string `json:"contentType"`
		Data         []byte `json:"data"` // base64
	}{"Binary", "text/plain", checkpoint})
	entries := []accountingEntry{{checkpointURL, cp}}
	for _, f := range found {
		if f.Index >= size {
			continue // after the checkpoint: see checkpointCovering
		}
		proof, err := s.ledger.ProveInclusion(r.Context(), f.Index, size)
		if err != nil {
			return err
		}
		ae := s.auditEvent(f.Index, f.Record, id)
		ae.Extension = append(ae.Extension,
			balp.Extension{URL: ledgerRecordExt, ValueBase64Binary: base64.StdEncoding.EncodeToString(f.Leaf)},
			balp.Extension{URL: ledgerOpeningExt, ValueBase64Binary: base64.StdEncoding.EncodeToString(f.Opening)},
			balp.Extension{URL: inclusionProofExt, ValueString: strings.Join(audit.Base64Hashes(proof), " ")})
		ae.Entity[0].Description = DisclosedSummary(f.Record) // a disclosure about the patient names them first
		if rc := f.Record.Recipient; rc != nil && names[rc.Client] != "" {
			ae.Agent[0].Who.Display = names[rc.Client]
		}
		if slices.Contains(exempt, f.Record.Purpose) {
			ae.Meta.Tag = []balp.Coding{{System: accountingTags, Code: "exempt",
				Display: "a category the jurisdiction exempts from the legal accounting (" + f.Record.Purpose + ")"}}
		}
		raw, _ := json.Marshal(ae) // plain fields always marshal
		entries = append(entries, accountingEntry{base + "/AuditEvent/ledger-" + strconv.FormatInt(f.Index, 10), raw})
	}
	s.writeBody(w, r, http.StatusOK, collection(fhir.FormatInstant(now), entries))
	return nil
}

// clientName is the registered name (auth.Client.Name) of a client, ""
// for a client unknown here (another issuer's, or deleted since).
func (s *Server) clientName(ctx context.Context, id string) string {
	doc, err := s.store.AuthClient(ctx, id)
	if err != nil {
		return ""
	}
	var c auth.Client
	if json.Unmarshal(doc, &c) != nil {
		return ""
	}
	return c.Name
}

// accountingEntry is an entry of an accounting: its fullUrl and its
// resource, marshaled.
type accountingEntry struct {
	url string
	raw []byte
}

// collection writes a collection Bundle of entries whose resources are
// marshaled already, in one buffer of the right size (an accounting of
// thousands of disclosures is tens of megabytes: encoding it as a whole
// again spent as long as building it, BENCHMARKS.md).
func collection(timestamp string, entries []accountingEntry) []byte {
	head := `{"resourceType":"Bundle","type":"collection","timestamp":"` + timestamp + `","entry":[`
	size := len(head) + 2
	for _, e := range entries {
		size += len(e.url) + len(e.raw) + 32
	}
	out := make([]byte, 0, size)
	out = append(out, head...)
	for i, e := range entries {
		if i > 0 {
			out = append(out, ',')
		}
		u, _ := json.Marshal(e.url)
		out = append(out, `{"fullUrl":`...)
		out = append(out, u...)
		out = append(out, `,"resource":`...)
		out = append(out, e.raw...)
		out = append(out, '}')
	}
	return append(out, "]}"...)
}

// awaitLookups waits (up to 5 s) until the records integrated when it
// was called can be found by patient, so that an accounting holds every
// disclosure answered before it was asked.
func (s *Server) awaitLookups(ctx context.Context) error {
	size, err := s.store.LedgerSize(ctx)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		through, err := s.store.LedgerLookedUp(ctx)
		if err != nil {
			return err
		}
		if through >= size-1 {
			return nil
		}
		if time.Now().After(deadline) {
			return reqErr(errUnavailable, "transient", "the ledger's index by patient is behind; ask again in a moment")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DefaultAccountingExempt are the purposes marked exempt from the legal
// accounting when the configuration says nothing: treatment, payment and
// health care operations (§164.528(a)(1)(i)). They are marked, never
// left out.
var DefaultAccountingExempt = []string{"TREAT", "HPAYMT", "HOPERAT"}

// DisclosedSummary is the brief description of what a disclosure record
// disclosed: the number of resources of each type, types in order.
func DisclosedSummary(rec *audit.Record) string {
	counts := map[string]int{}
	var types []string
	for _, res := range rec.Resources {
		t, _, _ := strings.Cut(res.Ref, "/")
		if counts[t] == 0 {
			types = append(types, t)
		}
		counts[t]++
	}
	slices.Sort(types)
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%d %s", counts[t], t)
	}
	return "disclosed: " + strings.Join(parts, ", ")
}

// checkpointCovering returns the checkpoint an accounting proves to: the
// trusted one (trustedCheckpoint), waiting a little for one that holds
// record last when the log has witnesses, and signing one that does at
// once when it has none.
func (s *Server) checkpointCovering(ctx context.Context, last int64) (int64, []byte, error) {
	if s.cfg.Publisher == nil && last >= 0 {
		note, err := s.ledger.SignCovering(ctx, last)
		if err != nil {
			return 0, nil, err
		}
		size, err := checkpointSize(note)
		return size, note, err
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		size, note, err := s.trustedCheckpoint(ctx)
		if err == nil && size > last || time.Now().After(deadline) {
			return size, note, err
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// checkpointSize reads the tree size a signed checkpoint names.
func checkpointSize(note []byte) (int64, error) {
	var c log.Checkpoint
	if _, err := c.Unmarshal(note); err != nil {
		return 0, fmt.Errorf("server: %w", err)
	}
	return int64(c.Size), nil
}
