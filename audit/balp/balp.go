// Package balp builds the FHIR R4 AuditEvents the ledger's records are
// shown as (IHE Basic Audit Log Patterns, BALP): disclosures as
// PrivacyDisclosure.Source, writes as (Patient)Create, Update and Delete,
// denials and the decisions behind disclosures as AuthZconsent, erasures
// with ISO 21089 destroy (docs/ledger.md). Each cites its record's index
// in the extension IndexExt. The types are the part of R4's AuditEvent
// these events use, so that what is built is checked by the compiler and,
// in this package's tests, by the FHIR validator.
package balp

import (
	"strconv"
	"strings"
	"time"

	"github.com/ehrledger/ehrledger/audit"
	"github.com/ehrledger/ehrledger/fhir"
)

// Profiles and code systems.
const (
	profilePrefix = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
	// Disclosure is the profile of a disclosure's AuditEvent.
	Disclosure = profilePrefix + "PrivacyDisclosure.Source"
	// AuthZconsent is the profile of an authorization decision by consent.
	AuthZconsent = profilePrefix + "AuthZconsent"
	authzSubtype = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
	dicom        = "http://dicom.nema.org/resources/ontology/DCM"
	lifecycle    = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
	restful      = "http://hl7.org/fhir/restful-interaction"
	entityType   = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	objectRole   = "http://terminology.hl7.org/CodeSystem/object-role"
	// IndexExt carries the index of the record an AuditEvent shows.
	IndexExt = "urn:ehrledger:fhir:ledger-index"
)

