package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/ehrledger/ehrledger/auth"
)

const (
	rsaClient     = "backend-rsa"
	ecClient      = "backend-ec"
	patientClient = "patient-app"
)

// asTestKeys are the keys of the authorization server tests: the clients'
// RSA-2048 and P-384 keys, the server's P-256 key, and keys nobody
// registered.
var asTestKeys = sync.OnceValue(func() map[string]any {
	return map[string]any{
		"client-rsa":  rsaKey(),
		"client-ec":   ecKey(elliptic.P384()),
		"server":      ecKey(elliptic.P256()),
		"stranger":    rsaKey(),
		"stranger-ec": ecKey(elliptic.P384()),
		"p256":        ecKey(elliptic.P256()),
	}
})

func asKey(name string) any { return asTestKeys()[name] }

// Signing keys of the registered clients, as their kid names them.
func clientRSA() signingKey {
	return signingKey{kid: "rsa-1", alg: jose.RS384, priv: asKey("client-rsa")}
}
func clientEC() signingKey { return signingKey{kid: "ec-1", alg: jose.ES384, priv: asKey("client-ec")} }

// asFixture is an authorization server mounted under /fhir/auth/ of a
// test HTTP server whose FHIR base is /fhir, with a settable clock.
type asFixture struct {
	t        *testing.T
	clock    *clock
	srv      *httptest.Server
	base     string // the FHIR base URL: the tokens' audience
	issuer   string
	tokenURL string
	jwksURL  string
	as       *auth.Server
	jti      atomic.Int64
}

func testClients() []auth.Client {
	scopes := func(s string) auth.Scopes {
		sc, ignored := auth.ParseScopes(s)
		if len(ignored) > 0 {
			panic(fmt.Sprint("bad test scopes ", ignored))
		}
		return sc
	}
	// The RSA key is published without "alg", so that only the server's
	// own algorithm list keeps RS256 and PS384 out.
	rsaPub := clientRSA().public()
	rsaPub.Algorithm = ""
	return []auth.Client{
		{
			ID:       rsaClient,
			Keys:     jose.JSONWebKeySet{Keys: []jose.JSONWebKey{rsaPub}},
			Actor:    "Organization/clinic",
			Name:     "Riverside Clinic, laboratory",
			Roles:    []string{"registry", "lab"},
			Purposes: []string{"TREAT", "HOPERAT"},
			Scopes:   scopes("system/Observation.rs system/Patient.r system/Condition.rs?category=problem-list-item patient/*.cruds user/Observation.rs ehrledger/admin"),
		},
		{
			ID:       ecClient,
			Keys:     jose.JSONWebKeySet{Keys: []jose.JSONWebKey{clientEC().public()}},
			Actor:    "Practitioner/123",
			Purposes: []string{"TREAT", "ETREAT", "PUBHLTH"},
			Scopes:   scopes("system/*.rs"),
		},
		{
			ID:       patientClient,
			Keys:     jose.JSONWebKeySet{Keys: []jose.JSONWebKey{clientEC().withKid("pt-1").public()}},
			Actor:    "Patient/p-1",
			Purposes: []string{"PATRQT"},
			Scopes:   scopes("patient/*.rs"),
			Patient:  "p-1",
		},
	}
}

func serverKey() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: asKey("server"), KeyID: "as-1"}
}

func newASFixture(t *testing.T, edit func(*auth.ServerConfig)) *asFixture {
	t.Helper()
	f := &asFixture{t: t, clock: &clock{t: time.Unix(1_800_000_000, 0)}}
	var handler http.Handler = http.NotFoundHandler()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	f.base = f.srv.URL + "/fhir"
	f.issuer = f.base + "/auth"
	f.tokenURL = f.base + "/auth/token"
	f.jwksURL = f.base + "/auth/jwks"
	registry, err := auth.NewStaticRegistry(testClients()...)
	if err != nil {
		t.Fatal(err)
	}
	cfg := auth.ServerConfig{
		BaseURL: func(*http.Request) string { return f.base },
		Clients: registry,
		Key:     serverKey(),
		Now:     f.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	as, err := auth.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.as = as
	mux := http.NewServeMux()
	mux.Handle("/fhir/auth/", http.StripPrefix("/fhir/auth", as))
	handler = mux
	return f
}

// assertion returns a valid client assertion for client signed by k, with
// a new jti, after edit changes its claims (deleting a claim when edit
// sets it to nil).
func (f *asFixture) assertion(client string, k signingKey, edit func(map[string]any)) string {
	f.t.Helper()
	now := f.clock.Now()
	c := map[string]any{
		"iss": client,
		"sub": client,
		"aud": f.tokenURL,
		"exp": now.Add(4 * time.Minute).Unix(),
		"iat": now.Unix(),
		"jti": fmt.Sprintf("jti-%d", f.jti.Add(1)),
	}
	if edit != nil {
		edit(c)
	}
	for name, v := range c {
		if v == nil {
			delete(c, name)
		}
	}
	return sign(f.t, k, c)
}

// form returns a complete token request form.
func tokenForm(assertion, scope string) url.Values {
	return url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
		"scope":                 {scope},
	}
}

