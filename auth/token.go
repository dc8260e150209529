package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Issuer is an authorization server whose access tokens are accepted.
type Issuer struct {
	// URL is the issuer identifier, compared exactly with the "iss" claim.
	// A URL that starts with "/" is relative to the audience of each
	// verification: "/auth" names the issuer at <audience>/auth, whatever
	// base URL the request reached, which is how an authorization server
	// embedded in the resource server is named (EmbeddedIssuerPath).
	URL string
	// JWKSURL is the http or https URL of the issuer's JSON Web Key Set.
	// Outside tests it should be https: the keys it serves decide which
	// tokens are genuine. Leave it empty when Keys are given.
	JWKSURL string
	// Keys, when set, are the issuer's verification keys, used as they are
	// and never fetched: the embedded authorization server's own keys.
	Keys []jose.JSONWebKey
	// MaxLifetime bounds how long the issuer's tokens may be valid ("exp"
	// less "iat", or less now without "iat"): a token that long-lived,
	// once leaked, is good for too long. 0 means DefaultMaxLifetime; it
	// does not apply to an issuer given by its Keys.
	MaxLifetime time.Duration
}

// DefaultMaxLifetime is the longest validity of an external issuer's
// tokens by default.
const DefaultMaxLifetime = time.Hour

// Config configures a Verifier.
type Config struct {
	// Issuers are the trusted authorization servers; at least one.
	Issuers []Issuer
	// Audience is this server's FHIR base URL; the "aud" claim must
	// contain it (a trailing slash on either side is ignored). It may be
	// empty when every call names its audience (VerifyAt): a server
	// that derives its base URL from each request.
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat; 0 means 30s.
	Leeway time.Duration
	// HTTPClient fetches the JWKS; nil means a client with a 10s timeout.
	// Each fetch is bounded to 10s whatever the client.
	HTTPClient *http.Client
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// RefetchEvery is the least time between two JWKS fetches for one
	// issuer, when a token names a kid not in the cached keys; 0 means
	// 10s.
	RefetchEvery time.Duration
	// CacheSize bounds the verified tokens remembered, so that a client
	// sending its token with every request is not verified again each
	// time; 0 means DefaultCacheSize, a negative size turns the cache off.
	CacheSize int
	// CacheTTL is the longest a verified token is remembered; 0 means
	// DefaultCacheTTL. A remembered token is refused all the same once it
	// expires.
	CacheTTL time.Duration
}

// Defaults of the verified-token cache.
const (
	DefaultCacheSize = 10_000
	DefaultCacheTTL  = time.Minute
)

// Reasons of token refusals, as returned by Reason and shown in the
// error_description of Challenge.
const (
	// ReasonMalformed: not a compact JWS, or empty, or over 64 KiB.
	ReasonMalformed = "malformed"
	// ReasonAlgorithm: alg is not RS256, RS384, ES256 or ES384, or does
	// not fit the key named by kid.
	ReasonAlgorithm = "algorithm"
	// ReasonUnknownKey: no kid, or kid not in the issuer's JWKS.
	ReasonUnknownKey = "unknown key"
	// ReasonIssuer: iss is missing or not a configured issuer.
	ReasonIssuer = "issuer"
	// ReasonSignature: the signature does not verify.
	ReasonSignature = "signature"
	// ReasonClaims: a claim has the wrong type or syntax.
	ReasonClaims = "claims"
	// ReasonNoExpiry: exp is missing.
	ReasonNoExpiry = "no expiry"
	// ReasonExpired: exp has passed.
	ReasonExpired = "expired"
	// ReasonNotYet: nbf or iat is in the future.
	ReasonNotYet = "not yet valid"
	// ReasonAudience: aud does not contain the configured audience.
	ReasonAudience = "audience"
	// ReasonLifetime: the token is valid for longer than its issuer's
	// tokens may be (Issuer.MaxLifetime).
	ReasonLifetime = "lifetime"
)

const (
	defaultLeeway       = 30 * time.Second
	defaultRefetchEvery = 10 * time.Second
	// maxTokenBytes bounds the size of a token handed to Verify.
	maxTokenBytes = 64 << 10
)

// acceptedAlgs are the only signature algorithms Verify accepts.
var acceptedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.ES256, jose.ES384}

