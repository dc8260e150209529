package fhir

import (
	"slices"
	"strings"
	"sync"
)

// Patient data. A resource is a patient's data when it is that Patient,
// or refers to a Patient (Index.Patients): through the parameters of the
// Patient compartment first, else through any reference at all (a Task
// whose for is the patient, an extension pointing at them). The types
// whose resources can be patient data by their definition are
// PatientDataTypes; others (Organization, Practitioner, Medication,
// terminology...) become a patient's data only through an extension.

// patientsOf is Index.Patients: compartment, then every other relative
// reference to a Patient in body.
func patientsOf(compartment []string, body []byte) []string {
	out := slices.Clone(compartment)
	for _, ref := range References(body) {
		id, ok := strings.CutPrefix(ref, "Patient/")
		if !ok {
			continue
		}
		if i := strings.Index(id, "/_history/"); i >= 0 {
			id = id[:i]
		}
		if primIsID(id) && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// PatientCompartmentType reports whether resources of typ are in the R4
// Patient compartment by definition: Patient and the types with
// compartment parameters.
func PatientCompartmentType(typ string) bool {
	return typ == "Patient" || PatientCompartmentParams(typ) != nil
}

var patientData = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	for _, t := range ResourceTypes() {
		if PatientCompartmentType(t) {
			out[t] = true
			continue
		}
		for _, sp := range SearchParams(t) {
			if sp.Type == "reference" && slices.Contains(sp.Targets, "Patient") {
				out[t] = true
				break
			}
		}
	}
	return out
})

// PatientData reports whether resources of typ can be patient data by
// their definition: the Patient compartment's types, and the types with
// a search parameter that refers to a Patient (Task, Appointment,
// Provenance...).
func PatientData(typ string) bool { return patientData()[typ] }

// PatientDataTypes lists the types for which PatientData holds, sorted.
func PatientDataTypes() []string {
	var out []string
	for _, t := range ResourceTypes() {
		if PatientData(t) {
			out = append(out, t)
		}
	}
	return out
}
