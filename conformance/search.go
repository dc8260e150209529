package conformance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
)

// searchCase is one search with the resources it must match.
type searchCase struct {
	query string   // path and query, {base} standing for the server's base URL
	want  []string // Type/id of the matches
	// ordered: the matches must come in exactly this order.
	ordered bool
	// include: the Type/id of the entries with search.mode include.
	include []string
	// total, when not nil, is the Bundle.total expected.
	total *int
	// status, when not 0, is the expected error status instead.
	status int
}

func n(i int) *int { return &i }

func ids(typ string, xs ...string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = typ + "/" + x
	}
	return out
}

func pats(xs ...string) []string {
	for i := range xs {
		xs[i] = "pat-" + xs[i]
	}
	return ids("Patient", xs...)
}

func obs(xs ...string) []string {
	for i := range xs {
		xs[i] = "obs-" + xs[i]
	}
	return ids("Observation", xs...)
}

// searchCases run over testdata/search/dataset.json; each comment
// says why the result is what it is.
var searchCases = []searchCase{
	// string: starts-with, case- and accent-insensitive, on every name part
	{query: "Patient?name=smith", want: pats("1", "3", "5")}, // Smith, Smith, given Smithy
	{query: "Patient?family=smith", want: pats("1", "3")},
	{query: "Patient?family=SMI", want: pats("1", "3")},
	{query: "Patient?family:exact=Smith", want: pats("1", "3")},
	{query: "Patient?family:exact=smith", want: nil},
	{query: "Patient?given=zoe", want: pats("2")},
	{query: "Patient?given=Zo%C3%AB", want: pats("2")},
	{query: "Patient?family=muller", want: pats("2")},
	{query: "Patient?family:exact=M%C3%BCller", want: pats("2")},
	{query: "Patient?family:exact=Muller", want: nil},
	// Patient names are stored as keyed blind indexes (docs/security.md):
	// exact and prefix matching work, :contains cannot.
	{query: "Patient?name:contains=ith", status: 400},
	{query: "Practitioner?family:contains=udd", want: ids("Practitioner", "prac-2")},
	{query: "Organization?name:contains=CLIN", want: ids("Organization", "org-2")},
	{query: "Patient?given=sean", want: pats("4")},
	{query: "Patient?family=o'brien", want: pats("4")},
	{query: "Patient?name=john", want: pats("1", "5")}, // John, Johnson
	{query: "Patient?given=john,anna", want: pats("1", "3")},
	{query: "Patient?family=smith&given=anna", want: pats("3")},
	{query: "Patient?address-city=boston", want: pats("1")},
	{query: "Patient?address-city=sao", want: pats("3")},
	{query: "Patient?address=ma", want: pats("1", "2")}, // state MA
	{query: "Patient?address-postalcode=021", want: pats("1", "2")},
	{query: "Patient?address-country=us", want: pats("1")},
	{query: "Organization?name=general", want: ids("Organization", "org-1")},
	{query: "Practitioner?name=gregory", want: ids("Practitioner", "prac-1")},
	{query: "ValueSet?name=vitals", want: ids("ValueSet", "vs-1")},
	{query: "Observation?value-string=amber", want: obs("8")},
	{query: "Observation?value-string=former", want: obs("6")}, // CodeableConcept.text
	{query: "Observation?value-string:exact=Amber%20and%20clear", want: obs("8")},

	// token
	{query: "Patient?gender=female", want: pats("2", "3")},
	{query: "Patient?gender=male,other", want: pats("1", "4")},
	{query: "Patient?gender:not=female", want: pats("1", "4", "5")},
	{query: "Patient?identifier=http://hospital.example.org/mrn|1001", want: pats("1")},
	{query: "Patient?identifier=1002", want: pats("2")},
	{query: "Patient?identifier=http://hospital.example.org/mrn|", want: pats("1", "2", "3")},
	{query: "Patient?identifier=|1001", want: nil},
	{query: "Patient?identifier=X9", want: pats("3")},
	{query: "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|X9", want: pats("3")},
	{query: "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|1003", want: nil},
	{query: "Patient?identifier:text=medical", want: pats("3")},
	{query: "Patient?active=true", want: pats("1")},
	{query: "Patient?active=false", want: pats("2")},
	{query: "Patient?active:missing=true", want: pats("3", "4", "5")},
	{query: "Patient?active:missing=false", want: pats("1", "2")},
	{query: "Patient?telecom=555-0101", want: pats("1")},
	{query: "Patient?phone=555-0102", want: pats("2")},
	{query: "Patient?email=john@example.org", want: pats("1")},
	{query: "Patient?phone=john@example.org", want: nil},
	{query: "Patient?telecom=email|john@example.org", want: pats("1")},
	{query: "Patient?deceased=true", want: pats("3")},
	{query: "Observation?code=http://loinc.org|8867-4", want: obs("1", "7")},
	{query: "Observation?code=8867-4", want: obs("1", "7")},
	{query: "Observation?code=http://loinc.org|2339-0,http://loinc.org|29463-7", want: obs("2", "3", "5")},
	{query: "Observation?code=http://snomed.info/sct|8867-4", want: nil},
	{query: "Observation?code:text=heart", want: obs("1", "7")},
	{query: "Observation?code:text=glucose", want: obs("3", "5")},
	{query: "Observation?category=vital-signs", want: obs("1", "2", "4")},
	{query: "Observation?category=laboratory&status=final", want: obs("8")},
	{query: "Observation?status=final,amended", want: obs("1", "2", "4", "5", "6", "8", "9")},
	{query: "Observation?status:not=final", want: obs("3", "5", "7")},
	{query: "Observation?value-concept=http://snomed.info/sct|8517006", want: obs("6")},
	{query: "Observation?component-code=8480-6", want: obs("4")},
	{query: "Observation?combo-code=8462-4", want: obs("4")},
	{query: "Observation?combo-code=8867-4", want: obs("1", "7")},
	{query: "Observation?data-absent-reason=not-performed", want: obs("7")},
	{query: "Observation?data-absent-reason:missing=false", want: obs("7")},
	{query: "Condition?clinical-status=active", want: ids("Condition", "cond-1", "cond-3")},
	{query: "Condition?code=http://snomed.info/sct|44054006", want: ids("Condition", "cond-1")},
	{query: "Condition?code:text=asthma", want: ids("Condition", "cond-3")},
	{query: "MedicationRequest?code=860975", want: ids("MedicationRequest", "mr-1")},
	{query: "AllergyIntolerance?criticality=high", want: ids("AllergyIntolerance", "ai-1")},
	{query: "Immunization?vaccine-code=http://hl7.org/fhir/sid/cvx|140", want: ids("Immunization", "imm-1")},
	{query: "Encounter?class=EMER", want: ids("Encounter", "enc-3")},
	{query: "Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB,IMP", want: ids("Encounter", "enc-1", "enc-2")},
	{query: "Group?actual=true", want: ids("Group", "grp-1")},
	{query: "Organization?type=prov", want: ids("Organization", "org-1")},
	{query: "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567890", want: ids("Practitioner", "prac-1")},

	// _id and meta
	{query: "Patient?_id=pat-1", want: pats("1")},
	{query: "Patient?_id=pat-1,pat-4,nope", want: pats("1", "4")},
	{query: "Patient?_id:not=pat-1", want: pats("2", "3", "4", "5")},
	{query: "Patient?_tag=http://example.org/tags|vip", want: pats("1")},
	{query: "Patient?_tag=vip", want: pats("1")},
	{query: "Patient?_tag:missing=true", want: pats("2", "3", "4", "5")},
	{query: "Patient?_profile=http://example.org/fhir/StructureDefinition/test-patient", want: pats("1")},
	{query: "Patient?_security=R", want: pats("2")},
	{query: "Patient?_source=http://example.org/source%23ehr-a", want: pats("1")},
	{query: "Patient?_lastUpdated=gt2000-01-01", want: pats("1", "2", "3", "4", "5")},
	{query: "Patient?_lastUpdated=lt2000-01-01", want: nil},

	// reference
	{query: "Observation?subject=Patient/pat-1", want: obs("1", "2", "5")},
	{query: "Observation?subject=pat-1", want: obs("1", "2", "5")},
	{query: "Observation?patient=pat-1", want: obs("1", "2", "5")},
	{query: "Observation?subject:Patient=pat-2", want: obs("3", "6")},
	{query: "Observation?patient=Patient/pat-1,Patient/pat-5", want: obs("1", "2", "5", "8", "9")},
	{query: "Observation?encounter=Encounter/enc-1", want: obs("1", "2")},
	{query: "Observation?subject={base}/Patient/pat-3", want: obs("4")},
	{query: "Observation?performer=Practitioner/prac-1", want: obs("1")},
	{query: "Observation?encounter:missing=true", want: obs("4", "5", "6", "7", "8", "9")},
	{query: "Patient?general-practitioner=Practitioner/prac-2", want: pats("3")},
	{query: "Patient?organization=org-1", want: pats("1", "2")},
	{query: "Organization?partof=Organization/org-1", want: ids("Organization", "org-2")},
	{query: "MedicationRequest?medication=Medication/med-1", want: ids("MedicationRequest", "mr-2")},
	{query: "DiagnosticReport?result=Observation/obs-3", want: ids("DiagnosticReport", "dr-1")},
	{query: "Provenance?target=Observation/obs-1", want: ids("Provenance", "prov-1")},
	{query: "Group?member=Patient/pat-3", want: ids("Group", "grp-1")},
	{query: "QuestionnaireResponse?questionnaire=http://example.org/fhir/Questionnaire/intake", want: ids("QuestionnaireResponse", "qr-1")},
	{query: "Encounter?practitioner=prac-1", want: ids("Encounter", "enc-1")},
	{query: "Encounter?participant=Practitioner/prac-1", want: ids("Encounter", "enc-1")},
	{query: "Encounter?service-provider=org-1", want: ids("Encounter", "enc-1")},

	// chaining
	{query: "Observation?subject:Patient.name=smith", want: obs("1", "2", "4", "5", "8", "9")},
	{query: "Observation?patient.family=muller", want: obs("3", "6")},
	{query: "Observation?patient.gender=female&code=2339-0", want: obs("3")},
	{query: "Encounter?subject:Patient.organization.name=general", want: ids("Encounter", "enc-1", "enc-2", "enc-3")},
	{query: "Observation?subject:Patient.organization.partof=Organization/org-1", want: obs("8", "9")},
	{query: "Observation?encounter.class=EMER", want: nil},
	{query: "Observation?encounter.status=finished", want: obs("1", "2")},
	{query: "DiagnosticReport?result.code=2339-0", want: ids("DiagnosticReport", "dr-1")},
	{query: "MedicationRequest?requester:Practitioner.name=house", want: ids("MedicationRequest", "mr-1")},
	{query: "Observation?subject.name=smith", status: http.StatusBadRequest}, // Patient or Location: ambiguous
	{query: "Observation?patient._lastUpdated=gt2000-01-01", want: obs("1", "2", "3", "4", "5", "6", "7", "8", "9")},
	{query: "Observation?patient._id=pat-2", want: obs("3", "6")},

	// reverse chaining
	{query: "Patient?_has:Observation:patient:code=2339-0", want: pats("1", "2")},
	{query: "Patient?_has:Observation:subject:status=cancelled", want: pats("4")},
	{query: "Patient?_has:Condition:subject:clinical-status=active", want: pats("1", "3")},
	{query: "Practitioner?_has:Encounter:practitioner:status=finished", want: ids("Practitioner", "prac-1")},
	{query: "Patient?_has:Observation:patient:_has:DiagnosticReport:result:status=final", want: pats("2")},
	{query: "Patient?_has:Observation:patient:code=2339-0&gender=female", want: pats("2")},
	{query: "Encounter?_has:Observation:encounter:code=29463-7", want: ids("Encounter", "enc-1")},
	{query: "Patient?_has:Observation:patient:_lastUpdated=lt2000-01-01", want: nil},
	{query: "Patient?_has:Observation:patient:_id=obs-8", want: pats("5")},

	// date: ranges implied by precision, each prefix as R4 defines it
	{query: "Patient?birthdate=1970-01-15", want: pats("1")},
	{query: "Patient?birthdate=1970", want: pats("1")},
	{query: "Patient?birthdate=1985", want: pats("2")},
	{query: "Patient?birthdate=1985-06-15", want: nil}, // a month is not within a day
	{query: "Patient?birthdate=ge1985", want: pats("2", "3", "5")},
	{query: "Patient?birthdate=lt1971", want: pats("1", "4")},
	{query: "Patient?birthdate=gt1990-02-28", want: pats("3")},
	{query: "Patient?birthdate=le1990-02-28", want: pats("1", "2", "4", "5")},
	{query: "Patient?birthdate=sa2000", want: pats("3")},
	{query: "Patient?birthdate=eb1960", want: pats("4")},
	{query: "Patient?birthdate=ne1970-01-15", want: pats("2", "3", "4", "5")},
	{query: "Patient?birthdate=ge1970&birthdate=lt1986", want: pats("1", "2")},
	{query: "Patient?birthdate:missing=true", want: nil},
	{query: "Patient?death-date=2020", want: pats("3")},
	{query: "Observation?date=2023-01-10", want: obs("1", "2")},
	{query: "Observation?date=2023", want: obs("1", "2", "3", "8")},
	{query: "Observation?date=gt2023-01-10", want: obs("3", "8")},
	{query: "Observation?date=lt2021-07-02", want: obs("5", "6")},
	{query: "Observation?date=2021-07-01", want: obs("5")}, // 12:00+02:00 is 10:00 UTC
	{query: "Observation?date=2021-07-01T12:00:00%2B02:00", want: obs("5")},
	{query: "Observation?date=ge2023-02-01T08:30:00Z", want: obs("3", "8")},
	{query: "Observation?date=sa2022-12-31", want: obs("1", "2", "3", "8")},
	{query: "Observation?date=eb2021", want: obs("6")},
	{query: "Observation?date:missing=true", want: obs("7", "9")},
	{query: "Encounter?date=2023-01-10", want: ids("Encounter", "enc-1")},
	{query: "Encounter?date=2023-01-01", want: nil}, // enc-3 starts the day before
	{query: "Encounter?date=ge2023-01-01", want: ids("Encounter", "enc-1", "enc-2")},
	{query: "Encounter?date=lt2023-01-01", want: ids("Encounter", "enc-3")},
	{query: "Condition?onset-date=2015-03-01", want: ids("Condition", "cond-1")},
	{query: "Condition?onset-date=2018", want: nil}, // the period runs into 2019
	{query: "Condition?onset-date=ap2018-06-01", want: ids("Condition", "cond-2")},
	{query: "Condition?recorded-date=2015-03-02", want: ids("Condition", "cond-1")},
	{query: "MedicationRequest?authoredon=ge2020", want: ids("MedicationRequest", "mr-1")},
	{query: "DiagnosticReport?issued=2023-02-01", want: ids("DiagnosticReport", "dr-1")},
	{query: "Observation?value-date=1990-02-28", want: obs("9")},

	// number: implicit precision ranges
	{query: "RiskAssessment?probability=0.25", want: ids("RiskAssessment", "ra-1")},
	{query: "RiskAssessment?probability=gt0.5", want: ids("RiskAssessment", "ra-2")},
	{query: "RiskAssessment?probability=0.3", want: ids("RiskAssessment", "ra-1")}, // [0.25, 0.35)
	{query: "RiskAssessment?probability=lt0.25", want: nil},
	{query: "RiskAssessment?probability=le0.25", want: ids("RiskAssessment", "ra-1")},
	{query: "RiskAssessment?probability=ap0.6", want: ids("RiskAssessment", "ra-2")},

	// quantity
	{query: "Observation?value-quantity=72", want: obs("1")},
	{query: "Observation?value-quantity=gt70", want: obs("1", "2")},
	{query: "Observation?value-quantity=5.4|http://unitsofmeasure.org|mmol/L", want: obs("3")},
	{query: "Observation?value-quantity=lt10|http://unitsofmeasure.org|mmol/L", want: obs("3", "5")},
	{query: "Observation?value-quantity=80.5||kg", want: obs("2")},
	{query: "Observation?value-quantity=80||kg", want: nil}, // [79.5, 80.5)
	{query: "Observation?value-quantity=ap75", want: obs("1", "2")},
	{query: "Observation?combo-value-quantity=120", want: obs("4")},
	{query: "Condition?onset-age=5||a", want: ids("Condition", "cond-3")},

	// uri
	{query: "ValueSet?url=http://example.org/fhir/ValueSet/vitals", want: ids("ValueSet", "vs-1")},
	{query: "ValueSet?url:below=http://example.org/fhir/ValueSet/vitals", want: ids("ValueSet", "vs-1", "vs-2")},
	{query: "ValueSet?url:below=http://example.org/fhir/ValueSet", want: ids("ValueSet", "vs-1", "vs-2", "vs-3")},
	{query: "ValueSet?url:above=http://example.org/fhir/ValueSet/vitals/adult/extra", want: ids("ValueSet", "vs-1", "vs-2")},
	{query: "ValueSet?url=http://example.org/fhir/ValueSet/vit", want: nil},

	// composite
	{query: "Observation?code-value-quantity=http://loinc.org|2339-0$gt6", want: obs("5")},
	{query: "Observation?code-value-quantity=2339-0$lt6", want: obs("3")},
	{query: "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100", want: obs("4")},
	{query: "Observation?component-code-value-quantity=8462-4$gt100", want: nil},
	{query: "Observation?code-value-concept=72166-2$http://snomed.info/sct|8517006", want: obs("6")},
	{query: "Observation?code-value-string=5778-6$amber", want: obs("8")},
	{query: "Observation?code-value-date=21112-8$1990", want: obs("9")},
	// three parts: a token and two numbers, each variant its own tuple
	{query: "MolecularSequence?chromosome-variant-coordinate=1$ge90$le110", want: ids("MolecularSequence", "ms-1")},
	{query: "MolecularSequence?chromosome-variant-coordinate=1$gt100$le110", want: nil}, // ms-1's variant starts at 100
	{query: "MolecularSequence?chromosome-variant-coordinate=2$200$205", want: ids("MolecularSequence", "ms-2")},
	{query: "MolecularSequence?chromosome-variant-coordinate=2$100$205", want: nil}, // not one variant's start and end
	{query: "MolecularSequence?referenceseqid-window-coordinate=http://www.ncbi.nlm.nih.gov/nuccore|NC_000001.11$le90$ge110", want: ids("MolecularSequence", "ms-1")},
	{query: "MolecularSequence?referenceseqid-window-coordinate=NC_000002.12$lt90$ge110", want: nil},

	// compartments
	{query: "Patient/pat-1/Observation", want: obs("1", "2", "5")},
	{query: "Patient/pat-1/Observation?code=2339-0", want: obs("5")},
	{query: "Patient/pat-2/Condition", want: ids("Condition", "cond-2")},
	{query: "Patient/pat-1/Encounter", want: ids("Encounter", "enc-1", "enc-3")},
	{query: "Patient/pat-3/AllergyIntolerance", want: ids("AllergyIntolerance", "ai-1")},
	{query: "Patient/pat-1/Patient", want: pats("1")},
	{query: "Patient/pat-1/MedicationRequest", want: ids("MedicationRequest", "mr-1")},
	{query: "Patient/pat-1/Group", want: ids("Group", "grp-1")},
	{query: "Patient/pat-1/Organization", status: http.StatusNotFound},

	// sorting (several keys, descending, missing last) and totals
	{query: "Patient?_sort=birthdate", want: pats("4", "1", "2", "5", "3"), ordered: true},
	{query: "Patient?_sort=-birthdate", want: pats("3", "5", "2", "1", "4"), ordered: true},
	// Blind values have no order.
	{query: "Patient?_sort=family,given", status: 400},
	{query: "Practitioner?_sort=family,given", want: ids("Practitioner", "prac-2", "prac-1"), ordered: true},
	{query: "Practitioner?_sort=-family,_id", want: ids("Practitioner", "prac-1", "prac-2"), ordered: true},
	{query: "Organization?_sort=-name", want: ids("Organization", "org-2", "org-1"), ordered: true},
	{query: "Observation?patient=pat-1&_sort=-date", want: obs("2", "1", "5"), ordered: true},
	{query: "Observation?_sort=date&patient=pat-5,pat-4", want: obs("8", "7", "9"), ordered: true}, // 7 and 9 have no date
	{query: "Patient?_count=2", want: pats("1", "2", "3", "4", "5"), ordered: true, total: n(5)},
	{query: "Patient?_sort=birthdate&_count=2", want: pats("4", "1", "2", "5", "3"), ordered: true},
	{query: "Patient?gender=female&_total=accurate", want: pats("2", "3"), total: n(2)},
	{query: "Patient?_summary=count", want: nil, total: n(5)},
	{query: "Patient?_count=0", want: nil, total: n(5)},
	{query: "Patient?_total=estimate&_id=pat-1", want: pats("1")},
	{query: "Patient?_sort=nonsense", want: pats("1", "2", "3", "4", "5")}, // ignored, with a warning

	// includes
	{query: "Observation?_id=obs-1&_include=Observation:subject", want: obs("1"), include: pats("1")},
	{query: "Observation?code=2339-0&_include=Observation:patient&_include=Observation:encounter", want: obs("3", "5"),
		include: []string{"Patient/pat-1", "Patient/pat-2", "Encounter/enc-2"}},
	{query: "Patient?_id=pat-1&_revinclude=Observation:subject", want: pats("1"), include: obs("1", "2", "5")},
	{query: "Observation?_id=obs-1&_revinclude=Provenance:target", want: obs("1"), include: ids("Provenance", "prov-1")},
	{query: "DiagnosticReport?_id=dr-1&_include=DiagnosticReport:result&_include:iterate=Observation:subject", want: ids("DiagnosticReport", "dr-1"),
		include: []string{"Observation/obs-3", "Patient/pat-2"}},
	{query: "Observation?_id=obs-1&_include=*", want: obs("1"), include: []string{"Patient/pat-1", "Encounter/enc-1", "Practitioner/prac-1"}},
	{query: "Patient?_id=pat-5&_include=Patient:organization&_include:iterate=Organization:partof", want: pats("5"),
		include: ids("Organization", "org-1", "org-2")},
	{query: "Observation?_id=obs-9&_include=Observation:encounter", want: obs("9")}, // nothing to include

	// malformed input
	{query: "Patient?birthdate=yesterday", status: http.StatusBadRequest},
	{query: "Patient?_count=-1", status: http.StatusBadRequest},
	{query: "Patient?active:missing=maybe", status: http.StatusBadRequest},
	{query: "Observation?value-quantity=abc", status: http.StatusBadRequest},
	{query: "Observation?code-value-quantity=2339-0", status: http.StatusBadRequest},
	{query: "MolecularSequence?chromosome-variant-coordinate=1$100", status: http.StatusBadRequest},
	{query: "MolecularSequence?chromosome-variant-coordinate=1$100$101$102", status: http.StatusBadRequest},
	{query: "Patient?_include=Observation:nonsense", status: http.StatusBadRequest},
	{query: "Patient?_page=garbage", status: http.StatusBadRequest},
	{query: "Patient?identifier=|", status: http.StatusBadRequest},
}

