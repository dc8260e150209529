package consent_test

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/consent"
)

const (
	actReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	conf      = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	loinc     = "http://loinc.org"
	snomed    = "http://snomed.info/sct"
)

// at is the time of most decisions: within consent a1's life.
var at = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func mustParse(t testing.TB, body []byte) *consent.Consent {
	t.Helper()
	c, err := consent.Parse(body)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	return c
}

func fixture(t testing.TB, name string) *consent.Consent {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, b)
}

// built is a Consent made for a case: the fields that matter to it.
type built struct {
	id, version, status, patient, dateTime, scope string
	root                                          map[string]any
	policyRule                                    string
}

func (b built) consent(t testing.TB) *consent.Consent {
	t.Helper()
	m := map[string]any{
		"resourceType": "Consent", "id": b.id, "meta": map[string]any{"versionId": or(b.version, "1")},
		"status":  or(b.status, "active"),
		"scope":   map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": or(b.scope, "patient-privacy")}}},
		"patient": map[string]any{"reference": "Patient/" + or(b.patient, "p1")},
	}
	if b.dateTime != "" {
		m["dateTime"] = b.dateTime
	}
	if b.root != nil {
		m["provision"] = b.root
	}
	if b.policyRule != "" {
		m["policyRule"] = map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": b.policyRule}}}
	}
	raw, _ := json.Marshal(m)
	return mustParse(t, raw)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// actor is a provision actor by reference.
func actor(ref string) []any {
	return []any{map[string]any{"reference": map[string]any{"reference": ref}}}
}

// req builds a request: a read (access, disclose) at time at by
// Organization/who for purpose, of a resource.
func req(who, purpose string, res consent.Resource) consent.Request {
	return consent.Request{Actors: []string{who}, Purpose: purpose, Actions: []string{"access", "disclose"}, Resource: res, Time: at}
}

func obs(id string, extra ...func(*consent.Resource)) consent.Resource {
	r := consent.Resource{Type: "Observation", ID: id}
	for _, e := range extra {
		e(&r)
	}
	return r
}

func withLabel(system, code string) func(*consent.Resource) {
	return func(r *consent.Resource) { r.Labels = append(r.Labels, consent.Coding{System: system, Code: code}) }
}

func withCode(system, code string) func(*consent.Resource) {
	return func(r *consent.Resource) { r.Codes = append(r.Codes, consent.Coding{System: system, Code: code}) }
}

func withDates(start, end string) func(*consent.Resource) {
	return func(r *consent.Resource) {
		s, _ := time.Parse(time.DateOnly, start)
		e, _ := time.Parse(time.DateOnly, end)
		r.Dates = consent.Period{Start: s, End: e}
	}
}

func withRefs(refs ...string) func(*consent.Resource) {
	return func(r *consent.Resource) { r.References = append(r.References, refs...) }
}

func withAuthors(refs ...string) func(*consent.Resource) {
	return func(r *consent.Resource) {
		r.Authors = append(r.Authors, refs...)
		r.References = append(r.References, refs...)
	}
}

func withProfile(url string) func(*consent.Resource) {
	return func(r *consent.Resource) { r.Profiles = append(r.Profiles, url) }
}

func ofType(typ string) func(*consent.Resource) {
	return func(r *consent.Resource) { r.Type = typ }
}

// want is an expected decision: permit or not, by which consent version
// ("" for the default), and whether only break-glass permitted it.
type want struct {
	permit     bool
	consent    string
	breakGlass bool
}

type decisionCase struct {
	name string
	req  consent.Request
	want want
}

// policyCase is a decision case with a policy of its own.
type policyCase struct {
	name string
	p    *consent.Policy
	req  consent.Request
	want want
}

func runPolicies(t *testing.T, cases []policyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.Decide(&tc.req)
			if got.Permit != tc.want.permit || got.Consent != tc.want.consent || got.BreakGlass != tc.want.breakGlass {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func run(t *testing.T, p *consent.Policy, cases []decisionCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := p.Decide(&tc.req)
			if got.Permit != tc.want.permit || got.Consent != tc.want.consent || got.BreakGlass != tc.want.breakGlass {
				t.Fatalf("got permit=%v consent=%q breakGlass=%v (%s), want permit=%v consent=%q breakGlass=%v",
					got.Permit, got.Consent, got.BreakGlass, got.Reason, tc.want.permit, tc.want.consent, tc.want.breakGlass)
			}
			if got.Reason == "" {
				t.Fatal("a decision without a reason")
			}
		})
	}
}

