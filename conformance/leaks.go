package conformance

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The leaks a hostile client found, each closed by the gate (package
// disclosure; docs/security.md): what a token that may see nothing of
// Bob's learns by PATCH, by a transaction's answer, by chains and _has,
// by conditional criteria, with write scopes, by writing into his chart,
// from the ledger's view, from data outside his compartment, by
// break-glass, from someone else's export, and from the search index.

// noLeak fails when r carries one of w's canaries hidden from caller, or
// names a ledger record.
func (w *world) noLeak(t *testing.T, caller *client, r *response, sent string) {
	t.Helper()
	if got := leaked(r, sent, w.hiddenFrom(caller)); len(got) > 0 {
		t.Fatalf("%s %s leaks %q: %s", r.Request.Method, r.Request.URL.RequestURI(), got, truncate(r.body))
	}
}

// wantRefusal checks a 403 with nothing of Bob's and no disclosure record.
func (w *world) wantRefusal(t *testing.T, caller *client, r *response, sent string) {
	t.Helper()
	r.want(t, http.StatusForbidden)
	w.noLeak(t, caller, r, sent)
	if r.Header.Get("Ledger-Index") != "" {
		t.Fatalf("a refusal names disclosure records %s", r.Header.Get("Ledger-Index"))
	}
}

// sameAnswer fails unless two answers (one where hidden data matched, one
// where nothing did) have the same status and, but for what differs by
// nature (ids the server assigned, times), the same body.
func sameAnswer(t *testing.T, what string, a, b *response, placeholders ...string) {
	t.Helper()
	na, nb := normalize(a, placeholders...), normalize(b, placeholders...)
	if a.StatusCode != b.StatusCode || na != nb {
		t.Fatalf("%s: answers differ with and without hidden data:\n%d %s\n%d %s", what, a.StatusCode, na, b.StatusCode, nb)
	}
}

func jsonPatch(ops ...map[string]any) string {
	b, _ := json.Marshal(ops)
	return string(b)
}

func patchBinary(ops string) map[string]any {
	return map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json", "data": base64.StdEncoding.EncodeToString([]byte(ops))}
}

func testLeaks(t *testing.T, c *client, run string) {
	w := newWorld(t, c, "lk-"+run, true, 11, "Organization/org-b-lk-"+run)
	patch := func(caller *client, path, ops string) *response {
		return caller.do(http.MethodPatch, path, ops, "Content-Type", "application/json-patch+json")
	}

	t.Run("PATCH authorizes before it reads", func(t *testing.T) {
		copyFamily := jsonPatch(map[string]any{"op": "copy", "from": "/name/0/family", "path": "/gender"})
		for _, p := range []struct{ from, path string }{{"/name/0/family", "/gender"}, {"/telecom/0/value", "/gender"},
			{"/identifier/0/value", "/gender"}, {"/address/0/line/0", "/gender"}} {
			ops := jsonPatch(map[string]any{"op": "copy", "from": p.from, "path": p.path})
			for _, caller := range []*client{w.aliceApp, w.orgbw} {
				w.wantRefusal(t, caller, patch(caller, "/Patient/"+w.bob, ops), ops)
			}
		}
		note := jsonPatch(map[string]any{"op": "copy", "from": "/note/0/text", "path": "/status"})
		w.wantRefusal(t, w.orgbw, patch(w.orgbw, "/Observation/"+w.bobObs, note), note)
		// The test op is no oracle: a true and a false guess answer alike.
		for _, caller := range []*client{w.aliceApp, w.orgbw} {
			right := patch(caller, "/Patient/"+w.bob, jsonPatch(map[string]any{"op": "test", "path": "/birthDate", "value": w.bobBirth}))
			wrong := patch(caller, "/Patient/"+w.bob, jsonPatch(map[string]any{"op": "test", "path": "/birthDate", "value": "1900-01-01"}))
			sameAnswer(t, "PATCH test", right, wrong, w.bobBirth, "1900-01-01")
			w.wantRefusal(t, caller, right, w.bobBirth)
		}
		// By criteria: Bob's resource matches nothing for them.
		byMRN := "/Patient?identifier=" + url.QueryEscape("http://leak.example/mrn|"+w.bobMRN)
		nothing := "/Patient?identifier=" + url.QueryEscape("http://leak.example/mrn|MRNnobody"+run)
		for _, caller := range []*client{w.aliceApp, w.orgbw} {
			a, b := patch(caller, byMRN, copyFamily), patch(caller, nothing, copyFamily)
			sameAnswer(t, "conditional PATCH", a, b, w.bobMRN, "MRNnobody"+run)
			w.noLeak(t, caller, a, byMRN)
		}
		// Inside a transaction.
		tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
			"resource": patchBinary(copyFamily), "request": map[string]any{"method": "PATCH", "url": "Patient/" + w.bob}}}}
		for _, caller := range []*client{w.aliceApp, w.orgbw} {
			w.wantRefusal(t, caller, caller.do(http.MethodPost, "/", tx), w.bob)
		}
		// Nothing changed.
		if got := c.do(http.MethodGet, "/Patient/"+w.bob, nil).want(t, http.StatusOK).Header.Get("ETag"); got != `W/"1"` {
			t.Fatalf("Bob's Patient changed: ETag %s", got)
		}
		// The consent's refusal is recorded, citing Bob's Consent.
		c.recordsAbout(t, w.bob, "110113", "Patient/"+w.bob+"/_history/1")
	})

	t.Run("a transaction's answer shows only what the caller may see", func(t *testing.T) {
		obs := map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "orgb " + run}}
		tx := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
			"resource": obs,
			"request": map[string]any{"method": "POST", "url": "Observation",
				"ifNoneExist": "identifier=" + url.QueryEscape("http://leak.example/obs|"+w.bobObsMRN)}}}}
		r := w.orgbw.do(http.MethodPost, "/", tx, "Prefer", "return=representation").want(t, http.StatusOK)
		w.noLeak(t, w.orgbw, r, w.bobObsMRN)
		if !strings.Contains(string(r.body), `"201 Created"`) {
			t.Fatalf("the hidden match was not taken as none: %s", truncate(r.body))
		}
		// A PATCH entry returns nothing it may not read.
		tx = map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
			"resource": patchBinary(jsonPatch(map[string]any{"op": "replace", "path": "/status", "value": "amended"})),
			"request":  map[string]any{"method": "PATCH", "url": "Observation/" + w.bobObs}}}}
		w.wantRefusal(t, w.orgbw, w.orgbw.do(http.MethodPost, "/", tx, "Prefer", "return=representation"), w.bobObs)
		// What the answer shows is recorded: Alice's app's own patch.
		tx = map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
			"resource": patchBinary(jsonPatch(map[string]any{"op": "replace", "path": "/status", "value": "amended"})),
			"request":  map[string]any{"method": "PATCH", "url": "Observation/" + w.aliceVitals}}}}
		r = w.orgbw.do(http.MethodPost, "/", tx, "Prefer", "return=representation").want(t, http.StatusOK)
		rec := c.ledgerRecordOf(t, r)
		if rec.Type != "disclosure" || len(rec.Resources) != 1 || rec.Resources[0].Ref != "Observation/"+w.aliceVitals+"/_history/2" {
			t.Fatalf("the patched resource's disclosure record: %+v", rec)
		}
	})

	t.Run("chains and _has test only what the caller may read", func(t *testing.T) {
		for _, caller := range []*client{w.orgb, w.aliceApp} {
			for i := 1; i <= len(w.bobFamily); i++ {
				prefix := w.bobFamily[:i]
				q := "/Organization?_id=" + w.org + "&_has:Patient:organization:family=" + prefix
				a := caller.do(http.MethodGet, q, nil).want(t, http.StatusOK)
				b := caller.do(http.MethodGet, "/Organization?_id="+w.org+"&_has:Patient:organization:family=Zz"+prefix, nil).want(t, http.StatusOK)
				sameAnswer(t, "_has by a prefix of a hidden name", a, b, prefix, "Zz"+prefix)
				w.noLeak(t, caller, a, q)
			}
			for _, q := range []string{
				"/Patient?organization=Organization/" + w.org + "&birthdate=" + w.bobBirth,
				"/Observation?subject:Patient.birthdate=" + w.bobBirth + "&subject:Patient.organization=Organization/" + w.org,
				"/Observation?patient.identifier=" + url.QueryEscape(w.bobMRN),
				"/Observation?focus:Patient.birthdate=" + w.bobBirth,
				"/Task?patient.organization=Organization/" + w.org,
				"/Organization?_id=" + w.org + "&_has:Patient:organization:_has:Observation:subject:code=86406008",
			} {
				r := caller.do(http.MethodGet, q, nil).want(t, http.StatusOK)
				w.noLeak(t, caller, r, q)
				for _, id := range bundleIDs(r, "Patient", "") {
					if id == w.bob {
						t.Fatalf("%s shows Bob", q)
					}
				}
				if strings.Contains(string(r.body), w.bob) {
					t.Fatalf("%s names Bob: %s", q, truncate(r.body))
				}
			}
		}
		// A type the scopes do not reach cannot be searched through.
		w.wantRefusal(t, w.patientsOnly, w.patientsOnly.do(http.MethodGet, "/Patient?_has:Observation:subject:code=86406008", nil), "")
		// Query-constrained: only the vital signs count.
		q := "/Patient?_id=" + w.alice + "&_has:Observation:subject:code=2345-7"
		r := w.vitalsOnly.do(http.MethodGet, q, nil).want(t, http.StatusOK)
		wantIDs(t, r, "Patient", "match")
		r = w.vitalsOnly.do(http.MethodGet, "/Patient?_id="+w.alice+"&_has:Observation:subject:code=29463-7", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Patient", "match", w.alice)
	})

	t.Run("conditional interactions act as if hidden data did not exist", func(t *testing.T) {
		bobs := "identifier=" + url.QueryEscape("http://leak.example/obs|"+w.bobObsMRN)
		none := "identifier=" + url.QueryEscape("http://leak.example/obs|OBSnothing"+run)
		obs := func(text string) string {
			return fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":%q},"subject":{"reference":"Patient/%s"}}`, text, w.alice)
		}
		for i, caller := range []*client{w.orgbw, w.aliceApp} {
			placeholders := []string{w.bobObsMRN, "OBSnothing" + run}
			a := caller.do(http.MethodPost, "/Observation", obs(fmt.Sprint("c", i)), "If-None-Exist", bobs)
			b := caller.do(http.MethodPost, "/Observation", obs(fmt.Sprint("c", i)), "If-None-Exist", none)
			sameAnswer(t, "If-None-Exist", a, b, placeholders...)
			a.want(t, http.StatusCreated)
			w.noLeak(t, caller, a, bobs)
			a = caller.do(http.MethodPut, "/Observation?"+bobs, obs(fmt.Sprint("u", i)), "If-Match", `W/"999"`)
			b = caller.do(http.MethodPut, "/Observation?"+none, obs(fmt.Sprint("u", i)), "If-Match", `W/"999"`)
			sameAnswer(t, "conditional update with If-Match", a, b, placeholders...)
			w.noLeak(t, caller, a, bobs)
			a = caller.do(http.MethodDelete, "/Observation?"+bobs, nil)
			b = caller.do(http.MethodDelete, "/Observation?"+none, nil)
			sameAnswer(t, "conditional delete", a, b, placeholders...)
			// A conditional reference resolves only to what the caller sees.
			ref := func(mrn string) map[string]any {
				return map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{map[string]any{
					"resource": map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "x"},
						"subject": map[string]any{"reference": "Patient?identifier=" + url.QueryEscape("http://leak.example/mrn|"+mrn)}},
					"request": map[string]any{"method": "POST", "url": "Observation"}}}}
			}
			a = caller.do(http.MethodPost, "/", ref(w.bobMRN))
			b = caller.do(http.MethodPost, "/", ref("MRNnothing"+run))
			sameAnswer(t, "conditional reference", a, b, w.bobMRN, "MRNnothing"+run)
			w.noLeak(t, caller, a, w.bobMRN)
		}
		if got := c.do(http.MethodGet, "/Observation/"+w.bobObs, nil).want(t, http.StatusOK).Header.Get("ETag"); got != `W/"1"` {
			t.Fatalf("Bob's Observation changed: ETag %s", got)
		}
	})

	t.Run("write scopes do not read", func(t *testing.T) {
		obs := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"w"},"subject":{"reference":"Patient/%s"}}`, w.alice)
		bobs := "identifier=" + url.QueryEscape("http://leak.example/obs|"+w.bobObsMRN)
		w.wantRefusal(t, w.createOnly, w.createOnly.do(http.MethodPost, "/Observation", obs, "If-None-Exist", bobs), bobs)
		// A create is answered without the body: the caller may not read it.
		r := w.createOnly.do(http.MethodPost, "/Observation", obs).want(t, http.StatusCreated)
		if len(r.body) != 0 || r.Header.Get("Location") == "" {
			t.Fatalf("a create by a caller that may not read: %s", truncate(r.body))
		}
		w.wantRefusal(t, w.updateOnly, patch(w.updateOnly, "/Observation/"+w.bobObs, "[]"), "")
		w.wantRefusal(t, w.updateOnly, patch(w.updateOnly, "/Observation/"+w.aliceLab, "[]"), "")
		w.wantRefusal(t, w.updateOnly, patch(w.updateOnly, "/Observation?"+bobs, "[]"), bobs)
	})

	t.Run("a patient's app writes only its patient's data", func(t *testing.T) {
		for _, body := range []string{
			fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"},"performer":[{"reference":"Patient/%s"}]}`, w.bob, w.alice),
			fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"},"performer":[{"reference":"Patient/%s"}]}`, w.alice, w.bob),
			fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"},"extension":[{"url":"http://leak.example/about","valueReference":{"reference":"Patient/%s"}}]}`, w.alice, w.bob),
			fmt.Sprintf(`{"resourceType":"Task","status":"requested","intent":"order","for":{"reference":"Patient/%s"}}`, w.bob),
		} {
			w.wantRefusal(t, w.aliceApp, w.aliceApp.do(http.MethodPost, "/"+strings.Split(body, `"`)[3], body), body)
		}
		r := w.aliceApp.do(http.MethodGet, "/Patient/"+w.alice+"/$everything", nil).want(t, http.StatusOK)
		w.noLeak(t, w.aliceApp, r, "")
		r = c.do(http.MethodGet, "/Patient/"+w.bob+"/$everything?_type=Observation,Task", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "match", w.bobObs)
		wantIDs(t, r, "Task", "match", w.bobTask)
	})

	t.Run("the ledger's view of a patient is theirs", func(t *testing.T) {
		for _, caller := range []*client{w.orgb, w.aliceApp, w.patientsOnly} {
			w.wantRefusal(t, caller, caller.do(http.MethodGet, "/AuditEvent?patient=Patient/"+w.bob, nil), w.bob)
		}
		r := w.aliceApp.do(http.MethodGet, "/AuditEvent?patient=Patient/"+w.alice, nil).want(t, http.StatusOK)
		if len(ledgerIndexes(t, r)) == 0 && len(bundleIDs(r, "AuditEvent", "")) > 0 {
			t.Fatal("the ledger's view of Alice is not recorded")
		}
		// Derived AuditEvents are the server's alone.
		ae := `{"resourceType":"AuditEvent","id":"ledger-9999999","type":{"code":"rest"},"recorded":"2026-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`
		for _, caller := range []*client{w.aliceApp, w.orgbw, c} {
			caller.do(http.MethodPut, "/AuditEvent/ledger-9999999", ae).want(t, http.StatusForbidden)
		}
		n := c.recordsAbout(t, w.bob, "", "Patient/"+w.bob+"/_history/1")[0]
		stored := fmt.Sprintf("/AuditEvent/ledger-%d", n)
		for deadline := time.Now().Add(20 * time.Second); c.do(http.MethodGet, stored, nil).StatusCode != http.StatusOK; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s was never stored", stored)
			}
		}
		c.do(http.MethodDelete, stored, nil).want(t, http.StatusForbidden)
		c.do(http.MethodPatch, stored, "[]", "Content-Type", "application/json-patch+json").want(t, http.StatusForbidden)
	})

	t.Run("data about a patient outside the compartment is theirs", func(t *testing.T) {
		w.wantRefusal(t, w.aliceApp, w.aliceApp.do(http.MethodGet, "/Task/"+w.bobTask, nil), w.bobTask)
		w.wantRefusal(t, w.orgb, w.orgb.do(http.MethodGet, "/Task/"+w.bobTask, nil), w.bobTask)
		for _, caller := range []*client{w.aliceApp, w.orgb} {
			r := caller.do(http.MethodGet, "/Task?identifier="+url.QueryEscape("http://leak.example/task|task-"+w.run), nil).want(t, http.StatusOK)
			wantIDs(t, r, "Task", "match")
			w.noLeak(t, caller, r, "")
		}
		// Crypto-shredding the patient shreds it too.
		carol, task := "pat-carol-"+w.run, "task-carol-"+w.run
		c.do(http.MethodPut, "/Patient/"+carol, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, carol)).want(t, http.StatusCreated)
		c.do(http.MethodPut, "/Task/"+task, fmt.Sprintf(`{"resourceType":"Task","id":%q,"status":"requested","intent":"order","for":{"reference":"Patient/%s"}}`, task, carol)).want(t, http.StatusCreated)
		c.do(http.MethodPost, "/Patient/"+carol+"/$erase", nil).want(t, http.StatusOK)
		c.do(http.MethodGet, "/Task/"+task, nil).want(t, http.StatusGone)
	})

	t.Run("break-glass reaches one patient", func(t *testing.T) {
		glass := []string{"Purpose-Of-Use", "ETREAT", "Break-Glass-Reason", "unconscious in the emergency room"}
		for _, q := range []string{"/Observation?code=86406008", "/Patient?organization=Organization/" + w.org, "/Observation/_history", "/_history"} {
			w.wantRefusal(t, w.orgb, w.orgb.do(http.MethodGet, q, nil, glass...), "")
		}
		r := w.orgb.do(http.MethodGet, "/Patient/"+w.bob+"/Observation", nil, glass...).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "match", w.bobObs, w.aliceByBob) // the second is Alice's, whose consent permits
		// Bob's record is marked break-glass; Alice's, whose consent
		// permits anyway, is not.
		for _, n := range ledgerIndexes(t, r) {
			rec, _ := c.record(t, c.checkpoint(t, n), n)
			bobs := len(rec.Resources) == 1 && strings.HasPrefix(rec.Resources[0].Ref, "Observation/"+w.bobObs+"/")
			if rec.BreakGlass != bobs {
				t.Fatalf("record %d: break-glass %v for %+v", n, rec.BreakGlass, rec.Resources)
			}
		}
		w.orgb.do(http.MethodGet, "/Observation/"+w.bobObs, nil, glass...).want(t, http.StatusOK)
		w.orgb.do(http.MethodGet, "/Patient/"+w.bob+"/$everything", nil, glass...).want(t, http.StatusOK)
		w.wantRefusal(t, w.orgb, w.orgb.do(http.MethodGet, "/Observation/"+w.bobObs, nil), w.bobObs)
	})

	t.Run("an export's filters test only what the caller may read", func(t *testing.T) {
		count := func(filter string) (int, []byte) {
			status := w.orgb.kickOff(t, "/Patient/$export?_type=Observation&_typeFilter="+url.QueryEscape(filter))
			m := w.orgb.awaitExport(t, status)
			n := 0
			var all []byte
			for _, o := range m.Output {
				r := w.orgb.do(http.MethodGet, strings.TrimPrefix(o.URL, w.orgb.base), nil, "Accept", "application/fhir+ndjson").want(t, http.StatusOK)
				all = append(all, r.body...)
				n += o.Count
			}
			w.orgb.do(http.MethodDelete, status, nil).want(t, http.StatusAccepted)
			return n, all
		}
		for _, prefix := range []string{w.bobFamily[:3], w.bobFamily} {
			right, body := count("Observation?_id=" + w.aliceByBob + "&performer:Patient.family=" + prefix)
			wrong, _ := count("Observation?_id=" + w.aliceByBob + "&performer:Patient.family=Zz" + prefix)
			if right != wrong || right != 0 {
				t.Fatalf("a filter through a hidden patient's name selects %d, a wrong guess %d", right, wrong)
			}
			if got := leakedIn(body, w.canaries()); len(got) > 0 {
				t.Fatalf("the export leaks %q", got)
			}
		}
		w.orgb.do(http.MethodGet, "/Patient/$export?_type=Observation&_typeFilter="+url.QueryEscape("Observation?subject:Patient.family=x"), nil,
			"Prefer", "respond-async").want(t, http.StatusAccepted)
		w.vitalsOnly.do(http.MethodGet, "/Patient/$export?_type=Patient&_typeFilter="+url.QueryEscape("Patient?_has:Group:member:_id=x"), nil,
			"Prefer", "respond-async").want(t, http.StatusForbidden)
	})

	t.Run("an export's files are its caller's", func(t *testing.T) {
		id := "exp-" + run
		scope := "system/Patient.rs system/Observation.rs"
		c.register(t, id, map[string]any{"actor": "Organization/exp-" + run, "scope": scope, "purposes": []string{"TREAT"}})
		full := c.srv.as(t, TokenRequest{Client: id, Scope: scope})
		less := c.srv.as(t, TokenRequest{Client: id, Scope: "system/Patient.rs"})
		status := full.kickOff(t, "/Patient/$export?_type=Patient,Observation")
		m := full.awaitExport(t, status)
		less.do(http.MethodGet, status, nil).want(t, http.StatusNotFound)
		for _, o := range m.Output {
			less.do(http.MethodGet, strings.TrimPrefix(o.URL, full.base), nil).want(t, http.StatusNotFound)
		}
		same := c.srv.as(t, TokenRequest{Client: id, Scope: scope})
		same.do(http.MethodGet, status, nil, "Accept", "application/json").want(t, http.StatusOK)
		full.do(http.MethodDelete, status, nil).want(t, http.StatusAccepted)
	})
}
