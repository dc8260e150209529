package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Bulk Data export cases (docs/export.md): kick-off, status, manifest
// and files at the three levels, consent gating with one disclosure
// record per exported patient, and who may see a job.

// exportManifest is a completed export's status answer.
type exportManifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error []any `json:"error"`
}

// kickOff starts an export at path and returns its status path.
func (c *client) kickOff(t *testing.T, path string) string {
	t.Helper()
	r := c.do(http.MethodGet, path, nil, "Prefer", "respond-async", "Accept", "application/fhir+json").want(t, http.StatusAccepted)
	loc := r.Header.Get("Content-Location")
	if !strings.HasPrefix(loc, c.base+"/$export-status/") {
		t.Fatalf("kick-off %s: Content-Location %q", path, loc)
	}
	return strings.TrimPrefix(loc, c.base)
}

// awaitExport polls a status path until the export completes, checking
// what each in-progress answer carries.
func (c *client) awaitExport(t *testing.T, status string) exportManifest {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := c.do(http.MethodGet, status, nil, "Accept", "application/json")
		switch r.StatusCode {
		case http.StatusAccepted:
			if r.Header.Get("Retry-After") == "" || r.Header.Get("X-Progress") == "" {
				t.Fatalf("in progress without Retry-After or X-Progress: %v", r.Header)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the export did not complete: %s", r.Header.Get("X-Progress"))
			}
			time.Sleep(100 * time.Millisecond)
			continue
		case http.StatusOK:
		default:
			t.Fatalf("status: %d %s", r.StatusCode, truncate(r.body))
		}
		if r.Header.Get("Expires") == "" {
			t.Fatal("a manifest without Expires")
		}
		var m exportManifest
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("manifest: %v: %s", err, truncate(r.body))
		}
		if !m.RequiresAccessToken || m.TransactionTime == "" || m.Error == nil {
			t.Fatalf("manifest: %s", r.body)
		}
		return m
	}
}

// download fetches every file of a manifest and returns the resources by
// "Type/id", checking each file's type and count.
func (c *client) download(t *testing.T, m exportManifest) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, o := range m.Output {
		r := c.do(http.MethodGet, strings.TrimPrefix(o.URL, c.base), nil, "Accept", "application/fhir+ndjson").want(t, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); ct != "application/fhir+ndjson" {
			t.Fatalf("%s: Content-Type %q", o.URL, ct)
		}
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var res map[string]any
			if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
				t.Fatalf("%s line %d: %v", o.URL, n+1, err)
			}
			if res["resourceType"] != o.Type {
				t.Fatalf("%s holds a %v", o.URL, res["resourceType"])
			}
			out[fmt.Sprintf("%s/%s", res["resourceType"], res["id"])] = res
			n++
		}
		if n != o.Count {
			t.Fatalf("%s: %d lines, the manifest says %d", o.URL, n, o.Count)
		}
	}
	return out
}

