package consent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/fhir"
)

// Coding is a code of a code system. An empty System matches a code of
// any system.
type Coding struct {
	System, Code string
}

// Period is a time range [Start, End); a zero bound is open.
type Period struct {
	Start, End time.Time
}

// contains reports whether t is within p.
func (p Period) contains(t time.Time) bool {
	return (p.Start.IsZero() || !t.Before(p.Start)) && (p.End.IsZero() || t.Before(p.End))
}

// overlaps reports whether q shares an instant with p.
func (p Period) overlaps(q Period) bool {
	return (p.End.IsZero() || q.Start.IsZero() || q.Start.Before(p.End)) &&
		(p.Start.IsZero() || q.End.IsZero() || p.Start.Before(q.End))
}

// Effect is what a provision says: permit or deny.
type Effect int8

// The effects of provisions and decisions.
const (
	// Inherit is a provision without a type: it takes its parent's.
	Inherit Effect = iota
	Permit
	Deny
)

func (e Effect) String() string {
	switch e {
	case Permit:
		return "permit"
	case Deny:
		return "deny"
	}
	return "inherit"
}

// The meanings of a provision's data references (R4 consent-data-meaning).
const (
	MeaningInstance   = "instance"
	MeaningRelated    = "related"
	MeaningDependents = "dependents"
	MeaningAuthoredBy = "authoredby"
)

// Actor is one actor of a provision: a role, a reference, or both.
type Actor struct {
	Roles     []Coding
	Reference string
}

// Data is one data reference of a provision and what it covers.
type Data struct {
	Meaning   string
	Reference string
}

// Provision is a rule of a Consent: its effect where every criterion it
// states matches, and nested provisions that are exceptions to it.
type Provision struct {
	Type       Effect
	Period     Period
	Actors     []Actor
	Actions    []Coding
	Labels     []Coding
	Purposes   []Coding
	Classes    []Coding
	Codes      []Coding
	DataPeriod Period
	Data       []Data
	Provisions []*Provision
}

// Consent is a FHIR R4 Consent as the engine reads it.
type Consent struct {
	// ID and Version name the version (Consent/ID/_history/Version).
	ID, Version string
	// Status is draft, proposed, active, rejected, inactive or
	// entered-in-error; only active consents decide.
	Status string
	// PatientPrivacy says the scope is patient-privacy; consents of other
	// scopes (research, treatment, adr) do not decide disclosures.
	PatientPrivacy bool
	// Patient is the id of the patient whose consent it is.
	Patient string
	// Time is when the consent was given (dateTime), else when it was
	// stored (meta.lastUpdated): the newest consent wins.
	Time time.Time
	// Root is the base provision; nil leaves the consent without effect.
	Root *Provision
}

// Ref is the consent version's reference, Consent/id/_history/version.
func (c *Consent) Ref() string { return "Consent/" + c.ID + "/_history/" + c.Version }

// The FHIR JSON of what the engine reads.
type (
	jsonCoding struct {
		System string `json:"system"`
		Code   string `json:"code"`
	}
	jsonConcept struct {
		Coding []jsonCoding `json:"coding"`
	}
	jsonPeriod struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	jsonReference struct {
		Reference string `json:"reference"`
	}
	jsonProvision struct {
		Type   string      `json:"type"`
		Period *jsonPeriod `json:"period"`
		Actor  []struct {
			Role      *jsonConcept   `json:"role"`
			Reference *jsonReference `json:"reference"`
		} `json:"actor"`
		Action        []jsonConcept   `json:"action"`
		SecurityLabel []jsonCoding    `json:"securityLabel"`
		Purpose       []jsonCoding    `json:"purpose"`
		Class         []jsonCoding    `json:"class"`
		Code          []jsonConcept   `json:"code"`
		DataPeriod    *jsonPeriod     `json:"dataPeriod"`
		Data          []jsonData      `json:"data"`
		Provision     []jsonProvision `json:"provision"`
	}
	jsonData struct {
		Meaning   string         `json:"meaning"`
		Reference *jsonReference `json:"reference"`
	}
	jsonConsent struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Meta         struct {
			VersionID   string `json:"versionId"`
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
		Status     string         `json:"status"`
		Scope      jsonConcept    `json:"scope"`
		Patient    *jsonReference `json:"patient"`
		DateTime   string         `json:"dateTime"`
		PolicyRule *jsonConcept   `json:"policyRule"`
		Provision  *jsonProvision `json:"provision"`
	}
)

// scopeSystem is the code system of Consent.scope.
const scopeSystem = "http://terminology.hl7.org/CodeSystem/consentscope"

// maxProvisionDepth bounds the nesting of provisions.
const maxProvisionDepth = 32

