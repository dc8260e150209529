// Package synth generates a synthetic patient population for benchmarks:
// seeded, reproducible FHIR R4 records to load into the server through
// transaction Bundles before running typical clinical queries.
//
// A Population (New(Config)) gives each patient's record as one
// transaction Bundle: a Patient with its Encounters, Observations (vital
// signs and laboratory results, LOINC with UCUM units), Conditions
// (SNOMED CT), MedicationRequests (RxNorm) and, unless Config.CoreOnly,
// Immunizations (CVX), AllergyIntolerances and Procedures. Every entry is
// a POST whose fullUrl is a urn:uuid; references between entries use
// those urn:uuid values, so the server must rewrite them, and references
// to Practitioners and Organizations name a fixed shared set
// (Population.Shared) by id, to be PUT first.
//
// # Reproducibility
//
// Record(i) is a pure function of the Config (without Patients) and i:
// patient i draws from its own PCG generator seeded with Config.Seed and a
// hash of i, so records can be generated in any order and in parallel,
// and a population is a prefix of any larger one of the same seed. Output
// is byte-identical for a given Go release on a given architecture; the
// algorithms of math/rand/v2's derived methods (IntN, NormFloat64) could
// change in a later Go release, and floating point can round differently
// on architectures that fuse multiply-adds, which would change a few
// values. TestGolden notices either.
//
// # Size and speed
//
// With the defaults, a record holds 51.3 resources on average (seed 1,
// all 19,584 patients of PatientsFor(1_000_000); other seeds 51.4 to
// 52.0): 1 Patient, 9.6 Encounters, 29.6 Observations, 3.8 Conditions,
// 4.6 MedicationRequests, 1.5 Immunizations, 1.0 Procedure and 0.25
// AllergyIntolerance. The count is skewed: minimum 10, median 43, 90th
// percentile 85, 99th 177, maximum about 550 (a patient with 100
// encounters). CoreOnly records hold 48.6. A resource is about 920 bytes
// of JSON, so a million resources, about 19,600 patients, is 920 MB.
// Population.Stats and ResourcesPerPatient measure the figures of any
// Config on a sample of StatsSample records.
//
// Generating takes about 350 ns per resource on one core (18 µs per
// record, 2.5 GB/s); a million resources take 0.25 s on two cores
// (BenchmarkMillion).
//
// # Query inputs
//
// The inputs of load-run queries follow from the Config: Population.MRN
// (identifier system MRNSystem), Population.Patient (the demographics of
// patient i), FrequentFamily and RareFamily (counted by QueryInputs), the
// codes present with their frequencies (Stats, QueryInputs) and the
// periods the dates fall in (QueryInputs). Systolic (8480-6) and
// diastolic (8462-4) pressures occur only as components of the blood
// pressure panel 85354-9, to be found with component-code.
//
// Command bench/synth/cmd/synth writes a population as NDJSON.
package synth
