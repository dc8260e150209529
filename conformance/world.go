package conformance

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// A world is the data and the callers of the hidden-data cases (issue
// "one gate"): patients Alice and Bob with their data, Bob's Consent
// denying the organisation org-b, and tokens that must see nothing of
// Bob's. Every value of Bob's is a canary: a string no other resource,
// schema or message holds, which must never reach those callers.
type world struct {
	run string
	// withBob says Bob's data was written; the same world without it
	// answers every criteria-driven request identically.
	withBob bool
	org     string // Organization id: Alice's and Bob's managing organisation
	orgB    string // the actor Bob's Consent denies: Organization/...
	alice   string // Patient ids
	bob     string
	// Alice's Observations: vital signs, a laboratory result, and one
	// Bob performed (in both compartments; Alice's data).
	aliceVitals, aliceLab, aliceByBob string
	// Bob's: a Patient, an HIV test result, a Task about him.
	bobObs, bobTask, bobConsent string
	// Bob's values. Each is a canary.
	bobFamily, bobGiven, bobMRN, bobPhone, bobLine, bobNote, bobText, bobDisplay, bobTaskText, bobObsMRN string
	bobBirth                                                                                             string
	bobValue                                                                                             string
	// aliceLabText is the text of Alice's laboratory result: a canary for
	// the callers whose scopes do not reach laboratory results.
	aliceLabText string
	admin        *client
	// The callers (docs/auth.md): Alice's own app, org-b reading and
	// writing (Bob's Consent denies it), org-b limited to Patients,
	// limited to vital signs by a query, and with write letters only.
	aliceApp, orgb, orgbw, patientsOnly, vitalsOnly, createOnly, updateOnly *client
}

// randomWord is a made-up capitalised word that no schema, index or key
// can contain by chance.
func randomWord(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	b[0] -= 'a' - 'A'
	return string(b)
}

// canaryWord is a made-up word that no schema, index or message contains.
func canaryWord(r *rand.Rand) string {
	return "Qz" + randomWord(r, 10)
}

// newWorld writes a world for run, with Bob's data or without, and
// registers its callers, acting for orgB. Its canaries come from seed.
func newWorld(t *testing.T, c *client, run string, withBob bool, seed uint64, orgB string) *world {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	w := &world{run: run, withBob: withBob, admin: c,
		org: "org-" + run, orgB: orgB,
		alice: "pat-alice-" + run, bob: "pat-bob-" + run,
		aliceVitals: "obs-alice-" + run, aliceLab: "lab-alice-" + run, aliceByBob: "byb-alice-" + run,
		bobObs: "obs-bob-" + run, bobTask: "task-bob-" + run, bobConsent: "consent-bob-" + run,
		bobFamily: canaryWord(r), bobGiven: canaryWord(r), bobMRN: "MRN" + canaryWord(r), bobPhone: fmt.Sprintf("+1-555-%07d", r.IntN(1e7)),
		bobLine: fmt.Sprintf("%d %s Street", 100+r.IntN(899), canaryWord(r)), bobNote: "note " + canaryWord(r), bobText: "text " + canaryWord(r),
		bobDisplay: "display " + canaryWord(r), bobTaskText: "task " + canaryWord(r), bobObsMRN: "OBS" + canaryWord(r),
		bobBirth: "1961-07-23", bobValue: fmt.Sprintf("7%03d.%03d", r.IntN(1000), r.IntN(1000)),
		aliceLabText: "lab " + canaryWord(r)}
	put := func(typ, id string, body map[string]any) {
		t.Helper()
		body["resourceType"], body["id"] = typ, id
		c.do(http.MethodPut, "/"+typ+"/"+id, body).want(t, http.StatusCreated)
	}
	ref := func(r string) map[string]any { return map[string]any{"reference": r} }
	category := func(c string) []any {
		return []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": c}}}}
	}
	put("Organization", w.org, map[string]any{"name": "Clinic " + run})
	put("Patient", w.alice, map[string]any{"name": []any{map[string]any{"family": "Alicia" + run}}, "birthDate": "1980-01-01",
		"identifier":           []any{map[string]any{"system": "http://leak.example/mrn", "value": "alice-" + run}},
		"managingOrganization": ref("Organization/" + w.org)})
	put("Observation", w.aliceVitals, map[string]any{"status": "final", "category": category("vital-signs"),
		"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "29463-7"}}, "text": "alice weight"},
		"subject": ref("Patient/" + w.alice), "valueQuantity": map[string]any{"value": 61.5, "unit": "kg"},
		"identifier": []any{map[string]any{"system": "http://leak.example/obs", "value": "vitals-" + run}}})
	put("Observation", w.aliceLab, map[string]any{"status": "final", "category": category("laboratory"),
		"code":    map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "2345-7"}}, "text": w.aliceLabText},
		"subject": ref("Patient/" + w.alice), "identifier": []any{map[string]any{"system": "http://leak.example/obs", "value": "lab-" + run}}})
	// Alice's data that refers to Bob (it names him in both worlds).
	put("Observation", w.aliceByBob, map[string]any{"status": "final", "code": map[string]any{"text": "reported by a relative"},
		"subject": ref("Patient/" + w.alice), "performer": []any{ref("Patient/" + w.bob)}})
	if withBob {
		put("Patient", w.bob, map[string]any{"name": []any{map[string]any{"family": w.bobFamily, "given": []any{w.bobGiven}}},
			"birthDate": w.bobBirth, "gender": "male",
			"identifier":           []any{map[string]any{"system": "http://leak.example/mrn", "value": w.bobMRN}},
			"telecom":              []any{map[string]any{"system": "phone", "value": w.bobPhone}},
			"address":              []any{map[string]any{"line": []any{w.bobLine}, "city": "Springfield"}},
			"managingOrganization": ref("Organization/" + w.org)})
		put("Observation", w.bobObs, map[string]any{"status": "final", "category": category("laboratory"),
			"code":          map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "86406008", "display": w.bobDisplay}}, "text": w.bobText},
			"subject":       ref("Patient/" + w.bob),
			"identifier":    []any{map[string]any{"system": "http://leak.example/obs", "value": w.bobObsMRN}},
			"valueQuantity": map[string]any{"value": jsonNumber(w.bobValue), "unit": "mg"},
			"note":          []any{map[string]any{"text": w.bobNote}}})
		put("Task", w.bobTask, map[string]any{"status": "requested", "intent": "order", "for": ref("Patient/" + w.bob),
			"description": w.bobTaskText, "identifier": []any{map[string]any{"system": "http://leak.example/task", "value": "task-" + run}}})
		consent := consentOf(w.bob, map[string]any{"type": "permit", "provision": []any{
			map[string]any{"type": "deny", "actor": actorRef(w.orgB)}}})
		put("Consent", w.bobConsent, consent)
	}
	caller := func(name, actor, scope string, purposes []string, patient string) *client {
		return c.caller(t, run, name, actor, scope, purposes, patient)
	}
	w.aliceApp = caller("alice-app", "Patient/"+w.alice, "patient/*.cruds", []string{"PATRQT"}, w.alice)
	w.orgb = caller("orgb", w.orgB, "system/*.rs", []string{"TREAT", "ETREAT"}, "")
	w.orgbw = caller("orgbw", w.orgB, "system/*.cruds", []string{"TREAT"}, "")
	w.patientsOnly = caller("patients", w.orgB, "system/Patient.rs", []string{"TREAT"}, "")
	w.vitalsOnly = caller("vitals", w.orgB, "system/Observation.rs?category=vital-signs system/Patient.rs", []string{"TREAT"}, "")
	w.createOnly = caller("create", w.orgB, "system/Observation.c", []string{"TREAT"}, "")
	w.updateOnly = caller("update", w.orgB, "system/Observation.u", []string{"TREAT"}, "")
	return w
}

