package server_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/ehrledger/ehrledger/consent"
	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/internal/testdb"
	"github.com/ehrledger/ehrledger/internal/testkeys"
	"github.com/ehrledger/ehrledger/server"
	"github.com/ehrledger/ehrledger/store"
)

// TestLabelsOnWriteAndRedaction configures a sensitive code set (HIV
// diagnoses) labelled on write, and the label redacted unless a consent
// speaks of it: the label lands in the stored resource and its index, and
// the data is withheld until the patient's Consent names the label.
func TestLabelsOnWriteAndRedaction(t *testing.T) {
	testdb.Each(t, func(t *testing.T, dsn string) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		st, kr := testkeys.Open(t, store.Config{DSN: dsn, Logger: log})
		ledger, vkey := testkeys.Ledger(t, st, kr)
		hiv := consent.Coding{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "HIV"}
		hs, client := serveAuthed(t, server.Config{Store: st, Keys: kr, Ledger: ledger, LedgerKey: vkey, Logger: log,
			Consent: consent.Config{Default: consent.Permit, Redact: []consent.Coding{hiv}},
			Labels:  []disclosure.LabelRule{{Codes: []consent.Coding{{System: "http://snomed.info/sct", Code: "86406008"}}, Label: hiv}}})
		do := func(method, path, body string, status int) []byte {
			t.Helper()
			req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != status {
				t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, status, b)
			}
			return b
		}
		do("PUT", "/Patient/lp", `{"resourceType":"Patient","id":"lp"}`, 201)
		do("PUT", "/Condition/hiv", `{"resourceType":"Condition","id":"hiv","code":{"coding":[{"system":"http://snomed.info/sct","code":"86406008"}]},"subject":{"reference":"Patient/lp"}}`, 201)
		do("PUT", "/Condition/flu", `{"resourceType":"Condition","id":"flu","code":{"coding":[{"system":"http://snomed.info/sct","code":"6142004"}]},"subject":{"reference":"Patient/lp"}}`, 201)

		// The label is in the stored body and its index.
		var labelled struct {
			Meta struct{ Security []consent.Coding } `json:"meta"`
		}
		body := testkeys.ReadBody(t, st, "Condition", "hiv")
		if err := json.Unmarshal(body, &labelled); err != nil || len(labelled.Meta.Security) != 1 || labelled.Meta.Security[0] != hiv {
			t.Fatalf("stored labels %+v (%v): %s", labelled.Meta.Security, err, body)
		}
		// Redacted: the read is refused, searches leave it out and count
		// what remains.
		do("GET", "/Condition/hiv", "", 403)
		do("GET", "/Condition/flu", "", 200)
		var found struct {
			Total int `json:"total"`
		}
		json.Unmarshal(do("GET", "/Condition?subject=Patient/lp", "", 200), &found)
		if found.Total != 1 {
			t.Fatalf("search total %d, want 1", found.Total)
		}
		json.Unmarshal(do("GET", "/Condition?_security="+hiv.System+"|HIV&_summary=count", "", 200), &found)
		if found.Total != 0 {
			t.Fatalf("the labelled resource is counted: %d", found.Total)
		}
		// A Consent that names the label discloses it.
		do("POST", "/Consent", `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},`+
			`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/lp"},`+
			`"provision":{"type":"permit","securityLabel":[{"system":"`+hiv.System+`","code":"HIV"}]}}`, 201)
		do("GET", "/Condition/hiv", "", 200)
		json.Unmarshal(do("GET", "/Condition?_security="+hiv.System+"|HIV&_summary=count", "", 200), &found)
		if found.Total != 1 {
			t.Fatalf("with the consent, the labelled resource is counted %d times", found.Total)
		}
	})
}
