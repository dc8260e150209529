package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/ehrledger/ehrledger/auth"
)

const (
	issuerA  = "https://as-a.example"
	issuerB  = "https://as-b.example"
	audience = "https://fhir.example/r4"
)

// signingKey is a private key with the kid and algorithm it signs with.
type signingKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv any
}

// public returns the key as published in a JWKS.
func (k signingKey) public() jose.JSONWebKey {
	var pub any
	switch p := k.priv.(type) {
	case *rsa.PrivateKey:
		pub = &p.PublicKey
	case *ecdsa.PrivateKey:
		pub = &p.PublicKey
	}
	return jose.JSONWebKey{Key: pub, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// withKid returns the same key under another kid.
func (k signingKey) withKid(kid string) signingKey { k.kid = kid; return k }

// rsaKey and ecKey make test keys (2048-bit RSA; ECDSA on a curve).
func rsaKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func ecKey(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

var testKeys = sync.OnceValue(func() map[string]signingKey {
	return map[string]signingKey{
		"a-rsa":   {kid: "a-rsa", alg: jose.RS256, priv: rsaKey()},
		"a-ec":    {kid: "a-ec", alg: jose.ES256, priv: ecKey(elliptic.P256())},
		"a-ec384": {kid: "a-ec384", alg: jose.ES384, priv: ecKey(elliptic.P384())},
		"a-rsa2":  {kid: "a-rsa2", alg: jose.RS256, priv: rsaKey()},
		"b-rsa":   {kid: "b-rsa", alg: jose.RS256, priv: rsaKey()},
	}
})

func key(name string) signingKey { return testKeys()[name] }

// sign makes a JWT with the given claims, signed by k with its kid.
func sign(t testing.TB, k signingKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// jwksServer serves a replaceable JWKS on loopback and counts requests.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	status  int
	fetches atomic.Int32
}

func newJWKSServer(t testing.TB, keys ...signingKey) *jwksServer {
	s := &jwksServer{status: http.StatusOK}
	s.setKeys(keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.status != http.StatusOK {
			w.WriteHeader(s.status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(keys ...signingKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = nil
	for _, k := range keys {
		s.keys = append(s.keys, k.public())
	}
}

func (s *jwksServer) setStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a verifier trusting issuer A (RSA and EC keys) and issuer B.
type fixture struct {
	clock *clock
	a, b  *jwksServer
	v     *auth.Verifier
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		clock: &clock{t: time.Unix(1_800_000_000, 0)},
		a:     newJWKSServer(t, key("a-rsa"), key("a-ec"), key("a-ec384")),
		b:     newJWKSServer(t, key("b-rsa")),
	}
	v, err := auth.NewVerifier(auth.Config{
		Issuers:  []auth.Issuer{{URL: issuerA, JWKSURL: f.a.URL + "/jwks"}, {URL: issuerB, JWKSURL: f.b.URL}},
		Audience: audience,
		Now:      f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.v = v
	return f
}

// claims returns a valid claim set for issuer iss at the fixture's time.
func (f *fixture) claims(iss string) map[string]any {
	now := f.clock.Now()
	return map[string]any{
		"iss":       iss,
		"sub":       "user-1",
		"aud":       audience,
		"exp":       now.Add(5 * time.Minute).Unix(),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"jti":       "jti-1",
		"client_id": "app-1",
		"scope":     "openid fhirUser launch/patient patient/Observation.rs patient/Observation.sr",
		"patient":   "p-123",
		"fhirUser":  "https://fhir.example/r4/Practitioner/dr-1",
	}
}

func (f *fixture) verify(tok string) (*auth.Claims, error) {
	return f.v.Verify(context.Background(), tok)
}

// wantReason checks that err is a token refusal for the given reason.
func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("token accepted, want refusal %q", reason)
	}
	if !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("error %v does not wrap ErrInvalidToken", err)
	}
	if got := auth.Reason(err); got != reason {
		t.Fatalf("reason %q (%v), want %q", got, err, reason)
	}
}

func TestVerifyValidRS256(t *testing.T) {
	f := newFixture(t)
	c, err := f.verify(sign(t, key("a-rsa"), f.claims(issuerA)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != issuerA || c.Subject != "user-1" || c.ClientID != "app-1" || c.ID != "jti-1" ||
		c.Patient != "p-123" || c.FHIRUser != "https://fhir.example/r4/Practitioner/dr-1" {
		t.Errorf("claims = %+v", c)
	}
	if !c.Expiry.Equal(f.clock.Now().Add(5 * time.Minute)) {
		t.Errorf("Expiry = %v", c.Expiry)
	}
	if c.RawScope != "openid fhirUser launch/patient patient/Observation.rs patient/Observation.sr" {
		t.Errorf("RawScope = %q", c.RawScope)
	}
	if len(c.Scopes) != 4 || !c.Scopes.Contains("launch/patient") {
		t.Errorf("Scopes = %+v", c.Scopes)
	}
	if !slices.Equal(c.IgnoredScopes, []string{"patient/Observation.sr"}) {
		t.Errorf("IgnoredScopes = %q", c.IgnoredScopes)
	}
	if g, ok := c.Scopes.Allow("Observation", auth.Read); !ok || !g.PatientOnly() {
		t.Errorf("Allow(Observation, read) = %+v, %v", g, ok)
	}
	if c.PurposeOfUse != nil {
		t.Errorf("PurposeOfUse = %q", c.PurposeOfUse)
	}
}

func TestVerifyValidEC(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"a-ec", "a-ec384"} {
		if _, err := f.verify(sign(t, key(name), f.claims(issuerA))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Issuer B's own tokens are accepted too.
	if _, err := f.verify(sign(t, key("b-rsa"), f.claims(issuerB))); err != nil {
		t.Errorf("issuer B: %v", err)
	}
	if n := f.a.fetches.Load(); n != 1 {
		t.Errorf("JWKS A fetched %d times, want 1", n)
	}
}

func TestVerifyTimes(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	cases := []struct {
		name   string
		set    map[string]any
		reason string // "" for accepted
	}{
		{"expired", map[string]any{"exp": now.Add(-time.Minute).Unix()}, auth.ReasonExpired},
		{"expired within leeway", map[string]any{"exp": now.Add(-10 * time.Second).Unix()}, ""},
		{"nbf in the future", map[string]any{"nbf": now.Add(5 * time.Minute).Unix()}, auth.ReasonNotYet},
		{"nbf within leeway", map[string]any{"nbf": now.Add(20 * time.Second).Unix()}, ""},
		{"iat in the future", map[string]any{"iat": now.Add(5 * time.Minute).Unix()}, auth.ReasonNotYet},
		{"missing exp", map[string]any{"exp": nil}, auth.ReasonNoExpiry},
		{"exp not a number", map[string]any{"exp": "tomorrow"}, auth.ReasonClaims},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl := f.claims(issuerA)
			for k, v := range tc.set {
				if v == nil {
					delete(cl, k)
				} else {
					cl[k] = v
				}
			}
			_, err := f.verify(sign(t, key("a-rsa"), cl))
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantReason(t, err, tc.reason)
		})
	}
}

func TestVerifyAudience(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		aud any
		ok  bool
	}{
		{"https://other.example/r4", false},
		{"https://fhir.example", false},
		{"https://fhir.example/r4/", true},
		{[]string{"https://other.example", audience}, true},
		{[]string{}, false},
		{nil, false},
	}
	for _, tc := range cases {
		cl := f.claims(issuerA)
		if tc.aud == nil {
			delete(cl, "aud")
		} else {
			cl["aud"] = tc.aud
		}
		_, err := f.verify(sign(t, key("a-rsa"), cl))
		if tc.ok {
			if err != nil {
				t.Errorf("aud %v: %v", tc.aud, err)
			}
			continue
		}
		if auth.Reason(err) != auth.ReasonAudience {
			t.Errorf("aud %v: err %v, want audience refusal", tc.aud, err)
		}
	}
}

func TestVerifyIssuer(t *testing.T) {
	f := newFixture(t)
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa"), f.claims("https://evil.example")))), auth.ReasonIssuer)
	cl := f.claims(issuerA)
	delete(cl, "iss")
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa"), cl))), auth.ReasonIssuer)

	// Issuer A's token signed with issuer B's key: B's kid is not in A's
	// keys, and B's key under A's kid does not verify.
	wantReason(t, errOf(f.verify(sign(t, key("b-rsa"), f.claims(issuerA)))), auth.ReasonUnknownKey)
	wantReason(t, errOf(f.verify(sign(t, key("b-rsa").withKid("a-rsa"), f.claims(issuerA)))), auth.ReasonSignature)
	// And the other way round.
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa"), f.claims(issuerB)))), auth.ReasonUnknownKey)
}

func errOf(_ *auth.Claims, err error) error { return err }

func TestVerifyUnknownKid(t *testing.T) {
	f := newFixture(t)
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa").withKid("nope"), f.claims(issuerA)))), auth.ReasonUnknownKey)
	// The EC key's kid with an RSA signature: the key does not fit RS256.
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa").withKid("a-ec"), f.claims(issuerA)))), auth.ReasonAlgorithm)
	// A token without kid.
	k := key("a-rsa").withKid("")
	wantReason(t, errOf(f.verify(sign(t, k, f.claims(issuerA)))), auth.ReasonUnknownKey)
}

func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	if _, err := f.verify(sign(t, key("a-rsa"), f.claims(issuerA))); err != nil {
		t.Fatal(err)
	}
	if n := f.a.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	// The issuer rotates: the old key is withdrawn, a new kid appears.
	f.a.setKeys(key("a-rsa2"))
	f.clock.Add(11 * time.Second)
	if _, err := f.verify(sign(t, key("a-rsa2"), f.claims(issuerA))); err != nil {
		t.Fatalf("new kid after rotation: %v", err)
	}
	if n := f.a.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	// The withdrawn key is gone from the cache; within RefetchEvery no
	// fetch happens for it.
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa"), f.claims(issuerA)))), auth.ReasonUnknownKey)
	// Another unknown kid within RefetchEvery: refused without a fetch,
	// even though the issuer now publishes it.
	f.a.setKeys(key("a-rsa2"), key("a-rsa").withKid("a-rsa3"))
	f.clock.Add(5 * time.Second)
	tok3 := func() string { return sign(t, key("a-rsa").withKid("a-rsa3"), f.claims(issuerA)) }
	wantReason(t, errOf(f.verify(tok3())), auth.ReasonUnknownKey)
	if n := f.a.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d within RefetchEvery, want 2", n)
	}
	// Once RefetchEvery has passed, the next unknown kid triggers a fetch.
	f.clock.Add(6 * time.Second)
	if _, err := f.verify(tok3()); err != nil {
		t.Fatalf("kid published later: %v", err)
	}
	if n := f.a.fetches.Load(); n != 3 {
		t.Fatalf("fetches = %d, want 3", n)
	}
	// Known kids cause no fetch.
	for range 5 {
		if _, err := f.verify(sign(t, key("a-rsa2"), f.claims(issuerA))); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.a.fetches.Load(); n != 3 {
		t.Fatalf("fetches = %d after known kids, want 3", n)
	}
	// Issuer B was never needed.
	if n := f.b.fetches.Load(); n != 0 {
		t.Errorf("JWKS B fetched %d times, want 0", n)
	}
}

func TestStaleKeysAreRefreshed(t *testing.T) {
	f := newFixture(t)
	if _, err := f.verify(sign(t, key("a-rsa"), f.claims(issuerA))); err != nil {
		t.Fatal(err)
	}
	// The issuer withdraws a-rsa quietly; after an hour the cache is
	// refreshed and the withdrawn key stops working.
	f.a.setKeys(key("a-ec"))
	f.clock.Add(2 * time.Hour)
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa"), f.claims(issuerA)))), auth.ReasonUnknownKey)
	if n := f.a.fetches.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2", n)
	}
}

func TestJWKSDownKeepsCachedKeys(t *testing.T) {
	f := newFixture(t)
	if _, err := f.verify(sign(t, key("a-rsa"), f.claims(issuerA))); err != nil {
		t.Fatal(err)
	}
	f.a.setStatus(http.StatusServiceUnavailable)
	f.clock.Add(2 * time.Hour) // keys stale: a refresh is tried and fails
	if _, err := f.verify(sign(t, key("a-rsa"), f.claims(issuerA))); err != nil {
		t.Fatalf("cached key after failed refresh: %v", err)
	}
	if n := f.a.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	// An unknown kid now: refused, and no new attempt within RefetchEvery.
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa2"), f.claims(issuerA)))), auth.ReasonUnknownKey)
	if n := f.a.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	// The server goes away entirely.
	f.a.Close()
	f.clock.Add(11 * time.Second)
	_, err := f.verify(sign(t, key("a-rsa2"), f.claims(issuerA)))
	wantReason(t, err, auth.ReasonUnknownKey)
	if !strings.Contains(err.Error(), "refresh failed") {
		t.Errorf("error does not tell the refresh failed: %v", err)
	}
	for _, name := range []string{"a-rsa", "a-ec"} {
		if _, err := f.verify(sign(t, key(name), f.claims(issuerA))); err != nil {
			t.Errorf("cached key %s with JWKS down: %v", name, err)
		}
	}
}

func TestJWKSFirstFetchFails(t *testing.T) {
	f := newFixture(t)
	f.a.setStatus(http.StatusInternalServerError)
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa"), f.claims(issuerA)))), auth.ReasonUnknownKey)
	f.a.setStatus(http.StatusOK)
	f.clock.Add(11 * time.Second)
	if _, err := f.verify(sign(t, key("a-rsa"), f.claims(issuerA))); err != nil {
		t.Fatalf("after JWKS recovery: %v", err)
	}
}

func TestTampering(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"a-rsa", "a-ec"} {
		tok := sign(t, key(name), f.claims(issuerA))
		parts := strings.Split(tok, ".")

		// Payload changed, signature kept.
		cl := f.claims(issuerA)
		cl["patient"] = "p-999"
		payload, _ := json.Marshal(cl)
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		wantReason(t, errOf(f.verify(forged)), auth.ReasonSignature)

		// Signature changed in its middle.
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			t.Fatal(err)
		}
		sig[len(sig)/2] ^= 0x01
		forged = parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		wantReason(t, errOf(f.verify(forged)), auth.ReasonSignature)

		// Signature removed.
		wantReason(t, errOf(f.verify(parts[0]+"."+parts[1]+".")), auth.ReasonSignature)
	}
}

func TestAlgNone(t *testing.T) {
	f := newFixture(t)
	for _, alg := range []string{"none", "None", "NONE"} {
		header, _ := json.Marshal(map[string]string{"alg": alg, "kid": "a-rsa", "typ": "JWT"})
		payload, _ := json.Marshal(f.claims(issuerA))
		tok := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
		wantReason(t, errOf(f.verify(tok)), auth.ReasonAlgorithm)
	}
}

func TestHS256WithPublicKeyBytes(t *testing.T) {
	f := newFixture(t)
	pub := &key("a-rsa").priv.(*rsa.PrivateKey).PublicKey
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, err := key("a-rsa").public().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range [][]byte{pemBytes, der, jwkJSON} {
		for _, alg := range []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512} {
			hs := signingKey{kid: "a-rsa", alg: alg, priv: secret}
			wantReason(t, errOf(f.verify(sign(t, hs, f.claims(issuerA)))), auth.ReasonAlgorithm)
		}
	}
}

