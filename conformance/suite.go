// Package conformance is the black-box suite that drives an ehrledger
// server over HTTP the way a FHIR client would. Run takes the base URL of
// a running server; the server package runs it in-process over every
// database, and this package's own test runs it against the built binary.
package conformance

import (
	"bytes"
	"embed"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed testdata/*.json testdata/search/*.json
var fixtures embed.FS

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fixtures.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Run drives every implemented interaction and error case against the
// server srv. Each call uses fresh identifiers so that it can share a
// database with other runs.
func Run(t *testing.T, srv Server) {
	c := srv.admin(t)
	run := newRunID()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, c *client, run string)
	}{
		{"capability statement lists what is implemented", testCapabilities},
		{"create assigns id, version and meta", testCreate},
		{"resources round-trip losslessly", testLossless},
		{"read, vread and conditional read", testRead},
		{"update, update-as-create and If-Match", testUpdate},
		{"Prefer return", testPrefer},
		{"JSON Patch", testPatch},
		{"delete is versioned and answers 410", testDelete},
		{"conditional create", testConditionalCreate},
		{"conditional update", testConditionalUpdate},
		{"conditional delete and patch", testConditionalDelete},
		{"history at three levels with paging", testHistory},
		{"bad input gets a 4xx OperationOutcome", testBadInput},
		{"validation names the element path", testValidation},
		{"$validate", testValidateOperation},
		{"concurrent updates lose nothing", testConcurrency},
		{"transaction and batch Bundles", testTransaction},
		{"a 5,000-entry transaction is atomic", testLargeTransaction},
		{"operations endpoints", testOps},
		{"$erase crypto-shreds a patient", testErase},
		{"every disclosure is in the signed ledger before the data arrives", testLedger},
		{"AuditEvents are the ledger's records about a patient", testAuditEvents},
		{"no leaf of the public log links a record to a patient", testUnlinkable},
		{"tokens that are wrong in any way are refused", testTokensRefused},
		{"SMART Backend Services with a registered client's key", testBackendServices},
		{"scopes allow each interaction and constrain by query", testScopes},
		{"a patient's token reaches nothing of another patient", testPatientConfinement},
		{"purpose of use and break-glass", testPurposeOfUse},
		{"SMART discovery", testSMARTDiscovery},
		{"the client registry's admin API", testClientRegistry},
		{"a patient's Consent gates what each caller sees", testConsentGating},
		{"Bulk Data export", testExport},
		{"the gate closes every leak found", testLeaks},
		{"hidden data reaches no caller", testHiddenData},
		{"hostile input is answered in proportion", testHostile},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, c.withT(t), run) })
	}
}

var runCounter struct {
	sync.Mutex
	n int
}

func newRunID() string {
	runCounter.Lock()
	defer runCounter.Unlock()
	runCounter.n++
	return fmt.Sprintf("r%d-%d", time.Now().UnixNano(), runCounter.n)
}

var locationPattern = regexp.MustCompile(`/(\w+)/([A-Za-z0-9\-.]{1,64})/_history/(\d+)$`)

// created posts a resource and returns its id.
func created(t *testing.T, c *client, typ string, body any, headers ...string) (string, *response) {
	t.Helper()
	res := c.do("POST", "/"+typ, body, headers...).want(t, http.StatusCreated)
	m := locationPattern.FindStringSubmatch(res.Header.Get("Location"))
	if m == nil || m[1] != typ || m[3] != "1" {
		t.Fatalf("Location %q is not %s/{id}/_history/1", res.Header.Get("Location"), typ)
	}
	return m[2], res
}

func patientWith(identifierSystem, value string) string {
	return fmt.Sprintf(`{"resourceType":"Patient","identifier":[{"system":%q,"value":%q}],"active":true}`, identifierSystem, value)
}

func testCapabilities(t *testing.T, c *client, _ string) {
	res := c.do("GET", "/metadata", nil).want(t, http.StatusOK)
	m := res.json()
	if m["resourceType"] != "CapabilityStatement" || m["fhirVersion"] != "4.0.1" || m["kind"] != "instance" {
		t.Fatalf("not an R4 instance CapabilityStatement: %v %v %v", m["resourceType"], m["fhirVersion"], m["kind"])
	}
	rest := m["rest"].([]any)[0].(map[string]any)
	resources := rest["resource"].([]any)
	if len(resources) < 140 {
		t.Fatalf("%d resource types listed, want every R4 type", len(resources))
	}
	var patient map[string]any
	for _, r := range resources {
		if r.(map[string]any)["type"] == "Patient" {
			patient = r.(map[string]any)
		}
	}
	if patient == nil {
		t.Fatal("Patient missing")
	}
	var codes []string
	for _, i := range patient["interaction"].([]any) {
		codes = append(codes, i.(map[string]any)["code"].(string))
	}
	slices.Sort(codes)
	want := []string{"create", "delete", "history-instance", "history-type", "patch", "read", "search-type", "update", "vread"}
	if !slices.Equal(codes, want) {
		t.Fatalf("Patient interactions %v, want %v", codes, want)
	}
	var params []string
	for _, sp := range patient["searchParam"].([]any) {
		params = append(params, sp.(map[string]any)["name"].(string))
	}
	for _, want := range []string{"name", "birthdate", "identifier", "_id", "_lastUpdated", "organization"} {
		if !slices.Contains(params, want) {
			t.Errorf("Patient searchParam lacks %s", want)
		}
	}
	if !slices.Contains(toStrings(patient["searchRevInclude"]), "Observation:subject") {
		t.Errorf("Patient searchRevInclude lacks Observation:subject")
	}
	var system []string
	for _, i := range rest["interaction"].([]any) {
		system = append(system, i.(map[string]any)["code"].(string))
	}
	if !slices.Contains(system, "transaction") || !slices.Contains(system, "batch") {
		t.Errorf("system interactions %v lack transaction or batch", system)
	}
	if patient["conditionalCreate"] != true || patient["conditionalUpdate"] != true || patient["conditionalDelete"] != "single" || patient["updateCreate"] != true {
		t.Fatalf("conditional flags wrong: %v", patient)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Fatalf("Content-Type %q", ct)
	}
}

func testCreate(t *testing.T, c *client, run string) {
	before := time.Now().Add(-time.Second)
	id, res := created(t, c, "Patient", `{"resourceType":"Patient","id":"client-chosen","active":true}`)
	if id == "client-chosen" {
		t.Fatal("the server kept the id from a create's body")
	}
	if res.Header.Get("ETag") != `W/"1"` {
		t.Errorf("ETag %q, want W/\"1\"", res.Header.Get("ETag"))
	}
	lm, err := http.ParseTime(res.Header.Get("Last-Modified"))
	if err != nil || lm.Before(before.Truncate(time.Second)) {
		t.Errorf("Last-Modified %q", res.Header.Get("Last-Modified"))
	}
	m := res.json()
	meta, _ := m["meta"].(map[string]any)
	if m["id"] != id || meta["versionId"] != "1" {
		t.Fatalf("body id/meta: %s", res.body)
	}
	if _, err := time.Parse(time.RFC3339Nano, meta["lastUpdated"].(string)); err != nil {
		t.Fatalf("meta.lastUpdated %v: %v", meta["lastUpdated"], err)
	}
}

func testLossless(t *testing.T, c *client, _ string) {
	for _, tc := range []struct{ name, typ string }{
		{"patient-rich.json", "Patient"},
		{"observation-quantity.json", "Observation"},
		{"questionnaire-nested.json", "Questionnaire"},
		{"bundle-collection.json", "Bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := fixture(t, tc.name)
			id, res := created(t, c, tc.typ, sent)
			if !sameJSON(withoutServerMeta(res.body), withoutServerMeta(sent)) {
				t.Fatalf("create answered a different resource\nsent %s\n got %s", withoutServerMeta(sent), withoutServerMeta(res.body))
			}
			got := c.do("GET", "/"+tc.typ+"/"+id, nil).want(t, http.StatusOK)
			if !sameJSON(withoutServerMeta(got.body), withoutServerMeta(sent)) {
				t.Fatalf("read returned a different resource\nsent %s\n got %s", withoutServerMeta(sent), withoutServerMeta(got.body))
			}
			if !bytes.Equal(got.body, res.body) {
				t.Fatalf("read and create answered different bytes")
			}
			for _, keep := range []string{"3.250", "12345678901234567890.123456789", "67.50", "1.0e2", "0.10"} {
				if bytes.Contains(sent, []byte(keep)) && !bytes.Contains(got.body, []byte(keep)) {
					t.Errorf("decimal %s lost its digits", keep)
				}
			}
		})
	}
}

func testRead(t *testing.T, c *client, _ string) {
	id, _ := created(t, c, "Patient", `{"resourceType":"Patient","gender":"male"}`)
	c.do("PUT", "/Patient/"+id, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"gender":"female"}`, id)).want(t, http.StatusOK)

	cur := c.do("GET", "/Patient/"+id, nil).want(t, http.StatusOK)
	if cur.Header.Get("ETag") != `W/"2"` || cur.json()["gender"] != "female" {
		t.Fatalf("read: ETag %s body %s", cur.Header.Get("ETag"), cur.body)
	}
	v1 := c.do("GET", "/Patient/"+id+"/_history/1", nil).want(t, http.StatusOK)
	if v1.Header.Get("ETag") != `W/"1"` || v1.json()["gender"] != "male" {
		t.Fatalf("vread 1: ETag %s body %s", v1.Header.Get("ETag"), v1.body)
	}
	c.do("GET", "/Patient/"+id+"/_history/3", nil).want(t, http.StatusNotFound)
	c.do("GET", "/Patient/"+id+"/_history/abc", nil).want(t, http.StatusNotFound)
	c.do("GET", "/Patient/does-not-exist", nil).want(t, http.StatusNotFound)
	c.do("GET", "/Patient/"+id, nil, "If-None-Match", `W/"2"`).want(t, http.StatusNotModified)
	c.do("GET", "/Patient/"+id, nil, "If-None-Match", `W/"1"`).want(t, http.StatusOK)
	if ct := c.do("GET", "/Patient/"+id, nil, "Accept", "application/json").want(t, http.StatusOK).Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Accept: application/json answered Content-Type %q", ct)
	}
	c.do("GET", "/Patient/"+id+"?_format=application/fhir+json", nil, "Accept", "application/xml").want(t, http.StatusOK)
	pretty := c.do("GET", "/Patient/"+id+"?_pretty=true", nil).want(t, http.StatusOK)
	if !bytes.Contains(pretty.body, []byte("\n  \"")) || !sameJSON(pretty.body, cur.body) {
		t.Fatalf("_pretty=true: %s", pretty.body)
	}
}

func testUpdate(t *testing.T, c *client, run string) {
	id := "upd-" + run
	res := c.do("PUT", "/Patient/"+id, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id)).want(t, http.StatusCreated)
	if res.Header.Get("ETag") != `W/"1"` || !strings.HasSuffix(res.Header.Get("Location"), "/Patient/"+id+"/_history/1") {
		t.Fatalf("update-as-create: ETag %s Location %s", res.Header.Get("ETag"), res.Header.Get("Location"))
	}
	body := fmt.Sprintf(`{"resourceType":"Patient","id":%q,"active":true}`, id)
	res = c.do("PUT", "/Patient/"+id, body).want(t, http.StatusOK)
	if res.Header.Get("ETag") != `W/"2"` {
		t.Fatalf("second PUT: ETag %s", res.Header.Get("ETag"))
	}
	c.do("PUT", "/Patient/"+id, body, "If-Match", `W/"2"`).want(t, http.StatusOK)
	c.do("PUT", "/Patient/"+id, body, "If-Match", `W/"2"`).want(t, http.StatusPreconditionFailed)
	c.do("PUT", "/Patient/"+id, body, "If-Match", `"3"`).want(t, http.StatusOK)
	c.do("PUT", "/Patient/"+id, body, "If-Match", `garbage`).want(t, http.StatusBadRequest)
	c.do("PUT", "/Patient/new-"+id, fmt.Sprintf(`{"resourceType":"Patient","id":"new-%s"}`, id), "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)

	mismatch := c.do("PUT", "/Patient/other-"+id, body).want(t, http.StatusBadRequest)
	if !slices.Contains(mismatch.issueExpressions(), "id") {
		t.Errorf("id mismatch issue has no expression id: %s", mismatch.body)
	}
	c.do("PUT", "/Patient/"+id, `{"resourceType":"Patient"}`).want(t, http.StatusBadRequest)
	c.do("PUT", "/Patient/"+id, fmt.Sprintf(`{"resourceType":"Observation","id":%q}`, id)).want(t, http.StatusBadRequest)
	c.do("PUT", "/Patient/bad$id", `{"resourceType":"Patient","id":"bad$id"}`).want(t, http.StatusBadRequest)
	if got := c.do("GET", "/Patient/"+id, nil).want(t, http.StatusOK); got.Header.Get("ETag") != `W/"4"` {
		t.Fatalf("after failed updates the version is %s, want W/\"4\"", got.Header.Get("ETag"))
	}
}

func testPrefer(t *testing.T, c *client, _ string) {
	res := c.do("POST", "/Patient", `{"resourceType":"Patient"}`, "Prefer", "return=minimal").want(t, http.StatusCreated)
	if len(res.body) != 0 || res.Header.Get("Location") == "" || res.Header.Get("ETag") != `W/"1"` {
		t.Fatalf("return=minimal: body %q Location %q", res.body, res.Header.Get("Location"))
	}
	res = c.do("POST", "/Patient", `{"resourceType":"Patient"}`, "Prefer", "return=OperationOutcome").want(t, http.StatusCreated)
	if res.json()["resourceType"] != "OperationOutcome" {
		t.Fatalf("return=OperationOutcome: %s", res.body)
	}
	res = c.do("POST", "/Patient", `{"resourceType":"Patient"}`, "Prefer", "return=representation").want(t, http.StatusCreated)
	if res.json()["resourceType"] != "Patient" {
		t.Fatalf("return=representation: %s", res.body)
	}
}

func testPatch(t *testing.T, c *client, _ string) {
	id, _ := created(t, c, "Observation", fixture(t, "observation-quantity.json"))
	patch := `[{"op":"replace","path":"/status","value":"amended"},{"op":"add","path":"/issued","value":"2016-03-28T10:00:00Z"}]`
	res := c.do("PATCH", "/Observation/"+id, patch, "Content-Type", "application/json-patch+json").want(t, http.StatusOK)
	m := res.json()
	if m["status"] != "amended" || m["issued"] != "2016-03-28T10:00:00Z" || res.Header.Get("ETag") != `W/"2"` {
		t.Fatalf("patched: ETag %s body %s", res.Header.Get("ETag"), res.body)
	}
	if !bytes.Contains(res.body, []byte("67.50")) {
		t.Errorf("patch lost the digits of an untouched decimal: %s", res.body)
	}
	jp := []string{"Content-Type", "application/json-patch+json"}
	c.do("PATCH", "/Observation/"+id, `[{"op":"add","path":"/bogus","value":1}]`, jp...).want(t, http.StatusBadRequest)
	c.do("PATCH", "/Observation/"+id, `[{"op":"remove","path":"/status"}]`, jp...).want(t, http.StatusBadRequest)
	c.do("PATCH", "/Observation/"+id, `[{"op":"test","path":"/status","value":"final"}]`, jp...).want(t, http.StatusUnprocessableEntity)
	c.do("PATCH", "/Observation/"+id, `[{"op":"replace","path":"/id","value":"other"}]`, jp...).want(t, http.StatusUnprocessableEntity)
	c.do("PATCH", "/Observation/"+id, `{"op":"replace"}`, jp...).want(t, http.StatusBadRequest)
	c.do("PATCH", "/Observation/"+id, patch, "Content-Type", "application/fhir+json").want(t, http.StatusUnsupportedMediaType)
	c.do("PATCH", "/Observation/"+id, patch, append(jp, "If-Match", `W/"1"`)...).want(t, http.StatusPreconditionFailed)
	c.do("PATCH", "/Observation/nope-"+id, patch, jp...).want(t, http.StatusNotFound)
	// A copy bomb: each op doubles the document.
	var bomb strings.Builder
	bomb.WriteString(`[{"op":"add","path":"/note/0/text","value":"` + strings.Repeat("x", 1<<16) + `"}`)
	for range 40 {
		bomb.WriteString(`,{"op":"copy","from":"/note","path":"/contained"}`)
		bomb.WriteString(`,{"op":"copy","from":"/note/0","path":"/note/-"}`)
	}
	bomb.WriteString(`]`)
	if res := c.do("PATCH", "/Observation/"+id, bomb.String(), jp...); res.StatusCode < 400 || res.StatusCode >= 500 {
		t.Fatalf("copy bomb: status %d", res.StatusCode)
	}
	if got := c.do("GET", "/Observation/"+id, nil).want(t, http.StatusOK); got.Header.Get("ETag") != `W/"2"` {
		t.Fatalf("failed patches changed the version: %s", got.Header.Get("ETag"))
	}
}

func testDelete(t *testing.T, c *client, _ string) {
	id, _ := created(t, c, "Patient", `{"resourceType":"Patient","gender":"other"}`)
	res := c.do("DELETE", "/Patient/"+id, nil).want(t, http.StatusNoContent)
	if res.Header.Get("ETag") != `W/"2"` {
		t.Errorf("delete ETag %q, want W/\"2\"", res.Header.Get("ETag"))
	}
	gone := c.do("GET", "/Patient/"+id, nil).want(t, http.StatusGone)
	if gone.Header.Get("ETag") != `W/"2"` {
		t.Errorf("410 ETag %q", gone.Header.Get("ETag"))
	}
	c.do("GET", "/Patient/"+id+"/_history/2", nil).want(t, http.StatusGone)
	c.do("GET", "/Patient/"+id+"/_history/1", nil).want(t, http.StatusOK)
	c.do("DELETE", "/Patient/"+id, nil).want(t, http.StatusNoContent)
	c.do("DELETE", "/Patient/never-"+id, nil).want(t, http.StatusNoContent)
	c.do("PATCH", "/Patient/"+id, `[]`, "Content-Type", "application/json-patch+json").want(t, http.StatusGone)
	oo := c.do("DELETE", "/Patient/"+id, nil, "Prefer", "return=OperationOutcome").want(t, http.StatusOK)
	if oo.json()["resourceType"] != "OperationOutcome" {
		t.Fatalf("delete with return=OperationOutcome: %s", oo.body)
	}
	hist := c.do("GET", "/Patient/"+id+"/_history", nil).want(t, http.StatusOK).json()
	entries := hist["entry"].([]any)
	if len(entries) != 2 {
		t.Fatalf("history after delete has %d entries, want 2", len(entries))
	}
	first := entries[0].(map[string]any)
	if first["request"].(map[string]any)["method"] != "DELETE" || first["resource"] != nil {
		t.Fatalf("newest history entry is not the delete: %v", first)
	}
	back := c.do("PUT", "/Patient/"+id, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id)).want(t, http.StatusCreated)
	if back.Header.Get("ETag") != `W/"3"` {
		t.Fatalf("resurrection ETag %q, want W/\"3\"", back.Header.Get("ETag"))
	}
	c.do("DELETE", "/Patient/"+id, nil, "If-Match", `W/"1"`).want(t, http.StatusPreconditionFailed)
}

func testConditionalCreate(t *testing.T, c *client, run string) {
	sys := "http://example.org/mrn/" + run
	body := patientWith(sys, "cc-1")
	id, _ := created(t, c, "Patient", body, "If-None-Exist", "identifier="+url.QueryEscape(sys+"|cc-1"))
	res := c.do("POST", "/Patient", body, "If-None-Exist", "identifier="+url.QueryEscape(sys+"|cc-1")).want(t, http.StatusOK)
	if res.json()["id"] != id {
		t.Fatalf("conditional create of an existing match answered %s, want %s", res.json()["id"], id)
	}
	created(t, c, "Patient", patientWith(sys, "cc-1"))
	c.do("POST", "/Patient", body, "If-None-Exist", "identifier="+url.QueryEscape(sys+"|cc-1")).want(t, http.StatusPreconditionFailed)
	c.do("POST", "/Patient", body, "If-None-Exist", "nonsense=1").want(t, http.StatusBadRequest)
	c.do("POST", "/Patient", body, "If-None-Exist", "_count=1").want(t, http.StatusBadRequest) // no criteria
	created(t, c, "Patient", body, "If-None-Exist", "Patient?identifier="+url.QueryEscape(sys+"|cc-2"))
}

func testConditionalUpdate(t *testing.T, c *client, run string) {
	sys := "http://example.org/mrn/" + run
	q := "/Patient?identifier=" + url.QueryEscape(sys+"|cu-1")
	res := c.do("PUT", q, patientWith(sys, "cu-1")).want(t, http.StatusCreated)
	id := res.json()["id"].(string)
	res = c.do("PUT", q, patientWith(sys, "cu-1")).want(t, http.StatusOK)
	if res.json()["id"] != id || res.Header.Get("ETag") != `W/"2"` {
		t.Fatalf("conditional update of one match: id %v ETag %s", res.json()["id"], res.Header.Get("ETag"))
	}
	wrongID := fmt.Sprintf(`{"resourceType":"Patient","id":"x-%s","identifier":[{"system":%q,"value":"cu-1"}]}`, run, sys)
	c.do("PUT", q, wrongID).want(t, http.StatusBadRequest)
	created(t, c, "Patient", patientWith(sys, "cu-1"))
	c.do("PUT", q, patientWith(sys, "cu-1")).want(t, http.StatusPreconditionFailed)
	c.do("PUT", "/Patient?nonsense=1", patientWith(sys, "cu-1")).want(t, http.StatusBadRequest)
	c.do("PUT", "/Patient", patientWith(sys, "cu-1")).want(t, http.StatusBadRequest)
	withID := fmt.Sprintf(`{"resourceType":"Patient","id":"cu-%s","identifier":[{"system":%q,"value":"cu-2"}]}`, run, sys)
	res = c.do("PUT", "/Patient?identifier="+url.QueryEscape(sys+"|cu-2"), withID).want(t, http.StatusCreated)
	if res.json()["id"] != "cu-"+run {
		t.Fatalf("no match with a body id should create that id, got %v", res.json()["id"])
	}
}

func testConditionalDelete(t *testing.T, c *client, run string) {
	sys := "http://example.org/mrn/" + run
	id, _ := created(t, c, "Patient", patientWith(sys, "cd-1"))
	jp := []string{"Content-Type", "application/json-patch+json"}
	res := c.do("PATCH", "/Patient?identifier="+url.QueryEscape(sys+"|cd-1"), `[{"op":"replace","path":"/active","value":false}]`, jp...).want(t, http.StatusOK)
	if res.json()["id"] != id || res.json()["active"] != false {
		t.Fatalf("conditional patch: %s", res.body)
	}
	c.do("PATCH", "/Patient?identifier="+url.QueryEscape(sys+"|none"), `[]`, jp...).want(t, http.StatusNotFound)
	c.do("DELETE", "/Patient?identifier="+url.QueryEscape(sys+"|cd-1"), nil).want(t, http.StatusNoContent)
	c.do("GET", "/Patient/"+id, nil).want(t, http.StatusGone)
	c.do("DELETE", "/Patient?identifier="+url.QueryEscape(sys+"|cd-1"), nil).want(t, http.StatusNoContent)
	a, _ := created(t, c, "Patient", patientWith(sys, "cd-2"))
	b, _ := created(t, c, "Patient", patientWith(sys, "cd-2"))
	c.do("DELETE", "/Patient?identifier="+url.QueryEscape(sys+"|cd-2"), nil).want(t, http.StatusPreconditionFailed)
	c.do("GET", "/Patient/"+a, nil).want(t, http.StatusOK)
	c.do("GET", "/Patient/"+b, nil).want(t, http.StatusOK)
	c.do("DELETE", "/Patient?_id="+a, nil).want(t, http.StatusNoContent)
	c.do("GET", "/Patient/"+a, nil).want(t, http.StatusGone)
}

func testHistory(t *testing.T, c *client, run string) {
	since := time.Now().Add(-time.Second).UTC()
	id, _ := created(t, c, "Communication", `{"resourceType":"Communication","status":"preparation"}`)
	for _, st := range []string{"in-progress", "completed"} {
		c.do("PUT", "/Communication/"+id, fmt.Sprintf(`{"resourceType":"Communication","id":%q,"status":%q}`, id, st)).want(t, http.StatusOK)
	}
	inst := c.do("GET", "/Communication/"+id+"/_history", nil).want(t, http.StatusOK).json()
	if inst["resourceType"] != "Bundle" || inst["type"] != "history" {
		t.Fatalf("not a history Bundle: %v", inst)
	}
	entries := inst["entry"].([]any)
	if len(entries) != 3 {
		t.Fatalf("instance history has %d entries, want 3", len(entries))
	}
	for i, e := range entries {
		em := e.(map[string]any)
		meta := em["resource"].(map[string]any)["meta"].(map[string]any)
		if want := fmt.Sprint(3 - i); meta["versionId"] != want {
			t.Fatalf("entry %d has version %v, want %s (newest first)", i, meta["versionId"], want)
		}
		if !strings.HasSuffix(em["fullUrl"].(string), "/Communication/"+id) || em["response"].(map[string]any)["etag"] != `W/"`+fmt.Sprint(3-i)+`"` {
			t.Fatalf("entry %d: %v", i, em)
		}
	}
	if entries[2].(map[string]any)["request"].(map[string]any)["method"] != "POST" {
		t.Fatalf("first version's request is not POST: %v", entries[2])
	}
	c.do("GET", "/Communication/never-"+id+"/_history", nil).want(t, http.StatusNotFound)

	// Page through type history one entry at a time: every version since
	// the start of this test appears exactly once, newest first.
	seen := map[string]bool{}
	next := "/Communication/_history?_count=1&_since=" + url.QueryEscape(since.Format(time.RFC3339Nano))
	for pages := 0; next != ""; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		b := c.do("GET", next, nil).want(t, http.StatusOK).json()
		next = ""
		for _, l := range b["link"].([]any) {
			lm := l.(map[string]any)
			if lm["relation"] == "next" {
				u, _ := url.Parse(lm["url"].(string))
				next = u.RequestURI()
			}
		}
		es, _ := b["entry"].([]any)
		if len(es) > 1 {
			t.Fatalf("_count=1 page has %d entries", len(es))
		}
		for _, e := range es {
			em := e.(map[string]any)
			key := em["fullUrl"].(string) + " " + em["response"].(map[string]any)["etag"].(string)
			if seen[key] {
				t.Fatalf("%s appears twice while paging", key)
			}
			seen[key] = true
		}
	}
	for v := 1; v <= 3; v++ {
		found := false
		for k := range seen {
			if strings.Contains(k, "/Communication/"+id+` W/"`+fmt.Sprint(v)+`"`) {
				found = true
			}
		}
		if !found {
			t.Fatalf("version %d missing from paged type history", v)
		}
	}
	// System history pages too (this test wrote three versions: enough
	// whatever ran before it).
	sys := c.do("GET", "/_history?_count=2", nil).want(t, http.StatusOK).json()
	if n := len(sys["entry"].([]any)); n != 2 || link(sys, "next") == "" {
		t.Fatalf("system history _count=2 gave %d entries, next link %q", n, link(sys, "next"))
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if es, _ := c.do("GET", "/Communication/"+id+"/_history?_since="+url.QueryEscape(future), nil).want(t, http.StatusOK).json()["entry"].([]any); len(es) != 0 {
		t.Fatalf("_since in the future returned %d entries", len(es))
	}
	c.do("GET", "/_history?_since=yesterday", nil).want(t, http.StatusBadRequest)
	c.do("GET", "/_history?_count=-1", nil).want(t, http.StatusBadRequest)
	c.do("GET", "/_history?_page=garbage", nil).want(t, http.StatusBadRequest)
}

// bigReader streams n bytes of a JSON string without holding them.
type bigReader struct{ n, off int64 }

func (r *bigReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	i := 0
	for ; i < len(p) && r.off < r.n; i++ {
		switch {
		case r.off == 0:
			p[i] = '"'
		case r.off == r.n-1:
			p[i] = '"'
		default:
			p[i] = 'a'
		}
		r.off++
	}
	return i, nil
}

func testBadInput(t *testing.T, c *client, _ string) {
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	deepArray := `{"resourceType":"Patient","name":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}"
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		body    any
		headers []string
		status  int
	}{
		{"unknown resource type", "GET", "/Patients/1", nil, nil, 404},
		{"lowercase type", "POST", "/patient", `{"resourceType":"patient"}`, nil, 404},
		{"unknown type on create", "POST", "/Foo", `{"resourceType":"Foo"}`, nil, 404},
		{"malformed JSON", "POST", "/Patient", `{"resourceType":"Patient",`, nil, 400},
		{"trailing garbage", "POST", "/Patient", `{"resourceType":"Patient"} x`, nil, 400},
		{"not an object", "POST", "/Patient", `["Patient"]`, nil, 400},
		{"empty body", "POST", "/Patient", ``, nil, 400},
		{"no resourceType", "POST", "/Patient", `{"active":true}`, nil, 400},
		{"duplicate key", "POST", "/Patient", `{"resourceType":"Patient","active":true,"active":false}`, nil, 400},
		{"invalid UTF-8", "POST", "/Patient", []byte("{\"resourceType\":\"Patient\",\"gender\":\"\xff\xfe\"}"), nil, 400},
		{"nested 10,000 objects", "POST", "/Patient", deep, nil, 400},
		{"nested 10,000 arrays", "POST", "/Patient", deepArray, nil, 400},
		{"100 MB body", "POST", "/Patient", &bigReader{n: 100 << 20}, nil, 413},
		{"XML content type", "POST", "/Patient", `<Patient xmlns="http://hl7.org/fhir"/>`, []string{"Content-Type", "application/fhir+xml"}, 415},
		{"text/plain", "POST", "/Patient", `{"resourceType":"Patient"}`, []string{"Content-Type", "text/plain"}, 415},
		{"latin-1 charset", "POST", "/Patient", `{"resourceType":"Patient"}`, []string{"Content-Type", "application/fhir+json; charset=iso-8859-1"}, 415},
		{"XML only accepted", "GET", "/metadata", nil, []string{"Accept", "application/fhir+xml"}, 406},
		{"_format xml", "GET", "/metadata?_format=xml", nil, nil, 406},
		{"resourceType differs from URL", "POST", "/Patient", `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, nil, 400},
		{"unknown system path", "GET", "/no/such/path/here", nil, nil, 404},
		{"DELETE /metadata names no resource type", "DELETE", "/metadata", nil, nil, 404},
		{"method not routed", "POST", "/Patient/1/_history", nil, nil, 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.do(tc.method, tc.path, tc.body, tc.headers...)
			res.want(t, tc.status)
		})
	}
	if allow := c.do("DELETE", "/Patient/1/_history", nil).want(t, http.StatusMethodNotAllowed).Header.Get("Allow"); allow != "GET" {
		t.Errorf("405 on DELETE /Patient/1/_history: Allow %q, want GET", allow)
	}
	// The body limit holds for PUT and $validate too.
	c.do("PUT", "/Patient/big", &bigReader{n: 100 << 20}).want(t, http.StatusRequestEntityTooLarge)
	c.do("POST", "/Patient/$validate", &bigReader{n: 100 << 20}).want(t, http.StatusRequestEntityTooLarge)
	c.do("GET", "/Patient/big", nil).want(t, http.StatusNotFound)
}

func testValidation(t *testing.T, c *client, _ string) {
	for _, tc := range []struct {
		name, typ, body string
		status          int
		expression      string
	}{
		{"unknown element", "Patient", `{"resourceType":"Patient","favouriteColour":"blue"}`, 400, "Patient.favouriteColour"},
		{"wrong type", "Patient", `{"resourceType":"Patient","active":"yes"}`, 400, "Patient.active"},
		{"malformed date", "Patient", `{"resourceType":"Patient","birthDate":"1970-13-01"}`, 400, "Patient.birthDate"},
		{"impossible date", "Patient", `{"resourceType":"Patient","birthDate":"2023-02-30"}`, 400, "Patient.birthDate"},
		{"malformed dateTime", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2020-01-01T10:00"}`, 400, "Observation.effective"},
		{"malformed decimal", "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":"1.5"}}`, 400, "Observation.value"},
		{"malformed uri", "Patient", `{"resourceType":"Patient","identifier":[{"system":"has space","value":"1"}]}`, 400, "Patient.identifier[0].system"},
		{"single value where a list is required", "Patient", `{"resourceType":"Patient","name":{"family":"Doe"}}`, 400, "Patient.name"},
		{"list where one value is allowed", "Patient", `{"resourceType":"Patient","gender":["male"]}`, 400, "Patient.gender"},
		{"missing required element", "Observation", `{"resourceType":"Observation","code":{"text":"x"}}`, 400, "Observation.status"},
		{"code outside its required value set", "Patient", `{"resourceType":"Patient","gender":"nope"}`, 400, "Patient.gender"},
		{"deep path", "Patient", `{"resourceType":"Patient","name":[{"given":["a",1]}]}`, 400, "Patient.name[0].given[1]"},
		{"contained resource with versionId", "Patient", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","meta":{"versionId":"1"},"name":"x"}],"managingOrganization":{"reference":"#o"}}`, 422, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := c.do("POST", "/"+tc.typ, tc.body).want(t, tc.status)
			if tc.expression == "" {
				return
			}
			exprs := res.issueExpressions()
			found := false
			for _, e := range exprs {
				if strings.HasPrefix(e, tc.expression) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no issue at %s; got %v in %s", tc.expression, exprs, res.body)
			}
		})
	}
	t.Run("every issue is reported, not just the first", func(t *testing.T) {
		res := c.do("POST", "/Patient", `{"resourceType":"Patient","active":"yes","gender":1,"birthDate":"x"}`).want(t, 400)
		if n := len(res.issueExpressions()); n < 3 {
			t.Fatalf("%d issues reported, want 3: %s", n, res.body)
		}
	})
}

func testValidateOperation(t *testing.T, c *client, _ string) {
	res := c.do("POST", "/Patient/$validate", fixture(t, "patient-rich.json")).want(t, http.StatusOK)
	m := res.json()
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("$validate answered %s", res.body)
	}
	for _, is := range m["issue"].([]any) {
		if sev := is.(map[string]any)["severity"]; sev == "error" || sev == "fatal" {
			t.Fatalf("valid resource got an error: %s", res.body)
		}
	}
	res = c.do("POST", "/Patient/$validate", `{"resourceType":"Patient","birthDate":"yesterday"}`).want(t, http.StatusOK)
	if !slices.Contains(res.issueExpressions(), "Patient.birthDate") {
		t.Fatalf("$validate did not report Patient.birthDate: %s", res.body)
	}
	params := `{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Patient","birthDate":"nope"}},{"name":"mode","valueCode":"create"}]}`
	res = c.do("POST", "/Patient/$validate", params).want(t, http.StatusOK)
	if !slices.Contains(res.issueExpressions(), "Patient.birthDate") {
		t.Fatalf("$validate with Parameters did not report Patient.birthDate: %s", res.body)
	}
	res = c.do("POST", "/Patient/abc/$validate", `{"resourceType":"Patient","id":"xyz"}`).want(t, http.StatusOK)
	if !slices.Contains(res.issueExpressions(), "id") {
		t.Fatalf("instance $validate did not report the id mismatch: %s", res.body)
	}
	c.do("POST", "/Patient/$validate", `{not json`).want(t, http.StatusBadRequest)
}

func testConcurrency(t *testing.T, c *client, run string) {
	const n = 20
	id := "conc-" + run
	body := fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id)
	c.do("PUT", "/Patient/"+id, body).want(t, http.StatusCreated)

	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i] = c.do("PUT", "/Patient/"+id, body, "If-Match", `W/"1"`).StatusCode })
	}
	wg.Wait()
	ok, failed := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusPreconditionFailed:
			failed++
		}
	}
	if ok != 1 || failed != n-1 {
		t.Fatalf("%d concurrent PUTs with the same If-Match: %d succeeded, %d got 412 (statuses %v); want 1 and %d", n, ok, failed, statuses, n-1)
	}

	id2 := "conc2-" + run
	body2 := fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, id2)
	c.do("PUT", "/Patient/"+id2, body2).want(t, http.StatusCreated)
	for i := range n {
		wg.Go(func() { statuses[i] = c.do("PUT", "/Patient/"+id2, body2).StatusCode })
	}
	wg.Wait()
	for _, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("concurrent PUTs without If-Match: statuses %v, want all 200", statuses)
		}
	}
	hist := c.do("GET", "/Patient/"+id2+"/_history/?_count=100", nil).want(t, http.StatusOK).json()
	var versions []string
	for _, e := range hist["entry"].([]any) {
		versions = append(versions, e.(map[string]any)["resource"].(map[string]any)["meta"].(map[string]any)["versionId"].(string))
	}
	var want []string
	for v := n + 1; v >= 1; v-- {
		want = append(want, fmt.Sprint(v))
	}
	if !slices.Equal(versions, want) {
		t.Fatalf("versions after %d concurrent PUTs: %v, want %v", n, versions, want)
	}

	// Concurrent conditional creates of one identifier make one resource.
	sys := "http://example.org/mrn/" + run
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			res := c.do("POST", "/Patient/", patientWith(sys, "same"), "If-None-Exist", "identifier="+url.QueryEscape(sys+"|same"))
			statuses[i] = res.StatusCode
			ids[i], _ = res.json()["id"].(string)
		})
	}
	wg.Wait()
	createdN := 0
	for i, s := range statuses {
		if s == http.StatusCreated {
			createdN++
		}
		if (s != http.StatusCreated && s != http.StatusOK) || ids[i] != ids[0] {
			t.Fatalf("concurrent conditional creates: statuses %v ids %v; want one 201, the rest 200, one id", statuses, ids)
		}
	}
	if createdN != 1 {
		t.Fatalf("concurrent conditional creates made %d resources, want 1 (statuses %v)", createdN, statuses)
	}
}

func testOps(t *testing.T, c *client, _ string) {
	c.do("GET", "/healthz", nil).want(t, http.StatusOK)
	c.do("GET", "/readyz", nil).want(t, http.StatusOK)
	res := c.do("GET", "/metrics", nil).want(t, http.StatusOK)
	for _, want := range []string{
		`ehrledger_http_requests_total{code="201",interaction="create"}`,
		`ehrledger_http_request_duration_seconds_bucket{interaction="read"`,
		`ehrledger_db_transaction_retries_total`,
	} {
		if !bytes.Contains(res.body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if id := c.do("GET", "/metadata", nil, "X-Request-Id", "trace-123").Header.Get("X-Request-Id"); id != "trace-123" {
		t.Errorf("X-Request-Id not echoed: %q", id)
	}
	if id := c.do("GET", "/metadata", nil).Header.Get("X-Request-Id"); id == "" {
		t.Error("no X-Request-Id made")
	}
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
