package server

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
)

// BALP profiles and codes of the AuditEvents built from ledger records.
const (
	balpDisclosure = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PrivacyDisclosure.Source"
	balpPrefix     = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
	// balpAuthZconsent is the profile of an authorization decision by
	// consent; authzSubtype the code system of its subtype.
	balpAuthZconsent = balpPrefix + "AuthZconsent"
	authzSubtype     = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
	dicom            = "http://dicom.nema.org/resources/ontology/DCM"
	lifecycle        = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
	restful          = "http://hl7.org/fhir/restful-interaction"
	// ledgerIndexExt carries the index of the record an AuditEvent shows.
	ledgerIndexExt = "urn:ehrledger:fhir:ledger-index"
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
			ae, _ := json.Marshal(s.auditEvent(f.index, f.rec, patient)) // plain maps always marshal
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
func (s *Server) auditEvent(n int64, rec *audit.Record, patient string) map[string]any {
	coding := func(system, code, display string) map[string]any {
		c := map[string]any{"system": system, "code": code}
		if display != "" {
			c["display"] = display
		}
		return c
	}
	ae := map[string]any{
		"resourceType": "AuditEvent",
		"id":           "ledger-" + strconv.FormatInt(n, 10),
		"extension":    []any{map[string]any{"url": ledgerIndexExt, "valueInteger": n}},
		"outcome":      "0",
		"source": map[string]any{"observer": map[string]any{"display": s.ledger.Origin()},
			"type": []any{coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")}},
	}
	if t, err := time.Parse(time.RFC3339Nano, rec.Time); err == nil {
		ae["recorded"] = fhir.FormatInstant(t)
	}
	subtype := []any{coding(restful, rec.Interaction, "")}
	switch rec.Type {
	case audit.TypeDisclosure:
		ae["meta"] = map[string]any{"profile": []any{balpDisclosure}}
		ae["type"] = coding(dicom, "110106", "Export")
		ae["action"] = "R"
		subtype = append(subtype, coding(lifecycle, "disclose", "Disclose Record Lifecycle Event"))
	case audit.TypeWrite, audit.TypeConsent:
		profile, action := "Update", "U"
		switch {
		case rec.Interaction == "delete":
			profile, action = "Delete", "D"
		case rec.Interaction == "create" || len(rec.Resources) > 0 && strings.HasSuffix(rec.Resources[0].Ref, "/_history/1"):
			profile, action = "Create", "C" // a POST, or a PUT that created
		}
		if patient != "" {
			profile = "Patient" + profile
		}
		ae["meta"] = map[string]any{"profile": []any{balpPrefix + profile}}
		ae["type"] = coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation")
		ae["action"] = action
	case audit.TypeDenial:
		// An authorization decision that withheld data: BALP AuthZconsent
		// with a failed outcome.
		ae["meta"] = map[string]any{"profile": []any{balpAuthZconsent}}
		ae["type"] = coding(dicom, "110113", "Security Alert")
		ae["action"] = "E"
		ae["outcome"] = "8"
		ae["outcomeDesc"] = "the patient's consent, or the provider's policy, did not permit the disclosure"
		subtype = []any{coding(authzSubtype, "AuthZ-Consent", "Authorization Decision using Roles and Consent")}
	case audit.TypeErasure:
		ae["type"] = coding(dicom, "110105", "DICOM Study Deleted")
		ae["action"] = "D"
		subtype = []any{coding(lifecycle, "destroy", "Destroy/Delete Record Lifecycle Event")}
	default:
		ae["type"] = coding("urn:ehrledger:record-type", rec.Type, "")
		ae["action"] = "E"
	}
	ae["subtype"] = subtype
	if rec.BreakGlass {
		// Only an emergency access permitted it: marked as HL7 marks
		// break-the-glass.
		meta, _ := ae["meta"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
			ae["meta"] = meta
		}
		meta["security"] = []any{coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "BTG", "break the glass")}
	}
	who := map[string]any{"display": "unidentified client"}
	if rc := rec.Recipient; rc != nil && (rc.Client != "" || rc.Organization != "") {
		who = map[string]any{}
		if rc.Client != "" {
			who["identifier"] = map[string]any{"value": rc.Client}
		}
		if rc.Organization != "" {
			who["reference"] = rc.Organization
		}
	}
	ae["agent"] = []any{
		map[string]any{"type": map[string]any{"coding": []any{coding(dicom, "110152", "Destination Role ID")}}, "who": who, "requestor": true},
		map[string]any{"type": map[string]any{"coding": []any{coding(dicom, "110153", "Source Role ID")}},
			"who": map[string]any{"display": s.ledger.Origin()}, "requestor": false},
	}
	if rec.Purpose != "" {
		ae["purposeOfEvent"] = []any{map[string]any{"coding": []any{coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", rec.Purpose, "")}}}
	}
	var entities []any
	if patient != "" {
		entities = append(entities, map[string]any{
			"what": map[string]any{"reference": "Patient/" + patient},
			"type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"),
			"role": coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient"),
		})
	}
	for _, res := range rec.Resources {
		e := map[string]any{
			"what": map[string]any{"reference": res.Ref},
			"type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
			"role": coding("http://terminology.hl7.org/CodeSystem/object-role", "4", "Domain Resource"),
		}
		if res.SHA256 != "" {
			e["detail"] = []any{map[string]any{"type": "sha256", "valueString": res.SHA256}}
		}
		entities = append(entities, e)
	}
	entities = append(entities, consentEntities(rec)...)
	ae["entity"] = entities
	return ae
}

// consentEntities are the Consent versions that decided a record.
func consentEntities(rec *audit.Record) []any {
	var out []any
	for _, c := range rec.Consents {
		e := map[string]any{
			"what": map[string]any{"reference": c.Ref},
			"type": map[string]any{"system": "http://hl7.org/fhir/resource-types", "code": "Consent"},
			"role": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "13", "display": "Security Resource"},
		}
		if c.Index != nil {
			// The consent version's own record in this ledger.
			e["detail"] = []any{map[string]any{"type": "ledger-index", "valueString": strconv.FormatInt(*c.Index, 10)}}
		}
		out = append(out, e)
	}
	return out
}

// authzEvent is the BALP AuthZconsent AuditEvent of the permit decision
// behind disclosure record n: which consent versions permitted what, to
// whom and why. Its id is the record's with "-authz".
func (s *Server) authzEvent(n int64, rec *audit.Record, patient string) map[string]any {
	ae := s.auditEvent(n, rec, patient)
	ae["id"] = "ledger-" + strconv.FormatInt(n, 10) + "-authz"
	ae["meta"].(map[string]any)["profile"] = []any{balpAuthZconsent} // a disclosure's always has a meta
	ae["type"] = map[string]any{"system": dicom, "code": "110113", "display": "Security Alert"}
	ae["subtype"] = []any{map[string]any{"system": authzSubtype, "code": "AuthZ-Consent", "display": "Authorization Decision using Roles and Consent"}}
	ae["action"] = "E"
	return ae
}