// TestDecisionsOneConsent drives consent a1 (testdata/a1.json): a base
// deny with exceptions by actor, role, action, purpose, class, label,
// code, data period, data references, profile and period, three levels
// deep.
func TestDecisionsOneConsent(t *testing.T) {
	a1 := fixture(t, "a1.json")
	related := func(ref string) []string {
		if ref == "Encounter/e1" {
			return []string{"Observation/o-rel", "Patient/p1"}
		}
		return nil
	}
	p := consent.Compile("p1", []*consent.Consent{a1}, consent.Config{Default: consent.Permit}, related)
	const v = "Consent/a1/_history/3"
	permit, deny := want{true, v, false}, want{false, v, false}
	lab := func(r consent.Request) consent.Request {
		r.Roles = []consent.Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-RoleCode", Code: "lab"}}
		return r
	}
	cases := []decisionCase{
		// The root: everything else is denied, whatever the default.
		{"root denies a stranger", req("Organization/stranger", "TREAT", obs("o1")), deny},
		{"root denies the clinic for payment", req("Organization/clinic", "HPAYMT", obs("o1")), deny},
		{"root denies without a purpose", req("Organization/clinic", "", obs("o1")), deny},
		// Level 1: the clinic for treatment.
		{"clinic treatment permitted", req("Organization/clinic", "TREAT", obs("o1")), permit},
		{"clinic treatment of another type", req("Organization/clinic", "TREAT", obs("c1", ofType("Condition"))), permit},
		{"clinic care management (under TREAT)", req("Organization/clinic", "CAREMGT", obs("o1")), permit},
		{"clinic emergency treatment (under TREAT)", req("Organization/clinic", "ETREAT", obs("o1")), permit},
		{"purpose matched by code, system of the request left out", req("Organization/clinic", "TREAT", obs("o1")), permit},
		{"clinic research denied", req("Organization/clinic", "HRESCH", obs("o1")), deny},
		{"another clinic denied", req("Organization/clinic-2", "TREAT", obs("o1")), deny},
		// Level 2: restricted Observations are excepted.
		{"restricted observation denied to the clinic", req("Organization/clinic", "TREAT", obs("o1", withLabel(conf, "R"))), deny},
		{"restricted condition still permitted", req("Organization/clinic", "TREAT", obs("c1", ofType("Condition"), withLabel(conf, "R"))), permit},
		{"normal observation permitted", req("Organization/clinic", "TREAT", obs("o1", withLabel(conf, "N"))), permit},
		{"label of another system is not R", req("Organization/clinic", "TREAT", obs("o1", withLabel("urn:other", "R"))), permit},
		{"label without a system matches R", req("Organization/clinic", "TREAT", obs("o1", withLabel("", "R"))), deny},
		// Level 3: glucose is excepted from the exception.
		{"restricted glucose permitted (3rd level)", req("Organization/clinic", "TREAT", obs("o1", withLabel(conf, "R"), withCode(loinc, "2339-0"))), permit},
		{"restricted other code denied", req("Organization/clinic", "TREAT", obs("o1", withLabel(conf, "R"), withCode(loinc, "718-7"))), deny},
		{"glucose code of another system", req("Organization/clinic", "TREAT", obs("o1", withLabel(conf, "R"), withCode(snomed, "2339-0"))), deny},
		// Siblings at one depth: the HIV denial beats the clinic's permit.
		{"HIV code denied to the clinic", req("Organization/clinic", "TREAT", obs("o1", withCode(snomed, "86406008"))), deny},
		{"HIV code denied to the patient's request", req("Organization/clinic", "PATRQT", obs("o1", withCode(snomed, "86406008"))), deny},
		{"restricted HIV: the deeper exception decides", req("Organization/clinic", "TREAT", obs("o1", withLabel(conf, "R"), withCode(snomed, "86406008"), withCode(loinc, "2339-0"))), permit},
		// Roles and actions.
		{"lab role reads a report", lab(req("Organization/any-lab", "TREAT", obs("d1", ofType("DiagnosticReport")))), permit},
		{"lab role with another purpose", lab(req("Organization/any-lab", "HOPERAT", obs("d1", ofType("DiagnosticReport")))), permit},
		{"lab role reads an observation", lab(req("Organization/any-lab", "TREAT", obs("o1"))), deny},
		{"no lab role reads a report", req("Organization/any-lab", "TREAT", obs("d1", ofType("DiagnosticReport"))), deny},
		{"lab role only corrects a report", func() consent.Request {
			r := lab(req("Organization/any-lab", "TREAT", obs("d1", ofType("DiagnosticReport"))))
			r.Actions = []string{"correct"}
			return r
		}(), deny},
		{"role code of another system", func() consent.Request {
			r := req("Organization/any-lab", "TREAT", obs("d1", ofType("DiagnosticReport")))
			r.Roles = []consent.Coding{{System: "urn:other-roles", Code: "lab"}}
			return r
		}(), deny},
		{"a caller acting for several parties, one of them the clinic", func() consent.Request {
			r := req("Practitioner/7", "TREAT", obs("o1"))
			r.Actors = append(r.Actors, "Organization/clinic")
			return r
		}(), permit},
		{"role code given without a system", func() consent.Request {
			r := req("Organization/any-lab", "TREAT", obs("d1", ofType("DiagnosticReport")))
			r.Roles = []consent.Coding{{Code: "lab"}}
			return r
		}(), permit},
		// The patient's own request.
		{"patient request permitted to anyone", req("Organization/stranger", "PATRQT", obs("o1")), permit},
		{"family request (under PATRQT)", req("Organization/stranger", "FAMRQT", obs("o1")), permit},
		// Data period.
		{"registry, data of 2020", req("Organization/registry", "PUBHLTH", obs("o1", withDates("2020-05-01", "2020-05-02"))), permit},
		{"registry, data overlapping the end", req("Organization/registry", "PUBHLTH", obs("o1", withDates("2021-12-31", "2022-01-02"))), permit},
		{"registry, data of 2023", req("Organization/registry", "PUBHLTH", obs("o1", withDates("2023-01-01", "2023-01-02"))), deny},
		{"registry, data of 2019", req("Organization/registry", "PUBHLTH", obs("o1", withDates("2019-06-01", "2019-06-02"))), deny},
		{"registry, data spanning the whole period", req("Organization/registry", "PUBHLTH", obs("o1", withDates("2019-06-01", "2023-06-02"))), permit},
		{"registry, data without a date", req("Organization/registry", "PUBHLTH", obs("o1")), deny},
		{"registry, disaster (under PUBHLTH)", req("Organization/registry", "DISASTER", obs("o1", withDates("2020-05-01", "2020-05-02"))), permit},
		{"registry for treatment", req("Organization/registry", "TREAT", obs("o1", withDates("2020-05-01", "2020-05-02"))), deny},
		// Data references and their meanings.
		{"instance: the resource itself", req("Organization/partner", "TREAT", obs("shared-1")), permit},
		{"instance: another resource", req("Organization/partner", "TREAT", obs("shared-2")), deny},
		{"instance: one referring to it", req("Organization/partner", "TREAT", obs("o9", withRefs("Observation/shared-1"))), deny},
		{"dependents: the report itself", req("Organization/partner2", "TREAT", obs("dr1", ofType("DiagnosticReport"))), permit},
		{"dependents: a resource referring to it", req("Organization/partner2", "TREAT", obs("o2", withRefs("DiagnosticReport/dr1"))), permit},
		{"dependents: an unrelated resource", req("Organization/partner2", "TREAT", obs("o2", withRefs("DiagnosticReport/dr2"))), deny},
		{"authoredby: authored by the practitioner", req("Organization/partner3", "TREAT", obs("o3", withAuthors("Practitioner/author1"))), permit},
		{"authoredby: merely referring to them", req("Organization/partner3", "TREAT", obs("o3", withRefs("Practitioner/author1"))), deny},
		{"related: the encounter itself", req("Organization/partner4", "TREAT", obs("e1", ofType("Encounter"))), permit},
		{"related: what the encounter refers to", req("Organization/partner4", "TREAT", obs("o-rel")), permit},
		{"related: not referred to", req("Organization/partner4", "TREAT", obs("o-other")), deny},
		// Class by profile.
		{"class by profile", req("Organization/partner5", "TREAT", obs("o5", withProfile("http://example.org/StructureDefinition/shared-obs"))), permit},
		{"class by another profile", req("Organization/partner5", "TREAT", obs("o5", withProfile("http://example.org/StructureDefinition/other"))), deny},
		// Provision period.
		{"temporary permit within its period", func() consent.Request {
			r := req("Organization/temp", "TREAT", obs("o1"))
			r.Time = time.Date(2024, 6, 15, 0, 0, 0, 0, time.UTC)
			return r
		}(), permit},
		{"temporary permit on its last day", func() consent.Request {
			r := req("Organization/temp", "TREAT", obs("o1"))
			r.Time = time.Date(2024, 6, 30, 23, 0, 0, 0, time.UTC)
			return r
		}(), permit},
		{"temporary permit after its period", func() consent.Request {
			r := req("Organization/temp", "TREAT", obs("o1"))
			r.Time = time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
			return r
		}(), deny},
		// Break-glass against this consent.
		{"break-glass overrides the root denial", func() consent.Request {
			r := req("Organization/ambulance", "ETREAT", obs("o1"))
			r.BreakGlass = true
			return r
		}(), want{true, v, true}},
		{"ETREAT without a reason is not break-glass", req("Organization/ambulance", "ETREAT", obs("o1")), deny},
		{"break-glass overrides the restricted exception", func() consent.Request {
			r := req("Organization/clinic", "ETREAT", obs("o1", withLabel(conf, "R")))
			r.BreakGlass = true
			return r
		}(), want{true, v, true}},
		{"the ER's emergency access is permitted outright", func() consent.Request {
			r := req("Organization/er", "ETREAT", obs("o1"))
			r.BreakGlass = true
			return r
		}(), permit},
		{"a denial naming ETREAT is not overridden", func() consent.Request {
			r := req("Organization/er", "ETREAT", obs("m1", ofType("MedicationRequest")))
			r.BreakGlass = true
			return r
		}(), deny},
	}
	run(t, p, cases)
}

