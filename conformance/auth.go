package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The authorization cases: who may call, with which token, and what its
// scopes and patient let it reach (docs/auth.md).

// register registers a client through the admin API.
func (c *client) register(t *testing.T, id string, reg map[string]any) {
	t.Helper()
	c.do(http.MethodPut, "/auth/clients/"+id, reg).want(t, http.StatusCreated)
}

// caller registers a client of run acting for actor (and, when patient is
// set, for that patient) and returns a client holding its token.
func (c *client) caller(t *testing.T, run, name, actor, scope string, purposes []string, patient string) *client {
	t.Helper()
	id := name + "-" + run
	reg := map[string]any{"actor": actor, "scope": scope, "purposes": purposes}
	if patient != "" {
		reg["patient"] = patient
	}
	c.register(t, id, reg)
	return c.srv.as(t, TokenRequest{Client: id, Scope: scope})
}

// ids lists the ids of the resources of type typ in a Bundle, by search
// mode ("" for any).
func bundleIDs(r *response, typ, mode string) []string {
	var out []string
	var b struct {
		Entry []struct {
			Resource struct{ ResourceType, ID string } `json:"resource"`
			Search   struct{ Mode string }             `json:"search"`
		} `json:"entry"`
	}
	json.Unmarshal(r.body, &b)
	for _, e := range b.Entry {
		if e.Resource.ResourceType == typ && (mode == "" || e.Search.Mode == mode) {
			out = append(out, e.Resource.ID)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// wantIDs checks the ids of type typ a Bundle holds.
func wantIDs(t *testing.T, r *response, typ, mode string, want ...string) {
	t.Helper()
	if got := bundleIDs(r, typ, mode); !slices.Equal(got, sorted(want...)) {
		t.Fatalf("%s %s: %s ids %q, want %q", r.Request.Method, r.Request.URL.RequestURI(), typ, got, sorted(want...))
	}
}

// wantRefused checks a 401 answer: an OperationOutcome, the Bearer
// challenge (with error="invalid_token" and the reason when a token was
// sent), and nothing of the data.
func wantRefused(t *testing.T, r *response, reason string) {
	t.Helper()
	r.want(t, http.StatusUnauthorized)
	ch := r.Header.Get("WWW-Authenticate")
	switch {
	case reason == "" && ch != "Bearer":
		t.Fatalf("WWW-Authenticate %q, want Bearer", ch)
	case reason != "" && (!strings.HasPrefix(ch, `Bearer error="invalid_token"`) || !strings.Contains(ch, reason)):
		t.Fatalf("WWW-Authenticate %q, want invalid_token for %q", ch, reason)
	}
	if r.Header.Get("Ledger-Index") != "" {
		t.Fatal("a refused request names a ledger record")
	}
}

// confinement is the data of the patient-confinement cases: patient A
// and patient B; oa (A's, laboratory), ob (B's), oab (A's, performed by
// B, so in both compartments), and an Organization, which is nobody's.
type confinement struct {
	a, b, oa, ob, oab, org string
	since                  string
}

func setUpConfinement(t *testing.T, c *client, run string) confinement {
	t.Helper()
	d := confinement{a: "pa-" + run, b: "pb-" + run, oa: "oa-" + run, ob: "ob-" + run, oab: "oab-" + run, org: "org-" + run,
		since: time.Now().Add(-time.Second).UTC().Format(time.RFC3339)}
	put := func(typ, id, body string) {
		c.do(http.MethodPut, "/"+typ+"/"+id, body).want(t, http.StatusCreated)
	}
	put("Patient", d.a, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":"Alpha"}]}`, d.a))
	put("Patient", d.b, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"name":[{"family":"Bravo"}]}`, d.b))
	put("Organization", d.org, fmt.Sprintf(`{"resourceType":"Organization","id":%q,"name":"Clinic"}`, d.org))
	obs := func(id, subject, category, extra string) string {
		return fmt.Sprintf(`{"resourceType":"Observation","id":%q,"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":%q}]}],`+
			`"code":{"text":"x"},"subject":{"reference":"Patient/%s"}%s}`, id, category, subject, extra)
	}
	put("Observation", d.oa, obs(d.oa, d.a, "laboratory", ""))
	put("Observation", d.ob, obs(d.ob, d.b, "laboratory", ""))
	put("Observation", d.oab, obs(d.oab, d.a, "vital-signs", fmt.Sprintf(`,"performer":[{"reference":"Patient/%s"}]`, d.b)))
	return d
}

// testTokensRefused sends tokens that are wrong in every way a token can
// be (signed by a trusted issuer's real key, or not): each is answered
// 401 with the challenge and no data, while the same token made right is
// served.
func testTokensRefused(t *testing.T, c *client, run string) {
	iss := c.srv.Issuer
	if iss == nil {
		t.Fatal("the server under test trusts no suite issuer; give Server.Issuer")
	}
	pid := "tok-" + run
	c.do(http.MethodPut, "/Patient/"+pid, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, pid)).want(t, http.StatusCreated)
	claims := func(edit func(map[string]any)) map[string]any {
		now := time.Now()
		m := map[string]any{"iss": iss.URL, "aud": c.base, "sub": "suite-app", "client_id": "suite-app",
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "scope": "system/Patient.rs", "purpose_of_use": "TREAT"}
		if edit != nil {
			edit(m)
		}
		return m
	}
	read := func(token string) *response {
		return c.srv.with(t, token).do(http.MethodGet, "/Patient/"+pid, nil)
	}
	// The control: the issuer's token, made right, is served.
	good := iss.sign(t, "", claims(nil))
	read(good).want(t, http.StatusOK)

	parts := strings.Split(good, ".")
	escalated, _ := json.Marshal(claims(func(m map[string]any) { m["scope"] = "system/*.cruds " + "ehrledger/admin" }))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forged := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: other, KeyID: iss.kid}}, nil)
		tok, _ := jwt.Signed(signer).Claims(claims(nil)).Serialize()
		return tok
	}()
	hs256 := func() string {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(iss.JWKSURL + "-as-a-shared-secret")}, (&jose.SignerOptions{}).WithHeader("kid", iss.kid))
		tok, _ := jwt.Signed(signer).Claims(claims(nil)).Serialize()
		return tok
	}()
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"expired", iss.sign(t, "", claims(func(m map[string]any) { m["exp"] = time.Now().Add(-10 * time.Minute).Unix() })), "expired"},
		{"not yet valid", iss.sign(t, "", claims(func(m map[string]any) { m["nbf"] = time.Now().Add(10 * time.Minute).Unix() })), "not yet valid"},
		{"no expiry", iss.sign(t, "", claims(func(m map[string]any) { delete(m, "exp") })), "no expiry"},
		{"valid for a year", iss.sign(t, "", claims(func(m map[string]any) { m["exp"] = time.Now().Add(365 * 24 * time.Hour).Unix() })), "lifetime"},
		{"wrong audience", iss.sign(t, "", claims(func(m map[string]any) { m["aud"] = "https://elsewhere.example/fhir" })), "audience"},
		{"wrong issuer", iss.sign(t, "", claims(func(m map[string]any) { m["iss"] = "https://idp.evil.example" })), "issuer"},
		{"unknown kid", iss.sign(t, "rotated-away", claims(nil)), "unknown key"},
		{"tampered claims", parts[0] + "." + b64(escalated) + "." + parts[2], "signature"},
		{"forged signature", forged, "signature"},
		{"alg none", unsigned(claims(nil)), "algorithm"},
		{"HS256 with a guessable secret", hs256, "algorithm"},
		{"not a JWT", "not-a-token", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := read(tc.token)
			wantRefused(t, r, tc.reason)
			if strings.Contains(string(r.body), pid) {
				t.Fatal("a refused request got the data")
			}
		})
	}
	t.Run("a token for another server, with that server's name as Host", func(t *testing.T) {
		tok := iss.sign(t, "", claims(func(m map[string]any) { m["aud"] = "http://elsewhere.example:8080" }))
		r := c.srv.with(t, tok).do(http.MethodGet, "/Patient/"+pid, nil, "Host", "elsewhere.example:8080")
		wantRefused(t, r, "audience")
	})
	t.Run("no token", func(t *testing.T) { wantRefused(t, c.srv.with(t, "").do(http.MethodGet, "/Patient/"+pid, nil), "") })
	t.Run("another scheme", func(t *testing.T) {
		wantRefused(t, c.srv.with(t, "").do(http.MethodGet, "/Patient/"+pid, nil, "Authorization", "Basic YWRtaW46YWRtaW4="), "")
	})
	t.Run("every FHIR endpoint needs a token", func(t *testing.T) {
		anon := c.srv.with(t, "")
		for _, rq := range []struct{ method, path string }{
			{"GET", "/Patient"}, {"GET", "/Patient/" + pid + "/_history"}, {"GET", "/_history"}, {"POST", "/Patient"},
			{"PUT", "/Patient/" + pid}, {"DELETE", "/Patient/" + pid}, {"POST", "/"}, {"GET", "/Patient/" + pid + "/$everything"},
			{"GET", "/AuditEvent?patient=Patient/" + pid}, {"POST", "/Patient/" + pid + "/$erase"}, {"GET", "/auth/clients"},
		} {
			wantRefused(t, anon.do(rq.method, rq.path, nil), "")
		}
		// What is public stays public: capabilities, discovery, the ledger.
		for _, p := range []string{"/metadata", "/.well-known/smart-configuration", "/ledger/checkpoint", "/healthz"} {
			anon.do(http.MethodGet, p, nil).want(t, http.StatusOK)
		}
	})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// testBackendServices registers a client with its own key and runs SMART
// Backend Services: a signed assertion buys a token that reads what the
// registration allows, and nothing more; the assertion cannot be used
// twice; each disclosure's record names the client and its purpose.
func testBackendServices(t *testing.T, c *client, run string) {
	d := setUpConfinement(t, c, "bs-"+run)
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := "backend-" + run
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "bs-1", Algorithm: "ES384", Use: "sig"}
	c.register(t, id, map[string]any{"actor": "Organization/" + d.org, "roles": []string{"lab"}, "purposes": []string{"TREAT", "HOPERAT"},
		"scope": "system/Patient.rs system/Observation.rs", "jwks": jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}})
	// The registration keeps the public key only.
	if reg := c.do(http.MethodGet, "/auth/clients/"+id, nil).want(t, http.StatusOK); strings.Contains(string(reg.body), `"d"`) {
		t.Fatalf("registration leaks a private key: %s", reg.body)
	}

	tokenURL := c.base + "/auth/token"
	assertion := func(k *ecdsa.PrivateKey, edit func(map[string]any)) string {
		claims := map[string]any{"iss": id, "sub": id, "aud": tokenURL, "exp": time.Now().Add(4 * time.Minute).Unix(),
			"jti": fmt.Sprintf("%s-%d", run, time.Now().UnixNano())}
		if edit != nil {
			edit(claims)
		}
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES384, Key: jose.JSONWebKey{Key: k, KeyID: "bs-1"}}, (&jose.SignerOptions{}).WithType("JWT"))
		tok, err := jwt.Signed(signer).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	ask := func(assertion, scope string, extra ...string) (int, map[string]any) {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
		for i := 0; i+1 < len(extra); i += 2 {
			form.Set(extra[i], extra[i+1])
		}
		res, err := http.Post(tokenURL, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body map[string]any
		raw, _ := io.ReadAll(res.Body)
		json.Unmarshal(raw, &body)
		return res.StatusCode, body
	}

	a := assertion(key, nil)
	status, body := ask(a, "system/Patient.rs system/Observation.rs", "purpose_of_use", "TREAT")
	if status != http.StatusOK || body["token_type"] != "bearer" || body["scope"] != "system/Patient.rs system/Observation.rs" {
		t.Fatalf("token request: %d %v", status, body)
	}
	bs := c.srv.with(t, body["access_token"].(string))
	read := bs.do(http.MethodGet, "/Patient/"+d.a, nil).want(t, http.StatusOK)
	rec, _ := c.record(t, c.checkpoint(t, ledgerIndexes(t, read)[0]), ledgerIndexes(t, read)[0])
	if rec.Recipient == nil || rec.Recipient.Client != id || rec.Recipient.Organization != "Organization/"+d.org || rec.Purpose != "TREAT" {
		t.Fatalf("the disclosure's record names recipient %+v and purpose %q", rec.Recipient, rec.Purpose)
	}
	// The patient's AuditEvents find it by the client and by its
	// organisation, once the ledger's lookups caught up.
	for _, agent := range []string{id, "Organization/" + d.org} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			found := c.do(http.MethodGet, "/AuditEvent?patient=Patient/"+d.a+"&agent="+url.QueryEscape(agent), nil).want(t, http.StatusOK)
			if strings.Contains(string(found.body), `"purposeOfEvent"`) && len(bundleIDs(found, "AuditEvent", "")) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("AuditEvent search by agent %s found nothing: %s", agent, truncate(found.body))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	bs.do(http.MethodGet, "/Observation?subject=Patient/"+d.a, nil).want(t, http.StatusOK)
	bs.do(http.MethodGet, "/Organization/"+d.org, nil).want(t, http.StatusForbidden)
	bs.do(http.MethodPut, "/Patient/"+d.a, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, d.a)).want(t, http.StatusForbidden)

	// The same assertion again is refused, even for less.
	if status, body := ask(a, "system/Patient.rs"); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Fatalf("replayed assertion: %d %v", status, body)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, tc := range []struct {
		name, assertion, scope string
		status                 int
		code                   string
	}{
		{"escalated scope", assertion(key, nil), "system/*.cruds", 400, "invalid_scope"},
		{"write scope", assertion(key, nil), "system/Patient.cruds", 400, "invalid_scope"},
		{"admin scope", assertion(key, nil), "ehrledger/admin", 400, "invalid_scope"},
		{"signed by another key", assertion(other, nil), "system/Patient.rs", 401, "invalid_client"},
		{"aud is the FHIR base", assertion(key, func(m map[string]any) { m["aud"] = c.base }), "system/Patient.rs", 401, "invalid_client"},
		{"expired", assertion(key, func(m map[string]any) { m["exp"] = time.Now().Add(-2 * time.Minute).Unix() }), "system/Patient.rs", 401, "invalid_client"},
		{"another client's name", assertion(key, func(m map[string]any) { m["iss"], m["sub"] = "admin", "admin" }), "system/Patient.rs", 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := ask(tc.assertion, tc.scope)
			if status != tc.status || body["error"] != tc.code || body["access_token"] != nil {
				t.Fatalf("%d %v, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	if status, body := ask(assertion(key, nil), "system/Patient.rs", "purpose_of_use", "HRESCH"); status != 400 || body["access_token"] != nil {
		t.Fatalf("a purpose the client may not claim: %d %v", status, body)
	}
}

// testScopes checks each permission letter and query constraint on
// resource types, with tokens of registered clients.
func testScopes(t *testing.T, c *client, run string) {
	d := setUpConfinement(t, c, "sc-"+run)
	reg := func(name, scope string) *client {
		id := name + "-" + run
		c.register(t, id, map[string]any{"actor": "Organization/" + d.org, "scope": scope, "purposes": []string{"TREAT"}})
		return c.srv.as(t, TokenRequest{Client: id, Scope: scope})
	}
	lab := reg("lab", "system/Patient.rs system/Observation.rs?category=laboratory")
	lab.do(http.MethodGet, "/Patient/"+d.a, nil).want(t, http.StatusOK)
	lab.do(http.MethodGet, "/Observation/"+d.oa, nil).want(t, http.StatusOK)
	lab.do(http.MethodGet, "/Observation/"+d.oab, nil).want(t, http.StatusForbidden) // vital signs
	found := lab.do(http.MethodGet, "/Observation?subject=Patient/"+d.a, nil).want(t, http.StatusOK)
	wantIDs(t, found, "Observation", "match", d.oa)
	if total := found.json()["total"]; fmt.Sprint(total) != "1" {
		t.Fatalf("total %v counts what the constraint leaves out", total)
	}
	lab.do(http.MethodGet, "/Observation/"+d.oab+"/_history", nil).want(t, http.StatusForbidden)
	lab.do(http.MethodPost, "/Patient", `{"resourceType":"Patient"}`).want(t, http.StatusForbidden)
	lab.do(http.MethodPost, "/Observation", `{"resourceType":"Observation"}`).want(t, http.StatusForbidden)
	lab.do(http.MethodDelete, "/Patient/"+d.b, nil).want(t, http.StatusForbidden)
	lab.do(http.MethodGet, "/Encounter", nil).want(t, http.StatusForbidden)
	lab.do(http.MethodGet, "/_history", nil).want(t, http.StatusForbidden) // needs a wildcard scope
	lab.do(http.MethodPost, "/Patient/"+d.b+"/$erase", nil).want(t, http.StatusForbidden)
	lab.do(http.MethodGet, "/auth/clients", nil).want(t, http.StatusForbidden)
	// Included resources are checked too: the vital-signs Observation
	// does not come along with its patient.
	inc := lab.do(http.MethodGet, "/Patient?_id="+d.a+"&_revinclude=Observation:subject", nil).want(t, http.StatusOK)
	wantIDs(t, inc, "Observation", "include", d.oa)

	v1 := reg("v1", "system/Patient.read")
	v1.do(http.MethodGet, "/Patient/"+d.a, nil).want(t, http.StatusOK)
	v1.do(http.MethodGet, "/Patient?_id="+d.a, nil).want(t, http.StatusOK)
	v1.do(http.MethodPut, "/Patient/"+d.a, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, d.a)).want(t, http.StatusForbidden)
	w := reg("v1w", "system/Patient.write")
	w.do(http.MethodGet, "/Patient/"+d.a, nil).want(t, http.StatusForbidden)
	w.do(http.MethodPost, "/Patient", `{"resourceType":"Patient"}`).want(t, http.StatusCreated)
	// Nothing a refused request asked for was written.
	if got := c.do(http.MethodGet, "/Patient/"+d.a, nil).want(t, http.StatusOK).Header.Get("ETag"); got != `W/"1"` {
		t.Fatalf("a refused update was written: ETag %s", got)
	}
}

// testPatientConfinement gives patient A's own app a patient/ token and
// tries every way to reach patient B: reads, searches, compartments,
// includes, chains, history, $everything, AuditEvents, Bundles and
// writes. Each is refused or comes back without B, and nothing is
// written.
func testPatientConfinement(t *testing.T, c *client, run string) {
	d := setUpConfinement(t, c, "pc-"+run)
	app := "app-" + run
	c.register(t, app, map[string]any{"actor": "Patient/" + d.a, "scope": "patient/*.rs", "purposes": []string{"PATRQT"}, "patient": d.a})
	p := c.srv.as(t, TokenRequest{Client: app, Scope: "patient/*.rs"})

	t.Run("reads", func(t *testing.T) {
		p.do(http.MethodGet, "/Patient/"+d.a, nil).want(t, http.StatusOK)
		p.do(http.MethodGet, "/Observation/"+d.oa, nil).want(t, http.StatusOK)
		p.do(http.MethodGet, "/Observation/"+d.oab, nil).want(t, http.StatusOK)
		p.do(http.MethodGet, "/Organization/"+d.org, nil).want(t, http.StatusOK) // nobody's data
		for _, path := range []string{"/Patient/" + d.b, "/Observation/" + d.ob, "/Observation/" + d.ob + "/_history/1", "/Patient/" + d.b + "/_history"} {
			r := p.do(http.MethodGet, path, nil).want(t, http.StatusForbidden)
			if strings.Contains(string(r.body), "Bravo") || r.Header.Get("Ledger-Index") != "" {
				t.Fatalf("GET %s leaked: %s", path, r.body)
			}
		}
	})
	t.Run("searches", func(t *testing.T) {
		r := p.do(http.MethodGet, "/Observation", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "match", d.oa, d.oab)
		if fmt.Sprint(r.json()["total"]) != "2" {
			t.Fatalf("total %v", r.json()["total"])
		}
		wantIDs(t, p.do(http.MethodGet, "/Patient", nil).want(t, http.StatusOK), "Patient", "match", d.a)
		wantIDs(t, p.do(http.MethodGet, "/Observation?subject=Patient/"+d.b, nil).want(t, http.StatusOK), "Observation", "match")
		wantIDs(t, p.do(http.MethodGet, "/Patient/"+d.a+"/Observation", nil).want(t, http.StatusOK), "Observation", "match", d.oa, d.oab)
		p.do(http.MethodGet, "/Patient/"+d.b+"/Observation", nil).want(t, http.StatusForbidden)
		if got := p.do(http.MethodGet, "/Observation?_summary=count", nil).want(t, http.StatusOK).json()["total"]; fmt.Sprint(got) != "2" {
			t.Fatalf("_summary=count gives %v", got)
		}
	})
	t.Run("a patient scope beside a constrained system scope", func(t *testing.T) {
		mix := "mix-" + run
		scope := "patient/Observation.rs system/Observation.rs?category=vital-signs"
		c.register(t, mix, map[string]any{"actor": "Patient/" + d.a, "scope": scope, "purposes": []string{"PATRQT"}, "patient": d.a})
		m := c.srv.as(t, TokenRequest{Client: mix, Scope: scope})
		// Either rule admits a resource: A's laboratory result by the
		// patient rule, the vital signs by the system rule; B's laboratory
		// result by neither. No total is given for what is checked one by
		// one, and no count.
		r := m.do(http.MethodGet, "/Observation?subject=Patient/"+d.a+",Patient/"+d.b, nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "match", d.oa, d.oab)
		if _, ok := r.json()["total"]; ok {
			t.Fatalf("a total is given: %v", r.json()["total"])
		}
		m.do(http.MethodGet, "/Observation?_summary=count", nil).want(t, http.StatusForbidden)
		m.do(http.MethodGet, "/Observation/"+d.ob, nil).want(t, http.StatusForbidden)
		m.do(http.MethodGet, "/Observation/"+d.oab, nil).want(t, http.StatusOK)
		m.do(http.MethodGet, "/Observation?patient.family=Bravo", nil).want(t, http.StatusForbidden)
	})
	t.Run("includes", func(t *testing.T) {
		r := p.do(http.MethodGet, "/Observation?_include=Observation:performer&_include=Observation:subject", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Patient", "include", d.a)
		r = p.do(http.MethodGet, "/Patient?_revinclude=Observation:subject&_revinclude=Observation:performer", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Observation", "include", d.oa, d.oab)
		if strings.Contains(string(r.body), "Bravo") {
			t.Fatal("an include brought patient B")
		}
	})
	t.Run("chains", func(t *testing.T) {
		// Chains and _has test only what the token may read: the other
		// patient's data matches nothing.
		for _, q := range []string{"/Observation?subject:Patient.family=Bravo", "/Observation?patient.family=Bravo",
			"/Organization?_has:Patient:organization:family=Bravo"} {
			r := p.do(http.MethodGet, q, nil).want(t, http.StatusOK)
			if len(bundleMatches(r.json())) != 0 || r.Header.Get("Ledger-Index") != "" {
				t.Fatalf("GET %s: %s", q, truncate(r.body))
			}
		}
		wantIDs(t, p.do(http.MethodGet, "/Observation?patient.family=Alpha", nil).want(t, http.StatusOK), "Observation", "match", d.oa, d.oab)
		wantIDs(t, p.do(http.MethodGet, "/Patient?_has:Observation:subject:status=final", nil).want(t, http.StatusOK), "Patient", "match", d.a)
	})
	t.Run("history", func(t *testing.T) {
		r := p.do(http.MethodGet, "/Observation/_history?_since="+d.since+"&_count=1000", nil).want(t, http.StatusOK)
		for _, id := range bundleIDs(r, "Observation", "") {
			if id != d.oa && id != d.oab {
				t.Fatalf("type history shows %s", id)
			}
		}
		r = p.do(http.MethodGet, "/_history?_since="+d.since+"&_count=1000", nil).want(t, http.StatusOK)
		for _, typ := range []string{"Patient", "Observation"} {
			for _, id := range bundleIDs(r, typ, "") {
				if id == d.b || id == d.ob {
					t.Fatalf("system history shows %s/%s", typ, id)
				}
			}
		}
		if !slices.Contains(bundleIDs(r, "Patient", ""), d.a) {
			t.Fatalf("system history misses the patient's own record: %s", truncate(r.body))
		}
	})
	t.Run("everything and AuditEvents", func(t *testing.T) {
		p.do(http.MethodGet, "/Patient/"+d.b+"/$everything", nil).want(t, http.StatusForbidden)
		r := p.do(http.MethodGet, "/Patient/"+d.a+"/$everything", nil).want(t, http.StatusOK)
		wantIDs(t, r, "Patient", "", d.a)
		wantIDs(t, r, "Observation", "", d.oa, d.oab)
		p.do(http.MethodGet, "/AuditEvent?patient=Patient/"+d.b, nil).want(t, http.StatusForbidden)
		p.do(http.MethodGet, "/AuditEvent?patient=Patient/"+d.a, nil).want(t, http.StatusOK)
	})
	t.Run("Bundles", func(t *testing.T) {
		batch := fmt.Sprintf(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/%s"}},{"request":{"method":"GET","url":"Patient/%s"}},{"request":{"method":"GET","url":"Observation?subject=Patient/%s"}}]}`, d.b, d.a, d.b)
		r := p.do(http.MethodPost, "/", batch).want(t, http.StatusOK)
		var out struct {
			Entry []struct {
				Resource json.RawMessage
				Response struct{ Status string }
			}
		}
		json.Unmarshal(r.body, &out)
		if len(out.Entry) != 3 || !strings.HasPrefix(out.Entry[0].Response.Status, "403") || !strings.HasPrefix(out.Entry[1].Response.Status, "200") ||
			strings.Contains(string(r.body), "Bravo") || strings.Contains(string(out.Entry[2].Resource), d.ob) {
			t.Fatalf("batch answered %s", truncate(r.body))
		}
	})
	t.Run("writes", func(t *testing.T) {
		wapp := "wapp-" + run
		c.register(t, wapp, map[string]any{"actor": "Patient/" + d.a, "scope": "patient/*.cruds", "purposes": []string{"PATRQT"}, "patient": d.a})
		pw := c.srv.as(t, TokenRequest{Client: wapp, Scope: "patient/*.cruds"})
		mine := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"mine-%s"},"subject":{"reference":"Patient/%s"}}`, run, d.a)
		theirs := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"theirs-%s"},"subject":{"reference":"Patient/%s"}}`, run, d.b)
		pw.do(http.MethodPost, "/Observation", theirs).want(t, http.StatusForbidden)
		pw.do(http.MethodPost, "/Observation", mine).want(t, http.StatusCreated)
		// B's Observation cannot be taken over, nor deleted.
		pw.do(http.MethodPut, "/Observation/"+d.ob, strings.Replace(mine, `"resourceType":"Observation",`, `"resourceType":"Observation","id":"`+d.ob+`",`, 1)).want(t, http.StatusForbidden)
		pw.do(http.MethodDelete, "/Observation/"+d.ob, nil).want(t, http.StatusForbidden)
		// A transaction with one entry for B writes nothing at all.
		tx := fmt.Sprintf(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":%s,"request":{"method":"POST","url":"Observation"}},{"resource":%s,"request":{"method":"POST","url":"Observation"}}]}`,
			strings.Replace(mine, "mine-", "tx-", 1), strings.Replace(theirs, "theirs-", "tx-", 1))
		r := pw.do(http.MethodPost, "/", tx).want(t, http.StatusForbidden)
		if exprs := r.issueExpressions(); !slices.Contains(exprs, "Bundle.entry[1]") {
			t.Fatalf("the refusal names %q, want Bundle.entry[1]", exprs)
		}
		if n := c.do(http.MethodGet, "/Observation?code:text=tx-"+run+"&_summary=count", nil).want(t, http.StatusOK).json()["total"]; fmt.Sprint(n) != "0" {
			t.Fatalf("a refused transaction wrote %v Observations", n)
		}
		if got := c.do(http.MethodGet, "/Observation/"+d.ob, nil).want(t, http.StatusOK).Header.Get("ETag"); got != `W/"1"` {
			t.Fatalf("B's Observation changed: ETag %s", got)
		}
		// The read-only app cannot write at all.
		p.do(http.MethodPost, "/Observation", mine).want(t, http.StatusForbidden)
	})
}

