package fhir

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The extraction benchmarks run on a typical Patient (the validator's
// fixture) and a blood pressure Observation with components; the
// ...Baseline benchmarks decode the same bodies with encoding/json into
// map[string]any, which any handler that looks inside a resource pays at
// least once, so that BENCHMARKS.md can state extraction as a multiple of
// it. `go test -bench Extract ./fhir/` runs all four in one go.

func benchBody(b *testing.B, file string) []byte {
	b.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func benchExtract(b *testing.B, typ, file string) {
	body := benchBody(b, file)
	if _, err := ExtractIndex(typ, body); err != nil { // compiles the type's expressions
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ExtractIndex(typ, body); err != nil {
			b.Fatal(err)
		}
	}
}

func benchUnmarshal(b *testing.B, file string) {
	body := benchBody(b, file)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractPatient(b *testing.B) {
	benchExtract(b, "Patient", "testdata/valid/patient-typical.json")
}

func BenchmarkExtractObservation(b *testing.B) {
	benchExtract(b, "Observation", "testdata/search/observation.json")
}

func BenchmarkExtractPatientBaseline(b *testing.B) {
	benchUnmarshal(b, "testdata/valid/patient-typical.json")
}

func BenchmarkExtractObservationBaseline(b *testing.B) {
	benchUnmarshal(b, "testdata/search/observation.json")
}

// manyIdentifiers is a Patient with n distinct identifiers, each given
// twice, and n given names.
func manyIdentifiers(n int) []byte {
	var ids, given []string
	for i := range n {
		id := fmt.Sprintf(`{"system":"http://example.org/mrn","value":"MRN%07d"}`, i)
		ids = append(ids, id, id)
		given = append(given, fmt.Sprintf(`"Given%07d"`, i))
	}
	return []byte(`{"resourceType":"Patient","identifier":[` + strings.Join(ids, ",") + `],"name":[{"family":"Many","given":[` + strings.Join(given, ",") + `]}]}`)
}

// BenchmarkExtractLarge measures extraction as a resource grows: the time
// per value should stay flat (linear in the resource's size).
func BenchmarkExtractLarge(b *testing.B) {
	for _, n := range []int{100, 1_000, 10_000, 40_000} {
		b.Run(fmt.Sprintf("identifiers=%d", n), func(b *testing.B) {
			body := manyIdentifiers(n)
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := ExtractIndex("Patient", body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
