package auth_test

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ehrledger/ehrledger/auth"
)

const labCategory = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"

func TestParseScope(t *testing.T) {
	type want struct {
		ctx   auth.Context
		typ   string
		perms string
		query url.Values
	}
	cases := []struct {
		in       string
		want     want
		resource bool // a resource scope is expected
		bad      bool // a malformed resource scope is expected
	}{
		// SMART v2.
		{in: "patient/Observation.rs", resource: true, want: want{auth.Patient, "Observation", "rs", nil}},
		{in: "user/*.cruds", resource: true, want: want{auth.User, "*", "cruds", nil}},
		{in: "system/*.rs", resource: true, want: want{auth.System, "*", "rs", nil}},
		{in: "user/Observation.r", resource: true, want: want{auth.User, "Observation", "r", nil}},
		{in: "user/Observation.cu", resource: true, want: want{auth.User, "Observation", "cu", nil}},
		{in: "user/Observation.s", resource: true, want: want{auth.User, "Observation", "s", nil}},
		{in: "system/Patient.cd", resource: true, want: want{auth.System, "Patient", "cd", nil}},
		{in: "patient/MedicationRequest.crus", resource: true, want: want{auth.Patient, "MedicationRequest", "crus", nil}},
		// SMART v1.
		{in: "patient/*.read", resource: true, want: want{auth.Patient, "*", "rs", nil}},
		{in: "user/Patient.write", resource: true, want: want{auth.User, "Patient", "cud", nil}},
		{in: "system/*.*", resource: true, want: want{auth.System, "*", "cruds", nil}},
		{in: "patient/Observation.*", resource: true, want: want{auth.Patient, "Observation", "cruds", nil}},
		// Query constraints.
		{in: "patient/Observation.rs?category=" + labCategory, resource: true,
			want: want{auth.Patient, "Observation", "rs", url.Values{"category": {labCategory}}}},
		{in: "user/Observation.rs?category=a&code=b", resource: true,
			want: want{auth.User, "Observation", "rs", url.Values{"category": {"a"}, "code": {"b"}}}},
		{in: "user/Observation.rs?code=http%3A%2F%2Floinc.org%7C1234-5", resource: true,
			want: want{auth.User, "Observation", "rs", url.Values{"code": {"http://loinc.org|1234-5"}}}},
		{in: "user/Observation.rs?category=a&category=b&", resource: true,
			want: want{auth.User, "Observation", "rs", url.Values{"category": {"a", "b"}}}},
		{in: "patient/*.read?category=a", resource: true,
			want: want{auth.Patient, "*", "rs", url.Values{"category": {"a"}}}},
		// Non-resource scopes.
		{in: "openid"},
		{in: "fhirUser"},
		{in: "launch"},
		{in: "launch/patient"},
		{in: "launch/encounter"},
		{in: "offline_access"},
		{in: "online_access"},
		{in: "something-unknown"},
		{in: "https://example.org/custom.read"},
		// Malformed resource scopes.
		{in: "patient/Observation.sr", bad: true},
		{in: "patient/Observation.rr", bad: true},
		{in: "patient/Observation.dus", bad: true},
		{in: "user/*.crudss", bad: true},
		{in: "patient/Observation.x", bad: true},
		{in: "patient/Observation.reads", bad: true},
		{in: "patient/*.READ", bad: true},
		{in: "patient/Observation.", bad: true},
		{in: "patient/Observation", bad: true},
		{in: "patient/observation.rs", bad: true},
		{in: "patient/Obs-ervation.rs", bad: true},
		{in: "patient/.rs", bad: true},
		{in: "patient/**.rs", bad: true},
		{in: "Patient/*.read", bad: true},
		{in: "practitioner/Observation.rs", bad: true},
		{in: "patient/Observation.rs?", bad: true},
		{in: "patient/Observation.rs?category", bad: true},
		{in: "patient/Observation.rs?=x", bad: true},
		{in: "patient/Observation.rs?category=", bad: true},
		{in: "patient/Observation.rs?category=%zz", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := auth.ParseScope(tc.in)
			if tc.bad {
				if !errors.Is(err, auth.ErrMalformedScope) {
					t.Fatalf("ParseScope(%q) = %+v, %v; want ErrMalformedScope", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tc.in, err)
			}
			if got.Raw != tc.in {
				t.Errorf("Raw = %q, want %q", got.Raw, tc.in)
			}
			if got.IsResource() != tc.resource {
				t.Fatalf("IsResource = %v, want %v (%+v)", got.IsResource(), tc.resource, got)
			}
			if !tc.resource {
				if got.Context != "" || got.Type != "" || got.Perms != 0 || got.Query != nil {
					t.Errorf("non-resource scope has resource fields: %+v", got)
				}
				return
			}
			if got.Context != tc.want.ctx || got.Type != tc.want.typ || got.Perms.String() != tc.want.perms {
				t.Errorf("got %s/%s.%s, want %s/%s.%s", got.Context, got.Type, got.Perms, tc.want.ctx, tc.want.typ, tc.want.perms)
			}
			if !reflect.DeepEqual(got.Query, tc.want.query) {
				t.Errorf("Query = %v, want %v", got.Query, tc.want.query)
			}
		})
	}
}

