// Package disclosure is the gate between a FHIR request and patient
// data: the only road from the HTTP handlers to the resources the store
// holds. It knows the caller (the access token's scopes, its patient
// confinement, the actor and the purpose of use of the request, and
// break-glass), decides for every version it touches whether the caller
// may see it (scopes, confinement, the patient's Consent, redaction), and
// appends the ledger records of what an answer discloses and withholds
// before it hands back a single byte of it.
//
// Data flow of a read: the handler opens a Response for one answer
// (Gate.Respond) and asks it for what the answer needs (Read, Search,
// Include, History, Everything, the ledger's view of a patient, the
// bodies a write returns). Each asks the store for no more than the
// caller may reach, narrows the query in SQL where one rule applies and
// checks each version where it cannot, decides each patient's versions
// against their compiled consent policy, and keeps the permitted ones
// inside the Response. Response.Record appends one disclosure record per
// patient disclosed and one denial record per patient withheld, waits
// until they are durable, and only then returns the bodies (Shown) and
// the indexes the answer names in its Ledger-Index header. A handler
// therefore cannot send what was not decided and recorded: it never
// holds the body before the record exists.
//
// Criteria are reads too. A conditional write's criteria, a chain and a
// _has reach only what the caller could read: the resources they test
// are found through the same gate, so a hidden resource changes neither
// the answer nor its status (criteria.go).
//
// Writes go through a WriteTx (Gate.InTx): it authorizes each change
// against the caller's scopes and patient before anything of the target's
// content is used, and queues the write's ledger record in the same
// database transaction as the version.
//
// Which patient a resource belongs to is decided once, when it is
// written, from every reference it makes to a Patient
// (fhir.Index.Patients): it names the data key that seals it, the
// patient a patient-confined token must be, and the consent that
// decides its disclosure.
package disclosure
