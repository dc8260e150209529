package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ServerConfig configures the embedded authorization server.
type ServerConfig struct {
	// Issuer is this authorization server's issuer URL, the "iss" of the
	// access tokens it signs.
	Issuer string
	// TokenURL is the absolute URL of the token endpoint as clients reach
	// it. Client assertions must carry it as "aud".
	TokenURL string
	// Audience is the FHIR base URL the access tokens are meant for, their
	// "aud".
	Audience string
	// Clients are the registered clients; ids must be unique.
	Clients []Client
	// Key is the private key signing the access tokens: ECDSA P-256 (ES256)
	// or RSA of at least 2048 bits (RS256), with a kid. Its "alg", if set,
	// must be the one its type implies.
	Key *jose.JSONWebKey
	// Lifetime is the validity of the access tokens; 0 means 5 minutes,
	// and it may not exceed 1 hour.
	Lifetime time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

const (
	// defaultLifetime is the validity of access tokens when
	// ServerConfig.Lifetime is 0.
	defaultLifetime = 5 * time.Minute
	// maxLifetime is the longest ServerConfig.Lifetime accepted.
	maxLifetime = time.Hour
	// maxFormBytes bounds the body of a token request.
	maxFormBytes = 64 << 10
	// maxAssertionAhead is how far in the future a client assertion may
	// expire.
	maxAssertionAhead = 5 * time.Minute
	// assertionLeeway is the clock skew allowed when checking the times of
	// a client assertion.
	assertionLeeway = 30 * time.Second
	// maxJTIBytes bounds the length of an assertion's jti, which the
	// replay cache keeps.
	maxJTIBytes = 256
	// jwksMaxAge is the time clients may cache the JWKS, in seconds.
	jwksMaxAge = 300
)

// Values of token request parameters.
const (
	// GrantClientCredentials is the grant_type of SMART Backend Services.
	GrantClientCredentials = "client_credentials"
	// AssertionTypeJWTBearer is the client_assertion_type of JWT client
	// authentication (RFC 7523, section 2.2).
	AssertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// assertionAlgs are the only algorithms accepted on client assertions, as
// SMART Backend Services requires.
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS384, jose.ES384}

// Server is the embedded authorization server for SMART Backend Services
// (the client credentials grant with JWT client authentication). It issues
// signed JWT access tokens that a Verifier configured with its Issuer,
// its /jwks URL and its Audience accepts. It is an http.Handler, safe for
// concurrent use.
type Server struct {
	issuer   string
	tokenURL string
	audience string
	clients  map[string]*registeredClient
	signer   jose.Signer
	jwks     []byte
	lifetime time.Duration
	now      func() time.Time
	replay   *replayCache
}

// NewServer checks cfg and returns a Server. The Clients are copied: later
// changes to cfg do not affect the server.
func NewServer(cfg ServerConfig) (*Server, error) {
	for _, u := range []struct{ name, value string }{
		{"issuer", cfg.Issuer}, {"token URL", cfg.TokenURL}, {"audience", cfg.Audience},
	} {
		if err := checkAbsoluteURL(u.value); err != nil {
			return nil, fmt.Errorf("auth: server %s: %w", u.name, err)
		}
	}
	if cfg.Lifetime < 0 || cfg.Lifetime > maxLifetime {
		return nil, fmt.Errorf("auth: token lifetime %v is not between 0 and %v", cfg.Lifetime, maxLifetime)
	}
	alg, err := serverAlgorithm(cfg.Key)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: cfg.Key.Key, KeyID: cfg.Key.KeyID}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	pub := cfg.Key.Public()
	pub.Algorithm = string(alg)
	pub.Use = "sig"
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	s := &Server{
		issuer:   cfg.Issuer,
		tokenURL: strings.TrimSuffix(cfg.TokenURL, "/"),
		audience: cfg.Audience,
		clients:  map[string]*registeredClient{},
		signer:   signer,
		jwks:     jwks,
		lifetime: cfg.Lifetime,
		now:      cfg.Now,
		replay:   newReplayCache(maxReplayEntries),
	}
	if s.lifetime == 0 {
		s.lifetime = defaultLifetime
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, c := range cfg.Clients {
		rc, err := checkClient(c)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		if _, dup := s.clients[rc.ID]; dup {
			return nil, fmt.Errorf("auth: client %q registered twice", rc.ID)
		}
		s.clients[rc.ID] = rc
	}
	return s, nil
}

// checkAbsoluteURL checks that s is an absolute http or https URL.
func checkAbsoluteURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}