// RunSearch loads the search dataset into the server at base (which must
// hold nothing else) and runs every search case, then the cases that
// change data while searching.
func RunSearch(t *testing.T, srv Server) {
	c := srv.admin(t)
	var dataset []json.RawMessage
	if err := json.Unmarshal(fixture(t, "search/dataset.json"), &dataset); err != nil {
		t.Fatal(err)
	}
	for _, raw := range dataset {
		var head struct{ ResourceType, ID string }
		json.Unmarshal(raw, &head)
		c.do("PUT", "/"+head.ResourceType+"/"+head.ID, []byte(raw)).want(t, http.StatusCreated)
	}
	if len(searchCases) < 150 {
		t.Fatalf("only %d search cases", len(searchCases))
	}
	for _, tc := range searchCases {
		t.Run(tc.query, func(t *testing.T) {
			path := strings.ReplaceAll(tc.query, "{base}", c.base)
			if tc.status != 0 {
				c.do("GET", "/"+path, nil).want(t, tc.status)
				return
			}
			matches, included, total := searchAll(t, c, "/"+path)
			checkSet(t, "matches", matches, tc.want, tc.ordered)
			checkSet(t, "included", included, tc.include, false)
			if tc.total != nil && (total == nil || *total != *tc.total) {
				t.Fatalf("total %v, want %d", total, *tc.total)
			}
		})
	}
	t.Run("summary and elements subset the resources", func(t *testing.T) {
		e := firstEntry(t, c, "/Patient?_id=pat-1&_elements=gender")
		if e["gender"] != "male" || e["name"] != nil || !subsetted(e) {
			t.Fatalf("_elements=gender: %v", e)
		}
		e = firstEntry(t, c, "/Patient?_id=pat-1&_summary=true")
		if e["name"] == nil || e["generalPractitioner"] != nil || !subsetted(e) {
			t.Fatalf("_summary=true: %v", e)
		}
		e = firstEntry(t, c, "/Patient?_id=pat-1&_summary=data")
		if e["name"] == nil || e["text"] != nil {
			t.Fatalf("_summary=data: %v", e)
		}
	})
	t.Run("unknown parameters are ignored with a warning unless strict", func(t *testing.T) {
		b := c.do("GET", "/Patient?foo=bar", nil).want(t, http.StatusOK).json()
		var matches int
		warned := false
		for _, e := range b["entry"].([]any) {
			em := e.(map[string]any)
			switch em["search"].(map[string]any)["mode"] {
			case "match":
				matches++
			case "outcome":
				warned = strings.Contains(fmt.Sprint(em["resource"]), "foo")
			}
		}
		if matches != 5 || !warned {
			t.Fatalf("lenient: %d matches, warned %v", matches, warned)
		}
		c.do("GET", "/Patient?foo=bar", nil, "Prefer", "handling=strict").want(t, http.StatusBadRequest)
		c.do("GET", "/Patient?gender:exact=female", nil, "Prefer", "handling=strict").want(t, http.StatusBadRequest)
	})
	t.Run("POST _search takes a form body", func(t *testing.T) {
		res := c.do("POST", "/Patient/_search?gender=female", "family=smith", "Content-Type", "application/x-www-form-urlencoded").want(t, http.StatusOK)
		checkSet(t, "matches", bundleMatches(res.json()), pats("3"), false)
		c.do("POST", "/Patient/_search", `{"family":"smith"}`, "Content-Type", "application/json").want(t, http.StatusUnsupportedMediaType)
	})
	t.Run("$everything returns the compartment and what it refers to", func(t *testing.T) {
		matches, included, _ := searchAll(t, c, "/Patient/pat-1/$everything?_count=4")
		all := append(matches, included...)
		for _, want := range []string{"Patient/pat-1", "Observation/obs-1", "Observation/obs-2", "Observation/obs-5",
			"Encounter/enc-1", "Encounter/enc-3", "Condition/cond-1", "MedicationRequest/mr-1", "Immunization/imm-1",
			"RiskAssessment/ra-1", "QuestionnaireResponse/qr-1", "Practitioner/prac-1", "Organization/org-1"} {
			if !slices.Contains(all, want) {
				t.Errorf("$everything lacks %s (got %v)", want, all)
			}
		}
		for _, other := range []string{"Observation/obs-3", "Patient/pat-2", "Condition/cond-2"} {
			if slices.Contains(all, other) {
				t.Errorf("$everything of pat-1 discloses %s", other)
			}
		}
		c.do("GET", "/Patient/nobody/$everything", nil).want(t, http.StatusNotFound)
	})
	t.Run("the index follows updates and deletes", func(t *testing.T) {
		c.do("PUT", "/Patient/tmp-1", `{"resourceType":"Patient","id":"tmp-1","name":[{"family":"Zzyzx"}]}`).want(t, http.StatusCreated)
		checkSet(t, "before", searchIDs(t, c, "/Patient?family=zzyzx"), ids("Patient", "tmp-1"), false)
		c.do("PUT", "/Patient/tmp-1", `{"resourceType":"Patient","id":"tmp-1","name":[{"family":"Quux"}]}`).want(t, http.StatusOK)
		checkSet(t, "after update", searchIDs(t, c, "/Patient?family=zzyzx"), nil, false)
		checkSet(t, "new value", searchIDs(t, c, "/Patient?family=quux"), ids("Patient", "tmp-1"), false)
		c.do("DELETE", "/Patient/tmp-1", nil).want(t, http.StatusNoContent)
		checkSet(t, "after delete", searchIDs(t, c, "/Patient?family=quux"), nil, false)
	})
	t.Run("previous links walk back through the same pages", func(t *testing.T) {
		path := "/Patient?_sort=birthdate&_count=2"
		var pages [][]string
		for path != "" {
			b := c.do("GET", path, nil).want(t, http.StatusOK).json()
			pages = append(pages, bundleMatches(b))
			if len(pages) == 1 && link(b, "previous") != "" {
				t.Fatal("the first page has a previous link")
			}
			next := link(b, "next")
			if next == "" {
				// Walk back from the last page.
				for i := len(pages) - 2; i >= 0; i-- {
					b = c.do("GET", link(b, "previous"), nil).want(t, http.StatusOK).json()
					checkSet(t, fmt.Sprintf("page %d seen backwards", i), bundleMatches(b), pages[i], true)
				}
				if link(b, "previous") != "" {
					t.Fatalf("walking back past the first page: %v", b["link"])
				}
			}
			path = next
		}
		if len(pages) != 3 {
			t.Fatalf("%d pages, want 3", len(pages))
		}
	})
	t.Run("pages stay put while data changes", func(t *testing.T) {
		first := c.do("GET", "/Patient?_count=2", nil).want(t, http.StatusOK).json()
		next := link(first, "next")
		// A patient that sorts first arrives after page one was read.
		c.do("PUT", "/Patient/pat-0", `{"resourceType":"Patient","id":"pat-0"}`).want(t, http.StatusCreated)
		defer c.do("DELETE", "/Patient/pat-0", nil)
		second := c.do("GET", next, nil).want(t, http.StatusOK).json()
		checkSet(t, "second page", bundleMatches(second), pats("3", "4"), true)
	})
}