func TestParseScopesKeepsOrderAndReportsIgnored(t *testing.T) {
	in := "openid  fhirUser patient/Observation.sr\tlaunch/patient patient/*.read Patient/*.read user/Observation.rs?category=x offline_access"
	scopes, ignored := auth.ParseScopes(in)
	var got []string
	for _, s := range scopes {
		got = append(got, s.String())
	}
	want := []string{"openid", "fhirUser", "launch/patient", "patient/*.rs", "user/Observation.rs?category=x", "offline_access"}
	if !slices.Equal(got, want) {
		t.Errorf("scopes = %q, want %q", got, want)
	}
	if wantIgn := []string{"patient/Observation.sr", "Patient/*.read"}; !slices.Equal(ignored, wantIgn) {
		t.Errorf("ignored = %q, want %q", ignored, wantIgn)
	}
	if !scopes.Contains("launch/patient") || scopes.Contains("launch") || scopes.Contains("patient/Observation.sr") {
		t.Error("Contains answers wrongly")
	}
	if s, ign := auth.ParseScopes(""); s != nil || ign != nil {
		t.Errorf("ParseScopes(\"\") = %v, %v", s, ign)
	}
}

func TestPermsString(t *testing.T) {
	if got := auth.PermAll.String(); got != "cruds" {
		t.Errorf("PermAll = %q", got)
	}
	if got := (auth.PermSearch | auth.PermCreate).String(); got != "cs" {
		t.Errorf("c|s = %q", got)
	}
	if auth.PermAll.Has(0) || !auth.PermAll.Has(auth.PermRead|auth.PermDelete) || auth.PermRead.Has(auth.PermRead|auth.PermSearch) {
		t.Error("Has answers wrongly")
	}
}

// TestInteractionLetters checks each interaction against each single-letter
// scope: exactly the documented letter allows it, and Operation is never
// allowed.
func TestInteractionLetters(t *testing.T) {
	letter := map[auth.Interaction]string{
		auth.Create:            "c",
		auth.Read:              "r",
		auth.VRead:             "r",
		auth.HistoryInstance:   "r",
		auth.Update:            "u",
		auth.Patch:             "u",
		auth.Delete:            "d",
		auth.SearchType:        "s",
		auth.SearchSystem:      "s",
		auth.SearchCompartment: "s",
		auth.HistoryType:       "s",
		auth.HistorySystem:     "s",
		auth.Operation:         "",
	}
	for in, want := range letter {
		for _, l := range []string{"c", "r", "u", "d", "s"} {
			scopes, _ := auth.ParseScopes("user/*." + l)
			_, ok := scopes.Allow("Observation", in)
			if ok != (l == want) {
				t.Errorf("user/*.%s allows %s = %v, want %v", l, in, ok, l == want)
			}
		}
		all, _ := auth.ParseScopes("system/*.cruds")
		if _, ok := all.Allow("Observation", in); ok != (want != "") {
			t.Errorf("system/*.cruds allows %s = %v", in, ok)
		}
	}
	if auth.Interaction(99).Perm() != 0 || auth.Operation.Perm() != 0 {
		t.Error("unknown interaction has a permission")
	}
	if auth.SearchType.String() != "search-type" || auth.Interaction(0).String() != "unknown" {
		t.Error("Interaction.String answers wrongly")
	}
}

