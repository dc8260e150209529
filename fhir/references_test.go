package fhir

import (
	"slices"
	"testing"
)

func TestRewriteReferences(t *testing.T) {
	body := []byte(`{"resourceType":"Observation","subject":{"reference":"urn:uuid:1"},"performer":[{"reference":"Practitioner/2","display":"reference"},{"display":"x"}],` +
		`"extension":[{"url":"http://x","valueReference":{"reference":"urn:uuid:1"}}],"note":[{"text":"\"reference\":\"urn:uuid:1\""}],"reference":5}`)
	got := RewriteReferences(body, func(ref string) (string, bool) {
		if ref == "urn:uuid:1" {
			return "Patient/abc", true
		}
		return "", false
	})
	want := `{"resourceType":"Observation","subject":{"reference":"Patient/abc"},"performer":[{"reference":"Practitioner/2","display":"reference"},{"display":"x"}],` +
		`"extension":[{"url":"http://x","valueReference":{"reference":"Patient/abc"}}],"note":[{"text":"\"reference\":\"urn:uuid:1\""}],"reference":5}`
	if string(got) != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	if refs := References(body); !slices.Equal(refs, []string{"urn:uuid:1", "Practitioner/2", "urn:uuid:1"}) {
		t.Fatalf("References: %v", refs)
	}
	if same := RewriteReferences(body, func(string) (string, bool) { return "", false }); &same[0] != &body[0] {
		t.Fatal("an unchanged document was copied")
	}
}

func FuzzRewriteReferences(f *testing.F) {
	f.Add([]byte(`{"reference":"a","x":[{"reference":"b"}]}`))
	f.Add([]byte(`{"reference":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		RewriteReferences(b, func(ref string) (string, bool) { return ref + "!", true })
	})
}
