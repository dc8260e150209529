package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// bundle is the part of a FHIR Bundle the generator reads.
type bundle struct {
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

// structureDefinition is the part of a StructureDefinition the generator
// reads.
type structureDefinition struct {
	ResourceType   string `json:"resourceType"`
	URL            string `json:"url"`
	Name           string `json:"name"`
	Type           string `json:"type"`
	Kind           string `json:"kind"`
	Abstract       bool   `json:"abstract"`
	Derivation     string `json:"derivation"`
	BaseDefinition string `json:"baseDefinition"`
	FhirVersion    string `json:"fhirVersion"`
	Snapshot       struct {
		Element []elementDefinition `json:"element"`
	} `json:"snapshot"`
	Differential struct {
		Element []elementDefinition `json:"element"`
	} `json:"differential"`
}

// elementDefinition is the part of an ElementDefinition the generator reads.
// Pointers tell "absent" from "zero", so that a differential element can be
// merged over the one it inherits.
type elementDefinition struct {
	ID               string        `json:"id"`
	Path             string        `json:"path"`
	Min              *int          `json:"min"`
	Max              *string       `json:"max"`
	ContentReference string        `json:"contentReference"`
	IsSummary        *bool         `json:"isSummary"`
	IsModifier       *bool         `json:"isModifier"`
	Type             []elementType `json:"type"`
	Binding          *binding      `json:"binding"`
}

// binding is the part of ElementDefinition.binding the generator reads.
type binding struct {
	Strength string `json:"strength"`
	ValueSet string `json:"valueSet"` // canonical, possibly with "|version"
}

// elementType is one entry of ElementDefinition.type.
type elementType struct {
	Code          string      `json:"code"`
	Extension     []extension `json:"extension"`
	TargetProfile []string    `json:"targetProfile"`
}

type extension struct {
	URL         string `json:"url"`
	ValueURL    string `json:"valueUrl"`
	ValueString string `json:"valueString"`
}

// readBundle returns the StructureDefinitions in a Bundle file.
func readBundle(path string) ([]*structureDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	var sds []*structureDefinition
	for i, e := range b.Entry {
		var probe struct {
			ResourceType string `json:"resourceType"`
		}
		if err := json.Unmarshal(e.Resource, &probe); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", filepath.Base(path), i, err)
		}
		if probe.ResourceType != "StructureDefinition" {
			continue
		}
		sd := new(structureDefinition)
		if err := json.Unmarshal(e.Resource, sd); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", filepath.Base(path), i, err)
		}
		sds = append(sds, sd)
	}
	return sds, nil
}
