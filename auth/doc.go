// Package auth is the resource-server half of SMART on FHIR authorization:
// it verifies the JWT access tokens that clients present as Bearer tokens
// and evaluates the SMART scopes they carry.
//
// A Verifier checks a token's signature against the JSON Web Key Set of
// one of the trusted issuers (fetched over HTTP, cached, refetched on key
// rotation), then its issuer, audience and validity times, and returns the
// Claims: subject, client, scopes, patient and user in context, purpose of
// use. Refusals wrap ErrInvalidToken, and Challenge turns them into the
// WWW-Authenticate header of the 401 answer.
//
// ParseScopes reads SMART App Launch v1 and v2 scopes ("patient/*.read",
// "user/Observation.rs?category=...", "system/*.cruds"), and Scopes.Allow
// tells whether they allow a FHIR interaction on a resource type, whether
// access is confined to the patient in context, and which query
// constraints the resources must meet.
//
// The package stands alone for now. The HTTP server will use it later to
// authenticate requests; an embedded authorization server issuing the
// tokens and the consent actors deciding what a grant may reach will be
// added then. Scopes only delegate access: the server still applies the
// user's or client's own permissions and the patient's consents on top.
package auth
