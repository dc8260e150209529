package auth

import "testing"

// FuzzParseScopes reads scope strings as tokens carry them: never a
// panic; every scope taken is a resource scope with at least one
// permission, or a known non-resource scope, and reads back as itself.
func FuzzParseScopes(f *testing.F) {
	for _, seed := range []string{"patient/*.rs", "user/Observation.cruds?category=laboratory", "system/*.*", "patient/Patient.read",
		"launch/patient openid fhirUser", "ehrledger/admin", "patient/Observation.rs?code=a&code=b", "system/.r", "patient/*.xyz", "?", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scopes, _ := ParseScopes(s)
		for _, sc := range scopes {
			if sc.IsResource() && sc.Perms == 0 {
				t.Fatalf("%q: a resource scope without permissions: %+v", s, sc)
			}
			again, ignored := ParseScopes(sc.String())
			if len(again) != 1 || len(ignored) != 0 || again[0].String() != sc.String() {
				t.Fatalf("%q: scope %q reads back as %v (ignored %v)", s, sc.String(), again, ignored)
			}
		}
	})
}