// TestDecisionsSeveralConsents checks which consents apply and which of
// them decides.
func TestDecisionsSeveralConsents(t *testing.T) {
	permitAll := map[string]any{"type": "permit"}
	onlyFor := func(typ, who string) map[string]any { return map[string]any{"type": typ, "actor": actor(who)} }
	consents := []*consent.Consent{
		built{id: "old", dateTime: "2023-01-01", root: permitAll}.consent(t),
		built{id: "new", dateTime: "2024-01-01", root: onlyFor("deny", "Organization/blocked")}.consent(t),
		built{id: "draft", status: "draft", dateTime: "2025-01-01", root: onlyFor("permit", "Organization/blocked")}.consent(t),
		built{id: "proposed", status: "proposed", dateTime: "2025-01-01", root: onlyFor("permit", "Organization/blocked")}.consent(t),
		built{id: "inactive", status: "inactive", dateTime: "2025-01-01", root: onlyFor("permit", "Organization/blocked")}.consent(t),
		built{id: "rejected", status: "rejected", dateTime: "2025-01-01", root: onlyFor("permit", "Organization/blocked")}.consent(t),
		built{id: "error", status: "entered-in-error", dateTime: "2025-01-01", root: onlyFor("permit", "Organization/blocked")}.consent(t),
		built{id: "expired", dateTime: "2025-01-01", root: map[string]any{"type": "permit", "actor": actor("Organization/blocked"),
			"period": map[string]any{"start": "2020-01-01", "end": "2021-01-01"}}}.consent(t),
		built{id: "future", dateTime: "2025-01-01", root: map[string]any{"type": "permit", "actor": actor("Organization/blocked"),
			"period": map[string]any{"start": "2030-01-01"}}}.consent(t),
		built{id: "other-patient", patient: "p2", dateTime: "2025-01-01", root: onlyFor("permit", "Organization/blocked")}.consent(t),
		built{id: "research", scope: "research", dateTime: "2025-01-01", root: onlyFor("permit", "Organization/blocked")}.consent(t),
		built{id: "treatment-scope", scope: "treatment", dateTime: "2025-01-01", root: onlyFor("deny", "Organization/friend")}.consent(t),
		built{id: "newest-friend", dateTime: "2024-02-01", root: onlyFor("deny", "Organization/friend")}.consent(t),
		built{id: "newer-friend", version: "2", dateTime: "2024-03-01", root: onlyFor("permit", "Organization/friend")}.consent(t),
	}
	p := consent.Compile("p1", consents, consent.Config{}, nil)
	// Compiled: the active patient-privacy consents of p1 (old, new,
	// expired, future, newest-friend, newer-friend); periods are checked
	// at each decision.
	if p.Consents() != 6 {
		t.Fatalf("%d consents compiled, want 6", p.Consents())
	}
	run(t, p, []decisionCase{
		{"newer consent denies the blocked organisation", req("Organization/blocked", "TREAT", obs("o1")), want{false, "Consent/new/_history/1", false}},
		{"older consent permits others", req("Organization/someone", "TREAT", obs("o1")), want{true, "Consent/old/_history/1", false}},
		{"draft, inactive, rejected, in error, expired, future, other patient's and other scopes' consents do not decide", req("Organization/blocked", "HOPERAT", obs("o1")), want{false, "Consent/new/_history/1", false}},
		{"of two that apply, the newest decides", req("Organization/friend", "TREAT", obs("o1")), want{true, "Consent/newer-friend/_history/2", false}},
		{"in the expired consent's time it applied", func() consent.Request {
			r := req("Organization/blocked", "TREAT", obs("o1"))
			r.Time = time.Date(2020, 6, 1, 0, 0, 0, 0, time.UTC)
			return r
		}(), want{true, "Consent/expired/_history/1", false}},
	})
}