// exportRecords returns the ledger records of the exports about patient,
// waiting up to 20 s for at least want of them to be listed.
func (c *client) exportRecords(t *testing.T, patient string, want int) []ledgerRecord {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out []ledgerRecord
		seen := map[int64]bool{}
		for _, ae := range c.auditEventsOf(t, patient) {
			if seen[ae.index] {
				continue // a disclosure shows as two AuditEvents
			}
			seen[ae.index] = true
			if rec, _ := c.record(t, c.checkpoint(t, ae.index), ae.index); rec.Interaction == "export" {
				out = append(out, rec)
			}
		}
		if len(out) >= want || time.Now().After(deadline) {
			return out
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// withoutAuditEvents lists the sorted "Type/id" keys of got but for the
// write AuditEvents, which the server stores in the patients'
// compartments as the ledger integrates their writes: whether a given
// one is there yet depends on timing.
func withoutAuditEvents[V any](got map[string]V) []string {
	var out []string
	for k := range got {
		if !strings.HasPrefix(k, "AuditEvent/ledger-") {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func testExport(t *testing.T, c *client, run string) {
	since := time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano)
	a, b := "ex-a-"+run, "ex-b-"+run
	lab, hiv, cond, bObs := "ex-lab-"+run, "ex-hiv-"+run, "ex-cond-"+run, "ex-bobs-"+run
	org, group := "ex-org-"+run, "ex-group-"+run
	put := func(typ, id, body string) {
		c.do(http.MethodPut, "/"+typ+"/"+id, body).want(t, http.StatusCreated)
	}
	obs := func(id, patient, code string) {
		put("Observation", id, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"coding":[{"system":"http://snomed.info/sct","code":%q}]},"subject":{"reference":"Patient/%s"}}`, id, code, patient))
	}
	put("Patient", a, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, a))
	put("Patient", b, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, b))
	obs(lab, a, "104177005")
	obs(hiv, a, "86406008")
	obs(bObs, b, "104177005")
	put("Condition", cond, fmt.Sprintf(`{"resourceType":"Condition","id":%q,"subject":{"reference":"Patient/%s"}}`, cond, a))
	put("Organization", org, fmt.Sprintf(`{"resourceType":"Organization","id":%q,"name":"Export clinic"}`, org))
	put("Group", group, fmt.Sprintf(`{"resourceType":"Group","id":%q,"type":"person","actual":true,"member":[{"entity":{"reference":"Patient/%s"}},{"entity":{"reference":"Patient/%s"}}]}`, group, a, b))

	bulkOrg := "Organization/bulk-" + run
	c.register(t, "bulk-"+run, map[string]any{"actor": bulkOrg, "scope": "system/*.rs", "purposes": []string{"TREAT"}})
	bulk := c.srv.as(t, TokenRequest{Client: "bulk-" + run, Scope: "system/*.rs"})
	c.register(t, "bulk2-"+run, map[string]any{"actor": "Organization/bulk2-" + run, "scope": "system/Observation.rs", "purposes": []string{"TREAT"}})
	narrow := c.srv.as(t, TokenRequest{Client: "bulk2-" + run, Scope: "system/Observation.rs"})
	// A's Consent withholds the HIV test from the bulk client; B's lets
	// only somebody else see anything.
	consentA, _ := created(t, c, "Consent", consentOf(a, map[string]any{"type": "permit", "provision": []any{
		map[string]any{"type": "deny", "actor": actorRef(bulkOrg),
			"code": []any{map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "86406008"}}}}}}}))
	created(t, c, "Consent", consentOf(b, map[string]any{"type": "deny", "provision": []any{
		map[string]any{"type": "permit", "actor": actorRef("Organization/somebody-else-" + run)}}}))

	t.Run("the CapabilityStatement lists $export", func(t *testing.T) {
		var cs struct {
			Instantiates []string `json:"instantiates"`
			Rest         []struct {
				Operation []struct{ Name, Definition string } `json:"operation"`
				Resource  []struct {
					Type      string                              `json:"type"`
					Operation []struct{ Name, Definition string } `json:"operation"`
				} `json:"resource"`
			} `json:"rest"`
		}
		json.Unmarshal(c.do(http.MethodGet, "/metadata", nil).want(t, http.StatusOK).body, &cs)
		defs := map[string]bool{}
		for _, o := range cs.Rest[0].Operation {
			defs[o.Name+" "+o.Definition] = true
		}
		for _, r := range cs.Rest[0].Resource {
			for _, o := range r.Operation {
				defs[r.Type+" "+o.Name+" "+o.Definition] = true
			}
		}
		const bulk = "http://hl7.org/fhir/uv/bulkdata/"
		for _, d := range []string{"export " + bulk + "OperationDefinition/export", "Patient export " + bulk + "OperationDefinition/patient-export",
			"Group export " + bulk + "OperationDefinition/group-export"} {
			if !defs[d] {
				t.Errorf("no operation %s", d)
			}
		}
		if !slices.Contains(cs.Instantiates, bulk+"CapabilityStatement/bulk-data") {
			t.Errorf("instantiates %v", cs.Instantiates)
		}
	})

	t.Run("kick-off refusals", func(t *testing.T) {
		bulk.do(http.MethodGet, "/Group/"+group+"/$export", nil).want(t, http.StatusBadRequest) // no Prefer: respond-async
		for _, path := range []string{
			"/$export?_type=NotAType",
			"/Patient/$export?_type=Organization", // not patient data
			"/$export?_type=Patient&_typeFilter=" + url.QueryEscape("Observation?code=x"), // a type not exported
			"/$export?_typeFilter=" + url.QueryEscape("Observation?no-such-param=1"),
			"/$export?_typeFilter=" + url.QueryEscape("Observation?_count=1"),
			"/$export?_since=yesterday",
			"/$export?_outputFormat=text/csv",
		} {
			bulk.do(http.MethodGet, path, nil, "Prefer", "respond-async").want(t, http.StatusBadRequest)
		}
		bulk.do(http.MethodGet, "/$export?unknown=1", nil, "Prefer", "respond-async, handling=strict").want(t, http.StatusBadRequest)
		for _, body := range []string{
			`{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/` + a + `"}}]}`, // not at system level
			`{"resourceType":"Parameters","parameter":[{"name":"_type","valueInteger":1}]}`,
			`{"resourceType":"Parameters","parameter":[{"name":"_since","valueString":"yesterday"}]}`,
			`{"resourceType":"Patient"}`,
			`{"resourceType":"Parameters","parameter":`,
		} {
			bulk.do(http.MethodPost, "/$export", body, "Prefer", "respond-async").want(t, http.StatusBadRequest)
		}
		bulk.do(http.MethodPost, "/Patient/$export", `{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Group/x"}}]}`,
			"Prefer", "respond-async").want(t, http.StatusBadRequest)
		bulk.do(http.MethodGet, "/Patient/$export?patient=Patient/"+a, nil, "Prefer", "respond-async").want(t, http.StatusBadRequest)
		bulk.do(http.MethodGet, "/Observation/$export", nil, "Prefer", "respond-async").want(t, http.StatusNotFound)
		bulk.do(http.MethodGet, "/Patient/"+a+"/$export", nil, "Prefer", "respond-async").want(t, http.StatusNotFound)
		bulk.do(http.MethodGet, "/Group/no-such-group-"+run+"/$export", nil, "Prefer", "respond-async").want(t, http.StatusNotFound)
		narrow.do(http.MethodGet, "/$export?_type=Patient", nil, "Prefer", "respond-async").want(t, http.StatusForbidden)
		narrow.do(http.MethodGet, "/Group/"+group+"/$export", nil, "Prefer", "respond-async").want(t, http.StatusForbidden) // may not read the Group
	})

	var status string
	t.Run("a Group export holds what the consents permit, and records each patient once", func(t *testing.T) {
		status = bulk.kickOff(t, "/Group/"+group+"/$export")
		m := bulk.awaitExport(t, status)
		if !strings.HasSuffix(m.Request, "/Group/"+group+"/$export") {
			t.Fatalf("manifest request %q", m.Request)
		}
		got := bulk.download(t, m)
		keys := withoutAuditEvents(got)
		// The Group is in the compartment of its first member, A.
		want := []string{"Condition/" + cond, "Consent/" + consentA, "Group/" + group, "Observation/" + lab, "Patient/" + a}
		if !slices.Equal(keys, want) {
			t.Fatalf("exported %v, want %v", keys, want)
		}
		// A: one disclosure of what was exported, one denial of the HIV test.
		recs := c.exportRecords(t, a, 2)
		slices.SortFunc(recs, func(x, y ledgerRecord) int { return strings.Compare(x.Type, y.Type) })
		if len(recs) != 2 || recs[0].Type != "denial" || recs[1].Type != "disclosure" ||
			len(recs[0].Resources) != 1 || recs[0].Resources[0].Ref != "Observation/"+hiv+"/_history/1" {
			t.Fatalf("A's export records: %+v", recs)
		}
		recs = recs[1:]
		if recs[0].Recipient == nil || recs[0].Recipient.Client != "bulk-"+run || recs[0].Recipient.Organization != bulkOrg || recs[0].Purpose != "TREAT" {
			t.Fatalf("A's disclosure: %+v", recs[0])
		}
		// The record names exactly what the files hold.
		var refs, files []string
		for _, r := range recs[0].Resources {
			refs = append(refs, strings.Split(r.Ref, "/_history/")[0])
		}
		for k := range got {
			files = append(files, k)
		}
		slices.Sort(refs)
		slices.Sort(files)
		if !slices.Equal(refs, files) {
			t.Fatalf("A's disclosure names %v, the files hold %v", refs, files)
		}
		if len(recs[0].Consents) != 1 {
			t.Fatalf("A's disclosure cites consents %+v", recs[0].Consents)
		}
		recs = c.exportRecords(t, b, 1)
		denied := map[string]any{}
		for _, r := range recs[0].Resources {
			denied[strings.Split(r.Ref, "/_history/")[0]] = true
		}
		if len(recs) != 1 || recs[0].Type != "denial" || len(withoutAuditEvents(denied)) != 3 { // the Patient, the Observation, the Consent
			t.Fatalf("B's export records: %+v", recs)
		}
	})

	t.Run("only the client that asked sees the job", func(t *testing.T) {
		narrow.do(http.MethodGet, status, nil).want(t, http.StatusNotFound)
		narrow.do(http.MethodDelete, status, nil).want(t, http.StatusNotFound)
		m := bulk.awaitExport(t, status)
		narrow.do(http.MethodGet, strings.TrimPrefix(m.Output[0].URL, c.base), nil).want(t, http.StatusNotFound)
		bulk.do(http.MethodGet, strings.TrimPrefix(m.Output[0].URL, c.base)+"x", nil).want(t, http.StatusNotFound)
	})

	t.Run("system export with _since, _type and _typeFilter", func(t *testing.T) {
		q := url.Values{"_since": {since}, "_type": {"Observation,Organization,Patient"},
			"_typeFilter": {"Observation?code=" + url.QueryEscape("http://snomed.info/sct|104177005")}}
		m := bulk.awaitExport(t, bulk.kickOff(t, "/$export?"+q.Encode()))
		got := bulk.download(t, m)
		for _, k := range []string{"Observation/" + lab, "Organization/" + org, "Patient/" + a} {
			if got[k] == nil {
				t.Errorf("%s missing from %d resources", k, len(got))
			}
		}
		for k, res := range got {
			typ, _, _ := strings.Cut(k, "/")
			code, _ := json.Marshal(res["code"])
			if !slices.Contains([]string{"Observation", "Organization", "Patient"}, typ) || typ == "Observation" && !strings.Contains(string(code), "104177005") {
				t.Errorf("%s exported", k)
			}
		}
		for _, k := range []string{"Observation/" + hiv, "Observation/" + bObs, "Patient/" + b} {
			if got[k] != nil {
				t.Errorf("%s exported against its patient's consent", k)
			}
		}
	})

	t.Run("a POST kick-off with the patient parameter", func(t *testing.T) {
		body := `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient,Observation"},` +
			`{"name":"patient","valueReference":{"reference":"Patient/` + a + `"}},{"name":"patient","valueReference":{"reference":"Patient/not-a-member-` + run + `"}}]}`
		r := bulk.do(http.MethodPost, "/Group/"+group+"/$export", body, "Prefer", "respond-async").want(t, http.StatusAccepted)
		got := bulk.download(t, bulk.awaitExport(t, strings.TrimPrefix(r.Header.Get("Content-Location"), c.base)))
		keys := withoutAuditEvents(got)
		if want := []string{"Observation/" + lab, "Patient/" + a}; !slices.Equal(keys, want) {
			t.Fatalf("exported %v, want %v", keys, want)
		}
	})

	t.Run("a Patient export, deleted while the client holds it", func(t *testing.T) {
		st := bulk.kickOff(t, "/Patient/$export?_type=Patient,Observation&_since="+url.QueryEscape(since))
		m := bulk.awaitExport(t, st)
		got := bulk.download(t, m)
		if got["Patient/"+a] == nil || got["Observation/"+lab] == nil || got["Organization/"+org] != nil {
			t.Fatalf("patient export: %d resources", len(got))
		}
		bulk.do(http.MethodDelete, st, nil).want(t, http.StatusAccepted)
		bulk.do(http.MethodGet, st, nil).want(t, http.StatusNotFound)
		bulk.do(http.MethodGet, strings.TrimPrefix(m.Output[0].URL, c.base), nil).want(t, http.StatusNotFound)
		bulk.do(http.MethodDelete, st, nil).want(t, http.StatusNotFound)
	})

	t.Run("erasing a patient deletes the exports that hold their data", func(t *testing.T) {
		withA := bulk.kickOff(t, "/Group/"+group+"/$export")
		bulk.awaitExport(t, withA)
		onlyB := `{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/` + b + `"}}]}`
		r := bulk.do(http.MethodPost, "/Group/"+group+"/$export", onlyB, "Prefer", "respond-async").want(t, http.StatusAccepted)
		withoutA := strings.TrimPrefix(r.Header.Get("Content-Location"), c.base)
		bulk.awaitExport(t, withoutA)
		c.do(http.MethodPost, "/Patient/"+a+"/$erase", nil).want(t, http.StatusOK)
		bulk.do(http.MethodGet, withA, nil).want(t, http.StatusNotFound)
		bulk.awaitExport(t, withoutA)
	})
}