func TestOtherAlgorithmsRefused(t *testing.T) {
	f := newFixture(t)
	// PS256 with the published RSA key is a valid signature, but not an
	// accepted algorithm.
	k := key("a-rsa")
	k.alg = jose.PS256
	wantReason(t, errOf(f.verify(sign(t, k, f.claims(issuerA)))), auth.ReasonAlgorithm)
	// The JWK says RS256; a token claiming RS384 with it is refused.
	k.alg = jose.RS384
	wantReason(t, errOf(f.verify(sign(t, k, f.claims(issuerA)))), auth.ReasonAlgorithm)
}

func TestMalformedTokens(t *testing.T) {
	f := newFixture(t)
	for _, tok := range []string{"", "abc", "a.b", "a.b.c.d", "!!!.!!!.!!!", strings.Repeat("a", 70_000)} {
		wantReason(t, errOf(f.verify(tok)), auth.ReasonMalformed)
	}
	// A JSON serialization is not a compact JWT.
	wantReason(t, errOf(f.verify(`{"payload":"e30","signatures":[]}`)), auth.ReasonMalformed)
	// A signed payload that is not a claims object.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key("a-rsa").priv, KeyID: "a-rsa"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := signer.Sign([]byte(`["not","claims"]`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := obj.CompactSerialize()
	wantReason(t, errOf(f.verify(raw)), auth.ReasonClaims)
}