// Verifier checks JWT access tokens signed by the configured issuers. It is
// safe for concurrent use.
type Verifier struct {
	audience string
	leeway   time.Duration
	now      func() time.Time
	issuers  map[string]*keySet
	// relative are the issuers named relative to the audience, by path.
	relative map[string]*keySet
	// verified remembers tokens verified recently, by the SHA-256 of
	// audience and token (the token itself is not kept); nil when off.
	verified *expirable.LRU[[sha256.Size]byte, *Claims]
}

// NewVerifier checks cfg and returns a Verifier. It fetches nothing: each
// issuer's JWKS is fetched on the first token that needs it.
func NewVerifier(cfg Config) (*Verifier, error) {
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("auth: no issuer configured")
	}
	if cfg.Leeway < 0 || cfg.RefetchEvery < 0 || cfg.CacheTTL < 0 {
		return nil, errors.New("auth: negative leeway, refetch interval or cache TTL")
	}
	v := &Verifier{
		audience: strings.TrimSuffix(cfg.Audience, "/"),
		leeway:   cfg.Leeway,
		now:      cfg.Now,
		issuers:  map[string]*keySet{},
		relative: map[string]*keySet{},
	}
	if v.leeway == 0 {
		v.leeway = defaultLeeway
	}
	if v.now == nil {
		v.now = time.Now
	}
	every := cfg.RefetchEvery
	if every == 0 {
		every = defaultRefetchEvery
	}
	if cfg.CacheSize >= 0 {
		size, ttl := cfg.CacheSize, cfg.CacheTTL
		if size == 0 {
			size = DefaultCacheSize
		}
		if ttl == 0 {
			ttl = DefaultCacheTTL
		}
		v.verified = expirable.NewLRU[[sha256.Size]byte, *Claims](size, nil, ttl)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	for _, iss := range cfg.Issuers {
		if iss.URL == "" {
			return nil, errors.New("auth: issuer without URL")
		}
		set := v.issuers
		if strings.HasPrefix(iss.URL, "/") {
			set = v.relative
		}
		if _, dup := set[iss.URL]; dup {
			return nil, fmt.Errorf("auth: issuer %q configured twice", iss.URL)
		}
		if len(iss.Keys) > 0 {
			keys, err := staticKeys(iss.Keys)
			if err != nil {
				return nil, fmt.Errorf("auth: issuer %q: %w", iss.URL, err)
			}
			set[iss.URL] = keys
			continue
		}
		u, err := url.Parse(iss.JWKSURL)
		if err != nil {
			return nil, fmt.Errorf("auth: issuer %q: JWKS URL: %w", iss.URL, err)
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("auth: issuer %q: JWKS URL %q is not an absolute http(s) URL", iss.URL, iss.JWKSURL)
		}
		maxLifetime := iss.MaxLifetime
		if maxLifetime <= 0 {
			maxLifetime = DefaultMaxLifetime
		}
		set[iss.URL] = &keySet{url: iss.JWKSURL, client: client, now: v.now, every: every, maxLifetime: maxLifetime}
	}
	return v, nil
}

// Verify checks an access token (the part after "Bearer ") for the
// configured audience and returns its claims. See VerifyAt.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	return v.VerifyAt(ctx, raw, v.audience)
}

// VerifyAt checks an access token (the part after "Bearer ") presented
// at the FHIR base URL audience and returns its claims, which the caller
// must not change: a token verified within the cache's TTL is answered
// from memory with the same claims, after checking that it has not
// expired since. The token must be a JWS in compact form of at most 64 KiB,
// signed with RS256,
// RS384, ES256 or ES384 by a key of its issuer's JWKS named by the "kid"
// header; "iss" must be a configured issuer, "aud" must contain the
// audience, "exp" must be present and not passed, and "nbf" and "iat", if
// present, not in the future, all with the configured leeway. Every
// refusal wraps ErrInvalidToken; Reason tells why.
func (v *Verifier) VerifyAt(ctx context.Context, raw, audience string) (*Claims, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	audience = strings.TrimSuffix(audience, "/")
	if audience == "" {
		return nil, refuse(ReasonAudience, "no audience to check the token against", nil)
	}
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, refuse(ReasonMalformed, "empty or oversized token", nil)
	}
	var key [sha256.Size]byte
	if v.verified != nil {
		key = sha256.Sum256([]byte(audience + "\x00" + raw))
		if c, ok := v.verified.Get(key); ok {
			if !v.now().After(c.Expiry.Add(v.leeway)) {
				return c, nil
			}
			v.verified.Remove(key)
		}
	}
	c, err := v.verify(ctx, raw, audience)
	if err == nil && v.verified != nil {
		v.verified.Add(key, c)
	}
	return c, err
}

