package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"net/http"
	"testing"
	"time"

	"github.com/ehrledger/ehrledger/auth"
)

// BenchmarkVerify measures what authenticating one request costs: the
// whole verification of an access token of the embedded authorization
// server (ES256) and of an external issuer's RS256 token with cached
// keys, each at first use and again (answered by the verified-token
// cache), against the floor, one bare ECDSA P-256 signature check.
//
//	go test -run - -bench Verify -benchtime 2s ./auth/
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	base := "https://ehr.example/fhir"
	registry, err := auth.NewStaticRegistry(testClients()...)
	if err != nil {
		b.Fatal(err)
	}
	as, err := auth.NewServer(auth.ServerConfig{BaseURL: func(*http.Request) string { return base }, Clients: registry, Key: serverKey()})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := as.Issue(ctx, base, auth.TokenRequest{Client: rsaClient, Scope: "system/Observation.rs system/Patient.r", Lifetime: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	verifier := func(cacheSize int) *auth.Verifier {
		v, err := auth.NewVerifier(auth.Config{Issuers: []auth.Issuer{{URL: auth.EmbeddedIssuerPath, Keys: as.PublicKeys()}}, CacheSize: cacheSize})
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	b.Run("floor: one ECDSA P-256 check", func(b *testing.B) {
		priv := asKey("server").(*ecdsa.PrivateKey)
		digest := sha256.Sum256([]byte(tok.AccessToken))
		sig, _ := ecdsa.SignASN1(nil, priv, digest[:])
		for b.Loop() {
			if !ecdsa.VerifyASN1(&priv.PublicKey, digest[:], sig) {
				b.Fatal("bad signature")
			}
		}
	})
	for _, run := range []struct {
		name  string
		cache int
	}{{"embedded ES256 token, first use", -1}, {"embedded ES256 token, again", 0}} {
		b.Run(run.name, func(b *testing.B) {
			v := verifier(run.cache)
			for b.Loop() {
				if _, err := v.VerifyAt(ctx, tok.AccessToken, base); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("external RS256 token, first use", func(b *testing.B) {
		f := newFixture(b)
		f.clock.t = time.Now()
		v, err := auth.NewVerifier(auth.Config{Issuers: []auth.Issuer{{URL: issuerA, JWKSURL: f.a.URL}}, Audience: audience, CacheSize: -1})
		if err != nil {
			b.Fatal(err)
		}
		rs := sign(b, key("a-rsa"), f.claims(issuerA))
		for b.Loop() {
			if _, err := v.Verify(ctx, rs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scopes allow an interaction", func(b *testing.B) {
		scopes, _ := auth.ParseScopes("patient/Observation.rs?category=laboratory user/Observation.rs patient/*.read system/Patient.cruds")
		for b.Loop() {
			if _, ok := scopes.Allow("Observation", auth.SearchType); !ok {
				b.Fatal("refused")
			}
		}
	})
}
