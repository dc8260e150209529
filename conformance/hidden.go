package conformance

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The canary property (docs/security.md): in two worlds, one holding
// Bob's data (every value a canary) and one without it, every caller
// that may see nothing of Bob's sends the same requests: a table of
// every interaction, search modifier, chain, _has, include, conditional
// write, PATCH op, Bundle entry and export, then random searches built
// from the same parts. No canary may appear in any answer, errors
// included; every criteria-driven answer must be the same in both
// worlds; and every answer that carries patient data must name in
// Ledger-Index the records of exactly the versions it shows.
//
// EHR_CANARY_SEED and EHR_CANARY_QUERIES choose the random searches (a
// fixed seed and 40 queries by default); a longer run is
// EHR_CANARY_SEED=$RANDOM EHR_CANARY_QUERIES=2000 ./scripts/test.sh
// -run 'TestConformance/sqlite/hidden' ./server/.

// probe is one request of the table: method, path and body with {name}
// placeholders (world.expand), extra headers, and whether its answer
// depends on criteria that could reach hidden data, so must not differ
// between the worlds.
type probe struct {
	method, path, body string
	headers            []string
	criteria           bool
}

func get(path string) probe { return probe{method: http.MethodGet, path: path} }

// search is a GET whose answer depends on criteria.
func search(path string) probe { return probe{method: http.MethodGet, path: path, criteria: true} }

func (p probe) with(h ...string) probe { p.headers = append(slices.Clip(p.headers), h...); return p }

// expand replaces the placeholders of s with w's values, escaped for a
// query string when escape is set.
func (w *world) expand(s string, escape bool) string {
	vals := map[string]string{
		"run": w.run, "alice": w.alice, "bob": w.bob, "org": w.org, "group": "grp-" + w.run,
		"aliceVitals": w.aliceVitals, "aliceLab": w.aliceLab, "aliceByBob": w.aliceByBob,
		"bobObs": w.bobObs, "bobTask": w.bobTask, "bobConsent": w.bobConsent,
		"bobFamily": w.bobFamily, "bobFamily3": w.bobFamily[:3], "bobGiven": w.bobGiven, "bobMRN": w.bobMRN,
		"bobPhone": w.bobPhone, "bobLine": w.bobLine, "bobLineWord": strings.Fields(w.bobLine)[1],
		"bobNote": w.bobNote, "bobText": w.bobText, "bobText8": strings.ToLower(w.bobText[:8]), "bobDisplay": w.bobDisplay,
		"bobObsMRN": w.bobObsMRN, "bobBirth": w.bobBirth, "bobValue": w.bobValue,
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '{')
		j := strings.IndexByte(s[i+1:], '}')
		if i < 0 || j < 0 {
			b.WriteString(s)
			return b.String()
		}
		name := s[i+1 : i+1+j]
		v, ok := vals[name]
		if !ok {
			b.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		if escape {
			v = url.QueryEscape(v)
		}
		b.WriteString(s[:i] + v)
		s = s[i+2+j:]
	}
}

