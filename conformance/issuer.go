package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is an authorization server of the suite's own on a loopback
// port, which the server under test is configured to trust
// (auth.issuers, --auth-issuer): the suite signs tokens with whatever
// claims a case needs, as a hospital's identity provider would.
type Issuer struct {
	// URL is the issuer identifier, the "iss" of its tokens.
	URL string
	// JWKSURL serves its public key.
	JWKSURL string
	key     *ecdsa.PrivateKey
	kid     string
}

// NewIssuer starts an issuer that lives until the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	i := &Issuer{key: key, kid: "suite-es256"}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: i.kid, Algorithm: "ES256", Use: "sig"}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	i.URL = srv.URL + "/issuer"
	i.JWKSURL = srv.URL + "/jwks"
	return i
}

// sign makes a token with claims, signed by the issuer's key under kid
// (its own when empty).
func (i *Issuer) sign(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	if kid == "" {
		kid = i.kid
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: i.key, KeyID: kid}},
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

// unsigned makes a token with alg "none".
func unsigned(claims map[string]any) string {
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "at+jwt"})
	body, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}
