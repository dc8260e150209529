package conformance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The consent cases (docs/consent.md): who may write a patient's
// Consent, how it gates reads and searches for each caller, and what the
// ledger says of it.

// consentOf is a patient-privacy Consent of patient with the given root
// provision.
func consentOf(patient string, root map[string]any) map[string]any {
	return map[string]any{
		"resourceType": "Consent", "status": "active",
		"scope":     map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category":  []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "59284-0"}}}},
		"patient":   map[string]any{"reference": "Patient/" + patient},
		"dateTime":  time.Now().UTC().Format(time.RFC3339),
		"provision": root,
	}
}

// actorRef is a provision's actor: the party ref, as a recipient of the
// information (R4 requires the role).
func actorRef(ref string) []any {
	return []any{map[string]any{"reference": map[string]any{"reference": ref},
		"role": map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}}}}}
}

// ledgerRecordOf returns the record a response names in Ledger-Index.
func (c *client) ledgerRecordOf(t *testing.T, r *response) ledgerRecord {
	t.Helper()
	idx := ledgerIndexes(t, r)
	if len(idx) != 1 {
		t.Fatalf("Ledger-Index %q, want one record", r.Header.Get("Ledger-Index"))
	}
	rec, _ := c.record(t, c.checkpoint(t, idx[0]), idx[0])
	return rec
}

// auditEvent is what the tests read of an AuditEvent: the index of its
// ledger record, its type code and the resources it cites.
type auditEvent struct {
	index int64
	typ   string
	cites []string
}

