package auth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/json"
)

// Claims are the verified contents of an access token.
type Claims struct {
	// Issuer is the "iss" claim, one of the configured issuers' URL.
	Issuer string
	// Subject is the "sub" claim: the user, or the client for backend
	// services.
	Subject string
	// ClientID is the "client_id" claim, else "azp", else "sub".
	ClientID string
	// Scopes are the granted scopes parsed from RawScope, malformed
	// resource scopes left out.
	Scopes Scopes
	// IgnoredScopes are the malformed resource scopes left out of Scopes,
	// for the server's logs.
	IgnoredScopes []string
	// RawScope is the "scope" claim as sent (a space-separated string).
	RawScope string
	// Patient is the "patient" claim: the id of the Patient in context,
	// which patient/ scopes confine access to. It may be empty, in which
	// case a patient-confined grant allows nothing.
	Patient string
	// FHIRUser is the "fhirUser" claim: the URL of the FHIR resource
	// (Practitioner, Patient, RelatedPerson...) of the signed-in user.
	FHIRUser string
	// Actor is the "actor" claim: the FHIR reference of the party the
	// client acts for ("Organization/clinic", "Practitioner/123"), as the
	// embedded authorization server puts it in its tokens.
	Actor string
	// Roles is the "roles" claim: the client's roles.
	Roles []string
	// PurposeOfUse is the "purpose_of_use" claim, v3 ActReason codes such
	// as "TREAT", following the IHE IUA model; the claim may be a string or
	// an array of strings.
	PurposeOfUse []string
	// Expiry is the "exp" claim.
	Expiry time.Time
	// ID is the "jti" claim.
	ID string
}

// extClaims are the non-registered claims Verify reads.
type extClaims struct {
	Scope        json.RawMessage `json:"scope"`
	Scp          json.RawMessage `json:"scp"`
	ClientID     string          `json:"client_id"`
	AZP          string          `json:"azp"`
	Patient      string          `json:"patient"`
	FHIRUser     string          `json:"fhirUser"`
	PurposeOfUse json.RawMessage `json:"purpose_of_use"`
	Actor        string          `json:"actor"`
	Roles        json.RawMessage `json:"roles"`
}

// fhirID is the syntax of a FHIR resource id.
var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// fill copies the non-registered claims into c, checking their types.
func (e extClaims) fill(c *Claims) error {
	scope, err := stringOrList(e.Scope)
	if err != nil {
		return fmt.Errorf("scope claim: %w", err)
	}
	if scope == nil {
		// Some authorization servers send the scopes as "scp".
		if scope, err = stringOrList(e.Scp); err != nil {
			return fmt.Errorf("scp claim: %w", err)
		}
	}
	c.RawScope = strings.Join(scope, " ")
	c.Scopes, c.IgnoredScopes = ParseScopes(c.RawScope)

	switch {
	case e.ClientID != "":
		c.ClientID = e.ClientID
	case e.AZP != "":
		c.ClientID = e.AZP
	default:
		c.ClientID = c.Subject
	}
	if e.Patient != "" && !fhirID.MatchString(e.Patient) {
		return errors.New("patient claim is not a FHIR resource id")
	}
	c.Patient = e.Patient
	c.FHIRUser = e.FHIRUser
	if c.PurposeOfUse, err = stringOrList(e.PurposeOfUse); err != nil {
		return fmt.Errorf("purpose_of_use claim: %w", err)
	}
	for _, p := range c.PurposeOfUse {
		if strings.TrimSpace(p) == "" {
			return errors.New("purpose_of_use claim: empty code")
		}
	}
	if e.Actor != "" && !actorPattern.MatchString(e.Actor) {
		return errors.New("actor claim is not a FHIR reference such as Organization/clinic")
	}
	c.Actor = e.Actor
	if c.Roles, err = stringOrList(e.Roles); err != nil {
		return fmt.Errorf("roles claim: %w", err)
	}
	return nil
}

// stringOrList decodes a claim that is either one string or an array of
// strings. An absent or null claim gives nil.
func stringOrList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("neither a string nor an array of strings")
	}
	return list, nil
}
