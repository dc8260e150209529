package server

import (
	"net/http"

	"github.com/ehrledger/ehrledger/fhir"
)

// The interactions the server implements, as the CapabilityStatement
// states them. Keep these lists true to the routes.
var (
	typeInteractions = []string{
		"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
	}
	systemInteractions = []string{"history-system"}
)

type capabilityStatement struct {
	ResourceType   string            `json:"resourceType"`
	Status         string            `json:"status"`
	Date           string            `json:"date"`
	Publisher      string            `json:"publisher"`
	Kind           string            `json:"kind"`
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
	Resource      []capResource    `json:"resource"`
	Interaction   []capInteraction `json:"interaction"`
	Operation     []capOperation   `json:"operation"`
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
	Operation         []capOperation   `json:"operation"`
}

type capInteraction struct {
	Code string `json:"code"`
}

type capOperation struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

var validateOp = capOperation{Name: "validate", Definition: "http://hl7.org/fhir/OperationDefinition/Resource-validate"}

func interactions(codes []string) []capInteraction {
	out := make([]capInteraction, len(codes))
	for i, c := range codes {
		out[i] = capInteraction{Code: c}
	}
	return out
}

// capabilities is GET /metadata.
func (s *Server) capabilities(w http.ResponseWriter, r *http.Request) error {
	types := fhir.ResourceTypes()
	rest := capRest{
		Mode: "server",
		Documentation: "Conditional create (If-None-Exist), update, patch and delete match on the parameters _id and identifier. " +
			"History pages with _count, _since and an opaque _page cursor.",
		Interaction: interactions(systemInteractions),
		Operation:   []capOperation{validateOp},
		Resource:    make([]capResource, 0, len(types)),
	}
	for _, t := range types {
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
			Operation:         []capOperation{validateOp},
		})
	}
	cs := capabilityStatement{
		ResourceType:   "CapabilityStatement",
		Status:         "active",
		Date:           fhir.FormatInstant(s.started),
		Publisher:      "ehrledger",
		Kind:           "instance",
		Software:       capSoftware{Name: "ehrledger", Version: s.cfg.Version},
		Implementation: capImplementation{Description: "ehrledger FHIR R4 server", URL: s.baseURL(r)},
		FHIRVersion:    "4.0.1",
		Format:         []string{mediaFHIRJSON, "json"},
		PatchFormat:    []string{mediaJSONPatch},
		Rest:           []capRest{rest},
	}
	s.writeJSON(w, r, http.StatusOK, cs)
	return nil
}