// auditEventsOf lists the AuditEvents about patient (up to 1,000).
func (c *client) auditEventsOf(t *testing.T, patient string) []auditEvent {
	t.Helper()
	r := c.do(http.MethodGet, "/AuditEvent?patient=Patient/"+patient+"&_count=1000", nil).want(t, http.StatusOK)
	var b struct {
		Entry []struct {
			Resource struct {
				Extension []struct {
					ValueInteger int64 `json:"valueInteger"`
				} `json:"extension"`
				Type   struct{ Code string } `json:"type"`
				Entity []struct {
					What struct{ Reference string } `json:"what"`
				} `json:"entity"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("AuditEvents of %s: %v", patient, err)
	}
	var out []auditEvent
	for _, e := range b.Entry {
		if len(e.Resource.Extension) == 0 {
			continue
		}
		ae := auditEvent{index: e.Resource.Extension[0].ValueInteger, typ: e.Resource.Type.Code}
		for _, en := range e.Resource.Entity {
			ae.cites = append(ae.cites, en.What.Reference)
		}
		out = append(out, ae)
	}
	return out
}

// recordsAbout waits until the patient's AuditEvents hold one whose type
// code is typ and that cites ref, and returns the ledger index of each
// such record.
func (c *client) recordsAbout(t *testing.T, patient, typ, ref string) []int64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var found []int64
		for _, ae := range c.auditEventsOf(t, patient) {
			if slices.Contains(ae.cites, ref) && (typ == "" || ae.typ == typ) {
				found = append(found, ae.index)
			}
		}
		if len(found) > 0 {
			return found
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s record cites %s", typ, ref)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testConsentGating writes a patient's Consent with the patient's own
// token and checks what it lets each caller see.
func testConsentGating(t *testing.T, c *client, run string) {
	pat := "cg-" + run
	c.do(http.MethodPut, "/Patient/"+pat, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, pat)).want(t, http.StatusCreated)
	obs := func(id, code string) {
		body := fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":%q}]},"subject":{"reference":"Patient/%s"}}`, id, code, pat)
		c.do(http.MethodPut, "/Observation/"+id, body).want(t, http.StatusCreated)
	}
	lab, hiv := "lab-"+run, "hiv-"+run
	obs(lab, "104177005")
	obs(hiv, "86406008")

	// The clients: the patient's own app, a clinic, another organisation
	// that may use break-glass, and a backend that may write anything.
	caller := func(name, actor, scope string, purposes []string, patient string) *client {
		return c.caller(t, run, name, actor, scope, purposes, patient)
	}
	self := caller("self", "Patient/"+pat, "patient/*.cruds", []string{"PATRQT"}, pat)
	clinicOrg := "Organization/clinic-" + run
	clinic := caller("clinic", clinicOrg, "system/*.rs", []string{"TREAT", "HRESCH"}, "")
	other := caller("other", "Organization/other-"+run, "system/*.rs", []string{"TREAT", "ETREAT"}, "")
	writer := caller("writer", "Organization/writer-"+run, "system/*.cruds", []string{"TREAT"}, "")

	// Without a Consent the provider's default (opt-out) permits.
	other.do(http.MethodGet, "/Observation/"+lab, nil).want(t, http.StatusOK)

	root := map[string]any{"type": "deny", "provision": []any{
		map[string]any{"type": "permit", "actor": actorRef(clinicOrg),
			"purpose": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}},
			"provision": []any{map[string]any{"type": "deny",
				"code": []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "86406008"}}}}}}},
	}}
	t.Run("who may write a Consent", func(t *testing.T) {
		writer.do(http.MethodPost, "/Consent", consentOf(pat, root)).want(t, http.StatusForbidden)
		self.do(http.MethodPost, "/Consent", consentOf(pat+"-someone-else", root)).want(t, http.StatusForbidden)
		unreadable := consentOf(pat, map[string]any{"actor": actorRef(clinicOrg)})
		self.do(http.MethodPost, "/Consent", unreadable).want(t, http.StatusUnprocessableEntity)
	})
	id, _ := created(t, self, "Consent", consentOf(pat, root))
	version := "Consent/" + id + "/_history/1"

	t.Run("the Consent is anchored in the ledger", func(t *testing.T) {
		for _, n := range c.recordsAbout(t, pat, "", version) {
			rec, _ := c.record(t, c.checkpoint(t, n), n)
			if rec.Type != "consent" {
				t.Fatalf("record %d of the Consent is a %q record", n, rec.Type)
			}
		}
	})
	t.Run("reads", func(t *testing.T) {
		r := clinic.do(http.MethodGet, "/Observation/"+lab, nil).want(t, http.StatusOK)
		rec := c.ledgerRecordOf(t, r)
		if !slices.Equal(rec.consentRefs(), []string{version}) || rec.BreakGlass {
			t.Fatalf("the disclosure's record names consents %q, break-glass %v", rec.consentRefs(), rec.BreakGlass)
		}
		// It cites the consent version's own record by its index.
		if rec.Consents[0].Index == nil {
			t.Fatal("the disclosure's record does not give the consent record's index")
		}
		anchor, _ := c.record(t, c.checkpoint(t, *rec.Consents[0].Index), *rec.Consents[0].Index)
		if anchor.Type != "consent" || len(anchor.Resources) != 1 || anchor.Resources[0].Ref != version {
			t.Fatalf("record %d, cited for %s, is %+v", *rec.Consents[0].Index, version, anchor)
		}
		// The decision is also a BALP AuthZconsent AuditEvent citing the
		// consent version.
		n := ledgerIndexes(t, r)[0]
		authz := c.recordsAbout(t, pat, "110113", version)
		if !slices.Contains(authz, n) {
			t.Fatalf("no AuthZconsent AuditEvent cites %s for record %d (found %v)", version, n, authz)
		}
		denied := clinic.do(http.MethodGet, "/Observation/"+hiv, nil).want(t, http.StatusForbidden)
		if strings.Contains(string(denied.body), "86406008") || denied.Header.Get("Ledger-Index") != "" {
			t.Fatalf("a denied read leaks: %s", denied.body)
		}
		clinic.do(http.MethodGet, "/Observation/"+lab, nil, "Purpose-Of-Use", "HRESCH").want(t, http.StatusForbidden)
		other.do(http.MethodGet, "/Observation/"+lab, nil).want(t, http.StatusForbidden)
		other.do(http.MethodGet, "/Patient/"+pat, nil).want(t, http.StatusForbidden)
		// The patient reads all of their own data.
		self.do(http.MethodGet, "/Observation/"+hiv, nil).want(t, http.StatusOK)
		// The denial is in the ledger, citing the consent.
		for _, n := range c.recordsAbout(t, pat, "110113", "Observation/"+hiv+"/_history/1") {
			rec, _ := c.record(t, c.checkpoint(t, n), n)
			if rec.Type != "denial" || !slices.Equal(rec.consentRefs(), []string{version}) {
				t.Fatalf("denial record %d: %+v", n, rec)
			}
		}
	})
	t.Run("searches leave denied resources out", func(t *testing.T) {
		r := clinic.do(http.MethodGet, "/Observation?subject=Patient/"+pat, nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "match", lab)
		if strings.Contains(string(r.body), hiv) {
			t.Fatal("a search shows the denied resource")
		}
		r = clinic.do(http.MethodGet, "/Patient?_id="+pat+"&_revinclude=Observation:subject", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "include", lab)
		r = other.do(http.MethodGet, "/Observation?subject=Patient/"+pat, nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "match")
		r = clinic.do(http.MethodGet, "/Patient/"+pat+"/$everything", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "", lab)
		r = clinic.do(http.MethodGet, "/Observation/"+hiv+"/_history", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "")
	})
	t.Run("totals, counts and pages reveal nothing", func(t *testing.T) {
		// Denied resources between permitted ones, in the default order.
		for _, o := range []struct{ id, code string }{{"pa-" + run, "104177005"}, {"pb-" + run, "86406008"},
			{"pc-" + run, "104177005"}, {"pd-" + run, "86406008"}, {"pe-" + run, "104177005"}, {"pf-" + run, "86406008"}} {
			obs(o.id, o.code)
		}
		permitted := []string{lab, "pa-" + run, "pc-" + run, "pe-" + run}
		q := "/Observation?subject=Patient/" + pat
		if got := clinic.do(http.MethodGet, q, nil).want(t, http.StatusOK).json()["total"]; fmt.Sprint(got) != "4" {
			t.Fatalf("total %v, want 4 (the permitted ones)", got)
		}
		if got := clinic.do(http.MethodGet, q+"&_summary=count", nil).want(t, http.StatusOK).json()["total"]; fmt.Sprint(got) != "4" {
			t.Fatalf("_summary=count %v, want 4", got)
		}
		if got := other.do(http.MethodGet, q+"&_summary=count", nil).want(t, http.StatusOK).json()["total"]; fmt.Sprint(got) != "0" {
			t.Fatalf("_summary=count for a denied caller: %v, want 0", got)
		}
		// Pages of one: exactly the permitted ones, forward and back, the
		// last without a next link.
		var pages [][]string
		var last map[string]any
		for path := q + "&_count=1"; path != ""; {
			last = clinic.do(http.MethodGet, path, nil).want(t, http.StatusOK).json()
			pages = append(pages, bundleMatches(last))
			path = link(last, "next")
			if len(pages) > 10 {
				t.Fatal("paging does not end")
			}
		}
		var forward []string
		for _, p := range pages {
			if len(p) != 1 {
				t.Fatalf("pages %q: each should hold one permitted resource", pages)
			}
			forward = append(forward, strings.TrimPrefix(p[0], "Observation/"))
		}
		if !slices.Equal(sorted(forward...), sorted(permitted...)) {
			t.Fatalf("pages show %q, want %q", forward, permitted)
		}
		for i := len(pages) - 2; i >= 0; i-- {
			last = clinic.do(http.MethodGet, link(last, "previous"), nil).want(t, http.StatusOK).json()
			if got := bundleMatches(last); !slices.Equal(got, pages[i]) {
				t.Fatalf("page %d seen backwards: %q, want %q", i, got, pages[i])
			}
		}
		if link(last, "previous") != "" {
			t.Fatal("the first page, reached backwards, has a previous link")
		}
		r := other.do(http.MethodGet, q+"&_count=1", nil).want(t, http.StatusOK).json()
		if len(bundleMatches(r)) != 0 || link(r, "next") != "" {
			t.Fatalf("a denied caller's page: %v", r)
		}
	})
	t.Run("$everything pages and iterated includes reveal nothing", func(t *testing.T) {
		// Pages of one through $everything hold exactly what one page
		// holds, which is what the patient sees less what is denied; the
		// last has no next link. (AuditEvents are left out: each request
		// adds some.)
		everything := func(c *client, count int) (all []string, pages int) {
			for path := fmt.Sprintf("/Patient/%s/$everything?_type=Consent,Observation,Patient&_count=%d", pat, count); path != ""; pages++ {
				b := c.do(http.MethodGet, path, nil).want(t, http.StatusOK).json()
				got := bundleMatches(b)
				path = link(b, "next")
				if count == 1 && len(got) != 1 || pages > 50 {
					t.Fatalf("$everything page %d holds %q (next %q), want one resource", pages, got, path)
				}
				all = append(all, got...)
			}
			return all, pages
		}
		whole, _ := everything(clinic, 100)
		paged, pages := everything(clinic, 1)
		if !slices.Equal(paged, whole) || pages != len(whole) {
			t.Fatalf("pages of one show %q in %d pages; one page shows %q", paged, pages, whole)
		}
		own, _ := everything(self, 100)
		denied := []string{"Observation/" + hiv, "Observation/pb-" + run, "Observation/pd-" + run, "Observation/pf-" + run}
		want := slices.DeleteFunc(slices.Clone(own), func(ref string) bool { return slices.Contains(denied, ref) })
		if !slices.Equal(sorted(whole...), sorted(want...)) || len(own) != len(want)+len(denied) {
			t.Fatalf("$everything shows the clinic %q; the patient sees %q", whole, own)
		}
		if r := other.do(http.MethodGet, "/Patient/"+pat+"/$everything?_count=1", nil).want(t, http.StatusOK).json(); len(bundleMatches(r)) != 0 || link(r, "next") != "" {
			t.Fatalf("$everything for a denied caller: %v", r)
		}

		// An iterated include stops at what is denied: it neither shows it
		// nor follows its references (a permitted leaf reached only
		// through a denied panel stays out).
		panel, via, leaf := "panel-"+run, "via-"+run, "leaf-"+run
		member := func(id, code string, members ...string) {
			o := map[string]any{"resourceType": "Observation", "id": id, "status": "final",
				"code":    map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": code}}},
				"subject": map[string]any{"reference": "Patient/" + pat}}
			var refs []any
			for _, m := range members {
				refs = append(refs, map[string]any{"reference": "Observation/" + m})
			}
			if refs != nil {
				o["hasMember"] = refs
			}
			c.do(http.MethodPut, "/Observation/"+id, o).want(t, http.StatusCreated)
		}
		member(leaf, "104177005")
		member(via, "86406008", leaf)
		member(panel, "104177005", "pa-"+run, "pb-"+run, via)
		r := clinic.do(http.MethodGet, "/Observation?_id="+panel+"&_include:iterate=Observation:has-member", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "include", "pa-"+run)
		r = self.do(http.MethodGet, "/Observation?_id="+panel+"&_include:iterate=Observation:has-member", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "include", "pa-"+run, "pb-"+run, via, leaf)
		r = clinic.do(http.MethodGet, "/Patient?_id="+pat+"&_revinclude=Observation:subject&_include:iterate=Observation:has-member", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "include", lab, "pa-"+run, "pc-"+run, "pe-"+run, panel, leaf)
	})
	t.Run("history pages reveal nothing", func(t *testing.T) {
		// Versions denied (the HIV code) between permitted ones.
		id := "hist-" + run
		for _, code := range []string{"104177005", "86406008", "104177005", "86406008", "104177005"} {
			r := c.do(http.MethodPut, "/Observation/"+id, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":%q}]},"subject":{"reference":"Patient/%s"}}`, id, code, pat))
			if r.StatusCode >= 300 {
				t.Fatalf("PUT: %d %s", r.StatusCode, r.body)
			}
		}
		var versions []string
		for path := "/Observation/" + id + "/_history?_count=1"; path != ""; {
			b := clinic.do(http.MethodGet, path, nil).want(t, http.StatusOK)
			var page struct {
				Entry []struct {
					Resource struct {
						Meta struct{ VersionID string } `json:"meta"`
					} `json:"resource"`
				} `json:"entry"`
			}
			json.Unmarshal(b.body, &page)
			if len(page.Entry) != 1 {
				t.Fatalf("a history page holds %d versions, want 1: %s", len(page.Entry), truncate(b.body))
			}
			versions = append(versions, page.Entry[0].Resource.Meta.VersionID)
			path = link(b.json(), "next")
			if len(versions) > 5 {
				t.Fatal("history paging does not end")
			}
		}
		if !slices.Equal(versions, []string{"5", "3", "1"}) {
			t.Fatalf("history shows versions %q, want 5, 3, 1", versions)
		}
	})
	t.Run("break-glass", func(t *testing.T) {
		r := other.do(http.MethodGet, "/Observation/"+hiv, nil, "Purpose-Of-Use", "ETREAT", "Break-Glass-Reason", "unconscious, allergy history needed").want(t, http.StatusOK)
		if rec := c.ledgerRecordOf(t, r); !rec.BreakGlass || rec.Purpose != "ETREAT" || !slices.Equal(rec.consentRefs(), []string{version}) {
			t.Fatalf("the break-glass disclosure's record: %+v", rec)
		}
		// The patient's AuditEvents mark it, the disclosure and the
		// decision both.
		n := ledgerIndexes(t, r)[0]
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			b := c.do(http.MethodGet, "/AuditEvent?patient=Patient/"+pat+"&_count=1000", nil).want(t, http.StatusOK).json()
			marked := 0
			for _, e := range b["entry"].([]any) {
				ae := e.(map[string]any)["resource"].(map[string]any)
				id := fmt.Sprint(ae["id"])
				if id != fmt.Sprintf("ledger-%d", n) && id != fmt.Sprintf("ledger-%d-authz", n) {
					continue
				}
				security, _ := json.Marshal(ae["meta"].(map[string]any)["security"])
				if !strings.Contains(string(security), `"code":"BTG"`) || !strings.Contains(fmt.Sprint(ae["purposeOfEvent"]), "ETREAT") {
					t.Fatalf("AuditEvent %s of a break-glass disclosure: security %s, purpose %v", id, security, ae["purposeOfEvent"])
				}
				marked++
			}
			if marked == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("found %d of the 2 AuditEvents of break-glass disclosure %d", marked, n)
			}
		}
	})
	t.Run("a new version of the Consent decides at once", func(t *testing.T) {
		permitAll := consentOf(pat, map[string]any{"type": "permit"})
		permitAll["id"] = id
		self.do(http.MethodPut, "/Consent/"+id, permitAll).want(t, http.StatusOK)
		r := other.do(http.MethodGet, "/Observation/"+hiv, nil).want(t, http.StatusOK)
		if rec := c.ledgerRecordOf(t, r); !slices.Equal(rec.consentRefs(), []string{"Consent/" + id + "/_history/2"}) {
			t.Fatalf("decided by %q, want version 2", rec.consentRefs())
		}
		self.do(http.MethodDelete, "/Consent/"+id, nil).want(t, http.StatusNoContent)
		if rec := c.ledgerRecordOf(t, other.do(http.MethodGet, "/Observation/"+hiv, nil).want(t, http.StatusOK)); len(rec.Consents) != 0 {
			t.Fatalf("a deleted Consent still decides: %q", rec.consentRefs())
		}
	})
}
