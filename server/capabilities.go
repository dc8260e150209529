package server

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/ehrledger/ehrledger/fhir"
)

// The interactions the server implements, as the CapabilityStatement
// states them. Keep these lists true to the routes.
var (
	typeInteractions = []string{
		"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type",
	}
	systemInteractions = []string{"transaction", "batch", "history-system"}
)

type capabilityStatement struct {
	ResourceType   string            `json:"resourceType"`
	Status         string            `json:"status"`
	Date           string            `json:"date"`
	Publisher      string            `json:"publisher"`
	Kind           string            `json:"kind"`
	Instantiates   []string          `json:"instantiates"`
	Software       capSoftware       `json:"software"`
	Implementation capImplementation `json:"implementation"`
	FHIRVersion    string            `json:"fhirVersion"`
	Format         []string          `json:"format"`
	PatchFormat    []string          `json:"patchFormat"`
	Rest           []capRest         `json:"rest"`
}

type capSoftware struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

type capImplementation struct {
	Description string `json:"description"`
	URL         string `json:"url"`
}

type capRest struct {
	Mode          string           `json:"mode"`
	Documentation string           `json:"documentation"`
	Security      *capSecurity     `json:"security,omitempty"`
	Resource      []capResource    `json:"resource"`
	Interaction   []capInteraction `json:"interaction"`
	Operation     []capOperation   `json:"operation"`
}

// capSecurity says how clients authenticate: SMART on FHIR, with the
// token endpoint in the oauth-uris extension (SMART App Launch 1.0,
// "Conformance", kept by 2.x for discovery from the CapabilityStatement).
type capSecurity struct {
	Extension   []capExtension `json:"extension,omitempty"`
	Service     []capConcept   `json:"service"`
	Description string         `json:"description"`
}

type capExtension struct {
	URL       string         `json:"url"`
	ValueURI  string         `json:"valueUri,omitempty"`
	Extension []capExtension `json:"extension,omitempty"`
}

type capConcept struct {
	Coding []capCoding `json:"coding"`
	Text   string      `json:"text,omitempty"`
}

type capCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

// security is the CapabilityStatement's rest.security, nil when
// authentication is off.
func (s *Server) security(r *http.Request) *capSecurity {
	if s.cfg.InsecureNoAuth {
		return nil
	}
	sec := &capSecurity{
		Service: []capConcept{{
			Coding: []capCoding{{System: "http://terminology.hl7.org/CodeSystem/restful-security-service", Code: "SMART-on-FHIR"}},
			Text:   "OAuth2 bearer tokens using the SMART App Launch profile (Backend Services)",
		}},
		Description: "Every FHIR interaction needs a bearer access token; SMART v1 and v2 scopes decide what it may reach, and " +
			"patient/ scopes confine it to the token's patient. See /.well-known/smart-configuration.",
	}
	if u := s.tokenURL(r); u != "" {
		sec.Extension = []capExtension{{
			URL:       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			Extension: []capExtension{{URL: "token", ValueURI: u}},
		}}
	}
	return sec
}

type capResource struct {
	Type              string           `json:"type"`
	Profile           string           `json:"profile"`
	Interaction       []capInteraction `json:"interaction"`
	Versioning        string           `json:"versioning"`
	ReadHistory       bool             `json:"readHistory"`
	UpdateCreate      bool             `json:"updateCreate"`
	ConditionalCreate bool             `json:"conditionalCreate"`
	ConditionalRead   string           `json:"conditionalRead"`
	ConditionalUpdate bool             `json:"conditionalUpdate"`
	ConditionalDelete string           `json:"conditionalDelete"`
	SearchInclude     []string         `json:"searchInclude,omitempty"`
	SearchRevInclude  []string         `json:"searchRevInclude,omitempty"`
	SearchParam       []capSearchParam `json:"searchParam,omitempty"`
	Operation         []capOperation   `json:"operation"`
}

type capSearchParam struct {
	Name       string `json:"name"`
	Definition string `json:"definition,omitempty"`
	Type       string `json:"type"`
}

type capInteraction struct {
	Code string `json:"code"`
}

type capOperation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