// testPurposeOfUse checks the purpose headers: a request narrows its
// token's purposes and its record carries the one it used; break-glass
// needs a reason, which never reaches the ledger.
func testPurposeOfUse(t *testing.T, c *client, run string) {
	pid := "pou-" + run
	c.do(http.MethodPut, "/Patient/"+pid, fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, pid)).want(t, http.StatusCreated)
	purposeOf := func(r *response) (string, []byte) {
		t.Helper()
		n := ledgerIndexes(t, r)[0]
		rec, raw := c.record(t, c.checkpoint(t, n), n)
		return rec.Purpose, raw
	}
	if got, _ := purposeOf(c.do(http.MethodGet, "/Patient/"+pid, nil).want(t, http.StatusOK)); got != "TREAT" {
		t.Fatalf("default purpose %q, want the token's first (TREAT)", got)
	}
	if got, _ := purposeOf(c.do(http.MethodGet, "/Patient/"+pid, nil, "Purpose-Of-Use", "HRESCH").want(t, http.StatusOK)); got != "HRESCH" {
		t.Fatalf("narrowed purpose %q, want HRESCH", got)
	}
	c.do(http.MethodGet, "/Patient/"+pid, nil, "Purpose-Of-Use", "ETREAT").want(t, http.StatusForbidden)
	const reason = "unconscious in the emergency room, no relatives reachable"
	got, raw := purposeOf(c.do(http.MethodGet, "/Patient/"+pid, nil, "Purpose-Of-Use", "ETREAT", "Break-Glass-Reason", reason).want(t, http.StatusOK))
	if got != "ETREAT" || strings.Contains(string(raw), "emergency") {
		t.Fatalf("break-glass record: purpose %q, record %s", got, raw)
	}
	c.do(http.MethodGet, "/Patient/"+pid, nil, "Break-Glass-Reason", reason).want(t, http.StatusBadRequest)
	c.do(http.MethodGet, "/Patient/"+pid, nil, "Purpose-Of-Use", "TREAT HRESCH").want(t, http.StatusBadRequest)

	// A client may not claim a purpose beyond its registration.
	id := "treat-" + run
	c.register(t, id, map[string]any{"actor": "Organization/treat", "scope": "system/Patient.rs", "purposes": []string{"TREAT"}})
	tr := c.srv.as(t, TokenRequest{Client: id, Scope: "system/Patient.rs"})
	tr.do(http.MethodGet, "/Patient/"+pid, nil, "Purpose-Of-Use", "HRESCH").want(t, http.StatusForbidden)
	tr.do(http.MethodGet, "/Patient/"+pid, nil, "Purpose-Of-Use", "ETREAT", "Break-Glass-Reason", reason).want(t, http.StatusForbidden)
	tr.do(http.MethodGet, "/Patient/"+pid, nil, "Purpose-Of-Use", "TREAT").want(t, http.StatusOK)
}