// serverAlgorithm checks the server's signing key and returns the
// algorithm it signs with.
func serverAlgorithm(k *jose.JSONWebKey) (jose.SignatureAlgorithm, error) {
	if k == nil {
		return "", errors.New("auth: no signing key")
	}
	if k.KeyID == "" {
		return "", errors.New("auth: signing key without kid")
	}
	if !k.Valid() {
		return "", errors.New("auth: signing key is not valid")
	}
	var alg jose.SignatureAlgorithm
	switch key := k.Key.(type) {
	case *ecdsa.PrivateKey:
		if key.Curve != elliptic.P256() {
			return "", errors.New("auth: ECDSA signing key is not on P-256")
		}
		alg = jose.ES256
	case *rsa.PrivateKey:
		if key.N.BitLen() < minRSABits {
			return "", fmt.Errorf("auth: RSA signing key under %d bits", minRSABits)
		}
		alg = jose.RS256
	default:
		return "", errors.New("auth: signing key is not an ECDSA P-256 or RSA private key")
	}
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return "", fmt.Errorf("auth: signing key has alg %q, its type signs with %s", k.Algorithm, alg)
	}
	if k.Use != "" && k.Use != "sig" {
		return "", errors.New("auth: signing key is not a signature key")
	}
	return alg, nil
}

// ServeHTTP serves the token endpoint (POST, at a path whose last segment
// is "token") and the JWKS of the signing key (GET or HEAD, last segment
// "jwks"), whatever prefix the server is mounted under. Other paths are
// answered 404 and other methods 405.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch p[strings.LastIndexByte(p, '/')+1:] {
	case "token":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeOAuthError(w, &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "the token endpoint accepts only POST"})
			return
		}
		s.serveToken(w, r)
	case "jwks":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(jwksMaxAge))
		w.Header().Set("Content-Length", strconv.Itoa(len(s.jwks)))
		_, _ = w.Write(s.jwks)
	default:
		http.NotFound(w, r)
	}
}

// oauthError is an error response of the token endpoint (RFC 6749,
// section 5.2). desc never holds token contents.
type oauthError struct {
	status     int
	code       string
	desc       string
	retryAfter bool // send Retry-After
}

// badRequest, badClient and badScope build the usual refusals.
func badRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: desc}
}

func badClient(desc string) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc}
}

// writeOAuthError sends e as a JSON error response. The description keeps
// only the characters RFC 6749 allows there.
func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if e.retryAfter {
		h.Set("Retry-After", strconv.Itoa(int(assertionLeeway/time.Second)))
	}
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": e.code, "error_description": sanitize(e.desc)})
}

// tokenResponse is the successful answer of the token endpoint.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// serveToken handles a token request.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	resp, oerr := s.issue(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	_ = json.NewEncoder(w).Encode(resp)
}

// issue checks a token request and mints its access token.
func (s *Server) issue(w http.ResponseWriter, r *http.Request) (*tokenResponse, *oauthError) {
	form, oerr := readForm(w, r)
	if oerr != nil {
		return nil, oerr
	}
	switch gt := form.Get("grant_type"); gt {
	case GrantClientCredentials:
	case "":
		return nil, badRequest("grant_type is required")
	default:
		return nil, &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "only the client_credentials grant is supported"}
	}
	now := s.now()
	client, oerr := s.authenticate(form, now)
	if oerr != nil {
		return nil, oerr
	}
	rawScope := form.Get("scope")
	if strings.TrimSpace(rawScope) == "" {
		return nil, badRequest("scope is required")
	}
	requested, _ := ParseScopes(rawScope)
	granted := grantScopes(requested, client.Scopes)
	if len(granted) == 0 {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "none of the requested scopes may be granted to this client; Backend Services grants system/ resource scopes only"}
	}
	purposes, oerr := choosePurposes(form.Get("purpose_of_use"), client.Purposes)
	if oerr != nil {
		return nil, oerr
	}

	scopeText := make([]string, len(granted))
	for i, sc := range granted {
		scopeText[i] = sc.Raw
	}
	claims := accessClaims{
		Issuer:       s.issuer,
		Audience:     s.audience,
		Subject:      client.ID,
		ClientID:     client.ID,
		Scope:        strings.Join(scopeText, " "),
		PurposeOfUse: purposes,
		Actor:        client.Actor,
		Roles:        client.Roles,
		IssuedAt:     now.Unix(),
		NotBefore:    now.Unix(),
		Expiry:       now.Add(s.lifetime).Unix(),
		ID:           randomID(),
	}
	tok, err := jwt.Signed(s.signer).Claims(claims).Serialize()
	if err != nil {
		return nil, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "the access token could not be signed"}
	}
	return &tokenResponse{
		AccessToken: tok,
		TokenType:   "bearer",
		ExpiresIn:   int64(s.lifetime / time.Second),
		Scope:       claims.Scope,
	}, nil
}

// accessClaims are the claims of an issued access token.
type accessClaims struct {
	Issuer       string   `json:"iss"`
	Audience     string   `json:"aud"`
	Subject      string   `json:"sub"`
	ClientID     string   `json:"client_id"`
	Scope        string   `json:"scope"`
	PurposeOfUse []string `json:"purpose_of_use,omitempty"`
	Actor        string   `json:"actor"`
	Roles        []string `json:"roles,omitempty"`
	IssuedAt     int64    `json:"iat"`
	NotBefore    int64    `json:"nbf"`
	Expiry       int64    `json:"exp"`
	ID           string   `json:"jti"`
}

// randomID returns 128 random bits in base64url.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// singleParams are the token request parameters that may appear at most
// once (RFC 6749, section 3.2).
var singleParams = []string{"grant_type", "client_assertion_type", "client_assertion", "client_id", "scope", "purpose_of_use"}

