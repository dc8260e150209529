package conformance

import (
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAccounting asks a patient's accounting of disclosures after a mix of
// reads, a search, a break-glass access and a denial, and checks it
// offline with ehrledger verify, then with each field tampered with.
func TestAccounting(t *testing.T) {
	bin := binary(t)
	data := t.TempDir()
	p := serve(t, bin, "--data", data)
	admin := p.client(t)
	pat := "acct-x"
	admin.do(http.MethodPut, "/Patient/"+pat, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, pat)).want(t, http.StatusCreated)
	for _, o := range []string{"acct-a", "acct-b"} {
		admin.do(http.MethodPut, "/Observation/"+o, fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, o, pat)).want(t, http.StatusCreated)
	}
	caller := func(name, actor string, purposes []string, patient string) *client {
		reg := map[string]any{"actor": actor, "scope": "system/*.rs", "purposes": purposes, "name": "The " + name + " people"}
		scope := "system/*.rs"
		if patient != "" {
			reg["patient"], reg["scope"], scope = patient, "patient/*.rs", "patient/*.rs"
		}
		admin.register(t, name, reg)
		return p.server().as(t, TokenRequest{Client: name, Scope: scope, Patient: patient})
	}
	self := caller("acct-self", "Patient/"+pat, []string{"PATRQT"}, pat)
	clinic := caller("acct-clinic", "Organization/acct-clinic", []string{"TREAT", "HRESCH"}, "")
	other := caller("acct-other", "Organization/acct-other", []string{"TREAT", "ETREAT"}, "")
	consentOnly := consentOf(pat, map[string]any{"type": "deny", "provision": []any{
		map[string]any{"type": "permit", "actor": actorRef("Organization/acct-clinic")}}})
	created(t, admin, "Consent", consentOnly)

	// The disclosures: the indexes the answers named.
	var want []int64
	disclosed := func(r *response) { want = append(want, ledgerIndexes(t, r)...) }
	disclosed(clinic.do(http.MethodGet, "/Observation/acct-a", nil).want(t, http.StatusOK))
	disclosed(clinic.do(http.MethodGet, "/Observation?subject=Patient/"+pat, nil, "Purpose-Of-Use", "HRESCH").want(t, http.StatusOK))
	bg := other.do(http.MethodGet, "/Observation/acct-b", nil, "Purpose-Of-Use", "ETREAT", "Break-Glass-Reason", "unconscious").want(t, http.StatusOK)
	disclosed(bg)
	other.do(http.MethodGet, "/Observation/acct-a", nil).want(t, http.StatusForbidden) // a denial: not in the accounting

	clinic.do(http.MethodGet, "/Patient/"+pat+"/$disclosures", nil).want(t, http.StatusForbidden)
	self.do(http.MethodGet, "/Patient/other-patient/$disclosures", nil).want(t, http.StatusForbidden)
	self.do(http.MethodGet, "/Patient/"+pat+"/$disclosures?start=2030-01-01&end=2020-01-01", nil).want(t, http.StatusBadRequest)
	r := self.do(http.MethodGet, "/Patient/"+pat+"/$disclosures", nil).want(t, http.StatusOK)
	var b struct {
		Entry []struct {
			FullURL  string         `json:"fullUrl"`
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	json.Unmarshal(r.body, &b)
	var got []int64
	for _, e := range b.Entry[1:] {
		n := int64(e.Resource["extension"].([]any)[0].(map[string]any)["valueInteger"].(float64))
		got = append(got, n)
		meta, _ := json.Marshal(e.Resource["meta"])
		purpose := e.Resource["purposeOfEvent"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"]
		if n == ledgerIndexes(t, bg)[0] != strings.Contains(string(meta), `"BTG"`) {
			t.Fatalf("record %d: break-glass label %s", n, meta)
		}
		if (purpose == "TREAT") != strings.Contains(string(meta), `"exempt"`) {
			t.Fatalf("record %d (purpose %s): exempt tag %s", n, purpose, meta)
		}
		who := e.Resource["agent"].([]any)[0].(map[string]any)["who"].(map[string]any)
		if !strings.HasPrefix(fmt.Sprint(who["display"]), "The acct-") || !strings.HasSuffix(fmt.Sprint(who["display"]), who["identifier"].(map[string]any)["value"].(string)+" people") {
			t.Fatalf("record %d: the recipient %v", n, who)
		}
	}
	slices.Sort(want)
	if b.Entry[0].FullURL != "urn:ehrledger:checkpoint" || !slices.Equal(got, want) {
		t.Fatalf("the accounting lists records %v (first entry %s), want the disclosures %v", got, b.Entry[0].FullURL, want)
	}
	admin.do(http.MethodGet, "/Patient/"+pat+"/$disclosures", nil).want(t, http.StatusOK)
	if r := self.do(http.MethodGet, "/Patient/"+pat+"/$disclosures?start=2019-01-01&end=2020-01-01", nil).want(t, http.StatusOK); strings.Contains(string(r.body), "AuditEvent") {
		t.Fatal("an accounting of a window before the disclosures lists some")
	}

	// Offline: the file verifies; each field tampered with makes that
	// entry fail, and says which.
	key := strings.TrimSpace(string(p.client(t).do(http.MethodGet, "/ledger/key", nil).body))
	file := filepath.Join(t.TempDir(), "accounting.json")
	os.WriteFile(file, r.body, 0o600)
	if out, ok := verify(t, bin, "--accounting", file, "--key", key); !ok || !strings.Contains(out, fmt.Sprintf("all %d disclosures", len(want))) {
		t.Fatalf("verify --accounting: %s", out)
	}
	for _, c := range []struct {
		name   string
		edit   func(ae map[string]any)
		reason string
	}{
		{"recorded", func(ae map[string]any) { ae["recorded"] = "2021-01-01T00:00:00.000Z" }, "recorded"},
		{"purpose", func(ae map[string]any) {
			ae["purposeOfEvent"] = []any{map[string]any{"coding": []any{map[string]any{"code": "HOPERAT"}}}}
		}, "purposeOfEvent"},
		{"recipient", func(ae map[string]any) {
			ae["agent"].([]any)[0].(map[string]any)["who"] = map[string]any{"identifier": map[string]any{"value": "someone-else"}}
		}, "recipient"},
		{"resource", func(ae map[string]any) {
			for _, e := range ae["entity"].([]any) {
				if em := e.(map[string]any); fmt.Sprint(em["role"].(map[string]any)["code"]) == "4" {
					em["what"] = map[string]any{"reference": "Observation/forged"}
				}
			}
		}, "resources disclosed"},
		{"description", func(ae map[string]any) {
			ae["entity"].([]any)[0].(map[string]any)["description"] = "disclosed: nothing"
		}, "description"},
		{"break-glass label", func(ae map[string]any) {
			ae["meta"].(map[string]any)["security"] = []any{map[string]any{"code": "BTG"}}
		}, "break-glass"},
		{"record", func(ae map[string]any) {
			ext := ae["extension"].([]any)
			for _, x := range ext {
				if xm := x.(map[string]any); xm["url"] == "urn:ehrledger:fhir:ledger-record" {
					raw, _ := base64.StdEncoding.DecodeString(xm["valueBase64Binary"].(string))
					xm["valueBase64Binary"] = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(raw), "acct-clinic", "acct-other", 1)))
				}
			}
		}, "not in the log"},
		{"ledger index", func(ae map[string]any) {
			ae["extension"].([]any)[0].(map[string]any)["valueInteger"] = 0
		}, "not in the log"},
		{"opening", func(ae map[string]any) {
			for _, x := range ae["extension"].([]any) {
				if xm := x.(map[string]any); xm["url"] == "urn:ehrledger:fhir:ledger-opening" {
					raw, _ := base64.StdEncoding.DecodeString(xm["valueBase64Binary"].(string))
					xm["valueBase64Binary"] = base64.StdEncoding.EncodeToString([]byte(strings.Replace(string(raw), "Patient/"+pat, "Patient/someone", 1)))
				}
			}
		}, "does not commit to the opening"},
		{"patient", func(ae map[string]any) {
			ae["entity"].([]any)[0].(map[string]any)["what"] = map[string]any{"reference": "Patient/someone"}
		}, "the patient"},
	} {
		var tb map[string]any
		json.Unmarshal(r.body, &tb)
		entry := tb["entry"].([]any)[1].(map[string]any)
		c.edit(entry["resource"].(map[string]any))
		bad, _ := json.Marshal(tb)
		os.WriteFile(file, bad, 0o600)
		out, ok := verify(t, bin, "--accounting", file, "--key", key)
		if ok || !strings.Contains(out, "entry 1 ") || !strings.Contains(out, c.reason) || strings.Contains(out, "entry 2 ") {
			t.Errorf("tampered %s: verify %v:\n%s", c.name, ok, out)
		}
	}
	// ehrledger export: the same accounting as a file that verifies, a CSV
	// and a printable report.
	export := func(format string) string {
		cmd := exec.Command(bin, "export", "--server", p.url, "--patient", pat, "--format", format)
		cmd.Env = append(os.Environ(), "EHR_TOKEN="+self.token)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ehrledger export --format %s: %v", format, err)
		}
		return string(out)
	}
	os.WriteFile(file, []byte(export("json")), 0o600)
	if out, ok := verify(t, bin, "--accounting", file, "--key", key); !ok {
		t.Fatalf("the exported accounting does not verify: %s", out)
	}
	rows, err := csv.NewReader(strings.NewReader(export("csv"))).ReadAll()
	if err != nil || len(rows) != len(want)+1 || rows[0][0] != "date" {
		t.Fatalf("CSV: %v %q", err, rows)
	}
	breakGlass := 0
	for _, row := range rows[1:] {
		if row[7] == "true" {
			breakGlass++
			if row[1] != "The acct-other people" || row[3] != "Organization/acct-other" || row[4] != "ETREAT" {
				t.Fatalf("the break-glass row: %q", row)
			}
		}
	}
	if breakGlass != 1 {
		t.Fatalf("CSV rows with break-glass: %d, want 1", breakGlass)
	}
	if html := export("html"); !strings.Contains(html, "<table>") || !strings.Contains(html, "break-glass") || strings.Count(html, "<tr><td>") != len(want) {
		t.Fatalf("HTML report:\n%s", html)
	}

	// After the patient's erasure the server can open none of their
	// records, and their trail and accounting are gone; the accounting
	// exported before still verifies offline, with the openings it
	// carries.
	exported := export("json")
	erasure := admin.do(http.MethodPost, "/Patient/"+pat+"/$erase", nil).want(t, http.StatusOK)
	for _, n := range want {
		admin.do(http.MethodGet, fmt.Sprintf("/ledger/opening/%d", n), nil).want(t, http.StatusNotFound)
	}
	if trail := admin.do(http.MethodGet, "/AuditEvent?patient=Patient/"+pat, nil).want(t, http.StatusOK); strings.Contains(string(trail.body), `"entry"`) {
		t.Fatalf("the erased patient's trail still lists records: %s", truncate(trail.body))
	}
	if acct := admin.do(http.MethodGet, "/Patient/"+pat+"/$disclosures", nil); acct.StatusCode == http.StatusOK && strings.Contains(string(acct.body), `"resourceType":"AuditEvent"`) {
		t.Fatalf("the erased patient's accounting still lists disclosures: %s", truncate(acct.body))
	}
	os.WriteFile(file, []byte(exported), 0o600)
	if out, ok := verify(t, bin, "--accounting", file, "--key", key); !ok || !strings.Contains(out, "about Patient/"+pat) {
		t.Fatalf("the accounting exported before the erasure does not verify after it: %s", out)
	}
	// The erasure's own record opens only with what its answer carried.
	leaf, opening := erasureRecord(erasure.body)
	if rec := openLeaf(t, leaf, opening); rec.Type != "erasure" || rec.Patient != "Patient/"+pat {
		t.Fatalf("the erasure answer's record opens as %+v", rec)
	}

	// A checkpoint not signed by the log's key fails the whole file.
	var tb map[string]any
	json.Unmarshal(r.body, &tb)
	tb["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)["data"] = base64.StdEncoding.EncodeToString([]byte("localhost/ehrledger/main\n1\nAAAA\n\n— localhost/ehrledger/main AAAA\n"))
	bad, _ := json.Marshal(tb)
	os.WriteFile(file, bad, 0o600)
	if out, ok := verify(t, bin, "--accounting", file, "--key", key); ok || !strings.Contains(out, "checkpoint") {
		t.Fatalf("a forged checkpoint: %v %s", ok, out)
	}
}
