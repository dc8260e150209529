// Package auth implements SMART on FHIR authorization: it verifies the JWT
// access tokens that clients present as Bearer tokens, evaluates the SMART
// scopes they carry, and issues such tokens to backend services through an
// embedded authorization server.
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
// Server is an embedded authorization server for SMART Backend Services:
// registered clients (a Registry) authenticate with a JWT assertion signed
// by one of their keys (RS384 or ES384, RFC 7523, each assertion usable
// once through an AssertionLog) and obtain short-lived access tokens
// carrying the scopes they may have, their purposes of use, actor and
// roles, and for a patient's own client that patient in context. It is
// mounted at <base>/auth (EmbeddedIssuerPath) and serves its token
// endpoint and its JWKS; Issue mints tokens for the operator's tools. A
// Verifier trusts it as the issuer relative to each request's base URL.
//
// Scopes only delegate access: the server still applies the patient's
// consents on top.
package auth
