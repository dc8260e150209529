package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/ehrledger/ehrledger/auth"
	"github.com/ehrledger/ehrledger/store"
	"github.com/go-chi/chi/v5"
)

var (
	_ auth.Registry     = registry{}
	_ auth.AssertionLog = (*store.Store)(nil)
)

// The embedded authorization server over the store: its clients are
// registered in the database and its used assertions kept there, so that
// every replica sharing the database serves the same clients and no
// assertion is used twice, even across a restart.

// AdminClient is the client the embedded mode registers on first start
// (Authority.Bootstrap), so that an operator can get a token at once
// (ehrledger token --client admin): every resource interaction and the
// administration scope, for the provider's own organisation, with every
// purpose of use. Its registration can be changed through the admin API.
func AdminClient() auth.Client {
	scopes, _ := auth.ParseScopes("system/*.cruds " + auth.AdminScope)
	return auth.Client{
		ID:       "admin",
		Actor:    "Organization/admin",
		Roles:    []string{"admin"},
		Purposes: []string{"TREAT", PurposeBreakGlass, "HPAYMT", "HOPERAT", "HRESCH", "PUBHLTH", "PATRQT", "HSYSADMIN"},
		Scopes:   scopes,
	}
}

// registry is the store as the authorization server's auth.Registry.
type registry struct{ st *store.Store }

func (g registry) Client(ctx context.Context, id string) (*auth.Client, error) {
	doc, err := g.st.AuthClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w %q", auth.ErrUnknownClient, id)
	}
	if err != nil {
		return nil, err
	}
	var c auth.Client
	if err := json.Unmarshal(doc, &c); err != nil {
		return nil, fmt.Errorf("server: registration of client %q: %w", id, err)
	}
	return &c, nil
}

// register checks a client's registration and stores it: replacing what
// the id had when replace is set, else only when the id is free. It
// reports whether the client is new.
func (g registry) register(ctx context.Context, c auth.Client, replace bool) (auth.Client, bool, error) {
	checked, err := auth.CheckClient(c)
	if err != nil {
		return auth.Client{}, false, err
	}
	doc, err := json.Marshal(checked)
	if err != nil {
		return auth.Client{}, false, err
	}
	var created bool
	if replace {
		created, err = g.st.PutAuthClient(ctx, checked.ID, doc)
	} else {
		created, err = g.st.AddAuthClient(ctx, checked.ID, doc)
	}
	return checked, created, err
}

// newAuthorizationServer builds the embedded authorization server over st
// and registers a's bootstrap clients that are not registered yet.
func newAuthorizationServer(ctx context.Context, st *store.Store, a *Authority, base func(*http.Request) string) (*auth.Server, error) {
	g := registry{st}
	for _, c := range a.Bootstrap {
		if _, _, err := g.register(ctx, c, false); err != nil {
			return nil, fmt.Errorf("server: bootstrap client %q: %w", c.ID, err)
		}
	}
	return auth.NewServer(auth.ServerConfig{
		BaseURL:    base,
		Clients:    g,
		Assertions: st,
		Key:        a.Key,
		Lifetime:   a.Lifetime,
	})
}

// MintToken mints an access token from the embedded authorization server
// of st for the operator's own tools (ehrledger token), for the FHIR base
// URL base. A client not registered yet is registered first with what dev
// makes when dev is not nil (the embedded mode's clients made on the
// fly), and refused with auth.ErrUnknownClient otherwise.
func MintToken(ctx context.Context, st *store.Store, a *Authority, base string, req auth.TokenRequest, dev func() (auth.Client, error)) (*auth.Token, error) {
	as, err := newAuthorizationServer(ctx, st, a, func(*http.Request) string { return base })
	if err != nil {
		return nil, err
	}
	if _, err := st.AuthClient(ctx, req.Client); dev != nil && errors.Is(err, store.ErrNotFound) {
		c, err := dev()
		if err == nil {
			_, _, err = (registry{st}).register(ctx, c, false)
		}
		if err != nil {
			return nil, fmt.Errorf("registering client %q: %w", req.Client, err)
		}
	}
	return as.Issue(ctx, base, req)
}

// The admin API of the client registry, under /auth/clients: JSON
// registrations as auth.Client writes them. Every call needs the
// administration scope.