// Parse reads a stored Consent (with id and meta.versionId). It refuses
// what it cannot read unambiguously: another resource type, a provision
// type other than permit or deny, a malformed date, a data meaning it
// does not know, nesting deeper than 32.
func Parse(body []byte) (*Consent, error) {
	var in jsonConsent
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("consent: %w", err)
	}
	if in.ResourceType != "Consent" {
		return nil, fmt.Errorf("consent: a %s is not a Consent", in.ResourceType)
	}
	c := &Consent{ID: in.ID, Version: in.Meta.VersionID, Status: in.Status}
	for _, cd := range in.Scope.Coding {
		if cd.Code == "patient-privacy" && (cd.System == "" || cd.System == scopeSystem) {
			c.PatientPrivacy = true
		}
	}
	if in.Patient != nil {
		c.Patient = strings.TrimPrefix(in.Patient.Reference, "Patient/")
	}
	var err error
	switch {
	case in.DateTime != "":
		c.Time, _, err = fhir.ParseSearchDate(in.DateTime)
	case in.Meta.LastUpdated != "":
		c.Time, _, err = fhir.ParseSearchDate(in.Meta.LastUpdated)
	}
	if err != nil {
		return nil, fmt.Errorf("consent: dateTime: %w", err)
	}
	if in.Provision != nil {
		if c.Root, err = provision(in.Provision, "Consent.provision", 0); err != nil {
			return nil, err
		}
		if c.Root.Type == Inherit && in.PolicyRule != nil {
			// Without a root type, the policy rule's opt-in or opt-out is
			// the consent's base (v3 ActCode OPTIN, OPTOUT).
			for _, cd := range in.PolicyRule.Coding {
				switch cd.Code {
				case "OPTIN":
					c.Root.Type = Permit
				case "OPTOUT":
					c.Root.Type = Deny
				}
			}
		}
		if c.Root.Type == Inherit {
			return nil, errors.New("consent: Consent.provision needs a type (permit or deny), or a policyRule OPTIN or OPTOUT")
		}
	}
	return c, nil
}

func provision(in *jsonProvision, path string, depth int) (*Provision, error) {
	if depth >= maxProvisionDepth {
		return nil, fmt.Errorf("consent: %s: provisions nested deeper than %d", path, maxProvisionDepth)
	}
	p := &Provision{}
	switch in.Type {
	case "":
	case "permit":
		p.Type = Permit
	case "deny":
		p.Type = Deny
	default:
		return nil, fmt.Errorf("consent: %s.type %q is neither permit nor deny", path, in.Type)
	}
	var err error
	if p.Period, err = period(in.Period); err != nil {
		return nil, fmt.Errorf("consent: %s.period: %w", path, err)
	}
	if p.DataPeriod, err = period(in.DataPeriod); err != nil {
		return nil, fmt.Errorf("consent: %s.dataPeriod: %w", path, err)
	}
	for _, a := range in.Actor {
		var actor Actor
		if a.Role != nil {
			actor.Roles = codings(a.Role.Coding)
		}
		if a.Reference != nil {
			actor.Reference = a.Reference.Reference
		}
		p.Actors = append(p.Actors, actor)
	}
	for _, a := range in.Action {
		p.Actions = append(p.Actions, codings(a.Coding)...)
	}
	p.Labels = codings(in.SecurityLabel)
	p.Purposes = codings(in.Purpose)
	p.Classes = codings(in.Class)
	for _, cc := range in.Code {
		p.Codes = append(p.Codes, codings(cc.Coding)...)
	}
	for i, d := range in.Data {
		switch d.Meaning {
		case MeaningInstance, MeaningRelated, MeaningDependents, MeaningAuthoredBy:
		default:
			return nil, fmt.Errorf("consent: %s.data[%d].meaning %q is not instance, related, dependents or authoredby", path, i, d.Meaning)
		}
		if d.Reference == nil || d.Reference.Reference == "" {
			return nil, fmt.Errorf("consent: %s.data[%d] has no reference", path, i)
		}
		p.Data = append(p.Data, Data{Meaning: d.Meaning, Reference: d.Reference.Reference})
	}
	for i := range in.Provision {
		child, err := provision(&in.Provision[i], fmt.Sprintf("%s.provision[%d]", path, i), depth+1)
		if err != nil {
			return nil, err
		}
		p.Provisions = append(p.Provisions, child)
	}
	return p, nil
}

func codings(in []jsonCoding) []Coding {
	out := make([]Coding, 0, len(in))
	for _, c := range in {
		if c.Code != "" {
			out = append(out, Coding{System: c.System, Code: c.Code})
		}
	}
	return out
}

// period reads a FHIR Period: from the start of its start to the end of
// its end, at their precision ("2024" ends when 2024 does).
func period(in *jsonPeriod) (Period, error) {
	var p Period
	if in == nil {
		return p, nil
	}
	var err error
	if in.Start != "" {
		if p.Start, _, err = fhir.ParseSearchDate(in.Start); err != nil {
			return p, err
		}
	}
	if in.End != "" {
		if _, p.End, err = fhir.ParseSearchDate(in.End); err != nil {
			return p, err
		}
	}
	return p, nil
}
