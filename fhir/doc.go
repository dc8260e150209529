// Package fhir holds what ehrledger knows about FHIR R4 (4.0.1): the list of
// resource types, parsing of resource JSON that keeps the client's bytes,
// validation against the R4 StructureDefinitions, and the
// CapabilityStatement.
//
// It sits at the bottom of the data flow: the server hands it request bodies
// and gets back a parsed Resource or the list of every problem found, each
// with its FHIRPath-style location. It imports nothing else of ours.
package fhir
