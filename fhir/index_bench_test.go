package fhir

import (
	"encoding/json"
	"os"
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