// testClientRegistry drives the admin API of the client registry.
func testClientRegistry(t *testing.T, c *client, run string) {
	id := "reg-" + run
	reg := map[string]any{"actor": "Organization/reg", "scope": "system/Patient.rs", "purposes": []string{"TREAT"}}
	c.register(t, id, reg)
	reg["scope"] = "system/Patient.rs system/Observation.rs"
	got := c.do(http.MethodPut, "/auth/clients/"+id, reg).want(t, http.StatusOK).json()
	if got["client_id"] != id || got["scope"] != reg["scope"] {
		t.Fatalf("replaced registration: %v", got)
	}
	if got := c.do(http.MethodGet, "/auth/clients/"+id, nil).want(t, http.StatusOK).json(); got["scope"] != reg["scope"] {
		t.Fatalf("stored registration: %v", got)
	}
	var list []map[string]any
	json.Unmarshal(c.do(http.MethodGet, "/auth/clients", nil).want(t, http.StatusOK).body, &list)
	if !slices.ContainsFunc(list, func(m map[string]any) bool { return m["client_id"] == id }) ||
		!slices.ContainsFunc(list, func(m map[string]any) bool { return m["client_id"] == "admin" }) {
		t.Fatalf("the list lacks %s or admin: %v", id, list)
	}
	for name, body := range map[string]string{
		"not JSON":          `{`,
		"misspelt member":   `{"actor":"Organization/reg","scopes":"system/*.rs"}`,
		"bad actor":         `{"actor":"reg","scope":"system/*.rs"}`,
		"malformed scope":   `{"actor":"Organization/reg","scope":"system/patient.rs"}`,
		"another client_id": `{"client_id":"someone-else","actor":"Organization/reg","scope":"system/*.rs"}`,
		"weak key":          `{"actor":"Organization/reg","scope":"system/*.rs","jwks":{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}}`,
	} {
		t.Run(name, func(t *testing.T) { c.do(http.MethodPut, "/auth/clients/"+id, body).want(t, http.StatusBadRequest) })
	}
	c.do(http.MethodDelete, "/auth/clients/"+id, nil).want(t, http.StatusNoContent)
	c.do(http.MethodGet, "/auth/clients/"+id, nil).want(t, http.StatusNotFound)
	c.do(http.MethodDelete, "/auth/clients/"+id, nil).want(t, http.StatusNotFound)
}