// TestDecisionsDefaults checks the configured default and the
// jurisdiction's explicit purposes.
func TestDecisionsDefaults(t *testing.T) {
	none := []*consent.Consent{}
	optIn := consent.Compile("p1", none, consent.Config{}, nil)
	optInDeny := consent.Compile("p1", none, consent.Config{Default: consent.Deny}, nil)
	optOut := consent.Compile("p1", none, consent.Config{Default: consent.Permit}, nil)
	research := consent.Config{Default: consent.Permit, ExplicitPurposes: []string{"HRESCH"}}
	optOutResearch := consent.Compile("p1", none, research, nil)
	permitAll := built{id: "all", dateTime: "2024-01-01", root: map[string]any{"type": "permit"}}.consent(t)
	permitResearch := built{id: "study", dateTime: "2024-01-01", root: map[string]any{"type": "deny", "provision": []any{
		map[string]any{"type": "permit", "purpose": []any{map[string]any{"system": actReason, "code": "HRESCH"}}, "actor": actor("Organization/uni")},
	}}}.consent(t)
	permitClinical := built{id: "trial", dateTime: "2024-01-01", root: map[string]any{"type": "permit", "purpose": []any{map[string]any{"code": "CLINTRCH"}}}}.consent(t)
	withAll := consent.Compile("p1", []*consent.Consent{permitAll}, research, nil)
	withStudy := consent.Compile("p1", []*consent.Consent{permitResearch}, research, nil)
	withTrial := consent.Compile("p1", []*consent.Consent{permitClinical}, research, nil)
	optInRule := consent.Compile("p1", []*consent.Consent{built{id: "rule", policyRule: "OPTIN", root: map[string]any{"actor": actor("Organization/x")}}.consent(t)}, consent.Config{}, nil)
	bg := func(r consent.Request) consent.Request { r.BreakGlass = true; return r }
	runPolicies(t, []policyCase{
		{"opt-in (zero config) without consents denies", optIn, req("Organization/a", "TREAT", obs("o1")), want{false, "", false}},
		{"opt-in without consents denies", optInDeny, req("Organization/a", "TREAT", obs("o1")), want{false, "", false}},
		{"opt-out without consents permits", optOut, req("Organization/a", "TREAT", obs("o1")), want{true, "", false}},
		{"opt-out: research needs an explicit permit", optOutResearch, req("Organization/uni", "HRESCH", obs("o1")), want{false, "", false}},
		{"opt-out: biomedical research (under HRESCH) too", optOutResearch, req("Organization/uni", "BIORCH", obs("o1")), want{false, "", false}},
		{"opt-out: treatment needs none", optOutResearch, req("Organization/a", "TREAT", obs("o1")), want{true, "", false}},
		{"a permit of everything is not explicit for research", withAll, req("Organization/uni", "HRESCH", obs("o1")), want{false, "Consent/all/_history/1", false}},
		{"a permit of everything for treatment", withAll, req("Organization/a", "TREAT", obs("o1")), want{true, "Consent/all/_history/1", false}},
		{"an explicit research permit", withStudy, req("Organization/uni", "HRESCH", obs("o1")), want{true, "Consent/study/_history/1", false}},
		{"an explicit research permit covers its specialisations", withStudy, req("Organization/uni", "DSRCH", obs("o1")), want{true, "Consent/study/_history/1", false}},
		{"an explicit research permit for another actor", withStudy, req("Organization/pharma", "HRESCH", obs("o1")), want{false, "Consent/study/_history/1", false}},
		{"a clinical trial permit is explicit for clinical trials", withTrial, req("Organization/uni", "CLINTRCH", obs("o1")), want{true, "Consent/trial/_history/1", false}},
		{"a clinical trial permit does not cover all research", withTrial, req("Organization/uni", "HRESCH", obs("o1")), want{false, "", false}},
		{"break-glass overrides the opt-in default", optIn, bg(req("Organization/er", "ETREAT", obs("o1"))), want{true, "", true}},
		{"break-glass is not needed under opt-out", optOut, bg(req("Organization/er", "ETREAT", obs("o1"))), want{true, "", false}},
		{"policy rule OPTIN without a root type permits", optInRule, req("Organization/x", "TREAT", obs("o1")), want{true, "Consent/rule/_history/1", false}},
		{"policy rule consent for others: default", optInRule, req("Organization/y", "TREAT", obs("o1")), want{false, "", false}},
	})
}

