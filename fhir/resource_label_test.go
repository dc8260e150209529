package fhir

import "testing"

func TestAddSecurity(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		added          bool
	}{
		{"no meta", `{"resourceType":"Observation","status":"final"}`,
			`{"resourceType":"Observation","meta":{"security":[{"system":"s","code":"R"}]},"status":"final"}`, true},
		{"meta without labels", `{"resourceType":"Observation","meta":{"tag":[{"code":"t"}]}}`,
			`{"resourceType":"Observation","meta":{"tag":[{"code":"t"}],"security":[{"system":"s","code":"R"}]}}`, true},
		{"another label kept", `{"resourceType":"Observation","meta":{"security":[{"system":"s","code":"N","display":"normal"}]}}`,
			`{"resourceType":"Observation","meta":{"security":[{"system":"s","code":"N","display":"normal"},{"system":"s","code":"R"}]}}`, true},
		{"already labelled", `{"resourceType":"Observation","meta":{"security":[{"system":"s","code":"R"}]}}`,
			`{"resourceType":"Observation","meta":{"security":[{"system":"s","code":"R"}]}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse([]byte(tc.in), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got := r.AddSecurity("s", "R"); got != tc.added {
				t.Errorf("added %v, want %v", got, tc.added)
			}
			if got := string(r.Bytes()); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