// testSMARTDiscovery checks what a SMART client reads before it asks for
// a token: /.well-known/smart-configuration and the CapabilityStatement's
// security, both open to everyone.
func testSMARTDiscovery(t *testing.T, c *client, _ string) {
	anon := c.srv.with(t, "")
	conf := anon.do(http.MethodGet, "/.well-known/smart-configuration", nil).want(t, http.StatusOK).json()
	if conf["token_endpoint"] != c.base+"/auth/token" || conf["jwks_uri"] != c.base+"/auth/jwks" {
		t.Fatalf("smart-configuration endpoints: %v", conf)
	}
	for field, want := range map[string]string{"grant_types_supported": "client_credentials",
		"token_endpoint_auth_methods_supported": "private_key_jwt", "token_endpoint_auth_signing_alg_values_supported": "ES384",
		"capabilities": "permission-v2"} {
		if !slices.Contains(toStrings(conf[field]), want) {
			t.Errorf("smart-configuration %s = %v lacks %s", field, conf[field], want)
		}
	}
	meta := anon.do(http.MethodGet, "/metadata", nil).want(t, http.StatusOK).json()
	sec, _ := meta["rest"].([]any)[0].(map[string]any)["security"].(map[string]any)
	raw, _ := json.Marshal(sec)
	if !strings.Contains(string(raw), `"code":"SMART-on-FHIR"`) || !strings.Contains(string(raw), `"valueUri":"`+c.base+`/auth/token"`) {
		t.Fatalf("CapabilityStatement security: %s", raw)
	}
	jwks := anon.do(http.MethodGet, "/auth/jwks", nil).want(t, http.StatusOK)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks.body, &set); err != nil || len(set.Keys) == 0 || !set.Keys[0].IsPublic() {
		t.Fatalf("/auth/jwks: %s", jwks.body)
	}
}
