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

// entry is a Bundle entry for a request.
func entry(method, url, fullURL string, resource any, extra ...string) map[string]any {
	req := map[string]any{"method": method, "url": url}
	for i := 0; i+1 < len(extra); i += 2 {
		req[extra[i]] = extra[i+1]
	}
	e := map[string]any{"request": req}
	if fullURL != "" {
		e["fullUrl"] = fullURL
	}
	if resource != nil {
		if s, ok := resource.(string); ok {
			resource = json.RawMessage(s)
		}
		e["resource"] = resource
	}
	return e
}

func bundleOf(typ string, entries ...map[string]any) map[string]any {
	return map[string]any{"resourceType": "Bundle", "type": typ, "entry": entries}
}

// responses returns the entries of a transaction-response or batch-response.
func responses(t *testing.T, res *response, typ string) []map[string]any {
	t.Helper()
	b := res.json()
	if b["resourceType"] != "Bundle" || b["type"] != typ {
		t.Fatalf("not a %s: %s", typ, truncate(res.body))
	}
	var out []map[string]any
	for _, e := range b["entry"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

func status(e map[string]any) string { return e["response"].(map[string]any)["status"].(string) }

func location(e map[string]any) string {
	loc, _ := e["response"].(map[string]any)["location"].(string)
	return loc
}

func testTransaction(t *testing.T, c *client, run string) {
	sys := "http://example.org/mrn/" + run
	existing, _ := created(t, c, "Organization", `{"resourceType":"Organization","identifier":[{"system":"`+sys+`","value":"org"}],"name":"Existing"}`)
	gone, _ := created(t, c, "Basic", `{"resourceType":"Basic","code":{"text":"to delete"}}`)
	patched, _ := created(t, c, "Basic", `{"resourceType":"Basic","code":{"text":"before"}}`)
	patch := base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/code/text","value":"after"}]`))

	t.Run("all entries commit, in the spec's order, references rewritten", func(t *testing.T) {
		b := bundleOf("transaction",
			entry("GET", "Patient?identifier="+url.QueryEscape(sys+"|tx-1"), "", nil),
			entry("POST", "Observation", "urn:uuid:0b3c8d2e-0000-4000-8000-000000000002",
				`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:0b3c8d2e-0000-4000-8000-000000000001"},"performer":[{"reference":"Organization?identifier=`+sys+`|org"}]}`),
			entry("POST", "Patient", "urn:uuid:0b3c8d2e-0000-4000-8000-000000000001",
				`{"resourceType":"Patient","identifier":[{"system":"`+sys+`","value":"tx-1"}],"managingOrganization":{"reference":"urn:uuid:0b3c8d2e-0000-4000-8000-000000000003"}}`),
			entry("POST", "Organization", "urn:uuid:0b3c8d2e-0000-4000-8000-000000000003",
				`{"resourceType":"Organization","identifier":[{"system":"`+sys+`","value":"org"}],"name":"Duplicate"}`, "ifNoneExist", "identifier="+sys+"|org"),
			entry("PUT", "Practitioner/tx-prac-"+run, "", `{"resourceType":"Practitioner","id":"tx-prac-`+run+`"}`),
			entry("DELETE", "Basic/"+gone, "", nil),
			entry("PATCH", "Basic/"+patched, "", map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch}),
		)
		rs := responses(t, c.do("POST", "/", b).want(t, http.StatusOK), "transaction-response")
		want := []string{"200 OK", "201 Created", "201 Created", "200 OK", "201 Created", "204 No Content", "200 OK"}
		for i, w := range want {
			if status(rs[i]) != w {
				t.Fatalf("entry %d: status %q, want %q (%v)", i, status(rs[i]), w, rs[i])
			}
		}
		obsLoc, patLoc := location(rs[1]), location(rs[2])
		if !strings.HasPrefix(obsLoc, "Observation/") || !strings.HasPrefix(patLoc, "Patient/") || location(rs[3]) == "" {
			t.Fatalf("locations %q %q", obsLoc, patLoc)
		}
		if !strings.HasPrefix(location(rs[3]), "Organization/"+existing+"/") {
			t.Fatalf("conditional create did not find the existing Organization: %v", rs[3])
		}
		patID := strings.Split(patLoc, "/")[1]
		obsRes := c.do("GET", "/"+strings.Join(strings.Split(obsLoc, "/")[:2], "/"), nil).want(t, http.StatusOK).json()
		if ref := obsRes["subject"].(map[string]any)["reference"]; ref != "Patient/"+patID {
			t.Fatalf("urn:uuid reference became %v, want Patient/%s", ref, patID)
		}
		if ref := obsRes["performer"].([]any)[0].(map[string]any)["reference"]; ref != "Organization/"+existing {
			t.Fatalf("conditional reference became %v, want Organization/%s", ref, existing)
		}
		pat := c.do("GET", "/Patient/"+patID, nil).want(t, http.StatusOK).json()
		if ref := pat["managingOrganization"].(map[string]any)["reference"]; ref != "Organization/"+existing {
			t.Fatalf("reference to a conditional create's fullUrl became %v", ref)
		}
		// The GET entry ran after the writes and sees them.
		if n := len(bundleMatches(rs[0]["resource"].(map[string]any))); n != 1 {
			t.Fatalf("GET entry found %d patients, want the one just created", n)
		}
		c.do("GET", "/Basic/"+gone, nil).want(t, http.StatusGone)
		if got := c.do("GET", "/Basic/"+patched, nil).want(t, http.StatusOK).json()["code"].(map[string]any)["text"]; got != "after" {
			t.Fatalf("PATCH entry: code.text %v", got)
		}
		c.do("GET", "/Practitioner/tx-prac-"+run, nil).want(t, http.StatusOK)
	})

	t.Run("one failing entry writes nothing and is named", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			bad    map[string]any
			status int
		}{
			{"invalid resource", entry("POST", "Observation", "", `{"resourceType":"Observation","code":{"text":"no status"}}`), 400},
			{"failed If-Match", entry("PUT", "Basic/"+patched, "", `{"resourceType":"Basic","id":"`+patched+`","code":{"text":"x"}}`, "ifMatch", `W/"99"`), 412},
			{"unresolved urn:uuid", entry("POST", "Observation", "", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"}}`), 400},
			{"conditional reference matching nothing", entry("POST", "Observation", "", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?identifier=`+sys+`|nobody"}}`), 412},
			{"patch of a missing resource", entry("PATCH", "Basic/nope-"+run, "", map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch}), 404},
			{"resource type not matching the url", entry("POST", "Patient", "", `{"resourceType":"Basic","code":{"text":"x"}}`), 400},
			{"same resource twice", entry("DELETE", "Practitioner/tx-prac-"+run, "", nil), 400},
		} {
			t.Run(tc.name, func(t *testing.T) {
				marker := fmt.Sprintf("fail-%s-%d", run, time.Now().UnixNano())
				b := bundleOf("transaction",
					entry("POST", "Patient", "", `{"resourceType":"Patient","identifier":[{"system":"`+sys+`","value":"`+marker+`"}]}`),
					entry("PUT", "Practitioner/tx-prac-"+run, "", `{"resourceType":"Practitioner","id":"tx-prac-`+run+`","active":true}`),
					tc.bad)
				res := c.do("POST", "/", b).want(t, tc.status)
				if exprs := res.issueExpressions(); len(exprs) == 0 || !strings.HasPrefix(exprs[0], "Bundle.entry[2]") {
					t.Fatalf("the issue does not name entry 2: %v %s", exprs, res.body)
				}
				if n := len(searchIDs(t, c, "/Patient?identifier="+url.QueryEscape(sys+"|"+marker))); n != 0 {
					t.Fatalf("a failed transaction left %d patients", n)
				}
				if v := c.do("GET", "/Practitioner/tx-prac-"+run, nil).want(t, http.StatusOK).json(); v["active"] != nil {
					t.Fatalf("a failed transaction updated the practitioner: %v", v)
				}
			})
		}
	})

	t.Run("batch entries stand alone", func(t *testing.T) {
		b := bundleOf("batch",
			entry("POST", "Patient", "", `{"resourceType":"Patient","identifier":[{"system":"`+sys+`","value":"batch-1"}]}`),
			entry("POST", "Observation", "", `{"resourceType":"Observation"}`),
			entry("GET", "Patient/nope-"+run, "", nil),
			entry("DELETE", "Basic/"+gone, "", nil),
			entry("PATCH", "Basic/"+patched, "", map[string]any{"resourceType": "Binary", "contentType": "application/json-patch+json", "data": patch}),
			entry("POST", "", "", nil),
		)
		rs := responses(t, c.do("POST", "/", b).want(t, http.StatusOK), "batch-response")
		want := []string{"201 Created", "400 Bad Request", "404 Not Found", "204 No Content", "200 OK", "400 Bad Request"}
		for i, w := range want {
			if status(rs[i]) != w {
				t.Fatalf("entry %d: status %q, want %q", i, status(rs[i]), w)
			}
		}
		if rs[1]["response"].(map[string]any)["outcome"] == nil {
			t.Fatal("a failed batch entry carries no outcome")
		}
		if n := len(searchIDs(t, c, "/Patient?identifier="+url.QueryEscape(sys+"|batch-1"))); n != 1 {
			t.Fatalf("the good batch entry was not kept: %d", n)
		}
	})

	t.Run("POST / takes only transactions and batches", func(t *testing.T) {
		c.do("POST", "/", `{"resourceType":"Bundle","type":"collection"}`).want(t, http.StatusBadRequest)
		c.do("POST", "/", `{"resourceType":"Patient"}`).want(t, http.StatusBadRequest)
		c.do("POST", "/", bundleOf("transaction", entry("POST", "Nonsense", "", `{"resourceType":"Patient"}`))).want(t, http.StatusNotFound)
		c.do("POST", "/", bundleOf("transaction", map[string]any{"resource": map[string]any{"resourceType": "Patient"}})).want(t, http.StatusBadRequest)
	})
}

// testLargeTransaction commits a 5,000-entry record atomically, and rolls
// one back whole when its last entry fails.
func testLargeTransaction(t *testing.T, c *client, run string) {
	const n = 5000
	build := func(marker string, breakLast bool) map[string]any {
		entries := []map[string]any{entry("POST", "Patient", "urn:uuid:00000000-0000-4000-8000-"+fmt.Sprintf("%012d", 0),
			`{"resourceType":"Patient","identifier":[{"system":"http://example.org/big","value":"`+marker+`"}]}`)}
		for i := 1; i < n; i++ {
			status := "final"
			if breakLast && i == n-1 {
				status = "not-a-status"
			}
			entries = append(entries, entry("POST", "Observation", "",
				fmt.Sprintf(`{"resourceType":"Observation","status":%q,"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"urn:uuid:00000000-0000-4000-8000-000000000000"},"effectiveDateTime":"2024-01-01T00:%02d:%02dZ","valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}`,
					status, (i/60)%60, i%60, 50+i%80)))
		}
		return bundleOf("transaction", entries...)
	}
	start := time.Now()
	rs := responses(t, c.do("POST", "/", build("big-"+run, false)).want(t, http.StatusOK), "transaction-response")
	t.Logf("%d-entry transaction committed in %v", n, time.Since(start))
	if len(rs) != n {
		t.Fatalf("%d response entries, want %d", len(rs), n)
	}
	patID := strings.Split(location(rs[0]), "/")[1]
	b := c.do("GET", "/Observation?subject=Patient/"+patID+"&_summary=count", nil).want(t, http.StatusOK).json()
	if total, _ := b["total"].(json.Number).Int64(); total != n-1 {
		t.Fatalf("%d observations stored, want %d", total, n-1)
	}
	res := c.do("POST", "/", build("broken-"+run, true)).want(t, http.StatusBadRequest)
	if exprs := res.issueExpressions(); len(exprs) == 0 || !strings.HasPrefix(exprs[0], fmt.Sprintf("Bundle.entry[%d]", n-1)) {
		t.Fatalf("the failure does not name entry %d: %v", n-1, exprs)
	}
	if got := searchIDs(t, c, "/Patient?identifier=http://example.org/big|broken-"+run); len(got) != 0 {
		t.Fatalf("a failed 5,000-entry transaction left %v", got)
	}
}