// searchAll follows next links and returns every match and include, and
// the first page's total.
func searchAll(t *testing.T, c *client, path string) (matches, included []string, total *int) {
	t.Helper()
	for pages := 0; path != ""; pages++ {
		if pages > 50 {
			t.Fatal("paging does not end")
		}
		b := c.do("GET", path, nil).want(t, http.StatusOK).json()
		if b["type"] != "searchset" {
			t.Fatalf("not a searchset: %v", b["type"])
		}
		if tot, ok := b["total"].(json.Number); ok && pages == 0 {
			v, _ := tot.Int64()
			total = n(int(v))
		}
		entries, _ := b["entry"].([]any)
		for _, e := range entries {
			em := e.(map[string]any)
			res, _ := em["resource"].(map[string]any)
			key := fmt.Sprint(res["resourceType"], "/", res["id"])
			if !strings.HasSuffix(fmt.Sprint(em["fullUrl"]), "/"+key) && em["search"].(map[string]any)["mode"] != "outcome" {
				t.Fatalf("fullUrl %v does not end in %s", em["fullUrl"], key)
			}
			switch em["search"].(map[string]any)["mode"] {
			case "match":
				matches = append(matches, key)
			case "include":
				included = append(included, key)
			}
		}
		path = link(b, "next")
	}
	return matches, included, total
}

