package server

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/disclosure"
	jose "github.com/go-jose/go-jose/v4"
)

// Request headers that set the purpose of use of one request (docs/auth.md).
const (
	// HeaderPurposeOfUse narrows the purpose of use to one code the
	// token carries (purpose_of_use claim). Without it a request acts
	// under the token's first purpose other than ETREAT.
	HeaderPurposeOfUse = "Purpose-Of-Use"
	// HeaderBreakGlassReason gives the reason of an emergency access;
	// required with purpose ETREAT, refused with any other.
	HeaderBreakGlassReason = "Break-Glass-Reason"
)

// PurposeBreakGlass is the purpose of use of an emergency access.
const PurposeBreakGlass = disclosure.PurposeBreakGlass

// maxBreakGlassReason bounds the Break-Glass-Reason header.
const maxBreakGlassReason = 1024

// Issuer is an external authorization server whose access tokens the
// server accepts.
type Issuer struct {
	auth.Issuer
	// TokenURL is its token endpoint, announced in
	// /.well-known/smart-configuration when the embedded authorization
	// server is off.
	TokenURL string
}

// Authority configures the embedded authorization server (SMART Backend
// Services), mounted at /auth and trusted as an issuer. Its clients are
// registered in the database, so that every replica serves them.
type Authority struct {
	// Key signs the access tokens (ECDSA P-256 or RSA, with a kid).
	Key *jose.JSONWebKey
	// Lifetime is the validity of the tokens the token endpoint issues;
	// 0 means 5 minutes.
	Lifetime time.Duration
	// Bootstrap are clients registered at start unless their id is
	// registered already (the embedded mode's admin).
	Bootstrap []auth.Client
}

// callerOf returns the caller authenticate put in ctx, nil outside it.
func callerOf(ctx context.Context) *disclosure.Caller { return disclosure.CallerOf(ctx) }

// unauthorizedError refuses a request without a valid token: 401 with
// the WWW-Authenticate challenge made of cause (nil: no token sent).
type unauthorizedError struct{ cause error }

func (e *unauthorizedError) Error() string {
	if e.cause == nil {
		return "no access token"
	}
	return e.cause.Error()
}

// forbidden is the 403 of a request its token does not allow.
func forbidden(format string, args ...any) error {
	return reqErr(errForbidden, "forbidden", format, args...)
}

// authenticate verifies the request's bearer token and puts the caller
// in the context; a request without a valid token is answered 401. An
// entry of a batch Bundle, run through the router again, keeps the
// caller of its Bundle.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if callerOf(r.Context()) != nil {
			next.ServeHTTP(w, r)
			return
		}
		c, err := s.identify(r)
		if err != nil {
			s.handle("authenticate", func(http.ResponseWriter, *http.Request) error { return err })(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(disclosure.WithCaller(r.Context(), c)))
	})
}

// verify checks token against the base URL the request is served as and,
// failing that, the server's other names (its base URL and aliases): a
// token minted for one of them is good at any, and a token for any other
// server is good at none, whatever Host the request names.
func (s *Server) verify(r *http.Request, token string) (*auth.Claims, error) {
	first := s.baseURL(r)
	claims, err := s.verifier.VerifyAt(r.Context(), token, first)
	if reason := auth.Reason(err); err == nil || (reason != auth.ReasonAudience && reason != auth.ReasonIssuer) {
		return claims, err
	}
	for _, other := range append([]string{s.cfg.BaseURL}, s.cfg.Aliases...) {
		if other = strings.TrimSuffix(other, "/"); other == "" || other == first {
			continue
		}
		if c, e := s.verifier.VerifyAt(r.Context(), token, other); e == nil {
			return c, nil
		}
	}
	return nil, err
}

// codePattern is the syntax of a purpose of use code.
var codePattern = regexp.MustCompile(`^[A-Za-z0-9_.:\-]{1,64}$`)