func TestPurposeOfUse(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		pou  any
		want []string
		ok   bool
	}{
		{"TREAT", []string{"TREAT"}, true},
		{[]string{"TREAT", "ETREAT"}, []string{"TREAT", "ETREAT"}, true},
		{[]string{}, []string{}, true},
		{42, nil, false},
		{[]any{"TREAT", 1}, nil, false},
		{"", nil, false},
	}
	for _, tc := range cases {
		cl := f.claims(issuerA)
		cl["purpose_of_use"] = tc.pou
		c, err := f.verify(sign(t, key("a-ec"), cl))
		if !tc.ok {
			if auth.Reason(err) != auth.ReasonClaims {
				t.Errorf("purpose_of_use %v: err %v, want claims refusal", tc.pou, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("purpose_of_use %v: %v", tc.pou, err)
			continue
		}
		if !slices.Equal(c.PurposeOfUse, tc.want) {
			t.Errorf("purpose_of_use %v: got %q, want %q", tc.pou, c.PurposeOfUse, tc.want)
		}
	}
}

func TestOtherClaims(t *testing.T) {
	f := newFixture(t)
	// client_id falls back to azp, then sub.
	cl := f.claims(issuerA)
	delete(cl, "client_id")
	cl["azp"] = "app-azp"
	c, err := f.verify(sign(t, key("a-rsa"), cl))
	if err != nil || c.ClientID != "app-azp" {
		t.Fatalf("azp: %+v, %v", c, err)
	}
	delete(cl, "azp")
	if c, err = f.verify(sign(t, key("a-rsa"), cl)); err != nil || c.ClientID != "user-1" {
		t.Fatalf("sub: %+v, %v", c, err)
	}
	// Scopes as an array in "scp".
	cl = f.claims(issuerA)
	delete(cl, "scope")
	cl["scp"] = []string{"system/*.rs", "openid"}
	if c, err = f.verify(sign(t, key("a-rsa"), cl)); err != nil || c.RawScope != "system/*.rs openid" || len(c.Scopes) != 2 {
		t.Fatalf("scp: %+v, %v", c, err)
	}
	// A patient claim that is not a FHIR id, and a scope of the wrong type.
	for claim, v := range map[string]any{"patient": "Patient/1 OR 1=1", "scope": 7, "client_id": true} {
		cl = f.claims(issuerA)
		cl[claim] = v
		wantReason(t, errOf(f.verify(sign(t, key("a-rsa"), cl))), auth.ReasonClaims)
	}
}

func TestChallenge(t *testing.T) {
	f := newFixture(t)
	if got := auth.Challenge(nil); got != "Bearer" {
		t.Errorf("Challenge(nil) = %q", got)
	}
	_, err := f.verify(sign(t, key("a-rsa"), f.claims("https://evil.example/\"\r\nX-Injected: 1")))
	wantReason(t, err, auth.ReasonIssuer)
	got := auth.Challenge(err)
	if want := `Bearer error="invalid_token", error_description="issuer"`; got != want {
		t.Errorf("Challenge = %q, want %q", got, want)
	}
	if strings.ContainsAny(got, "\r\n") || strings.Contains(got, "evil") {
		t.Errorf("Challenge leaks token contents: %q", got)
	}
	if got := auth.Challenge(errors.New("boom\n\"x\"")); got != `Bearer error="invalid_token", error_description="the access token is not valid"` {
		t.Errorf("Challenge(other) = %q", got)
	}
}

func TestConcurrentFirstUseFetchesOnce(t *testing.T) {
	f := newFixture(t)
	tok := sign(t, key("a-rsa"), f.claims(issuerA))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			if _, err := f.verify(tok); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := f.a.fetches.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
}

func TestJWKSLimitsAndOddKeys(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[`))
		pad := strings.Repeat(" ", 64<<10)
		for range 20 {
			w.Write([]byte(pad))
		}
		w.Write([]byte(`]}`))
	}))
	t.Cleanup(big.Close)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	odd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		good, _ := key("a-ec").public().MarshalJSON()
		weak, _ := (&jose.JSONWebKey{Key: &small.PublicKey, KeyID: "weak", Algorithm: "RS256"}).MarshalJSON()
		enc := key("a-rsa").public()
		enc.Use = "enc"
		encJSON, _ := enc.MarshalJSON()
		sym, _ := (&jose.JSONWebKey{Key: []byte("secret-secret-secret-secret-1234"), KeyID: "sym"}).MarshalJSON()
		w.Write([]byte(`{"keys":[{"kty":"weird","kid":"x"},` + string(weak) + `,` + string(encJSON) + `,` + string(sym) + `,` + string(good) + `]}`))
	}))
	t.Cleanup(odd.Close)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	v, err := auth.NewVerifier(auth.Config{
		Issuers:  []auth.Issuer{{URL: issuerA, JWKSURL: odd.URL}, {URL: issuerB, JWKSURL: big.URL}},
		Audience: audience,
		Now:      c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{clock: c, v: v}
	if _, err := f.verify(sign(t, key("a-ec"), f.claims(issuerA))); err != nil {
		t.Errorf("good key beside odd ones: %v", err)
	}
	weak := signingKey{kid: "weak", alg: jose.RS256, priv: small}
	wantReason(t, errOf(f.verify(sign(t, weak, f.claims(issuerA)))), auth.ReasonUnknownKey)
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa"), f.claims(issuerA)))), auth.ReasonUnknownKey)
	_, err = f.verify(sign(t, key("b-rsa"), f.claims(issuerB)))
	wantReason(t, err, auth.ReasonUnknownKey)
	if !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized JWKS error: %v", err)
	}
}

func TestNewVerifierChecksConfig(t *testing.T) {
	ok := auth.Issuer{URL: issuerA, JWKSURL: "https://as-a.example/jwks"}
	cases := map[string]auth.Config{
		"no issuer": {Audience: audience},
		"weak static key": {Issuers: []auth.Issuer{{URL: "/auth", Keys: []jose.JSONWebKey{
			{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "k"}}}}},
		"static key without kid": {Issuers: []auth.Issuer{{URL: "/auth", Keys: []jose.JSONWebKey{
			{Key: &key("a-ec").priv.(*ecdsa.PrivateKey).PublicKey}}}}},
		"negative leeway":    {Issuers: []auth.Issuer{ok}, Audience: audience, Leeway: -time.Second},
		"negative refetch":   {Issuers: []auth.Issuer{ok}, Audience: audience, RefetchEvery: -time.Second},
		"issuer without URL": {Issuers: []auth.Issuer{{JWKSURL: ok.JWKSURL}}, Audience: audience},
		"duplicate issuer":   {Issuers: []auth.Issuer{ok, ok}, Audience: audience},
		"relative JWKS":      {Issuers: []auth.Issuer{{URL: issuerA, JWKSURL: "/jwks"}}, Audience: audience},
		"file JWKS":          {Issuers: []auth.Issuer{{URL: issuerA, JWKSURL: "file:///etc/jwks"}}, Audience: audience},
		"no JWKS":            {Issuers: []auth.Issuer{{URL: issuerA}}, Audience: audience},
	}
	for name, cfg := range cases {
		if _, err := auth.NewVerifier(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := auth.NewVerifier(auth.Config{Issuers: []auth.Issuer{ok}, Audience: audience}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// TestEmbeddedIssuer checks an issuer named relative to the audience, with
// configured keys: the issuer at <base>/auth for whatever base a request
// reached.
func TestEmbeddedIssuer(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	priv := key("a-ec")
	v, err := auth.NewVerifier(auth.Config{
		Issuers: []auth.Issuer{{URL: "/auth", Keys: []jose.JSONWebKey{{Key: priv.priv, KeyID: priv.kid}}}},
		Now:     c.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{clock: c, v: v}
	ctx := context.Background()
	for _, base := range []string{"http://127.0.0.1:8080", "https://ehr.example/fhir"} {
		cl := f.claims(base + "/auth")
		cl["aud"] = base
		tok := sign(t, priv, cl)
		if _, err := v.VerifyAt(ctx, tok, base); err != nil {
			t.Errorf("token of %s/auth at %s: %v", base, base, err)
		}
		if _, err := v.VerifyAt(ctx, tok, base+"/"); err != nil {
			t.Errorf("trailing slash on the audience: %v", err)
		}
	}
	cl := f.claims("http://127.0.0.1:8080/auth")
	cl["aud"] = "http://127.0.0.1:8080"
	tok := sign(t, priv, cl)
	// Presented at another base, the issuer is another one.
	wantReason(t, errOf(v.VerifyAt(ctx, tok, "http://localhost:8080")), auth.ReasonIssuer)
	// The issuer's own audience must still match.
	cl["iss"] = "http://localhost:8080/auth"
	wantReason(t, errOf(v.VerifyAt(ctx, sign(t, priv, cl), "http://localhost:8080")), auth.ReasonAudience)
	// Other keys, and the path's neighbours, are not the issuer.
	cl = f.claims("http://h/auth")
	cl["aud"] = "http://h"
	wantReason(t, errOf(v.VerifyAt(ctx, sign(t, key("a-ec").withKid("other"), cl), "http://h")), auth.ReasonUnknownKey)
	wantReason(t, errOf(v.VerifyAt(ctx, sign(t, key("a-rsa").withKid(priv.kid), cl), "http://h")), auth.ReasonAlgorithm)
	cl["iss"] = "http://h/auth2"
	wantReason(t, errOf(v.VerifyAt(ctx, sign(t, priv, cl), "http://h")), auth.ReasonIssuer)
	// Without an audience nothing verifies.
	wantReason(t, errOf(v.Verify(ctx, tok)), auth.ReasonAudience)
}

func TestActorAndRolesClaims(t *testing.T) {
	f := newFixture(t)
	cl := f.claims(issuerA)
	cl["actor"] = "Organization/clinic"
	cl["roles"] = []string{"registry", "lab"}
	c, err := f.verify(sign(t, key("a-rsa"), cl))
	if err != nil {
		t.Fatal(err)
	}
	if c.Actor != "Organization/clinic" || !slices.Equal(c.Roles, []string{"registry", "lab"}) {
		t.Errorf("actor %q roles %q", c.Actor, c.Roles)
	}
	cl["actor"] = "clinic"
	wantReason(t, errOf(f.verify(sign(t, key("a-rsa"), cl))), auth.ReasonClaims)
}

// TestVerifiedTokenCache checks what remembering verified tokens may not
// change: an expired token is refused, a token is remembered for its
// audience only; and what it does: a token verified once is accepted
// again without its issuer's keys for the cache's TTL.
func TestVerifiedTokenCache(t *testing.T) {
	f := newFixture(t)
	tok := sign(t, key("a-rsa"), f.claims(issuerA))
	first, err := f.verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	// The issuer's keys go away: the remembered token still verifies,
	// with the same claims, and nothing is fetched.
	f.a.setStatus(http.StatusServiceUnavailable)
	again, err := f.verify(tok)
	if err != nil || again != first {
		t.Fatalf("remembered token: %v, same claims %v", err, again == first)
	}
	if n := f.a.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1", n)
	}
	// At another audience it is checked again, and refused.
	wantReason(t, errOf(f.v.VerifyAt(context.Background(), tok, "https://other.example/fhir")), auth.ReasonAudience)
	// Once it expires (past the leeway) it is refused, remembered or not.
	f.clock.Add(5*time.Minute + 31*time.Second)
	wantReason(t, errOf(f.verify(tok)), auth.ReasonExpired)

	// Without the cache every call verifies against the issuer's keys: a
	// token whose key the issuer withdrew is refused at its next use.
	g := newFixture(t)
	nc, err := auth.NewVerifier(auth.Config{Issuers: []auth.Issuer{{URL: issuerA, JWKSURL: g.a.URL, MaxLifetime: 4 * time.Hour}}, Audience: audience, Now: g.clock.Now, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	cl := g.claims(issuerA)
	cl["exp"] = g.clock.Now().Add(3 * time.Hour).Unix()
	tok = sign(t, key("a-rsa"), cl)
	if _, err := nc.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	g.a.setKeys(key("a-ec"))
	g.clock.Add(2 * time.Hour) // keys stale: refreshed, without a-rsa
	wantReason(t, errOf(nc.Verify(context.Background(), tok)), auth.ReasonUnknownKey)
}
