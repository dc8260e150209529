package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Client is a client registered with the embedded authorization server for
// SMART Backend Services: it authenticates with a JWT assertion signed by
// one of its own keys (private_key_jwt, RFC 7523) and is granted at most
// its Scopes.
type Client struct {
	// ID is the client id: the "iss" and "sub" of its assertions, and the
	// "sub" and "client_id" of the access tokens it obtains.
	ID string
	// Keys are the client's public keys for private_key_jwt. Each needs a
	// kid, unique within the client, and must be an RSA key of at least
	// 2048 bits (RS384) or a P-384 elliptic key (ES384); a key's "alg", if
	// set, must be RS384 or ES384 accordingly. Private keys given here are
	// reduced to their public half.
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
	// Scopes are the most the client may be granted. Only system/ resource
	// scopes grant anything.
	Scopes Scopes
}

var (
	// actorPattern is the syntax of Client.Actor: a relative FHIR
	// reference, resource type then id.
	actorPattern = regexp.MustCompile(`^[A-Z][A-Za-z]{0,63}/[A-Za-z0-9\-.]{1,64}$`)
	// codePattern is the syntax accepted for roles and purpose codes.
	codePattern = regexp.MustCompile(`^[A-Za-z0-9_.:\-]{1,64}$`)
)

// maxClientIDBytes bounds the length of a client id.
const maxClientIDBytes = 256

// registeredClient is a checked copy of a Client, with its usable keys by
// kid.
type registeredClient struct {
	Client
	keys map[string]jose.JSONWebKey
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
	if len(c.Keys.Keys) == 0 {
		return nil, fmt.Errorf("client %q: no key", c.ID)
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
// in request order, in canonical form and without repeats. Only system/
// resource scopes are granted: a requested scope is granted when an
// allowed system/ scope has the same type or "*", all the requested
// permissions, and a query constraint (if any) whose every parameter value
// the requested scope also carries.
func grantScopes(requested, allowed Scopes) Scopes {
	var out Scopes
	seen := map[string]bool{}
	for _, req := range requested {
		if req.Context != System {
			continue
		}
		ok := slices.ContainsFunc(allowed, func(a Scope) bool {
			return a.Context == System &&
				(a.Type == "*" || a.Type == req.Type) &&
				a.Perms.Has(req.Perms) &&
				querySubset(a.Query, req.Query)
		})
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
