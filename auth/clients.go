package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"
)

var _ Registry = StaticRegistry(nil)

// Client is a client registered with the embedded authorization server for
// SMART Backend Services: it authenticates with a JWT assertion signed by
// one of its own keys (private_key_jwt, RFC 7523) and is granted at most
// its Scopes. Its JSON form (MarshalJSON) is what the registry stores and
// the admin API exchanges.
type Client struct {
	// ID is the client id: the "iss" and "sub" of its assertions, and the
	// "sub" and "client_id" of the access tokens it obtains.
	ID string
	// Keys are the client's public keys for private_key_jwt. Each needs a
	// kid, unique within the client, and must be an RSA key of at least
	// 2048 bits (RS384) or a P-384 elliptic key (ES384); a key's "alg", if
	// set, must be RS384 or ES384 accordingly. Private keys given here are
	// reduced to their public half. A client without keys cannot use the
	// token endpoint; only the operator's tools mint its tokens (Issue).
	Keys jose.JSONWebKeySet
	// Actor is the FHIR reference of the party the client acts as, such as
	// "Organization/clinic" or "Practitioner/123", put in the "actor" claim
	// of its access tokens.
	Actor string
	// Roles are the client's roles, put in the "roles" claim of its access
	// tokens (omitted when empty).
	Roles []string
	// Purposes are the v3 ActReason codes the client may claim as purpose
	// of use, such as TREAT, ETREAT, HPAYMT, HOPERAT, HRESCH, PUBHLTH or
	// PATRQT. A token request naming none gets all of them.
	Purposes []string
	// Scopes are the most the client may be granted: a requested resource
	// scope is granted when one of these of the same context covers it,
	// any other scope (such as AdminScope) when it is here verbatim.
	Scopes Scopes
	// Patient, when set, makes the client a patient's own (a patient's
	// app): its tokens always carry this patient in context, which the
	// patient/ scopes confine access to. Other clients can have patient/
	// scopes only from Issue, with a patient given.
	Patient string
	// Name is how people know the client's party, such as "Riverside
	// Clinic, cardiology": shown to patients in their accounting of
	// disclosures. Optional, at most 200 characters.
	Name string
}

// AdminScope is the scope of the server's administration: client
// registration, erasure, and the other operations an operator performs.
const AdminScope = "ehrledger/admin"

// ErrUnknownClient is returned by a Registry for an id nobody registered.
var ErrUnknownClient = errors.New("auth: unknown client")

// Registry holds the registered clients.
type Registry interface {
	// Client returns the client registered with the id, or an error
	// wrapping ErrUnknownClient. The server checks what it returns
	// (CheckClient) before trusting it.
	Client(ctx context.Context, id string) (*Client, error)
}

// StaticRegistry is a Registry of clients fixed at start.
type StaticRegistry map[string]Client

// NewStaticRegistry checks the clients, whose ids must be unique, and
// returns a registry of copies.
func NewStaticRegistry(clients ...Client) (StaticRegistry, error) {
	r := StaticRegistry{}
	for _, c := range clients {
		checked, err := CheckClient(c)
		if err != nil {
			return nil, err
		}
		if _, dup := r[checked.ID]; dup {
			return nil, fmt.Errorf("auth: client %q registered twice", checked.ID)
		}
		r[checked.ID] = checked
	}
	return r, nil
}

// Client implements Registry.
func (r StaticRegistry) Client(_ context.Context, id string) (*Client, error) {
	c, ok := r[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownClient, id)
	}
	return &c, nil
}

// clientJSON is the JSON form of a Client.
type clientJSON struct {
	ID       string              `json:"client_id"`
	Actor    string              `json:"actor"`
	Roles    []string            `json:"roles,omitempty"`
	Purposes []string            `json:"purposes,omitempty"`
	Scope    string              `json:"scope"`
	Patient  string              `json:"patient,omitempty"`
	Name     string              `json:"name,omitempty"`
	JWKS     *jose.JSONWebKeySet `json:"jwks,omitempty"`
}