// jsonNumber is a number written as given.
type jsonNumber string

func (n jsonNumber) MarshalJSON() ([]byte, error) { return []byte(n), nil }

// canaries are Bob's values: none may reach any of the world's callers.
func (w *world) canaries() []string {
	return []string{w.bobFamily, w.bobGiven, w.bobMRN, w.bobPhone, w.bobLine, w.bobNote, w.bobText, w.bobDisplay,
		w.bobTaskText, w.bobObsMRN, w.bobValue, w.bobBirth, w.bobObs, w.bobTask, w.bobConsent}
}

// placeholders are the values that differ between two worlds by design:
// the run, Bob's values, and Alice's laboratory text.
func (w *world) placeholders() []string {
	return append([]string{w.run, w.aliceLabText}, w.canaries()...)
}

// hiddenFrom are the canaries caller must never see: Bob's, and for the
// callers whose scopes do not reach laboratory results, Alice's.
func (w *world) hiddenFrom(caller *client) []string {
	out := w.canaries()
	if caller == w.patientsOnly || caller == w.vitalsOnly || caller == w.createOnly || caller == w.updateOnly {
		out = append(out, w.aliceLabText, w.aliceLab)
	}
	return out
}

// leakedIn returns the canaries of hidden found in b.
func leakedIn(b []byte, hidden []string) []string {
	lower := strings.ToLower(string(b))
	var out []string
	for _, c := range hidden {
		if strings.Contains(lower, strings.ToLower(c)) {
			out = append(out, c)
		}
	}
	return out
}

// leaked returns the canaries of hidden found in r (its body and
// headers), leaving out those the request itself carried (an id the
// caller asked about may come back in an error message).
func leaked(r *response, sent string, hidden []string) []string {
	var headers strings.Builder
	for k, vs := range r.Header {
		headers.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	all := strings.ToLower(string(r.body) + "\n" + headers.String())
	sent = strings.ToLower(sent)
	var out []string
	for _, c := range hidden {
		lc := strings.ToLower(c)
		if strings.Contains(all, lc) && !strings.Contains(sent, lc) {
			out = append(out, c)
		}
	}
	return out
}

var (
	uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timePattern = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	// volatile are the elements that differ from one answer to the next
	// by nature: the ids and times the server assigns, and the links
	// (their cursors).
	volatile = map[string]bool{"id": true, "lastUpdated": true, "versionId": true, "fullUrl": true, "etag": true,
		"lastModified": true, "location": true, "link": true, "timestamp": true}
)

// normalize is an answer as two worlds can compare it: its status, the
// presence of disclosure records, and its body with placeholders (the
// values that differ between the worlds by design) replaced, server ids
// and times masked, and volatile elements left out.
func normalize(r *response, placeholders ...string) string {
	body := string(r.body)
	for _, p := range placeholders {
		if p != "" {
			body = strings.ReplaceAll(body, p, "{placeholder}")
		}
	}
	body = uuidPattern.ReplaceAllString(body, "{uuid}")
	body = timePattern.ReplaceAllString(body, "{time}")
	v := decode([]byte(body))
	var strip func(any) any
	strip = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			for k := range t {
				if volatile[k] {
					delete(t, k)
				} else {
					t[k] = strip(t[k])
				}
			}
		case []any:
			for i := range t {
				t[i] = strip(t[i])
			}
		}
		return x
	}
	out, _ := json.Marshal(strip(v))
	if v == nil {
		out = []byte(body)
	}
	return fmt.Sprintf("%d records:%v %s", r.StatusCode, r.Header.Get("Ledger-Index") != "", out)
}