var (
	validateOp   = capOperation{Name: "validate", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
	everythingOp = capOperation{Name: "everything", Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything"}
	// The Bulk Data export operations (docs/export.md).
	exportOp        = capOperation{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}
	patientExportOp = capOperation{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}
	groupExportOp   = capOperation{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}
	// disclosuresOp is the accounting of disclosures (docs/accounting.md).
	disclosuresOp = capOperation{Name: "disclosures", Definition: "urn:ehrledger:OperationDefinition/Patient-disclosures"}
)

func interactions(codes []string) []capInteraction {
	out := make([]capInteraction, len(codes))
	for i, c := range codes {
		out[i] = capInteraction{Code: c}
	}
	return out
}

// capabilities is GET /metadata. The statement (about 770 KB) is built
// once for each base URL the server answers as and kept encoded.
func (s *Server) capabilities(w http.ResponseWriter, r *http.Request) error {
	base := s.baseURL(r)
	if body, ok := s.capCache.Load(base); ok {
		s.writeBody(w, r, http.StatusOK, body.([]byte))
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s.capabilityStatement(r)); err != nil {
		return err
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if s.cfg.BaseURL != "" { // the bases are the configured ones, not every Host a client sends
		s.capCache.Store(base, body)
	}
	s.writeBody(w, r, http.StatusOK, body)
	return nil
}

// capabilityStatement is the CapabilityStatement as a request's base
// URL states it.
func (s *Server) capabilityStatement(r *http.Request) capabilityStatement {
	types := fhir.ResourceTypes()
	// A type's revincludes are the reference parameters of other types
	// that may point at it.
	revIncludes := map[string][]string{}
	for _, src := range types {
		for _, sp := range fhir.SearchParams(src) {
			if sp.Type != "reference" {
				continue
			}
			for _, target := range sp.Targets {
				revIncludes[target] = append(revIncludes[target], src+":"+sp.Code)
			}
		}
	}
	rest := capRest{
		Mode: "server",
		Documentation: "Search takes every R4 search parameter listed per resource, with chaining, _has, _sort, _total, _summary, " +
			"_elements, _include and _revinclude (:iterate); pages follow an opaque _page cursor. Conditional create, update, " +
			"patch and delete take the same criteria. History pages with _count, _since and _page.",
		Security:    s.security(r),
		Interaction: interactions(systemInteractions),
		Operation:   []capOperation{validateOp, exportOp},
		Resource:    make([]capResource, 0, len(types)),
	}
	for _, t := range types {
		var params []capSearchParam
		var includes []string
		for _, sp := range fhir.SearchParams(t) {
			if sp.Type == "special" {
				continue
			}
			params = append(params, capSearchParam{Name: sp.Code, Definition: sp.URL, Type: sp.Type})
			if sp.Type == "reference" {
				includes = append(includes, t+":"+sp.Code)
			}
		}
		ops := []capOperation{validateOp}
		switch t {
		case "Patient":
			ops = append(ops, everythingOp, disclosuresOp, patientExportOp)
		case "Group":
			ops = append(ops, groupExportOp)
		}
		rest.Resource = append(rest.Resource, capResource{
			Type:              t,
			Profile:           "http://hl7.org/fhir/StructureDefinition/" + t,
			Interaction:       interactions(typeInteractions),
			Versioning:        "versioned-update",
			ReadHistory:       true,
			UpdateCreate:      true,
			ConditionalCreate: true,
			ConditionalRead:   "not-supported",
			ConditionalUpdate: true,
			ConditionalDelete: "single",
			SearchInclude:     append([]string{"*"}, includes...),
			SearchRevInclude:  revIncludes[t],
			SearchParam:       params,
			Operation:         ops,
		})
	}
	cs := capabilityStatement{
		ResourceType:   "CapabilityStatement",
		Status:         "active",
		Date:           fhir.FormatInstant(s.started),
		Publisher:      "ehrledger",
		Kind:           "instance",
		Instantiates:   []string{"http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"},
		Software:       capSoftware{Name: "ehrledger", Version: s.cfg.Version},
		Implementation: capImplementation{Description: "ehrledger FHIR R4 server", URL: s.baseURL(r)},
		FHIRVersion:    "4.0.1",
		Format:         []string{mediaFHIRJSON, "json"},
		PatchFormat:    []string{mediaJSONPatch},
		Rest:           []capRest{rest},
	}
	return cs
}