// MarshalJSON writes the client as {"client_id", "actor", "roles",
// "purposes", "scope" (space-separated), "patient", "name", "jwks"}.
func (c Client) MarshalJSON() ([]byte, error) {
	out := clientJSON{ID: c.ID, Actor: c.Actor, Roles: c.Roles, Purposes: c.Purposes, Patient: c.Patient, Name: c.Name}
	scopes := make([]string, len(c.Scopes))
	for i, sc := range c.Scopes {
		scopes[i] = sc.String()
	}
	out.Scope = strings.Join(scopes, " ")
	if len(c.Keys.Keys) > 0 {
		out.JWKS = &c.Keys
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads the form MarshalJSON writes. A member it does not
// know, or a malformed resource scope, is an error here, not silently
// left out.
func (c *Client) UnmarshalJSON(b []byte) error {
	var in clientJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("auth: client: %w", err)
	}
	var scopes Scopes
	for _, raw := range strings.Fields(in.Scope) {
		sc, err := ParseScope(raw)
		if err != nil {
			return fmt.Errorf("auth: client %q: %w", in.ID, err)
		}
		scopes = append(scopes, sc)
	}
	*c = Client{ID: in.ID, Actor: in.Actor, Roles: in.Roles, Purposes: in.Purposes, Scopes: scopes, Patient: in.Patient, Name: in.Name}
	if in.JWKS != nil {
		c.Keys = *in.JWKS
	}
	return nil
}

var (
	// actorPattern is the syntax of Client.Actor: a relative FHIR
	// reference, resource type then id.
	actorPattern = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}/[A-Za-z0-9\-.]{1,64}$`)
	// codePattern is the syntax accepted for roles and purpose codes.
	codePattern = regexp.MustCompile(`^[A-Za-z0-9_.:\-]{1,64}$`)
)

// maxClientNameBytes bounds a client's name.
const maxClientNameBytes = 200

// maxClientIDBytes bounds the length of a client id.
const maxClientIDBytes = 256

// registeredClient is a checked copy of a Client, with its usable keys by
// kid.
type registeredClient struct {
	Client
	keys map[string]jose.JSONWebKey
}

// CheckClient validates a client's registration and returns a copy
// independent of the caller's slices, its keys reduced to public ones.
func CheckClient(c Client) (Client, error) {
	rc, err := checkClient(c)
	if err != nil {
		return Client{}, fmt.Errorf("auth: %w", err)
	}
	return rc.Client, nil
}

// checkClient validates c and returns a copy independent of the caller's
// slices.
func checkClient(c Client) (*registeredClient, error) {
	if c.ID == "" || len(c.ID) > maxClientIDBytes || strings.TrimSpace(c.ID) != c.ID {
		return nil, errors.New("client id is empty, too long or padded with spaces")
	}
	if !actorPattern.MatchString(c.Actor) {
		return nil, fmt.Errorf("client %q: actor %q is not a FHIR reference such as Organization/clinic", c.ID, c.Actor)
	}
	for _, r := range c.Roles {
		if !codePattern.MatchString(r) {
			return nil, fmt.Errorf("client %q: role %q is not a code", c.ID, r)
		}
	}
	for _, p := range c.Purposes {
		if !codePattern.MatchString(p) {
			return nil, fmt.Errorf("client %q: purpose %q is not a code", c.ID, p)
		}
	}
	if c.Patient != "" && !fhirID.MatchString(c.Patient) {
		return nil, fmt.Errorf("client %q: patient %q is not a FHIR resource id", c.ID, c.Patient)
	}
	if len(c.Name) > maxClientNameBytes || strings.ContainsFunc(c.Name, unicode.IsControl) {
		return nil, fmt.Errorf("client %q: name is over %d bytes or holds control characters", c.ID, maxClientNameBytes)
	}
	for _, sc := range c.Scopes {
		if sc.IsResource() {
			continue
		}
		if sc.Raw == "" || strings.ContainsAny(sc.Raw, " \t\n\"\\") {
			return nil, fmt.Errorf("client %q: scope %q is not a scope token", c.ID, sc.Raw)
		}
	}
	rc := &registeredClient{keys: map[string]jose.JSONWebKey{}}
	for _, k := range c.Keys.Keys {
		if k.KeyID == "" {
			return nil, fmt.Errorf("client %q: key without kid", c.ID)
		}
		if _, dup := rc.keys[k.KeyID]; dup {
			return nil, fmt.Errorf("client %q: kid %q used twice", c.ID, k.KeyID)
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, fmt.Errorf("client %q: key %q is not a signature key", c.ID, k.KeyID)
		}
		pub := k.Public()
		if !pub.Valid() || !assertionKey(pub) {
			return nil, fmt.Errorf("client %q: key %q is neither an RSA key of at least %d bits for RS384 nor a P-384 key for ES384", c.ID, k.KeyID, minRSABits)
		}
		rc.keys[k.KeyID] = pub
	}
	rc.Client = Client{
		ID:       c.ID,
		Actor:    c.Actor,
		Roles:    slices.Clone(c.Roles),
		Purposes: slices.Clone(c.Purposes),
		Scopes:   slices.Clone(c.Scopes),
		Patient:  c.Patient,
		Name:     c.Name,
	}
	for _, k := range rc.keys {
		rc.Keys.Keys = append(rc.Keys.Keys, k)
	}
	return rc, nil
}

// assertionKey reports whether a public key can verify client assertions,
// which are signed with RS384 or ES384 only.
func assertionKey(k jose.JSONWebKey) bool {
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		return key.N.BitLen() >= minRSABits && keyFits(k, jose.RS384)
	case *ecdsa.PublicKey:
		return key.Curve == elliptic.P384() && keyFits(k, jose.ES384)
	}
	return false
}

// grantScopes returns the requested scopes that the allowed scopes cover,
// in request order, in canonical form and without repeats. A requested
// resource scope is granted when an allowed scope of the same context has
// the same type or "*", all the requested permissions, and a query
// constraint (if any) whose every parameter value the requested scope also
// carries; patient/ scopes only when a patient is in context. Any other
// scope is granted when it is allowed verbatim.
func grantScopes(requested, allowed Scopes, withPatient bool) Scopes {
	var out Scopes
	seen := map[string]bool{}
	for _, req := range requested {
		var ok bool
		switch {
		case !req.IsResource():
			ok = allowed.Contains(req.Raw)
		case req.Context == Patient && !withPatient:
		default:
			ok = slices.ContainsFunc(allowed, func(a Scope) bool {
				return a.Context == req.Context &&
					(a.Type == "*" || a.Type == req.Type) &&
					a.Perms.Has(req.Perms) &&
					querySubset(a.Query, req.Query)
			})
		}
		if !ok {
			continue
		}
		canon := req.String()
		if seen[canon] {
			continue
		}
		seen[canon] = true
		req.Raw = canon
		out = append(out, req)
	}
	return out
}