// probes is the table.
func probes() []probe {
	anchor := "organization=Organization/{org}"
	obsAnchor := "subject:Patient.organization=Organization/{org}"
	aliceObs := `{"resourceType":"Observation","status":"final","code":{"text":"probe {run}"},"subject":{"reference":"Patient/{alice}"}}`
	bobsObs := "identifier=http%3A%2F%2Fleak.example%2Fobs%7C{bobObsMRN}"
	bobsMRN := "identifier=http%3A%2F%2Fleak.example%2Fmrn%7C{bobMRN}"
	tx := func(entries ...string) string {
		return `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
	}
	patchEntry := func(url, ops string) string {
		b, _ := json.Marshal(patchBinary(ops))
		return `{"resource":` + string(b) + `,"request":{"method":"PATCH","url":"` + url + `"}}`
	}
	out := []probe{
		// Reads: a hidden resource is refused (403) where a missing one is
		// not found (404): ids are not secret, their content is.
		get("/Patient/{alice}"), get("/Patient/{bob}"), get("/Observation/{bobObs}"), get("/Task/{bobTask}"),
		get("/Consent/{bobConsent}"), get("/Observation/{bobObs}/_history/1"), get("/Patient/{bob}/_history"),
		get("/Observation/{aliceVitals}/_history"), get("/Organization/{org}"), get("/Patient/{bob}/$everything"),
		get("/Observation/{bobObs}").with("If-None-Match", `W/"1"`), get("/AuditEvent?patient=Patient/{bob}"),
		get("/AuditEvent?patient=Patient/{alice}&_count=5"),
		// Searches and their result parameters.
		search("/Patient?" + anchor), search("/Patient?" + anchor + "&_sort=-birthdate"),
		search("/Patient?" + anchor + "&_summary=count"), search("/Patient?" + anchor + "&_total=accurate&_count=1"),
		search("/Patient?" + anchor + "&_elements=name,birthDate"), search("/Patient?" + anchor + "&_summary=true"),
		search("/Patient?" + anchor + "&family={bobFamily3}"), search("/Patient?" + anchor + "&family:exact={bobFamily}"),
		search("/Patient?" + anchor + "&given={bobGiven}"), search("/Patient?" + anchor + "&birthdate={bobBirth}"),
		search("/Patient?" + anchor + "&birthdate=lt1970"), search("/Patient?" + anchor + "&gender=male"),
		search("/Patient?" + anchor + "&phone={bobPhone}"), search("/Patient?" + anchor + "&" + bobsMRN),
		search("/Patient?" + anchor + "&address={bobLineWord}"), search("/Patient?" + anchor + "&_revinclude=Observation:subject"),
		search("/Patient?" + anchor + "&_revinclude=Task:patient&_revinclude=Consent:patient"),
		search("/Patient?" + anchor + "&_has:Observation:subject:code=86406008"),
		search("/Patient?" + anchor + "&_has:Observation:subject:value-quantity=gt7000"),
		search("/Patient?" + anchor + "&_has:Task:patient:status=requested"),
		search("/Patient?" + anchor + "&_has:Observation:performer:code:text=reported"),
		search("/Organization?_id={org}&_has:Patient:organization:family={bobFamily3}"),
		search("/Organization?_id={org}&_has:Patient:organization:birthdate={bobBirth}"),
		search("/Organization?_id={org}&_revinclude=Patient:organization"),
		search("/Organization?_id={org}&_has:Patient:organization:_has:Observation:subject:code=86406008"),
		search("/Observation?" + obsAnchor), search("/Observation?" + obsAnchor + "&code=86406008"),
		search("/Observation?" + obsAnchor + "&code:text={bobText8}"), search("/Observation?" + obsAnchor + "&value-quantity=gt7000"),
		search("/Observation?" + obsAnchor + "&_include=Observation:subject&_include=Observation:performer"),
		search("/Observation?" + obsAnchor + "&_sort=-date&_count=1"), search("/Observation?" + obsAnchor + "&_summary=count"),
		search("/Observation?" + obsAnchor + "&_include:iterate=Observation:has-member&_revinclude=Provenance:target"),
		search("/Observation?" + bobsObs), search("/Observation?performer:Patient.family={bobFamily}"),
		search("/Observation?_id={aliceByBob}&_include=Observation:performer"),
		search("/Observation?subject:Patient.birthdate={bobBirth}&subject:Patient." + anchor),
		search("/Observation?focus:Patient.birthdate={bobBirth}"),
		search("/Task?patient." + anchor), search("/Task?identifier=http%3A%2F%2Fleak.example%2Ftask%7Ctask-{run}"),
		search("/Patient/{alice}/$everything?_type=Patient,Observation,Task"), search("/Patient/{alice}/Observation"),
		search("/Patient/{bob}/Observation"), search("/Patient/{bob}/Task"),
		{method: http.MethodPost, path: "/Observation/_search", body: obsAnchor + "&code=86406008", criteria: true,
			headers: []string{"Content-Type", "application/x-www-form-urlencoded"}},
		// Conditional writes and PATCH: the hidden match is no match.
		{method: http.MethodPost, path: "/Observation", body: aliceObs, headers: []string{"If-None-Exist", "identifier=http://leak.example/obs|{bobObsMRN}"}, criteria: true},
		{method: http.MethodPut, path: "/Observation?" + bobsObs, body: aliceObs, headers: []string{"If-Match", `W/"999"`}, criteria: true},
		{method: http.MethodPut, path: "/Observation?" + bobsObs, body: aliceObs, criteria: true},
		{method: http.MethodDelete, path: "/Observation?" + bobsObs, criteria: true},
		{method: http.MethodPatch, path: "/Observation?" + bobsObs, body: "[]", headers: []string{"Content-Type", "application/json-patch+json"}, criteria: true},
		{method: http.MethodPatch, path: "/Patient?" + bobsMRN, body: `[{"op":"test","path":"/birthDate","value":"{bobBirth}"}]`,
			headers: []string{"Content-Type", "application/json-patch+json"}, criteria: true},
		{method: http.MethodPatch, path: "/Patient/{bob}", body: `[{"op":"copy","from":"/name/0/family","path":"/gender"}]`,
			headers: []string{"Content-Type", "application/json-patch+json"}},
		{method: http.MethodPatch, path: "/Observation/{bobObs}", body: `[{"op":"copy","from":"/note/0/text","path":"/status"}]`,
			headers: []string{"Content-Type", "application/json-patch+json"}},
		{method: http.MethodPatch, path: "/Observation/{aliceVitals}", body: `[{"op":"test","path":"/status","value":"final"}]`,
			headers: []string{"Content-Type", "application/json-patch+json"}, criteria: true},
		// Bundles.
		{method: http.MethodPost, path: "/", criteria: true, body: tx(`{"resource":{"resourceType":"Observation","status":"final","code":{"text":"tx {run}"},` +
			`"subject":{"reference":"Patient?identifier=http://leak.example/mrn|{bobMRN}"}},"request":{"method":"POST","url":"Observation"}}`)},
		{method: http.MethodPost, path: "/", criteria: true, headers: []string{"Prefer", "return=representation"},
			body: tx(`{"resource":` + aliceObs + `,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=http://leak.example/obs|{bobObsMRN}"}}`)},
		{method: http.MethodPost, path: "/", criteria: true, headers: []string{"Prefer", "return=representation"},
			body: tx(patchEntry("Patient?identifier=http://leak.example/mrn|{bobMRN}", `[{"op":"copy","from":"/name/0/family","path":"/gender"}]`))},
		{method: http.MethodPost, path: "/", headers: []string{"Prefer", "return=representation"},
			body: tx(patchEntry("Observation/{bobObs}", `[{"op":"copy","from":"/note/0/text","path":"/status"}]`))},
		{method: http.MethodPost, path: "/", criteria: true, body: `{"resourceType":"Bundle","type":"batch","entry":[` +
			`{"request":{"method":"GET","url":"Observation?` + obsAnchor + `"}},` +
			`{"request":{"method":"GET","url":"Patient?` + anchor + `&_has:Observation:subject:code=86406008"}},` +
			`{"request":{"method":"GET","url":"Task?patient.` + anchor + `"}}]}`},
	}
	return out
}

// hiddenSearch is one random search built from the parts of the table.
func hiddenSearch(r *rand.Rand) probe {
	type part struct{ typ, anchor string }
	bases := []part{{"Patient", "organization=Organization/{org}"}, {"Observation", "subject:Patient.organization=Organization/{org}"},
		{"Task", "patient.organization=Organization/{org}"}, {"Organization", "_id={org}"}}
	filters := map[string][]string{
		"Patient": {"family={bobFamily3}", "family:exact={bobFamily}", "given={bobGiven}", "birthdate={bobBirth}", "birthdate=lt1970", "birthdate=ge1970",
			"gender=male", "phone={bobPhone}", "address={bobLineWord}", "identifier={bobMRN}", "_has:Observation:subject:code=86406008",
			"_has:Observation:subject:value-quantity=gt7000", "_has:Task:patient:status=requested", "_has:Observation:performer:status=final",
			"name:contains=ali", "_id={bob}", "_id={alice}", "link:missing=true"},
		"Observation": {"code=86406008", "code:text={bobText8}", "code:text=alice", "value-quantity=gt7000", "value-quantity=lt100",
			"performer:Patient.family={bobFamily}", "subject:Patient.gender=male", "category=laboratory", "identifier={bobObsMRN}",
			"_id={bobObs}", "status=final", "date:missing=true", "_has:Provenance:target:_id=x"},
		"Task":         {"status=requested", "for:Patient.birthdate={bobBirth}", "_id={bobTask}", "description:missing=false"},
		"Organization": {"_has:Patient:organization:family={bobFamily3}", "_has:Patient:organization:gender=male", "name=clinic"},
	}
	results := map[string][]string{
		"Patient":      {"_revinclude=Observation:subject", "_revinclude=Task:patient", "_sort=-birthdate", "_elements=name", "_summary=count", "_total=accurate"},
		"Observation":  {"_include=Observation:subject", "_include=Observation:performer", "_sort=-value-quantity", "_summary=true", "_count=1", "_total=accurate"},
		"Task":         {"_include=Task:patient", "_summary=count", "_sort=status"},
		"Organization": {"_revinclude=Patient:organization", "_total=accurate"},
	}
	b := bases[r.IntN(len(bases))]
	q := []string{b.anchor}
	for n := r.IntN(3); n >= 0; n-- {
		q = append(q, filters[b.typ][r.IntN(len(filters[b.typ]))])
	}
	for n := r.IntN(3); n > 0; n-- {
		q = append(q, results[b.typ][r.IntN(len(results[b.typ]))])
	}
	return search("/" + b.typ + "?" + strings.Join(q, "&"))
}

// reads says p is a read, whose answer discloses what it shows (a write
// answers with what the caller sent, which its write record names).
func reads(p probe) bool {
	return p.method == http.MethodGet || p.method == http.MethodPatch || strings.HasSuffix(p.path, "/_search") ||
		strings.Contains(p.body, `"type":"batch"`)
}

// shown is what an answer of patient data showed, for its records to be
// checked: the versions ("Type/id/_history/n", or "Type/id" when the
// answer left the version out) and the ledger indexes it named.
type shown struct {
	what     string
	versions []string
	indexes  []int64
}

// patientData lists the versions of patient data an answer shows: every
// resource in it but the Organizations, OperationOutcomes and Bundles,
// which are no one's.
func patientData(body []byte) []string {
	var doc struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Meta         struct {
			VersionID string `json:"versionId"`
		} `json:"meta"`
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return nil
	}
	switch doc.ResourceType {
	case "", "Organization", "OperationOutcome":
		return nil
	case "Bundle":
		var out []string
		for _, e := range doc.Entry {
			out = append(out, patientData(e.Resource)...)
		}
		return out
	}
	ref := doc.ResourceType + "/" + doc.ID
	if doc.Meta.VersionID != "" {
		ref += "/_history/" + doc.Meta.VersionID
	} else if strings.HasPrefix(doc.ID, "ledger-") {
		ref += "/_history/1" // an AuditEvent the server builds from a ledger record
	}
	return []string{ref}
}