// listClients is GET /auth/clients.
func (s *Server) listClients(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	docs, err := s.store.AuthClients(r.Context())
	if err != nil {
		return err
	}
	out := make([]json.RawMessage, len(docs))
	for i, d := range docs {
		out[i] = d
	}
	writePlainJSON(w, out)
	return nil
}

// getClient is GET /auth/clients/{id}.
func (s *Server) getClient(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	doc, err := s.store.AuthClient(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	writePlainJSON(w, json.RawMessage(doc))
	return nil
}

// maxRegistrationBytes bounds a client registration's body.
const maxRegistrationBytes = 256 << 10

// putClient is PUT /auth/clients/{id}: registers a client or replaces its
// registration; 201 when new, 200 otherwise, with the registration as
// stored (public keys only).
func (s *Server) putClient(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	id := chi.URLParam(r, "id")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBytes))
	if err != nil {
		return err
	}
	var c auth.Client
	if err := json.Unmarshal(body, &c); err != nil {
		return reqErr(errInvalid, "structure", "the body is not a client registration: %v", err)
	}
	switch c.ID {
	case "":
		c.ID = id
	case id:
	default:
		return reqErr(errInvalid, "invalid", "client_id %q does not match the URL's %q", c.ID, id)
	}
	if _, err := auth.CheckClient(c); err != nil {
		return reqErr(errInvalid, "invalid", "%v", err)
	}
	stored, created, err := (registry{s.store}).register(r.Context(), c, true)
	if err != nil {
		return err
	}
	s.log.Info("client registered", "request_id", requestID(r), "client", stored.ID, "new", created, "by", callerOf(r.Context()).ClientID())
	b, _ := json.Marshal(stored) // a checked client always marshals
	w.Header().Set("Content-Type", "application/json")
	if created {
		w.WriteHeader(http.StatusCreated)
	}
	w.Write(b)
	return nil
}

// deleteClient is DELETE /auth/clients/{id}: 204, or 404 when the id is
// not registered. Tokens already issued stay valid until they expire.
func (s *Server) deleteClient(w http.ResponseWriter, r *http.Request) error {
	if err := requireAdmin(r); err != nil {
		return err
	}
	ok, err := s.store.DeleteAuthClient(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	if !ok {
		return store.ErrNotFound
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// smartConfiguration is GET /.well-known/smart-configuration (SMART App
// Launch 2.x, "Conformance"): the embedded authorization server's
// endpoints, or the first configured issuer's that names its token
// endpoint.
func (s *Server) smartConfiguration(w http.ResponseWriter, r *http.Request) error {
	conf := map[string]any{
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"grant_types_supported":                            []string{auth.GrantClientCredentials},
		"scopes_supported":                                 []string{"system/*.cruds", "system/*.rs", "user/*.cruds", "user/*.rs", "patient/*.cruds", "patient/*.rs", "system/*.read", "patient/*.read", auth.AdminScope},
		"response_types_supported":                         []string{"token"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"capabilities":                                     []string{"client-confidential-asymmetric", "permission-patient", "permission-user", "permission-v1", "permission-v2"},
	}
	switch iss := s.externalTokenIssuer(); {
	case s.authServer != nil:
		base := s.baseURL(r)
		conf["issuer"] = auth.IssuerURL(base)
		conf["jwks_uri"] = auth.JWKSURL(base)
		conf["token_endpoint"] = auth.TokenURL(base)
	case iss != nil:
		conf["issuer"] = iss.URL
		conf["jwks_uri"] = iss.JWKSURL
		conf["token_endpoint"] = iss.TokenURL
	default:
		return reqErr(errNotFound, "not-found", "no authorization server is configured")
	}
	writePlainJSON(w, conf)
	return nil
}

// externalTokenIssuer is the first configured issuer naming its token
// endpoint, nil if none.
func (s *Server) externalTokenIssuer() *Issuer {
	for i := range s.cfg.Issuers {
		if s.cfg.Issuers[i].TokenURL != "" {
			return &s.cfg.Issuers[i]
		}
	}
	return nil
}

// tokenURL is the token endpoint the CapabilityStatement names, "" when
// none is known.
func (s *Server) tokenURL(r *http.Request) string {
	if s.authServer != nil {
		return auth.TokenURL(s.baseURL(r))
	}
	if iss := s.externalTokenIssuer(); iss != nil {
		return iss.TokenURL
	}
	return ""
}
