package consent_test

import (
	"fmt"
	"testing"

	"github.com/ehrledger/ehrledger/consent"
)

// BenchmarkDecide measures decisions per second for a realistic policy of
// 20 provisions (a base deny, exceptions by organisation and purpose,
// nested exceptions by label and code, a data period, data references),
// against the floor: a policy with no consent, where the default decides.
//
//	go test -run - -bench Decide ./consent/
func BenchmarkDecide(b *testing.B) {
	var exceptions []any
	for i := range 12 {
		exceptions = append(exceptions, map[string]any{
			"type": "permit", "actor": actor(fmt.Sprintf("Organization/org-%d", i)),
			"purpose": []any{map[string]any{"system": actReason, "code": "TREAT"}},
		})
	}
	exceptions = append(exceptions,
		map[string]any{"type": "permit", "actor": actor("Organization/clinic"), "purpose": []any{map[string]any{"code": "TREAT"}},
			"provision": []any{map[string]any{"type": "deny", "securityLabel": []any{map[string]any{"system": conf, "code": "R"}},
				"provision": []any{map[string]any{"type": "permit", "code": []any{map[string]any{"coding": []any{map[string]any{"system": loinc, "code": "2339-0"}}}}}}}}},
		map[string]any{"type": "deny", "code": []any{map[string]any{"coding": []any{map[string]any{"system": snomed, "code": "86406008"}}}}},
		map[string]any{"type": "permit", "purpose": []any{map[string]any{"code": "PATRQT"}}},
		map[string]any{"type": "permit", "actor": actor("Organization/registry"), "dataPeriod": map[string]any{"start": "2020", "end": "2021"}},
		map[string]any{"type": "permit", "actor": actor("Organization/partner"), "data": []any{map[string]any{"meaning": "dependents", "reference": map[string]any{"reference": "DiagnosticReport/dr1"}}}},
	)
	c := built{id: "policy", dateTime: "2024-01-01", root: map[string]any{"type": "deny", "provision": exceptions}}.consent(b)
	p := consent.Compile("p1", []*consent.Consent{c}, consent.Config{ExplicitPurposes: []string{"HRESCH"}}, nil)
	floor := consent.Compile("p1", nil, consent.Config{}, nil)
	r := req("Organization/clinic", "TREAT", obs("o1", withLabel(conf, "R"), withCode(loinc, "2339-0"), withCode(loinc, "718-7"),
		withRefs("Patient/p1", "Encounter/e1", "Practitioner/7"), withDates("2024-02-01", "2024-02-02")))
	b.Run("floor: no consent", func(b *testing.B) {
		for b.Loop() {
			if floor.Decide(&r).Permit {
				b.Fatal("permitted")
			}
		}
	})
	b.Run("20 provisions, 3 levels", func(b *testing.B) {
		for b.Loop() {
			if !p.Decide(&r).Permit {
				b.Fatal("denied")
			}
		}
	})
}