func testHiddenData(t *testing.T, c *client, run string) {
	// The worlds' callers act for the same organisation, which Bob's
	// Consent denies; their canaries differ.
	orgB := "Organization/org-b-h-" + run
	with := newWorld(t, c, "hw-"+run, true, 23, orgB)
	without := newWorld(t, c, "hn-"+run, false, 29, orgB)
	for _, w := range []*world{with, without} {
		group := map[string]any{"resourceType": "Group", "id": "grp-" + w.run, "type": "person", "actual": true,
			"member": []any{map[string]any{"entity": map[string]any{"reference": "Patient/" + w.alice}},
				map[string]any{"entity": map[string]any{"reference": "Patient/" + w.bob}}}}
		c.do(http.MethodPut, "/Group/grp-"+w.run, group).want(t, http.StatusCreated)
	}
	table := probes()
	seed, _ := strconv.ParseUint(os.Getenv("EHR_CANARY_SEED"), 10, 64)
	if seed == 0 {
		seed = 1
	}
	queries := 40
	if n, err := strconv.Atoi(os.Getenv("EHR_CANARY_QUERIES")); err == nil {
		queries = n
	}
	r := rand.New(rand.NewPCG(seed, 1))
	for range queries {
		table = append(table, hiddenSearch(r))
	}
	t.Logf("%d requests per caller and world (random searches: seed %d)", len(table), seed)
	type pair struct{ with, without *client }
	callers := map[string]pair{"Alice's app": {with.aliceApp, without.aliceApp}, "org-b": {with.orgb, without.orgb},
		"org-b writing": {with.orgbw, without.orgbw}, "Patients only": {with.patientsOnly, without.patientsOnly},
		"vital signs only": {with.vitalsOnly, without.vitalsOnly}, "create only": {with.createOnly, without.createOnly},
		"update only": {with.updateOnly, without.updateOnly}}
	names := make([]string, 0, len(callers))
	for name := range callers {
		names = append(names, name)
	}
	slices.Sort(names)
	var records []shown
	send := func(w *world, caller *client, p probe) (*response, string) {
		path, body := w.expand(p.path, true), w.expand(p.body, false)
		headers := make([]string, len(p.headers))
		for i, h := range p.headers {
			headers[i] = w.expand(h, false)
		}
		var b any
		if body != "" {
			b = body
		}
		return caller.do(p.method, path, b, headers...), path + "\n" + body + "\n" + strings.Join(headers, "\n")
	}
	for _, name := range names {
		pr := callers[name]
		t.Run(name, func(t *testing.T) {
			for _, p := range table {
				a, sent := send(with, pr.with, p)
				if got := leaked(a, sent, with.hiddenFrom(pr.with)); len(got) > 0 {
					t.Errorf("%s %s leaks %q: %s", p.method, p.path, got, truncate(a.body))
				}
				if a.StatusCode >= 500 {
					t.Errorf("%s %s: %d %s", p.method, p.path, a.StatusCode, truncate(a.body))
				}
				if a.StatusCode < 300 && reads(p) {
					records = append(records, shown{what: name + ": " + p.method + " " + p.path, versions: patientData(a.body), indexes: ledgerIndexes(t, a)})
				}
				b, _ := send(without, pr.without, p)
				if p.criteria {
					na, nb := normalize(a, with.placeholders()...), normalize(b, without.placeholders()...)
					if a.StatusCode != b.StatusCode || na != nb {
						t.Errorf("%s %s differs with and without hidden data:\n%s\n%s", p.method, p.path, na, nb)
					}
				}
			}
			exportBoth(t, with, without, pr.with, pr.without)
		})
	}
	t.Run("the records name what was shown", func(t *testing.T) {
		var last int64
		for _, s := range records {
			for _, n := range s.indexes {
				last = max(last, n)
			}
		}
		cp := c.checkpoint(t, last)
		for _, s := range records {
			var named []string
			for _, n := range s.indexes {
				rec, _ := c.record(t, cp, n)
				if rec.Type != "disclosure" {
					t.Errorf("%s: record %d is a %s record", s.what, n, rec.Type)
				}
				for _, res := range rec.Resources {
					named = append(named, res.Ref)
				}
			}
			want := slices.Clone(s.versions)
			for i, v := range want {
				if !strings.Contains(v, "/_history/") { // the answer left the version out
					for _, n := range named {
						if strings.HasPrefix(n, v+"/_history/") {
							want[i] = n
						}
					}
				}
			}
			slices.Sort(want)
			slices.Sort(named)
			if !slices.Equal(slices.Compact(want), slices.Compact(named)) {
				t.Errorf("%s shows %q; its records name %q", s.what, want, named)
			}
		}
	})
}

