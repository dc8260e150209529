package balp_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/audit/balp"
	"github.com/ehrledger/ehrledger/fhir"
)

// TestEventsAreValidR4 builds the AuditEvent of every kind of record,
// with and without a patient, and checks each with the FHIR R4 validator
// the server checks clients' resources with, and the profile and codes
// BALP gives each kind.
func TestEventsAreValidR4(t *testing.T) {
	idx := int64(3)
	obs := audit.ResourceOf("Observation", "o1", 1, []byte(`{"resourceType":"Observation"}`))
	base := audit.Record{Time: "2026-12-08T03:04:05.123456Z", Recipient: &audit.Recipient{Client: "ward-app", Organization: "Organization/b"},
		Purpose: "TREAT", Resources: []audit.Resource{obs}, Consents: []audit.ConsentRef{{Ref: "Consent/c1/_history/2", Index: &idx}}}
	for _, c := range []struct {
		name, typ, interaction, patient string
		breakGlass, authz               bool
		profile, action, code           string
	}{
		{"disclosure", audit.TypeDisclosure, "read", "alice", false, false, balp.Disclosure, "R", "110106"},
		{"break-glass disclosure", audit.TypeDisclosure, "read", "alice", true, false, balp.Disclosure, "R", "110106"},
		{"the decision behind a disclosure", audit.TypeDisclosure, "search-type", "alice", false, true, balp.AuthZconsent, "E", "110113"},
		{"a patient's create", audit.TypeWrite, "create", "alice", false, false, "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientCreate", "C", "rest"},
		{"the provider's update", audit.TypeWrite, "update", "", false, false, "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Create", "C", "rest"},
		{"a consent's delete", audit.TypeConsent, "delete", "alice", false, false, "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientDelete", "D", "rest"},
		{"denial", audit.TypeDenial, "read", "alice", false, false, balp.AuthZconsent, "E", "110113"},
		{"erasure", audit.TypeErasure, "erase", "alice", false, false, "", "D", "110105"},
		{"key rotation", audit.TypeKeyRotation, "rotate", "", false, false, "", "E", audit.TypeKeyRotation},
	} {
		rec := base
		rec.Type, rec.Interaction, rec.BreakGlass = c.typ, c.interaction, c.breakGlass
		ae := balp.Event(7, &rec, c.patient, "test.example/ehrledger/main")
		if c.authz {
			ae = balp.AuthZ(7, &rec, c.patient, "test.example/ehrledger/main")
		}
		body, err := json.Marshal(ae)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range fhir.Validate(body) {
			if is.Severity == "error" || is.Severity == "fatal" {
				t.Errorf("%s: invalid R4: %s at %v\n%s", c.name, is.Diagnostics, is.Expression, body)
			}
		}
		var got struct {
			Meta *struct {
				Profile  []string
				Security []struct{ Code string }
			}
			Type   struct{ Code string }
			Action string
			Entity []struct{ What struct{ Reference string } }
		}
		json.Unmarshal(body, &got)
		profile := ""
		if got.Meta != nil && len(got.Meta.Profile) > 0 {
			profile = got.Meta.Profile[0]
		}
		if profile != c.profile || got.Action != c.action || got.Type.Code != c.code {
			t.Errorf("%s: profile %q action %q type %q, want %q %q %q", c.name, profile, got.Action, got.Type.Code, c.profile, c.action, c.code)
		}
		if c.breakGlass != (got.Meta != nil && len(got.Meta.Security) == 1 && got.Meta.Security[0].Code == "BTG") {
			t.Errorf("%s: break-glass label %+v", c.name, got.Meta)
		}
		if c.patient != "" && (len(got.Entity) == 0 || got.Entity[0].What.Reference != "Patient/"+c.patient) {
			t.Errorf("%s: the patient is not the first entity: %s", c.name, body)
		}
		if !strings.Contains(string(body), `"valueInteger":7`) {
			t.Errorf("%s: the record's index is not cited: %s", c.name, body)
		}
	}
}
