package server

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/balp"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
)

// auditEvents is GET /AuditEvent?patient=...: the ledger's records about
// one patient as IHE BALP AuditEvents, in ledger order, each citing its
// ledger index, built from the records (disclosure AuditEvents are not
// stored, so that a disclosure costs one durable write; write ones are
// stored too, auditwrites.go). Parameters: patient (required), date (with
// prefixes, repeatable), agent (the recipient's client id or
// Organization/<id>; repeatable, each a comma-separated list), _count and
// the _page cursor.
func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request) error {
	params := r.URL.Query()
	patient := strings.TrimPrefix(params.Get("patient"), "Patient/")
	if patient == "" || !idPattern.MatchString(patient) {
		return reqErr(errInvalid, "required", "AuditEvent search needs patient=Patient/<id>: the ledger lists records by patient")
	}
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	for _, v := range params["date"] {
		prefix, rest := "eq", v
		if len(v) > 2 && strings.Contains(" ge gt le lt eq ", " "+v[:2]+" ") {
			prefix, rest = v[:2], v[2:]
		}
		low, high, err := fhir.ParseSearchDate(rest)
		if err != nil {
			return reqErr(errInvalid, "invalid", "date %q: %v", v, err)
		}
		switch prefix {
		case "ge":
			from = max(from, low.UnixMicro())
		case "gt":
			from = max(from, high.UnixMicro())
		case "le":
			to = min(to, high.UnixMicro())
		case "lt":
			to = min(to, low.UnixMicro())
		case "eq":
			from, to = max(from, low.UnixMicro()), min(to, high.UnixMicro())
		}
	}
	count, err := pageSize(params)
	if err != nil {
		return err
	}
	after := int64(-1)
	if p := params.Get("_page"); p != "" {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return reqErr(errInvalid, "invalid", "malformed paging cursor")
		}
		after = n
	}
	base := s.baseURL(r)
	b := bundle{ResourceType: "Bundle", Type: "searchset"}
	b.Link = append(b.Link, bundleLink{Relation: "self", URL: base + r.URL.RequestURI()})
	resp := s.gate.Respond("search", nil)
	err = resp.AuditTrail(r.Context(), patient, func(patient string) ([]disclosure.Derived, error) {
		type listed struct {
			index int64
			rec   *audit.Record
		}
		var found []listed
		for len(found) <= count {
			recs, next, err := s.ledger.RecordsOf(r.Context(), patient, from, to, after, count+1)
			if err != nil {
				return nil, err
			}
			for _, o := range recs {
				if byAgents(o.Record, params["agent"]) && len(found) <= count {
					found = append(found, listed{o.Index, o.Record})
				}
			}
			if next < 0 {
				break
			}
			after = next
		}
		if len(found) > count {
			found = found[:count]
			next := url.Values{}
			for k, vs := range params {
				next[k] = vs
			}
			next.Set("_page", strconv.FormatInt(found[len(found)-1].index, 10))
			b.Link = append(b.Link, bundleLink{Relation: "next", URL: base + "/AuditEvent?" + next.Encode()})
		}
		var out []disclosure.Derived
		for _, f := range found {
			id := "ledger-" + strconv.FormatInt(f.index, 10)
			ae, _ := json.Marshal(s.auditEvent(f.index, f.rec, patient)) // plain fields always marshal
			out = append(out, disclosure.Derived{Type: "AuditEvent", ID: id, Body: ae})
			if f.rec.Type == audit.TypeDisclosure && len(f.rec.Consents) > 0 {
				authz, _ := json.Marshal(s.authzEvent(f.index, f.rec, patient))
				out = append(out, disclosure.Derived{Type: "AuditEvent", ID: id + "-authz", Body: authz})
			}
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	shown, err := resp.Record(r.Context())
	if err != nil {
		return err
	}
	s.addEntries(r, &b, shown)
	setLedgerIndex(w, shown)
	s.writeJSON(w, r, http.StatusOK, b)
	return nil
}

// byAgents says whether a record's recipient matches every agent
// parameter: each a comma-separated list of which one must match, an
// Organization/<id> reference the recipient's organisation, anything else
// its client id.
func byAgents(rec *audit.Record, agents []string) bool {
	for _, a := range agents {
		ok := false
		for _, v := range strings.Split(a, ",") {
			if r := rec.Recipient; r != nil && v != "" && (v == r.Client || v == r.Organization) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// auditEvent is the BALP AuditEvent of record n about patient.
func (s *Server) auditEvent(n int64, rec *audit.Record, patient string) *balp.AuditEvent {
	return balp.Event(n, rec, patient, s.ledger.Origin())
}

// authzEvent is the BALP AuthZconsent AuditEvent of the permit decision
// behind disclosure record n.
func (s *Server) authzEvent(n int64, rec *audit.Record, patient string) *balp.AuditEvent {
	return balp.AuthZ(n, rec, patient, s.ledger.Origin())
}
