package consent_test

import (
	"os"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/consent"
)

// FuzzParse feeds Parse arbitrary bodies: it refuses or parses, never
// panics, and what it parses compiles and decides.
func FuzzParse(f *testing.F) {
	a1, err := os.ReadFile("testdata/a1.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(a1)
	f.Add([]byte(`{"resourceType":"Consent","status":"active","provision":{"type":"deny","provision":[{"type":"permit","period":{"start":"2024"}}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := consent.Parse(body)
		if err != nil {
			return
		}
		c.Status, c.PatientPrivacy, c.Patient = "active", true, "p1"
		p := consent.Compile("p1", []*consent.Consent{c}, consent.Config{ExplicitPurposes: []string{"HRESCH"}}, nil)
		r := req("Organization/clinic", "TREAT", obs("o1", withLabel(conf, "R")))
		r.Time = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
		if d := p.Decide(&r); d.Reason == "" {
			t.Fatal("a decision without a reason")
		}
	})
}
