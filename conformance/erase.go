package conformance

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// testErase checks crypto-shredding as a client sees it: after
// POST Patient/ID/$erase every read of the patient's resources and their
// history answers 410 saying the data was erased, searches no longer find
// them, nothing can be stored for the patient any more, and another
// patient is untouched.
func testErase(t *testing.T, c *client, run string) {
	family := "Erasable" + run
	mk := func(id, body string) {
		c.do(http.MethodPut, id, body).want(t, http.StatusCreated)
	}
	gone, kept := "erase-"+run, "keep-"+run
	for _, p := range []string{gone, kept} {
		mk("/Patient/"+p, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":%q}]}`, p, family))
		for i := range 3 {
			mk(fmt.Sprintf("/Observation/%s-o%d", p, i), fmt.Sprintf(`{"resourceType":"Observation","id":"%s-o%d","status":"final","code":{"text":"weight"},"subject":{"reference":"Patient/%s"}}`, p, i, p))
		}
	}
	c.do(http.MethodPut, "/Observation/"+gone+"-o0", fmt.Sprintf(`{"resourceType":"Observation","id":"%s-o0","status":"amended","code":{"text":"weight"},"subject":{"reference":"Patient/%s"}}`, gone, gone)).want(t, http.StatusOK)

	// The read's record is the newest; the erasure's comes after it.
	before := ledgerIndexes(t, c.do(http.MethodGet, "/Patient/"+gone, nil).want(t, http.StatusOK))[0] + 1
	// The records about the patient, which the server opens until the
	// erasure.
	about := []int64{before - 1}
	for _, ae := range c.auditEventsOf(t, gone) {
		about = append(about, ae.index)
	}
	for _, n := range about {
		c.do(http.MethodGet, fmt.Sprintf("/ledger/opening/%d", n), nil).want(t, http.StatusOK)
	}
	c.do(http.MethodPost, "/Patient/nobody-"+run+"/$erase", nil).want(t, http.StatusNotFound)
	c.do(http.MethodPost, "/Observation/"+gone+"-o1/$erase", nil).want(t, http.StatusNotFound)
	r := c.do(http.MethodPost, "/Patient/"+gone+"/$erase", nil).want(t, http.StatusOK)
	if !strings.Contains(string(r.body), "4 resources") {
		t.Errorf("$erase answer does not say 4 resources were erased: %s", r.body)
	}

	// The erasure is in the ledger: the leaf its answer carries. Its
	// opening is in that answer only; those of the patient's other
	// records went with the key.
	leaf, _ := erasureRecord(r.body)
	found := false
	for deadline := time.Now().Add(10 * time.Second); !found && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		cp := c.checkpoint(t, before)
		for n := before; n < int64(cp.Size) && !found; n++ {
			if data := c.leaf(t, cp, n); string(data) == string(leaf) {
				found = true
				c.do(http.MethodGet, fmt.Sprintf("/ledger/opening/%d", n), nil).want(t, http.StatusNotFound)
			}
		}
	}
	if !found || openLeaf(t, leaf, nil).Type != "erasure" {
		t.Errorf("the erasure record %s is not in the ledger after $erase", leaf)
	}
	for _, n := range about {
		c.do(http.MethodGet, fmt.Sprintf("/ledger/opening/%d", n), nil).want(t, http.StatusNotFound)
	}

	erased := func(path string) {
		t.Helper()
		r := c.do(http.MethodGet, path, nil).want(t, http.StatusGone)
		if !strings.Contains(string(r.body), "erased") {
			t.Errorf("GET %s: 410 does not say the data was erased: %s", path, r.body)
		}
	}
	for _, path := range []string{
		"/Patient/" + gone, "/Patient/" + gone + "/_history/1", "/Patient/" + gone + "/_history",
		"/Observation/" + gone + "-o0", "/Observation/" + gone + "-o0/_history/1", "/Observation/" + gone + "-o0/_history/2",
		"/Observation/" + gone + "-o0/_history", "/Observation/" + gone + "-o2",
	} {
		erased(path)
	}
	c.do(http.MethodPost, "/Patient/"+gone+"/$erase", nil).want(t, http.StatusGone)
	c.do(http.MethodGet, "/Patient/"+gone+"/$everything", nil).want(t, http.StatusGone)

	for _, q := range []string{
		"/Patient?family=" + family, "/Observation?subject=Patient/" + gone + "," + "Patient/" + kept,
		"/Patient/" + kept + "/Observation", "/Observation?_id=" + gone + "-o1," + kept + "-o1",
	} {
		b := c.do(http.MethodGet, q, nil).want(t, http.StatusOK)
		if strings.Contains(string(b.body), `"id":"`+gone) {
			t.Errorf("GET %s still finds the erased patient's data: %s", q, truncate(b.body))
		}
		if !strings.Contains(string(b.body), kept) {
			t.Errorf("GET %s lost the other patient's data: %s", q, truncate(b.body))
		}
	}
	h := c.do(http.MethodGet, "/Observation/_history?_count=1000", nil).want(t, http.StatusOK)
	if strings.Contains(string(h.body), `"id":"`+gone) {
		t.Error("type history still shows the erased patient's data")
	}

	r = c.do(http.MethodPost, "/Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, gone)).want(t, http.StatusConflict)
	if !strings.Contains(string(r.body), "erased") {
		t.Errorf("a write for the erased patient is refused without saying why: %s", r.body)
	}
	c.do(http.MethodPut, "/Patient/"+gone, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, gone)).want(t, http.StatusConflict)

	c.do(http.MethodGet, "/Patient/"+kept, nil).want(t, http.StatusOK)
	c.do(http.MethodGet, "/Observation/"+kept+"-o2/_history/1", nil).want(t, http.StatusOK)
	c.do(http.MethodPut, "/Observation/"+kept+"-o9", fmt.Sprintf(`{"resourceType":"Observation","id":"%s-o9","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, kept, kept)).want(t, http.StatusCreated)

	// The stored write AuditEvents go on past the erased patient's write
	// records (none is stored about the patient any more), and none of
	// the erased patient's can be found. They follow the log in order, so
	// those of every write the suite made before come first.
	deadline := time.Now().Add(writeAuditEventsWait)
	for {
		var b struct{ Entry []json.RawMessage }
		json.Unmarshal(c.do(http.MethodGet, "/Patient/"+kept+"/AuditEvent", nil).want(t, http.StatusOK).body, &b)
		if len(b.Entry) == 5 { // the patient, its three observations, and the one written after the erasure
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other patient has %d write AuditEvents, want 5", len(b.Entry))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var none struct{ Entry []json.RawMessage }
	json.Unmarshal(c.do(http.MethodGet, "/Patient/"+gone+"/AuditEvent", nil).want(t, http.StatusOK).body, &none)
	if len(none.Entry) != 0 {
		t.Errorf("the erased patient still has %d AuditEvents", len(none.Entry))
	}
}

// erasureRecord is the leaf and the opening of the erasure record that an
// answer to $erase carries (its OperationOutcome's extensions).
func erasureRecord(body []byte) (leaf, opening []byte) {
	var outcome struct {
		Extension []struct {
			URL               string `json:"url"`
			ValueBase64Binary string `json:"valueBase64Binary"`
		} `json:"extension"`
	}
	json.Unmarshal(body, &outcome)
	for _, x := range outcome.Extension {
		b, _ := base64.StdEncoding.DecodeString(x.ValueBase64Binary)
		switch x.URL {
		case "urn:ehrledger:fhir:ledger-record":
			leaf = b
		case "urn:ehrledger:fhir:ledger-opening":
			opening = b
		}
	}
	return leaf, opening
}