func TestParseRefuses(t *testing.T) {
	deep := `{"type":"permit"}`
	for range 40 {
		deep = `{"type":"permit","provision":[` + deep + `]}`
	}
	for name, body := range map[string]string{
		"not JSON":          `{`,
		"another resource":  `{"resourceType":"Patient","id":"x"}`,
		"unknown type":      `{"resourceType":"Consent","status":"active","provision":{"type":"maybe"}}`,
		"root without type": `{"resourceType":"Consent","status":"active","provision":{"actor":[]}}`,
		"bad period":        `{"resourceType":"Consent","status":"active","provision":{"type":"deny","period":{"start":"yesterday"}}}`,
		"bad dateTime":      `{"resourceType":"Consent","status":"active","dateTime":"2024-13-45","provision":{"type":"deny"}}`,
		"unknown meaning":   `{"resourceType":"Consent","status":"active","provision":{"type":"deny","data":[{"meaning":"all","reference":{"reference":"Patient/p1"}}]}}`,
		"data without ref":  `{"resourceType":"Consent","status":"active","provision":{"type":"deny","data":[{"meaning":"instance"}]}}`,
		"nested too deep":   `{"resourceType":"Consent","status":"active","provision":` + deep + `}`,
	} {
		if _, err := consent.Parse([]byte(body)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	c, err := consent.Parse([]byte(`{"resourceType":"Consent","id":"c","meta":{"versionId":"4","lastUpdated":"2024-02-03T04:05:06Z"},"status":"active",` +
		`"scope":{"coding":[{"code":"patient-privacy"}]},"patient":{"reference":"Patient/p1"}}`))
	if err != nil || c.Root != nil || c.Ref() != "Consent/c/_history/4" || !c.PatientPrivacy || c.Patient != "p1" ||
		!c.Time.Equal(time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)) {
		t.Fatalf("%+v %v", c, err)
	}
}

// TestDecisionsRedaction checks the provider's redacted labels: data
// carrying one is left out of a permit unless a provision on the way
// names the label.
func TestDecisionsRedaction(t *testing.T) {
	cfg := consent.Config{Default: consent.Permit, Redact: []consent.Coding{{System: conf, Code: "R"}, {System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "HIV"}}}
	none := consent.Compile("p1", nil, cfg, nil)
	all := consent.Compile("p1", []*consent.Consent{built{id: "all", dateTime: "2024-01-01", root: map[string]any{"type": "permit"}}.consent(t)}, cfg, nil)
	sensitive := consent.Compile("p1", []*consent.Consent{built{id: "sens", dateTime: "2024-01-01", root: map[string]any{"type": "permit", "provision": []any{
		map[string]any{"type": "permit", "actor": actor("Organization/clinic"), "securityLabel": []any{map[string]any{"system": conf, "code": "R"}}},
	}}}.consent(t)}, cfg, nil)
	bg := func(r consent.Request) consent.Request { r.BreakGlass = true; return r }
	runPolicies(t, []policyCase{
		{"unlabelled data under the default", none, req("Organization/a", "TREAT", obs("o1")), want{true, "", false}},
		{"restricted data under the default", none, req("Organization/a", "TREAT", obs("o1", withLabel(conf, "R"))), want{false, "", false}},
		{"HIV data, label given without a system", none, req("Organization/a", "TREAT", obs("o1", withLabel("", "HIV"))), want{false, "", false}},
		{"a normal label is not redacted", none, req("Organization/a", "TREAT", obs("o1", withLabel(conf, "N"))), want{true, "", false}},
		{"a consent that permits everything does not speak of R", all, req("Organization/a", "TREAT", obs("o1", withLabel(conf, "R"))), want{false, "Consent/all/_history/1", false}},
		{"a consent naming R permits it to the clinic", sensitive, req("Organization/clinic", "TREAT", obs("o1", withLabel(conf, "R"))), want{true, "Consent/sens/_history/1", false}},
		{"the same consent, another organisation", sensitive, req("Organization/a", "TREAT", obs("o1", withLabel(conf, "R"))), want{false, "Consent/sens/_history/1", false}},
		{"break-glass overrides a redaction", none, bg(req("Organization/er", "ETREAT", obs("o1", withLabel(conf, "R")))), want{true, "", true}},
	})
}