// verify is VerifyAt without the cache.
func (v *Verifier) verify(ctx context.Context, raw, audience string) (*Claims, error) {
	jws, err := jose.ParseSignedCompact(raw, acceptedAlgs)
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return nil, refuse(ReasonAlgorithm, fmt.Sprintf("alg %q is not accepted", string(algErr.Got)), nil)
		}
		return nil, refuse(ReasonMalformed, "", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, refuse(ReasonMalformed, "not exactly one signature", nil)
	}
	header := jws.Signatures[0].Header
	alg := jose.SignatureAlgorithm(header.Algorithm)
	if header.KeyID == "" {
		return nil, refuse(ReasonUnknownKey, "no kid header", nil)
	}

	// Choose the issuer by the unverified claim; the token is then checked
	// with that issuer's keys only.
	var unverified struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return nil, refuse(ReasonClaims, "payload is not a JSON claims set", err)
	}
	keys, ok := v.issuers[unverified.Issuer]
	if rel, under := strings.CutPrefix(unverified.Issuer, audience); !ok && under && strings.HasPrefix(rel, "/") {
		keys, ok = v.relative[rel]
	}
	if !ok {
		return nil, refuse(ReasonIssuer, fmt.Sprintf("issuer %q is not trusted", unverified.Issuer), nil)
	}
	candidates, err := keys.lookup(ctx, header.KeyID)
	if err != nil {
		return nil, refuse(ReasonUnknownKey, fmt.Sprintf("kid %q of issuer %q", header.KeyID, unverified.Issuer), err)
	}
	payload, err := verifyWith(jws, candidates, alg)
	if err != nil {
		return nil, err
	}

	var std jwt.Claims
	var ext extClaims
	if err := json.Unmarshal(payload, &std); err != nil {
		return nil, refuse(ReasonClaims, "registered claims", err)
	}
	if err := json.Unmarshal(payload, &ext); err != nil {
		return nil, refuse(ReasonClaims, "SMART claims", err)
	}
	if std.Issuer != unverified.Issuer {
		return nil, refuse(ReasonIssuer, "issuer changed between reads", nil)
	}
	if err := v.checkClaims(std, audience, keys.maxLifetime); err != nil {
		return nil, err
	}
	c := &Claims{
		Issuer:  std.Issuer,
		Subject: std.Subject,
		Expiry:  std.Expiry.Time(),
		ID:      std.ID,
	}
	if err := ext.fill(c); err != nil {
		return nil, refuse(ReasonClaims, "", err)
	}
	return c, nil
}

// verifyWith checks the signature with the first candidate key fitting
// alg and returns the verified payload.
func verifyWith(jws *jose.JSONWebSignature, candidates []jose.JSONWebKey, alg jose.SignatureAlgorithm) ([]byte, error) {
	var lastErr error
	tried := false
	for _, k := range candidates {
		if !keyFits(k, alg) {
			continue
		}
		tried = true
		payload, err := jws.Verify(k.Key)
		if err == nil {
			return payload, nil
		}
		lastErr = err
	}
	if !tried {
		return nil, refuse(ReasonAlgorithm, fmt.Sprintf("no key with kid %q fits alg %q", candidates[0].KeyID, string(alg)), nil)
	}
	return nil, refuse(ReasonSignature, "", lastErr)
}

// checkClaims checks audience and times of verified registered claims.
func (v *Verifier) checkClaims(std jwt.Claims, audience string, maxLifetime time.Duration) error {
	if !audienceHas(std.Audience, audience) {
		return refuse(ReasonAudience, fmt.Sprintf("aud %q does not contain %q", []string(std.Audience), audience), nil)
	}
	if std.Expiry == nil {
		return refuse(ReasonNoExpiry, "", nil)
	}
	if maxLifetime > 0 {
		from := v.now()
		if std.IssuedAt != nil {
			from = std.IssuedAt.Time()
		}
		if std.Expiry.Time().Sub(from) > maxLifetime+v.leeway {
			return refuse(ReasonLifetime, fmt.Sprintf("valid for %v, more than the %v its issuer's tokens may be", std.Expiry.Time().Sub(from).Round(time.Second), maxLifetime), nil)
		}
	}
	err := std.ValidateWithLeeway(jwt.Expected{Time: v.now()}, v.leeway)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jwt.ErrExpired):
		return refuse(ReasonExpired, "", nil)
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return refuse(ReasonNotYet, "", err)
	default:
		return refuse(ReasonClaims, "", err)
	}
}
