package auth

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

// EmbeddedIssuerPath is where the embedded authorization server is
// mounted under the FHIR base URL: its issuer is <base>/auth, its token
// endpoint <base>/auth/token and its keys <base>/auth/jwks. A Verifier
// names it as Issuer{URL: EmbeddedIssuerPath, Keys: s.PublicKeys()}.
const EmbeddedIssuerPath = "/auth"

// ServerConfig configures the embedded authorization server.
type ServerConfig struct {
	// BaseURL returns the FHIR base URL a request reached, such as
	// https://ehr.example/fhir: the audience of the tokens issued to it,
	// the base of the issuer (<base>/auth) and of the token endpoint that
	// client assertions must name (<base>/auth/token).
	BaseURL func(r *http.Request) string
	// Clients are the registered clients.
	Clients Registry
	// Assertions remembers the client assertions used, so that each is
	// used once; nil means a bounded in-memory log, right for one process
	// only (a restart or another replica would accept an assertion again).
	Assertions AssertionLog
	// Key is the private key signing the access tokens: ECDSA P-256 (ES256)
	// or RSA of at least 2048 bits (RS256), with a kid. Its "alg", if set,
	// must be the one its type implies.
	Key *jose.JSONWebKey
	// Lifetime is the validity of the access tokens; 0 means 5 minutes,
	// and it may not exceed MaxLifetime.
	Lifetime time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

const (
	// defaultLifetime is the validity of access tokens when
	// ServerConfig.Lifetime is 0.
	defaultLifetime = 5 * time.Minute
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

// MaxLifetime is the longest validity of an access token.
const MaxLifetime = time.Hour

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
// signed JWT access tokens that a Verifier trusting
// Issuer{URL: EmbeddedIssuerPath, Keys: PublicKeys()} accepts. It is an
// http.Handler, safe for concurrent use.
type Server struct {
	baseURL    func(r *http.Request) string
	clients    Registry
	assertions AssertionLog
	signer     jose.Signer
	public     jose.JSONWebKey
	jwks       []byte
	lifetime   time.Duration
	now        func() time.Time
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.BaseURL == nil {
		return nil, errors.New("auth: server needs BaseURL")
	}
	if cfg.Clients == nil {
		return nil, errors.New("auth: server needs a client registry")
	}
	if cfg.Lifetime < 0 || cfg.Lifetime > MaxLifetime {
		return nil, fmt.Errorf("auth: token lifetime %v is not between 0 and %v", cfg.Lifetime, MaxLifetime)
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
		baseURL:    cfg.BaseURL,
		clients:    cfg.Clients,
		assertions: cfg.Assertions,
		signer:     signer,
		public:     pub,
		jwks:       jwks,
		lifetime:   cfg.Lifetime,
		now:        cfg.Now,
	}
	if s.assertions == nil {
		s.assertions = newReplayCache(maxReplayEntries)
	}
	if s.lifetime == 0 {
		s.lifetime = defaultLifetime
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// PublicKeys returns the keys that verify the server's tokens.
func (s *Server) PublicKeys() []jose.JSONWebKey { return []jose.JSONWebKey{s.public} }

// IssuerURL returns the issuer identifier of the tokens issued at the
// FHIR base URL base.
func IssuerURL(base string) string { return strings.TrimSuffix(base, "/") + EmbeddedIssuerPath }

// TokenURL returns the token endpoint under the FHIR base URL base.
func TokenURL(base string) string { return IssuerURL(base) + "/token" }

// JWKSURL returns the key set endpoint under the FHIR base URL base.
func JWKSURL(base string) string { return IssuerURL(base) + "/jwks" }

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

func (e *oauthError) Error() string { return "auth: " + e.code + ": " + e.desc }

// Token is an issued access token, as the token endpoint answers it.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	// Patient is the patient in context, for patient/ scopes.
	Patient string `json:"patient,omitempty"`
}

// serveToken handles a token request.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	resp, oerr := s.tokenRequest(w, r)
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

// tokenRequest checks a token request and mints its access token.
func (s *Server) tokenRequest(w http.ResponseWriter, r *http.Request) (*Token, *oauthError) {
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
	base := strings.TrimSuffix(s.baseURL(r), "/")
	now := s.now()
	client, oerr := s.authenticate(r.Context(), form, TokenURL(base), now)
	if oerr != nil {
		return nil, oerr
	}
	if strings.TrimSpace(form.Get("scope")) == "" {
		return nil, badRequest("scope is required")
	}
	return s.mint(client, base, form.Get("scope"), strings.Fields(form.Get("purpose_of_use")), "", 0, now)
}

// TokenRequest is what Issue is asked for.
type TokenRequest struct {
	// Client is the id of a registered client.
	Client string
	// Scope holds the requested scopes, space-separated.
	Scope string
	// Purposes are the requested purposes of use; none asks for all the
	// client's.
	Purposes []string
	// Patient is the patient in context for patient/ scopes. A client
	// registered for one patient has that patient whatever is asked.
	Patient string
	// Lifetime is the token's validity; 0 means the server's, and it may
	// not exceed MaxLifetime.
	Lifetime time.Duration
}

// Issue mints an access token for a registered client at the FHIR base
// URL base, without a client assertion: for the operator's own tools
// (ehrledger token), never in answer to a network request. The scopes and
// purposes granted follow the same rules as at the token endpoint; an
// error says why nothing could be granted.
func (s *Server) Issue(ctx context.Context, base string, req TokenRequest) (*Token, error) {
	if req.Lifetime < 0 || req.Lifetime > MaxLifetime {
		return nil, fmt.Errorf("auth: token lifetime %v is not between 0 and %v", req.Lifetime, MaxLifetime)
	}
	if err := checkAbsoluteURL(base); err != nil {
		return nil, fmt.Errorf("auth: base URL: %w", err)
	}
	c, err := s.clients.Client(ctx, req.Client)
	if err != nil {
		return nil, err
	}
	client, err := checkClient(*c)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	tok, oerr := s.mint(client, strings.TrimSuffix(base, "/"), req.Scope, req.Purposes, req.Patient, req.Lifetime, s.now())
	if oerr != nil {
		return nil, oerr
	}
	return tok, nil
}

// mint grants what client may have of the requested scopes and purposes
// and signs the access token.
func (s *Server) mint(client *registeredClient, base, rawScope string, purposes []string, patient string, lifetime time.Duration, now time.Time) (*Token, *oauthError) {
	switch {
	case client.Patient == "":
	case patient != "" && patient != client.Patient:
		return nil, badRequest("this client acts for one patient only; it cannot have another in context")
	default:
		patient = client.Patient
	}
	if patient != "" && !fhirID.MatchString(patient) {
		return nil, badRequest("the patient in context is not a FHIR resource id")
	}
	requested, _ := ParseScopes(rawScope)
	granted := grantScopes(requested, client.Scopes, patient != "")
	if len(granted) == 0 {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "none of the requested scopes may be granted to this client (patient/ scopes need a patient in context)"}
	}
	purposes, oerr := choosePurposes(purposes, client.Purposes)
	if oerr != nil {
		return nil, oerr
	}
	if lifetime == 0 {
		lifetime = s.lifetime
	}
	scopeText := make([]string, len(granted))
	for i, sc := range granted {
		scopeText[i] = sc.Raw
	}
	claims := accessClaims{
		Issuer:       IssuerURL(base),
		Audience:     base,
		Subject:      client.ID,
		ClientID:     client.ID,
		Scope:        strings.Join(scopeText, " "),
		Patient:      patient,
		PurposeOfUse: purposes,
		Actor:        client.Actor,
		Roles:        client.Roles,
		IssuedAt:     now.Unix(),
		NotBefore:    now.Unix(),
		Expiry:       now.Add(lifetime).Unix(),
		ID:           randomID(),
	}
	tok, err := jwt.Signed(s.signer).Claims(claims).Serialize()
	if err != nil {
		return nil, &oauthError{status: http.StatusInternalServerError, code: "server_error", desc: "the access token could not be signed"}
	}
	return &Token{
		AccessToken: tok,
		TokenType:   "bearer",
		ExpiresIn:   int64(lifetime / time.Second),
		Scope:       claims.Scope,
		Patient:     patient,
	}, nil
}

// accessClaims are the claims of an issued access token.
type accessClaims struct {
	Issuer       string   `json:"iss"`
	Audience     string   `json:"aud"`
	Subject      string   `json:"sub"`
	ClientID     string   `json:"client_id"`
	Scope        string   `json:"scope"`
	Patient      string   `json:"patient,omitempty"`
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
func (s *Server) authenticate(ctx context.Context, form url.Values, tokenURL string, now time.Time) (*registeredClient, *oauthError) {
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
	client, oerr := s.lookup(ctx, unverified.Issuer)
	if oerr != nil {
		return nil, oerr
	}
	if len(client.keys) == 0 {
		return nil, badClient("this client has no registered keys, so it cannot authenticate here")
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
	if !audienceHas(claims.Audience, tokenURL) {
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
	fresh, err := s.assertions.UseAssertion(ctx, client.ID, claims.ID, exp.Add(assertionLeeway), now)
	switch {
	case errors.Is(err, ErrAssertionLogFull):
		return nil, &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "too many client assertions in use; retry later", retryAfter: true}
	case err != nil:
		return nil, unavailable()
	case !fresh:
		return nil, badClient("the client assertion was already used: each needs a new jti")
	}
	return client, nil
}

// lookup finds a registered client and checks its registration.
func (s *Server) lookup(ctx context.Context, id string) (*registeredClient, *oauthError) {
	c, err := s.clients.Client(ctx, id)
	switch {
	case errors.Is(err, ErrUnknownClient):
		return nil, badClient("unknown client")
	case err != nil:
		return nil, unavailable()
	}
	client, err := checkClient(*c)
	if err != nil {
		return nil, badClient("the client's registration is not valid")
	}
	return client, nil
}

// unavailable is the answer when the registry or the assertion log
// cannot be reached.
func unavailable() *oauthError {
	return &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "the authorization server cannot reach its storage; retry later", retryAfter: true}
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

// choosePurposes checks the requested purposes of use against the
// client's allowed ones, and returns them without repeats; an empty
// request gives all the allowed ones.
func choosePurposes(requested, allowed []string) ([]string, *oauthError) {
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