// rules renders a grant as "context" or "context?query" strings.
func rules(g auth.Grant) []string {
	var out []string
	for _, r := range g.Rules {
		s := string(r.Context)
		if r.Query != nil {
			s += "?" + r.Query.Encode()
		}
		out = append(out, s)
	}
	return out
}

func TestAllow(t *testing.T) {
	cases := []struct {
		name                   string
		scopes                 string
		typ                    string
		in                     auth.Interaction
		want                   []string // nil: not allowed
		patOnly, unconstrained bool
	}{
		{name: "patient read", scopes: "patient/Observation.rs", typ: "Observation", in: auth.Read,
			want: []string{"patient"}, patOnly: true},
		{name: "patient search", scopes: "patient/Observation.rs", typ: "Observation", in: auth.SearchType,
			want: []string{"patient"}, patOnly: true},
		{name: "patient no create", scopes: "patient/Observation.rs", typ: "Observation", in: auth.Create},
		{name: "other type", scopes: "patient/Observation.rs", typ: "Condition", in: auth.Read},
		{name: "type is case-sensitive", scopes: "patient/Observation.rs", typ: "observation", in: auth.Read},
		{name: "patient wildcard", scopes: "patient/*.rs", typ: "Condition", in: auth.SearchCompartment,
			want: []string{"patient"}, patOnly: true},
		{name: "v1 read is rs", scopes: "user/*.read", typ: "Condition", in: auth.HistoryType,
			want: []string{"user"}, unconstrained: true},
		{name: "v1 read no update", scopes: "user/*.read", typ: "Condition", in: auth.Update},
		{name: "v1 write update", scopes: "user/Patient.write", typ: "Patient", in: auth.Patch,
			want: []string{"user"}, unconstrained: true},
		{name: "v1 write no read", scopes: "user/Patient.write", typ: "Patient", in: auth.Read},
		{name: "system wildcard on system search", scopes: "system/*.rs", typ: "*", in: auth.SearchSystem,
			want: []string{"system"}, unconstrained: true},
		{name: "typed scope not on system search", scopes: "system/Observation.rs", typ: "*", in: auth.SearchSystem},
		{name: "empty type is all types", scopes: "system/Observation.rs", typ: "", in: auth.HistorySystem},
		{name: "operation never", scopes: "system/*.cruds", typ: "Patient", in: auth.Operation},
		{name: "non-resource scopes grant nothing", scopes: "openid fhirUser launch/patient offline_access", typ: "Patient", in: auth.Read},
		{name: "malformed scope grants nothing", scopes: "patient/Observation.sr user/Observation.rr", typ: "Observation", in: auth.SearchType},
		{name: "user wins over patient", scopes: "patient/Observation.rs user/*.cruds", typ: "Observation", in: auth.Read,
			want: []string{"user"}, unconstrained: true},
		{name: "system wins over patient", scopes: "patient/*.rs system/Observation.r", typ: "Observation", in: auth.VRead,
			want: []string{"system"}, unconstrained: true},
		{name: "patient only for what user lacks", scopes: "patient/Observation.rs user/Observation.c", typ: "Observation", in: auth.Read,
			want: []string{"patient"}, patOnly: true},
		{name: "user for what patient lacks", scopes: "patient/Observation.rs user/Observation.c", typ: "Observation", in: auth.Create,
			want: []string{"user"}, unconstrained: true},
		{name: "two constraints any-of", scopes: "patient/Observation.rs?category=lab patient/Observation.rs?category=vital-signs",
			typ: "Observation", in: auth.SearchType,
			want: []string{"patient?category=lab", "patient?category=vital-signs"}, patOnly: true},
		{name: "unconstrained absorbs constrained", scopes: "patient/Observation.rs?category=lab patient/Observation.rs",
			typ: "Observation", in: auth.Read, want: []string{"patient"}, patOnly: true},
		{name: "wildcard unconstrained absorbs", scopes: "user/Observation.rs?category=lab user/*.r",
			typ: "Observation", in: auth.Read, want: []string{"user"}, unconstrained: true},
		{name: "constraint only on one letter", scopes: "user/Observation.r?category=lab user/Observation.s",
			typ: "Observation", in: auth.SearchType, want: []string{"user"}, unconstrained: true},
		{name: "constraint only on one letter, read", scopes: "user/Observation.r?category=lab user/Observation.s",
			typ: "Observation", in: auth.Read, want: []string{"user?category=lab"}},
		{name: "constrained user and unconstrained patient both kept", scopes: "patient/Observation.rs user/Observation.rs?category=lab",
			typ: "Observation", in: auth.Read, want: []string{"user?category=lab", "patient"}},
		{name: "user covers patient with same constraint", scopes: "patient/Observation.rs?category=lab user/Observation.rs?category=lab",
			typ: "Observation", in: auth.Read, want: []string{"user?category=lab"}},
		{name: "user covers narrower patient", scopes: "patient/Observation.rs?category=lab&code=x user/Observation.rs?category=lab",
			typ: "Observation", in: auth.Read, want: []string{"user?category=lab"}},
		{name: "narrower user does not cover patient", scopes: "patient/Observation.rs?category=lab user/Observation.rs?category=lab&code=x",
			typ: "Observation", in: auth.Read, want: []string{"user?category=lab&code=x", "patient?category=lab"}},
		{name: "patient never covers user", scopes: "user/Observation.rs?category=lab&code=x patient/Observation.rs",
			typ: "Observation", in: auth.Read, want: []string{"user?category=lab&code=x", "patient"}},
		{name: "duplicates merge", scopes: "user/Observation.rs?category=lab user/Observation.r?category=lab",
			typ: "Observation", in: auth.Read, want: []string{"user?category=lab"}},
		{name: "user and system equal keeps first", scopes: "system/*.read user/*.read",
			typ: "Observation", in: auth.Read, want: []string{"system"}, unconstrained: true},
		{name: "repeated parameter is narrower", scopes: "user/Observation.rs?category=a&category=b user/Observation.rs?category=a",
			typ: "Observation", in: auth.Read, want: []string{"user?category=a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scopes, _ := auth.ParseScopes(tc.scopes)
			g, ok := scopes.Allow(tc.typ, tc.in)
			if ok != (tc.want != nil) {
				t.Fatalf("Allow(%q, %s) ok = %v, want %v (rules %q)", tc.typ, tc.in, ok, tc.want != nil, rules(g))
			}
			if !ok {
				if len(g.Rules) != 0 {
					t.Errorf("refused grant has rules %q", rules(g))
				}
				return
			}
			if got := rules(g); !slices.Equal(got, tc.want) {
				t.Errorf("rules = %q, want %q", got, tc.want)
			}
			if g.PatientOnly() != tc.patOnly {
				t.Errorf("PatientOnly = %v, want %v", g.PatientOnly(), tc.patOnly)
			}
			if g.Unconstrained() != tc.unconstrained {
				t.Errorf("Unconstrained = %v, want %v", g.Unconstrained(), tc.unconstrained)
			}
		})
	}
}

func TestGrantContexts(t *testing.T) {
	scopes, _ := auth.ParseScopes("system/Observation.rs?category=a user/Observation.rs?category=b patient/Observation.rs")
	g, ok := scopes.Allow("Observation", auth.Read)
	if !ok {
		t.Fatal("not allowed")
	}
	got := g.Contexts()
	if want := []auth.Context{auth.Patient, auth.User, auth.System}; !slices.Equal(got, want) {
		t.Errorf("Contexts = %v, want %v", got, want)
	}
	if (auth.Grant{}).PatientOnly() || (auth.Grant{}).Unconstrained() || (auth.Grant{}).Contexts() != nil {
		t.Error("empty grant grants something")
	}
}

func TestScopeString(t *testing.T) {
	s, err := auth.ParseScope("user/Observation.read?code=b&category=" + strings.ReplaceAll(labCategory, "|", "%7C"))
	if err != nil {
		t.Fatal(err)
	}
	want := "user/Observation.rs?category=" + url.QueryEscape(labCategory) + "&code=b"
	if s.String() != want {
		t.Errorf("String = %q, want %q", s.String(), want)
	}
}