// readForm reads the form body of a token request, at most maxFormBytes.
// Parameters in the URL query are ignored.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/x-www-form-urlencoded" {
		return nil, badRequest("the request body must be application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, badRequest(fmt.Sprintf("the request body is larger than %d bytes", maxFormBytes))
		}
		return nil, badRequest("the request body could not be read")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("the request body is not a valid form")
	}
	for _, p := range singleParams {
		if len(form[p]) > 1 {
			return nil, badRequest(p + " is repeated")
		}
	}
	return form, nil
}

// authenticate checks the client assertion of a token request (RFC 7523
// and SMART Backend Services) and returns the client it authenticates.
func (s *Server) authenticate(form url.Values, now time.Time) (*registeredClient, *oauthError) {
	switch form.Get("client_assertion_type") {
	case AssertionTypeJWTBearer:
	case "":
		return nil, badClient("client authentication with client_assertion_type " + AssertionTypeJWTBearer + " is required")
	default:
		return nil, badClient("client_assertion_type must be " + AssertionTypeJWTBearer)
	}
	raw := form.Get("client_assertion")
	if raw == "" {
		return nil, badClient("client_assertion is required")
	}
	jws, err := jose.ParseSignedCompact(raw, assertionAlgs)
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return nil, badClient("the client assertion must be signed with RS384 or ES384")
		}
		return nil, badClient("the client assertion is not a JWS in compact form")
	}
	if len(jws.Signatures) != 1 {
		return nil, badClient("the client assertion must carry exactly one signature")
	}
	header := jws.Signatures[0].Header
	if header.KeyID == "" {
		return nil, badClient("the client assertion has no kid header")
	}
	var unverified struct {
		Issuer string `json:"iss"`
	}
	if err := josejson.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return nil, badClient("the client assertion's payload is not a JSON claims set")
	}
	client, ok := s.clients[unverified.Issuer]
	if !ok {
		return nil, badClient("unknown client")
	}
	if id := form.Get("client_id"); id != "" && id != client.ID {
		return nil, badClient("client_id does not name the client of the assertion")
	}
	key, ok := client.keys[header.KeyID]
	if !ok {
		return nil, badClient("the client assertion's kid names no key of this client")
	}
	if !keyFits(key, jose.SignatureAlgorithm(header.Algorithm)) {
		return nil, badClient("the client assertion's algorithm does not fit the key its kid names")
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, badClient("the client assertion's signature does not verify")
	}
	var claims jwt.Claims
	if err := josejson.Unmarshal(payload, &claims); err != nil {
		return nil, badClient("the client assertion's claims are malformed")
	}
	if claims.Issuer != client.ID || claims.Subject != client.ID {
		return nil, badClient("the client assertion's iss and sub must both be the client id")
	}
	if !audienceHas(claims.Audience, s.tokenURL) {
		return nil, badClient("the client assertion's aud must be the token endpoint URL")
	}
	if claims.Expiry == nil {
		return nil, badClient("the client assertion has no exp")
	}
	exp := claims.Expiry.Time()
	if !exp.After(now.Add(-assertionLeeway)) {
		return nil, badClient("the client assertion has expired")
	}
	if exp.After(now.Add(maxAssertionAhead + assertionLeeway)) {
		return nil, badClient("the client assertion's exp is more than 5 minutes ahead")
	}
	if claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(assertionLeeway)) {
		return nil, badClient("the client assertion is not valid yet")
	}
	if claims.IssuedAt != nil && claims.IssuedAt.Time().After(now.Add(assertionLeeway)) {
		return nil, badClient("the client assertion is issued in the future")
	}
	switch {
	case claims.ID == "":
		return nil, badClient("the client assertion has no jti")
	case len(claims.ID) > maxJTIBytes:
		return nil, badClient(fmt.Sprintf("the client assertion's jti is longer than %d bytes", maxJTIBytes))
	}
	switch s.replay.add(client.ID, claims.ID, exp.Add(assertionLeeway), now) {
	case replaySeen:
		return nil, badClient("the client assertion was already used: each needs a new jti")
	case replayOverflow:
		return nil, &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "too many client assertions in use; retry later", retryAfter: true}
	}
	return client, nil
}

// audienceHas reports whether aud holds want, ignoring a trailing slash.
func audienceHas(aud jwt.Audience, want string) bool {
	for _, a := range aud {
		if strings.TrimSuffix(a, "/") == want {
			return true
		}
	}
	return false
}

// choosePurposes checks the requested purposes of use (space-separated)
// against the client's allowed ones, and returns them without repeats; an
// empty request gives all the allowed ones.
func choosePurposes(raw string, allowed []string) ([]string, *oauthError) {
	requested := strings.Fields(raw)
	if len(requested) == 0 {
		return allowed, nil
	}
	var out []string
	for _, p := range requested {
		if !slices.Contains(allowed, p) {
			if codePattern.MatchString(p) {
				return nil, badRequest("purpose_of_use " + p + " is not allowed for this client")
			}
			return nil, badRequest("purpose_of_use holds a code not allowed for this client")
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}
