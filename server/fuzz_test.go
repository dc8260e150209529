package server

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/ehrledger/ehrledger/disclosure"
	"github.com/ehrledger/ehrledger/fhir"
	jsonpatch "github.com/evanphx/json-patch/v5"
)

// fuzzServer is a Server with just what parsing needs.
func fuzzServer() *Server {
	cfg := Config{BaseURL: "http://fhir.example", MaxBodyBytes: 1 << 20}
	cfg.Limits = cfg.Limits.withDefaults()
	return &Server{cfg: cfg, limits: fhir.Limits{MaxDepth: DefaultMaxDepth}}
}

const fuzzPatient = `{"resourceType":"Patient","id":"p","name":[{"family":"Doe","given":["Jane","Q"]}],"telecom":[{"system":"phone","value":"555"}],"birthDate":"1970-01-01"}`

// FuzzJSONPatch applies JSON Patches as clients send them to a stored
// Patient: never a panic, and never a result past the body limit (a patch
// that copies a resource into itself again and again is bounded).
func FuzzJSONPatch(f *testing.F) {
	for _, seed := range []string{`[{"op":"replace","path":"/name/0/family","value":"X"}]`, `[{"op":"copy","from":"/name","path":"/contact"}]`,
		`[{"op":"test","path":"/birthDate","value":"1970-01-01"}]`, `[{"op":"move","from":"/name/0/given/1","path":"/name/0/given/0"}]`,
		`[{"op":"remove","path":"/telecom"}]`, `[{"op":"add","path":"/name/-","value":{"family":"Y"}}]`, `[]`, `{}`, `[{"op":"copy","from":"","path":"/x"}]`} {
		f.Add([]byte(seed))
	}
	s := fuzzServer()
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := s.decodePatch(body)
		if err != nil {
			return
		}
		opts := jsonpatch.NewApplyOptions()
		opts.AccumulatedCopySizeLimit = s.cfg.MaxBodyBytes
		out, err := p.ApplyWithOptions([]byte(fuzzPatient), opts)
		if err != nil {
			return
		}
		if int64(len(out)) > 2*s.cfg.MaxBodyBytes+int64(len(body))+int64(len(fuzzPatient)) {
			t.Fatalf("a %d-byte patch made %d bytes", len(body), len(out))
		}
		// As planPatch goes on: the patched resource is parsed, validated
		// and indexed.
		if _, err := fhir.Parse(out, s.limits); err == nil {
			fhir.Validate(out)
			fhir.ExtractIndex("Patient", out)
		}
	})
}

// FuzzBundleEntries reads transaction Bundles' entries as clients send
// them, with every scope: never a panic.
func FuzzBundleEntries(f *testing.F) {
	for _, seed := range []string{
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=a|b"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W10="},"request":{"method":"PATCH","url":"Patient/1"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient?name=x"}},{"request":{"method":"GET","url":"Patient/1"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"http://fhir.example/Patient/1"},"resource":{"resourceType":"Patient","id":"1"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Patient/1/2/3"}}]}`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer()
	r := httptest.NewRequest("POST", "http://fhir.example/", nil)
	r = r.WithContext(disclosure.WithCaller(r.Context(), &disclosure.Caller{Open: true}))
	f.Fuzz(func(t *testing.T, body []byte) {
		var b bundleIn
		if json.Unmarshal(body, &b) != nil || len(b.Entry) > 100 {
			return
		}
		entries, err := s.readEntries(r, &b)
		if err != nil {
			return
		}
		for _, te := range entries {
			if te.template != nil && te.template.typ == "" {
				t.Fatalf("entry %d taken without a type", te.index)
			}
		}
	})
}