// AuditEvent is an R4 AuditEvent, the elements these events use, in the
// order they are written.
type AuditEvent struct {
	ResourceType   string            `json:"resourceType"`
	ID             string            `json:"id"`
	Meta           *Meta             `json:"meta,omitempty"`
	Extension      []Extension       `json:"extension,omitempty"`
	Type           Coding            `json:"type"`
	Subtype        []Coding          `json:"subtype,omitempty"`
	Action         string            `json:"action,omitempty"`
	Recorded       string            `json:"recorded,omitempty"`
	Outcome        string            `json:"outcome,omitempty"`
	OutcomeDesc    string            `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []CodeableConcept `json:"purposeOfEvent,omitempty"`
	Agent          []Agent           `json:"agent"`
	Source         Source            `json:"source"`
	Entity         []Entity          `json:"entity,omitempty"`
}

// Meta is a resource's meta: profiles, security labels, tags.
type Meta struct {
	Profile  []string `json:"profile,omitempty"`
	Security []Coding `json:"security,omitempty"`
	Tag      []Coding `json:"tag,omitempty"`
}

// Extension is an extension with one of the values these events carry.
type Extension struct {
	URL               string `json:"url"`
	ValueInteger      *int64 `json:"valueInteger,omitempty"`
	ValueString       string `json:"valueString,omitempty"`
	ValueBase64Binary string `json:"valueBase64Binary,omitempty"`
}

// Coding is a code of a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a concept given by codings.
type CodeableConcept struct {
	Coding []Coding `json:"coding"`
}

// Reference is a reference, by URL, identifier or display only.
type Reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// Identifier is a bare identifier value.
type Identifier struct {
	Value string `json:"value"`
}

// Agent is an actor in the event.
type Agent struct {
	Type      CodeableConcept `json:"type"`
	Who       Reference       `json:"who"`
	Requestor bool            `json:"requestor"`
}

// Source is who reported the event: this provider's ledger.
type Source struct {
	Observer Reference `json:"observer"`
	Type     []Coding  `json:"type"`
}

// Entity is a thing the event was about.
type Entity struct {
	What        Reference `json:"what"`
	Type        *Coding   `json:"type,omitempty"`
	Role        *Coding   `json:"role,omitempty"`
	Description string    `json:"description,omitempty"`
	Detail      []Detail  `json:"detail,omitempty"`
}

// Detail is a named value of an entity.
type Detail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

// Event is the AuditEvent of record n, about patient ("" for none), as
// the ledger of origin shows it.
func Event(n int64, rec *audit.Record, patient, origin string) *AuditEvent {
	ae := &AuditEvent{
		ResourceType: "AuditEvent",
		ID:           "ledger-" + strconv.FormatInt(n, 10),
		Extension:    []Extension{{URL: IndexExt, ValueInteger: &n}},
		Outcome:      "0",
		Source: Source{Observer: Reference{Display: origin},
			Type: []Coding{{System: "http://terminology.hl7.org/CodeSystem/security-source-type", Code: "4", Display: "Application Server"}}},
	}
	if t, err := time.Parse(time.RFC3339Nano, rec.Time); err == nil {
		ae.Recorded = fhir.FormatInstant(t)
	}
	ae.Subtype = []Coding{{System: restful, Code: rec.Interaction}}
	switch rec.Type {
	case audit.TypeDisclosure:
		ae.Meta = &Meta{Profile: []string{Disclosure}}
		ae.Type = Coding{System: dicom, Code: "110106", Display: "Export"}
		ae.Action = "R"
		ae.Subtype = append(ae.Subtype, Coding{System: lifecycle, Code: "disclose", Display: "Disclose Record Lifecycle Event"})
	case audit.TypeWrite, audit.TypeConsent:
		profile, action := "Update", "U"
		switch {
		case rec.Interaction == "delete":
			profile, action = "Delete", "D"
		case rec.Interaction == "create" || len(rec.Resources) > 0 && strings.HasSuffix(rec.Resources[0].Ref, "/_history/1"):
			profile, action = "Create", "C" // a POST, or a PUT that created
		}
		if patient != "" {
			profile = "Patient" + profile
		}
		ae.Meta = &Meta{Profile: []string{profilePrefix + profile}}
		ae.Type = Coding{System: "http://terminology.hl7.org/CodeSystem/audit-event-type", Code: "rest", Display: "RESTful Operation"}
		ae.Action = action
	case audit.TypeDenial:
		// An authorization decision that withheld data: BALP AuthZconsent
		// with a failed outcome.
		ae.Meta = &Meta{Profile: []string{AuthZconsent}}
		ae.Type = Coding{System: dicom, Code: "110113", Display: "Security Alert"}
		ae.Action = "E"
		ae.Outcome = "8"
		ae.OutcomeDesc = "the patient's consent, or the provider's policy, did not permit the disclosure"
		ae.Subtype = []Coding{{System: authzSubtype, Code: "AuthZ-Consent", Display: "Authorization Decision using Roles and Consent"}}
	case audit.TypeErasure:
		ae.Type = Coding{System: dicom, Code: "110105", Display: "DICOM Study Deleted"}
		ae.Action = "D"
		ae.Subtype = []Coding{{System: lifecycle, Code: "destroy", Display: "Destroy/Delete Record Lifecycle Event"}}
	default:
		ae.Type = Coding{System: "urn:ehrledger:record-type", Code: rec.Type}
		ae.Action = "E"
	}
	if rec.BreakGlass {
		// Only an emergency access permitted it: marked as HL7 marks
		// break-the-glass.
		if ae.Meta == nil {
			ae.Meta = &Meta{}
		}
		ae.Meta.Security = []Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "BTG", Display: "break the glass"}}
	}
	who := Reference{Display: "unidentified client"}
	if rc := rec.Recipient; rc != nil && (rc.Client != "" || rc.Organization != "") {
		who = Reference{Reference: rc.Organization}
		if rc.Client != "" {
			who.Identifier = &Identifier{Value: rc.Client}
		}
	}
	ae.Agent = []Agent{
		{Type: CodeableConcept{Coding: []Coding{{System: dicom, Code: "110152", Display: "Destination Role ID"}}}, Who: who, Requestor: true},
		{Type: CodeableConcept{Coding: []Coding{{System: dicom, Code: "110153", Display: "Source Role ID"}}}, Who: Reference{Display: origin}},
	}
	if rec.Purpose != "" {
		ae.PurposeOfEvent = []CodeableConcept{{Coding: []Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-ActReason", Code: rec.Purpose}}}}
	}
	if patient != "" {
		ae.Entity = append(ae.Entity, Entity{What: Reference{Reference: "Patient/" + patient},
			Type: &Coding{System: entityType, Code: "1", Display: "Person"},
			Role: &Coding{System: objectRole, Code: "1", Display: "Patient"}})
	}
	for _, res := range rec.Resources {
		e := Entity{What: Reference{Reference: res.Ref},
			Type: &Coding{System: entityType, Code: "2", Display: "System Object"},
			Role: &Coding{System: objectRole, Code: "4", Display: "Domain Resource"}}
		if res.SHA256 != "" {
			e.Detail = []Detail{{Type: "sha256", ValueString: res.SHA256}}
		}
		ae.Entity = append(ae.Entity, e)
	}
	for _, c := range rec.Consents {
		e := Entity{What: Reference{Reference: c.Ref},
			Type: &Coding{System: "http://hl7.org/fhir/resource-types", Code: "Consent"},
			Role: &Coding{System: objectRole, Code: "13", Display: "Security Resource"}}
		if c.Index != nil {
			// The consent version's own record in this ledger.
			e.Detail = []Detail{{Type: "ledger-index", ValueString: strconv.FormatInt(*c.Index, 10)}}
		}
		ae.Entity = append(ae.Entity, e)
	}
	return ae
}

// AuthZ is the AuthZconsent AuditEvent of the permit decision behind
// disclosure record n: which consent versions permitted what, to whom and
// why. Its id is the record's with "-authz".
func AuthZ(n int64, rec *audit.Record, patient, origin string) *AuditEvent {
	ae := Event(n, rec, patient, origin)
	ae.ID += "-authz"
	if ae.Meta == nil {
		ae.Meta = &Meta{}
	}
	ae.Meta.Profile = []string{AuthZconsent}
	ae.Type = Coding{System: dicom, Code: "110113", Display: "Security Alert"}
	ae.Subtype = []Coding{{System: authzSubtype, Code: "AuthZ-Consent", Display: "Authorization Decision using Roles and Consent"}}
	ae.Action = "E"
	return ae
}