// reply is a decoded answer of the server.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (f *asFixture) post(form url.Values) reply {
	f.t.Helper()
	return f.do(http.MethodPost, f.tokenURL, "application/x-www-form-urlencoded", form.Encode())
}

func (f *asFixture) do(method, u, contentType, body string) reply {
	f.t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			f.t.Fatalf("answer %d is not JSON: %v: %s", resp.StatusCode, err, raw)
		}
	}
	return r
}

// wantToken checks a successful token answer and returns it.
func (f *asFixture) wantToken(r reply) (token, scope string) {
	f.t.Helper()
	if r.status != http.StatusOK {
		f.t.Fatalf("status %d, want 200: %s", r.status, r.raw)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		f.t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if tt := r.body["token_type"]; tt != "bearer" {
		f.t.Errorf("token_type %v, want bearer", tt)
	}
	token, _ = r.body["access_token"].(string)
	scope, _ = r.body["scope"].(string)
	if token == "" {
		f.t.Fatalf("no access_token in %s", r.raw)
	}
	return token, scope
}

// wantError checks an error answer: status, code, JSON shape, and that the
// description repeats no part of the token sent.
func wantError(t *testing.T, r reply, status int, code, sent string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	if got := r.body["error"]; got != code {
		t.Fatalf("error %v, want %q: %s", got, code, r.raw)
	}
	desc, ok := r.body["error_description"].(string)
	if !ok || desc == "" {
		t.Fatalf("no error_description: %s", r.raw)
	}
	for part := range strings.SplitSeq(sent, ".") {
		if len(part) >= 8 && strings.Contains(r.raw, part) {
			t.Fatalf("answer echoes the token sent: %s", r.raw)
		}
	}
	if _, ok := r.body["access_token"]; ok {
		t.Fatalf("error answer carries an access token: %s", r.raw)
	}
}

// verifier returns a Verifier trusting the fixture's server through its
// JWKS endpoint.
func (f *asFixture) verifier() *auth.Verifier {
	f.t.Helper()
	v, err := auth.NewVerifier(auth.Config{
		Issuers:  []auth.Issuer{{URL: f.issuer, JWKSURL: f.jwksURL}},
		Audience: f.base,
		Now:      f.clock.Now,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// payload decodes the claims of a JWT without verifying it.
func payload(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func scopeStrings(s auth.Scopes) []string {
	var out []string
	for _, sc := range s {
		out = append(out, sc.String())
	}
	return out
}

func TestTokenIssuedAndVerified(t *testing.T) {
	f := newASFixture(t, nil)
	form := tokenForm(f.assertion(rsaClient, clientRSA(), nil),
		"openid launch system/Observation.rs system/Patient.r patient/Observation.rs user/Observation.rs system/Condition.rs?category=problem-list-item")
	form.Set("purpose_of_use", "TREAT")
	form.Set("client_id", rsaClient)
	tok, scope := f.wantToken(f.post(form))

	wantScope := "system/Observation.rs system/Patient.r user/Observation.rs system/Condition.rs?category=problem-list-item"
	if scope != wantScope {
		t.Errorf("scope %q, want %q", scope, wantScope)
	}
	claims, err := f.verifier().Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("the issued token does not verify: %v", err)
	}
	if claims.Issuer != f.issuer || claims.Subject != rsaClient || claims.ClientID != rsaClient {
		t.Errorf("iss %q sub %q client %q", claims.Issuer, claims.Subject, claims.ClientID)
	}
	if got := scopeStrings(claims.Scopes); !slices.Equal(got, strings.Fields(wantScope)) {
		t.Errorf("token scopes %q, want %q", got, wantScope)
	}
	if claims.RawScope != scope {
		t.Errorf("token scope %q differs from the answer's %q", claims.RawScope, scope)
	}
	if !slices.Equal(claims.PurposeOfUse, []string{"TREAT"}) {
		t.Errorf("purposes %q, want [TREAT]", claims.PurposeOfUse)
	}
	if want := f.clock.Now().Add(5 * time.Minute); !claims.Expiry.Equal(want) {
		t.Errorf("expiry %v, want %v", claims.Expiry, want)
	}
	if _, ok := claims.Scopes.Allow("Observation", auth.SearchType); !ok {
		t.Error("token does not allow searching Observation")
	}
	if _, ok := claims.Scopes.Allow("Patient", auth.SearchType); ok {
		t.Error("token allows searching Patient, granted only read")
	}
	if g, ok := claims.Scopes.Allow("Condition", auth.Read); !ok || g.Unconstrained() {
		t.Errorf("Condition read should be allowed under a constraint: %v %+v", ok, g)
	}

	header, raw := payload(t, tok)
	if header["alg"] != "ES256" || header["kid"] != "as-1" {
		t.Errorf("token header %v", header)
	}
	if raw["actor"] != "Organization/clinic" || raw["aud"] != f.base {
		t.Errorf("actor %v aud %v", raw["actor"], raw["aud"])
	}
	if roles, _ := raw["roles"].([]any); len(roles) != 2 || roles[0] != "registry" || roles[1] != "lab" {
		t.Errorf("roles %v", raw["roles"])
	}
	now := float64(f.clock.Now().Unix())
	if raw["iat"] != now || raw["nbf"] != now {
		t.Errorf("iat %v nbf %v, want %v", raw["iat"], raw["nbf"], now)
	}
	if jti, _ := raw["jti"].(string); len(jti) < 16 {
		t.Errorf("jti %q", jti)
	}

	// The token stops being accepted when it expires.
	f.clock.Add(5*time.Minute + time.Minute)
	if _, err := f.verifier().Verify(context.Background(), tok); auth.Reason(err) != auth.ReasonExpired {
		t.Errorf("expired token: %v", err)
	}
}

func TestTokenECClientDefaults(t *testing.T) {
	f := newASFixture(t, func(c *auth.ServerConfig) { c.Lifetime = 10 * time.Minute })
	r := f.post(tokenForm(f.assertion(ecClient, clientEC(), nil), "system/*.read system/Encounter.r system/Observation.cruds"))
	tok, scope := f.wantToken(r)
	if scope != "system/*.rs system/Encounter.r" {
		t.Errorf("scope %q", scope)
	}
	if r.body["expires_in"] != float64(600) {
		t.Errorf("expires_in %v, want 600", r.body["expires_in"])
	}
	claims, err := f.verifier().Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	// No purpose requested: all the client's purposes.
	if !slices.Equal(claims.PurposeOfUse, []string{"TREAT", "ETREAT", "PUBHLTH"}) {
		t.Errorf("purposes %q", claims.PurposeOfUse)
	}
	_, raw := payload(t, tok)
	if _, ok := raw["roles"]; ok {
		t.Errorf("roles present for a client without roles: %v", raw["roles"])
	}
	if raw["actor"] != "Practitioner/123" || raw["client_id"] != ecClient {
		t.Errorf("actor %v client_id %v", raw["actor"], raw["client_id"])
	}
}

func TestJWKSEndpoint(t *testing.T) {
	f := newASFixture(t, nil)
	r := f.do(http.MethodGet, f.jwksURL, "", "")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=300") {
		t.Errorf("Cache-Control %q", cc)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(r.raw), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys", len(set.Keys))
	}
	k := set.Keys[0]
	if k.KeyID != "as-1" || k.Algorithm != "ES256" || !k.IsPublic() {
		t.Errorf("key %q alg %q public %v", k.KeyID, k.Algorithm, k.IsPublic())
	}
	pub, ok := k.Key.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&asKey("server").(*ecdsa.PrivateKey).PublicKey) {
		t.Error("the JWKS does not hold the server's public key")
	}
	if strings.Contains(r.raw, `"d"`) {
		t.Error("the JWKS leaks the private key")
	}
	if r := f.do(http.MethodHead, f.jwksURL, "", ""); r.status != http.StatusOK {
		t.Errorf("HEAD jwks: %d", r.status)
	}
	if r := f.do(http.MethodPost, f.jwksURL, "", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST jwks: %d", r.status)
	}
}

func TestRouting(t *testing.T) {
	f := newASFixture(t, nil)
	r := f.do(http.MethodGet, f.tokenURL, "", "")
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != http.MethodPost {
		t.Errorf("GET token: %d Allow %q", r.status, r.header.Get("Allow"))
	}
	for _, p := range []string{"/auth/", "/auth/authorize", "/auth/token/", "/auth/tokens", "/auth/jwks.json"} {
		if r := f.do(http.MethodPost, f.srv.URL+p, "", ""); r.status != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", p, r.status)
		}
	}
}

func TestTokenRefusals(t *testing.T) {
	f := newASFixture(t, nil)
	hmac := signingKey{kid: "rsa-1", alg: jose.HS256, priv: []byte("0123456789abcdef0123456789abcdef")}
	cases := []struct {
		name   string
		form   func() url.Values
		status int
		code   string
	}{
		{"wrong grant_type", func() url.Values {
			v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
			v.Set("grant_type", "authorization_code")
			return v
		}, 400, "unsupported_grant_type"},
		{"no grant_type", func() url.Values {
			v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
			v.Del("grant_type")
			return v
		}, 400, "invalid_request"},
		{"wrong client_assertion_type", func() url.Values {
			v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
			v.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
			return v
		}, 401, "invalid_client"},
		{"no client_assertion_type", func() url.Values {
			v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
			v.Del("client_assertion_type")
			return v
		}, 401, "invalid_client"},
		{"no client_assertion", func() url.Values {
			return tokenForm("", "system/Observation.rs")
		}, 401, "invalid_client"},
		{"not a JWS", func() url.Values {
			return tokenForm("not-a-jwt", "system/Observation.rs")
		}, 401, "invalid_client"},
		{"unknown client", func() url.Values {
			return tokenForm(f.assertion("nobody", clientRSA(), nil), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"unknown kid", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA().withKid("rsa-2"), nil), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"key of another client", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientEC(), nil), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"bad signature", func() url.Values {
			k := signingKey{kid: "rsa-1", alg: jose.RS384, priv: asKey("stranger")}
			return tokenForm(f.assertion(rsaClient, k, nil), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"bad EC signature", func() url.Values {
			k := signingKey{kid: "ec-1", alg: jose.ES384, priv: asKey("stranger-ec")}
			return tokenForm(f.assertion(ecClient, k, nil), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"tampered claims", func() url.Values {
			good := strings.Split(f.assertion(rsaClient, clientRSA(), nil), ".")
			other := strings.Split(f.assertion(ecClient, clientEC(), nil), ".")
			return tokenForm(good[0]+"."+other[1]+"."+good[2], "system/Observation.rs")
		}, 401, "invalid_client"},
		{"RS256", func() url.Values {
			k := clientRSA()
			k.alg = jose.RS256
			return tokenForm(f.assertion(rsaClient, k, nil), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"PS384", func() url.Values {
			k := clientRSA()
			k.alg = jose.PS384
			return tokenForm(f.assertion(rsaClient, k, nil), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"ES256", func() url.Values {
			k := signingKey{kid: "ec-1", alg: jose.ES256, priv: asKey("p256")}
			return tokenForm(f.assertion(ecClient, k, nil), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"HS256", func() url.Values {
			return tokenForm(f.assertion(rsaClient, hmac, nil), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"none", func() url.Values {
			header, _ := json.Marshal(map[string]string{"alg": "none", "kid": "rsa-1"})
			claims, _ := json.Marshal(map[string]any{
				"iss": rsaClient, "sub": rsaClient, "aud": f.tokenURL, "jti": "none-1",
				"exp": f.clock.Now().Add(time.Minute).Unix(),
			})
			tok := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims) + "."
			return tokenForm(tok, "system/Observation.rs")
		}, 401, "invalid_client"},
		{"aud is the FHIR base", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["aud"] = f.base }), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"no aud", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["aud"] = nil }), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"iss is not sub", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["sub"] = ecClient }), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"client_id of another client", func() url.Values {
			v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
			v.Set("client_id", ecClient)
			return v
		}, 401, "invalid_client"},
		{"expired", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) {
				c["exp"] = f.clock.Now().Add(-time.Minute).Unix()
			}), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"exp too far ahead", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) {
				c["exp"] = f.clock.Now().Add(6 * time.Minute).Unix()
			}), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"no exp", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["exp"] = nil }), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"exp not a number", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["exp"] = "soon" }), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"nbf in the future", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) {
				c["nbf"] = f.clock.Now().Add(2 * time.Minute).Unix()
			}), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"no jti", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["jti"] = nil }), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"jti too long", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["jti"] = strings.Repeat("j", 300) }), "system/Observation.rs")
		}, 401, "invalid_client"},
		{"no scope", func() url.Values {
			v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "")
			v.Del("scope")
			return v
		}, 400, "invalid_request"},
		{"only an escalated scope", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/*.cruds")
		}, 400, "invalid_scope"},
		{"more permissions than allowed", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.cruds system/Patient.rs")
		}, 400, "invalid_scope"},
		{"only a patient scope", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), nil), "patient/Observation.rs")
		}, 400, "invalid_scope"},
		{"a user scope beyond the registered one", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), nil), "user/*.rs openid")
		}, 400, "invalid_scope"},
		{"a system scope for a patient's client", func() url.Values {
			return tokenForm(f.assertion(patientClient, clientEC().withKid("pt-1"), nil), "system/*.rs")
		}, 400, "invalid_scope"},
		{"constraint dropped", func() url.Values {
			return tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Condition.rs")
		}, 400, "invalid_scope"},
		{"purpose not allowed", func() url.Values {
			v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
			v.Set("purpose_of_use", "TREAT HRESCH")
			return v
		}, 400, "invalid_request"},
		{"repeated scope", func() url.Values {
			v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
			v.Add("scope", "system/Patient.r")
			return v
		}, 400, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			form := c.form()
			r := f.post(form)
			wantError(t, r, c.status, c.code, form.Get("client_assertion"))
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}

	// The description of a refused purpose names it.
	v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
	v.Set("purpose_of_use", "HRESCH")
	if r := f.post(v); !strings.Contains(r.body["error_description"].(string), "HRESCH") {
		t.Errorf("description %q does not name the purpose", r.body["error_description"])
	}
}

func TestTokenRequestShape(t *testing.T) {
	f := newASFixture(t, nil)
	form := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
	r := f.do(http.MethodPost, f.tokenURL, "application/json", `{"grant_type":"client_credentials"}`)
	wantError(t, r, 400, "invalid_request", "")

	// Parameters in the URL query are not read.
	r = f.do(http.MethodPost, f.tokenURL+"?"+form.Encode(), "application/x-www-form-urlencoded", "")
	wantError(t, r, 400, "invalid_request", "")

	// A body over 64 KiB is refused, one under it is read.
	big := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
	big.Set("padding", strings.Repeat("x", 70<<10))
	wantError(t, f.post(big), 400, "invalid_request", big.Get("client_assertion"))
	fits := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
	fits.Set("padding", strings.Repeat("x", 60<<10))
	f.wantToken(f.post(fits))

	// A charset parameter on the media type is accepted.
	r = f.do(http.MethodPost, f.tokenURL, "application/x-www-form-urlencoded; charset=utf-8", form.Encode())
	f.wantToken(r)
}

func TestScopeNarrowing(t *testing.T) {
	f := newASFixture(t, nil)
	cases := []struct{ ask, want string }{
		// Escalations are dropped, what is allowed is kept.
		{"system/*.cruds system/Observation.rs", "system/Observation.rs"},
		{"system/Observation.cruds system/Observation.r system/Observation.s", "system/Observation.r system/Observation.s"},
		// v1 permissions are granted in v2 form, repeats once.
		{"system/Observation.read system/Observation.rs", "system/Observation.rs"},
		// A constrained allowance grants requests carrying its constraint.
		{"system/Condition.r?category=problem-list-item&clinical-status=active", "system/Condition.r?category=problem-list-item&clinical-status=active"},
		// Malformed scopes are ignored.
		{"system/observation.rs system/Patient.r", "system/Patient.r"},
	}
	for _, c := range cases {
		_, scope := f.wantToken(f.post(tokenForm(f.assertion(rsaClient, clientRSA(), nil), c.ask)))
		if scope != c.want {
			t.Errorf("asking %q: granted %q, want %q", c.ask, scope, c.want)
		}
	}
}

func TestAssertionTimes(t *testing.T) {
	f := newASFixture(t, nil)
	// Clients commonly set exp exactly 5 minutes ahead.
	ok := f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["exp"] = f.clock.Now().Add(5 * time.Minute).Unix() })
	f.wantToken(f.post(tokenForm(ok, "system/Observation.rs")))
	// An assertion valid when made is refused once expired.
	late := f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["exp"] = f.clock.Now().Add(time.Minute).Unix() })
	f.clock.Add(2 * time.Minute)
	wantError(t, f.post(tokenForm(late, "system/Observation.rs")), 401, "invalid_client", late)
}

func TestAssertionReplay(t *testing.T) {
	f := newASFixture(t, nil)
	a := f.assertion(rsaClient, clientRSA(), nil)
	f.wantToken(f.post(tokenForm(a, "system/Observation.rs")))
	// The same assertion again, even for another scope, is refused.
	wantError(t, f.post(tokenForm(a, "system/Patient.r")), 401, "invalid_client", a)
	// A new jti is accepted.
	f.wantToken(f.post(tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")))

	// A jti is remembered per client: another client may use the same one.
	sameJTI := func(c map[string]any) { c["jti"] = "shared-jti" }
	f.wantToken(f.post(tokenForm(f.assertion(rsaClient, clientRSA(), sameJTI), "system/Observation.rs")))
	f.wantToken(f.post(tokenForm(f.assertion(ecClient, clientEC(), sameJTI), "system/Observation.rs")))
	b := f.assertion(rsaClient, clientRSA(), sameJTI)
	wantError(t, f.post(tokenForm(b, "system/Observation.rs")), 401, "invalid_client", b)

	// A refused assertion does not use up its jti.
	refused := f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["jti"] = "j-x"; c["aud"] = f.base })
	wantError(t, f.post(tokenForm(refused, "system/Observation.rs")), 401, "invalid_client", refused)
	f.wantToken(f.post(tokenForm(f.assertion(rsaClient, clientRSA(), func(c map[string]any) { c["jti"] = "j-x" }), "system/Observation.rs")))
}

func TestAssertionReplayConcurrent(t *testing.T) {
	f := newASFixture(t, nil)
	a := f.assertion(ecClient, clientEC(), nil)
	body := tokenForm(a, "system/Observation.rs").Encode()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, f.tokenURL, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d requests accepted the same assertion, want 1", wins.Load())
	}
}

func TestNewServerChecksConfig(t *testing.T) {
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	registry, err := auth.NewStaticRegistry(testClients()...)
	if err != nil {
		t.Fatal(err)
	}
	valid := func() auth.ServerConfig {
		return auth.ServerConfig{
			BaseURL: func(*http.Request) string { return "https://ehr.example/fhir" },
			Clients: registry,
			Key:     serverKey(),
		}
	}
	if _, err := auth.NewServer(valid()); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	rsaServer := valid()
	rsaServer.Key = &jose.JSONWebKey{Key: asKey("stranger"), KeyID: "as-rsa"}
	if _, err := auth.NewServer(rsaServer); err != nil {
		t.Fatalf("RSA server key refused: %v", err)
	}
	bad := map[string]func(*auth.ServerConfig){
		"no base URL":     func(c *auth.ServerConfig) { c.BaseURL = nil },
		"no registry":     func(c *auth.ServerConfig) { c.Clients = nil },
		"no key":          func(c *auth.ServerConfig) { c.Key = nil },
		"key without kid": func(c *auth.ServerConfig) { c.Key = &jose.JSONWebKey{Key: asKey("server")} },
		"public key": func(c *auth.ServerConfig) {
			c.Key = &jose.JSONWebKey{Key: &asKey("server").(*ecdsa.PrivateKey).PublicKey, KeyID: "k"}
		},
		"P-384 server key": func(c *auth.ServerConfig) { c.Key = &jose.JSONWebKey{Key: asKey("client-ec"), KeyID: "k"} },
		"small RSA key":    func(c *auth.ServerConfig) { c.Key = &jose.JSONWebKey{Key: rsaSmall, KeyID: "k"} },
		"key alg mismatch": func(c *auth.ServerConfig) {
			c.Key = &jose.JSONWebKey{Key: asKey("server"), KeyID: "k", Algorithm: "RS256"}
		},
		"symmetric key": func(c *auth.ServerConfig) {
			c.Key = &jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "k"}
		},
		"negative lifetime": func(c *auth.ServerConfig) { c.Lifetime = -time.Second },
		"lifetime over 1h":  func(c *auth.ServerConfig) { c.Lifetime = time.Hour + time.Second },
	}
	for name, edit := range bad {
		cfg := valid()
		edit(&cfg)
		if _, err := auth.NewServer(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRegistrationChecks(t *testing.T) {
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.NewStaticRegistry(testClients()...); err != nil {
		t.Fatalf("valid clients refused: %v", err)
	}
	bad := map[string]func([]auth.Client) []auth.Client{
		"duplicate client":  func(c []auth.Client) []auth.Client { return append(c, c[0]) },
		"client without id": func(c []auth.Client) []auth.Client { c[0].ID = ""; return c },
		"client key no kid": func(c []auth.Client) []auth.Client { c[0].Keys.Keys[0].KeyID = ""; return c },
		"client P-256 key": func(c []auth.Client) []auth.Client {
			c[1].Keys.Keys[0].Key = &asKey("p256").(*ecdsa.PrivateKey).PublicKey
			return c
		},
		"client RS256 key":     func(c []auth.Client) []auth.Client { c[0].Keys.Keys[0].Algorithm = "RS256"; return c },
		"client small RSA":     func(c []auth.Client) []auth.Client { c[0].Keys.Keys[0].Key = &rsaSmall.PublicKey; return c },
		"client without actor": func(c []auth.Client) []auth.Client { c[0].Actor = ""; return c },
		"client bad actor":     func(c []auth.Client) []auth.Client { c[0].Actor = "clinic"; return c },
		"client bad purpose":   func(c []auth.Client) []auth.Client { c[0].Purposes = []string{"TREAT", ""}; return c },
		"client bad patient":   func(c []auth.Client) []auth.Client { c[2].Patient = "p 1"; return c },
		"client bad scope": func(c []auth.Client) []auth.Client {
			c[0].Scopes = append(c[0].Scopes, auth.Scope{Raw: "two words"})
			return c
		},
	}
	for name, edit := range bad {
		if _, err := auth.NewStaticRegistry(edit(testClients())...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// A private client key is reduced to its public half and still works.
	f := newASFixture(t, func(c *auth.ServerConfig) {
		clients := testClients()
		clients[1].Keys.Keys[0] = jose.JSONWebKey{Key: asKey("client-ec"), KeyID: "ec-1"}
		r, err := auth.NewStaticRegistry(clients...)
		if err != nil {
			t.Fatal(err)
		}
		if k := r[ecClient].Keys.Keys[0]; !k.IsPublic() {
			t.Error("the registry keeps a private key")
		}
		c.Clients = r
	})
	f.wantToken(f.post(tokenForm(f.assertion(ecClient, clientEC(), nil), "system/Observation.rs")))
}

func TestRegistryCopiesClients(t *testing.T) {
	clients := testClients()
	r, err := auth.NewStaticRegistry(clients...)
	if err != nil {
		t.Fatal(err)
	}
	f := newASFixture(t, func(c *auth.ServerConfig) { c.Clients = r })
	// Changing the caller's slices after registration grants nothing more.
	clients[0].Scopes[0], _ = auth.ParseScope("system/*.cruds")
	clients[0].Purposes[0] = "HRESCH"
	_, scope := f.wantToken(f.post(tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/*.cruds system/Observation.rs")))
	if scope != "system/Observation.rs" {
		t.Errorf("scope %q", scope)
	}
	v := tokenForm(f.assertion(rsaClient, clientRSA(), nil), "system/Observation.rs")
	v.Set("purpose_of_use", "HRESCH")
	wantError(t, f.post(v), 400, "invalid_request", v.Get("client_assertion"))
}

func TestClientJSONRoundTrip(t *testing.T) {
	for _, c := range testClients() {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back auth.Client
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(b) {
			t.Errorf("round trip changed the client:\n%s\n%s", b, again)
		}
		if back.ID != c.ID || back.Actor != c.Actor || back.Patient != c.Patient || back.Name != c.Name || len(back.Keys.Keys) != len(c.Keys.Keys) ||
			!slices.Equal(scopeStrings(back.Scopes), scopeStrings(c.Scopes)) {
			t.Errorf("round trip lost fields: %+v", back)
		}
	}
	var c auth.Client
	if _, err := auth.CheckClient(auth.Client{ID: "x", Actor: "Organization/x", Name: "a\nb"}); err == nil {
		t.Error("a name with a line break was accepted")
	}
	if _, err := auth.CheckClient(auth.Client{ID: "x", Actor: "Organization/x", Name: strings.Repeat("n", 201)}); err == nil {
		t.Error("a name of 201 bytes was accepted")
	}
	if err := json.Unmarshal([]byte(`{"client_id":"x","actor":"Organization/x","scope":"system/observation.rs"}`), &c); err == nil {
		t.Error("a malformed scope in a registration was accepted")
	}
	if err := json.Unmarshal([]byte(`{"client_id":"x","actor":"Organization/x","scopes":"system/*.rs"}`), &c); err == nil {
		t.Error("a misspelt member in a registration was accepted")
	}
}

func TestPatientClient(t *testing.T) {
	f := newASFixture(t, nil)
	pt := clientEC().withKid("pt-1")
	r := f.post(tokenForm(f.assertion(patientClient, pt, nil), "patient/Observation.rs patient/*.cruds system/*.rs"))
	tok, scope := f.wantToken(r)
	if scope != "patient/Observation.rs" {
		t.Errorf("scope %q, want only the covered patient scope", scope)
	}
	if r.body["patient"] != "p-1" {
		t.Errorf("token answer patient %v, want p-1", r.body["patient"])
	}
	claims, err := f.verifier().Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Patient != "p-1" || claims.Actor != "Patient/p-1" || !slices.Equal(claims.PurposeOfUse, []string{"PATRQT"}) {
		t.Errorf("patient %q actor %q purposes %q", claims.Patient, claims.Actor, claims.PurposeOfUse)
	}
	if g, ok := claims.Scopes.Allow("Observation", auth.SearchType); !ok || !g.PatientOnly() {
		t.Errorf("patient token grant %+v %v, want patient-confined", g, ok)
	}
}

func TestIssue(t *testing.T) {
	f := newASFixture(t, nil)
	ctx := context.Background()
	tok, err := f.as.Issue(ctx, f.base, auth.TokenRequest{Client: rsaClient, Scope: "system/Observation.rs ehrledger/admin user/Observation.r openid", Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Scope != "system/Observation.rs ehrledger/admin user/Observation.r" || tok.ExpiresIn != 3600 {
		t.Errorf("scope %q expires_in %d", tok.Scope, tok.ExpiresIn)
	}
	claims, err := f.verifier().Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if !claims.Scopes.Contains(auth.AdminScope) || claims.Actor != "Organization/clinic" || !slices.Equal(claims.Roles, []string{"registry", "lab"}) {
		t.Errorf("claims %+v", claims)
	}

	// patient/ scopes need a patient; with one, the token carries it.
	if _, err := f.as.Issue(ctx, f.base, auth.TokenRequest{Client: rsaClient, Scope: "patient/*.rs"}); err == nil {
		t.Error("patient scope without a patient granted")
	}
	tok, err = f.as.Issue(ctx, f.base, auth.TokenRequest{Client: rsaClient, Scope: "patient/*.rs", Patient: "p-9"})
	if err != nil {
		t.Fatal(err)
	}
	if claims, err = f.verifier().Verify(ctx, tok.AccessToken); err != nil || claims.Patient != "p-9" {
		t.Fatalf("patient %v: %v", claims, err)
	}
	// A patient's client cannot have another patient in context.
	if _, err := f.as.Issue(ctx, f.base, auth.TokenRequest{Client: patientClient, Scope: "patient/*.rs", Patient: "p-2"}); err == nil {
		t.Error("a patient's client got another patient in context")
	}
	for name, req := range map[string]auth.TokenRequest{
		"unknown client":      {Client: "nobody", Scope: "system/*.rs"},
		"purpose not allowed": {Client: rsaClient, Scope: "system/Observation.rs", Purposes: []string{"HRESCH"}},
		"lifetime over 1h":    {Client: rsaClient, Scope: "system/Observation.rs", Lifetime: 2 * time.Hour},
		"escalated scope":     {Client: ecClient, Scope: "system/*.cruds"},
	} {
		if _, err := f.as.Issue(ctx, f.base, req); err == nil {
			t.Errorf("%s: issued", name)
		}
	}
	if _, err := f.as.Issue(ctx, f.base, auth.TokenRequest{Client: "nobody", Scope: "system/*.rs"}); !errors.Is(err, auth.ErrUnknownClient) {
		t.Errorf("unknown client: %v, want ErrUnknownClient", err)
	}
}

func TestKeylessClientCannotAuthenticate(t *testing.T) {
	f := newASFixture(t, func(c *auth.ServerConfig) {
		clients := testClients()
		clients[0].Keys = jose.JSONWebKeySet{}
		r, err := auth.NewStaticRegistry(clients...)
		if err != nil {
			t.Fatalf("a client without keys was refused: %v", err)
		}
		c.Clients = r
	})
	a := f.assertion(rsaClient, clientRSA(), nil)
	wantError(t, f.post(tokenForm(a, "system/Observation.rs")), 401, "invalid_client", a)
	if _, err := f.as.Issue(context.Background(), f.base, auth.TokenRequest{Client: rsaClient, Scope: "system/Observation.rs"}); err != nil {
		t.Errorf("Issue for a keyless client: %v", err)
	}
}
