package disclosure

import (
	"context"
	"strings"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/auth"
)

// PurposeBreakGlass is the purpose of use of an emergency access.
const PurposeBreakGlass = "ETREAT"

// Caller is who makes a request, as its access token says, and the
// purpose of use of this request. A request without one is allowed
// nothing.
type Caller struct {
	// Open says authentication is off: every scope, no claims.
	Open bool
	// Claims are the verified token; nil when authentication is off.
	Claims *auth.Claims
	// Purpose is the purpose of use of this request ("" for none).
	Purpose string
	// BreakGlass is the reason given for an emergency access (purpose
	// ETREAT); "" for none. It is never written to the ledger, which
	// holds no free text.
	BreakGlass string
}

type callerKey struct{}

// WithCaller returns ctx carrying c, for the gate to act for.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerOf returns the caller in ctx, nil when there is none.
func CallerOf(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

// everything is the grant of a caller when authentication is off.
var everything = auth.Grant{Rules: []auth.Rule{{Context: auth.System}}}

// Allow says how the caller's scopes allow interaction in on type typ.
func (c *Caller) Allow(typ string, in auth.Interaction) (auth.Grant, bool) {
	switch {
	case c == nil:
		return auth.Grant{}, false
	case c.Open:
		return everything, true
	}
	return c.Claims.Scopes.Allow(typ, in)
}

// Admin reports whether the caller has the administration scope.
func (c *Caller) Admin() bool {
	return c != nil && (c.Open || c.Claims.Scopes.Contains(auth.AdminScope))
}

// Patient is the patient in the token's context, "" for none.
func (c *Caller) Patient() string {
	if c == nil || c.Claims == nil {
		return ""
	}
	return c.Claims.Patient
}

// Self is the patient the caller is, when it is a patient's own app
// acting as that patient (its actor is the patient in its context), ""
// otherwise. A patient's own data is never withheld from them.
func (c *Caller) Self() string {
	if c != nil && c.Claims != nil && c.Claims.Patient != "" && c.Claims.Actor == "Patient/"+c.Claims.Patient {
		return c.Claims.Patient
	}
	return ""
}

// ClientID is the token's client, "" without a token.
func (c *Caller) ClientID() string {
	if c == nil || c.Claims == nil {
		return ""
	}
	return c.Claims.ClientID
}

// PurposeOfUse is the request's purpose of use, "" for none.
func (c *Caller) PurposeOfUse() string {
	if c == nil {
		return ""
	}
	return c.Purpose
}

// breakingGlass reports whether the request is an emergency access.
func (c *Caller) breakingGlass() bool {
	return c != nil && c.Purpose == PurposeBreakGlass && c.BreakGlass != ""
}

// Recipient is who receives what a request discloses, for its ledger
// record: the client and, when it acts for one, its organisation. An
// actor of another kind (a practitioner, or the patient, whose id must
// never reach the ledger) is not recorded. A token in a patient's context
// is marked so: its client may be the patient's alone, and a leaf must
// not show it (audit.Recipient).
func (c *Caller) Recipient() *audit.Recipient {
	if c == nil || c.Claims == nil {
		return nil
	}
	r := &audit.Recipient{Client: c.Claims.ClientID, PatientContext: c.Claims.Patient != ""}
	if strings.HasPrefix(c.Claims.Actor, "Organization/") {
		r.Organization = c.Claims.Actor
	}
	return r
}