// identify reads the caller of r from its token and purpose headers.
func (s *Server) identify(r *http.Request) (*disclosure.Caller, error) {
	c := &disclosure.Caller{Open: s.cfg.InsecureNoAuth}
	if !c.Open {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return nil, &unauthorizedError{}
		}
		claims, err := s.verify(r, strings.TrimSpace(token))
		if err != nil {
			s.log.Info("access token refused", "request_id", requestID(r), "reason", auth.Reason(err), "err", err)
			return nil, &unauthorizedError{cause: err}
		}
		if len(claims.IgnoredScopes) > 0 {
			s.log.Info("malformed scopes ignored", "request_id", requestID(r), "client", claims.ClientID, "scopes", claims.IgnoredScopes)
		}
		c.Claims = claims
	}
	if err := choosePurpose(c, r.Header.Get(HeaderPurposeOfUse), r.Header.Get(HeaderBreakGlassReason)); err != nil {
		return nil, err
	}
	if c.Purpose == PurposeBreakGlass {
		s.metrics.breakGlass.Inc()
		s.log.Warn("break-glass access", "request_id", requestID(r), "client", c.ClientID(), "method", r.Method, "path", r.URL.Path)
	}
	return c, nil
}

// choosePurpose sets the request's purpose of use: the header's code,
// which the token must carry, or else the token's first purpose other
// than break-glass (break-glass alone when it is all the token carries).
// Break-glass needs a reason; a reason without break-glass is a mistake.
// Without authentication the header is taken as it is.
func choosePurpose(c *disclosure.Caller, header, reason string) error {
	header, reason = strings.TrimSpace(header), strings.TrimSpace(reason)
	var allowed []string
	if c.Claims != nil {
		allowed = c.Claims.PurposeOfUse
	}
	switch {
	case header != "" && !codePattern.MatchString(header):
		return reqErr(errInvalid, "invalid", "%s must be one purpose of use code, such as TREAT", HeaderPurposeOfUse)
	case header != "" && c.Claims != nil && !slices.Contains(allowed, header):
		return forbidden("the access token does not allow purpose of use %s; it allows %s", header, listOrNone(allowed))
	case header != "":
		c.Purpose = header
	default:
		for _, p := range allowed {
			if p != PurposeBreakGlass {
				c.Purpose = p
				break
			}
		}
		if c.Purpose == "" && len(allowed) > 0 {
			c.Purpose = allowed[0]
		}
	}
	switch {
	case c.Purpose == PurposeBreakGlass && reason == "":
		return forbidden("break-glass access (purpose of use %s) needs the reason in the %s header", PurposeBreakGlass, HeaderBreakGlassReason)
	case c.Purpose != PurposeBreakGlass && reason != "":
		return reqErr(errInvalid, "invalid", "%s is only for break-glass access: send %s: %s with it", HeaderBreakGlassReason, HeaderPurposeOfUse, PurposeBreakGlass)
	case len(reason) > maxBreakGlassReason || strings.ContainsFunc(reason, func(r rune) bool { return r < ' ' }):
		return reqErr(errInvalid, "invalid", "%s must be one line of at most %d bytes", HeaderBreakGlassReason, maxBreakGlassReason)
	}
	c.BreakGlass = reason
	return nil
}

func listOrNone(codes []string) string {
	if len(codes) == 0 {
		return "none"
	}
	return strings.Join(codes, ", ")
}

// requireAdmin refuses callers without the administration scope.
func requireAdmin(r *http.Request) error {
	if !callerOf(r.Context()).Admin() {
		return forbidden("this operation needs the %s scope", auth.AdminScope)
	}
	return nil
}

// newVerifier trusts the configured issuers and the embedded
// authorization server.
func newVerifier(cfg Config, as *auth.Server) (*auth.Verifier, error) {
	var issuers []auth.Issuer
	for _, iss := range cfg.Issuers {
		issuers = append(issuers, iss.Issuer)
	}
	if as != nil {
		issuers = append(issuers, auth.Issuer{URL: auth.EmbeddedIssuerPath, Keys: as.PublicKeys()})
	}
	if len(issuers) == 0 {
		return nil, errors.New("server: no authorization server to trust: configure an issuer or the embedded one, or turn authentication off explicitly")
	}
	return auth.NewVerifier(auth.Config{Issuers: issuers, Now: cfg.Now})
}
