// Package fhir holds what ehrledger knows about FHIR R4 (4.0.1): the
// resource types and their structure, parsing of resource JSON that keeps
// the client's bytes, validation against the R4 StructureDefinitions and
// required value sets, the R4 search parameters with a compiled FHIRPath
// subset that extracts their index values, the Patient compartment, the
// parsing of search query strings, and the rewriting of references in
// transaction Bundles.
//
// It sits at the bottom of the data flow: the server hands it request bodies
// and query strings and gets back parsed resources, every problem found
// (each with its FHIRPath-style location), index values for the store and
// searches for the store to compile. It imports nothing else of ours.
package fhir