func searchIDs(t *testing.T, c *client, path string) []string {
	m, _, _ := searchAll(t, c, path)
	return m
}

func bundleMatches(b map[string]any) []string {
	var out []string
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		em := e.(map[string]any)
		if em["search"].(map[string]any)["mode"] == "match" {
			res := em["resource"].(map[string]any)
			out = append(out, fmt.Sprint(res["resourceType"], "/", res["id"]))
		}
	}
	return out
}

// link returns the path and query of a Bundle link, or "".
func link(b map[string]any, rel string) string {
	links, _ := b["link"].([]any)
	for _, l := range links {
		lm := l.(map[string]any)
		if lm["relation"] == rel {
			u, err := url.Parse(lm["url"].(string))
			if err != nil {
				return ""
			}
			return u.RequestURI()
		}
	}
	return ""
}

func firstEntry(t *testing.T, c *client, path string) map[string]any {
	t.Helper()
	b := c.do("GET", path, nil).want(t, http.StatusOK).json()
	entries, _ := b["entry"].([]any)
	if len(entries) == 0 {
		t.Fatalf("%s: no entries", path)
	}
	return entries[0].(map[string]any)["resource"].(map[string]any)
}

func subsetted(res map[string]any) bool {
	meta, _ := res["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	for _, tag := range tags {
		if tag.(map[string]any)["code"] == "SUBSETTED" {
			return true
		}
	}
	return false
}

func checkSet(t *testing.T, what string, got, want []string, ordered bool) {
	t.Helper()
	if !ordered {
		got, want = slices.Clone(got), slices.Clone(want)
		sort.Strings(got)
		sort.Strings(want)
	}
	if !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}