// exportBoth exports the group of each world as caller would, and checks
// that the files hold no canary and the same resources, but for what
// differs between the worlds by design.
func exportBoth(t *testing.T, with, without *world, a, b *client) {
	t.Helper()
	run := func(w *world, c *client) (int, string, []byte) {
		path := "/Group/grp-" + w.run + "/$export?_type=Patient,Observation,Task"
		r := c.do(http.MethodGet, path, nil, "Prefer", "respond-async", "Accept", "application/fhir+json")
		if r.StatusCode != http.StatusAccepted {
			return r.StatusCode, normalize(r, w.placeholders()...), r.body
		}
		status := strings.TrimPrefix(r.Header.Get("Content-Location"), c.base)
		m := c.awaitExport(t, status)
		var all []byte
		var counts []string
		for _, o := range m.Output {
			f := c.do(http.MethodGet, strings.TrimPrefix(o.URL, c.base), nil, "Accept", "application/fhir+ndjson").want(t, http.StatusOK)
			all = append(all, f.body...)
			counts = append(counts, fmt.Sprintf("%s:%d", o.Type, o.Count))
		}
		c.do(http.MethodDelete, status, nil).want(t, http.StatusAccepted)
		return http.StatusOK, strings.Join(counts, ","), all
	}
	sa, na, fa := run(with, a)
	sb, nb, _ := run(without, b)
	if got := leakedIn(fa, with.hiddenFrom(a)); len(got) > 0 {
		t.Errorf("the group's export leaks %q", got)
	}
	if sa != sb || na != nb {
		t.Errorf("the group's export differs with and without hidden data: %d %s / %d %s", sa, na, sb, nb)
	}
}
